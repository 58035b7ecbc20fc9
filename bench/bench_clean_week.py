"""Seven simulated days of clean operation with GNSS + PPS + NTP, streamed through the engine.

docs/threats.md "Must not alarm": 7 days with realistic noise and the legitimate faults raise no alert
but the ones those faults call for. The deployment is the default one: a GNSS receiver with PPS
(one trust group) and five NTP servers of four operators (`sim.scenarios.NTP_LAYOUT`). Faults:
- one NTP server stops answering for 10 minutes (only `source.stale` for it);
- a 1-minute obstruction: the receiver loses its fix while its PPS keeps pulsing (only
  `gnss.no_fix`, `gnss.satellites`, for gnss0);
- NTP delay spikes of 5-10x the base delay, satellites rising and setting, a wandering crystal
  with a diurnal swing, an NTP-disciplined realtime clock, records handed over up to 20 ms out of
  order (all from `sim.noise`, `sim.nmeagen`, `sim.pps`).

Streaming: the NTP exchanges (~80k records for 7 days) are built by `sim.scenarios.Sim` without
its ticks; the GNSS sentences, PPS edges and ticks (~5M records) are generated one second at a
time and merged in hand-over order through a small heap, so the week is never in memory whole.
Prints the alerts against what the faults allow, the records, the time taken and the rate.

Memory: the process's peak resident set (getrusage ru_maxrss, interpreter included), read at the
end; tracemalloc is not used (it hooks every allocation and slowed the week past 40 minutes).

Run: `.venv/bin/python -m bench clean_week` (or `make bench`): 7 days take about 8 CPU-minutes
(5.1M records). BENCH_CLEAN_DAYS=1 for a shorter run.
"""

from __future__ import annotations

import heapq
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator

from timewatch.engine import Engine
from timewatch.records import Event, Header, Observation, SourceInfo, Tick
from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.noise import NS, handover_delay_ns
from timewatch.sim.pps import PpsSim
from timewatch.sim.scenarios import Sim, Truth

DAYS = float(os.environ.get("BENCH_CLEAN_DAYS", "7"))
SEED = 1
# 2026-12-01T00:00:00Z: after the engine's build-date floor for receiver dates (2026-11-01).
T0_NS = 1_796_083_200 * NS
ANTENNA = (48.8566, 2.3522, 35.0)
# The receiver's sentences each second (RMC dates the label, GGA and GSA the fix, GSV the C/N0).
SENTENCES = ("RMC", "GGA", "GSA", "GSV")
# What the faults call for (docs/threats.md "Must not alarm"): code -> sources it may name.
SILENT_SERVER_FRACTION = 0.3  # the server falls silent 30% into the run (as clean_week does)
OBSTRUCTION_FRACTION = 0.6  # the receiver is obstructed 60% into the run
OBSTRUCTION_S = 60


class _NtpOnly(Sim):
    """`Sim` without its ticks: this bench streams the ticks with the GNSS seconds."""

    def _ticks(self) -> None:
        return None


def _stream(sim: Sim, ntp: list[Observation], seconds: int, obstructed: tuple[int, int]
            ) -> Iterator[Observation]:
    """Every record of the run in hand-over order, generated one second at a time."""
    host = sim.host
    nmea = NmeaSim(random.Random(f"{SEED}|nmea"), position=ANTENNA, sentences=SENTENCES)
    nmea.fix_lost = lambda s: obstructed[0] <= s < obstructed[1]
    pps = PpsSim(random.Random(f"{SEED}|pps"), host)
    rng = random.Random(f"{SEED}|handover-gnss")
    heap: list[tuple[int, int, Observation]] = []
    seq = 0
    ntp_it = iter(ntp)
    # NTP records carry no true time: Sim sorted them by hand-over; merge by host realtime,
    # which is within microseconds of true time here (no host step in a clean run).
    nxt = next(ntp_it, None)
    for k in range(seconds):
        t = sim.t0_ns + k * NS
        while heap and heap[0][0] < t:  # nothing generated from now on is handed over earlier
            yield heapq.heappop(heap)[2]
        while nxt is not None and nxt.rx_ns < host.realtime_ns(t):
            yield nxt
            nxt = next(ntp_it, None)
        heapq.heappush(heap, (t, seq, Tick(host.realtime_ns(t), host.raw_ns(t))))
        seq += 1
        recs: list[Observation] = [*pps.pulse(t), *nmea.observations(t, host)]
        for o in recs:
            heapq.heappush(heap, (o.rx_ns + handover_delay_ns(rng), seq, o))
            seq += 1
    while heap:
        yield heapq.heappop(heap)[2]
    while nxt is not None:
        yield nxt
        nxt = next(ntp_it, None)


