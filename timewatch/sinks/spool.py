"""A durable FIFO on disk: what a sink could not deliver yet, and the one loop that delivers it.

SQLite in WAL mode with `synchronous=FULL`: an item `put` is on disk when `put` returns, survives
`kill -9` and power loss, and leaves only when `ack`ed after delivery (at-least-once; receivers
deduplicate by id, so delivery is exactly-once end to end). Disk use is bounded: past
`max_bytes` the oldest items are dropped, their records counted and reported, never silently.

An item (one row) holds one or more *records*, the unit a sink counts in: a webhook item is one
event; an InfluxDB item is the lines of one `handle` call (at most a batch), joined by newlines,
so that a backfill writes a few rows per chunk instead of one per line. Lengths, `peek`'s limit
and the drop counts are in records; the disk bound is in bytes. A spool written before items
held several records (one line a row) is read as it is: its rows hold one record each.

A backfill (`replay -c`, `export --influxdb`) puts its items with a *mark* (`put(items,
mark=(key, n))`): the mark is written in the same transaction as the items, so after a `kill -9`
`mark(key)` says exactly how far the backfill's items reached the spool, and `--resume` hands
only what comes after (no item twice, none missing).

`SpoolSender` is the delivery loop every spooled sink uses (InfluxDB, each webhook endpoint):
take the oldest items, send them, ack on success, back off (`backoff.Backoff`) on failure.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..backoff import Backoff

log = logging.getLogger(__name__)


# Items kept in memory while the file cannot be written (at most this many bytes, or
# `max_bytes` if smaller): past it the oldest are dropped, counted and warned about.
MEMORY_MAX_BYTES = 32 * 2**20
# Seconds between attempts to write to a spool file that failed.
RETRY_S = 5.0
# Seconds between repeated error messages while the file stays unwritable.
REMIND_S = 600.0

Row = tuple[int, str, bytes]  # (seq, key, body) as `Spool.peek` returns them
Item = tuple[str, bytes, int]  # (key, body, records in body) as `Spool.put` takes them
Mark = tuple[str, int]  # (backfill key, how far it reached): see `Spool.put`


class Spool:
    """The FIFO: a SQLite file, and in front of it the items it could not take yet.

    When the file cannot be opened or written (read-only or missing directory, disk full, I/O
    error), `put` keeps the items in memory (bounded) and every later call retries the file at
    most every `retry_s`; the error names the path, once, then every REMIND_S. `peek` serves
    the file's items, then the memory's, so a sink keeps delivering from memory. One consumer
    (the sink's sender) peeks and acks.

    A file deleted or replaced while in use (checked before each write and read, as the
    store does) is noticed: what the deleted file still holds is copied into a new file at the
    path, and the spool goes on there."""

    def __init__(self, path: str | Path, max_bytes: int = 512 * 2**20, name: str = "spool",
                 retry_s: float = RETRY_S):
        self.path = Path(path)
        self.name = name
        self.max_bytes = max_bytes
        self.memory_max_bytes = min(MEMORY_MAX_BYTES, max_bytes)
        self.retry_s = retry_s
        self.dropped = 0  # records discarded because a bound was reached
        self.failing: str | None = None  # the file's current error, None while it is healthy
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._bytes = 0  # item bytes in the file
        # Not in the file yet: (seq, key, body, records).
        self._mem: collections.deque[tuple[int, str, bytes, int]] = collections.deque()
        self._mem_bytes = 0
        self._mem_mark: Mark | None = None  # written with the memory items (`put`)
        self._next_mem_seq = -1  # memory items have negative seqs
        self._moved: dict[int, int] = {}  # memory seq -> file seq, since the last peek
        self._unacked: set[int] = set()  # delivered; their deletion from the file failed
        self._next_try = 0.0
        self._last_log = 0.0
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we opened
        self.more = False  # the last `peek` left out items because of its limit
        with self._lock:
            self._sync(force=True)

    # -- the file ----------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_Q)
            if "n" not in {r[1] for r in db.execute("PRAGMA table_info(q)")}:
                # Written before an item could hold several records: one record a row.
                db.execute("ALTER TABLE q ADD COLUMN n INTEGER NOT NULL DEFAULT 1")
            db.execute(_MARKS)
            self._bytes = db.execute("SELECT COALESCE(SUM(size), 0) FROM q").fetchone()[0]
            st = os.stat(self.path)
        except BaseException:
            db.close()
            raise
        self._ident = (st.st_dev, st.st_ino)
        return db

    def _still_there(self) -> bool:
        """False when the file we write was deleted or replaced (writes would go nowhere)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def _salvage(self, old: sqlite3.Connection) -> sqlite3.Connection:
        """The file was deleted (or replaced) under us: copy what the deleted file still holds
        (the open connection reads it) into a new file at the path, same seqs, and use it."""
        n = old.execute("SELECT COALESCE(SUM(n), 0) FROM q").fetchone()[0]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old.execute("ATTACH DATABASE ? AS fresh", (str(self.path),))
        try:
            old.execute("PRAGMA fresh.journal_mode=WAL")
            old.execute(_Q.replace("EXISTS q", "EXISTS fresh.q"))
            old.execute(_MARKS.replace("EXISTS marks", "EXISTS fresh.marks"))
            old.execute("BEGIN IMMEDIATE")
            try:
                old.execute("INSERT OR IGNORE INTO fresh.q (seq, key, body, size, n) "
                            "SELECT seq, key, body, size, n FROM main.q ORDER BY seq")
                old.execute("INSERT OR REPLACE INTO fresh.marks SELECT key, n FROM main.marks")
                old.execute("COMMIT")
            except BaseException:
                _rollback(old)
                raise
        finally:
            old.execute("DETACH DATABASE fresh")
        db = self._open()
        old.close()
        log.error("%s: %s was deleted or replaced while in use; the %d undelivered records it "
                  "held are in a new file at that path", self.name, self.path, n)
        return db

    def _sync(self, force: bool = False) -> bool:
        """Bring the file up to date: open it, apply failed deletions, move the memory items
        into it. False (the error logged) when the file cannot be written now."""
        if self.failing is not None and not force and time.monotonic() < self._next_try:
            return False
        try:
            if self._db is None:
                self._db = self._open()
            elif not self._still_there():
                self._db = self._salvage(self._db)
            db = self._db
            if self._unacked:
                self._delete(db, sorted(self._unacked))
                self._unacked.clear()
            if self._mem or self._mem_mark is not None:
                db.execute("BEGIN IMMEDIATE")
                try:
                    seqs = [db.execute("INSERT INTO q (key, body, size, n) VALUES (?, ?, ?, ?)",
                                       (k, b, len(b), n)).lastrowid for _, k, b, n in self._mem]
                    if self._mem_mark is not None:
                        db.execute("INSERT OR REPLACE INTO marks (key, n) VALUES (?, ?)",
                                   self._mem_mark)
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    raise
                for (mseq, _, _, _), seq in zip(self._mem, seqs, strict=True):
                    self._moved[mseq] = int(seq or 0)
                self._bytes += self._mem_bytes
                self._mem.clear()
                self._mem_bytes = 0
                self._mem_mark = None
                if self._bytes > self.max_bytes:
                    self._trim()
        except (sqlite3.Error, OSError) as e:
            self._fail(e)
            return False
        if self.failing is not None:
            log.warning("%s: %s can be written again; the items kept in memory are in it",
                        self.name, self.path)
            self.failing = None
        return True

    def _fail(self, e: Exception) -> None:
        now = time.monotonic()
        first = self.failing is None
        self.failing = (f"{type(e).__name__}: {e}" if isinstance(e, sqlite3.Error) else str(e)) \
            + disk_trouble(self.path)
        self._next_try = now + self.retry_s
        if first or now - self._last_log >= REMIND_S:
            self._last_log = now
            log.error("%s: cannot write %s: %s; %d records kept in memory (at most %d MB) and "
                      "retried every %g s", self.name, self.path, self.failing,
                      sum(r[3] for r in self._mem),
                      self.memory_max_bytes // 2**20, self.retry_s)

    def _delete(self, db: sqlite3.Connection, seqs: list[int]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            size = 0
            for i in range(0, len(seqs), 500):
                chunk = seqs[i:i + 500]
                marks = ",".join("?" * len(chunk))
                size += db.execute(f"SELECT COALESCE(SUM(size), 0) FROM q WHERE seq IN ({marks})",
                                   chunk).fetchone()[0]
                db.execute(f"DELETE FROM q WHERE seq IN ({marks})", chunk)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._bytes -= size

    @staticmethod
    def _records(db: sqlite3.Connection, seqs: list[int]) -> int:
        """The records the rows `seqs` hold."""
        n = 0
        for i in range(0, len(seqs), 500):
            chunk = seqs[i:i + 500]
            n += db.execute(f"SELECT COALESCE(SUM(n), 0) FROM q WHERE seq IN "
                            f"({','.join('?' * len(chunk))})", chunk).fetchone()[0]
        return int(n)

    def _trim(self) -> None:
        assert self._db is not None
        n = 0
        while self._bytes > self.max_bytes * 0.9:
            rows = self._db.execute("SELECT seq, size, n FROM q ORDER BY seq LIMIT 1000").fetchall()
            if not rows:
                break
            cut = 0
            for seq, size, records in rows:
                self._bytes -= size
                n += records
                cut = seq
                if self._bytes <= self.max_bytes * 0.9:
                    break
            self._db.execute("DELETE FROM q WHERE seq <= ?", (cut,))
        self.dropped += n
        log.warning("%s: disk bound of %d MB reached: dropped the %d oldest undelivered records "
                    "(%d dropped so far)", self.name, self.max_bytes // 2**20, n, self.dropped)

    def _trim_memory(self) -> None:
        n = 0
        while self._mem_bytes > self.memory_max_bytes and self._mem:
            _, _, b, records = self._mem.popleft()
            self._mem_bytes -= len(b)
            n += records
        if n:
            self.dropped += n
            log.warning("%s: %s cannot be written and the memory bound of %d MB is reached: "
                        "dropped the %d oldest undelivered records (%d dropped so far)", self.name,
                        self.path, self.memory_max_bytes // 2**20, n, self.dropped)

    # -- the sink's side ---------------------------------------------------------------------
    def put(self, items: list[Item], mark: Mark | None = None) -> None:
        """Append (key, body, records) items in order, in one transaction: on disk when the
        file takes them, else in memory. `mark` (a backfill's (key, n)) is written in the same
        transaction: when `mark(key)` returns n, every item put with it is in the file. Never
        raises."""
        if not items and mark is None:
            return
        with self._lock:
            if mark is not None:
                self._mem_mark = mark
            for k, b, records in items:
                self._mem.append((self._next_mem_seq, k, b, records))
                self._next_mem_seq -= 1
                self._mem_bytes += len(b)
            if not self._sync():
                self._trim_memory()

    def peek(self, n: int) -> list[Row]:
        """The oldest items as (seq, key, body), without removing them: as many as hold at most
        n records together, and at least one (an item may hold more than n: a spool written with
        a larger batch). `more` says whether the limit left an item out."""
        with self._lock:
            self._moved.clear()  # the consumer acks only what it peeked since
            self._sync()
            rows: list[Row] = []
            got = 0
            self.more = False
            if self._db is not None:
                try:
                    cur = self._db.execute("SELECT seq, key, body, n FROM q ORDER BY seq LIMIT ?",
                                           (n + 1 + len(self._unacked),))
                    try:
                        for seq, key, body, records in cur:  # read row by row: items can be large
                            if seq in self._unacked:
                                continue
                            if rows and got + records > n:
                                self.more = True
                                break
                            rows.append((seq, key, body))
                            got += records
                    finally:
                        cur.close()
                except sqlite3.Error as e:
                    self._fail(e)
            for seq, key, body, records in self._mem:
                if self.more or (rows and got + records > n):
                    self.more = True
                    break
                rows.append((seq, key, body))
                got += records
            return rows

    def ack(self, seqs: list[int]) -> None:
        """Remove delivered items. Never raises (a deletion the file refuses is retried)."""
        if not seqs:
            return
        with self._lock:
            seqs = [self._moved.get(s, s) for s in seqs]
            gone = {s for s in seqs if s < 0}
            if gone:
                kept = [r for r in self._mem if r[0] not in gone]
                self._mem_bytes = sum(len(r[2]) for r in kept)
                self._mem = collections.deque(kept)
            on_file = [s for s in seqs if s > 0]
            if on_file:
                self._unacked.update(on_file)
                if self.failing is None:
                    self._sync()

    def mark(self, key: str) -> int | None:
        """How far the backfill `key` reached the file (its last `put` mark); None if never."""
        with self._lock:
            if self._db is None:
                self._sync(force=True)
            if self._db is None:
                raise OSError(f"{self.name}: cannot read {self.path}: {self.failing}")
            row = self._db.execute("SELECT n FROM marks WHERE key = ?", (key,)).fetchone()
            return None if row is None else int(row[0])

    def forget(self, key: str) -> None:
        """The backfill `key` is over: its mark goes. Never raises."""
        with self._lock:
            if self._db is not None:
                try:
                    self._db.execute("DELETE FROM marks WHERE key = ?", (key,))
                except sqlite3.Error as e:
                    log.warning("%s: cannot remove the mark %s: %s", self.name, key, e)

    def counts(self) -> tuple[int, int]:
        """(records in the file, records not in it): what a restart finds, and what it cannot
        (only in memory, or in a deleted file not yet copied to a new one)."""
        with self._lock:
            n = 0
            if self._db is not None:
                try:
                    n = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM q").fetchone()[0])
                    if self._unacked:  # delivered, their deletion pending
                        n -= self._records(self._db, sorted(self._unacked))
                except sqlite3.Error:
                    n = 0
            mem = sum(r[3] for r in self._mem)
            if self._db is not None and not self._still_there():
                return 0, n + mem
            return n, mem

    def __len__(self) -> int:
        return sum(self.counts())

    @property
    def size_bytes(self) -> int:
        return int(self._bytes + self._mem_bytes)

    def close(self) -> None:
        """One last attempt to write the memory items; what stays in memory is lost (said)."""
        with self._lock:
            self._sync(force=True)
        _, lost = self.counts()
        with self._lock:
            if lost:
                log.error("%s: %d records could not be written to %s (%s) and are lost",
                          self.name, lost, self.path, self.failing)
            if self._db is not None:
                self._db.close()
                self._db = None


# n: the records the body holds (a column added later: older files get 1, one record a row).
_Q = ("CREATE TABLE IF NOT EXISTS q (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, "
      "body BLOB NOT NULL, size INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 1)")
_MARKS = "CREATE TABLE IF NOT EXISTS marks (key TEXT PRIMARY KEY, n INTEGER NOT NULL)"


def disk_trouble(path: Path) -> str:
    """Why a file may not be writable, as far as the file system says: " (read-only file
    system)", " (no space left)", " (no write permission)", or ""."""
    d = path.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    try:
        st = os.statvfs(d)
    except OSError:
        return ""
    if st.f_flag & os.ST_RDONLY:
        return f" ({d} is on a read-only file system)"
    if st.f_bavail == 0:
        return f" (no space left on the file system of {d})"
    if not os.access(d, os.W_OK):
        return f" (no write permission in {d})"
    return ""


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


# ---------------------------------------------------------------------------------------------
# The delivery loop of a spooled sink (InfluxDB, each webhook endpoint)

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
                if r.done and attempt:
                    log.warning("%s: delivered again after %d failed attempts (%.0f s)",
                                self.name, attempt, time.monotonic() - down_since)
                if r.done:
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
