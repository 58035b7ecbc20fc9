"""Writes grafana/dashboards/*.json: the four timewatch dashboards, from one description.

Run `python grafana/make_dashboards.py` after changing a panel; tests check that the committed
JSON is what this script writes, and run every query against a real InfluxDB 1.x.

Every query is raw InfluxQL on the schema of `timewatch/sinks/lineproto.py` (docs/influxdb.md),
using only `$timeFilter`, `$__interval` and template variables in the form `=~ /^$var$/`, so the
dashboards work on InfluxDB 1.8, 2.x (v1 compatibility API) and 3.x alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "influxdb", "uid": "${datasource}"}
SCHEMA_VERSION = 39  # Grafana 10.x dashboard schema

# Verdict codes of lineproto.VERDICT_CODES, with the words and colours an operator reads.
VERDICTS = [("truechimer", "green"), ("init", "blue"), ("no_quorum", "orange"),
            ("stale", "yellow"), ("unusable", "purple"), ("falseticker", "red")]
# Fix dimension of the receiver's latest epoch times its validity (GnssTracker.status_fields):
# 0 when the epoch had no fix or is not usable (simulator mode, wrong date...), else 2 or 3.
FIX = {0: ("no usable fix", "red"), 2: ("2D", "yellow"), 3: ("3D", "green")}

HOST = '"host" =~ /^$host$/'
# Series of precise sources in a panel whose series are named "SOURCE (KIND)": PPS edges give
# the phase to microseconds; every other kind (NTP, GNSS labels, chrony) is coarse.
PRECISE = ".+ \\(pps\\)"  # Grafana anchors a regex given without slashes
SRC = '"source" =~ /^$source$/'
# NTP servers, plain (kind ntp) and authenticated (kind nts).
NTP_KINDS = '"kind" =~ /^nt[ps]$/'
# `authenticated` of tw_source: 1 when every reply of the source is authenticated (NTS).
AUTH = [("no", "orange"), ("NTS", "green")]


def _mapping(pairs: list[tuple[str, str]] | dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    """A value mapping: list positions, or the dict's keys, are the values."""
    items = pairs.items() if isinstance(pairs, dict) else enumerate(pairs)
    return [{"type": "value", "options": {str(v): {"text": t, "color": c, "index": i}
                                          for i, (v, (t, c)) in enumerate(items)}}]


