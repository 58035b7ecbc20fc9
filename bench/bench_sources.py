"""The engine's cost against the number of sources (issue 20 item 3): N simulated NTP servers in
100 trust groups, all polled every 64 s, replayed through the engine.

The trace comes from the simulator (`timewatch.sim.scenarios.Sim` with a custom layout: honest
servers, its noise, ticks every second), seed 1, every server's poll set to 64 s; its duration is
at least 3 polls and long enough for >= 30,000 observations. Replay: `Engine(header,
snapshots=False, samples=False)` fed every record in order, as `timewatch replay` without sinks
does, the garbage collector settled as it does (`timewatch.gcfreeze.settle` after every
record); the rate is observations (NTP records, not ticks) per CPU-second of the whole feed.

The live monitor at poll 64 s: N/64 NTP records a second, one tick a second, one snapshot every
`snapshot_interval_s` (default 10 s), samples on. Its CPU share of one core is

    (CPU per NTP record) x N/64  +  (CPU per tick) x 1  +  (CPU per snapshot) / 10

each measured on the same trace with samples on (a second pass: NTP records and ticks timed
apart, snapshots timed by `Engine.snapshot()` on the final state).

Targets (issue 20): replay >= 20,000 obs/s, the live monitor under 5% of a core, at N = 1,000
and 10,000. `BENCH_SOURCES_BUDGET_S` (CPU seconds, default none) stops a pass early (the "before"
figures of a slow engine were taken so; the rate is then over the records fed).
Run: `.venv/bin/python -m bench sources` (or `make bench`); `python -m bench.bench_sources 1000`
for one N.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timewatch.commands.replay import engine_build  # noqa: E402
from timewatch.engine import Engine  # noqa: E402
from timewatch.gcfreeze import done as settled  # noqa: E402
from timewatch.gcfreeze import settle  # noqa: E402
from timewatch.records import Header, Observation, Tick  # noqa: E402
from timewatch.sim.scenarios import Sim, Truth  # noqa: E402

SIZES = (1_000, 10_000)
GROUPS = 100
POLL_S = 64
MIN_OBS = 30_000
TARGET_PER_S = 20_000  # issue 20
TARGET_CORE = 0.05  # issue 20: the live monitor under 5% of a core
# Before the incremental vote (098073d), BENCH_SOURCES_BUDGET_S=30: replay obs/s and the live
# monitor's share of a core, per N, (pure Python, compiled).
BEFORE = {1_000: ((299, 0.050), (566, 0.028)), 10_000: ((54, 2.542), (94, 1.604))}


def trace(n: int, seed: int = 1) -> tuple[Header, list[Observation]]:
    """N honest NTP servers in GROUPS trust groups, polled every POLL_S."""
    duration_s = max(3 * POLL_S, MIN_OBS * POLL_S / n)
    layout = [(f"ntp{i:05d}", f"op{i % GROUPS:03d}") for i in range(n)]
    sim = Sim("sources", seed, duration_s, layout=layout)
    for i, s in enumerate(sim.servers):
        s.poll_s = POLL_S
        if s.stratum != 1:  # (the simulator numbers refids for a handful of servers)
            s.refid = f"192.0.{2 + i // 240}.{10 + i % 240}"
        s.phase_s *= POLL_S / 16  # (drawn in 0-16 s): spread over the whole poll
    st = sim.build(Truth("sources", seed))
    return st.header, st.observations


def _budget() -> float:
    v = os.environ.get("BENCH_SOURCES_BUDGET_S")
    return float(v) if v else float("inf")


def replay(hdr: Header, obs: list[Observation]) -> tuple[int, float]:
    """(NTP records fed, CPU seconds) of the replay without sinks."""
    eng = Engine(hdr, snapshots=False, samples=False)
    budget = _budget()
    n = 0
    t0 = time.process_time()
    settle(0)
    for i, o in enumerate(obs):
        eng.feed(o)
        settle(i + 1)  # (as `timewatch replay`: timewatch/gcfreeze.py)
        if type(o) is not Tick:
            n += 1
        if i % 256 == 0 and time.process_time() - t0 > budget:
            break
    cpu = time.process_time() - t0
    settled()  # (the collector as it was: the live monitor does not settle it)
    return n, cpu


def live(hdr: Header, obs: list[Observation]) -> tuple[float, float, float]:
    """CPU seconds per NTP record and per tick (samples on), per snapshot (on the final state:
    timed apart, since the engine takes them on whichever record crosses the interval)."""
    eng = Engine(hdr, snapshots=False)
    budget = _budget()
    t_obs = t_tick = 0.0
    n_obs = n_tick = 0
    clock = time.process_time
    start = clock()
    for i, o in enumerate(obs):
        t0 = clock()
        eng.feed(o)
        dt = clock() - t0
        if type(o) is Tick:
            t_tick += dt
            n_tick += 1
        else:
            t_obs += dt
            n_obs += 1
        if i % 256 == 0 and clock() - start > budget:
            break
    reps = 5
    t0 = clock()
    for _ in range(reps):
        eng.snapshot()
    t_snap = (clock() - t0) / reps
    return t_obs / max(1, n_obs), t_tick / max(1, n_tick), t_snap


def measure(n: int) -> None:
    t0 = time.monotonic()
    hdr, obs = trace(n)
    n_ntp = sum(1 for o in obs if type(o) is not Tick)
    print(f"N={n:,} sources in {GROUPS} groups, poll {POLL_S} s: {n_ntp:,} NTP records and "
          f"{len(obs) - n_ntp:,} ticks (built in {time.monotonic() - t0:.0f} s)", flush=True)
    fed, cpu = replay(hdr, obs)
    rate = fed / cpu
    part = "" if fed == n_ntp else f" (budget: first {fed:,} records)"
    print(f"  replay:  {rate:10,.0f} obs/s per CPU-second{part}; target {TARGET_PER_S:,}: "
          f"{'met' if rate >= TARGET_PER_S else 'NOT met'}", flush=True)
    per_obs, per_tick, per_snap = live(hdr, obs)
    snap_s = 10.0
    share = per_obs * n / POLL_S + per_tick + per_snap / snap_s
    print(f"  live at poll {POLL_S} s: {per_obs * 1e6:.0f} us/record x {n / POLL_S:.0f}/s + "
          f"{per_tick * 1e3:.2f} ms/tick x 1/s + {per_snap * 1e3:.1f} ms/snapshot / {snap_s:g} s "
          f"= {share:.1%} of a core; target < {TARGET_CORE:.0%}: "
          f"{'met' if share < TARGET_CORE else 'NOT met'}", flush=True)
    before = BEFORE.get(n)
    if before is not None:
        (p_rate, p_core), (c_rate, c_core) = before
        print(f"  before the incremental vote (098073d): replay {p_rate:,} / {c_rate:,} obs/s, "
              f"live {p_core:.1%} / {c_core:.1%} of a core (pure Python / compiled)", flush=True)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:] if a.isdigit()] or list(SIZES)
    print(f"-- {engine_build()}")
    for n in sizes:
        measure(n)


if __name__ == "__main__":
    main()
