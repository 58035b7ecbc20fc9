"""The PPS step rule against the PPS noise over many days: a numpy model of engine/pps.py's test.

A false `time.step` on a clean day is rare (once in weeks), so one engine day says little. This
models the rule over DAYS days in about a minute: pulses with the noise of `sim/pps.py` (1.5 us
Gaussian interrupt latency around 5 us, never below 0; 1% of edges 5-30 us late) read through the
crystal of `sim/noise.py` (0.02 ppm a minute of random walk, a 1 ppm diurnal swing), the phase
line fitted over the last N good pulses ending pps_step_window pulses back (the pulses not yet
learned), each pulse's residual against it, the step test's jitter (an EWMA of the good residuals,
learned pps_step_window pulses late), and two rules on each window of 5 pulses:

- the old count rule: 4 of the last 5 beyond max(4 us, 2.5 x the 32-pulse jitter) on one side
  (3 of 4 when a gross outlier, beyond twice that, sits on the other side);
- the mean rule (engine/pps.py `_check_step`): the pulses later than the window's median by
  STEP_SPREAD_K jitters left out (late interrupts), none earlier by as much, at least 3 kept, and
  their mean at least max(4 us, STEP_MEAN_K standard errors), the standard error being
  jitter x sqrt((1/k + c^2) / (1 + c^2)) with c^2 = 1/N + d^2/Sxx the line's own (d: the
  window's distance from its centre; the jitter, measured on residuals, holds the line's error
  once already); or all 5 pulses outliers (beyond max(4 us, 3 jitters)) on one side.

For each reference it prints the residual spread, the spread of a 5-pulse mean (the pulses' own
noise, 1.5 us / sqrt(5) = 0.67 us, plus the line's error they share), the false step episodes in
DAYS clean days, and the fraction of 6 us steps (either sign, starting at every 7th pulse) caught
within 5 s (on the 4th or 5th stepped pulse). References: the engine's line (N = LINE_N), and a
longer slope under its level (the level of the last LINE_N pulses, the slope of the last 256 or
600: the crystal's frequency as a holdover learns it), which the wander makes worse, not better.

Run: `.venv/bin/python -m bench pps_step_model` (BENCH_PPS_MODEL_DAYS, default 60;
BENCH_PPS_MODEL_SEED, default 1).
"""

from __future__ import annotations

import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from timewatch.engine.pps import (
    JITTER_ALPHA,
    LINE_N,
    STEP_JITTER_ALPHA,
    STEP_JITTER_K,
    STEP_MEAN_K,
    STEP_SPREAD_K,
)

DAYS = int(os.environ.get("BENCH_PPS_MODEL_DAYS", "60"))
SEED = int(os.environ.get("BENCH_PPS_MODEL_SEED", "1"))
THR_S = 4e-6  # pps_step_s
OLD_K = 2.5  # the old rule: pulses beyond max(pps_step_s, 2.5 jitters)
WINDOW = 5  # pps_step_window
CONFIRM = 3  # pps_step_confirm: pulses the mean rule keeps at least
OLD_CONFIRM = 4  # the count rule: 4 of the 5
STEP_S = 6e-6  # docs/threats.md: a step >= 6 us caught within 5 s
DAY = 86_400
CHUNK = 5 * DAY  # windows judged at a time (memory)


