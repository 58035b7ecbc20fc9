"""The durable spool and the one delivery loop (SpoolSender) the InfluxDB and webhook sinks share."""

from __future__ import annotations

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
    spool.put([("", b"a"), ("", b"b")])
    sender.wake()
    _wait(lambda: len(tries) >= 1)
    for i in range(20):  # a stream of new data while the receiver is down
        spool.put([("", f"n{i}".encode())])
        sender.wake()
    down.clear()  # up again at once: only the back-off (1 s) may hold the retry
    _wait(lambda: len(got) == 22)
    assert got == [b"a", b"b"] + [f"n{i}".encode() for i in range(20)]
    assert tries[1] - tries[0] >= 0.99, "new data cut the back-off short"
    assert sender.failures == 1 and len(spool) == 0
    down.set()
    spool.put([("", b"last")])
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
    spool.put([("", b"a"), ("", b"b")], mark=("bf-1", 2))
    spool.put([], mark=("bf-1", 3))  # a chunk without lines still moves the mark
    spool.put([("", b"c")])  # a live put leaves the mark alone
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
    spool.put([("", b"a")], mark=("bf", 1))
    assert spool.failing is not None and spool.counts() == (0, 1)
    path.rmdir()
    spool.put([], mark=("bf", 2))  # the file can be written now: the items, then the mark
    assert spool.failing is None and spool.mark("bf") == 2
    assert [b for _, _, b in spool.peek(5)] == [b"a"]
    spool.close()


def test_a_deleted_spool_keeps_its_marks_in_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "q.spool"
    spool = Spool(path)
    spool.put([("", b"a")], mark=("bf", 7))
    for p in tmp_path.glob("q.spool*"):
        p.unlink()
    spool.put([("", b"b")])  # noticed: the deleted file's items and marks are copied over
    assert spool.mark("bf") == 7 and len(spool) == 2
    spool.close()
    assert Spool(path).mark("bf") == 7
