"""time.drift and the holdover residual after the speed work give the very floats of the plain forms.

The drift detector's hot path replaced `statistics.median`, `max()`/`min()` and per-call
recomputation by hand-written forms; the gate is byte-identical events. Each fast form is checked
here against the plain computation it replaced (kept below as the reference), bit for bit.
"""

from __future__ import annotations

import math
import random
import statistics
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.test_holdover import NS, RAW0, T0
from timewatch.engine.detectors.drift import NOISE_GAIN, RUN_POINTS, WARMUP, _Test
from timewatch.engine.holdover import _WEIGHT_UNIT_S, WANDER_FLOOR_PPM, Holdover
from timewatch.engine.value import median


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


# A small pool, so that lists hold ties, both zeros and a NaN (where the sort's pick matters).
_POOL = st.sampled_from([0.0, -0.0, 1e-3, -1e-3, 2.5e-4, 2.5e-4 + 1e-19, 7e-3, math.nan, -math.inf])


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(_POOL, st.floats(-1.0, 1.0)), min_size=1, max_size=16))
def test_median_is_statistics_median_bit_for_bit(values: list[float]) -> None:
    assert _bits(median(values)) == _bits(statistics.median(values)), values


class _PlainTest:
    """The CUSUM update as it was before the speed work (max/min calls, slice trim)."""

    def __init__(self) -> None:
        self.last_r: float | None = None
        self.last_t: int | None = None
        self.var = 0.0
        self.n = 0
        self.s_pos = 0.0
        self.s_neg = 0.0
        self.run: list[tuple[int, float]] = []

    def update(self, t_ns: int, r: float, floor_s: float, allow_rate: float, k: float,
               clip: float) -> bool:
        if self.last_r is None or self.last_t is None:
            self.last_r, self.last_t = r, t_ns
            self.run = [(t_ns, r)]
            return False
        d = r - self.last_r
        dt_s = max(0.0, (t_ns - self.last_t) / 1e9)
        self.last_r, self.last_t = r, t_ns
        sigma = max(math.sqrt(self.var) if self.n else 0.0, math.sqrt(2) * floor_s)
        z = d / sigma
        zc = max(-clip, min(clip, z))
        self.var += max(NOISE_GAIN, 1.0 / (self.n + 1)) * ((zc * sigma) ** 2 - self.var)
        self.n += 1
        if self.n < WARMUP:
            self.run = [(t_ns, r)]
            return False
        a = allow_rate * dt_s / sigma
        self.s_pos = max(0.0, self.s_pos + min(clip, z - a) - k)
        self.s_neg = max(0.0, self.s_neg + min(clip, -z - a) - k)
        if self.s_pos == 0.0 and self.s_neg == 0.0:
            self.run = [(t_ns, r)]
            return False
        self.run.append((t_ns, r))
        del self.run[:-RUN_POINTS]
        return True


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([0.0, 2e-6, 1e-4]), st.booleans())
def test_cusum_update_equals_the_plain_form(seed: int, push_s_per_s: float, steps: bool) -> None:
    """Noise, a push (long runs: the run trim), steps and clock jitter (dt <= 0 included)."""
    rng = random.Random(seed)
    fast, plain = _Test(), _PlainTest()
    t = 0
    r = 0.0
    for i in range(400):
        t += rng.choice([16 * NS, 16 * NS, 1 * NS, 0, -NS // 2])
        r = push_s_per_s * t / 1e9 + rng.gauss(0, 1e-4)
        if steps and rng.random() < 0.02:
            r += rng.choice([-1.0, 1.0]) * 0.05
        args = (t, r, rng.choice([1e-4, 5e-5, 0.0]) or 1e-4, rng.choice([0.0, 1e-6]), 0.5, 4.0)
        assert fast.update(*args) == plain.update(*args), i
        for name in ("last_r", "last_t", "var", "n", "s_pos", "s_neg", "run"):
            assert repr(getattr(fast, name)) == repr(getattr(plain, name)), (i, name)
        assert _bits(fast.score) == _bits(max(plain.s_pos, plain.s_neg))


def _plain_wander_ppm(ho: Holdover) -> float:
    b = ho._block_freqs
    if len(b) < 2:
        return ho.prior_wander_ppm
    diffs = [(b[i + 1] - b[i]) ** 2 for i in range(len(b) - 1)]
    return max(WANDER_FLOOR_PPM, math.sqrt(0.5 * sum(diffs) / len(diffs)))


def _plain_residual(ho: Holdover, rx_ns: int, raw_ns: int,
                    offset_s: float) -> tuple[float, float, float] | None:
    """The residual as it was: through predict(), the per-call scale, wander and freq sigma."""
    f = ho._fit
    if f is None or ho._raw0 is None:
        return None
    draw = raw_ns - ho._raw0
    x = draw / 1e9
    scale = math.sqrt(max(1.0, f.chi2)) * _WEIGHT_UNIT_S
    fit_sigma = scale * math.sqrt(1.0 / f.w + (x - f.x_mean_s) ** 2 / f.sxx)
    age_x = max(0.0, x - f.x_mean_s)
    wander_sigma = _plain_wander_ppm(ho) * 1e-6 * age_x * math.sqrt(age_x / ho.block_s) * 2 / 3
    ref_ns = ho._ref0 + draw + round((f.intercept_s + f.slope * x) * 1e9)
    sigma_s = math.hypot(fit_sigma, wander_sigma)
    res_s = (rx_ns - ref_ns) / 1e9 + offset_s
    age_s = max(0.0, (raw_ns - (ho._raw0 or raw_ns)) / 1e9 - f.x_mean_s)
    wander = _plain_wander_ppm(ho) * max(1.0, math.sqrt(age_s / ho.block_s))
    freq_sigma = math.sqrt(max(1.0, f.chi2) / f.sxx) * _WEIGHT_UNIT_S * 1e6
    return res_s, sigma_s, math.hypot(freq_sigma, wander) * 1e-6


def test_holdover_residual_equals_the_plain_form() -> None:
    """A wandering oscillator over several blocks (measured wander changes at each block), the
    residual asked at, before and far after the learned points."""
    ho = Holdover(block_s=60.0)
    rng = random.Random(5)
    raw, checked = RAW0, 0
    for i in range(900):
        f_ppm = 20.0 + 0.5 * math.sin(i / 97)
        raw += round(NS * (1 + f_ppm * 1e-6))
        ho.learn("pps0", raw, T0 + (i + 1) * NS + round(rng.gauss(0, 2e-6) * NS), 2e-6)
        assert _bits(ho.wander_ppm) == _bits(_plain_wander_ppm(ho))
        for ahead_s in (0, -30, 1, 3600):
            q_raw = raw + ahead_s * NS
            rx = T0 + (i + 1 + ahead_s) * NS + 250_000
            off = -250e-6 + rng.gauss(0, 1e-6)
            got = ho.residual(rx, q_raw, off)
            want = _plain_residual(ho, rx, q_raw, off)
            if got is None or want is None:
                assert got is None and want is None
                continue
            assert [_bits(v) for v in (got.residual_s, got.sigma_s, got.rate_sigma_s_per_s)] \
                == [_bits(v) for v in want], (i, ahead_s)
            p = ho.predict(q_raw)
            assert p is not None and _bits(p.sigma_s) == _bits(want[1])
            checked += 1
    assert ho.wander_measured and checked > 3000


def _plain_reference(ballot: object, flagged: dict[str, int], group: str,
                     agreeing: tuple[str, ...]) -> tuple[float | None, tuple[str, ...]]:
    """`DriftDetector._reference` as it was: a pass over the agreeing groups, their medians'
    median."""
    meds: list[float] = []
    used: list[str] = []
    for g in agreeing:
        if g == group or flagged.get(g):
            continue
        m = ballot.group_median(g)  # type: ignore[attr-defined]
        if m is not None:
            meds.append(m)
            used.append(g)
    return (median(meds) if meds else None), tuple(used)


# Offsets with ties, both zeros and a NaN: where the sorted list's pick would differ.
_OFFSET = st.one_of(st.sampled_from([0.0, -0.0, 1e-3, -1e-3, 2.5e-4, 2.5e-4 + 1e-19, math.nan]),
                    st.floats(-1e-2, 1e-2))
_REF_OP = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 40), _OFFSET),
    st.tuples(st.just("drop"), st.integers(0, 40)),
    st.tuples(st.just("flag"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("ask"), st.integers(0, 9)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_REF_OP, min_size=1, max_size=120), st.integers(2, 10))