def target(query: str, alias: str = "", ref: str = "A", fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DS, "rawQuery": True, "query": query,
                         "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


class Board:
    def __init__(self, uid: str, title: str, description: str):
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict[str, Any]] = []
        self.vars: list[dict[str, Any]] = [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "influxdb", "current": {"text": "timewatch", "value": "timewatch"},
             "hide": 0, "refresh": 1, "regex": "", "options": []},
            self._var("host", "Host", 'SHOW TAG VALUES FROM "tw_consensus" WITH KEY = "host"'),
        ]
        self.annotations: list[dict[str, Any]] = [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
             "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
             "name": "Annotations & Alerts", "type": "dashboard"},
            {"datasource": DS, "enable": True, "iconColor": "red", "name": "timewatch alerts",
             # Tags are selected as columns: Grafana reads textColumn and tagsColumn from them.
             "query": 'SELECT "message", "code", "severity", "sources", "id" FROM "tw_event" '
                      f'WHERE "type" = \'alert\' AND {HOST} AND $timeFilter',
             "textColumn": "message", "tagsColumn": "code,severity,sources", "titleColumn": ""},
            {"datasource": DS, "enable": False, "iconColor": "green", "name": "timewatch clears",
             "query": 'SELECT "id", "code", "sources" FROM "tw_event" WHERE "type" = '
                      f'\'clear\' AND {HOST} AND $timeFilter',
             "textColumn": "id", "tagsColumn": "code,sources", "titleColumn": ""},
        ]
        self._x = self._y = self._row_h = 0

    @staticmethod
    def _var(name: str, label: str, query: str) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": DS,
                "query": query, "definition": query, "refresh": 2, "includeAll": True,
                "multi": True, "current": {"text": "All", "value": "$__all"}, "sort": 1,
                "hide": 0, "regex": "", "options": []}

    def var(self, name: str, label: str, query: str) -> None:
        self.vars.append(self._var(name, label, query))

    def panel(self, kind: str, title: str, targets: list[dict[str, Any]], *, w: int = 12,
              h: int = 8, unit: str = "", description: str = "", mappings: Any = None,
              options: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None,
              overrides: list[dict[str, Any]] | None = None, repeat: str = "") -> None:
        if self._x + w > 24:
            self._x, self._y = 0, self._y + self._row_h
            self._row_h = 0
        d: dict[str, Any] = {"unit": unit} if unit else {}
        if mappings:
            d["mappings"] = mappings
            d["color"] = {"mode": "thresholds"}
        d.update(defaults or {})
        p: dict[str, Any] = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": DS, "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
            "fieldConfig": {"defaults": d, "overrides": overrides or []},
            "options": options or {}, "targets": targets,
        }
        if repeat:  # one panel per selected value of the variable
            p.update(repeat=repeat, repeatDirection="h", maxPerRow=2)
        if kind == "timeseries" and not options:
            p["options"] = {"legend": {"displayMode": "table", "placement": "bottom",
                                       "calcs": ["lastNotNull", "min", "max"]},
                            "tooltip": {"mode": "multi", "sort": "none"}}
        self.panels.append(p)
        self._x += w
        self._row_h = max(self._row_h, h)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["timewatch"], "timezone": "utc", "editable": True, "graphTooltip": 1,
            "refresh": "30s", "schemaVersion": SCHEMA_VERSION, "version": 1,
            "time": {"from": "now-6h", "to": "now"}, "fiscalYearStartMonth": 0,
            "liveNow": False, "weekStart": "",
            "links": [{"type": "dashboards", "tags": ["timewatch"], "asDropdown": False,
                       "title": "timewatch", "includeVars": True, "keepTime": True}],
            "annotations": {"list": self.annotations},
            "templating": {"list": self.vars},
            "panels": self.panels,
        }


