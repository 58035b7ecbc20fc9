"""A backfill killed with SIGKILL in the middle, then `--resume`: every point exactly once in the
stores (counted per series and timestamp), against a real InfluxDB 1.6 (`api = "v1"`) and a real
VictoriaMetrics (which keeps duplicates, so every extra point shows), and in the embedded SQLite
store (per source and timestamp).

The backfill is `timewatch replay TRACE -c CONFIG` of two hours of simulated GNSS + PPS + four NTP
servers in a subprocess; the test kills it once its checkpoint (STATE/replay.checkpoint.json)
says a quarter of the outputs were handed to the sinks, or (VictoriaMetrics) once the server
was stopped and the sender logged its first failed write, so that no batch is in flight.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration import stores
from tests.integration.stores import Influx1, Victoria
from tests.integration.test_victoriametrics import _diff, _unesc, _wait_export, expected_points
from timewatch.config import Config, load
from timewatch.engine import Engine
from timewatch.leapfile import load_leap_list
from timewatch.records import Event, Output, Sample, Snapshot
from timewatch.sim import scenarios
from timewatch.sinks import BACKFILL_SPOOL
from timewatch.sinks.lineproto import Encoder
from timewatch.trace import TraceReader

pytestmark = [pytest.mark.integration, pytest.mark.slow]
influxdb1 = stores.influxdb1  # the fixtures, by name
victoria = stores.victoria

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 7200  # two hours: ~62,000 records, ~16,000 outputs, ~8 chunks of the backfill
# Seconds a step may take on a loaded 2-core CI runner before the test calls it hung.
STEP_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "gnss_clean.jsonl"
    scenarios.write(str(path), scenarios.build("gnss_clean", seed=3, duration_s=DURATION_S))
    return path


def outputs_of(trace: Path, cfg: Config) -> list[Output]:
    """What `replay -c` hands its sinks (the same engine settings), uninterrupted."""
    rd = TraceReader(trace)
    eng = Engine(rd.header, cfg.detect, leap_list=load_leap_list(), snapshots=True, samples=True)
    out: list[Output] = []
    for o in rd:
        out.extend(eng.feed(o))
    out.extend(eng.finish())
    return out


def replay(trace: Path, conf: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "timewatch.cli", "replay", str(trace), "-c",
                             str(conf), "--events", os.devnull, *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen[str]) -> str:
    _, err = p.communicate(timeout=STEP_TIMEOUT_S)
    assert p.returncode == 0, err[-3000:]
    return err


def kill_when(p: subprocess.Popen[str], ck: Path, handed: int) -> int:
    """SIGKILL once the checkpoint says at least `handed` outputs went to the sinks; returns
    what it said last."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert p.poll() is None, f"the replay ended before it was killed: {p.stderr.read()[-2000:]}"  # type: ignore[union-attr]
        try:
            n = int(json.loads(ck.read_text())["handed"])
        except (FileNotFoundError, ValueError, KeyError):
            n = 0  # not written yet, or being replaced
        if n >= handed:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            return n
        time.sleep(0.005)
    raise AssertionError(f"the checkpoint never reached {handed} outputs")


