"""A source kind built outside the package, as a new kind would be: its record type, its reader,
its tracker, its doctor check and one registration. Importing this module registers `toy`.

A toy source is a clock that reports its own offset from host realtime (`offset_us`, a key of
its own) every `poll_s`, in a record type of its own (`toy`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import msgspec

from timewatch.engine.core import Context, Estimate, Tracker
from timewatch.kinds import Key, Kind, register
from timewatch.records import Observation, SourceInfo
from timewatch.sources import Emit, now_pair

if TYPE_CHECKING:
    from timewatch.config import SourceConfig
    from timewatch.doctor import Check

BOUND_S = 0.001  # the error bound a toy claims


class Toy(msgspec.Struct, frozen=True):
    """The toy's record: its offset (ns) from host realtime at `rx_ns`."""

    src: str
    rx_ns: int
    offset_ns: int
    station: str
    raw_ns: int | None = None
    type: ClassVar[str] = "toy"


class ToyReader:
    """Emits one `Toy` record every `poll_s` with the configured offset, until cancelled."""

    def __init__(self, cfg: SourceConfig, emit: Emit) -> None:
        self.cfg = cfg
        self.emit = emit
        self.sent = 0

    async def run(self) -> None:
        offset_ns = round(self.cfg.options["offset_us"] * 1000)
        while True:
            rx, raw = now_pair()
            self.emit(Toy(self.cfg.id, rx, offset_ns, self.cfg.options["station"], raw))
            self.sent += 1
            await asyncio.sleep(self.cfg.poll_s)


class ToyTracker(Tracker):
    """Each record is an estimate: the offset it reports, +- BOUND_S."""

    kind = "toy"

    def __init__(self, src: str, info: SourceInfo, ctx: Context) -> None:
        super().__init__(src, info, ctx)
        self.records = 0

    def stale_limit_s(self) -> float:
        return 10 * (self.info.poll_s or 1.0)

    def feed(self, obs: Observation) -> None:
        if not isinstance(obs, Toy):
            return
        self.records += 1
        off = obs.offset_ns / 1e9
        self.last_usable_ns = obs.rx_ns
        self.estimate_ = Estimate(off, BOUND_S, obs.rx_ns)
        self.ctx.emit(self.src, obs.rx_ns, off, BOUND_S)


def describe(s: SourceConfig) -> str:
    return f"toy clock at station {s.options['station']}, {s.options['offset_us']:g} us off"


def doctor(s: SourceConfig) -> Iterator[Check]:
    from timewatch.doctor import Check

    yield Check(True, f"{s.id}: toy station {s.options['station']}", "always there")


KIND = register(Kind(
    name="toy",
    reader=f"{__name__}:ToyReader",
    tracker=f"{__name__}:ToyTracker",
    keys={"station": Key(str, required=True),
          "offset_us": Key(float, 0.0, lo=-1e6, hi=1e6),
          "poll_s": Key(float, 0.1, lo=0.01, hi=10)},
    describe=describe,
    doctor=f"{__name__}:doctor",
    records=(Toy,),
))
