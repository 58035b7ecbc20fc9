"""Sensitivity: each timing attack of docs/threats.md at 1, 0.5 and 0.25 of its target size over
SEEDS seeds (the sign alternating with the seed): the detection rate within the scenario's target,
the rate of detection at any time in the trace, and the median time to detect, per size; next to
the alerts of a clean run with the legitimate faults (one simulated day here, to keep the bench
short: bench_threats and bench_clean_week run the 7 days).

Run: `.venv/bin/python -m bench sensitivity` (or `make bench`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from timewatch.sim.judge import judge
from timewatch.sim.scenarios import build

SEEDS = range(1, 6)
FRACTIONS = (1.0, 0.5, 0.25)
CLEAN_S = 86_400.0
# (scenario, parameter, target size, unit scale, unit)
ATTACKS = [
    ("ntp_liar", "offset_s", 0.015, 1e3, "ms"),
    ("ntp_drift", "rate_ppm", 15.0, 1.0, "ppm"),
    ("ntp_mitm_delay", "delay_s", 0.005, 1e3, "ms"),
    ("gnss_step", "step_s", 6e-6, 1e6, "us"),
    ("gnss_push_fast", "rate_s_per_s", 1e-6, 1e6, "us/s"),
    ("gnss_push_slow", "rate_s_per_s", 0.25e-6, 1e6, "us/s"),
]


def _run(name: str, key: str, size: float, seed: int) -> tuple[bool, float | None, int]:
    """(detected within target, time to detect at any time or None, false accusations)."""
    sign = 1.0 if seed % 2 else -1.0
    params: dict[str, object] = {key: sign * size}
    if name == "ntp_mitm_delay":
        params[key] = size
    st = build(name, seed, **params)
    v = judge(st)
    ever = v
    if not v.detected and st.truth.start_ns is not None:
        # The same events judged without a deadline: found at all, and when.
        ever = judge(replace(st, truth=replace(st.truth, deadline_ns=2**62)))
    return v.detected, ever.time_to_detect_s, len(v.false_alerts)


def main() -> None:
    print(f"{'attack':16s} {'size':>12s} {'in target':>9s} {'ever':>6s} {'median ttd s':>12s} "
          f"{'target s':>9s} {'false':>5s}  (target: seed 1's)")
    for name, key, target, scale, unit in ATTACKS:
        for frac in FRACTIONS:
            size = target * frac
            hit = 0
            ttds: list[float] = []
            false = 0
            tgt = None
            for seed in SEEDS:
                ok, ttd, f = _run(name, key, size, seed)
                hit += ok
                false += f
                if ttd is not None:
                    ttds.append(ttd)
                tgt = tgt or judge_target(name, key, size, seed)
            ttds.sort()
            med = f"{ttds[len(ttds) // 2]:12.1f}" if ttds else f"{'-':>12s}"
            print(f"{name:16s} {size * scale:8.3g} {unit:4s}{hit:>5d}/{len(SEEDS):<3d} "
                  f"{len(ttds):>3d}/{len(SEEDS):<2d} {med} {tgt or float('nan'):9.1f} {false:5d}")
    st = build("clean_week", 1, CLEAN_S)
    v = judge(st)
    alerts = Counter((e.code, ",".join(e.sources)) for e in v.events if e.type == "alert")
    print(f"\nclean run ({CLEAN_S / 86400:.0f} day, NTP with a server silent 10 min and delay spikes): "
          f"alerts {dict(alerts) or 'none'}; expected only source.stale for {st.truth.culprits}; "
          f"false alerts: {len(v.false_alerts)}")


def judge_target(name: str, key: str, size: float, seed: int) -> float | None:
    """The scenario's target for this size (polls-based targets vary with the victim's poll)."""
    return build(name, seed, **{key: size}).truth.target_s


if __name__ == "__main__":
    main()
