"""The durable spool and the one delivery loop (SpoolSender) the InfluxDB and webhook sinks share."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from timewatch.backoff import Backoff
from timewatch.sinks.spool import Row, Sent, Spool, SpoolSender


def _wait(cond, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_sender_delivers_in_order_backs_off_and_new_data_never_cuts_a_backoff(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q.spool")
    got: list[bytes] = []
    tries: list[float] = []
    down = threading.Event()
    down.set()

    def send(rows: list[Row]) -> Sent:
        tries.append(time.monotonic())
        if down.is_set():
            return Sent(error="receiver down")
        got.extend(body for _, _, body in rows)
        return Sent([seq for seq, _, _ in rows])

    sender = SpoolSender(spool, send, name="t", batch=3,
                         backoff=Backoff(1.0, 1.0, jitter=0.0)).start()
    spool.put([("", b"a", 1), ("", b"b", 1)])
    sender.wake()
    _wait(lambda: len(tries) >= 1)
    for i in range(20):  # a stream of new data while the receiver is down
        spool.put([("", f"n{i}".encode(), 1)])
        sender.wake()
    down.clear()  # up again at once: only the back-off (1 s) may hold the retry
    _wait(lambda: len(got) == 22)
    assert got == [b"a", b"b"] + [f"n{i}".encode() for i in range(20)]
    assert tries[1] - tries[0] >= 0.99, "new data cut the back-off short"
    assert sender.failures == 1 and len(spool) == 0
    down.set()
    spool.put([("", b"last", 1)])
    sender.wake()
    _wait(lambda: sender.failures == 2)
    t = time.monotonic()
    sender.begin_close()  # closing ends the back-off at once: one last attempt
    assert sender.finish_close(time.monotonic() + 5.0)
    assert time.monotonic() - t < 0.8 and sender.failures == 3 and len(spool) == 1
    spool.close()


def test_a_backfill_mark_is_written_with_its_items_and_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q.spool")
    assert spool.mark("bf-1") is None
    spool.put([("", b"a", 1), ("", b"b", 1)], mark=("bf-1", 2))
    spool.put([], mark=("bf-1", 3))  # a chunk without lines still moves the mark
    spool.put([("", b"c", 1)])  # a live put leaves the mark alone
    assert spool.mark("bf-1") == 3 and len(spool) == 3
    spool.ack([seq for seq, _, _ in spool.peek(10)])  # delivered: the mark stays
    spool.close()
    again = Spool(tmp_path / "q.spool")
    assert again.mark("bf-1") == 3 and again.mark("other") is None and len(again) == 0
    again.forget("bf-1")
    assert again.mark("bf-1") is None
    again.close()


def test_a_mark_waits_in_memory_with_its_items_while_the_file_cannot_be_opened(
        tmp_path: Path) -> None:
    path = tmp_path / "q.spool"
    path.mkdir()  # a directory where the file should be: SQLite cannot open it
    spool = Spool(path, retry_s=0.0)
    spool.put([("", b"a", 1)], mark=("bf", 1))
    assert spool.failing is not None and spool.counts() == (0, 1)
    path.rmdir()
    spool.put([], mark=("bf", 2))  # the file can be written now: the items, then the mark
    assert spool.failing is None and spool.mark("bf") == 2
    assert [b for _, _, b in spool.peek(5)] == [b"a"]
    spool.close()


def test_a_deleted_spool_keeps_its_marks_in_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "q.spool"
    spool = Spool(path)
    spool.put([("", b"a", 1)], mark=("bf", 7))
    for p in tmp_path.glob("q.spool*"):
        p.unlink()
    spool.put([("", b"b", 1)])  # noticed: the deleted file's items and marks are copied over
    assert spool.mark("bf") == 7 and len(spool) == 2
    spool.close()
    assert Spool(path).mark("bf") == 7


def test_items_hold_records_peek_fills_a_batch_and_lengths_count_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q.spool")
    spool.put([("", b"a1\na2\na3", 3), ("", b"b1\nb2", 2), ("", b"c1", 1)])
    assert len(spool) == 6 and spool.counts() == (6, 0)
    # Whole items holding at most the limit (at least one item); `more`: the limit left some.
    assert [b for _, _, b in spool.peek(1)] == [b"a1\na2\na3"] and spool.more
    assert [b for _, _, b in spool.peek(4)] == [b"a1\na2\na3"] and spool.more
    assert [b for _, _, b in spool.peek(5)] == [b"a1\na2\na3", b"b1\nb2"] and spool.more
    assert [b for _, _, b in spool.peek(6)] == [b"a1\na2\na3", b"b1\nb2", b"c1"]
    assert not spool.more
    spool.ack([seq for seq, _, _ in spool.peek(5)])
    assert len(spool) == 1
    spool.close()
    assert len(Spool(tmp_path / "q.spool")) == 1


def test_the_bounds_drop_whole_items_and_count_their_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q.spool", max_bytes=10_000)
    for _ in range(100):
        spool.put([("", b"x" * 99 + b"\n" + b"y" * 99, 2)])  # 199 bytes, 2 records
    assert spool.size_bytes <= 10_000
    assert spool.dropped > 0 and spool.dropped % 2 == 0 and spool.dropped + len(spool) == 200
    spool.close()
    path = tmp_path / "m.spool"
    path.mkdir()  # the file cannot be written: the memory bound (here max_bytes) applies
    mem = Spool(path, max_bytes=1000, retry_s=3600)
    for _ in range(10):
        mem.put([("", b"z" * 199 + b"\n" + b"w" * 200, 3)])  # 400 bytes, 3 records
    assert mem.counts() == (0, 6) and mem.dropped == 24
    mem.close()


OLD_SPOOL = [  # the schema of a spool written before an item could hold several records
    "PRAGMA journal_mode=WAL",
    "CREATE TABLE q (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, body BLOB NOT NULL, "
    "size INTEGER NOT NULL)",
    "CREATE TABLE marks (key TEXT PRIMARY KEY, n INTEGER NOT NULL)",
]


def old_spool(path: Path, bodies: list[bytes], mark: tuple[str, int] | None = None) -> None:
    """A spool file as the previous release left it: one row per line (or event)."""
    db = sqlite3.connect(path, isolation_level=None)
    for sql in OLD_SPOOL:
        db.execute(sql)
    db.executemany("INSERT INTO q (key, body, size) VALUES ('', ?, ?)",
                   [(b, len(b)) for b in bodies])
    if mark is not None:
        db.execute("INSERT INTO marks VALUES (?, ?)", mark)
    db.close()


def test_a_spool_of_the_previous_release_is_read_one_record_a_row(tmp_path: Path) -> None:
    path = tmp_path / "q.spool"
    old_spool(path, [b"l0", b"l1", b"l2"], mark=("bf", 9))
    spool = Spool(path)
    assert len(spool) == 3 and spool.size_bytes == 6 and spool.mark("bf") == 9
    spool.put([("", b"n0\nn1", 2)], mark=("bf", 11))  # new items after the old rows
    assert [b for _, _, b in spool.peek(2)] == [b"l0", b"l1"]
    assert [b for _, _, b in spool.peek(100)] == [b"l0", b"l1", b"l2", b"n0\nn1"]
    assert len(spool) == 5 and spool.mark("bf") == 11
    spool.ack([seq for seq, _, _ in spool.peek(3)])
    spool.close()
    again = Spool(path)  # migrated once: opens as a current spool
    assert [b for _, _, b in again.peek(100)] == [b"n0\nn1"] and len(again) == 2
    again.close()
