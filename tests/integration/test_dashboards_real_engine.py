"""Every query of every Grafana dashboard returns data from what the real engine writes.

An hour of one GNSS receiver with PPS and four NTP servers of four operators, from the real
simulators (`sim.nmeagen.NmeaSim`, `sim.pps.PpsSim`, `sim.scenarios.Sim` with the noise of
`sim.noise`), with legitimate faults: the receiver loses its fix for a minute and the PPS misses
four pulses. The trace goes through `timewatch replay -c` (the real `Engine` into the SQLite
store), `timewatch export --format line-protocol`, and a real InfluxDB 1.6 (Debian `influxdb`).
Then every panel target, annotation and template-variable query of every dashboard runs there,
macros substituted as Grafana does: `$timeFilter` -> `time >= ...ms and time <= ...ms`,
`$__interval` -> `10s` (the data source's `timeInterval`), template variables (`=~ /^$var$/`)
-> `.*`. Each must return data in every column it selects; the panels that show the faults must
show them (fix lost, satellites 0, missing pulses counted, alerts), and the numbers must be the
engine's (holdover frequency against the simulated crystal, C/N0 band ordering).
"""

from __future__ import annotations

import json
import random
import re
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration import stores
from tests.integration.stores import Influx1
from timewatch import cli
from timewatch.records import Event, Header, Observation, SourceInfo
from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.noise import NS, HostClock
from timewatch.sim.pps import JITTER_S, PpsSim
from timewatch.sim.scenarios import Sim, Truth, write

pytestmark = pytest.mark.integration
influxdb1 = stores.influxdb1  # the fixture, by name

ROOT = Path(__file__).resolve().parents[2]
BOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
SEED = 1
# 2026-12-01T00:00:00Z: after the engine's floor for receiver dates (params.gnss_not_before).
T0_NS = 1_796_083_200 * NS
DURATION_S = 3600
HOST = "pi-lab-1"
ANTENNA = (48.8566, 2.3522, 35.0)
# Four NTP servers of four operators (docs/threats.md: "4+ servers of >= 3 operators").
NTP_LAYOUT = [("ntp-a", "op-a"), ("ntp-b", "op-b"), ("ntp-c", "op-c"), ("ntp-d", "op-d")]
# The receiver's sentences each second (RMC dates the label, GGA and GSA the fix, GSV the C/N0).
SENTENCES = ("RMC", "GGA", "GSA", "GSV")
FIX_LOST_S = (1800, 1860)  # seconds into the run: a one-minute obstruction
MISSING_S = (1200, 2400, 2401, 3000)  # seconds into the run whose pulse never comes
INTERVAL_S = 10  # $__interval: the data source's timeInterval (one snapshot per interval)
DB = "timewatch"


@dataclass
class Run:
    db: Influx1
    events: list[Event]
    host: HostClock
    lines: int


def build_trace(path: Path) -> HostClock:
    """The hour as a trace file; returns the simulated host (its crystal is the truth)."""
    sim = Sim("dashboards", SEED, DURATION_S, t0_ns=T0_NS, layout=NTP_LAYOUT)
    host = sim.host
    nmea = NmeaSim(random.Random(f"{SEED}|nmea"), position=ANTENNA, sentences=SENTENCES)
    lost = (T0_NS + FIX_LOST_S[0] * NS, T0_NS + FIX_LOST_S[1] * NS)
    nmea.fix_lost = lambda s: lost[0] <= s < lost[1]
    pps = PpsSim(random.Random(f"{SEED}|pps"), host)
    missing = {T0_NS + k * NS for k in MISSING_S}
    pps.missing = lambda s: s in missing
    for k in range(DURATION_S):
        t = T0_NS + k * NS
        recs: list[Observation] = [*pps.pulse(t), *nmea.observations(t, host)]
        for o in recs:
            # Sim orders records by true hand-over time; realtime is within ~0.3 ms of it here.
            sim._add(o, t + (o.rx_ns - host.realtime_ns(t)))
    st = sim.build(Truth("dashboards", SEED))
    sources = dict(st.header.sources)
    sources["gnss0"] = SourceInfo("gnss", "gnss", position=ANTENNA)
    sources["pps0"] = SourceInfo("pps", "gnss", label_from="gnss0")
    write(str(path), replace(st, header=Header(HOST, T0_NS, sources)))
    return host


