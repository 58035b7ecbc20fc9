"""The status page at `/` in a real browser (Debian's headless chromium) against a real monitor.

A `timewatch run` subprocess polls four simulated NTP servers on 127.0.0.71-.74 (one operator
each, polled every second) and reads a simulated GNSS receiver from a pty. Chromium loads `/`
(`--dump-dom`: the DOM after parsing, what a user would see) and takes a screenshot, decoded and
checked not blank; then sim-d starts lying by +150 ms and a second load must show it
falseticker, with its `source.falseticker` alert and the evidence.

`TIMEWATCH_SCREENSHOT=PATH` keeps the screenshot of the attacked page, and
`TIMEWATCH_SCREENSHOT_RUN_S=S` lets the monitor run S seconds before the attack and S/3 after it, so
that the charts have a history to show. docs/status-page.png is made so:
`TIMEWATCH_SCREENSHOT=docs/status-page.png TIMEWATCH_SCREENSHOT_RUN_S=600 pytest
tests/integration/test_statuspage_chromium.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, need_binary
from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.ntpserver import SimNtpServer, start_servers
from timewatch.sim.receiver import PtyReceiver

HOSTS = [f"127.0.0.{i}" for i in range(71, 75)]
IDS = ["sim-a", "sim-b", "sim-c", "sim-d"]
ANTENNA = (48.8566, 2.3522, 35.0)
LIE_S = 0.150
WAIT_S = 60.0  # the monitor's verdicts come within seconds; this is the give-up limit


@dataclass
class Monitor:
    url: str
    servers: list[SimNtpServer]
    proc: subprocess.Popen[bytes]
    log: Path

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url + "status.json", timeout=2) as r:
                doc: dict[str, Any] = json.loads(r.read())
                return doc
        except OSError:
            return None

    def wait(self, what: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        doc = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"timewatch run exited: {self.log.read_text()[-2000:]}"
            doc = self.status()
            if doc is not None and ok(doc):
                return doc
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last status: {doc}")


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    tmp = tmp_path_factory.mktemp("statuspage")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sim-ntp", daemon=True)
    thread.start()
    # Port 0: each server holds the port the kernel gives it.
    servers = asyncio.run_coroutine_threadsafe(start_servers(HOSTS, 0), loop).result(10)
    tty = tmp / "gnss0.tty"
    receiver = PtyReceiver(tty, NmeaSim(random.Random(1), position=ANTENNA, src="gnss0"))
    receiver.start()
    http = f"127.0.0.1:{free_port(kind=socket.SOCK_STREAM)}"
    ntp = "".join(f'\n[[sources]]\nid = "{i}"\nkind = "ntp"\nserver = "{s.host}"\n'
                  f'port = {s.port}\npoll_s = 1\ngroup = "op-{i[-1]}"\n'
                  for i, s in zip(IDS, servers, strict=True))
    cfg = tmp / "timewatch.toml"
    cfg.write_text(f'[monitor]\nhost = "lab-status-page"\nstate_dir = "{tmp / "state"}"\n'
                   f'[http]\nlisten = "{http}"\n[detect]\nsnapshot_interval_s = 1\n'
                   f'\n[[sources]]\nid = "gnss0"\nkind = "gnss"\ndevice = "{tty}"\nbaud = 9600\n'
                   f'group = "gnss"\nposition = [{ANTENNA[0]}, {ANTENNA[1]}, {ANTENNA[2]}]\n'
                   + ntp)
    log = tmp / "run.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    try:
        yield Monitor(f"http://{http}/", servers, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        receiver.close()
        for s in servers:
            loop.call_soon_threadsafe(s.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


class Dom(HTMLParser):
    """The dumped DOM: each source card's id and verdict, alert cards, the text of each card."""

    def __init__(self, html: str):
        super().__init__()
        self.verdicts: dict[str, str] = {}
        self.alerts: list[str] = []
        self.card_text: dict[str, list[str]] = {}
        self.tags: set[str] = set()
        self._stack: list[tuple[str, str | None]] = []  # (tag, card key)
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        key = None
        if a.get("data-src") and a.get("data-verdict"):
            self.verdicts[str(a["data-src"])] = str(a["data-verdict"])
            key = f"src:{a['data-src']}"
        elif a.get("data-code"):
            self.alerts.append(str(a["data-code"]))
            key = f"alert:{len(self.alerts) - 1}"
        if tag not in ("meta", "br", "line", "rect", "circle", "path", "polygon", "polyline"):
            self._stack.append((tag, key))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, key in self._stack:
            if key is not None:
                self.card_text.setdefault(key, []).append(data)

    def text(self, key: str) -> str:
        return " ".join(" ".join(self.card_text.get(key, [])).split())


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    exe = need_binary("chromium")
    profile = tmp / f"profile-{time.monotonic_ns()}"
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True)


