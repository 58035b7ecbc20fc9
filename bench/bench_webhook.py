"""Webhook sink against a local HTTP receiver on 127.0.0.1 (http.server in a thread).

Prints:
- the engine-side cost of `handle` (outbox put, fsynced) per call, with one and with four
  endpoints;
- the delivery rate, events/s from the first `handle` until the receiver acknowledged all
  (standard format, signed: one POST per event);
- the drain rate of a backlog queued while the receiver was down (alertmanager: 50 per POST;
  slack: bursts of 20 per message).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from timewatch.config import parse
from timewatch.records import Event
from timewatch.sinks.webhook import WebhookSink

N_EVENTS = 1000  # a very bad day: alerts and clears of 500 conditions
BACKLOG = 2000  # events queued during an outage of the receiver
SECRET = "whsec_" + base64.b64encode(b"bench key, 32 bytes long........").decode()


class _Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.up = True
        lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 200 if rec.up else 503
                if rec.up:
                    with lock:
                        rec.count += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _events(n: int, prefix: str) -> list[Event]:
    out = []
    for i in range(n // 2):
        t = 1_764_160_950_000_000_000 + i * 10**9
        out.append(Event("alert", t, "source.stale", (f"s{i % 9}",), f"{prefix}{i:07x}",
                         "critical", "no usable data for 192 s", {"limit_s": 192.0}))
        out.append(Event("clear", t + 5 * 10**8, "source.stale", (f"s{i % 9}",),
                         f"{prefix}{i:07x}"))
    return out


def _sink(tmp: Path, hooks: list[dict[str, Any]]) -> WebhookSink:
    return WebhookSink(parse({"monitor": {"host": "bench", "state_dir": str(tmp)},
                              "http": {"listen": ""}, "sinks": {"webhook": hooks}}))


def _wait(sink: WebhookSink, timeout_s: float = 300) -> None:
    end = time.monotonic() + timeout_s
    while sink.pending():
        if time.monotonic() > end:
            raise RuntimeError(f"{sink.pending()} events still pending after {timeout_s} s")
        time.sleep(0.005)


def main() -> None:
    rec = _Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    hook = {"url": rec.url, "secret": SECRET, "min_severity": "info",
            "retry_initial_s": 0.05, "retry_max_s": 0.5}
    try:
        for n_ep in (1, 4):
            rec.up = False  # measure the put alone, no delivery competing for the disk
            sink = _sink(tmp / f"put{n_ep}", [dict(hook, url=f"{rec.url}/{i}")
                                              for i in range(n_ep)])
            evs = _events(400, f"p{n_ep}")
            t0 = time.perf_counter()
            for e in evs:
                sink.handle([e])
            dt = time.perf_counter() - t0
            print(f"handle, {n_ep} endpoint(s): {dt / len(evs) * 1e3:.2f} ms per call "
                  f"(one event, fsynced outbox put per endpoint)")
            sink.close(grace_s=0)

        rec.up = True
        rec.count = 0
        sink = _sink(tmp / "live", [hook])
        evs = _events(N_EVENTS, "l")
        t0 = time.perf_counter()
        for i in range(0, len(evs), 4):
            sink.handle(evs[i:i + 4])
        _wait(sink)
        dt = time.perf_counter() - t0
        sink.close()
        print(f"delivery, standard (signed, one POST per event): {rec.count} events in "
              f"{dt:.2f} s = {rec.count / dt:,.0f} events/s")

        for fmt, extra in (("alertmanager", {}), ("slack", {"group_window_s": 0.0})):
            rec.up = False
            sink = _sink(tmp / f"drain-{fmt}", [dict(hook, format=fmt, **extra)])
            evs = _events(BACKLOG, fmt[:2])
            sink.handle(evs)
            time.sleep(0.2)
            rec.count = 0
            rec.up = True
            t0 = time.perf_counter()
            _wait(sink)
            dt = time.perf_counter() - t0
            sink.close()
            print(f"drain, {fmt}: {len(evs)} queued events in {dt:.2f} s = "
                  f"{len(evs) / dt:,.0f} events/s ({rec.count} POSTs)")
    finally:
        rec.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
