"""`make bench`: every bench/bench_*.py module's main(), each printing its figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    only = sys.argv[1:]
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if m.name.startswith("bench_"))
    failed = []
    for name in names:
        if only and not any(o in name for o in only):
            continue
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as e:  # noqa: BLE001 - report and go on to the next bench
            print(f"FAILED: {e!r}")
            failed.append(name)
        print(f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
