"""The cost of tamper-evident evidence (docs/evidence.md): chaining and signing per record.

On the NTP trace of bench_replay_ntp (>= 100,000 exchanges), per CPU-second of this process:
- writing: `TraceWriter` with and without the chain (SHA-256 of every line, a signed checkpoint
  every 1000 records): the cost per record, and what it is at a live monitor's record rate;
- one Ed25519 signature (a checkpoint) and one verification;
- `verify` (scan) per record, and `timewatch replay` of the chained trace against the same trace
  unchained (the replay checks the chain first): target within 10% (issue 19).
Run: `.venv/bin/python -m bench evidence` (or `make bench`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from tests.engine.ntpsim import four_groups, header, schedule  # noqa: E402
from timewatch.commands.replay import cmd_replay  # noqa: E402
from timewatch.evidence import Evidence, judge_end, scan  # noqa: E402
from timewatch.records import Header, Observation  # noqa: E402
from timewatch.trace import TraceWriter  # noqa: E402

DAYS = 3.2  # bench_replay_ntp's trace: ~100,000 exchanges
POLL_S = 16.0
RUNS = 3  # each figure is the best of this many runs (the machine is shared)
# A live monitor's records per second: 8 NTP servers polled every 16 s plus a tick a second
# (bench_live_ntp's set-up); with GNSS and PPS it is ~10/s.
LIVE_RECORDS_PER_S = (8 / 16 + 1, 10)
LIVE_SEALS_PER_S = 2 / 60  # the trace and the event log, one checkpoint a minute each
TARGET_REPLAY_PCT = 10.0


def best(fn: object, runs: int = RUNS) -> float:
    t = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        fn()  # type: ignore[operator]
        t = min(t, time.process_time() - t0)
    return t


def write(path: Path, hdr: Header, obs: list[Observation], ev: Evidence | None) -> None:
    with TraceWriter(path, hdr, evidence=ev) as w:
        for o in obs:
            w.write(o)


def replay(path: Path) -> None:
    args = argparse.Namespace(trace=str(path), config=None, events=os.devnull, snapshots=False)
    with contextlib.redirect_stderr(io.StringIO()):
        cmd_replay(args)


def main() -> None:
    rng = random.Random(2)
    servers = four_groups(rng, poll_s=POLL_S)
    obs = schedule(servers, DAYS * 86400, rng)
    hdr = header(servers)
    n = len(obs)
    with tempfile.TemporaryDirectory() as d:
        ev = Evidence(Path(d) / "state")  # defaults: a checkpoint per 1000 records or 60 s
        plain, chained = Path(d) / "plain.jsonl", Path(d) / "chained.jsonl"
        t_plain = best(lambda: write(plain, hdr, obs, None))
        t_chain = best(lambda: write(chained, hdr, obs, ev))
        per_rec_us = (t_chain - t_plain) / n * 1e6

        key = Ed25519PrivateKey.generate()
        msg = b"x" * 300  # a checkpoint's JSON is ~300 bytes
        k = 2000
        t_sign = best(lambda: [key.sign(msg) for _ in range(k)]) / k
        sig = key.sign(msg)
        pub = key.public_key()
        t_verify = best(lambda: [pub.verify(sig, msg) for _ in range(k)]) / k

        def check() -> None:
            sc = scan(chained)
            judge_end(sc)
            assert sc.intact, sc.problems

        t_scan = best(check)
        t_replay_plain = best(lambda: replay(plain))
        t_replay_chain = best(lambda: replay(chained))

    extra_pct = (t_replay_chain - t_replay_plain) / t_replay_plain * 100
    print(f"trace: {n} NTP observations; a checkpoint per 1000 records (the default)")
    print(f"write, unchained:        {t_plain / n * 1e6:6.2f} us/record")
    print(f"write, chained + signed: {t_chain / n * 1e6:6.2f} us/record  "
          f"(+{per_rec_us:.2f} us: SHA-256 of the line, +1/1000 of a checkpoint)")
    print(f"Ed25519: sign {t_sign * 1e6:.0f} us, verify {t_verify * 1e6:.0f} us per checkpoint "
          f"({t_sign * 1e6 / 1000:.3f} us per record at 1000 records per checkpoint)")
    for rate in LIVE_RECORDS_PER_S:
        cpu = rate * per_rec_us * 1e-6 + LIVE_SEALS_PER_S * t_sign
        print(f"live at {rate:g} records/s: {cpu * 100:.5f}% of one core for the chain")
    print(f"verify (scan):           {t_scan / n * 1e6:6.2f} us/record "
          f"({n / t_scan:,.0f} records/s)")
    print(f"replay unchained: {n / t_replay_plain:10,.0f} obs/s")
    print(f"replay chained:   {n / t_replay_chain:10,.0f} obs/s  ({extra_pct:+.1f}%: the chain "
          f"checked first; target within {TARGET_REPLAY_PCT:g}%: "
          f"{'met' if extra_pct <= TARGET_REPLAY_PCT else 'NOT met'})  (best of {RUNS})")


if __name__ == "__main__":
    main()
