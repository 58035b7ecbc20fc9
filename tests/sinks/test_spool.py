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
    time.sleep(max(0.0, tries[0] + 0.7 - time.monotonic()))
    assert len(tries) == 1, "new data cut the back-off short"
    down.clear()
    _wait(lambda: len(got) == 22)
    assert got == [b"a", b"b"] + [f"n{i}".encode() for i in range(20)]
    assert tries[1] - tries[0] >= 0.99 and sender.failures == 1 and len(spool) == 0
    down.set()
    spool.put([("", b"last")])
    sender.wake()
    _wait(lambda: sender.failures == 2)
    t = time.monotonic()
    sender.begin_close()  # closing ends the back-off at once: one last attempt
    assert sender.finish_close(time.monotonic() + 5.0)
    assert time.monotonic() - t < 0.8 and sender.failures == 3 and len(spool) == 1
    spool.close()
