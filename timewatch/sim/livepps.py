"""A live PPS source for the demo: `sim.pps.PpsSim` edges handed over in real time.

No PPS device can exist without hardware, so the demo gives its `pps` source this reader instead
of sources/pps.py (through `Runner(readers={source_id: factory})`). It hands over what the real
reader would: one `Pps` per edge, `rx_ns` the (simulated) kernel assert stamp in CLOCK_REALTIME,
`raw_ns` derived from a realtime/raw pair read after the edge, exactly as sources/pps.py does.

True time is this host's CLOCK_REALTIME (as for `sim.receiver.PtyReceiver`): `LiveHostClock`
reads the host's real clocks instead of simulating a crystal. Give the `PpsSim` the same
`gnss_error_ns` function as the receiver's `NmeaSim`, so the pulses and the labels move together
(a spoofed receiver), or script PPS faults (`missing`, `doubled`, `shift_ns`) on the `PpsSim`.
"""

from __future__ import annotations

import logging
import random
import time

from ..config import SourceConfig
from ..sources import BlockingReader, Emit, now_pair
from .noise import NS, HostClock
from .pps import PpsSim
from .receiver import sleep_until_ns

log = logging.getLogger(__name__)

# How long after an edge the reader wakes up and reads it (sources/pps.py blocks in PPS_FETCH
# and returns microseconds after the interrupt; a thread wake-up here takes up to ~1 ms).
FETCH_AFTER_S = 0.002


class LiveHostClock(HostClock):
    """This host's clocks as a `HostClock`: true time is CLOCK_REALTIME, and a raw reading of a
    past instant is derived from a realtime/raw pair read now (no simulated crystal)."""

    def __init__(self) -> None:  # nothing of the simulated crystal is needed
        self.steps = []

    def realtime_ns(self, t_ns: int) -> int:
        return t_ns

    def raw_ns(self, t_ns: int) -> int:
        real_now, raw_now = now_pair()
        return raw_now - (real_now - t_ns)


class LivePps(BlockingReader):
    """A reader (sources/__init__.py interface) whose edges come from a `PpsSim` in real time.

    Build it with `LivePps.factory(sim)` and hand that to `Runner(readers={"pps0": ...})`.
    The `PpsSim`'s `src` is set to the source's id.
    """

    def __init__(self, cfg: SourceConfig, emit: Emit, sim: PpsSim | None = None):
        self.cfg = cfg
        self.emit = emit
        self.sim = sim or PpsSim(random.Random(1), LiveHostClock())
        self.sim.src = cfg.id
        super().__init__()
        self.edges = 0  # observations handed over (tests)

    @staticmethod
    def factory(sim: PpsSim) -> type[LivePps]:
        """A reader class bound to `sim` (what `Runner(readers=...)` expects)."""

        class _Bound(LivePps):
            def __init__(self, cfg: SourceConfig, emit: Emit):
                super().__init__(cfg, emit, sim)

        return _Bound

    def run_blocking(self) -> None:
        now = time.clock_gettime_ns(time.CLOCK_REALTIME)
        second = now - now % NS + NS
        fetch_ns = round(FETCH_AFTER_S * NS)
        log.info("%s: simulated PPS edges in real time", self.cfg.id)
        while not self.stop.is_set():
            # The receiver's pulse for `second` fires when it believes that second starts; a
            # doubled pulse's extra edge comes within the second, a shifted one up to +-0.5 s off.
            edge = self.sim.edge_true_ns(second)
            dbl = self.sim.doubled(second)
            wake = edge + fetch_ns + (round(dbl * NS) if dbl is not None and dbl > 0 else 0)
            if not sleep_until_ns(wake, self.stop):
                return
            for obs in self.sim.pulse(second):
                self.emit(obs)
                self.edges += 1
            second += NS
