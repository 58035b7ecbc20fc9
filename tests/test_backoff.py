"""The one back-off of every reconnect and retry loop: exponential, jittered, capped, reset."""

from __future__ import annotations

import random

import pytest

from timewatch.backoff import Backoff


def test_doubles_from_first_to_max_with_jitter_in_the_lower_half_and_resets() -> None:
    b = Backoff(0.5, 10.0, rng=random.Random(1))
    steps = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for step in steps:
        d = b.next()
        assert step * 0.5 <= d <= step, (step, d)
    assert b.failures == len(steps)
    b.reset()
    assert b.failures == 0 and 0.25 <= b.next() <= 0.5


def test_jitter_spreads_the_delays_of_monitors_restarted_together() -> None:
    delays = {round(Backoff(1.0, 60.0, rng=random.Random(seed)).next(), 3) for seed in range(20)}
    assert len(delays) > 10


def test_thousands_of_failures_stay_at_the_cap() -> None:
    b = Backoff(1.0, 60.0, jitter=0.0)
    for _ in range(5000):
        d = b.next()
    assert d == 60.0


@pytest.mark.parametrize("first,most,jitter", [(0, 1, 0.5), (2, 1, 0.5), (1, 2, 1.0), (1, 2, -0.1)])
def test_nonsense_is_refused(first: float, most: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(first, most, jitter=jitter)
