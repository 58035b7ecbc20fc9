"""Real time-series servers for tests: VictoriaMetrics and InfluxDB 1.x on 127.0.0.1.

Each server runs from the Debian binary with its data in a temporary directory, on a free port,
and is stopped by its PID. `stop()`/`start()` keep the port and the data, so a test can take a
server away mid-run and bring it back. Tests import the fixtures from here (`from
tests.integration.stores import victoria, influxdb1  # noqa: F401`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_binary

# A server that is not up after this long is broken, not slow (VictoriaMetrics starts in < 1 s,
# influxd in 1-2 s on a 2-core CI runner).
START_TIMEOUT_S = 20.0
# A server that has not shut down this long after SIGTERM is killed (both take well under a
# second to stop here).
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, timeout_s: float = 10.0,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """A server process with a fixed port and data directory; stop() and start() again."""

    def __init__(self, name: str, argv: list[str], port: int, health: str, log_path: Path):
        self.name, self.argv, self.port, self.health = name, argv, port, health
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped: tuple[float, bool] | None = None  # the last stop: (seconds, killed)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, f"{self.name} already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                status, _ = http("GET", self.url + self.health, timeout_s=1.0)
                if status < 300:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not up after {START_TIMEOUT_S} s: "
                           f"{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM, and SIGKILL only after STOP_TIMEOUT_S: a server killed may lose what it
        acknowledged last (VictoriaMetrics: its unflushed rows), which a test would misread as
        the sink's loss. `stopped` says how the last stop went: (seconds, killed)."""
        if self.proc is None:
            return
        t0 = time.monotonic()
        killed = False
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                killed = True
        self.stopped = (time.monotonic() - t0, killed)
        self.proc = None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError as e:
            return f"(no log: {e})"


class Victoria(Server):
    def __init__(self, tmp: Path):
        exe = need_binary("victoria-metrics")
        port = free_port()
        super().__init__("victoria-metrics", [
            exe, f"-storageDataPath={tmp / 'vm-data'}", f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",  # synthetic runs may be dated anywhere in the past
            "-loggerLevel=WARN",
        ], port, "/health", tmp / "victoria-metrics.log")

    def flush(self) -> None:
        """Make everything ingested so far searchable (VictoriaMetrics buffers ~1 s)."""
        http("GET", self.url + "/internal/force_flush")

    def export(self, match: str = '{__name__=~"tw_.*"}') -> list[dict[str, Any]]:
        """Every series matching, with all its raw samples (duplicates included)."""
        self.flush()
        q = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = http("GET", f"{self.url}/api/v1/export?{q}", timeout_s=60)
        assert status == 200, body[:500]
        return [json.loads(ln) for ln in body.decode().splitlines() if ln.strip()]


class Influx1(Server):
    def __init__(self, tmp: Path):
        exe = need_binary("influxd")
        port, rpc = free_port(), free_port()
        d = tmp / "influxdb"
        d.mkdir()
        conf = d / "influxdb.conf"
        conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d / 'meta'}"
