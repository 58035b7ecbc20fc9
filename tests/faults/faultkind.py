"""Faults to inject into a real `timewatch run`, built outside the package the way a new kind or
sink would be: importing this module registers the source kind `faulty`.

- A `faulty` source emits a `marked` record every `poll_s`; every `poison_every`-th record is
  marked poison, and its tracker raises on it (an engine bug on one record).
- With `block_at = N` its reader blocks the event loop (a plain `time.sleep`) for `block_s`
  before its N-th record: a hung loop.
- `HangingSink` never returns from `handle` (nor from `close`); `RaisingSink` raises on every
  call. They are built by the package's own sink constructor (`sinks._make`, "module:Class").

`python -m tests.faults.harness` runs the real CLI with this module imported.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, ClassVar

import msgspec

from timewatch.engine.core import Context, Estimate, Tracker
from timewatch.kinds import Key, Kind, register
from timewatch.records import Observation, Output, SourceInfo
from timewatch.sources import Emit, now_pair

if TYPE_CHECKING:
    from timewatch.config import Config, SourceConfig

log = logging.getLogger("timewatch.faulty")

BOUND_S = 0.001


class Marked(msgspec.Struct, frozen=True):
    """One record of a faulty source: its sequence number and whether it is poison."""

    src: str
    rx_ns: int
    seq: int
    poison: bool = False
    raw_ns: int | None = None
    type: ClassVar[str] = "marked"


class FaultyReader:
    def __init__(self, cfg: SourceConfig, emit: Emit) -> None:
        self.cfg = cfg
        self.emit = emit

    async def run(self) -> None:
        every = int(self.cfg.options["poison_every"])
        block_at = int(self.cfg.options["block_at"])
        seq = 0
        while True:
            if seq == block_at:
                block_s = self.cfg.options["block_s"]
                log.warning("faulty %s: blocking the event loop for %.1f s", self.cfg.id, block_s)
                time.sleep(block_s)  # the fault: the whole loop stops
                log.warning("faulty %s: the event loop is free again", self.cfg.id)
            rx, raw = now_pair()
            poison = every > 0 and seq % every == every - 1
            self.emit(Marked(self.cfg.id, rx, seq, poison, raw))
            seq += 1
            await asyncio.sleep(self.cfg.poll_s)


class FaultyTracker(Tracker):
    """A clock in step with the host; raises on a poison record (before anything is emitted)."""

    kind = "faulty"

    def __init__(self, src: str, info: SourceInfo, ctx: Context) -> None:
        super().__init__(src, info, ctx)

    def stale_limit_s(self) -> float:
        return 10 * (self.info.poll_s or 1.0)

    def feed(self, obs: Observation) -> None:
        if not isinstance(obs, Marked):
            return
        if obs.poison:
            raise RuntimeError(f"marked record {obs.seq} of {self.src} is poison (a test fault)")
        self.last_usable_ns = obs.rx_ns
        self.estimate_ = Estimate(0.0, BOUND_S, obs.rx_ns)
        self.ctx.emit(self.src, obs.rx_ns, 0.0, BOUND_S)


KIND = register(Kind(
    name="faulty",
    reader=f"{__name__}:FaultyReader",
    tracker=f"{__name__}:FaultyTracker",
    keys={"poll_s": Key(float, 0.2, lo=0.01, hi=10),
          "poison_every": Key(int, 0, lo=0, hi=10**6),
          "block_at": Key(int, -1, lo=-1, hi=10**6),
          "block_s": Key(float, 0.0, lo=0, hi=600)},
    records=(Marked,),
))


class HangingSink:
    """Hangs in `handle` from its first call on, and in `close`: a sink stuck for good."""

    name = "hang"

    def __init__(self, cfg: Config) -> None:
        self._never = threading.Event()

    def handle(self, outputs: list[Output]) -> None:
        log.warning("sink hang: handle() blocks for good")
        self._never.wait()

    def close(self) -> None:
        self._never.wait()


class RaisingSink:
    """Raises on every call."""

    name = "raise"

    def __init__(self, cfg: Config) -> None:
        pass

    def handle(self, outputs: list[Output]) -> None:
        raise RuntimeError(f"a test sink that fails on every batch ({len(outputs)} outputs)")

    def close(self) -> None:
        raise RuntimeError("a test sink that fails to close")
