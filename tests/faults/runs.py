"""Helpers for the fault tests: a real `timewatch run` subprocess against simulated NTP servers,
and waits on what it says (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timewatch.sim.ntpserver import Behaviour, SimNtpServer

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout_s} s"
        time.sleep(0.05)


class NtpServers:
    """Simulated NTP servers on loopback addresses, served by an event loop in a thread."""

    def __init__(self, hosts: list[str], port: int = 0):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[SimNtpServer] = []
        for h in hosts:
            fut = asyncio.run_coroutine_threadsafe(SimNtpServer(h, port, Behaviour()).start(),
                                                   self.loop)
            self.servers.append(fut.result(10))

    def set(self, i: int, **behaviour: Any) -> None:
        b = self.servers[i].behaviour
        self.loop.call_soon_threadsafe(lambda: [setattr(b, k, v) for k, v in behaviour.items()])

    def close(self) -> None:
        for s in self.servers:
            self.loop.call_soon_threadsafe(s.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def config_text(state: Path, servers: NtpServers, *, http: str = "", extra: str = "",
                monitor: str = "") -> str:
    srcs = "".join(f'[[sources]]\nid = "s{i}"\nkind = "ntp"\nserver = "{s.host}"\n'
                   f"port = {s.port}\npoll_s = 1\n\n" for i, s in enumerate(servers.servers))
    return (f'[monitor]\nhost = "t"\nstate_dir = "{state}"\n{monitor}\n[http]\nlisten = "{http}"\n\n'
            f"{srcs}{extra}")


class Run:
    """`timewatch run -c CONFIG` as a subprocess; stderr collected in a thread."""

    def __init__(self, cfg: Path, *, args: tuple[str, ...] = (),
                 preexec: Callable[[], None] | None = None, env: dict[str, str] | None = None,
                 module: str = "timewatch.cli"):
        # module "tests.faults.harness": the same CLI with the test faults (faultkind.py).
        self.p = subprocess.Popen(
            [sys.executable, "-m", module, "run", "-c", str(cfg), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, preexec_fn=preexec)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def wait_log(self, text: str, timeout_s: float = 30.0) -> None:
        wait_for(lambda: text in self.err or self.p.poll() is not None, timeout_s,
                 f"log line {text!r}")
        assert text in self.err, f"run ended ({self.p.returncode}) before {text!r}:\n{self.err}"

    def stop(self, timeout_s: float = 60.0, sig: int = signal.SIGTERM) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()  # never leave it behind
            raise AssertionError(f"the run did not stop within {timeout_s} s of the signal:\n"
                                 f"{self.err[-3000:]}") from None
        self._t.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def events(state: Path) -> list[dict[str, Any]]:
    p = state / "events.jsonl"
    if not p.exists():
        return []
    return [json.loads(ln) for ln in p.read_text().splitlines()  # not the evidence checkpoints
            if ln.strip() and not ln.startswith('{"type": "checkpoint"')]


# -- sinks' receivers and a state directory on its own small file system -----------------------

def mount_tmpfs(path: Path, options: str) -> None:
    """A tmpfs of its own at path (as root): `size=1M` to fill it, `ro` for a read-only one."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write zeros into path until the file system is full; the bytes written."""
    n = 0
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError:
                break
    return n


def influx_points(lines: list[str]) -> set[tuple[str, int]]:
    """(source, t_ns) of every tw_sample line."""
    out = set()
    for ln in lines:
        if ln.startswith("tw_sample,"):
            tags = dict(kv.split("=", 1) for kv in ln.split(" ", 1)[0].split(",")[1:])
            out.add((tags["source"], int(ln.rsplit(" ", 1)[1])))
    return out


def store_points(db_path: Path) -> set[tuple[str, int]]:
    import sqlite3

    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {(s, int(t)) for s, t in db.execute("SELECT src, t_ns FROM samples")}
    finally:
        db.close()
