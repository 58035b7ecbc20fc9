"""The event log: every alert and clear as one JSON line (docs/events.md) in state_dir/events.jsonl.

The line is exactly `Event.to_dict()` as JSON, flushed to the file per event, so `tail -f` and a
log shipper see an event as soon as the engine emits it. When the file cannot be written the
error names the path, the lines stay queued (bounded, counted) and are appended on the next
`handle` once the file is writable again.

The file is chained (docs/evidence.md): signed checkpoint lines seal it when it is opened, every
`checkpoint_records` events or `checkpoint_s` seconds, and when the monitor stops. A monitor that
starts again reads the file back, checks it and continues its chain; a file moved away (log
rotation) is sealed and a new one started that names it. Each event's place in the chain (the
file's SHA-256 through its line) is handed to the store (`Evidence.note_event`).
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..config import Config
from ..evidence import ChainWriter, Evidence, EvidenceError, scan
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
        self.evidence = Evidence.for_config(cfg)
        self.written = 0
        self.dropped = 0
        self.failing: str | None = None
        self._pending: collections.deque[tuple[str, tuple[str, str]]] = collections.deque()
        self._f: TextIO | None = None
        self._chain: ChainWriter | None = None
        self._next_try = 0.0

    def handle(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Event):
                self._pending.append((to_json(o.to_dict()) + "\n", (o.id, o.type)))
        excess = len(self._pending) - MAX_PENDING
        if excess > 0:
            for _ in range(excess):
                self._pending.popleft()
            self.dropped += excess
            log.warning("event log %s: cannot be written and %d events are waiting: dropped the "
                        "%d oldest (%d dropped so far)", self.path, MAX_PENDING, excess,
                        self.dropped)
        if self._pending or (self._chain is not None and self._chain.due()):
            self._drain()

    def _drain(self) -> None:
        if self.failing is not None and time.monotonic() < self._next_try:
            return
        try:
            if self._f is not None and self._moved():
                self._seal_and_close()  # rotated away: the old file gets its final checkpoint
            if self._f is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._open()
            f, chain = self._f, self._chain
            assert f is not None and chain is not None
            while self._pending:
                line, key = self._pending[0]
                f.write(line)
                f.flush()
                chain.add(line)
                self.evidence.note_event(key, chain.digest())
                self._pending.popleft()
                self.written += 1
            chain.tick()
            f.flush()
        except OSError as e:
            # What is on disk is the truth: the next open reads the file back.
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

    def _moved(self) -> bool:
        """The path no longer names the open file (moved by log rotation, or deleted)."""
        assert self._f is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        own = os.fstat(self._f.fileno())
        return (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino)

    def _open(self) -> None:
        f = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - until close()
        try:
            resume = None
            if f.tell() > 0:
                try:
                    resume = scan(self.path)
                except EvidenceError as e:
                    raise OSError(str(e)) from None
                if resume.problems:
                    line, what = resume.problems[0]
                    log.error("event log %s:%d: %s; the chain goes on from the file as it is "
                              "(timewatch verify shows the break)", self.path, line, what)
            chain = ChainWriter(self.evidence, "events", self._write_through(f), resume=resume)
            # A write cut short (disk full, kill) leaves a partial line: end it, so the next
            # line starts on a line of its own (readers skip the broken one).
            if resume is not None and not resume.newline_at_end:
                f.write("\n")
                chain.extend("\n")
            chain.start()
            f.flush()
        except OSError:
            f.close()
            raise
        self._f, self._chain = f, chain

    @staticmethod
    def _write_through(f: TextIO) -> Callable[[str], None]:
        def write(s: str) -> None:
            f.write(s)
            f.flush()
        return write

    def _seal_and_close(self) -> None:
        if self._chain is not None and self._f is not None:
            try:
                self._chain.close()
            except OSError as e:
                log.error("event log %s: cannot write its final checkpoint: %s", self.path,
                          e.strerror or e)
        self._close_file()

    def _close_file(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
            self._chain = None

    def close(self) -> None:
        if self._pending:
            self._next_try = 0.0  # one last attempt, whatever the retry timer says
            self._drain()
        if self._pending:
            log.error("event log %s: %d events could not be written and are lost",
                      self.path, len(self._pending))
        self._seal_and_close()