def store_counts(db: Path) -> tuple[Counter[tuple[str, int]], Counter[int], Counter[tuple[str, str]]]:
    """Samples per (source, t_ns), snapshots per t_ns, events per (id, type) in the SQLite store."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        samples = Counter(con.execute("SELECT src, t_ns FROM samples").fetchall())
        snaps = Counter(t for (t,) in con.execute("SELECT t_ns FROM snapshots"))
        events = Counter(con.execute("SELECT id, type FROM events").fetchall())
        assert con.execute("SELECT COUNT(*) FROM marks").fetchone()[0] == 0  # forgotten at the end
    finally:
        con.close()
    return samples, snaps, events


def check_store(cfg: Config, outputs: list[Output]) -> None:
    samples, snaps, events = store_counts(cfg.store_path)
    want_samples = Counter((o.src, o.t_ns) for o in outputs if isinstance(o, Sample))
    want_snaps = Counter(o.t_ns for o in outputs if isinstance(o, Snapshot))
    want_events = Counter((o.id, o.type) for o in outputs if isinstance(o, Event))
    assert sum(want_samples.values()) > 10_000
    assert samples == want_samples, (f"{sum((samples - want_samples).values())} extra, "
                                     f"{sum((want_samples - samples).values())} missing samples")
    assert snaps == want_snaps
    assert events == want_events


def influx_points(srv: Influx1, db: str) -> Counter[tuple[str, frozenset[tuple[str, str]], int]]:
    """Every point of every tw_ measurement: (measurement, tags, time ns)."""
    got: Counter[tuple[str, frozenset[tuple[str, str]], int]] = Counter()
    for meas in ("tw_sample", "tw_source", "tw_consensus", "tw_event"):
        res = srv.query(f'SELECT * FROM "{meas}" GROUP BY *', db=db)
        for series in res["results"][0].get("series", []):
            tags = frozenset((k, v) for k, v in series.get("tags", {}).items() if v)
            for row in series["values"]:
                got[(meas, tags, int(row[0]))] += 1
    return got


def expected_influx(lines: list[str]) -> Counter[tuple[str, frozenset[tuple[str, str]], int]]:
    """The points these lines make in InfluxDB: one per (measurement, tag set, time)."""
    want: Counter[tuple[str, frozenset[tuple[str, str]], int]] = Counter()
    for line in lines:
        head = re.split(r"(?<!\\) ", line, maxsplit=1)[0]
        meas, *tags = re.split(r"(?<!\\),", head)
        labels = frozenset((_unesc(k), _unesc(v)) for k, v in (t.split("=", 1) for t in tags))
        want[(meas, labels, int(line.rsplit(" ", 1)[1]))] = 1
    return want


def _config(tmp: Path, sink: dict[str, Any]) -> Path:
    conf = tmp / "timewatch.toml"
    body = "".join(f'{k} = {json.dumps(v)}\n' for k, v in sink.items())
    conf.write_text(f'[monitor]\nhost = "backfill-box"\nstate_dir = "{tmp / "state"}"\n'
                    f'[sinks.influxdb]\n{body}flush_interval_s = 0.2\n')
    return conf


def test_kill_9_mid_backfill_then_resume_gives_every_point_once_in_influxdb_1_6(
        tmp_path: Path, influxdb1: Influx1, trace: Path) -> None:
    db = f"bf{uuid.uuid4().hex[:8]}"
    influxdb1.query(f"CREATE DATABASE {db}")
    conf = _config(tmp_path, {"url": influxdb1.url, "bucket": db, "api": "v1"})
    cfg = load(conf)
    outputs = outputs_of(trace, cfg)
    ck = cfg.state_dir / "replay.checkpoint.json"

    p = replay(trace, conf)
    at = kill_when(p, ck, len(outputs) // 4)
    assert at < len(outputs)
    assert ck.exists()  # what says where to resume survived the kill
    err = finish(replay(trace, conf, "--resume"))
    assert "resumed: " in err, err[-2000:]
    assert not ck.exists()  # finished: nothing left to resume

    check_store(cfg, outputs)
    want = expected_influx(Encoder.from_config(cfg).lines(outputs))
    got = influx_points(influxdb1, db)
    assert got == want, f"{sum((got - want).values())} extra, {sum((want - got).values())} missing"

    # Nothing left to resume: a clear refusal, not a second copy.
    again = replay(trace, conf, "--resume")
    _, err = again.communicate(timeout=STEP_TIMEOUT_S)
    assert again.returncode == 2 and "no interrupted replay" in err, err


def spooled(cfg: Config) -> tuple[dict[str, int], int]:
    """The backfill spool as a kill left it: (marks, lines waiting)."""
    con = sqlite3.connect(f"file:{cfg.state_dir / BACKFILL_SPOOL}?mode=ro", uri=True)
    try:
        marks = dict(con.execute("SELECT key, n FROM marks").fetchall())
        lines = int(con.execute("SELECT COALESCE(SUM(n), 0) FROM q").fetchone()[0])
    finally:
        con.close()
    return marks, lines


def test_kill_9_with_the_server_down_then_resume_delivers_each_point_once_to_victoriametrics(
        tmp_path: Path, victoria: Victoria, trace: Path) -> None:
    conf = _config(tmp_path, {"url": victoria.url, "token": "t"})
    cfg = load(conf)
    outputs = outputs_of(trace, cfg)
    ck = cfg.state_dir / "replay.checkpoint.json"

    p = replay(trace, conf)
    kill_when_stopped = len(outputs) // 4
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while int(json.loads(ck.read_text() if ck.exists() else '{"handed": 0}')["handed"]) \
            < kill_when_stopped:
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    victoria.stop()
    # A server that had to be killed may lose what it acknowledged: not the sink's loss.
    assert victoria.stopped is not None and not victoria.stopped[1], victoria.log_tail()
    # The sender's first failed write: no batch is in flight now (none can be acknowledged by
    # the server without the spool knowing).
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(x) for x in p.stderr or ()], daemon=True).start()
    while "write failed" not in lines.get(timeout=STEP_TIMEOUT_S):
        pass
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    marks, waiting = spooled(cfg)
    handed = json.loads(ck.read_text())["handed"]
    victoria.start()

    err = finish(replay(trace, conf, "--resume"))
    check_store(cfg, outputs)
    # A finished backfill delivered everything it spooled, the killed run's lines too.
    assert spooled(cfg) == ({}, 0), err[-2000:]
    want = expected_points(Encoder.from_config(cfg).lines(outputs))
    got = _wait_export(victoria, want)
    # What the run said and how far it got go with a failure (CI once lost the tail here).
    why = (f"\nkilled with the spool at {marks} ({waiting} lines waiting; the checkpoint "
           f"said {handed}); the "
           f"server stopped in {victoria.stopped[0]:.2f} s\nresumed: {err[-2000:]}\n"
           f"victoria-metrics: {victoria.log_tail()}")
    assert sum((got - want).values()) == 0, _diff(want, got) + why
    assert got == want, _diff(want, got) + why


# -- export: the store's history to a file or into InfluxDB -----------------------------------

def _filled_store(tmp: Path, sink: dict[str, Any] | None) -> tuple[Path, Config]:
    """A store holding six hours of a five-source run (~80,000 lines of line protocol)."""
    from tests.integration.stores import synthetic_config_sources, synthetic_outputs
    from timewatch.sinks.store import StoreSink

    conf = _config(tmp, sink or {"url": "http://127.0.0.1:9"})
    if sink is None:
        conf.write_text(conf.read_text().split("[sinks.influxdb]")[0])
    with conf.open("a") as f:
        for s in synthetic_config_sources():
            f.write("[[sources]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items()))
    cfg = load(conf)
    st = StoreSink(cfg)
    st.handle(synthetic_outputs(1_796_083_200 * 10**9, 6 * 3600))
    assert st.flush(120.0)
    st.close()
    return conf, cfg


def export(conf: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "timewatch.cli", "export", "-c", str(conf),
                             *extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def kill_export_when(p: subprocess.Popen[str], ck: Path, t_ns: int) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert p.poll() is None, f"the export ended before it was killed: {p.stderr.read()[-2000:]}"  # type: ignore[union-attr]
        try:
            t = int(json.loads(ck.read_text())["t_ns"])
        except (FileNotFoundError, ValueError, KeyError):
            t = 0
        if t >= t_ns:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            return
        time.sleep(0.002)
    raise AssertionError(f"the checkpoint never reached t_ns {t_ns}")


def test_export_to_a_file_killed_then_resumed_is_the_uninterrupted_export(tmp_path: Path) -> None:
    conf, cfg = _filled_store(tmp_path, None)
    whole = tmp_path / "whole.lp"
    assert export(conf, "-o", str(whole)).wait(STEP_TIMEOUT_S) == 0
    data = whole.read_bytes()
    assert len(data.splitlines()) > 50_000
    ck = cfg.state_dir / "export.checkpoint.json"
    assert not ck.exists()
    part = tmp_path / "part.lp"
    p = export(conf, "-o", str(part), "--resume")  # nothing to resume: refused
    _, err = p.communicate(timeout=STEP_TIMEOUT_S)
    assert p.returncode == 2 and "no interrupted export" in err, err
    t0, t1 = (int(data.splitlines()[i].rsplit(b" ", 1)[1]) for i in (0, -1))
    kill_export_when(export(conf, "-o", str(part)), ck, t0 + (t1 - t0) // 3)
    assert 0 < part.stat().st_size < len(data)
    p = export(conf, "-o", str(tmp_path / "other.lp"), "--resume")  # another target: refused
    _, err = p.communicate(timeout=STEP_TIMEOUT_S)
    assert p.returncode == 2 and "was of something else" in err, err
    kept = part.read_bytes()
    part.write_bytes(kept[:10])  # cut behind the checkpoint's back: refused, not padded
    p = export(conf, "-o", str(part), "--resume")
    _, err = p.communicate(timeout=STEP_TIMEOUT_S)
    assert p.returncode == 2 and "shorter than" in err, err
    part.write_bytes(kept)
    err = finish(export(conf, "-o", str(part), "--resume"))
    assert "(resumed)" in err and not ck.exists(), err[-2000:]
    assert part.read_bytes() == data  # every line once, in order


def test_export_into_influxdb_1_6_killed_then_resumed_gives_every_point_once(
        tmp_path: Path, influxdb1: Influx1) -> None:
    db = f"ex{uuid.uuid4().hex[:8]}"
    influxdb1.query(f"CREATE DATABASE {db}")
    conf, cfg = _filled_store(tmp_path, {"url": influxdb1.url, "bucket": db, "api": "v1"})
    from timewatch.sinks.export import encoder_for, history
    from timewatch.sinks.store import Store

    st = Store(cfg.store_path, readonly=True)
    want = expected_influx(encoder_for(cfg, st).lines(history(st)))
    first, last = min(k[2] for k in want), max(k[2] for k in want)
    st.close()
    ck = cfg.state_dir / "export.checkpoint.json"
    kill_export_when(export(conf, "--influxdb"), ck, first + (last - first) // 4)
    err = finish(export(conf, "--influxdb", "--resume"))
    assert "(resumed)" in err and not ck.exists(), err[-2000:]
    got = influx_points(influxdb1, db)
    assert got == want, f"{sum((got - want).values())} extra, {sum((want - got).values())} missing"


def test_export_whose_sink_fails_on_a_chunk_stops_and_resume_gives_every_point_once(
        tmp_path: Path, influxdb1: Influx1, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The sink raising on a chunk (here: the second) stops the export there, exit 1, naming the
    sink and how to continue, instead of going on without that chunk."""
    from timewatch import cli
    from timewatch.sinks.export import encoder_for, history
    from timewatch.sinks.influx import InfluxSink
    from timewatch.sinks.store import Store

    db = f"ef{uuid.uuid4().hex[:8]}"
    influxdb1.query(f"CREATE DATABASE {db}")
    conf, cfg = _filled_store(tmp_path, {"url": influxdb1.url, "bucket": db, "api": "v1"})
    st = Store(cfg.store_path, readonly=True)
    want = expected_influx(encoder_for(cfg, st).lines(history(st)))
    st.close()
    real = InfluxSink.handle_marked
    calls: list[int] = []

    def second_fails(self: InfluxSink, outputs: list[Output], mark: Any) -> None:
        calls.append(len(outputs))
        if len(calls) == 2:
            raise ValueError("encoder bug")
        real(self, outputs, mark)

    monkeypatch.setattr(InfluxSink, "handle_marked", second_fails)
    assert cli.main(["export", "-c", str(conf), "--influxdb"]) == 1
    err = capsys.readouterr().err
    assert "sink influxdb failed on the records up to" in err and "ValueError: encoder bug" in err
    assert "--resume` continues" in err, err[-2000:]
    assert (cfg.state_dir / "export.checkpoint.json").exists() and len(calls) == 2
    monkeypatch.setattr(InfluxSink, "handle_marked", real)
    assert cli.main(["export", "-c", str(conf), "--influxdb", "--resume"]) == 0
    assert not (cfg.state_dir / "export.checkpoint.json").exists()
    got = influx_points(influxdb1, db)
    assert got == want, f"{sum((got - want).values())} extra, {sum((want - got).values())} missing"


