"""Every query of every Grafana dashboard returns data from a real InfluxDB 1.6 (Debian
`influxdb`) loaded with what `timewatch export --format line-protocol` writes for a realistic
synthetic run (one GNSS receiver with PPS, three NTP servers, alerts and a clear).

Macros are substituted as Grafana does: `$timeFilter` -> `time >= ...ms and time <= ...ms`,
`$__interval` -> `10s`, template variables (`=~ /^$var$/`) -> `.*`.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration import stores
from tests.integration.stores import Influx1, synthetic_config_sources, synthetic_outputs
from timewatch.config import parse

pytestmark = pytest.mark.integration
influxdb1 = stores.influxdb1  # the fixture, by name

ROOT = Path(__file__).resolve().parents[2]
BOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
START_NS = 1_764_158_400 * 10**9  # 2025-11-26T12:00:00Z
DURATION_S = 1800
DB = "timewatch"
BUILTIN = {"timeFilter", "__interval"}


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
    start_ms, end_ms = START_NS // 10**6, (START_NS + DURATION_S * 10**9) // 10**6
    q = q.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval", "10s")
    return re.sub(r"\$\{?(\w+)\}?", ".*", q)


@pytest.fixture(scope="module")
def loaded(influxdb1: Influx1, tmp_path_factory: pytest.TempPathFactory) -> Influx1:
    """The synthetic run through the embedded store and `export`, written to InfluxDB 1.6."""
    from timewatch.sinks.export import export
    from timewatch.sinks.store import Store

    tmp = tmp_path_factory.mktemp("export")
    cfg = parse({"monitor": {"host": "pi-lab-1", "state_dir": str(tmp)},
                 "sources": synthetic_config_sources()})
    store = Store(cfg.store_path)
    store.write(synthetic_outputs(START_NS, DURATION_S))
    store.close()
    buf = io.StringIO()
    counts = export(cfg, buf)
    lines = buf.getvalue().splitlines()
    assert counts["lines"] == len(lines) > 4000
    influxdb1.query(f"CREATE DATABASE {DB}")
    for i in range(0, len(lines), 5000):
        influxdb1.write(lines[i:i + 5000], db=DB)
    return influxdb1


def test_there_are_four_dashboards_with_queries() -> None:
    assert [p.stem for p in BOARDS] == ["gnss", "ntp", "overview", "pps"]
    assert len(QUERIES) > 40


@pytest.mark.parametrize("qid,query", QUERIES, ids=[q[0] for q in QUERIES])
def test_query_returns_data(loaded: Influx1, qid: str, query: str) -> None:
    res = loaded.query(substitute(query), db=DB)["results"][0]
    assert "error" not in res, f"{qid}: {res['error']}\n{substitute(query)}"
    series: list[dict[str, Any]] = res.get("series", [])
    assert series, f"{qid}: no data\n{substitute(query)}"
    # Every selected column holds a value somewhere: a misspelt field would be all null.
    cols = series[0]["columns"]
    for i, col in enumerate(cols):
        assert any(row[i] is not None for s in series for row in s["values"]), \
            f"{qid}: column {col!r} is always null\n{substitute(query)}"


@pytest.mark.parametrize("qid,query", QUERIES, ids=[q[0] for q in QUERIES])
def test_query_uses_only_the_allowed_macros(qid: str, query: str) -> None:
    for m in re.finditer(r"\$\{?(\w+)\}?", query):
        name = m.group(1)
        if name in BUILTIN:
            continue
        # A template variable appears only as a whole anchored regex: =~ /^$var$/
        assert query[max(0, m.start() - 5):m.end() + 2] == f"=~ /^${name}$/", \
            f"{qid}: ${name} not in the form =~ /^${name}$/"
    if "GROUP BY time(" in query:
        assert "GROUP BY time($__interval)" in query, qid
    if "SHOW" not in query:
        assert "$timeFilter" in query, f"{qid}: no $timeFilter"


def test_every_target_is_raw_influxql_on_the_datasource_variable() -> None:
    for path in BOARDS:
        d = json.loads(path.read_text())
        assert d["uid"].startswith("timewatch-")
        names = [v["name"] for v in d["templating"]["list"]]
        assert names[:2] == ["datasource", "host"], path.name
        for p in d["panels"]:
            assert p["datasource"] == {"type": "influxdb", "uid": "${datasource}"}, p["title"]
            for t in p["targets"]:
                assert t["rawQuery"] is True, f"{path.stem}: {p['title']}"


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboards",
                                                  ROOT / "grafana" / "make_dashboards.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for path in BOARDS:
        assert path.read_text() == mod.render(path.stem), \
            f"{path.name} differs: run python grafana/make_dashboards.py"


def test_provisioning_files_point_at_influxql_and_the_dashboards() -> None:
    ds = (ROOT / "grafana" / "provisioning" / "datasources" / "timewatch.yaml").read_text()
    assert "type: influxdb" in ds and "dbName: timewatch" in ds and "uid: timewatch" in ds
    assert "Token ${INFLUX_TOKEN}" in ds  # the commented 2.x variant
    dash = (ROOT / "grafana" / "provisioning" / "dashboards" / "timewatch.yaml").read_text()
    assert "type: file" in dash and "path: /var/lib/grafana/dashboards/timewatch" in dash
