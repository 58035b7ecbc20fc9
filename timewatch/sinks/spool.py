"""A durable FIFO on disk: what a sink could not deliver yet. One mechanism for every sink.

SQLite in WAL mode with `synchronous=FULL`: an item `put` is on disk when `put` returns, survives
`kill -9` and power loss, and leaves only when `ack`ed after delivery (at-least-once; receivers
deduplicate by id, so delivery is exactly-once end to end). Disk use is bounded: past
`max_bytes` the oldest items are dropped, counted and reported, never silently.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

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