def dump_dom(url: str, tmp: Path) -> Dom:
    return Dom(chromium("--dump-dom", url, tmp=tmp).stdout)


def screenshot(url: str, tmp: Path, name: str) -> Path:
    from PIL import Image

    png = tmp / name
    chromium(f"--screenshot={png}", "--window-size=1100,1500", url, tmp=tmp)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (1100, 1500)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
        # Not blank: many colours (text anti-aliasing, verdict badges, charts), None = more.
        assert colours is None or len(colours) > 16, f"{png}: {len(colours or [])} colours"
    return png


def _truechimers(doc: dict[str, Any]) -> bool:
    v = {s["src"]: s["verdict"] for s in doc["sources"]}
    return all(v.get(i) == "truechimer" for i in IDS) and v.get("gnss0") == "truechimer"


def test_the_page_shows_the_verdicts_then_the_liar_and_its_alert(
        monitor: Monitor, tmp_path: Path) -> None:
    doc = monitor.wait("every source truechimer", _truechimers)
    dom = dump_dom(monitor.url, tmp_path)
    assert "script" not in dom.tags
    # Every source the monitor reports is on the page with the verdict it reports.
    want = {s["src"]: s["verdict"] for s in doc["sources"]}
    assert set(dom.verdicts) == set(want) == {*IDS, "gnss0"}
    assert all(dom.verdicts[i] == "truechimer" for i in IDS), dom.verdicts
    for i in IDS:
        t = dom.text(f"src:{i}")
        assert "ntp" in t and f"group op-{i[-1]}" in t and "agrees with" in t, t
    assert "gnss" in dom.text("src:gnss0")
    assert dom.alerts == []
    screenshot(monitor.url, tmp_path, "clean.png")
    history_s = float(os.environ.get("TIMEWATCH_SCREENSHOT_RUN_S", "0"))
    time.sleep(history_s)  # only for the docs picture (module docstring); 0 in the test suite

    monitor.servers[3].behaviour.offset_s = LIE_S  # sim-d is compromised
    monitor.wait("sim-d falseticker with its alert", lambda d: any(
        s["src"] == "sim-d" and s["verdict"] == "falseticker" for s in d["sources"]) and any(
        a["code"] == "source.falseticker" and "sim-d" in a["sources"]
        for a in d["active_alerts"]))
    dom = dump_dom(monitor.url, tmp_path)
    assert dom.verdicts["sim-d"] == "falseticker"
    assert all(dom.verdicts[i] == "truechimer" for i in IDS[:3]), dom.verdicts
    t = dom.text("src:sim-d")
    off = re.search(r"offset \+(\d+\.\d+) ms", t)  # the offset printed, about +150 ms
    assert "ahead of the consensus" in t and off and abs(float(off[1]) - 150) < 10, t
    i = dom.alerts.index("source.falseticker")
    alert = dom.text(f"alert:{i}")
    assert "sim-d" in alert and "critical" in alert and "offset_s" in alert, alert
    time.sleep(history_s / 3)
    png = screenshot(monitor.url, tmp_path, "attack.png")
    keep = os.environ.get("TIMEWATCH_SCREENSHOT")
    if keep:
        shutil.copyfile(png, keep)
