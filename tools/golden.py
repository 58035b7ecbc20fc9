"""The golden gate: every `simulate` scenario on two seeds, written as a trace, read back and
replayed; the digests of its events, samples and snapshots are compared with those recorded in
tests/data/golden.json.

A refactoring must leave every digest as it is (`python tools/golden.py check`). A change that is
meant to change what the engine says records new digests (`python tools/golden.py update`), and its
commit says which scenarios moved and why. tests/test_golden.py runs the check in `make test`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "golden.json"
SEEDS = (1, 2)
# Long scenarios are cut so that the gate runs in about a minute; what they exercise early is
# what the gate compares (the leap of ntp_real_leap is inside its first 4 h).
MAX_DURATION_S = 14_400.0


def digests(name: str, seed: int, workdir: Path) -> dict[str, str]:
    """sha256 of the events, the samples and the snapshots of one scenario's replay."""
    from timewatch.engine import Engine
    from timewatch.records import Event, Snapshot
    from timewatch.sim import scenarios
    from timewatch.trace import TraceReader

    sc = scenarios.SCENARIOS[name]
    st = scenarios.build(name, seed, min(sc.duration_s, MAX_DURATION_S))
    path = workdir / f"{name}-{seed}.jsonl"
    scenarios.write(str(path), st)
    rd = TraceReader(path)
    eng = Engine(rd.header)
    h = {k: hashlib.sha256() for k in ("events", "samples", "snapshots")}
    counts = dict.fromkeys(h, 0)

    def take(outs: list) -> None:
        for o in outs:
            k = "events" if isinstance(o, Event) else "snapshots" if isinstance(o, Snapshot) \
                else "samples"
            h[k].update(json.dumps(o.to_dict(), sort_keys=True).encode() + b"\n")
            counts[k] += 1

    for obs in rd:
        take(eng.feed(obs))
    take(eng.finish())
    path.unlink()
    return {k: f"{counts[k]}:{h[k].hexdigest()[:32]}" for k in h}


def compute() -> dict[str, dict[str, str]]:
    from timewatch.sim import scenarios

    out: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as d:
        for name in sorted(scenarios.SCENARIOS):
            for seed in SEEDS:
                out[f"{name}/{seed}"] = digests(name, seed, Path(d))
    return out


def diff(want: dict, got: dict) -> list[str]:
    lines = []
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key), got.get(key)
        if w != g:
            lines.append(f"{key}: recorded {w} now {g}")
    return lines


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    got = compute()
    if cmd == "update":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"golden: {len(got)} replays recorded in {GOLDEN}")
        return 0
    want = json.loads(GOLDEN.read_text())
    d = diff(want, got)
    print("\n".join(d) if d else f"golden: ALL IDENTICAL ({len(got)} replays)")
    return 1 if d else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