def _verdict_timeline(b: Board, where: str, title: str = "Verdicts", w: int = 24) -> None:
    b.panel("state-timeline", title, [target(
        f'SELECT max("verdict_code") FROM "tw_source" WHERE {HOST} AND {where} AND $timeFilter '
        'GROUP BY time($__interval), "source" fill(previous)', "$tag_source")],
        w=w, h=6, mappings=_mapping(VERDICTS),
        description="Worst verdict per interval (truechimer best, falseticker worst).",
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                 "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})


def overview() -> Board:
    b = Board("timewatch-overview", "timewatch: overview",
              "Consensus of the trust groups, every source's offset with its error bound, "
              "verdicts and alerts.")
    b.var("source", "Source",
          f'SHOW TAG VALUES FROM "tw_sample" WITH KEY = "source" WHERE {HOST}')
    cons = f'FROM "tw_consensus" WHERE {HOST} AND $timeFilter'
    b.panel("stat", "Quorum", [target(f'SELECT last("quorum") {cons}', "quorum")], w=4, h=4,
            mappings=[{"type": "value", "options": {"0": {"text": "NO QUORUM", "color": "red"},
                                                   "1": {"text": "quorum", "color": "green"}}}],
            description="Whether a strict majority of trust groups agree (consensus.lost when not).")
    b.panel("stat", "Groups agreeing / voting", [
        target(f'SELECT last("groups_agreeing") {cons}', "agreeing"),
        target(f'SELECT last("groups_voting") {cons}', "voting", ref="B")], w=5, h=4)
    b.panel("stat", "Active alerts", [target(f'SELECT last("alerts_active") {cons}', "alerts")],
            w=4, h=4, defaults={"thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": 1}]}})
    b.panel("stat", "Falsetickers", [target(f'SELECT last("sources_falseticker") {cons}',
                                            "falsetickers")], w=4, h=4,
            defaults={"thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": 1}]}})
    b.panel("stat", "Holdover frequency", [target(f'SELECT last("holdover_ppm") {cons}',
                                                  "ppm")], w=7, h=4, unit="ppm",
            description="Raw oscillator frequency against the consensus (PPS holdover model).")
    b.panel("timeseries", "Consensus offset (host clock error) with its bound", [target(
        'SELECT mean("offset_s") AS "offset", mean("offset_s") - mean("bound_s") AS "low", '
        f'mean("offset_s") + mean("bound_s") AS "high" {cons} '
        'GROUP BY time($__interval) fill(none)')], w=24, unit="s",
        description="Consensus time minus host realtime; the band is the consensus interval.",
        overrides=[{"matcher": {"id": "byName", "options": "high"}, "properties": [
            {"id": "custom.fillBelowTo", "value": "low"}, {"id": "custom.lineWidth", "value": 0}]},
            {"matcher": {"id": "byName", "options": "low"}, "properties": [
                {"id": "custom.lineWidth", "value": 0}]}])
    smp = f'FROM "tw_sample" WHERE {HOST} AND {SRC} AND $timeFilter'
    b.panel("timeseries", "Offset per source: coarse (left axis), precise (right axis)", [target(
        f'SELECT mean("offset_s") {smp} GROUP BY time($__interval), "source", "kind" '
        'fill(none)', "$tag_source ($tag_kind)")], unit="s",
        description="Source time minus host realtime. Coarse sources (NTP servers, GNSS time "
                    "labels, chronyd: milliseconds) on the left axis; precise ones (PPS: "
                    "microseconds) on the right, so that neither flattens the other.",
        **_coarse_and_precise_axes())
    b.panel("timeseries", "Error bound per source: coarse (left axis), precise (right axis)", [
        target(f'SELECT max("bound_s") {smp} GROUP BY time($__interval), "source", "kind" '
               'fill(none)', "$tag_source ($tag_kind)")], unit="s",
        description="Half-width of each source's error interval (what the vote uses); coarse "
                    "and precise sources on their own axes, as beside.",
        **_coarse_and_precise_axes())
    b.panel("timeseries", "Offset of $source with its error band", [
        target(f'SELECT mean("offset_s") AS "offset", mean("offset_s") - max("bound_s") AS "low", '
               f'mean("offset_s") + max("bound_s") AS "high" {smp} GROUP BY time($__interval) '
               'fill(none)', "$col"),
        target(f'SELECT mean("offset_s") AS "consensus" {cons} GROUP BY time($__interval) '
               'fill(none)', "$col", ref="B")],
        unit="s", repeat="source", w=24, overrides=_band("low", "high") + [
            {"matcher": {"id": "byName", "options": "consensus"}, "properties": [
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [6, 4]}},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]}],
        description="One panel per source, as the terminal view draws it: the source's offset "
                    "against the host clock, the band its error interval (offset +- bound), "
                    "the dashed line the consensus of the trust groups. A truechimer's band "
                    "holds the consensus line; a falseticker's misses it. Each panel scales to "
                    "its source: a GNSS label's band is wide (its latency), a PPS band narrow.")
    _verdict_timeline(b, SRC)
    b.panel("table", "Sources now", [target(
        'SELECT last("verdict") AS "verdict", last("reason") AS "reason", '
        'last("offset_s") AS "offset_s", last("bound_s") AS "bound_s", last("age_s") AS "age_s", '
        'last("authenticated") AS "authenticated" '
        f'FROM "tw_source" WHERE {HOST} AND {SRC} AND $timeFilter GROUP BY "source", "kind", '
        '"trust_group"', fmt="table")], w=24, h=7,
        overrides=[{"matcher": {"id": "byName", "options": "authenticated"},
                    "properties": [{"id": "mappings", "value": _mapping(AUTH)}]}],
        description="Each source's latest verdict and why (chrony's selectdata, in words); "
                    "authenticated: NTS (its replies cannot be altered in transit) or no.")
    b.panel("table", "Alerts", [target(
        'SELECT "code", "severity", "sources", "message", "id" FROM "tw_event" WHERE '
        f'"type" = \'alert\' AND {HOST} AND $timeFilter ORDER BY time DESC LIMIT 200',
        fmt="table")], w=24, h=8, description="Alerts raised in the time range (newest first).")
    return b