[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
""")
        super().__init__("influxd", [exe, "-config", str(conf)], port, "/ping",
                         tmp / "influxd.log")

    def query(self, q: str, db: str = "timewatch") -> dict[str, Any]:
        qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        status, body = http("GET", f"{self.url}/query?{qs}", timeout_s=30)
        assert status == 200, f"{q}: HTTP {status}: {body[:500]!r}"
        return dict(json.loads(body))

    def write(self, lines: list[str], db: str = "timewatch") -> None:
        status, body = http("POST", f"{self.url}/write?db={db}&precision=ns",
                            "\n".join(lines).encode())
        assert status == 204, f"HTTP {status}: {body[:500]!r}"


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    vm = Victoria(tmp_path)
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture(scope="module")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx1]:
    srv = Influx1(tmp_path_factory.mktemp("influx1"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# A realistic synthetic run: what the engine emits for one GNSS receiver with PPS and three NTP
# servers (field names as the engine's trackers emit them; lineproto docs list them).

SYNTH_SOURCES = {
    "gnss0": ("gnss", "gnss"), "pps0": ("pps", "gnss"),
    "cloudflare": ("ntp", "cloudflare"), "google": ("ntp", "google"), "ptb": ("ntp", "ptb"),
}
SYNTH_NTP_POLL_S = 16  # a short poll, so a few minutes hold several replies per server


def synthetic_outputs(start_ns: int, duration_s: int) -> list[Any]:
    """Samples (GNSS and PPS at 1 Hz, NTP every poll), snapshots every 10 s, a few events."""
    import math

    from timewatch.records import Event, Sample, Snapshot, SourceStatus

    out: list[Any] = []
    for k in range(duration_s):
        t = start_ns + k * 10**9
        wob = math.sin(k / 30)
        # The fields of engine/gnss.py GnssTracker._epoch's Sample.
        out.append(Sample("gnss0", t + 120_000_000, 2e-8 * wob, 1e-7, {
            "fix": 3.0, "latency_s": 0.12 + 0.001 * wob, "sats_used": float(9 + (k % 3)),
            "sats_in_view": 14.0, "cn0_mean_db_hz": 40 + wob,
            "position_error_m": 2.5 + abs(wob)}))
        # The fields of engine/pps.py PpsTracker's Sample.
        out.append(Sample("pps0", t, 1e-8 * wob, 1e-6, {
            "jitter_s": 2e-7 + 1e-8 * abs(wob), "missing_total": float(k // 100),
            "phase_s": 1e-8 * wob, "interval_faults": 0.0, "seq": float(k),
            "label_latency_s": 0.12}))
        for i, sid in enumerate(("cloudflare", "google", "ptb")):
            if k % SYNTH_NTP_POLL_S == i:
                # The fields of engine/ntp.py NtpTracker's Sample.
                out.append(Sample(sid, t + 5_000_000 * (i + 1), 3e-4 * (i - 1) + 1e-4 * wob,
                                  0.004 + 0.001 * i, {
                                      "delay_s": 0.008 + 0.002 * i, "root_delay_s": 0.001,
                                      "root_dispersion_s": 0.0005, "stratum": 1.0 + i,
                                      "leap": 0.0, "poll_s": float(SYNTH_NTP_POLL_S)}))
        if k % 10 == 0:
            srcs = tuple(SourceStatus(sid, kind, group,
                                      "falseticker" if sid == "ptb" and k > duration_s // 2
                                      else "truechimer", "synthetic", 1e-6, 1e-5, t - 10**9)
                         for sid, (kind, group) in SYNTH_SOURCES.items())
            out.append(Snapshot(t, srcs, True, 3, 4, 1e-8 * wob, 1e-6, (), 0.3 + 0.01 * wob))
        if k == duration_s // 2:
            out.append(Event("alert", t, "source.falseticker", ("ptb",), "0badf00d", "critical",
                             "ptb disagrees with the majority of trust groups",
                             {"offset_s": 0.0003, "consecutive": 3.0}))
            out.append(Event("alert", t + 1, "pps.missing", ("pps0",), "5ca1ab1e", "warning",
                             "pps0: 1 pulse missing", {"missing": 1.0}))
        if k == duration_s - 5:
            out.append(Event("clear", t, "pps.missing", ("pps0",), "5ca1ab1e"))
    return out


def synthetic_config_sources() -> list[dict[str, Any]]:
    """[[sources]] entries matching SYNTH_SOURCES (for `config.parse`)."""
    out: list[dict[str, Any]] = []
    for sid, (kind, group) in SYNTH_SOURCES.items():
        d: dict[str, Any] = {"id": sid, "kind": kind, "group": group}
        if kind == "ntp":
            d["server"] = "127.0.0.1"
        else:
            d["device"] = "/dev/null"
        out.append(d)
    return out
