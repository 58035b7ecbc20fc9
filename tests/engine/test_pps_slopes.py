"""The work the PPS slope test and the C/N0 uniformity test skip is work whose answer is known.

`_History.slope_bound` gives a window's slope from running sums with a bound on how far the float
of `_slope` (the two-pass slope the slope test decides on) can be from it; the slope test runs
`_slope` only when that bound cannot settle the decision. `_spread_below` settles
`pstdev(vals) < limit` from a float variance unless it is too close to tell. Both are checked here
against the exact forms on data built to sit at their edges (large clocks, fast crystals,
phases far from zero, spreads a few ulps from the limit), and against uselessness (a bound that
never settles would make the replay as slow as before: the figures in the README depend on it).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.engine.gnss_detect import _spread_below
from timewatch.engine.pps import DRIFT_WINDOWS_S, HIST_KEEP, _History, _slope
from timewatch.engine.value import pstdev


def _pulses(rng: random.Random, start_s: float, freq: float, jitter_s: float, y0: float,
            n: int, push_from: int | None = None, push: float = 0.0) -> list[tuple[float, float]]:
    """(x_s, phase_s) of n pulses as _measure makes them: x from integer ns, a crystal `freq`
    off, interrupt jitter, a few missing pulses, a push of `push` s/s from pulse `push_from`."""
    clock_ns = round(start_s * 1e9)
    out = []
    for k in range(n):
        clock_ns += round(1e9 * (1 + freq)) * (2 if rng.random() < 0.01 else 1)
        x = clock_ns / 1e9
        p = y0 - freq * (x - start_s) + rng.gauss(0.0, jitter_s)
        if push_from is not None and k >= push_from:
            p += push * (k - push_from)
        out.append((x, p))
    return out


def _windows(h: _History, x_s: float) -> list[tuple[int, int, int]]:
    """(w, i, j) of every window the slope test would read after the point at x_s."""
    xs = h.xs
    end = len(xs)
    lo = max(0, end - HIST_KEEP)
    out = []
    for w in DRIFT_WINDOWS_S:
        i1 = bisect_right(xs, x_s - w, lo)
        i0 = bisect_right(xs, x_s - 2 * w, lo)
        if end - i1 < 0.75 * w or i1 - i0 < 0.75 * w:
            break
        out += [(w, i1, end), (w, i0, i1)]
    return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from([0.0, 3e4, 6e5, 3e7]), st.sampled_from([0.0, 1e-7, 2e-5, -45.2e-6, 2e-4]),
       st.sampled_from([1e-8, 1.5e-6, 1e-5]), st.sampled_from([0.0, 0.3, -2.0, 1e3]),
       st.integers(0, 2**32), st.sampled_from([0.0, 1e-6, -3e-5]))
def test_slope_bound_holds_the_float_slope(start_s: float, freq: float, jitter_s: float,
                                           y0: float, seed: int, push: float) -> None:
    rng = random.Random(seed)
    h = _History()
    for k, (x, p) in enumerate(_pulses(rng, start_s, freq, jitter_s, y0, 900, 500, push)):
        h.append(x, p)
        if k % 5:
            continue
        for _, i, j in _windows(h, x):
            q, e = h.slope_bound(i, j)
            b = _slope(h.xs, h.ps, i, j)
            assert abs(b - q) <= e, (k, i, j, b, q, e)
            if e < math.inf:  # the bound is doubled: the slope sits in its inner half
                assert abs(b - q) <= e / 2, (k, i, j, b, q, e)


def test_slope_bound_settles_a_clean_week_at_its_end() -> None:
    # A week into the phase line's history (x ~ 6e5 s), a crystal 45 ppm off, 1.5 us of jitter:
    # every window's bound is far below the slope test's noise term, so `_slope` never runs on
    # clean pulses (the replay's speed).
    rng = random.Random(1)
    h = _History()
    n_windows = 0
    for k, (x, p) in enumerate(_pulses(rng, 6e5, -45.2e-6, 1.5e-6, 27.1, 1200)):
        h.append(x, p)
        for w, i, j in _windows(h, x):
            _, e = h.slope_bound(i, j)
            noise = 1.5e-6 * math.sqrt(24.0 / (j - i) ** 3)
            assert e < noise * 1e-3, (k, w, e, noise)
            n_windows += 1
    assert n_windows > 5000


def test_slope_bound_declines_what_it_cannot_tell() -> None:
    h = _History()
    for k in range(10):
        h.append(float(k), 1e-6 * k)
    assert h.slope_bound(3, 4)[1] == math.inf  # one point: no slope
    h.clear()
    for _ in range(10):
        h.append(5.0, 0.0)  # no spread in x: _slope says 0.0, the sums cannot tell
    assert h.slope_bound(0, 10)[1] == math.inf


def test_history_keeps_its_sums_exact_across_trims_and_origins() -> None:
    # 3000 points: trimmed to HIST_KEEP and rebuilt several times, origins moved: each window's
    # sums still give the slope within the bound.
    rng = random.Random(4)
    h = _History()
    origins = set()
    for x, p in _pulses(rng, 0.0, 2e-5, 1.5e-6, 0.0, 3000):
        h.append(x, p)
        origins.add(h.x0)
        assert len(h) < 2 * HIST_KEEP
        assert h.exact()
    xs = h.xs
    for _, i, j in _windows(h, xs[-1]):
        q, e = h.slope_bound(i, j)
        assert abs(_slope(xs, h.ps, i, j) - q) <= e / 2
    assert len(origins) > 3


_CN0 = st.one_of(st.integers(15, 55).map(float), st.floats(10.0, 60.0))


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.lists(_CN0, min_size=4, max_size=40), st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]))
def test_spread_below_agrees_with_pstdev(vals: list[float], limit: float) -> None:
    r = _spread_below(vals, limit)
    if r is not None:
        assert r == (pstdev(vals) < limit)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=40).filter(
    lambda b: max(b) - min(b) > 1e-3), st.sampled_from([0.7, 1.0, 2.0]),
       st.sampled_from([0.0, 1e-16, -1e-16, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6]))
def test_spread_below_at_the_limit(base: list[float], limit: float, rel: float) -> None:
    # A spread scaled to the limit (and a few ulps either side): it answers as pstdev does, or
    # leaves it to pstdev.
    m = sum(base) / len(base)
    sd = math.sqrt(sum((b - m) ** 2 for b in base) / len(base))
    vals = sorted((40.0 + (b - m) / sd * limit * (1.0 + rel) for b in base), reverse=True)
    r = _spread_below(vals, limit)
    if r is not None:
        assert r == (pstdev(vals) < limit)
    if abs(rel) <= 1e-12:
        assert r is None  # within the roundings: pstdev decides
    if abs(rel) >= 1e-6:
        assert r is not None  # clear: no integer arithmetic


def test_spread_below_answers_clear_cases_and_declines_close_ones() -> None:
    assert _spread_below([40.0, 42.0, 38.0, 45.0], 1.0) is False
    assert _spread_below([40.0, 40.2, 39.9, 40.1], 1.0) is True
    vals = [41.0, 41.0, 39.0, 39.0]  # pstdev exactly 1.0
    assert pstdev(vals) == 1.0
    assert _spread_below(vals, 1.0) is None
    assert _spread_below([40.0, math.nan, 41.0, 42.0], 1.0) is None  # pstdev decides (raises)