def test_reference_kept_is_the_plain_pass(ops: list[tuple], n_groups: int) -> None:  # type: ignore[type-arg]
    """The reference kept between votes (`_Reference`: the groups' medians sorted, updated from
    the ballot's log) is the plain pass over the agreeing groups, bit for bit, for every source's
    group, as members change, groups come and go and groups are flagged."""
    from timewatch.engine.core import Context
    from timewatch.engine.detectors.drift import DriftDetector
    from timewatch.engine.params import Detect
    from timewatch.records import Header

    ctx = Context(Header("h", 0, {}), Detect())
    dd = DriftDetector(ctx)
    ballot = ctx.ballot
    now = 10**18
    for op in ops:
        if op[0] == "put":
            i = op[1]
            ballot.put(f"s{i:02d}", i, f"g{i % n_groups}", op[2], 1.0, now, 0)
        elif op[0] == "drop":
            ballot.drop(f"s{op[1]:02d}")
        elif op[0] == "flag":
            g = f"g{op[1] % n_groups}"
            dd._flagged[g] = max(0, dd._flagged.get(g, 0) + (1 if op[2] else -1))
            dd._flagged_ver += 1
        else:
            now += 10**9
            c = ballot.vote(now)
            for k in range(n_groups) if op[1] % 2 else [op[1] % n_groups]:
                group = f"g{k}"
                got = dd._reference(group, c)
                want = _plain_reference(ballot, dd._flagged, group, c.agreeing_groups) \
                    if c.quorum else (None, ())
                assert got[1] == want[1]
                assert (got[0] is None) == (want[0] is None)
                if got[0] is not None and want[0] is not None:
                    assert _bits(got[0]) == _bits(want[0]), (got, want)


