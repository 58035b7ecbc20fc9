"""One back-off for every reconnect and retry loop (serial, PPS, gpsd, InfluxDB, webhooks).

Exponential with jitter: the n-th delay in a row is `min(max_s, first_s * 2**(n-1))` times a
random factor in [1 - jitter, 1] ("equal jitter" for jitter = 0.5: at least half the step, so a
dead peer is never hammered, and a fleet of monitors restarted together spreads out). `reset()`
after a success starts again from `first_s`.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first_s: float, max_s: float, *, jitter: float = 0.5,
                 rng: random.Random | None = None):
        if not 0 < first_s <= max_s:
            raise ValueError(f"back-off: need 0 < first_s <= max_s, got {first_s}, {max_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"back-off: jitter must be in [0, 1), got {jitter}")
        self.first_s = first_s
        self.max_s = max_s
        self.jitter = jitter
        self.failures = 0  # failures since the last reset (the attempt number of the next retry)
        self._rng = rng or random.Random()

    def step_s(self) -> float:
        """The next delay before jitter (what a log line may announce as an upper bound)."""
        return min(self.max_s, self.first_s * 2 ** min(self.failures, 60))

    def next(self) -> float:
        """Count a failure; the delay before the next attempt."""
        step = self.step_s()
        self.failures += 1
        return step * self._rng.uniform(1.0 - self.jitter, 1.0)

    def reset(self) -> None:
        """A success: the next failure waits `first_s` again."""
        self.failures = 0
