"""Issue 18 finding 10: a webhook receiver that trickles its answer (a byte at a time, each
within the socket timeout) must not hold the endpoint: timeout_s bounds the whole request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.sinks.test_webhook import Receiver, config, events_sequence, keys
from timewatch.sinks.webhook import WebhookSink

TIMEOUT_S = 1.0
TRICKLE_EVERY_S = 0.4  # each byte well within the socket timeout


def test_a_trickling_receiver_is_cut_at_timeout_s_and_the_event_is_delivered(
        tmp_path: Path) -> None:
    trickling = threading.Event()  # the first request trickles, the others are answered at once
    first_cut = threading.Event()
    held_s: list[float] = []

    def plan(n: int, req: object) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, b"ok"

    rec = Receiver(plan)
    orig = rec.server.RequestHandlerClass

    class Trickle(orig):  # type: ignore[misc, valid-type]
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if trickling.is_set():
                super().do_POST()
                return
            trickling.set()
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            t0 = time.monotonic()
            try:
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 50:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(TRICKLE_EVERY_S)
            except OSError:
                pass  # the client hung up: what we want
            held_s.append(time.monotonic() - t0)
            first_cut.set()

    rec.server.RequestHandlerClass = Trickle
    sink = WebhookSink(config(tmp_path, {"url": rec.url, "timeout_s": TIMEOUT_S}))
    try:
        seq = events_sequence(1)
        t0 = time.monotonic()
        sink.handle(seq)
        # Before: every byte reset the socket timeout; the first request held the endpoint for
        # the whole trickle (1,000 bytes x 0.4 s), nothing was delivered.
        assert rec.wait(lambda r: len(r.ok()) == len(seq), 15), "the events never got through"
        assert time.monotonic() - t0 < TIMEOUT_S + 3.0
        assert first_cut.wait(5) and held_s and held_s[0] < TIMEOUT_S + 1.5, held_s
        assert keys(rec.ok()) == [f"{e.id}.{e.type}" for e in seq]
        assert sink.endpoints[0].failures == 1
    finally:
        sink.close()
        rec.close()