def test_reference_kept_reads_few_groups_on_many() -> None:
    """100 groups of 10, one member re-estimated per vote: the reference is the plain pass's,
    and it is kept (not built again) from vote to vote."""
    from timewatch.engine.core import Context
    from timewatch.engine.detectors.drift import DriftDetector
    from timewatch.engine.params import Detect
    from timewatch.records import Header

    rnd = random.Random(5)
    ctx = Context(Header("h", 0, {}), Detect())
    dd = DriftDetector(ctx)
    ballot = ctx.ballot
    now = 10**18
    for i in range(1000):
        ballot.put(f"s{i:04d}", i, f"g{i % 100:03d}", rnd.gauss(0, 1e-4), 2e-3, now, 0)
    first = None
    for _ in range(300):
        now += 10**8
        i = rnd.randrange(1000)
        ballot.put(f"s{i:04d}", i, f"g{i % 100:03d}", rnd.gauss(0, 1e-4), 2e-3, now, 0)
        c = ballot.vote(now)
        group = f"g{rnd.randrange(100):03d}"
        got = dd._reference(group, c)
        want = _plain_reference(ballot, dd._flagged, group, c.agreeing_groups)
        assert got[1] == want[1] and got[0] is not None and want[0] is not None
        assert _bits(got[0]) == _bits(want[0])
        first = first or dd._ref
        assert dd._ref is first  # (kept: never built again)


def test_reference_kept_with_signed_zeros_is_the_plain_pass() -> None:
    """Groups' medians of 0.0 and -0.0 in the middle: which one the plain pass's stable sort
    puts there depends on the groups' order, not kept in the sorted list; the list decides."""
    from timewatch.engine.core import Context
    from timewatch.engine.detectors.drift import DriftDetector
    from timewatch.engine.params import Detect
    from timewatch.records import Header

    ctx = Context(Header("h", 0, {}), Detect())
    dd = DriftDetector(ctx)
    ballot = ctx.ballot
    now = 10**18
    for i, off in enumerate([5e-3, -1e-3, 0.0, -0.0, 1e-3, 2e-3]):
        ballot.put(f"s{i}", i, f"g{i}", off, 1.0, now, 0)
    for _ in range(3):
        now += 10**9
        ballot.put("s2", 2, "g2", 0.0, 1.0, now, 0)  # (the same zero again: it moves in the list)
        c = ballot.vote(now)
        got = dd._reference("g0", c)
        want = _plain_reference(ballot, dd._flagged, "g0", c.agreeing_groups)
        assert got[0] is not None and want[0] is not None
        assert _bits(got[0]) == _bits(want[0]) == _bits(-0.0)
