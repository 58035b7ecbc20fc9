"""Prometheus, for real: `promtool` (Debian `prometheus`) checks the shipped alerting rules, runs
their unit tests, checks the scrape config, and lints a /metrics scrape of a running `timewatch
run` (a simulated receiver on a pty read by the serial reader, four simulated NTP servers on
loopback). The GNSS, PPS and holdover metrics carry the engine's own numbers: a simulated GNSS +
PPS + NTP hour replayed through the real engine into the status API."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import need_binary
from timewatch.config import parse
from timewatch.engine import Engine
from timewatch.records import Snapshot
from timewatch.sim.ntpserver import SimNtpServer, start_servers
from timewatch.sim.receiver import PtyReceiver
from timewatch.sim.scenarios import build
from timewatch.sinks.http import STATUS_METRICS, HttpSink

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "hw" / "prometheus"
RULES = PROM / "timewatch-rules.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    return need_binary("promtool")


def test_promtool_checks_the_rules_their_unit_tests_and_the_scrape_config(promtool: str
                                                                          ) -> None:
    for args in (["check", "rules", str(RULES)],
                 ["test", "rules", str(PROM / "timewatch-rules.test.yml")],
                 ["check", "config", str(PROM / "prometheus.yml")]):
        r = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                           cwd=PROM)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS" in r.stdout + r.stderr


def test_every_rule_has_a_unit_test_that_fires_it_and_uses_exported_metrics() -> None:
    rules = RULES.read_text()
    tests = (PROM / "timewatch-rules.test.yml").read_text()
    alerts = re.findall(r"^\s+- alert: (\w+)$", rules, re.M)
    assert len(alerts) == len(set(alerts)) >= 14
    for a in alerts:  # each is expected to fire somewhere (exp_alerts with labels follow it)
        assert re.search(rf"alertname: {a}\n\s+exp_alerts:\n\s+- exp_labels:", tests), a
    http_md = (ROOT / "docs" / "http.md").read_text()
    for name in set(re.findall(r"\b(timewatch_\w+)", rules)):
        assert f"`{name}`" in http_md, f"{name}: not a metric docs/http.md lists"
    for a in alerts:
        assert f"`{a}`" in http_md, f"{a}: not in docs/http.md's table of alerts"


# -- a running `timewatch run` --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NtpServers:
    """Four simulated NTP servers on their own loopback addresses, in a background loop."""

    def __init__(self, hosts: list[str]):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> list[SimNtpServer]:
            return [s for h in hosts for s in await start_servers([h], 0)]

        self.servers = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        for s in self.servers:
            self.loop.call_soon_threadsafe(s.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`timewatch run -c CONFIG` reading a simulated receiver and four simulated servers."""
    ntp = NtpServers(["127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"])
    rx = PtyReceiver(tmp_path / "gnss0.tty")
    rx.start()
    port = free_port()
    srcs = "".join(f'[[sources]]\nid = "ntp{i}"\nkind = "ntp"\nserver = "{s.host}"\n'
                   f"port = {s.port}\npoll_s = 1\n\n" for i, s in enumerate(ntp.servers))
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[monitor]\nhost = "prom-lab"\nstate_dir = "{tmp_path / "state"}"\n\n'
                   f'[[sources]]\nid = "gnss0"\nkind = "gnss"\ndevice = "{tmp_path / "gnss0.tty"}"'
                   f'\nbaud = 9600\ngroup = "gnss"\nposition = [48.8566, 2.3522, 35.0]\n\n{srcs}'
                   f'[http]\nlisten = "127.0.0.1:{port}"\n\n[detect]\nsnapshot_interval_s = 1\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "timewatch", "run", "-c", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        rx.close()
        ntp.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_promtool_checks_metrics_scraped_from_a_running_monitor(
        promtool: str, running: tuple[int, subprocess.Popen[str]]) -> None:
    port, proc = running
    text = ""
    t_end = time.monotonic() + 40
    while time.monotonic() < t_end:  # until the receiver's epochs and the servers' replies count
        assert proc.poll() is None, proc.communicate()
        try:
            text = scrape(port)
        except OSError:
            text = ""
        if "timewatch_gnss_satellites_used{" in text and "timewatch_ntp_delay_seconds{" in text:
            break
        time.sleep(0.25)
    assert "timewatch_gnss_satellites_used{" in text, text[-3000:]
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    info = fams["timewatch_build_info"].samples[0]
    assert info.value == 1 and info.labels["version"] == version("timewatch")
    gnss = {f: fams[f].samples[0] for f in ("timewatch_gnss_fix", "timewatch_gnss_fix_valid",
                                            "timewatch_gnss_satellites_used",
                                            "timewatch_gnss_satellites_visible",
                                            "timewatch_gnss_cn0_stddev_dbhz")}
    assert all(s.labels == {"source": "gnss0", "group": "gnss", "kind": "gnss"}
               for s in gnss.values())
    assert gnss["timewatch_gnss_fix"].value == 3 and gnss["timewatch_gnss_fix_valid"].value == 1
    assert 4 <= gnss["timewatch_gnss_satellites_used"].value <= \
        gnss["timewatch_gnss_satellites_visible"].value
    assert gnss["timewatch_gnss_cn0_stddev_dbhz"].value > 2  # a simulated real sky
    delays = fams["timewatch_ntp_delay_seconds"].samples
    assert {s.labels["source"] for s in delays} <= {f"ntp{i}" for i in range(4)} and \
        all(0 < s.value < 0.05 for s in delays)  # loopback


