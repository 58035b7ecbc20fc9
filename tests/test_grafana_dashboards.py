"""The Grafana dashboards are well-formed without a Grafana: what `grafana/make_dashboards.py`
writes, schema version, unique non-overlapping panels, every query raw InfluxQL on the data source
the provisioning file defines, only the allowed macros, variables defined before use, value
mappings that cover the codes the schema writes, and only names docs/influxdb.md documents.
(tests/integration/test_dashboards_real_engine.py runs every query against real engine output.)
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from timewatch.sinks.lineproto import MEASUREMENTS, VERDICT_CODES

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "grafana"
BOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
NAMES = [p.stem for p in BOARDS]
DS_VAR = {"type": "influxdb", "uid": "${datasource}"}
BUILTIN_MACROS = {"timeFilter", "__interval"}
# Grafana 10.x writes schemaVersion 36-39; an older number makes Grafana migrate the panels.
SCHEMA_VERSIONS = range(36, 40)
GRID_COLUMNS = 24  # Grafana's dashboard grid width


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text()))


def queries(d: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(f"{p['title']} [{t['refId']}]", t["query"]) for p in d["panels"]
           for t in p.get("targets", [])]
    out += [(f"annotation {a['name']}", a["query"]) for a in d["annotations"]["list"]
            if "query" in a]
    out += [(f"variable {v['name']}", v["query"]) for v in d["templating"]["list"]
            if v["type"] == "query"]
    return out


def provisioned_uid() -> str:
    """uid of the first (uncommented) data source of the provisioning file."""
    text = (GRAFANA / "provisioning" / "datasources" / "timewatch.yaml").read_text()
    m = re.search(r"^\s+uid:\s*(\S+)", text, re.M)
    assert m, "no uid in the provisioned data source"
    return m.group(1)


def test_there_are_the_four_dashboards() -> None:
    assert NAMES == ["gnss", "ntp", "overview", "pps"]


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_dashboards",
                                                  GRAFANA / "make_dashboards.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for path in BOARDS:
        assert path.read_text() == mod.render(path.stem), \
            f"{path.name} differs: run python grafana/make_dashboards.py"


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_header(name: str) -> None:
    d = load(name)
    assert d["schemaVersion"] in SCHEMA_VERSIONS
    assert d["uid"] == f"timewatch-{name}" and len(d["uid"]) <= 40  # Grafana's uid limit
    assert d["title"].startswith("timewatch: ") and "timewatch" in d["tags"]


@pytest.mark.parametrize("name", NAMES)
def test_panel_ids_are_unique_and_panels_do_not_overlap(name: str) -> None:
    panels = load(name)["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= GRID_COLUMNS and g["h"] > 0, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{name}: {p['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("name", NAMES)
def test_everything_queries_the_provisioned_datasource_through_the_variable(name: str) -> None:
    d = load(name)
    ds = next(v for v in d["templating"]["list"] if v["name"] == "datasource")
    assert ds["type"] == "datasource" and ds["query"] == "influxdb"
    assert ds["current"]["value"] == provisioned_uid()
    for p in d["panels"]:
        assert p["datasource"] == DS_VAR, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS_VAR, p["title"]
            assert t["rawQuery"] is True, f"{name}: {p['title']}: not raw InfluxQL"
            assert t["resultFormat"] in ("time_series", "table"), p["title"]
    for a in d["annotations"]["list"]:
        if not a.get("builtIn"):
            assert a["datasource"] == DS_VAR, a["name"]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"] == DS_VAR, v["name"]


@pytest.mark.parametrize("name", NAMES)
def test_queries_use_only_the_allowed_macros(name: str) -> None:
    d = load(name)
    variables = [v["name"] for v in d["templating"]["list"]]
    for qid, q in queries(d):
        for m in re.finditer(r"\$\{?(\w+)\}?", q):
            var = m.group(1)
            if var in BUILTIN_MACROS:
                continue
            assert var in variables, f"{name}: {qid}: ${var} is not a variable"
            # A template variable appears only as a whole anchored regex: =~ /^$var$/
            assert q[max(0, m.start() - 5):m.end() + 2] == f"=~ /^${var}$/", \
                f"{name}: {qid}: ${var} not in the form =~ /^${var}$/"
        if "GROUP BY time(" in q:
            assert "GROUP BY time($__interval)" in q, f"{name}: {qid}"
        if not q.startswith("SHOW"):
            assert "$timeFilter" in q, f"{name}: {qid}: no $timeFilter"
    # A variable is used only after it is defined (Grafana resolves them in order).
    for i, v in enumerate(d["templating"]["list"]):
        for later in variables[i:]:
            assert f"${later}$" not in v.get("query", ""), f"{name}: ${v['name']} uses ${later}"


@pytest.mark.parametrize("name", NAMES)
def test_repeats_and_titles_name_defined_multi_value_variables(name: str) -> None:
    d = load(name)
    vars_ = {v["name"]: v for v in d["templating"]["list"]}
    for p in d["panels"]:
        if "repeat" in p:
            v = vars_[p["repeat"]]
            assert v["multi"] or v["includeAll"], p["title"]
        for var in re.findall(r"\$(\w+)", p["title"]):
            assert var in vars_, f"{name}: {p['title']}"


def test_state_timelines_map_every_code_the_schema_writes() -> None:
    for name in NAMES:
        for p in load(name)["panels"]:
            if p["type"] != "state-timeline":
                continue
            opts = p["fieldConfig"]["defaults"]["mappings"][0]["options"]
            if "verdict_code" in p["targets"][0]["query"]:
                assert set(opts) == {str(c) for c in VERDICT_CODES.values()}, p["title"]
                assert {o["text"] for o in opts.values()} == set(VERDICT_CODES)
            else:  # the GNSS fix: 0 (no usable fix), 2D, 3D (engine/gnss_epoch.Epoch.fix)
                assert set(opts) == {"0", "2", "3"}, p["title"]


def test_every_name_a_query_uses_is_documented() -> None:
    doc = (ROOT / "docs" / "influxdb.md").read_text()
    documented = set(re.findall(r"`([a-z_][a-z0-9_]*)`", doc))
    for name in NAMES:
        for qid, q in queries(load(name)):
            for ident in re.findall(r'(?<!AS )"(\w+)"', q):  # not the aliases
                if ident.startswith("tw_"):
                    assert ident in MEASUREMENTS, f"{name}: {qid}: {ident}"
                assert ident in documented, \
                    f"{name}: {qid}: {ident!r} is not in docs/influxdb.md's schema"


def test_provisioning_files_point_at_influxql_and_the_dashboards() -> None:
    ds = (GRAFANA / "provisioning" / "datasources" / "timewatch.yaml").read_text()
    assert "type: influxdb" in ds and "dbName: timewatch" in ds and "uid: timewatch" in ds
    assert "Token ${INFLUX_TOKEN}" in ds  # the commented 2.x variant
    dash = (GRAFANA / "provisioning" / "dashboards" / "timewatch.yaml").read_text()
    assert "type: file" in dash and "path: /var/lib/grafana/dashboards/timewatch" in dash


def _panel(name: str, title_start: str) -> dict[str, Any]:
    return next(p for p in load(name)["panels"] if p["title"].startswith(title_start))


def _grafana_regex(option: str) -> re.Pattern[str]:
    """A byRegexp matcher's option as Grafana reads it: /re/ as is, else anchored ^re$."""
    m = re.fullmatch(r"/(.*)/", option)
    return re.compile(m.group(1) if m else f"^{option}$")