def _coarse_and_precise_axes() -> dict[str, Any]:
    """Panel options for series named "SOURCE (KIND)": precise sources (PPS) on a right axis of
    their own, coarse ones (NTP, GNSS labels, chronyd) on the left."""
    return {"defaults": {"custom": {"axisLabel": "coarse: NTP, GNSS labels"}},
            "overrides": [{"matcher": {"id": "byRegexp", "options": PRECISE}, "properties": [
                {"id": "custom.axisPlacement", "value": "right"},
                {"id": "custom.axisLabel", "value": "precise: PPS"}]}]}


def _band(low: str, high: str) -> list[dict[str, Any]]:
    """Overrides that fill between two series named low and high (and draw no line for them)."""
    return [{"matcher": {"id": "byName", "options": high}, "properties": [
        {"id": "custom.fillBelowTo", "value": low}, {"id": "custom.lineWidth", "value": 0},
        {"id": "custom.fillOpacity", "value": 20}]},
        {"matcher": {"id": "byName", "options": low}, "properties": [
            {"id": "custom.lineWidth", "value": 0}]}]


def gnss() -> Board:
    b = Board("timewatch-gnss", "timewatch: GNSS",
              "Fix, satellites, carrier-to-noise, position and label latency of each GNSS "
              "receiver.")
    b.var("source", "Receiver", f'SHOW TAG VALUES FROM "tw_sample" WITH KEY = "source" WHERE '
                                f'"kind" = \'gnss\' AND {HOST}')
    # Samples: one per valid epoch. Status (tw_source): the latest epoch, every snapshot, also
    # while the receiver has no fix (when there are no samples).
    g = f'FROM "tw_sample" WHERE "kind" = \'gnss\' AND {HOST} AND {SRC} AND $timeFilter'
    st = f'FROM "tw_source" WHERE "kind" = \'gnss\' AND {HOST} AND {SRC} AND $timeFilter'
    b.panel("state-timeline", "Fix", [target(
        f'SELECT min("fix") * min("valid") {st} GROUP BY time($__interval), "source" '
        'fill(previous)', "$tag_source")], w=24, h=5, mappings=_mapping(FIX),
        description="Worst fix of the receiver's latest epoch per interval: 2D, 3D, or no "
                    "usable fix (no fix, or an epoch the engine cannot use: gnss.no_fix, "
                    "gnss.simulator, gnss.date_anomaly). A receiver that went silent keeps its "
                    "last epoch here: its verdict says stale.",
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8})
    b.panel("timeseries", "Satellites", [
        target(f'SELECT min("sats_used") {st} GROUP BY time($__interval), "source" fill(none)',
               "$tag_source used"),
        target(f'SELECT max("sats_in_view") {st} GROUP BY time($__interval), "source" '
               'fill(none)', "$tag_source in view", ref="B")],
        description="Satellites used in the fix (0 without a fix) and in view, from the latest "
                    "epoch at each snapshot (gnss.satellites).")
    b.panel("timeseries", "C/N0 across the satellites: $source", [target(
        'SELECT min("cn0_min_db_hz") AS "min", mean("cn0_mean_db_hz") AS "mean", '
        f'max("cn0_max_db_hz") AS "max" {g} GROUP BY time($__interval) fill(none)', "$col")],
        unit="dBHz", repeat="source", overrides=_band("min", "max"),
        description="Band: the weakest and the strongest satellite of the epochs in each "
                    "interval; line: the mean over the satellites. Implausibly strong signals "
                    "or all satellites stepping up at once: gnss.cn0_anomaly.")
    b.panel("timeseries", "C/N0 spread across the satellites (standard deviation)", [target(
        f'SELECT min("cn0_std_db_hz") {g} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="dBHz",
        description="Lowest per-epoch standard deviation of the satellites' C/N0 in each "
                    "interval. Real sky: several dB-Hz (elevations differ); one transmitter "
                    "(a spoofer) gives every satellite the same level: below 2 dB-Hz with 4 or "
                    "more satellites for 15 s is gnss.cn0_anomaly.",
        defaults={"custom": {"thresholdsStyle": {"mode": "line"}},
                  "thresholds": {"mode": "absolute", "steps": [
                      {"color": "red", "value": None},
                      # [detect] gnss_cn0_uniform_sigma_db_hz default (engine/params.py)
                      {"color": "green", "value": 2}]}})
    b.panel("histogram", "C/N0 distribution", [target(
        'SELECT mean("cn0_min_db_hz") AS "weakest", mean("cn0_mean_db_hz") AS "mean", '
        f'mean("cn0_max_db_hz") AS "strongest" {g} GROUP BY time($__interval), "source" '
        'fill(none)', "$tag_source $col")], unit="dBHz",
        description="How the weakest, mean and strongest satellite's C/N0 were distributed "
                    "over the time range: a narrow spike far above the usual hump is "
                    "suspicious.",
        options={"bucketSize": 1, "combine": False,
                 "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})
    b.panel("timeseries", "Position deviation", [target(
        f'SELECT max("position_error_m") {g} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="lengthm",
        description="Distance of the fix from the surveyed or learned antenna position "
                    "(gnss.position_jump).")
    b.panel("timeseries", "Label latency", [target(
        f'SELECT mean("latency_s") {g} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s",
        description="Arrival of the time label after the second it names (learned against the "
                    "consensus, then fixed); until it is learned the offset has a wide bound.")
    b.panel("timeseries", "GNSS offset against the host", [target(
        f'SELECT mean("offset_s") {g} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], w=24, unit="s")
    _verdict_timeline(b, f'"kind" = \'gnss\' AND {SRC}', "GNSS verdicts")
    return b


def pps() -> Board:
    b = Board("timewatch-pps", "timewatch: PPS",
              "Pulse-per-second: jitter, missing pulses, phase and the holdover oscillator.")
    b.var("source", "PPS", f'SHOW TAG VALUES FROM "tw_sample" WITH KEY = "source" WHERE '
                           f'"kind" = \'pps\' AND {HOST}')
    p = f'FROM "tw_sample" WHERE "kind" = \'pps\' AND {HOST} AND {SRC} AND $timeFilter'
    st = f'FROM "tw_source" WHERE "kind" = \'pps\' AND {HOST} AND {SRC} AND $timeFilter'
    b.panel("timeseries", "Jitter", [target(
        f'SELECT max("jitter_s") {st} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s",
        description="Smoothed jitter of the pulse edges against the phase line (about the last "
                    "32 pulses), at each snapshot.")
    b.panel("timeseries", "Missing pulses per interval", [target(
        f'SELECT non_negative_difference(max("missing_total")) {st} '
        'GROUP BY time($__interval), "source" fill(none)', "$tag_source")],
        description="Pulses missing (sequence gaps, whole seconds without an edge), counted "
                    "when the train resumes: pps.missing.",
        defaults={"custom": {"drawStyle": "bars", "fillOpacity": 60}})
    b.panel("timeseries", "Holdover frequency", [target(
        f'SELECT mean("holdover_freq_ppm") {st} GROUP BY time($__interval), "source" '
        'fill(none)', "$tag_source")], unit="ppm",
        description="Raw oscillator (CLOCK_MONOTONIC_RAW) frequency error learned from the good "
                    "pulses while the consensus has quorum (+ = runs fast).")
    b.panel("timeseries", "Phase residual", [target(
        f'SELECT mean("phase_s") {p} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s",
        description="Edge phase against the line fitted to the previous good pulses.")
    b.panel("timeseries", "Pulses kept out per interval", [
        target(f'SELECT non_negative_difference(max("outliers")) AS "outliers" {st} '
               'GROUP BY time($__interval), "source" fill(none)', "$tag_source $col"),
        target(f'SELECT non_negative_difference(max("interval_faults")) AS "interval faults" '
               f'{st} GROUP BY time($__interval), "source" fill(none)', "$tag_source $col",
               ref="B")],
        description="Outliers: edges off the phase line by 5 jitters or more (kept out of the "
                    "estimate and the holdover). Interval faults: edges off the 1-s train "
                    "(pps.interval).",
        defaults={"custom": {"drawStyle": "bars", "fillOpacity": 60}})
    b.panel("timeseries", "PPS offset against the host", [target(
        f'SELECT mean("offset_s") {p} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s")
    b.panel("timeseries", "PPS alerts", [target(
        'SELECT count("active") FROM "tw_event" WHERE "code" =~ /^pps\\./ AND "type" = '
        f'\'alert\' AND {HOST} AND $timeFilter GROUP BY time($__interval), "code" fill(none)',
        "$tag_code")], w=24, description="pps.missing, pps.interval, pps.label_mismatch raised.",
        defaults={"custom": {"drawStyle": "bars", "fillOpacity": 60}})
    _verdict_timeline(b, f'"kind" = \'pps\' AND {SRC}', "PPS verdicts")
    return b


def ntp() -> Board:
    b = Board("timewatch-ntp", "timewatch: NTP",
              "Offset, round-trip delay, reachability and authentication of every NTP server "
              "(plain and NTS).")
    b.var("source", "Server", f'SHOW TAG VALUES FROM "tw_sample" WITH KEY = "source" WHERE '
                              f'{NTP_KINDS} AND {HOST}')
    n = f'FROM "tw_sample" WHERE {NTP_KINDS} AND {HOST} AND {SRC} AND $timeFilter'
    b.panel("timeseries", "Offset per server", [target(
        f'SELECT mean("offset_s") {n} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s", description="Server time minus host realtime.")
    b.panel("timeseries", "Round-trip delay per server", [target(
        f'SELECT mean("delay_s") {n} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s",
        description="A jump of the delay with an offset change of half of it is a delay attack "
                    "(ntp.delay_anomaly).")
    b.panel("timeseries", "Replies per interval (reachability)", [target(
        f'SELECT count("offset_s") {n} GROUP BY time($__interval), "source" fill(0)',
        "$tag_source")], description="Usable replies received; zero for a whole poll "
                                     "interval or more means unreachable.",
        defaults={"custom": {"drawStyle": "bars", "fillOpacity": 60}})
    b.panel("timeseries", "Time since the last usable reply", [target(
        f'SELECT max("age_s") FROM "tw_source" WHERE {NTP_KINDS} AND {HOST} AND {SRC} '
        'AND $timeFilter GROUP BY time($__interval), "source" fill(none)', "$tag_source")],
        unit="s", description="Grows without bound while a server is unreachable "
                              "(source.stale after 3 polls).")
    b.panel("timeseries", "Error bound per server", [target(
        f'SELECT max("bound_s") {n} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], unit="s",
        description="Half the delay plus root delay/2 and root dispersion, aged.")
    b.panel("timeseries", "Stratum", [target(
        f'SELECT max("stratum") {n} GROUP BY time($__interval), "source" fill(none)',
        "$tag_source")], description="Stratum of each server's reply.")
    b.panel("table", "Authenticated (NTS)", [target(
        'SELECT last("authenticated") AS "authenticated", last("verdict") AS "verdict", '
        f'last("reason") AS "reason" FROM "tw_source" WHERE {NTP_KINDS} AND {HOST} AND {SRC} '
        'AND $timeFilter GROUP BY "source", "kind"', fmt="table")], w=24, h=6,
        overrides=[{"matcher": {"id": "byName", "options": "authenticated"},
                    "properties": [{"id": "mappings", "value": _mapping(AUTH)}]}],
        description="NTS: every reply the server gives is authenticated, so it cannot be "
                    "altered in transit; the vote weighs it by [vote] auth_mode. "
                    "nts.auth_failed, nts.downgrade and nts.ke_failed appear as annotations.")
    _verdict_timeline(b, f'{NTP_KINDS} AND {SRC}', "NTP verdicts")
    return b


BOARDS = {"overview": overview, "gnss": gnss, "pps": pps, "ntp": ntp}


def render(name: str) -> str:
    return json.dumps(BOARDS[name]().json(), indent=2) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name in BOARDS:
        (OUT / f"{name}.json").write_text(render(name))
        print(f"wrote {OUT / f'{name}.json'}")


if __name__ == "__main__":
    main()
