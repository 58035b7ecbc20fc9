"""The runner speaks sd_notify: READY once running, WATCHDOG at its cadence, STATUS, STOPPING."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from timewatch.appliance import add_systemd_hooks
from timewatch.config import parse
from timewatch.notify import Notifier
from timewatch.runner import Hooks, Runner


def test_runner_notifies_ready_watchdog_status_and_stopping(tmp_path: Path) -> None:
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.1)
    # WatchdogSec=2 s: the runner must ping well within every 2 s.
    n = Notifier({"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000"})
    hooks = Hooks()
    add_systemd_hooks(hooks, n)
    cfg = parse({"monitor": {"state_dir": str(tmp_path)}, "http": {"listen": ""}})
    runner = Runner(cfg, duration_s=6.5, hooks=hooks, sinks=[])
    got: list[tuple[float, bytes]] = []

    async def main() -> None:
        task = asyncio.create_task(runner.run())
        while not task.done():
            await asyncio.sleep(0.05)
            try:
                while True:
                    got.append((time.monotonic(), sock.recv(4096)))
            except (TimeoutError, BlockingIOError):
                pass
        assert task.result() == 0

    asyncio.run(main())
    try:
        while True:
            got.append((time.monotonic(), sock.recv(4096)))
    except TimeoutError:
        pass
    sock.close()
    msgs = [m for _, m in got]
    assert msgs[0].startswith(b"READY=1\nSTATUS=monitoring")
    assert msgs[-1] == b"STOPPING=1"
    pings = [t for t, m in got if m == b"WATCHDOG=1"]
    assert len(pings) >= 4, msgs
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) < 2.0, gaps  # inside WatchdogSec
    assert any(m.startswith(b"STATUS=") and b"groups agree" in m for m in msgs), msgs
