"""Real chronyd servers and a chronyd client on loopback, started and stopped by the tests.

- `chrony_servers(n, liars={i: "+2.5s"}, port=...)`: n chronyd, one per 127.0.0.11, .12, ...
  (same port: free on all of them, unless given), serving their local clock at stratum 2; a
  liar runs under libfaketime.
- `chrony_client(servers)`: a chronyd client polling them (no clock control: `-x`), and
  `.sources()` reads its verdicts with `chronyc -c sources`.
Every process is stopped by its PID. Skips when not root or chronyd/chronyc/libfaketime missing.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, need_binary, need_root

# First loopback address of the server set: 127.0.0.11, .12, ...
FIRST_HOST = 11
# chronyd's first reply can take a moment after exec; wait at most this long for its pid file.
START_TIMEOUT_S = 5.0


def faketime_lib() -> str:
    hits = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") +
                  glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    if not hits:
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    return hits[0]


@dataclass
class ChronyProc:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    dir: Path
    fake: str | None = None  # FAKETIME value for a liar

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def log(self) -> str:
        p = self.dir / "chronyd.log"
        return p.read_text(errors="replace") if p.exists() else ""


def _start(chronyd: str, conf: Path, d: Path, env: dict[str, str],
           extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    logf = open(d / "chronyd.log", "wb")  # noqa: SIM115 - the child keeps it
    try:
        proc = subprocess.Popen([chronyd, "-x", "-d", "-u", "root", "-f", str(conf), *(extra or [])],
                                stdout=logf, stderr=subprocess.STDOUT, env=env)
    finally:
        logf.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (d / "chronyd.pid").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out = (d / "chronyd.log").read_text(errors="replace")
            proc.kill()
            raise RuntimeError(f"chronyd {conf} did not start: {out}")
        time.sleep(0.05)
    return proc


@pytest.fixture
def chrony_servers(tmp_path: Path) -> Iterator[Callable[..., list[ChronyProc]]]:
    need_root()
    chronyd = need_binary("chronyd")
    started: list[ChronyProc] = []

    def start(n: int, liars: dict[int, str] | None = None,
              port: int | None = None) -> list[ChronyProc]:
        liars = liars or {}
        lib = faketime_lib() if liars else ""
        hosts = [f"127.0.0.{FIRST_HOST + i}" for i in range(n)]
        port = port or free_port(hosts)
        for i, host in enumerate(hosts):
            d = tmp_path / f"server-{host}"
            d.mkdir()
            conf = d / "chronyd.conf"
            conf.write_text(f"port {port}\nbindaddress {host}\nallow 127.0.0.0/8\n"
                            f"local stratum 2\ncmdport 0\npidfile {d}/chronyd.pid\n"
                            f"driftfile {d}/drift\n")
            env = dict(os.environ)
            if i in liars:
                env.update(LD_PRELOAD=lib, FAKETIME=liars[i])
            started.append(ChronyProc(host, port, _start(chronyd, conf, d, env), d,
                                      liars.get(i)))
        return started[-n:]

    yield start
    for c in started:
        c.stop()


@dataclass
class ChronyClient(ChronyProc):
    chronyc: str = "chronyc"

    def sources(self) -> list[dict[str, str]]:
        """`chronyc -c sources`: mode, state (x = falseticker), address, offsets, per source."""
        r = subprocess.run([self.chronyc, "-h", str(self.dir / "c.sock"), "-n", "-c", "sources"],
                           capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            raise RuntimeError(f"chronyc failed: {r.stderr.strip()}")
        keys = ("mode", "state", "address", "stratum", "poll", "reach", "last_rx",
                "offset_s", "measured_s", "error_s")
        return [dict(zip(keys, line.split(","), strict=False))
                for line in r.stdout.splitlines() if line]


@pytest.fixture
def chrony_client(tmp_path: Path) -> Iterator[Callable[..., ChronyClient]]:
    need_root()
    chronyd = need_binary("chronyd")
    chronyc = need_binary("chronyc")
    started: list[ChronyClient] = []

    def start(servers: list[ChronyProc], timeout_s: int = 120) -> ChronyClient:
        d = tmp_path / "client"
        d.mkdir(mode=0o750)
        d.chmod(0o750)  # chronyd refuses a command socket directory others can enter
        lines = [f"server {s.host} port {s.port} iburst minpoll 0 maxpoll 0" for s in servers]
        lines += [f"bindcmdaddress {d}/c.sock", "cmdport 0", "port 0",
                  f"pidfile {d}/chronyd.pid"]
        conf = d / "chronyd.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = _start(chronyd, conf, d, dict(os.environ), ["-t", str(timeout_s)])
        c = ChronyClient("127.0.0.1", 0, proc, d, chronyc=chronyc)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()