def main() -> None:
    seconds = int(DAYS * 86_400)
    t0 = time.perf_counter()
    sim = _NtpOnly("clean_week_gnss", SEED, seconds, t0_ns=T0_NS)
    victim = sim.servers[SEED % len(sim.servers)]
    ta = sim.at(SILENT_SERVER_FRACTION)
    victim.silent = lambda t: ta <= t < ta + 600 * NS
    for s in sim.servers:
        s.path.spike_factor = (5.0, 10.0)
    ntp = sim.build(Truth("clean_week_gnss", SEED)).observations
    t_ntp = time.perf_counter() - t0
    ob0 = sim.t0_ns + int(seconds * OBSTRUCTION_FRACTION) * NS
    obstructed = (ob0, ob0 + OBSTRUCTION_S * NS)
    sources = {s.sid: s.info() for s in sim.servers}
    sources["gnss0"] = SourceInfo("gnss", "gnss", position=ANTENNA)
    sources["pps0"] = SourceInfo("pps", "gnss", label_from="gnss0")
    eng = Engine(Header("bench-clean-week", sim.t0_ns, sources))
    allowed = {"source.stale": {victim.sid}, "gnss.no_fix": {"gnss0"},
               "gnss.satellites": {"gnss0"}}
    alerts: Counter[tuple[str, str]] = Counter()
    unexpected: list[Event] = []
    n = 0
    t1 = time.perf_counter()
    for o in _stream(sim, ntp, seconds, obstructed):
        n += 1
        for x in eng.feed(o):
            if isinstance(x, Event) and x.type == "alert":
                alerts[(x.code, ",".join(x.sources))] += 1
                if not set(x.sources) or not set(x.sources) <= allowed.get(x.code, set()):
                    unexpected.append(x)
    for x in eng.finish():
        if x.type == "alert":
            alerts[(x.code, ",".join(x.sources))] += 1
    t2 = time.perf_counter()
    # Peak resident set of the process (Linux: KiB), read once at the end: tracemalloc hooked
    # every allocation and made the week take > 40 min.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{DAYS:g} days of GNSS (1 Hz, {len(SENTENCES)} sentence types) + PPS + "
          f"{len(sim.servers)} NTP servers, clean with the legitimate faults: {victim.sid} silent "
          f"600 s, a {OBSTRUCTION_S} s obstruction of gnss0, 5-10x delay spikes")
    print(f"  records: {n:,} ({len(ntp):,} NTP built up front in {t_ntp:.1f} s; the rest "
          f"streamed); generated and replayed in {t2 - t1:.1f} s: {n / (t2 - t1):,.0f} records/s "
          f"(generation included); peak resident memory {peak / 2**20:.0f} MiB")
    print(f"  alerts: {dict(alerts) or 'none'}")
    print(f"  allowed by the faults: {', '.join(f'{c} {sorted(s)}' for c, s in allowed.items())}")
    print(f"  unexpected alerts: {len(unexpected)}"
          + "".join(f"\n    {e.code} {list(e.sources)} at +{(e.t_ns - sim.t0_ns) / 1e9:.0f} s: "
                    f"{e.message}" for e in unexpected[:20]))


if __name__ == "__main__":
    main()