@pytest.fixture(scope="module")
def run(influxdb1: Influx1, tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("dashboards")
    host = build_trace(tmp / "hour.jsonl.gz")
    cfg = tmp / "timewatch.toml"
    cfg.write_text(f'[monitor]\nhost = "{HOST}"\nstate_dir = "{tmp / "state"}"\n')
    assert cli.main(["replay", "-c", str(cfg), str(tmp / "hour.jsonl.gz"),
                     "--events", str(tmp / "events.jsonl")]) == 0
    events = [Event.from_dict(json.loads(x)) for x in
              (tmp / "events.jsonl").read_text().splitlines() if x.strip()]
    assert cli.main(["export", "-c", str(cfg), "-o", str(tmp / "hour.lp")]) == 0
    lines = (tmp / "hour.lp").read_text().splitlines()
    influxdb1.query(f"CREATE DATABASE {DB}")
    for i in range(0, len(lines), 5000):
        influxdb1.write(lines[i:i + 5000], db=DB)
    return Run(influxdb1, events, host, len(lines))


def board(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "grafana" / "dashboards" / f"{name}.json").read_text()))


def all_queries() -> list[tuple[str, str]]:
    """(id, query) of every panel target, annotation and template variable of every board."""
    out: list[tuple[str, str]] = []
    for path in BOARDS:
        d = json.loads(path.read_text())
        for p in d["panels"]:
            for t in p.get("targets", []):
                out.append((f"{path.stem}: {p['title']} [{t['refId']}]", t["query"]))
        for a in d["annotations"]["list"]:
            if "query" in a:
                out.append((f"{path.stem}: annotation {a['name']}", a["query"]))
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                out.append((f"{path.stem}: variable ${v['name']}", v["query"]))
    return out


QUERIES = all_queries()


