"""The embedded store: samples, status snapshots (consensus and verdicts) and events in SQLite.

`Store` is the database: schema, one-transaction batch writes, retention, read helpers for
`status` and `export`. `StoreSink` is the engine-facing sink: `handle` queues outputs and returns;
a writer thread commits them in batches (one transaction per `FLUSH_S` or `BATCH_MAX` outputs).
A backfill hands its outputs with a `Mark` (`handle_marked`): the batch ends at the mark and the
mark is committed with it (table `marks`), so `--resume` knows exactly what is in the store.

Durability: WAL mode with `synchronous=NORMAL`: a committed transaction survives `kill -9` of the
process (it is in the WAL, which SQLite replays on the next open); a power cut may roll back the
last commits but never corrupts the file. A store that cannot be written (read-only or missing
directory, disk full, file deleted) is logged as an error naming the path; the rows stay queued in
memory (bounded; past the bound the oldest are dropped, counted and warned about) and are retried
every `retry_s` until they are written. Schema: docs/store.md.
"""

from __future__ import annotations

import collections
import functools
import inspect
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from ..config import Config
from ..evidence import Evidence
from ..records import Event, Output, Sample, Snapshot, SourceInfo, SourceStatus
from . import Mark, finite, to_json
from .spool import disk_trouble

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # PRAGMA user_version; bump with a migration when a table changes
# Migrations from each older version (run in one transaction with the schema): 1 -> 2 keeps
# each source's status numbers (SourceStatus.fields) with its verdict; 2 -> 3 whether the source
# is authenticated (SourceStatus.auth, "nts" or NULL); 3 -> 4 gives each event its place in the
# event log's chain (docs/evidence.md).
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE verdicts ADD COLUMN fields_json TEXT NOT NULL DEFAULT '{}';",
    2: "ALTER TABLE verdicts ADD COLUMN auth TEXT;",
    3: "ALTER TABLE events ADD COLUMN chain_sha256 TEXT;",
}
# A batch is committed at most this long after its first output was queued (wall seconds):
# what `kill -9` can lose is at most this much of not-yet-committed data.
FLUSH_S = 0.2
# Outputs per transaction: large enough that a full-speed replay commits a few times a second.
BATCH_MAX = 5000
# Outputs kept in memory while the store cannot be written: ~10 outputs/s of a live monitor
# for almost 3 hours. A queued output takes 1-2 KB (a 7-day backfill's 30,000 more queued
# outputs took 50 MB more), so up to ~170 MB. Past it the oldest are dropped, counted and
# warned about.
MAX_PENDING = 100_000
# While the store is healthy, `handle` waits for the writer above this many queued outputs
# (only a full-speed replay gets here; a live monitor queues a few per second). Four batches:
# the writer never waits for work; a backfill's peak RSS is 143 MB instead of 190 at 50,000.
HIGH_WATER = 4 * BATCH_MAX
# Seconds between attempts to write to a store that failed.
RETRY_S = 5.0
# Seconds between repeated error messages while the store stays unwritable.
REMIND_S = 60.0
# Retention is applied every this many seconds of trace time (and at start).
PRUNE_EVERY_S = 3600.0
# A reader (status, export) waits this long for the writer's lock before giving up.
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    t_ns INTEGER NOT NULL,
    src TEXT NOT NULL,
    offset_s REAL NOT NULL,
    bound_s REAL NOT NULL,
    fields_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_t ON samples (t_ns);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    t_ns INTEGER NOT NULL,
    quorum INTEGER NOT NULL,
    groups_agreeing INTEGER NOT NULL,
    groups_voting INTEGER NOT NULL,
    consensus_offset_s REAL,
    consensus_bound_s REAL,
    holdover_ppm REAL,
    active_alerts_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_t ON snapshots (t_ns);
