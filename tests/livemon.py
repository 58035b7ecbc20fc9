"""A real `timewatch run` subprocess for fault tests: a fake gpsd speaking gpsd's JSON on a port
the test holds, simulated NTP servers on loopback, and the monitor's trace, log and state read
back. Waits are on what the monitor wrote (its trace), never fixed sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timewatch.sim.ntpserver import SimNtpServer

ROOT = Path(__file__).resolve().parent.parent
NTP_HOSTS = ("127.0.0.71", "127.0.0.72", "127.0.0.73")
S = 1_000_000_000


def pps_report(clock_ns: int, real_sec: int | None = None) -> bytes:
    """gpsd's PPS report of an edge the host clock read at clock_ns."""
    sec, nsec = divmod(clock_ns, S)
    return json.dumps({"class": "PPS", "device": "/dev/pps0",
                       "real_sec": sec + (nsec > S // 2) if real_sec is None else real_sec,
                       "real_nsec": 0, "clock_sec": sec, "clock_nsec": nsec,
                       "precision": -20}).encode() + b"\n"


class FakeGpsd:
    """Serves each connection `script(n)`: an iterator of lines (bytes, or a callable giving
    bytes when it is sent), one every `interval_s`. Counts connections and lines sent."""

    def __init__(self, script: Callable[[int], Iterator[bytes | Callable[[], bytes]]],
                 interval_s: float = 1.0):
        self.script = script
        self.interval_s = interval_s
        self.connections = 0
        self.sent: list[bytes] = []
        self.done = asyncio.Event()  # the first session's script is exhausted
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> FakeGpsd:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readline()  # ?WATCH=...
            for item in self.script(self.connections):
                line = item() if callable(item) else item
                writer.write(line)
                await writer.drain()
                self.sent.append(line)
                await asyncio.sleep(self.interval_s)
            self.done.set()
            await reader.read()  # stay connected until the monitor goes
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@dataclass
class Monitor:
    """One `timewatch run` subprocess (config written by `config()`), its stderr collected."""

    tmp: Path
    sources_toml: str
    extra_toml: str = ""
    proc: asyncio.subprocess.Process | None = None
    stderr: list[str] = field(default_factory=list)
    rc: int | None = None

    @property
    def trace(self) -> Path:
        return self.tmp / "live.jsonl"

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def config(self) -> Path:
        cfg = self.tmp / "tw.toml"
        cfg.write_text(f'[monitor]\nhost = "t"\nstate_dir = "{self.state}"\n\n[http]\n'
                       f'listen = ""\n\n{self.extra_toml}\n{self.sources_toml}')
        return cfg

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "timewatch.cli", "run", "-c", str(self.config()),
            "--record", str(self.trace), stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"})
        self._reader = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace"))

    def records(self) -> list[dict[str, Any]]:
        """The trace's complete lines so far (the header first), its evidence checkpoints left
        out as every trace reader leaves them out (docs/evidence.md)."""
        if not self.trace.exists():
            return []
        out = []
        for line in self.trace.read_text().splitlines(keepends=True):
            if line.endswith("\n") and not line.startswith('{"type": "checkpoint"'):
                out.append(json.loads(line))
        return out

    async def wait_for(self, what: str, cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Poll `cond` (it reads the trace or the log) until it holds; fail naming `what`."""
        deadline = time.monotonic() + timeout_s
        while not cond():
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"monitor exited ({self.proc.returncode}) before {what}:\n"
                                     + "".join(self.stderr))
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n" + "".join(self.stderr))
            await asyncio.sleep(0.1)

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.rc = await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            await self.proc.wait()
            await self._reader
            raise AssertionError("the monitor did not stop within 30 s of SIGTERM:\n"
                                 + self.log()[-20000:]) from None
        await self._reader
        return self.rc

    def log(self) -> str:
        return "".join(self.stderr)

    def events(self) -> list[dict[str, Any]]:
        p = self.state / "events.jsonl"  # the events, not the checkpoints that seal them
        return [json.loads(x) for x in p.read_text().splitlines()
                if x.strip() and not x.startswith('{"type": "checkpoint"')] if p.exists() else []


async def ntp_servers(hosts: tuple[str, ...] = NTP_HOSTS) -> list[SimNtpServer]:
    return [await SimNtpServer(h, 0).start() for h in hosts]


def ntp_sources_toml(servers: list[SimNtpServer]) -> str:
    return "".join(f'[[sources]]\nid = "n{i}"\nkind = "ntp"\nserver = "{s.host}"\n'
                   f"port = {s.port}\npoll_s = 1\n\n" for i, s in enumerate(servers))


class FloodingNtpServer(SimNtpServer):
    """A server that answers each request with `flood` datagrams that are not the reply (half
    too short to be NTP, half replies with a wrong origin), then the genuine reply."""

    flood = 4000

    async def _answer(self, req: bytes, addr: tuple[str, int], b: Any,
                      rx_ns: int | None = None) -> None:
        wrong = bytearray(req[:48])
        wrong[0] = (wrong[0] & 0xF8) | 4  # mode 4, a server's reply
        t = self._sock
        for i in range(self.flood):
            if t is None:
                return
            try:
                if i % 2:
                    wrong[24:32] = (i * 0x9E3779B97F4A7C15 % 2**64).to_bytes(8, "big")
                    t.sendto(bytes(wrong), addr)
                else:
                    t.sendto(b"\x17" * (i % 47 + 1), addr)
            except BlockingIOError:  # the flood outran the socket buffer: a datagram less
                continue
        self.replies += self.flood
        await super()._answer(req, addr, b, rx_ns)
