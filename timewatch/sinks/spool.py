"""A durable FIFO on disk: what a sink could not deliver yet, and the one loop that delivers it.

SQLite in WAL mode with `synchronous=FULL`: an item `put` is on disk when `put` returns, survives
`kill -9` and power loss, and leaves only when `ack`ed after delivery (at-least-once; receivers
deduplicate by id, so delivery is exactly-once end to end). Disk use is bounded: past
`max_bytes` the oldest items are dropped, counted and reported, never silently.

`SpoolSender` is the delivery loop every spooled sink uses (InfluxDB, each webhook endpoint):
take the oldest items, send them, ack on success, back off (`backoff.Backoff`) on failure.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..backoff import Backoff

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: str | Path, max_bytes: int = 512 * 2**20, name: str = "spool"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.max_bytes = max_bytes
        self.dropped = 0  # items discarded because the bound was reached
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS q (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "key TEXT, body BLOB NOT NULL, size INTEGER NOT NULL)")
        self._bytes = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM q").fetchone()[0]

    def put(self, items: list[tuple[str, bytes]]) -> None:
        """Append (key, body) items durably, in order."""
        if not items:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO q (key, body, size) VALUES (?, ?, ?)",
                                 [(k, b, len(b)) for k, b in items])
            self._db.execute("COMMIT")
            self._bytes += sum(len(b) for _, b in items)
            if self._bytes > self.max_bytes:
                self._trim()

    def _trim(self) -> None:
        n = 0
        while self._bytes > self.max_bytes * 0.9:
            rows = self._db.execute("SELECT seq, size FROM q ORDER BY seq LIMIT 1000").fetchall()
            if not rows:
                break
            cut = 0
            for seq, size in rows:
                self._bytes -= size
                n += 1
                cut = seq
                if self._bytes <= self.max_bytes * 0.9:
                    break
            self._db.execute("DELETE FROM q WHERE seq <= ?", (cut,))
        self.dropped += n
        log.warning("%s: disk bound of %d MB reached: dropped the %d oldest undelivered items "
                    "(%d dropped so far)", self.name, self.max_bytes // 2**20, n, self.dropped)

    def peek(self, n: int) -> list[tuple[int, str, bytes]]:
        """The n oldest items as (seq, key, body), without removing them."""
        with self._lock:
            return self._db.execute("SELECT seq, key, body FROM q ORDER BY seq LIMIT ?",
                                    (n,)).fetchall()

    def ack(self, seqs: list[int]) -> None:
        """Remove delivered items."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            size = 0
            for i in range(0, len(seqs), 500):
                chunk = seqs[i:i + 500]
                marks = ",".join("?" * len(chunk))
                size += self._db.execute(f"SELECT COALESCE(SUM(size), 0) FROM q WHERE seq IN ({marks})",
                                         chunk).fetchone()[0]
                self._db.execute(f"DELETE FROM q WHERE seq IN ({marks})", chunk)
            self._db.execute("COMMIT")
            self._bytes -= size

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM q").fetchone()[0])

    @property
    def size_bytes(self) -> int:
        return int(self._bytes)

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---------------------------------------------------------------------------------------------
# The delivery loop of a spooled sink (InfluxDB, each webhook endpoint)

Row = tuple[int, str, bytes]  # (seq, key, body) as `Spool.peek` returns them


@dataclass(frozen=True, slots=True)
class Sent:
    """What one `send(rows)` did.

    `done`: seqs to remove from the spool (delivered, or refused for good and logged by the
    sink). `error`: nothing more went out and a retry may succeed: back off (`retry_after_s`
    when the receiver asked for a delay). `wait_s`: the batch is not due yet (a burst is being
    gathered): look again after this, or when woken. `stop`: the receiver is gone for good
    (webhook 410): the thread ends, the rest stays spooled."""

    done: list[int] = field(default_factory=list)
    error: str | None = None
    retry_after_s: float | None = None
    wait_s: float = 0.0
    stop: bool = False


class SpoolSender:
    """One thread per spool: take the oldest rows, `send` them, ack what was done, back off on
    failure. Order is kept: nothing overtakes a batch being retried. New data wakes an idle
    sender but never cuts a back-off short; closing does (one last attempt).

    `idle()` (optional) runs when the spool is empty and returns how long to wait for new data.
    Call `start()` once the sink is fully built (the thread calls `send` at once)."""

    def __init__(self, spool: Spool, send: Callable[[list[Row]], Sent], *, name: str,
                 batch: int, backoff: Backoff, idle: Callable[[], float] | None = None,
                 idle_s: float = 60.0, thread_name: str = "spool-sender"):
        self.spool = spool
        self.send = send
        self.name = name
        self.batch = batch
        self.backoff = backoff
        self.idle = idle
        self.idle_s = idle_s
        self.failures = 0  # failed attempts since start
        self.last_error: str | None = None
        self.closing = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()  # new data, or closing
        self._cut = threading.Event()  # closing: ends a back-off early
        self.thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> SpoolSender:
        self.thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def _wait(self, s: float) -> None:
        self._wake.wait(max(0.0, s))
        self._wake.clear()

    def _run(self) -> None:
        attempt = 0
        down_since = 0.0
        while not self._stop.is_set():
            rows = self.spool.peek(self.batch)
            if not rows:
                if self.closing.is_set():
                    return
                self._wait(self.idle() if self.idle is not None else self.idle_s)
                continue
            try:
                r = self.send(rows)
            except Exception as e:  # noqa: BLE001 - a bug must not end deliveries silently
                log.exception("%s: sending failed", self.name)
                r = Sent(error=f"internal error: {type(e).__name__}: {e}")
            if r.done:
                self.spool.ack(r.done)
            if r.stop:
                return
            if r.error is None:
                if attempt:
                    log.warning("%s: delivered again after %d failed attempts (%.0f s)",
                                self.name, attempt, time.monotonic() - down_since)
                attempt = 0
                self.backoff.reset()
                if r.wait_s > 0 and not self.closing.is_set():
                    self._wait(r.wait_s)
                continue
            self.failures += 1
            self.last_error = r.error
            if attempt == 0:
                down_since = time.monotonic()
            attempt += 1
            if self.closing.is_set():
                log.warning("%s: %s while closing", self.name, r.error)
                return
            delay = r.retry_after_s if r.retry_after_s is not None else self.backoff.next()
            # Logged at attempts 1, 2, 4, 8...: a long outage does not flood the log.
            lvl = logging.WARNING if attempt & (attempt - 1) == 0 else logging.DEBUG
            log.log(lvl, "%s: %s (attempt %d, failing for %.0f s); retry in %.1f s%s, %d waiting",
                    self.name, r.error, attempt, time.monotonic() - down_since, delay,
                    " (Retry-After)" if r.retry_after_s is not None else "", len(self.spool))
            self._cut.wait(delay)

    def begin_close(self) -> None:
        """Deliver what can be delivered now, then end (see `finish_close`)."""
        self.closing.set()
        self._wake.set()
        self._cut.set()

    def finish_close(self, deadline: float) -> bool:
        """Wait for the thread until `deadline` (monotonic), then stop it; False when it is still
        inside a send (a hung receiver): its spool must then stay open."""
        self.thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        self._wake.set()
        self.thread.join(1.0)
        return not self.thread.is_alive()
