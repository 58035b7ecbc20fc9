"""Shared test helpers: where the corpus is, and skipping what this machine cannot run."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Under CI (CI=true) hypothesis is derandomized: the same examples every run, so a red build is
# reproducible and never depends on luck.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"receiver corpus not found at {CORPUS}")
    return CORPUS


def wait_until(cond: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll cond until it is true (returned); fail naming `what` after timeout_s. The tests'
    way to wait for something: never a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while not (v := cond()):
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout_s} s"
        time.sleep(0.01)
    return v


async def await_until(cond: Callable[[], Any], timeout_s: float = 10.0,
                      what: str = "condition") -> Any:
    """wait_until inside an event loop (the loop keeps running while it waits)."""
    deadline = time.monotonic() + timeout_s
    while not (v := cond()):
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout_s} s"
        await asyncio.sleep(0.01)
    return v


def free_port(hosts: list[str] | tuple[str, ...] = ("127.0.0.1",),
              kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """A port free on every one of `hosts` right now, the kernel's choice (so parallel runs do
    not pick the same), for a server the test starts that binds it itself (chronyd). A server
    of our own binds port 0 instead and holds the port it gets."""
    for _ in range(100):
        socks: list[socket.socket] = []
        try:
            for h in hosts:
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((h, socks[0].getsockname()[1] if len(socks) > 1 else 0))
            return int(socks[0].getsockname()[1])
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no port free on all of {hosts}")


def need_binary(name: str) -> str:
    """Path of a program the test starts for real; skip (with the reason) when it is missing."""
    p = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if p is None:
        pytest.skip(f"{name} is not installed (make test installs it as root)")
    return p


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (chronyd -u root, binding 127.0.0.x)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a skipped test is a failure: every binary and the corpus are there, so nothing
    may silently not run. Locally a skip stays a skip (with its reason, `-ra`)."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI, which must run every test: {reason}"
