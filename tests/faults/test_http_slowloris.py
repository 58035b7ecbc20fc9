"""Issue 18 finding 3: slow HTTP clients (1,100 connections each sending half a request, under
the 1,024 descriptor limit a service gets by default) must not exhaust the monitor's threads
and descriptors: the NTP readers keep their sources fresh, each slow client is dropped within
the request deadline, quietly."""

from __future__ import annotations

import os
import resource
import selectors
import socket
import threading
import time
import urllib.request
from pathlib import Path

from tests.faults.runs import NtpServers, Run, config_text, events, free_port, wait_for
from timewatch.sinks.http import MAX_CONNECTIONS, REQUEST_TIMEOUT_S

CLIENTS = 1100
ATTACK_S = 20.0
HEAD = b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never finished


class Slowloris:
    """Keeps CLIENTS connections open, each with half a request, one more byte a second;
    a connection the server closes is replaced at once."""

    def __init__(self, port: int):
        self.addr = ("127.0.0.1", port)
        self.sel = selectors.DefaultSelector()
        self.opened = 0
        self.closed_by_server = 0
        self.longest_s = 0.0  # longest a connection stayed open after its half request
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(self.addr)
        self.sel.register(s, selectors.EVENT_READ, {"head_t": None, "next": 0.0})
        self.opened += 1

    def _drop(self, s: socket.socket, now: float) -> None:
        st = self.sel.get_key(s).data
        self.sel.unregister(s)
        s.close()
        if st["head_t"] is not None:
            self.closed_by_server += 1
            self.longest_s = max(self.longest_s, now - st["head_t"])

    def _run(self) -> None:
        while not self.stop.is_set():
            conns = list(self.sel.get_map().values())
            pending = sum(1 for k in conns if k.data["head_t"] is None)
            for _ in range(min(CLIENTS - len(conns), 64 - pending)):  # the listen backlog's pace
                self._open()
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                s, st = key.fileobj, key.data
                if now < st["next"]:
                    continue
                try:
                    s.send(HEAD if st["head_t"] is None else b"x")  # type: ignore[union-attr]
                    if st["head_t"] is None:
                        st["head_t"] = now
                    st["next"] = now + 1.0
                except (BlockingIOError, InterruptedError):
                    pass  # not connected yet: the server has not accepted it
                except OSError:
                    if st["head_t"] is not None or now - st["next"] > 5:
                        self._drop(s, now)  # type: ignore[arg-type]
            for key, _ in self.sel.select(0.2):
                self._drop(key.fileobj, time.monotonic())  # type: ignore[arg-type]

    def still_open(self) -> int:
        """Half-requests sent and not yet closed by the server."""
        now = time.monotonic()
        for key, _ in self.sel.select(0):
            self._drop(key.fileobj, now)  # type: ignore[arg-type]
        return sum(1 for k in self.sel.get_map().values() if k.data["head_t"] is not None)

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def _proc(pid: int) -> tuple[int, int]:
    """(threads, open descriptors) of a process."""
    with open(f"/proc/{pid}/status") as f:
        threads = next(int(ln.split()[1]) for ln in f if ln.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def test_1100_slow_clients_leave_the_readers_working_and_are_dropped_in_time(
        tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= CLIENTS + 200, "the test needs descriptors"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, CLIENTS + 200) if hard ==
                       resource.RLIM_INFINITY else max(soft, min(hard, 4096)), hard))
    servers = NtpServers(["127.0.0.81", "127.0.0.82", "127.0.0.83"])
    port = free_port()
    state = tmp_path / "state"
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(state, servers, http=f"127.0.0.1:{port}"))
    # The default limit of a service: 1,024 descriptors.
    run = Run(cfg, preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    attack = Slowloris(port)
    try:
        run.wait_log("status API on")
        wait_for(lambda: _all_true(_status(port)), what="every source a truechimer")
        base_threads, base_fds = _proc(run.p.pid)
        attack.thread.start()
        peak = (0, 0)
        end = time.monotonic() + ATTACK_S
        while time.monotonic() < end:
            t, f = _proc(run.p.pid)
            peak = (max(peak[0], t), max(peak[1], f))
            time.sleep(0.2)
        attack.stop.set()
        attack.thread.join(10)
        # Bounded in count: the attack never took more than the connection bound.
        assert peak[0] <= base_threads + MAX_CONNECTIONS + 5, (peak, base_threads)
        assert peak[1] <= base_fds + MAX_CONNECTIONS + 20, (peak, base_fds)
        # Bounded in time: every half request is dropped within the request deadline.
        wait_for(lambda: attack.still_open() == 0, REQUEST_TIMEOUT_S + 5,
                 "slow clients dropped")
        assert attack.closed_by_server >= MAX_CONNECTIONS
        assert attack.longest_s <= REQUEST_TIMEOUT_S + 2.0, attack.longest_s
        # The NTP readers kept their sources fresh all along.
        doc = _status(port)
        assert _all_true(doc), doc
    finally:
        attack.stop.set()
        attack.close()
        rc = run.stop()
        servers.close()
    assert rc == 0, run.err[-3000:]
    stale = [e for e in events(state) if e["code"] == "source.stale"]
    assert stale == [], stale
    assert "Traceback" not in run.err, run.err[-3000:]
    assert "EMFILE" not in run.err and "Too many open files" not in run.err


def _all_true(doc: dict) -> bool:  # type: ignore[type-arg]
    return len(doc.get("sources", [])) == 3 and all(s["verdict"] == "truechimer"
                                                    for s in doc["sources"])


def _status(port: int) -> dict:  # type: ignore[type-arg]
    import json

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except OSError:
        return {}
