"""The `ptpnet` fixture: a PTP network of the test's own (timewatch/sim/ptpnet.py), two network
namespaces joined by a veth pair, names unique to the test run, removed at the end."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_binary, need_root
from timewatch.sim.ptpnet import PtpNet

__all__ = ["PtpNet", "ptpnet"]


@pytest.fixture
def ptpnet() -> Iterator[PtpNet]:
    need_root()
    for b in ("ip", "ptp4l", "pmc", "ethtool"):
        need_binary(b)
    tag = f"tw{os.getpid() % 100000}{int(time.monotonic() * 1000) % 1000:03d}"[:10]
    with tempfile.TemporaryDirectory(prefix="timewatch-ptpnet-") as d:
        net = PtpNet(tag, Path(d))
        try:
            net.create()
            yield net
        finally:
            net.remove()
