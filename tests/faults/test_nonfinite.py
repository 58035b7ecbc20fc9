"""Issue 18 finding 6: one non-finite value must never wedge a sink. SQLite refused a batch with
a NaN (NOT NULL) and the store retried it at the head of its queue forever: nothing was written
again. Non-finite numbers are written as NULL (JSON null); a row that still cannot be written
(a poison row) is logged and skipped, the rest written."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.faults.runs import ROOT
from tests.sinks.test_store import S, T, alert, make_cfg, samples, snapshot
from timewatch.config import parse
from timewatch.records import Event, Output, Sample, Snapshot, SourceStatus
from timewatch.sinks.eventlog import EventLogSink
from timewatch.sinks.http import HttpSink
from timewatch.sinks.store import Store, StoreSink

NAN, INF = float("nan"), float("inf")


def strict(text: str) -> object:
    """JSON as every other parser reads it: NaN and Infinity are not JSON."""
    def refuse(c: str) -> object:
        raise ValueError(f"non-finite {c} in JSON")
    return json.loads(text, parse_constant=refuse)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_replay_of_a_trace_with_a_nan_root_delay_still_fills_the_store(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    subprocess.run([sys.executable, "-m", "timewatch.cli", "simulate", "--scenario", "ntp_liar",
                    "--duration", "300", "-o", str(trace)], check=True, env=_env(),
                   capture_output=True, timeout=120)
    lines = trace.read_text().splitlines()
    ntp = [i for i, ln in enumerate(lines) if '"root_delay"' in ln]
    bad = lines[ntp[9]]
    lines[ntp[9]] = re.sub(r'"root_delay": [-0-9.e]+', '"root_delay": NaN', bad)
    assert lines[ntp[9]] != bad
    nan_trace = tmp_path / "nan.jsonl"
    nan_trace.write_text("\n".join(lines) + "\n")

    def replay(tr: Path, state: Path) -> tuple[int, int, list[str]]:
        cfg = tmp_path / f"{state.name}.toml"
        cfg.write_text(f'[monitor]\nhost = "t"\nstate_dir = "{state}"\n')
        p = subprocess.run([sys.executable, "-m", "timewatch.cli", "replay", "-c", str(cfg),
                            str(tr), "--events", str(tmp_path / f"{state.name}.ev")],
                           capture_output=True, text=True, env=_env(), timeout=120)
        assert p.returncode == 0, p.stderr
        db = sqlite3.connect(state / "timewatch.db")
        n_samples = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        n_snaps = db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
        fields = [r[0] for r in db.execute("SELECT fields_json FROM samples")]
        db.close()
        return n_samples, n_snaps, fields + [p.stderr]

    clean = replay(trace, tmp_path / "clean")
    got = replay(nan_trace, tmp_path / "nan")
    # Before: "NOT NULL constraint failed: samples.bound_s", nothing in the store at all.
    assert clean[0] > 40 and clean[1] > 20
    assert got[1] == clean[1], got[-1]  # every snapshot
    assert got[0] >= clean[0] - 1, got[-1]  # every sample but the one made of the NaN
    for fj in got[2][:-1]:
        strict(fj)


def test_non_finite_values_are_null_and_a_poison_row_is_skipped_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_cfg(tmp_path)
    nan_snap = Snapshot(
        t_ns=T + 5 * S,
        sources=(SourceStatus("ntp1", "ntp", "g1", "truechimer", "ok", NAN, INF, T,
                              {"x": NAN, "y": [1.0, -INF]}),),
        quorum=True, groups_agreeing=1, groups_voting=1, consensus_offset_s=NAN,
        consensus_bound_s=INF, holdover_ppm=-INF)
    bad_event = Event("alert", T + 6 * S, "time.drift", ("ntp1",), "e1", "warning", "m",
                      {"offset_s": NAN, "nested": {"v": INF}})
    batch: list[Output] = [
        *samples(T, 3),
        Sample("ntp1", T + 3 * S, NAN, 1e-3),  # no offset: nothing to store (logged, skipped)
        Sample("ntp1", T + 4 * S, 1e-3, 2e-3, {"delay_s": INF}),
        nan_snap, bad_event,
        Sample("ntp2", 2**70, 1e-3, 1e-3),  # too large for SQLite: a poison row
        *samples(T + 10 * S, 3, src="ntp2"),
    ]
    sink = StoreSink(cfg)
    with caplog.at_level(logging.ERROR, logger="timewatch.sinks.store"):
        sink.handle(batch)
        assert sink.flush(10.0), sink.failing
    sink.handle([snapshot(T + 20 * S), alert(T + 21 * S, "a1")])  # the queue is not wedged
    assert sink.flush(10.0), sink.failing
    sink.close()
    st = Store(cfg.store_path, readonly=True)
    try:
        got = list(st.iter_samples())
        assert [(s.src, s.t_ns) for s in got] == (
            [("ntp1", T + i * S) for i in (0, 1, 2, 4)] + [("ntp2", T + (10 + i) * S)
                                                            for i in range(3)])
        assert got[3].fields == {"delay_s": None}
        snaps = list(st.iter_snapshots())
        assert len(snaps) == 2
        s0 = snaps[0]
        assert (s0.consensus_offset_s, s0.consensus_bound_s, s0.holdover_ppm) == (None, None,
                                                                                 None)
        v = s0.sources[0]
        assert (v.offset_s, v.bound_s, v.fields) == (None, None, {"x": None, "y": [1.0, None]})
        evs = list(st.iter_events())
        assert [e.id for e in evs] == ["e1", "a1"]
        assert evs[0].evidence == {"offset_s": None, "nested": {"v": None}}
    finally:
        st.close()
    db = sqlite3.connect(cfg.store_path)
    for (text,) in db.execute("SELECT fields_json FROM samples UNION ALL SELECT event_json FROM "
                              "events UNION ALL SELECT fields_json FROM verdicts"):
        strict(text)
    db.close()
    msgs = "\n".join(caplog.messages)
    assert "skipped" in msgs and str(2**70) in msgs and f"{T + 3 * S}" in msgs
    assert sink.written == len(batch) + 2 - 2 and sink.skipped == 2


def test_event_log_and_status_json_stay_json_with_non_finite_values(tmp_path: Path) -> None:
    cfg = parse({"monitor": {"state_dir": str(tmp_path), "host": "h"},
                 "http": {"listen": "127.0.0.1:0"},
                 "sources": [{"id": "ntp1", "kind": "ntp", "server": "127.0.0.1"}]})
    ev = Event("alert", T, "time.drift", ("ntp1",), "e1", "warning", "m", {"offset_s": NAN})
    snap = Snapshot(t_ns=T, sources=(SourceStatus("ntp1", "ntp", "g", "truechimer", "ok", INF,
                                                  NAN, T, {"x": NAN}),),
                    quorum=True, groups_agreeing=1, groups_voting=1, consensus_offset_s=NAN,
                    consensus_bound_s=None, holdover_ppm=INF)
    log = EventLogSink(cfg)
    log.handle([ev])
    log.close()
    lines = [strict(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    events = [d for d in lines if d["type"] != "checkpoint"]  # type: ignore[index]
    assert len(events) == 1 and events[0]["evidence"] == {"offset_s": None}  # type: ignore[index]
    http = HttpSink(cfg)
    try:
        http.handle([ev, snap, Sample("ntp1", T, NAN, INF)])
        with urllib.request.urlopen(f"http://{http.address}/status.json", timeout=5) as r:
            doc = strict(r.read().decode())
        assert doc["consensus"]["offset_s"] is None  # type: ignore[index]
        assert doc["sources"][0]["offset_s"] is None  # type: ignore[index]
        with urllib.request.urlopen(f"http://{http.address}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert "nan" not in text.lower().replace("timewatch", "")  # no NaN sample either
    finally:
        http.close()
    assert math.isnan(NAN)