# -- the engine's numbers -------------------------------------------------------------------


def replay_into(sink: HttpSink, scenario: str, duration_s: float, **params: object
                ) -> Snapshot:
    st = build(scenario, 1, duration_s, **params)
    eng = Engine(st.header)
    last: Snapshot | None = None
    for o in st.observations:
        out = eng.feed(o)
        if out:
            sink.handle(out)
            last = next((x for x in reversed(out) if isinstance(x, Snapshot)), last)
    assert last is not None
    return last


def test_gnss_pps_and_holdover_metrics_are_the_engines_numbers(promtool: str,
                                                              tmp_path: Path) -> None:
    cfg = parse({"monitor": {"state_dir": str(tmp_path)}, "http": {"listen": "127.0.0.1:0"}})
    sink = HttpSink(cfg)
    try:
        snap = replay_into(sink, "gnss_clean", 3600)
        text = scrape(int(sink.address.rsplit(":", 1)[1]))
    finally:
        sink.close()
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    names = {f.name for f in fams.values()}
    by_src = {st.src: st for st in snap.sources}
    checked = 0
    for key, name, typ, _ in STATUS_METRICS:
        prom = name.removesuffix("_total") if typ == "counter" else name
        for st in snap.sources:
            v = st.fields.get(key)
            if v is None or isinstance(v, dict):
                continue
            assert prom in names, f"{name}: missing though {st.src} has {key}={v}"
            got = {s.labels["source"]: s.value for s in fams[prom].samples
                   if s.name == name}
            assert got[st.src] == pytest.approx(float(v)), (name, st.src)
            assert by_src[st.src].kind == next(s for s in fams[prom].samples
                                               if s.labels["source"] == st.src).labels["kind"]
            checked += 1
    assert checked >= 12  # GNSS, PPS and NTP numbers all went through
    pps = next(st for st in snap.sources if st.kind == "pps")
    assert fams["timewatch_pps_jitter_seconds"].type == "gauge"
    assert fams["timewatch_pps_missing_pulses"].type == "counter"
    wander = fams["timewatch_holdover_wander_ppm"].samples[0].value
    assert wander == pps.fields["holdover_wander_ppm"] and 0 < wander < 1  # a crystal's
    freq = fams["timewatch_holdover_frequency_ppm"].samples[0].value
    assert snap.holdover_ppm is not None and freq == snap.holdover_ppm
    assert math.isfinite(freq) and abs(freq) < 100


def test_missing_pulses_show_in_the_counter(tmp_path: Path) -> None:
    cfg = parse({"monitor": {"state_dir": str(tmp_path)}, "http": {"listen": "127.0.0.1:0"}})
    sink = HttpSink(cfg)
    try:
        snap = replay_into(sink, "pps_faults", 420, fault="missing")
        text = scrape(int(sink.address.rsplit(":", 1)[1]))
    finally:
        sink.close()
    pps = next(st for st in snap.sources if st.kind == "pps")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    missing = fams["timewatch_pps_missing_pulses"].samples[0]
    assert missing.name == "timewatch_pps_missing_pulses_total"
    assert missing.value == pps.fields["missing_total"] > 0
    assert fams["timewatch_pps_interval_faults"].samples[0].value == pps.fields["interval_faults"]
