"""The InfluxDB sink against a local HTTP server on 127.0.0.1 that answers as told:
durability, retries, rejected lines, shutdown, the disk bound, and a token that never shows."""

from __future__ import annotations

import gzip
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from timewatch.config import Config, parse
from timewatch.records import Sample
from timewatch.sinks.influx import InfluxSink
from timewatch.sinks.lineproto import Encoder
from timewatch.sinks.spool import Spool

from .test_spool import old_spool

TOKEN = "tw-secret-token-5f1d0c"
T0 = 1_764_160_950_000_000_000


class FakeInflux:
    """Records every write it accepts; `answer(lines) -> status` decides each reply."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.requests: list[dict[str, str]] = []
        self.answer: Callable[[list[str]], int] = lambda lines: 204
        self.delay_s = 0.0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                lines = [ln for ln in body.decode().split("\n") if ln]
                time.sleep(outer.delay_s)
                status = outer.answer(lines)
                u = urlsplit(self.path)
                outer.requests.append({"path": u.path, **{k: v[0] for k, v in
                                                          parse_qs(u.query).items()},
                                       "auth": self.headers.get("Authorization", ""),
                                       "encoding": self.headers.get("Content-Encoding", ""),
                                       "status": str(status), "lines": str(len(lines))})
                if status < 300:
                    outer.lines.extend(lines)
                msg = b'{"code":"invalid","message":"unable to parse"}' if status >= 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            def log_message(self, *a: object) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def fake() -> Iterator[FakeInflux]:
    f = FakeInflux()
    yield f
    f.close()


def _cfg(tmp: Path, port: int, **influx: object) -> Config:
    ix = {"url": f"http://127.0.0.1:{port}", "org": "o", "bucket": "b", "token": TOKEN,
          "batch_size": 10, "flush_interval_s": 0.1, "timeout_s": 2.0, **influx}
    return parse({"monitor": {"host": "h", "state_dir": str(tmp)},
                  "sources": [{"id": "n1", "kind": "ntp", "server": "127.0.0.1"}],
                  "sinks": {"influxdb": ix}})


def _samples(n: int, start: int = 0) -> list[Sample]:
    return [Sample("n1", T0 + i * 10**9, i * 1e-6, 1e-3, {"delay_s": 0.01})
            for i in range(start, start + n)]


def _ts(lines: list[str]) -> list[int]:
    return [int(ln.rsplit(" ", 1)[1]) for ln in lines]


def _wait(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_points_arrive_gzipped_at_ns_precision_with_the_token(tmp_path: Path,
                                                               fake: FakeInflux) -> None:
    sink = InfluxSink(_cfg(tmp_path, fake.port))
    sink.handle(_samples(25))
    sink.close()
    assert _ts(fake.lines) == [T0 + i * 10**9 for i in range(25)]
    r = fake.requests[0]
    assert r["path"] == "/api/v2/write" and r["precision"] == "ns"
    assert r["org"] == "o" and r["bucket"] == "b"
    assert r["encoding"] == "gzip" and r["auth"] == f"Token {TOKEN}"
    # batch_size (10) caps a request: two full batches at once, the partial one at close.
    assert [int(r["lines"]) for r in fake.requests] == [10, 10, 5]


def test_handle_does_not_wait_for_a_stuck_server(tmp_path: Path, fake: FakeInflux) -> None:
    gate = threading.Event()
    fake.answer = lambda lines: 204 if gate.wait(30) else 500  # holds every request until opened
    # A long client timeout: a held request must not time out and be sent twice.
    sink = InfluxSink(_cfg(tmp_path, fake.port, batch_size=5, timeout_s=60.0))
    feeder = threading.Thread(target=lambda: [sink.handle(_samples(5, start=i * 5))
                                              for i in range(20)])
    feeder.start()
    feeder.join(timeout=20)
    assert not feeder.is_alive(), "handle blocked on the network"
    assert fake.lines == [] and sink.pending == 100
    gate.set()
    sink.close()
    assert sorted(_ts(fake.lines)) == [T0 + i * 10**9 for i in range(100)]


def test_server_errors_are_retried_until_every_point_arrives_once(tmp_path: Path,
                                                                  fake: FakeInflux) -> None:
    answers = iter([503, 500, 429])
    fake.answer = lambda lines: next(answers, 204)
    sink = InfluxSink(_cfg(tmp_path, fake.port))
    sink.handle(_samples(30))
    _wait(lambda: sink.pending == 0, timeout_s=20)
    sink.close()
    assert _ts(fake.lines) == [T0 + i * 10**9 for i in range(30)]
    assert sink.failures == 3 and sink.sent == 30


def test_a_rejected_line_is_dropped_alone_and_the_rest_delivered(tmp_path: Path,
                                                                 fake: FakeInflux,
                                                                 caplog: pytest.LogCaptureFixture
                                                                 ) -> None:
    bad_t = T0 + 7 * 10**9
    fake.answer = lambda lines: 400 if any(ln.endswith(f" {bad_t}") for ln in lines) else 204
    sink = InfluxSink(_cfg(tmp_path, fake.port))
    sink.handle(_samples(20))
    sink.close()
    assert sorted(_ts(fake.lines)) == [T0 + i * 10**9 for i in range(20) if i != 7]
    assert sink.rejected == 1 and sink.pending == 0
    assert f"{bad_t}" in caplog.text and "rejected" in caplog.text


def test_server_down_close_keeps_points_and_next_start_delivers_them(tmp_path: Path) -> None:
    fake = FakeInflux()
    port = fake.port
    fake.close()  # nothing listens on the port now
    sink = InfluxSink(_cfg(tmp_path, port))
    sink.handle(_samples(40))
    t = time.monotonic()
    sink.close()
    assert time.monotonic() - t < 5.0, "close hung on a dead server"
    assert sink.sent == 0
    fake2 = FakeInflux()
    try:
        sink2 = InfluxSink(_cfg(tmp_path, fake2.port))
        sink2.close()
        assert _ts(fake2.lines) == [T0 + i * 10**9 for i in range(40)]
    finally:
        fake2.close()


def test_points_survive_kill_9_of_the_process(tmp_path: Path, fake: FakeInflux) -> None:
    # A child process spools 50 points with the server unreachable and is SIGKILLed.
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from tests.sinks.test_influx import _cfg, _samples
        from timewatch.sinks.influx import InfluxSink
        sink = InfluxSink(_cfg(__import__("pathlib").Path({str(tmp_path)!r}), 9, batch_size=1000,
                               flush_interval_s=3600))
        for i in range(10):
            sink.handle(_samples(5, start=i * 5))
        print("spooled", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9 and "spooled" in p.stdout, p.stderr
    sink = InfluxSink(_cfg(tmp_path, fake.port))
    sink.close()
    assert _ts(fake.lines) == [T0 + i * 10**9 for i in range(50)]


def test_disk_bound_drops_oldest_with_a_warning(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    sink = InfluxSink(_cfg(tmp_path, 9, spool_max_mb=1, flush_interval_s=3600))
    for i in range(100):  # ~100 bytes a line: 1.2 MB
        sink.handle(_samples(120, start=i * 120))
    assert sink.spool.size_bytes <= 2**20
    # Counted in lines, whole items (batch_size = 10 lines) at a time: every line put is either
    # still spooled or counted as dropped.
    assert sink.spool.dropped > 0 and sink.spool.dropped % 10 == 0
    assert sink.spool.dropped + sink.pending == 12_000
    assert "disk bound of 1 MB reached" in caplog.text and "spool_max_mb" in caplog.text
    sink.close()


def test_token_never_appears_in_logs(tmp_path: Path, fake: FakeInflux,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = iter([401, 500, 400])
    fake.answer = lambda lines: next(answers, 204)
    sink = InfluxSink(_cfg(tmp_path, fake.port, batch_size=1))
    sink.handle(_samples(3))
    _wait(lambda: sink.pending == 0, timeout_s=20)
    sink.close()
    assert "401" in caplog.text  # the failures were logged ...
    assert TOKEN not in caplog.text  # ... without the token
    assert TOKEN not in repr(sink.cfg) and TOKEN not in str(sink.last_error)


def test_close_flushes_everything_before_returning(tmp_path: Path, fake: FakeInflux) -> None:
    # Long flush interval, big batch: nothing would be sent before close on its own.
    sink = InfluxSink(_cfg(tmp_path, fake.port, batch_size=100_000, flush_interval_s=3600))
    sink.handle(_samples(1000))
    assert fake.lines == []
    sink.close()
    assert len(fake.lines) == 1000
    assert sink.pending == 0
    assert len(Spool(tmp_path / "influxdb.spool")) == 0


def test_a_call_s_lines_are_spooled_as_items_of_at_most_a_batch(tmp_path: Path) -> None:
    sink = InfluxSink(_cfg(tmp_path, 9, batch_size=10, flush_interval_s=3600))
    sink.handle(_samples(25))
    sink.handle(_samples(3, start=25))
    db = sqlite3.connect(tmp_path / "influxdb.spool")
    rows = db.execute("SELECT n, body FROM q ORDER BY seq").fetchall()
    db.close()
    assert [n for n, _ in rows] == [10, 10, 5, 3] and sink.pending == 28
    lines = [ln.decode() for _, body in rows for ln in body.split(b"\n")]
    assert _ts(lines) == [T0 + i * 10**9 for i in range(28)]
    sink.close()


def test_an_upgrade_sends_the_previous_release_s_spool_once_then_the_new_lines(
        tmp_path: Path, fake: FakeInflux) -> None:
    """An appliance upgraded with lines waiting in its spool (one row per line, the previous
    release's layout) loses none of them and sends none twice."""
    old = Encoder.from_config(_cfg(tmp_path, 9)).lines(_samples(15))
    old_spool(tmp_path / "influxdb.spool", [ln.encode() for ln in old])
    sink = InfluxSink(_cfg(tmp_path, fake.port))
    assert sink.pending == 15
    sink.handle(_samples(12, start=15))
    sink.close()
    assert _ts(fake.lines) == [T0 + i * 10**9 for i in range(27)]
    assert sink.sent == 27 and sink.pending == 0
    # At most batch_size (10) lines a request, whole items: the old rows one line each, then
    # the new items (10 and 2 lines).
    assert [int(r["lines"]) for r in fake.requests] == [10, 5, 10, 2]


def test_a_server_failing_while_a_rejected_item_is_split_loses_no_line(
        tmp_path: Path, fake: FakeInflux) -> None:
    """The item stays until all its lines are delivered or dropped: a 503 in the middle of the
    split sends the whole item again later (the lines it had delivered go again and overwrite
    themselves; the bad line is rejected, and counted, again)."""
    bad_t = T0 + 7 * 10**9
    failed: list[int] = []

    def answer(lines: list[str]) -> int:
        if _ts(lines)[0] == T0 + 10 * 10**9 and not failed:  # the item's second half, once
            failed.append(1)
            return 503
        return 400 if any(ln.endswith(f" {bad_t}") for ln in lines) else 204

    fake.answer = answer
    sink = InfluxSink(_cfg(tmp_path, fake.port, batch_size=20))
    sink.handle(_samples(20))  # one item of 20 lines
    _wait(lambda: sink.pending == 0, timeout_s=20)
    sink.close()
    want = [T0 + i * 10**9 for i in range(20) if i != 7]
    assert sorted(set(_ts(fake.lines))) == want and sink.failures == 1
    assert len(fake.lines) == 19 + 9 and sink.rejected == 2  # lines 0-9 but 7 went twice
