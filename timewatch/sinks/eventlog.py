"""The event log: every alert and clear as one JSON line (docs/events.md) in state_dir/events.jsonl.

The line is exactly `Event.to_dict()` as JSON, flushed to the file per event, so `tail -f` and a
log shipper see an event as soon as the engine emits it. When the file cannot be written the
error names the path, the lines stay queued (bounded, counted) and are appended on the next
`handle` once the file is writable again.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import TextIO

from ..config import Config
from ..records import Event, Output
from . import to_json

log = logging.getLogger(__name__)

FILENAME = "events.jsonl"  # under state_dir
# Lines kept in memory while the file cannot be written: events are rare (a handful an hour),
# so this is days of them.
MAX_PENDING = 10_000
# Seconds between attempts to reopen a file that failed.
RETRY_S = 5.0


class EventLogSink:
    name = "eventlog"

    def __init__(self, cfg: Config, *, retry_s: float = RETRY_S):
        self.path = Path(cfg.state_dir) / FILENAME
        self.retry_s = retry_s
        self.written = 0
        self.dropped = 0
        self.failing: str | None = None
        self._pending: collections.deque[str] = collections.deque()
        self._f: TextIO | None = None
        self._next_try = 0.0

    def handle(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Event):
                self._pending.append(to_json(o.to_dict()) + "\n")
        excess = len(self._pending) - MAX_PENDING
        if excess > 0:
            for _ in range(excess):
                self._pending.popleft()
            self.dropped += excess
            log.warning("event log %s: cannot be written and %d events are waiting: dropped the "
                        "%d oldest (%d dropped so far)", self.path, MAX_PENDING, excess,
                        self.dropped)
        if self._pending:
            self._drain()

    def _drain(self) -> None:
        if self.failing is not None and time.monotonic() < self._next_try:
            return
        try:
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = self._open()
            while self._pending:
                self._f.write(self._pending[0])
                self._f.flush()
                self._pending.popleft()
                self.written += 1
        except OSError as e:
            self._close_file()
            if self.failing is None:
                log.error("event log %s cannot be written: %s; %d events kept in memory and "
                          "retried", self.path, e.strerror or e, len(self._pending))
            self.failing = str(e)
            self._next_try = time.monotonic() + self.retry_s
            return
        if self.failing is not None:
            log.warning("event log %s: writable again; queued events written", self.path)
            self.failing = None

    def _open(self) -> TextIO:
        f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open until close()
        try:
            # A write cut short (disk full, kill) leaves a partial line: end it, so the next
            # event starts on a line of its own (readers skip the broken one).
            if f.tell() > 0:
                with open(self.path, "rb") as r:
                    r.seek(-1, 2)
                    if r.read(1) != b"\n":
                        f.write("\n")
        except OSError:
            f.close()
            raise
        return f

    def _close_file(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None

    def close(self) -> None:
        if self._pending:
            self._next_try = 0.0  # one last attempt, whatever the retry timer says
            self._drain()
        if self._pending:
            log.error("event log %s: %d events could not be written and are lost",
                      self.path, len(self._pending))
        self._close_file()