def test_the_overview_draws_each_sources_offset_with_its_error_band() -> None:
    p = _panel("overview", "Offset of $source with its error band")
    assert p["repeat"] == "source" and p["gridPos"]["w"] == GRID_COLUMNS
    band, cons = p["targets"]
    q = band["query"]
    assert 'mean("offset_s") AS "offset"' in q and 'FROM "tw_sample"' in q
    assert 'mean("offset_s") - max("bound_s") AS "low"' in q
    assert 'mean("offset_s") + max("bound_s") AS "high"' in q
    assert '"source" =~ /^$source$/' in q and band["alias"] == "$col"
    assert 'AS "consensus" FROM "tw_consensus"' in cons["query"]  # the line the band must hold
    fill = {o["matcher"]["options"]: {x["id"]: x["value"] for x in o["properties"]}
            for o in p["fieldConfig"]["overrides"]}
    assert fill["high"]["custom.fillBelowTo"] == "low" and fill["high"]["custom.lineWidth"] == 0
    assert fill["low"]["custom.lineWidth"] == 0 and "custom.lineStyle" in fill["consensus"]


@pytest.mark.parametrize("title", ["Offset per source", "Error bound per source"])
def test_coarse_and_precise_sources_are_on_separate_axes(title: str) -> None:
    p = _panel("overview", title)
    (t,) = p["targets"]
    assert 'GROUP BY time($__interval), "source", "kind"' in t["query"]
    assert t["alias"] == "$tag_source ($tag_kind)"
    (o,) = p["fieldConfig"]["overrides"]
    assert o["matcher"]["id"] == "byRegexp"
    props = {x["id"]: x["value"] for x in o["properties"]}
    assert props["custom.axisPlacement"] == "right" and props["custom.axisLabel"]
    assert p["fieldConfig"]["defaults"]["custom"]["axisLabel"].startswith("coarse")
    rx = _grafana_regex(o["matcher"]["options"])
    for series in ("pps0 (pps)", "gpsd0-pps (pps)"):  # precise: PPS, also gpsd's
        assert rx.search(series), series
    for series in ("gnss0 (gnss)", "ntp-a (ntp)", "chronyd (chrony)", "pps-lab (ntp)"):
        assert not rx.search(series), series
