"""The holdover clock: learns the raw oscillator, measures its wander, and judges residuals."""

from __future__ import annotations

import math
import random

from timewatch.engine.core import Context
from timewatch.engine.holdover import Holdover, HoldoverLearner
from timewatch.engine.params import Detect
from timewatch.engine.vote import Consensus
from timewatch.records import Header, Tick

NS = 1_000_000_000
T0 = 1_764_160_000 * NS
RAW0 = 86_400 * NS


def feed_line(ho: Holdover, seconds: int, freq_ppm: float, noise_s: float, seed: int = 1,
              freq_at=None) -> list[tuple[int, int]]:
    """One point a second: raw runs fast by freq_ppm (or freq_at(i)); reference time is true."""
    rng = random.Random(seed)
    raw = RAW0
    pts = []
    for i in range(seconds):
        f = freq_at(i) if freq_at else freq_ppm
        raw += round(NS * (1 + f * 1e-6))
        ref = T0 + (i + 1) * NS + round(rng.gauss(0, noise_s) * NS)
        ho.learn("pps0", raw, ref, noise_s)
        pts.append((raw, ref))
    return pts


def test_learns_a_fixed_frequency_and_predicts_within_microseconds() -> None:
    ho = Holdover()
    assert not ho.ready and ho.freq_ppm is None and ho.predict(RAW0) is None
    pts = feed_line(ho, 900, 37.5, 1.5e-6)
    assert ho.ready
    assert ho.freq_ppm is not None and abs(ho.freq_ppm - 37.5) < 0.005
    assert ho.freq_sigma_ppm is not None and ho.freq_sigma_ppm < 0.01
    raw, ref = pts[-1]
    p = ho.predict(raw + round(10 * NS * (1 + 37.5e-6)))  # 10 s ahead
    assert p is not None and abs(p.ref_ns - (ref + 10 * NS)) < 3_000


def test_outliers_and_distrusted_sources_are_not_learned() -> None:
    ho = Holdover()
    pts = feed_line(ho, 300, -12.0, 1e-6)
    raw, ref = pts[-1]
    n = ho.learned
    assert not ho.learn("pps0", raw + NS, ref + NS + 500_000, 1e-6)  # 0.5 ms off the line
    assert ho.rejected == 1 and ho.learned == n
    ho.distrust("pps0")
    assert not ho.learn("pps0", raw + 2 * NS, ref + 2 * NS, 1e-6)
    ho.trust("pps0")
    assert ho.learn("pps0", raw + round(2 * NS * (1 - 12e-6)), ref + 2 * NS, 1e-6)


def test_wander_is_measured_from_block_frequencies() -> None:
    steady = Holdover()
    feed_line(steady, 3 * 600 + 10, 20.0, 1.5e-6)
    assert steady.wander_measured and steady.wander_ppm < 0.01

    wandering = Holdover()
    # 0.1 ppm per 10 min, as docs/threats.md's oscillator: block frequencies 0.1 ppm apart.
    feed_line(wandering, 5 * 600 + 10, 0.0, 1.5e-6, freq_at=lambda i: 20.0 + 0.1 * i / 600)
    assert wandering.wander_measured
    assert 0.05 < wandering.wander_ppm < 0.1  # Allan deviation of a drift d per block: d/sqrt(2)
    assert abs(wandering.freq_ppm - (20.0 + 0.1 * 5)) < 0.1


def test_residual_separates_a_push_from_the_oscillator() -> None:
    ho = Holdover()
    pts = feed_line(ho, 1200, 55.0, 1.5e-6)
    raw_end, ref_end = pts[-1]
    honest, pushed = [], []
    for k in range(1, 121):  # the next two minutes
        raw = raw_end + round(k * NS * (1 + 55e-6))
        rx = ref_end + k * NS + 300_000  # host realtime 0.3 ms ahead of the truth
        honest.append(ho.residual(rx, raw, -300e-6))
        pushed.append(ho.residual(rx, raw, -300e-6 + 1e-6 * k))  # 1 us/s push
    assert all(r is not None for r in honest + pushed)
    last_h, last_p = honest[-1], pushed[-1]
    assert last_h is not None and last_p is not None
    assert abs(last_h.residual_s) < 4 * last_h.sigma_s + 1e-6
    # The push's rate is far beyond what the oscillator's wander explains.
    rate = (last_p.residual_s - pushed[0].residual_s) / 119  # type: ignore[union-attr]
    assert abs(rate - 1e-6) < 0.1e-6
    assert rate > 5 * last_p.rate_sigma_s_per_s
    assert 0 < last_p.rate_sigma_s_per_s < 0.5e-6


def test_prediction_sigma_grows_with_age() -> None:
    ho = Holdover()
    pts = feed_line(ho, 600, 3.0, 1.5e-6)
    raw = pts[-1][0]
    near = ho.predict(raw + NS)
    far = ho.predict(raw + 3600 * NS)
    assert near is not None and far is not None and far.sigma_s > 10 * near.sigma_s


def test_learner_uses_the_consensus_when_there_is_no_pps() -> None:
    ctx = Context(Header("t", T0, {}), Detect())
    learner = HoldoverLearner(ctx)
    ho = ctx.holdover
    assert isinstance(ho, Holdover) and learner.holdover is ho
    rng = random.Random(4)
    freq = -41.0
    for i in range(3600):  # a vote a second, NTP-grade noise (0.3 ms)
        t_true = T0 + i * NS
        raw = RAW0 + round(i * NS * (1 + freq * 1e-6))
        err_host = 200e-6 * math.sin(i / 900)  # realtime disciplined, wandering 0.2 ms
        rx = t_true + round(err_host * NS)
        learner.on_observation(Tick(rx, raw))
        off = -err_host + rng.gauss(0, 0.3e-3)
        learner.on_vote(Consensus(True, 3, 3, off - 1e-3, off + 1e-3, off))
    assert ho.ready and ho.freq_ppm is not None and abs(ho.freq_ppm - freq) < 1.0
    # No quorum: nothing is learned.
    n = ho.learned
    learner.on_observation(Tick(T0 + 3600 * NS, RAW0 + 3600 * NS))
    learner.on_vote(Consensus(False, 3, 1))
    assert ho.learned == n


def test_a_raw_ns_no_oscillator_can_give_is_refused_before_the_fit() -> None:
    """Issue 18: a raw_ns of 1.6e26 among the first points bent the fit to a slope of -1 (the
    frequency divided by zero). Points whose raw and reference times part faster than any
    crystal (1000 ppm, plus 1 s of phase) are refused; 900 ppm off is still a crystal."""
    ho = Holdover()
    feed_line(ho, 2, 0.0, 1e-6)
    assert not ho.learn("pps0", 160_000_000_000_000_000_000_000_000, T0 + 3 * NS, 1e-6)
    assert not ho.learn("pps0", RAW0 + 10**18, T0 + 4 * NS, 1e-6)
    assert ho.rejected == 2
    assert ho.learn("pps0", RAW0 + round(100 * NS * (1 + 900e-6)), T0 + 100 * NS, 1e-6)
    feed_line(ho, 60, 0.0, 1e-6)
    assert ho.ready and ho.freq_ppm is not None and math.isfinite(ho.freq_ppm)
