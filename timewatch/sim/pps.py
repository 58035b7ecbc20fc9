"""Simulated PPS edges: what the PPS reader would hand over for a receiver's pulse train.

One call per UTC second (`PpsSim.pulse`) gives the `Pps` observations of that second: none (a
missing pulse), one, or two (a doubled pulse). Each edge is timed on true time and read through the
host's clocks (`sim.noise.HostClock`): the kernel stamps the edge with CLOCK_REALTIME after an
interrupt latency, and the reader derives `raw_ns` from a realtime/raw pair read a little later,
exactly as sources/pps.py does (raw = raw_now - (real_now - assert)).

Noise (docs/threats.md, "at least this much"): 1.5 us (1 sigma) of interrupt jitter; 1% of edges
5-30 us late. The host crystal (+-100 ppm, diurnal swing, 0.02 ppm/min random walk) and the
NTP-disciplined realtime clock come from `HostClock`.

Faults are functions of the second's true start (ns), so a scenario scripts them freely:
- `missing(second_ns) -> bool`: no pulse that second;
- `doubled(second_ns) -> float | None`: an extra edge this many seconds after the real one;
- `gnss_error_ns(second_ns) -> int`: the receiver's time error (spoofing: a step or a push); its
  pulse for second S fires at true time S - error (labels move with it: use the same function);
- `shift_ns(second_ns) -> int`: the pulse output itself shifted (a 250 ms phase fault).
Seedable: the same `random.Random` seed gives the same edges.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..records import Pps
from .noise import NS, HostClock

# docs/threats.md: "1.5 us (1 sigma) of interrupt jitter".
JITTER_S = 1.5e-6
# Mean interrupt latency of a GPIO PPS on a Pi (a few us); the jitter is around it.
BASE_LATENCY_S = 5e-6
# docs/threats.md: "1% of edges 5-30 us late".
OUTLIER_PROBABILITY = 0.01
OUTLIER_S = (5e-6, 30e-6)
# The reader wakes up 20-200 us after the edge and reads its realtime/raw pair then.
FETCH_DELAY_S = (20e-6, 200e-6)


def _never(_: int) -> bool:
    return False


def _none(_: int) -> float | None:
    return None


def _zero(_: int) -> int:
    return 0


class PpsSim:
    """A receiver's pulse train read through a simulated host. Call `pulse` for each second."""

    def __init__(self, rng: random.Random, host: HostClock, src: str = "pps0", seq0: int = 1,
                 jitter_s: float = JITTER_S, outlier_probability: float = OUTLIER_PROBABILITY):
        self.rng = rng
        self.host = host
        self.src = src
        self.seq = seq0 - 1  # the kernel's assert sequence: counts edges it saw
        self.jitter_s = jitter_s
        self.outlier_probability = outlier_probability
        self.missing: Callable[[int], bool] = _never
        self.doubled: Callable[[int], float | None] = _none
        self.gnss_error_ns: Callable[[int], int] = _zero
        self.shift_ns: Callable[[int], int] = _zero

    def second_true_ns(self, second_ns: int) -> int:
        """True time at which the receiver believes UTC second `second_ns` starts (its labels
        follow this; a spoofed receiver is off by gnss_error_ns)."""
        return second_ns - self.gnss_error_ns(second_ns)

    def edge_true_ns(self, second_ns: int) -> int:
        """True time of the receiver's pulse for UTC second `second_ns` (before any latency)."""
        return self.second_true_ns(second_ns) + self.shift_ns(second_ns)

    def pulse(self, second_ns: int) -> list[Pps]:
        """The observations of the pulse for UTC second `second_ns` (0, 1 or 2 edges).

        Draws the same number of random numbers whatever the faults, so faults never reshuffle
        the noise of the other seconds.
        """
        r = self.rng
        jit = r.gauss(0.0, self.jitter_s)
        late = r.random() < self.outlier_probability
        extra = r.uniform(*OUTLIER_S)
        fetch = r.uniform(*FETCH_DELAY_S)
        fetch2 = r.uniform(*FETCH_DELAY_S)
        jit2 = r.gauss(0.0, self.jitter_s)
        if self.missing(second_ns):
            return []
        t = self.edge_true_ns(second_ns)
        latency = max(0.0, BASE_LATENCY_S + jit) + (extra if late else 0.0)
        out = [self._read(t + round(latency * NS), fetch)]
        dbl = self.doubled(second_ns)
        if dbl is not None:
            t2 = t + round(dbl * NS) + round(max(0.0, BASE_LATENCY_S + jit2) * NS)
            out.append(self._read(t2, fetch2))
        return out

    def _read(self, assert_true_ns: int, fetch_s: float) -> Pps:
        h = self.host
        assert_ns = h.realtime_ns(assert_true_ns)
        now_true = assert_true_ns + round(fetch_s * NS)
        real_now, raw_now = h.realtime_ns(now_true), h.raw_ns(now_true)
        self.seq += 1
        return Pps(self.src, assert_ns, self.seq, raw_now - (real_now - assert_ns))
