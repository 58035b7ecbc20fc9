"""`timewatch doctor [-c CONFIG]`: every check of `timewatch.doctor` printed with its fix; exit 1
when one failed."""

from __future__ import annotations

import argparse

from ..config import ConfigError, load
from ..doctor import Check, run_checks


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(Check(False, "config", str(e), "fix the key named above; timewatch check-config "
                    "FILE re-checks it").render())
        return 1
    checks = run_checks(cfg)
    for c in checks:
        print(c.render())
    failed = [c for c in checks if not c.ok and not c.warn]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed"
          + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0