def substitute(q: str) -> str:
    # The whole run, with a minute either side (host realtime is within ms of true time).
    start_ms, end_ms = (T0_NS // NS - 60) * 1000, (T0_NS // NS + DURATION_S + 60) * 1000
    q = q.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval", f"{INTERVAL_S}s")
    return re.sub(r"\$\{?(\w+)\}?", ".*", q)


def series(r: Run, query: str) -> list[dict[str, Any]]:
    res = r.db.query(substitute(query), db=DB)["results"][0]
    assert "error" not in res, f"{res['error']}\n{substitute(query)}"
    return list(res.get("series", []))


def panel_query(name: str, title: str, ref: str = "A") -> str:
    for p in board(name)["panels"]:
        if p["title"] == title:
            return str(next(t["query"] for t in p["targets"] if t["refId"] == ref))
    raise KeyError(f"{name}: no panel {title!r}")


def rows(r: Run, query: str, col: int = 1) -> list[tuple[float, Any]]:
    """(seconds into the run, value of column `col`) of every non-null row, all series."""
    return [((v[0] - T0_NS) / NS, v[col]) for s in series(r, query) for v in s["values"]
            if v[col] is not None]


def lost(t_s: float) -> bool:
    """An interval wholly inside the fix loss (the first epoch after it may close late)."""
    return FIX_LOST_S[0] + INTERVAL_S <= t_s < FIX_LOST_S[1] - INTERVAL_S


def clean(t_s: float) -> bool:
    """An interval well clear of the fix loss and of the start (learning)."""
    return 300 <= t_s and not FIX_LOST_S[0] - 30 <= t_s < FIX_LOST_S[1] + 30


# -- every query returns data --------------------------------------------------------------------

def test_there_are_four_dashboards_with_queries() -> None:
    assert [p.stem for p in BOARDS] == ["gnss", "ntp", "overview", "pps"]
    assert len(QUERIES) > 40


def test_export_wrote_the_run(run: Run) -> None:
    # ~3600 GNSS + ~3600 PPS samples, ~560 NTP samples, 361 snapshots x (6 sources + consensus).
    assert run.lines > 9000
    codes = {e.code for e in run.events if e.type == "alert"}
    assert {"gnss.no_fix", "pps.missing"} <= codes, codes


@pytest.mark.parametrize("qid,query", QUERIES, ids=[q[0] for q in QUERIES])
def test_query_returns_data_from_the_engine(run: Run, qid: str, query: str) -> None:
    ss = series(run, query)
    assert ss, f"{qid}: no data\n{substitute(query)}"
    # Every selected column holds a value somewhere: a misspelt field would be all null.
    for i, col in enumerate(ss[0]["columns"]):
        assert any(row[i] is not None for s in ss for row in s["values"]), \
            f"{qid}: column {col!r} is always null\n{substitute(query)}"


@pytest.mark.parametrize("name", [p.stem for p in BOARDS])
def test_annotations_return_their_text_and_tag_columns(run: Run, name: str) -> None:
    for a in board(name)["annotations"]["list"]:
        if "query" not in a:
            continue
        ss = series(run, a["query"])
        assert ss, f"{name}: annotation {a['name']}: no data"
        cols = ss[0]["columns"]
        wanted = [a["textColumn"], *a["tagsColumn"].split(",")]
        assert all(c in cols for c in wanted), f"{name}: {a['name']}: {wanted} not in {cols}"
        text = cols.index(a["textColumn"])
        assert all(v[text] for s in ss for v in s["values"]), f"{a['name']}: empty text"


# -- the panels show what happened ---------------------------------------------------------------

def test_gnss_fix_panel_shows_the_minute_without_a_fix(run: Run) -> None:
    fix = rows(run, panel_query("gnss", "Fix"))
    assert fix and all(v == 0 for t, v in fix if lost(t)), "fix shown during the obstruction"
    assert sum(lost(t) for t, _ in fix) >= 3
    assert all(v == 3 for t, v in fix if clean(t)), [x for x in fix if clean(x[0]) and x[1] != 3]


def test_gnss_satellites_used_drop_to_zero_without_a_fix(run: Run) -> None:
    used = rows(run, panel_query("gnss", "Satellites"))
    view = rows(run, panel_query("gnss", "Satellites", "B"))
    assert all(v == 0 for t, v in used if lost(t)) and any(lost(t) for t, _ in used)
    assert all(4 <= v <= 12 for t, v in used if clean(t))  # GSA lists at most 12
    assert all(v > 0 for _, v in view)  # the sky does not go away with the fix


def test_gnss_cn0_band_is_ordered_and_spread(run: Run) -> None:
    ss = series(run, panel_query("gnss", "C/N0 across the satellites: $source"))
    cols = ss[0]["columns"]
    lo, mid, hi = (cols.index(c) for c in ("min", "mean", "max"))
    vals = [v for s in ss for v in s["values"] if v[mid] is not None]
    assert len(vals) > 300
    assert all(v[lo] <= v[mid] <= v[hi] for v in vals)
    assert statistics.median(v[hi] - v[lo] for v in vals) > 5  # elevations 5-88 degrees
    std = [v for _, v in rows(run, panel_query("gnss", "C/N0 spread across the satellites "
                                                         "(standard deviation)"))]
    # A real sky: never uniform enough for gnss.cn0_anomaly (and the engine raised none).
    assert min(std) > 2.0
    assert "gnss.cn0_anomaly" not in {e.code for e in run.events}


def test_pps_missing_pulses_panel_counts_every_missing_pulse(run: Run) -> None:
    missing = rows(run, panel_query("pps", "Missing pulses per interval"))
    assert sum(v for _, v in missing) == len(MISSING_S)
    assert {round(t) // 60 for t, v in missing if v} == {s // 60 for s in MISSING_S}


def test_pps_alerts_panel_counts_the_engines_alerts(run: Run) -> None:
    ss = series(run, panel_query("pps", "PPS alerts"))
    shown = {s["tags"]["code"]: sum(v[1] for v in s["values"] if v[1]) for s in ss}
    raised: dict[str, int] = {}
    for e in run.events:
        if e.type == "alert" and e.code.startswith("pps."):
            raised[e.code] = raised.get(e.code, 0) + 1
    assert shown == raised and raised.get("pps.missing", 0) >= 3


def test_pps_jitter_is_the_simulated_interrupt_jitter(run: Run) -> None:
    jit = [v for t, v in rows(run, panel_query("pps", "Jitter")) if t >= 300]
    # sim/pps.py: 1.5 us (1 sigma) of interrupt jitter; outliers are kept out of it.
    assert 0.5 * JITTER_S < statistics.median(jit) < 2 * JITTER_S


def test_holdover_frequency_is_the_simulated_crystal(run: Run) -> None:
    pps_ho = rows(run, panel_query("pps", "Holdover frequency"))
    cons = rows(run, panel_query("overview", "Holdover frequency"))
    assert pps_ho and cons
    for t, v in pps_ho:
        if t >= 600:  # one holdover block learned
            truth = run.host.freq_ppm(int(t) // 60)
            assert abs(v - truth) < 0.5, f"+{t:.0f} s: holdover {v:.3f} ppm, crystal {truth:.3f}"


def test_verdict_timeline_shows_the_receiver_unusable_without_a_fix(run: Run) -> None:
    v = rows(run, panel_query("gnss", "GNSS verdicts"))
    assert all(code == 4 for t, code in v if lost(t))  # 4: unusable (lineproto.VERDICT_CODES)
    assert all(code == 0 for t, code in v if clean(t))


def test_ntp_replies_panel_counts_every_usable_reply(run: Run) -> None:
    ss = series(run, panel_query("ntp", "Replies per interval (reachability)"))
    assert {s["tags"]["source"] for s in ss} == {sid for sid, _ in NTP_LAYOUT}
    counts = {s["tags"]["source"]: sum(v[1] for v in s["values"]) for s in ss}
    # Polls of 16-64 s (sim.scenarios.POLLS_S) for an hour: 55-225 replies each.
    assert all(50 <= n <= 230 for n in counts.values()), counts
