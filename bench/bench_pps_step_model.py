"""The PPS step rule against the PPS noise over many days: a numpy model of engine/pps.py's test.

A false `time.step` on a clean day is rare (once in days), so one engine day says little. This
models the rule over DAYS days in about a minute: pulses with the noise of `sim/pps.py` (1.5 us
Gaussian interrupt latency, 1% of edges 5-30 us late), the phase line fitted over the last N good
pulses ending pps_step_window pulses back (the pulses not yet learned), each pulse's residual
against it, and the window rule (4 of the last 5 beyond 4 us on one side, 3 of 4 when a gross
outlier, beyond 8 us, sits on the other side). The crystal's wander is left out (the engine days
of `simulate --scenario gnss_clean` carry it; on them the residual spread is least at N = 64).

Prints, for the old line (N = 32) and the current one (`LINE_N`): the residual spread, the false
step episodes in DAYS clean days, and the fraction of 6 us steps (either sign, starting at a
random pulse) caught within 5 s (on the 4th or 5th pulse after the step).

Run: `.venv/bin/python -m bench pps_step_model` (BENCH_PPS_MODEL_DAYS=60 for a longer run).
"""

from __future__ import annotations

import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from timewatch.engine.pps import LINE_N

DAYS = int(os.environ.get("BENCH_PPS_MODEL_DAYS", "20"))
SEED = 1
THR_S = 4e-6  # pps_step_s (2.5 x 1.5 us of jitter is below it)
WINDOW = 5  # pps_step_window
CONFIRM = 4  # pps_step_confirm
STEP_S = 6e-6  # docs/threats.md: a step >= 6 us caught within 5 s


def _residuals(phase: np.ndarray, good: np.ndarray, n: int) -> np.ndarray:
    """Each pulse's phase off the line fitted over the last n good pulses ending WINDOW back
    (running sums over one day at a time, x from the day's start: float64 stays exact)."""
    out = np.zeros(len(phase))
    for d0 in range(0, len(phase), 86_400):
        a = max(0, d0 - n - WINDOW)
        y, w = phase[a:d0 + 86_400], good[a:d0 + 86_400].astype(float)
        x = np.arange(len(y), dtype=float)

        def rolling(v: np.ndarray) -> np.ndarray:
            c = np.concatenate([[0.0], np.cumsum(v)])
            hi = np.clip(np.arange(len(v)) - WINDOW + 1, 0, len(v))
            return c[hi] - c[np.clip(hi - n, 0, len(v))]

        s, sx, sy = rolling(w), rolling(w * x), rolling(w * y)
        sxx, sxy = rolling(w * x * x), rolling(w * x * y)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (s * sxy - sx * sy) / (s * sxx - sx * sx)
            r = y - ((sy - slope * sx) / s + slope * x)
        out[d0:d0 + 86_400] = r[d0 - a:]
    out[: n + 2 * WINDOW] = 0.0
    return np.nan_to_num(out)


def _steps(win: np.ndarray, sign: float) -> np.ndarray:
    v = sign * win
    gross = (v <= -2 * THR_S).any(axis=1)
    return (v >= THR_S).sum(axis=1) >= CONFIRM - gross.astype(int)


def main() -> None:
    rng = np.random.default_rng(SEED)
    n = DAYS * 86_400
    late = rng.random(n) < 0.01
    latency = rng.normal(5e-6, 1.5e-6, n) + np.where(late, rng.uniform(5e-6, 30e-6, n), 0.0)
    phase = -latency  # the crystal's constant frequency: any line takes it out
    starts = np.arange(1000, n - 10, 7)
    print(f"{DAYS} modelled days of PPS noise (1.5 us jitter, 1% of edges 5-30 us late); "
          f"rule: {CONFIRM} of {WINDOW} beyond {THR_S * 1e6:g} us")
    for lines in sorted({32, LINE_N}):
        r = _residuals(phase, ~late, lines)
        win = sliding_window_view(r, WINDOW)
        hits = np.flatnonzero(_steps(win, 1.0) | _steps(win, -1.0))
        episodes = int((np.diff(hits) > 10).sum() + 1) if len(hits) else 0
        caught = []
        for step in (STEP_S, -STEP_S):
            ok = np.zeros(len(starts), bool)
            for last in (3, 4):  # the window ending on the 4th, then the 5th stepped pulse
                w = np.stack([r[starts + last - 4 + q] + (step if last - 4 + q >= 0 else 0.0)
                              for q in range(WINDOW)], axis=1)
                ok |= _steps(w, np.sign(step))
            caught.append(float(ok.mean()))
        spread = float(r[~late][lines + 2 * WINDOW:].std())
        print(f"  line of {lines:2d} pulses: residual spread {spread * 1e6:.2f} us; false steps "
              f"{episodes} in {DAYS} days; 6 us steps caught within 5 s: "
              f"{caught[0]:.1%} (+), {caught[1]:.1%} (-)")


if __name__ == "__main__":
    main()
