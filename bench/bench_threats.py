"""The threat battery at full size: every scenario of docs/threats.md (1-21) over ten seeds, a table of
detection time against target and false accusations; the clean GNSS runs (an hour with satellites
rising and setting, a one-minute obstruction); the alerts of a simulated 7-day clean NTP run with
the legitimate faults; replay speed. (bench_clean_week streams 7 days with GNSS + PPS + NTP.)

Run: `.venv/bin/python -m bench threats` (or `make bench`).
"""

from __future__ import annotations

import time
from collections import Counter

from timewatch.engine.leapsec import format_list, parse
from timewatch.sim.judge import judge
from timewatch.sim.scenarios import SCENARIOS, build

SEEDS = range(1, 11)
# A list valid for the simulated 2025 traces (no leap after 2017), as tzdata ships one.
LEAP_LIST = parse(format_list([(63_072_000, 10), (1_483_228_800, 37)], 1_751_328_000,
                              1_782_604_800))


def main() -> None:
    print(f"{'#':>2} {'scenario':22s} {'detected':>9s} {'ttd max s':>9s} {'ttd med s':>9s} "
          f"{'target s':>9s} {'worst ttd/target':>16s} {'false':>5s}")
    for sc in SCENARIOS.values():
        if sc.number is None:
            continue
        ttds: list[float] = []
        ratios: list[float] = []
        targets: list[float] = []
        det = false = 0
        for seed in SEEDS:
            v = judge(build(sc.name, seed), leap_list=LEAP_LIST)
            det += v.detected
            false += len(v.false_alerts)
            if v.target_s:
                targets.append(v.target_s)
            if v.time_to_detect_s is not None:
                ttds.append(v.time_to_detect_s)
                if v.target_s:
                    ratios.append(v.time_to_detect_s / v.target_s)
        ttds.sort()
        med = ttds[len(ttds) // 2] if ttds else float("nan")
        print(f"{sc.number:2d} {sc.name:22s} {det:>4d}/{len(SEEDS):<4d} "
              f"{max(ttds, default=float('nan')):9.1f} {med:9.1f} "
              f"{min(targets, default=float('nan')):9.1f} "
              f"{max(ratios, default=float('nan')):16.2f} {false:5d}")
    print("(target: the shortest over the seeds, with 1 s of slack; polls-based targets vary "
          "with each victim's poll)")

    for name in ("gnss_clean", "gnss_obstruction"):
        counts: Counter[tuple[str, str]] = Counter()
        false = 0
        for seed in SEEDS:
            v = judge(build(name, seed))
            false += len(v.false_alerts)
            counts.update((e.code, ",".join(e.sources)) for e in v.events if e.type == "alert")
        print(f"\n{name} ({SCENARIOS[name].description}), {len(SEEDS)} seeds: "
              f"alerts {dict(counts) or 'none'}; false alerts: {false}")

    t0 = time.perf_counter()
    st = build("clean_week", 1)
    t1 = time.perf_counter()
    v = judge(st, leap_list=LEAP_LIST)
    t2 = time.perf_counter()
    alerts = Counter((e.code, ",".join(e.sources)) for e in v.events if e.type == "alert")
    print(f"\nclean_week (7 days, a server silent 10 min, 5-10x delay spikes): "
          f"{len(st.observations)} records, simulated in {t1 - t0:.1f} s")
    print(f"  alerts: {dict(alerts) or 'none'}; expected only source.stale for "
          f"{st.truth.culprits}; false alerts: {len(v.false_alerts)}")
    print(f"  replay: {len(st.observations) / (t2 - t1):,.0f} records/s "
          f"({(t2 - t1):.1f} s for 7 days)")