def test_a_server_that_stays_down_stops_the_backfill_and_resume_delivers_once(
        tmp_path: Path, victoria: Victoria, monkeypatch: pytest.MonkeyPatch) -> None:
    """No delivery for STALL_S: the replay stops (exit 1) saying `--resume` continues, with the
    checkpoint and the spooled points kept; the resume delivers every point once."""
    from timewatch.cli import main
    from timewatch.commands import backfill

    path = tmp_path / "short.jsonl"
    scenarios.write(str(path), scenarios.build("gnss_clean", seed=4, duration_s=900))
    conf = _config(tmp_path, {"url": victoria.url, "token": "t"})
    cfg = load(conf)
    victoria.stop()
    monkeypatch.setattr(backfill, "STALL_S", 1.0)
    argv = ["replay", str(path), "-c", str(conf), "--events", os.devnull]
    assert main(argv) == 1
    ck = cfg.state_dir / "replay.checkpoint.json"
    assert ck.exists() and json.loads(ck.read_text())["handed"] > 0
    spool = cfg.state_dir / "influxdb-backfill.spool"
    con = sqlite3.connect(spool)
    spooled = con.execute("SELECT SUM(n) FROM q").fetchone()[0]  # lines
    con.close()
    assert spooled > 1000  # nothing went out, all of it is kept
    victoria.start()
    monkeypatch.setattr(backfill, "STALL_S", STEP_TIMEOUT_S)
    assert main([*argv, "--resume"]) == 0
    assert not ck.exists()
    want = expected_points(Encoder.from_config(cfg).lines(outputs_of(path, cfg)))
    got = _wait_export(victoria, want)
    assert got == want, _diff(want, got)
