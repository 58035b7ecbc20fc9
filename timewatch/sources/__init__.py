"""Readers: they own hardware and sockets, stamp what arrives, and hand over observations.

A reader never decides whether a source is good. Interface: a reader is built from its
`SourceConfig` and an `emit` callback, and its `run()` coroutine runs until cancelled. Blocking
device I/O runs in a thread (`asyncio.to_thread`); `emit` is thread-safe (the runner passes a
callback that puts into its queue with `loop.call_soon_threadsafe`).

Which reader serves a kind is the kind's registration (`timewatch.kinds`, "module:Class").
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..config import SourceConfig
from ..records import Observation

Emit = Callable[[Observation], None]


class Reader(Protocol):
    def __init__(self, cfg: SourceConfig, emit: Emit) -> None: ...

    async def run(self) -> None:
        """Read until cancelled; reconnect on failure; never raise for a device or network error."""


class BlockingReader:
    """Base of readers whose device I/O blocks: `run_blocking()` runs in a thread until `stop`
    is set (cancelling `run()` sets it, so the thread ends with the runner)."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    async def run(self) -> None:
        try:
            await asyncio.to_thread(self.run_blocking)
        finally:
            self.stop.set()

    def run_blocking(self) -> None:
        raise NotImplementedError


def now_pair() -> tuple[int, int]:
    """(CLOCK_REALTIME, CLOCK_MONOTONIC_RAW) in ns, read back to back (for rx_ns and raw_ns)."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME), time.clock_gettime_ns(
        time.CLOCK_MONOTONIC_RAW)

