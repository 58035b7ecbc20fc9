"""The live simulators that a scenario's live action changes (`timewatch demo --scenario`).

`World` holds the demo's running simulators: its NTP servers (by id, `sim-a` .. `sim-d`), the
GNSS receiver's sentence generator and its PPS. A live action is a function of the `World`,
called once when the attack starts; the receiver's fault functions take the UTC second (ns), so
an action that starts a fault "from now on" reads the clock once (`from_now`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .nmeagen import NmeaSim
from .noise import NS
from .ntpserver import Behaviour, SimNtpServer
from .pps import PpsSim


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


def from_now(fn: Callable[[int], Any], off: Any) -> Callable[[int], Any]:
    """A fault function of the UTC second that answers fn(s) from now on, `off` before."""
    t0 = now_ns()
    return lambda s: fn(s) if s >= t0 else off


@dataclass
class World:
    """The simulators a stage may change. GNSS fault functions take the UTC second (ns)."""

    servers: dict[str, SimNtpServer]
    nmea: NmeaSim
    pps: PpsSim

    def b(self, sid: str) -> Behaviour:
        return self.servers[sid].behaviour

    def gnss_error(self, fn: Callable[[int], int]) -> None:
        """The receiver's time error: its labels and its pulses move together."""
        self.nmea.gnss_error_ns = fn
        self.pps.gnss_error_ns = fn

    def push(self, rate_s_per_s: float) -> None:
        t0 = now_ns()
        self.gnss_error(lambda s: round(rate_s_per_s * (s - t0)) if s >= t0 else 0)

    def step(self, step_s: float) -> None:
        t0 = now_ns()
        self.gnss_error(lambda s: round(step_s * NS) if s >= t0 else 0)

    def drift(self, sid: str, rate_ppm: float) -> None:
        """The server's clock runs away at rate_ppm from now on (Behaviour.drift_ppm counts
        from the server's start: take out what it would already have accumulated)."""
        srv, b = self.servers[sid], self.b(sid)
        b.offset_s -= rate_ppm * 1e-6 * srv.elapsed_s()
        b.drift_ppm = rate_ppm

    def honest(self) -> None:
        """Every simulator back to normal (recovery)."""
        for sid in self.servers:
            self.servers[sid].behaviour = Behaviour()
        self.gnss_error(lambda s: 0)


Action = Callable[[World], None]


def behave(sid: str, **kw: Any) -> Action:
    """An action: server `sid`'s `Behaviour` fields set to `kw`."""
    def act(w: World) -> None:
        for k, v in kw.items():
            setattr(w.b(sid), k, v)
    return act


def receiver_fault(attr: str, on: Any, off: Any) -> Action:
    """An action: the receiver's fault function `attr` answers `on` from now on, `off` before."""
    def act(w: World) -> None:
        setattr(w.nmea, attr, from_now(lambda s: on, off))
    return act