def _noise(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(phase, good): each pulse's phase (second - raw time, s) and whether it is not late."""
    late = rng.random(n) < 0.01
    latency = np.maximum(0.0, rng.normal(5e-6, 1.5e-6, n)) + np.where(
        late, rng.uniform(5e-6, 30e-6, n), 0.0)
    minutes = n // 60 + 2
    m = np.arange(minutes)
    freq = np.cumsum(rng.normal(0.0, 0.02e-6, minutes)) + 1e-6 * np.sin(
        2 * np.pi * m * 60 / DAY + rng.uniform(0, 2 * np.pi))
    start = np.concatenate([[0.0], np.cumsum(freq * 60)])
    t = np.arange(n)
    crystal = start[t // 60] + freq[t // 60] * (t % 60)  # constant frequency within a minute
    return -latency - crystal, ~late


def _rolling(v: np.ndarray, n: int) -> np.ndarray:
    """Sum of v over the n values ending WINDOW before each index."""
    c = np.concatenate([[0.0], np.cumsum(v)])
    hi = np.clip(np.arange(len(v)) - WINDOW + 1, 0, len(v))
    return c[hi] - c[np.clip(hi - n, 0, len(v))]


def _residuals(phase: np.ndarray, good: np.ndarray, n: int, n_slope: int | None = None
               ) -> tuple[np.ndarray, float]:
    """Each pulse's phase off the line through the last n good pulses ending WINDOW back (its
    slope over the last n_slope when given), one day at a time (x and y from the day's first
    point: float64 stays exact); and c^2, the line's prediction variance over the pulses'."""
    ns = n_slope or n
    out = np.zeros(len(phase))
    for d0 in range(0, len(phase), DAY):
        a = max(0, d0 - max(n, ns) - WINDOW)
        y = phase[a:d0 + DAY] - phase[a]
        w = good[a:d0 + DAY].astype(float)
        x = np.arange(len(y), dtype=float)
        s, sx, sy = _rolling(w, ns), _rolling(w * x, ns), _rolling(w * y, ns)
        sxx, sxy = _rolling(w * x * x, ns), _rolling(w * x * y, ns)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (s * sxy - sx * sy) / (s * sxx - sx * sx)
            if ns != n:
                s, sx, sy = _rolling(w, n), _rolling(w * x, n), _rolling(w * y, n)
            r = y - (sy / s + slope * (x - sx / s))
        out[d0:d0 + DAY] = r[d0 - a:]
    out[: max(n, ns) + 2 * WINDOW] = 0.0
    d = n / 2 + (WINDOW + 1) / 2  # the window's centre past the line's (slope of ns pulses)
    return np.nan_to_num(out), 1 / n + d * d / (ns * (ns * ns - 1) / 12)


def _jitter(r: np.ndarray, good: np.ndarray, alpha: float) -> np.ndarray:
    """The EWMA jitter each pulse is judged with: the good residuals (under 3 jitters) up to
    WINDOW pulses back (a loop in numpy's C: lfilter-free, one pass)."""
    learn = good & (np.abs(r) < STEP_JITTER_K * 1.6e-6)
    learn[:200] = False
    idx = np.flatnonzero(learn)
    sq = r[idx] ** 2
    # EWMA y_k = y_{k-1} + alpha (x_k - y_{k-1}) = sum alpha (1-alpha)^(k-j) x_j, in blocks.
    ew = np.empty(len(sq))
    prev = (1.5e-6) ** 2
    block = 4096
    decay = (1 - alpha) ** np.arange(1, block + 1)
    for b0 in range(0, len(sq), block):
        x = sq[b0:b0 + block]
        k = len(x)
        # y_i = (1-a)^(i+1) prev + a * sum_{j<=i} (1-a)^(i-j) x_j
        scaled = x / (1 - alpha) ** np.arange(k)
        y = decay[:k] * prev + alpha * np.cumsum(scaled) * (1 - alpha) ** np.arange(k)
        ew[b0:b0 + k] = y
        prev = y[-1]
    pos = np.searchsorted(idx, np.arange(len(r)) - WINDOW, side="right") - 1
    out = np.full(len(r), (1.5e-6) ** 2)
    out[pos >= 0] = ew[pos[pos >= 0]]
    return np.sqrt(out)


def old_rule(v: np.ndarray, jit: np.ndarray) -> np.ndarray:
    """4 of 5 beyond max(4 us, 2.5 jitters) on the side v > 0 (3 of 4 past a gross outlier)."""
    thr = np.maximum(THR_S, OLD_K * jit)[:, None]
    gross = (v <= -2 * thr).any(1)
    return (v >= thr).sum(1) >= OLD_CONFIRM - gross.astype(int)


def mean_rule(v: np.ndarray, jit: np.ndarray, c2: float, late_side: float,
              fast: np.ndarray) -> np.ndarray:
    """engine/pps.py's rule on the side v > 0; late pulses are those with late_side * v > 0
    further from the median than STEP_SPREAD_K jitters; or all 5 outliers (beyond
    max(4 us, STEP_JITTER_K x the fast jitter)) on that side."""
    every = (v >= np.maximum(THR_S, STEP_JITTER_K * fast)[:, None]).all(1)
    j = jit[:, None]
    later = late_side * (v - np.median(v, 1)[:, None])  # > 0: later than the median
    keep = later <= STEP_SPREAD_K * j
    early_far = (-later > STEP_SPREAD_K * j).any(1)
    k = keep.sum(1)
    mean = (v * keep).sum(1) / np.maximum(k, 1)
    se = jit * np.sqrt((1.0 / np.maximum(k, 1) + c2) / (1.0 + c2))
    return every | (~early_far & (k >= CONFIRM) & (mean >= np.maximum(THR_S, STEP_MEAN_K * se)))


def _judge(r: np.ndarray, good: np.ndarray, c2: float, starts: np.ndarray
           ) -> dict[str, tuple[int, list[float]]]:
    fast, slow = _jitter(r, good, JITTER_ALPHA), _jitter(r, good, STEP_JITTER_ALPHA)
    rules = {"old": lambda v, i, s: old_rule(v, fast[i]),
             "mean": lambda v, i, s: mean_rule(v, slow[i], c2, -s, fast[i])}  # late: r < 0
    out = {}
    for name, rule in rules.items():
        hits: list[np.ndarray] = []
        for c0 in range(0, len(r) - WINDOW + 1, CHUNK):
            win = sliding_window_view(r[c0:c0 + CHUNK + WINDOW - 1], WINDOW)
            last = np.arange(c0, c0 + len(win)) + WINDOW - 1  # each window's last pulse
            h = rule(win, last, 1.0) | rule(-win, last, -1.0)
            hits.append(np.flatnonzero(h) + c0)
        at = np.concatenate(hits)
        episodes = int((np.diff(at) > 10).sum() + 1) if len(at) else 0
        caught = []
        for step in (STEP_S, -STEP_S):
            ok = np.zeros(len(starts), bool)
            for last in (3, 4):  # the window ending on the 4th, then the 5th stepped pulse
                w = np.stack([r[starts + last - 4 + q] + (step if last - 4 + q >= 0 else 0.0)
                              for q in range(WINDOW)], axis=1)
                ok |= rule(np.sign(step) * w, starts + last, np.sign(step))
            caught.append(float(ok.mean()))
        out[name] = (episodes, caught)
    return out


def main() -> None:
    rng = np.random.default_rng(SEED)
    n = DAYS * DAY
    phase, good = _noise(rng, n)
    starts = np.arange(1000, n - 10, 7)
    g5 = sliding_window_view(good, WINDOW).all(1)
    print(f"{DAYS} modelled days (seed {SEED}) of PPS noise (1.5 us jitter, 1% of edges 5-30 us "
          f"late) on a wandering crystal (0.02 ppm/min, 1 ppm diurnal); 6 us steps at every 7th "
          f"pulse, either sign")
    for lvl, slope in ((LINE_N, None), (LINE_N, 256), (LINE_N, 600)):
        r, c2 = _residuals(phase, good, lvl, slope)
        name = (f"line of {lvl} pulses (the engine's)" if slope is None else
                f"level of {lvl} pulses, slope of {slope}")
        skip = 2 * max(lvl, slope or 0)
        spread = float(r[good][skip:].std())
        m5 = sliding_window_view(r, WINDOW).mean(1)[g5][skip:]
        print(f"  {name}: residual spread {spread * 1e6:.2f} us, 5-pulse mean "
              f"{float(m5.std()) * 1e6:.2f} us (its line part c = {np.sqrt(c2):.2f} jitter)")
        res = _judge(r, good, c2, starts)
        for rule, label in (("old", f"4 of 5 beyond max(4 us, {OLD_K:g} jitters)"),
                            ("mean", f"mean of the kept pulses >= {STEP_MEAN_K:g} std errors")):
            ep, (cp, cm) = res[rule]
            print(f"    {label:44s} false steps {ep:3d} in {DAYS} days; 6 us caught within "
                  f"5 s: {cp:.1%} (+), {cm:.1%} (-)")


if __name__ == "__main__":
    main()
