"""sd_notify messages on a test NOTIFY_SOCKET (abstract and path sockets)."""

from __future__ import annotations

import socket
from pathlib import Path

from timewatch.notify import Notifier


def _listen(addr: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(addr)
    s.settimeout(2)
    return s


def test_messages_arrive_on_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    s = _listen(path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_interval_s == 15.0
    assert n.ready("monitoring 4 sources")
    assert s.recv(4096) == b"READY=1\nSTATUS=monitoring 4 sources"
    n.watchdog()
    assert s.recv(4096) == b"WATCHDOG=1"
    n.stopping()
    assert s.recv(4096) == b"STOPPING=1"
    n.close()
    s.close()


def test_abstract_socket_address() -> None:
    name = f"timewatch-test-{id(object())}"
    s = _listen("\0" + name)
    n = Notifier({"NOTIFY_SOCKET": "@" + name})
    assert n.status("ok")
    assert s.recv(4096) == b"STATUS=ok"
    s.close()


def test_without_systemd_everything_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert n.ready() is False and n.watchdog() is False


def test_watchdog_for_another_pid_is_not_ours() -> None:
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None


def test_a_dead_socket_is_reported_not_raised(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.ready() is False