CREATE TABLE IF NOT EXISTS verdicts (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    t_ns INTEGER NOT NULL,
    src TEXT NOT NULL,
    kind TEXT NOT NULL,
    trust_group TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    offset_s REAL,
    bound_s REAL,
    last_ns INTEGER,
    fields_json TEXT NOT NULL DEFAULT '{}',
    auth TEXT
);
CREATE INDEX IF NOT EXISTS verdicts_snapshot ON verdicts (snapshot_id);
CREATE INDEX IF NOT EXISTS verdicts_t ON verdicts (t_ns);
CREATE TABLE IF NOT EXISTS events (
    t_ns INTEGER NOT NULL,
    type TEXT NOT NULL,
    code TEXT NOT NULL,
    id TEXT NOT NULL,
    severity TEXT,
    sources_json TEXT NOT NULL,
    event_json TEXT NOT NULL,
    chain_sha256 TEXT,
    UNIQUE (id, type)
);
CREATE INDEX IF NOT EXISTS events_t ON events (t_ns);
CREATE TABLE IF NOT EXISTS marks (
    key TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
"""


# What SQLite (or the encoding before it) raises for the data itself, never for the disk: the
# output can never be written as it is (NOT NULL on a NaN, an integer beyond 64 bits...).
POISON = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError,
          ValueError, TypeError)


class StoreError(Exception):
    """The store cannot be opened or read; the message names the path."""


# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT ("database disk image is
# malformed") and SQLITE_NOTADB ("file is not a database").
CORRUPT_CODES = (11, 26)


def is_corrupt(e: BaseException | None) -> bool:
    """The error (or what caused it) says the database file is damaged."""
    while e is not None:
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(e, sqlite3.DatabaseError) and code is not None and \
                code & 0xFF in CORRUPT_CODES:
            return True
        e = e.__cause__
    return False


def damaged_copies(path: Path) -> list[Path]:
    """Damaged stores moved aside from `path` (`NAME.corrupt-YYYYmmddTHHMMSSZ`), oldest first."""
    return sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*")
                  if not p.name.endswith(("-wal", "-shm", "-journal")))


class StorePermissionError(StoreError):
    """The store cannot be read by this user (the message has the fix)."""


def open_readonly(path: Path) -> Store:
    """The store at `path` for reading (`status`, `export`); StoreError says what is wrong, with
    the fix when it is a permission."""
    from .. import access

    try:
        return Store(path, readonly=True)
    except (StoreError, PermissionError) as e:
        if access.blocker(path) is not None:
            raise StorePermissionError(f"store {path}: permission denied: {access.fix(path)}") \
                from None
        raise StoreError(str(e)) from None


def damaged_note(path: Path) -> str | None:
    """What `status` and `export` say when the store at path was found corrupt and replaced."""
    copies = damaged_copies(path)
    if not copies:
        return None
    return (f"store {path} was found corrupt and moved aside; the damaged copy is {copies[-1]}"
            + (f" ({len(copies)} damaged copies)" if len(copies) > 1 else "")
            + f": the history before it is not in the store (`sqlite3 {copies[-1]} .recover` "
            "saves what can be saved)")


def _corrupt_message(path: Path, e: BaseException) -> str:
    return (f"store {path} is corrupt ({e}): `timewatch run` moves it aside as "
            f"{path.name}.corrupt-<time> and starts a new store; `sqlite3 {path} .recover` "
            "saves what can be saved")


F = TypeVar("F", bound=Callable[..., Any])


def _reading(fn: F) -> F:
    """A read method whose SQLite errors become StoreError naming the path (and saying so when
    the file is corrupt); generator methods too."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(self: Store, *a: Any, **kw: Any) -> Any:
            try:
                yield from fn(self, *a, **kw)
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e
        return cast(F, gen)

    @functools.wraps(fn)
    def call(self: Store, *a: Any, **kw: Any) -> Any:
        try:
            return fn(self, *a, **kw)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
    return cast(F, call)


class Store:
    """One SQLite database file. Not thread-safe: one thread uses one `Store`."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._ident: tuple[int, int] | None = None
        try:
            if readonly:
                if not self.path.is_file():
                    raise StoreError(f"store {self.path}: no such file")
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                           isolation_level=None)
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                try:
                    ver = self._db.execute("PRAGMA user_version").fetchone()[0]
                except sqlite3.OperationalError:
                    # A reader who may read the file but not write its directory (the operator,
                    # in the group of the appliance's state) cannot create the WAL index while
                    # no writer runs (no -wal file): then nothing changes it, read it as is.
                    if self.path.with_name(self.path.name + "-wal").exists():
                        raise
                    self._db.close()
                    self._db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1",
                                               uri=True, isolation_level=None)
                    ver = self._db.execute("PRAGMA user_version").fetchone()[0]
                if ver != SCHEMA_VERSION and ver not in MIGRATIONS:
                    raise StoreError(f"store {self.path}: schema version {ver}, "
                                     f"this timewatch reads {SCHEMA_VERSION}")
                # An older store is read as it is (its verdicts have no status numbers).
                self._fields_col = "fields_json" if ver >= 2 else "'{}'"
                self._auth_col = "auth" if ver >= 3 else "NULL"
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"store {self.path}: cannot switch to WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous=NORMAL")
            ver = self._db.execute("PRAGMA user_version").fetchone()[0]
            if ver not in (0, SCHEMA_VERSION) and ver not in MIGRATIONS:
                raise StoreError(f"store {self.path}: schema version {ver}, "
                                 f"this timewatch writes {SCHEMA_VERSION}")
            migrate = "".join(MIGRATIONS[v] for v in range(ver, SCHEMA_VERSION)) if ver else ""
            self._db.executescript("BEGIN IMMEDIATE;" + migrate + _SCHEMA +
                                   f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            self._fields_col = "fields_json"
            self._auth_col = "auth"
            st = os.stat(self.path)
            self._ident = (st.st_dev, st.st_ino)
        except sqlite3.Error as e:
            self.close()
            raise self._error(e) from e

    def _error(self, e: sqlite3.Error) -> StoreError:
        if is_corrupt(e):
            return StoreError(_corrupt_message(self.path, e))
        return StoreError(f"store {self.path}: {e}")

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    # -- writing ----------------------------------------------------------------------------
    def still_there(self) -> bool:
        """False when the file was deleted or replaced under us (writes would go nowhere)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def write(self, outputs: Sequence[Output | Mark],
              chains: dict[tuple[str, str], str] | None = None, tail: Mark | None = None) -> None:
        """Write outputs in one transaction: all of them or (on an exception) none. `chains`:
        per event (id, type), the event log's SHA-256 through its line (`chain_sha256`). The
        last backfill mark among them (or `tail`, after them) is written in the same
        transaction."""
        db = self._db
        mark = tail
        samples: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        snaps: list[Snapshot] = []
        # A non-finite number is written as NULL (JSON null): SQLite would store NaN as NULL
        # anyway, and JSON has no NaN. A sample without a finite offset and bound violates NOT
        # NULL: a poison row, which StoreSink skips alone.
        for o in outputs:
            if isinstance(o, Sample):
                samples.append((o.t_ns, o.src, o.offset_s, o.bound_s,
                                to_json(o.fields, separators=(",", ":"))))
            elif isinstance(o, Event):
                d = o.to_dict()
                events.append((o.t_ns, o.type, o.code, o.id,
                               o.severity if o.type == "alert" else None,
                               to_json(list(o.sources)), to_json(d),
                               chains.get((o.id, o.type)) if chains else None))
            elif isinstance(o, Snapshot):
                snaps.append(o)
            elif isinstance(o, Mark) and tail is None:
                mark = o
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", samples)
            # An event is identified by (id, type) (docs/events.md): a replay into the same store
            # does not duplicate it.
            db.executemany("INSERT OR IGNORE INTO events (t_ns, type, code, id, severity, "
                           "sources_json, event_json, chain_sha256) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?)", events)
            for s in snaps:
                cur = db.execute(
                    "INSERT INTO snapshots (t_ns, quorum, groups_agreeing, groups_voting, "
                    "consensus_offset_s, consensus_bound_s, holdover_ppm, active_alerts_json) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (s.t_ns, int(s.quorum), s.groups_agreeing, s.groups_voting,
                     finite(s.consensus_offset_s), finite(s.consensus_bound_s),
                     finite(s.holdover_ppm), to_json(list(s.active_alerts))))
                sid = cur.lastrowid
                db.executemany(
                    "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(sid, s.t_ns, v.src, v.kind, v.group, v.verdict, v.reason,
                      finite(v.offset_s), finite(v.bound_s), v.last_ns,
                      to_json(v.fields, separators=(",", ":"), default=str), v.auth)
                     for v in s.sources])
            if mark is not None:
                db.execute("INSERT OR REPLACE INTO marks VALUES (?, ?)", (mark.key, mark.n))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    def prune(self, before_ns: int) -> int:
        """Delete everything older than before_ns (trace time); the number of rows deleted."""
        db = self._db
        n = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("samples", "verdicts", "snapshots", "events"):
                n += db.execute(f"DELETE FROM {table} WHERE t_ns < ?", (before_ns,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    def forget(self, key: str) -> None:
        """Drop a finished backfill's mark."""
        self._db.execute("DELETE FROM marks WHERE key = ?", (key,))

    # -- reading ----------------------------------------------------------------------------
    @_reading
    def mark(self, key: str) -> int | None:
        """How far the backfill `key` reached the store (None: not at all)."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'marks'").fetchone():
            return None  # a store written before marks existed
        row = self._db.execute("SELECT n FROM marks WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    @_reading
    def newest_ns(self) -> int | None:
        """The newest trace time anywhere in the store."""
        row = self._db.execute(
            "SELECT MAX(t) FROM (SELECT MAX(t_ns) AS t FROM samples UNION ALL "
            "SELECT MAX(t_ns) FROM snapshots UNION ALL SELECT MAX(t_ns) FROM events)").fetchone()
        return None if row[0] is None else int(row[0])

    @_reading
    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {t: int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("samples", "snapshots", "verdicts", "events")}

    @_reading
    def source_info(self) -> dict[str, SourceInfo]:
        """Each source's kind and trust group as the latest snapshot that named it recorded."""
        rows = self._db.execute(
            "SELECT v.src, v.kind, v.trust_group FROM verdicts v JOIN (SELECT src, "
            "MAX(rowid) AS r FROM verdicts GROUP BY src) last ON v.rowid = last.r").fetchall()
        return {src: SourceInfo(kind=kind, group=grp) for src, kind, grp in rows}

    @_reading
    def iter_samples(self, since_ns: int | None = None) -> Iterator[Sample]:
        """Samples with t_ns >= since_ns, oldest first."""
        cur = self._db.execute(
            "SELECT t_ns, src, offset_s, bound_s, fields_json FROM samples WHERE t_ns >= ? "
            "ORDER BY t_ns, rowid", (_since(since_ns),))
        for t, src, off, bnd, fj in cur:
            yield Sample(src, t, off, bnd, json.loads(fj))

    @_reading
    def iter_events(self, since_ns: int | None = None) -> Iterator[Event]:
        """Alert and clear events with t_ns >= since_ns, oldest first."""
        cur = self._db.execute("SELECT event_json FROM events WHERE t_ns >= ? "
                               "ORDER BY t_ns, rowid", (_since(since_ns),))
        for (ej,) in cur:
            yield Event.from_dict(json.loads(ej))

    @_reading
    def iter_snapshots(self, since_ns: int | None = None) -> Iterator[Snapshot]:
        """Status snapshots (with every source's verdict) with t_ns >= since_ns, oldest first."""
        cur = self._db.execute(
            "SELECT id, t_ns, quorum, groups_agreeing, groups_voting, consensus_offset_s, "
            "consensus_bound_s, holdover_ppm, active_alerts_json FROM snapshots "
            "WHERE t_ns >= ? ORDER BY t_ns, id", (_since(since_ns),))
        vcur = self._db.cursor()
        for row in cur:
            yield self._snapshot(row, vcur)

    @_reading
    def latest_snapshot(self) -> Snapshot | None:
        row = self._db.execute(
            "SELECT id, t_ns, quorum, groups_agreeing, groups_voting, consensus_offset_s, "
            "consensus_bound_s, holdover_ppm, active_alerts_json FROM snapshots "
            "ORDER BY t_ns DESC, id DESC LIMIT 1").fetchone()
        return None if row is None else self._snapshot(row, self._db.cursor())

    @_reading
    def active_alerts(self) -> list[Event]:
        """Alerts active as of the latest data: listed active in the latest snapshot, or raised
        after it, and not cleared since. Oldest first."""
        snap = self.latest_snapshot()
        listed = set(snap.active_alerts) if snap else set()
        snap_t = snap.t_ns if snap else -1
        # The latest event of each id decides whether it is still open.
        rows = self._db.execute(
            "SELECT e.event_json FROM events e JOIN (SELECT id, MAX(rowid) AS r FROM events "
            "GROUP BY id) last ON e.rowid = last.r WHERE e.type = 'alert' "
            "ORDER BY e.t_ns, e.rowid").fetchall()
        out = []
        for (ej,) in rows:
            ev = Event.from_dict(json.loads(ej))
            if f"{ev.code}:{ev.id}" in listed or ev.t_ns > snap_t:
                out.append(ev)
        return out

    def _snapshot(self, row: tuple[Any, ...], vcur: sqlite3.Cursor) -> Snapshot:
        sid, t, quorum, agree, voting, coff, cbnd, ho, aj = row
        srcs = tuple(
            SourceStatus(src, kind, grp, verdict, reason, off, bnd, last, json.loads(fj), auth)
            for src, kind, grp, verdict, reason, off, bnd, last, fj, auth in vcur.execute(
                "SELECT src, kind, trust_group, verdict, reason, offset_s, bound_s, last_ns, "
                f"{self._fields_col}, {self._auth_col} FROM verdicts WHERE snapshot_id = ? "
                "ORDER BY rowid", (sid,)))
        return Snapshot(t_ns=t, sources=srcs, quorum=bool(quorum), groups_agreeing=agree,
                        groups_voting=voting, consensus_offset_s=coff, consensus_bound_s=cbnd,
                        active_alerts=tuple(json.loads(aj)), holdover_ppm=ho)


def _last_mark(batch: list[Output | Mark]) -> int:
    """Index of the last mark in batch, -1 if none."""
    for i in range(len(batch) - 1, -1, -1):
        if isinstance(batch[i], Mark):
            return i
    return -1


def _reach(rest: list[Output | Mark], tail: Mark | None) -> Mark | None:
    """The mark reached by what comes before `rest`: the first mark in `rest` (or `tail`, which
    follows it) less the outputs in between. None when no mark follows."""
    k = 0
    for o in rest:
        if isinstance(o, Mark):
            return Mark(o.key, o.n - k)
        k += 1
    return None if tail is None else Mark(tail.key, tail.n - k)


def _since(since_ns: int | None) -> int:
    return -(2**63) if since_ns is None else since_ns


class StoreSink:
    """The engine's outputs into the store, committed in batches by a writer thread."""

    name = "store"

    def __init__(self, cfg: Config, *, retry_s: float = RETRY_S, max_pending: int = MAX_PENDING):
        self.path = cfg.store_path
        self.retention_ns = int(cfg.store.retention_days * 86400 * 1e9)
        self.retry_s = retry_s
        self.max_pending = max_pending
        self.high_water = max(1, min(HIGH_WATER, max_pending // 2))
        self.written = 0  # outputs committed
        self.dropped = 0  # outputs discarded because the store stayed unwritable too long
        self.skipped = 0  # poison outputs: refused by SQLite on their own, logged and skipped
        self.pruned = 0  # rows deleted by retention
        self.failing: str | None = None  # the current write error, None while healthy
        self._pending: collections.deque[Output | Mark] = collections.deque()
        # The event log's chain digest of each queued event (it handles events before the store)
        self._evidence = Evidence.for_config(cfg)
        self._chains: dict[tuple[str, str], str] = {}
        self._inflight = 0  # outputs the writer has taken but not committed yet
        self._first_pending_t = 0.0  # monotonic time the oldest uncommitted output was queued
        self._cond = threading.Condition()
        self._closing = False
        self._store: Store | None = None
        self._newest_ns: int | None = None
        self._pruned_at_ns: int | None = None
        self._last_error_log = 0.0
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    # -- the engine's side ------------------------------------------------------------------
    def handle(self, outputs: list[Output]) -> None:
        self._queue(outputs)

    def _queue(self, outputs: Sequence[Output | Mark]) -> None:
        if not outputs:
            return
        chains: dict[tuple[str, str], str] = {}
        for o in outputs:
            if isinstance(o, Event):
                c = self._evidence.take_event((o.id, o.type))
                if c is not None:
                    chains[(o.id, o.type)] = c
        with self._cond:
            self._chains.update(chains)
            # Back-pressure while healthy: only a full-speed replay outruns the writer.
            while (len(self._pending) >= self.high_water and self.failing is None
                   and not self._closing):
                self._cond.wait(0.5)
            was_empty = not self._pending
            if was_empty:
                self._first_pending_t = time.monotonic()
            self._pending.extend(outputs)
            if self.failing is not None:
                self._trim()  # while healthy, the back-pressure above bounds the queue
            # Wake the writer only when it waits without a deadline or a batch is full: a wake-up
            # per call would cost a thread switch per engine step.
            if was_empty or len(self._pending) >= BATCH_MAX:
                self._cond.notify_all()

    def handle_marked(self, outputs: list[Output], mark: Mark) -> None:
        """`handle`, then the mark: the writer ends a batch at a mark and commits the mark with
        it. The backfill keeps its chunks under BATCH_MAX outputs, so every commit ends at one."""
        self._queue([*outputs, mark])

    def resume_point(self, key: str) -> int | None:
        """The mark of `key` committed in the store (no store yet, or a corrupt one, which the
        writer moves aside: None)."""
        if not self.path.exists():
            return None
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            try:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'marks'").fetchone():
                    return None  # being created by the writer, or written before marks existed
                row = db.execute("SELECT n FROM marks WHERE key = ?", (key,)).fetchone()
                return None if row is None else int(row[0])
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            if is_corrupt(e):
                return None
            raise StoreError(f"store {self.path}: {e}") from e

    def passed(self, outputs: list[Output]) -> None:
        """Nothing to learn: each output is a row of its own."""

    def forget(self, key: str) -> None:
        """Drop the mark of a finished backfill (once everything before it is committed)."""
        self.flush(timeout_s=60.0)
        try:
            st = Store(self.path)
            try:
                st.forget(key)
            finally:
                st.close()
        except (sqlite3.Error, StoreError) as e:
            log.warning("store %s: cannot remove the mark %s: %s", self.path, key, e)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued is committed; False if that did not happen in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._first_pending_t = 0.0  # due now
            self._cond.notify_all()
            while self._pending or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending) + self._inflight

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=30.0)
        with self._cond:
            left = len(self._pending) + self._inflight
        if left:
            log.error("store %s: %d outputs could not be written before shutdown and are lost "
                      "(last error: %s)", self.path, left, self.failing)

    # -- the writer thread ------------------------------------------------------------------
    def _trim(self) -> None:
        """Drop the oldest outputs beyond the bound: counted and warned about, never silent."""
        excess = len(self._pending) + self._inflight - self.max_pending
        if excess <= 0:
            return
        for _ in range(min(excess, len(self._pending))):
            self._pending.popleft()
        self.dropped += excess
        log.warning("store %s: cannot be written and %d outputs are waiting: dropped the %d "
                    "oldest (%d dropped so far)", self.path, self.max_pending, excess,
                    self.dropped)

    def _run(self) -> None:
        # Open at start: an unwritable store is reported now, and retention runs now.
        try:
            self._open()
        except (sqlite3.Error, OSError, StoreError) as e:
            self._close_store()
            self._fail(str(e))
        while True:
            with self._cond:
                while True:
                    if self._closing and (not self._pending or self.failing is not None):
                        break
                    if self._pending:
                        due = self._first_pending_t + FLUSH_S - time.monotonic()
                        if due <= 0 or len(self._pending) >= BATCH_MAX or self._closing:
                            break
                        self._cond.wait(due)
                    else:
                        self._cond.wait()
                if not self._pending:
                    if self._closing:
                        break
                    continue
                n = min(BATCH_MAX, len(self._pending))
                batch = [self._pending.popleft() for _ in range(n)]
                last = _last_mark(batch)
                if 0 <= last < n - 1:
                    # A backfill: end the batch at its last mark (the rest goes with the next).
                    self._pending.extendleft(reversed(batch[last + 1:]))
                    del batch[last + 1:]
                    n = last + 1
                self._inflight = n
            done, written = self._write(batch)
            ok = done == len(batch)
            with self._cond:
                self._inflight = 0
                self.written += written
                if self._chains:  # the written (or skipped) events' chain digests are used
                    for o in batch[:done]:
                        if isinstance(o, Event):
                            self._chains.pop((o.id, o.type), None)
                if ok:
                    if self._pending:
                        self._first_pending_t = 0.0  # a backlog: keep going
                else:
                    self._pending.extendleft(reversed(batch[done:]))
                    self._trim()
                self._cond.notify_all()
                closing = self._closing
            if not ok:
                if closing:
                    break  # that was the last attempt; close() reports what is left
                self._sleep(self.retry_s)
        self._close_store()

    def _sleep(self, s: float) -> None:
        with self._cond:
            if not self._closing:
                self._cond.wait(s)

    def _open(self) -> Store:
        if self._store is not None and not self._store.still_there():
            self._fail(f"the file was deleted or replaced; starting a new store at {self.path} "
                       "(the history in the old file is gone)", error=False)
            self._close_store()
        if self._store is None:
            try:
                self._store = Store(self.path)
                newest = self._store.newest_ns()
            except (sqlite3.Error, StoreError) as e:
                if not self._move_aside(e):
                    raise
                self._store = Store(self.path)
                newest = None
            if newest is not None:
                self._newest_ns = newest
                self._prune()
        return self._store

    def _move_aside(self, e: BaseException) -> bool:
        """A corrupt store (SQLITE_CORRUPT, SQLITE_NOTADB) is renamed to
        `NAME.corrupt-YYYYmmddTHHMMSSZ` (with its -wal and -shm), logged, and a new store is
        started at the path. False when e is not about corruption."""
        if not is_corrupt(e):
            return False
        self._close_store()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        self._newest_ns = self._pruned_at_ns = None
        log.error("store %s is corrupt (%s): moved aside to %s; a new store starts at that path "
                  "with the outputs from now on (the history before is in the damaged copy: "
                  "`sqlite3 %s .recover` saves what can be saved)", self.path,
                  str(e).removeprefix(f"store {self.path}: "), aside, aside)
        return True

    def _write(self, batch: list[Output | Mark], moved: bool = False) -> tuple[int, int]:
        """Write a batch: (outputs at its head that are done, outputs written). Done is short of
        the batch when the store cannot be written now (the error is logged, the rest is
        retried); a poison output is done without being written (`_write_rows`)."""
        done = [0]
        written: list[Output] = []
        try:
            st = self._open()
            self._write_rows(st, batch, written, done)
            if not st.still_there():
                done[0], written = 0, []  # into a deleted file: write it all again
                raise StoreError("the file was deleted while writing")
            for o in written:
                if self._newest_ns is None or o.t_ns > self._newest_ns:
                    self._newest_ns = o.t_ns
            if (self._pruned_at_ns is None
                    or self._retention_ref_ns() - self._pruned_at_ns >= PRUNE_EVERY_S * 1e9):
                self._prune()
        except (sqlite3.Error, OSError, StoreError) as e:
            self._close_store()
            if not moved and is_corrupt(e):
                try:
                    self._move_aside(e)
                except OSError as e2:
                    self._fail(f"{e}; moving it aside failed: {e2}")
                    return 0, 0
                return self._write(batch, moved=True)  # all of it, into the new store
            self._fail(str(e))
            return done[0], len(written)
        if self.failing is not None:
            log.warning("store %s: writable again; the queued outputs are being written",
                        self.path)
            self.failing = None
        return done[0], len(written)

    def _write_rows(self, st: Store, batch: list[Output | Mark], written: list[Output],
                    done: list[int], tail: Mark | None = None) -> None:
        """st.write(batch); when SQLite refuses the data itself (not the disk), halve the batch
        until the refused output is alone: it is logged and skipped, every other one written.
        One bad value never wedges the queue. `written` and `done[0]` follow the progress (each
        half is its own transaction). A backfill's batch ends at a mark (`tail`: the mark that
        follows the batch): each half is committed with the mark its last output reaches, so
        the store's mark stays exact."""
        try:
            st.write(batch, self._chains, tail)  # dict reads only: handle() adds under the lock
        except POISON as e:
            outs = [o for o in batch if not isinstance(o, Mark)]
            if len(outs) <= 1:
                for o in outs:
                    self.skipped += 1
                    who = getattr(o, "src", None) or getattr(o, "id", "")
                    log.error("store %s: %s %s at t_ns=%s skipped, it cannot be stored (%s: %s)",
                              self.path, o.type, who, o.t_ns, type(e).__name__, e)
                marks = [m for m in batch if isinstance(m, Mark)]
                if marks or tail is not None:
                    st.write(marks, None, tail)  # the marks alone: the skipped output is done
                done[0] += len(batch)
                return
            half = len(batch) // 2
            self._write_rows(st, batch[:half], written, done, _reach(batch[half:], tail))
            self._write_rows(st, batch[half:], written, done, tail)
            return
        written.extend(o for o in batch if not isinstance(o, Mark))
        done[0] += len(batch)

    def _retention_ref_ns(self) -> int:
        """Retention counts from the newest time in the store, but never from later than the
        host clock: a replayed old trace keeps its history, and no time ahead of the host clock
        (a wrong clock in a record) can delete what is stored."""
        return min(self._newest_ns or 0, time.time_ns())

    def _prune(self) -> None:
        if self._store is None or self._newest_ns is None:
            return
        ref_ns = self._retention_ref_ns()
        n = self._store.prune(ref_ns - self.retention_ns)
        self._pruned_at_ns = ref_ns
        if n:
            self.pruned += n
            log.info("store %s: retention removed %d rows older than %.3g days", self.path, n,
                     self.retention_ns / 86400e9)

    def _fail(self, what: str, error: bool = True) -> None:
        now = time.monotonic()
        first = self.failing is None
        self.failing = what
        if not error:
            log.error("store %s: %s", self.path, what)
            return
        if first or now - self._last_error_log >= REMIND_S:
            self._last_error_log = now
            why = disk_trouble(self.path) or " (check the directory's permissions and free space)"
            log.error("store %s cannot be written: %s; %d outputs kept in memory and retried "
                      "every %g s%s", self.path, what.removeprefix(f"store {self.path}: "),
                      len(self._pending) + self._inflight, self.retry_s, why)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
