"""Which sources are authenticated (SourceStatus.auth, "nts" for an NTS source) reaches every
place that shows a source: the store (verdicts.auth, schema 3, migrated from 2), /status.json,
/metrics, `timewatch status`, InfluxDB (`tw_source` field `authenticated`)."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

from timewatch.commands.status import render
from timewatch.config import parse
from timewatch.records import Snapshot, SourceStatus
from timewatch.sinks.http import HttpSink, status_document
from timewatch.sinks.lineproto import to_lines
from timewatch.sinks.store import Store

T_NS = 1_796_083_200 * 10**9
SNAP = Snapshot(T_NS, (
    SourceStatus("ptb", "nts", "ptb", "truechimer", "agrees with 2/2 trust groups", 1e-4, 2e-3,
                 T_NS, {"delay_s": 0.01}, "nts"),
    SourceStatus("plain", "ntp", "plain", "truechimer", "agrees with 2/2 trust groups", 2e-4,
                 3e-3, T_NS, {"delay_s": 0.02}),
), True, 2, 2, 1.5e-4, 1e-3)


def test_snapshot_dict_has_auth_only_for_an_authenticated_source() -> None:
    a, b = (s.to_dict() for s in SNAP.sources)
    assert a["auth"] == "nts" and "auth" not in b  # unchanged for every other source


def test_store_keeps_auth_and_migrates_a_version_2_store(tmp_path: Path) -> None:
    st = Store(tmp_path / "tw.db")
    st.write([SNAP])
    st.close()
    (got,) = Store(tmp_path / "tw.db", readonly=True).iter_snapshots()
    assert [s.auth for s in got.sources] == ["nts", None]
    # A version-2 store (no auth column): read as unauthenticated, migrated when written.
    db = sqlite3.connect(tmp_path / "tw.db")
    db.executescript("ALTER TABLE verdicts DROP COLUMN auth; "
                     "ALTER TABLE events DROP COLUMN chain_sha256; PRAGMA user_version = 2;")
    db.close()
    (old,) = Store(tmp_path / "tw.db", readonly=True).iter_snapshots()
    assert [s.auth for s in old.sources] == [None, None]
    st = Store(tmp_path / "tw.db")
    st.write([SNAP])
    st.close()
    _, new = Store(tmp_path / "tw.db", readonly=True).iter_snapshots()
    assert [s.auth for s in new.sources] == ["nts", None]


def test_status_json_metrics_and_status_table(tmp_path: Path) -> None:
    cfg = parse({"monitor": {"host": "h", "state_dir": str(tmp_path)},
                 "http": {"listen": "127.0.0.1:0"}})
    http = HttpSink(cfg)
    try:
        http.handle([SNAP])
        base = f"http://{http.address}"
        doc = json.loads(urllib.request.urlopen(base + "/status.json", timeout=5).read())
        metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    finally:
        http.close()
    assert [s.get("auth") for s in doc["sources"]] == ["nts", None]
    assert 'timewatch_source_authenticated{source="ptb",group="ptb",kind="nts"} 1.0' in metrics
    assert 'timewatch_source_authenticated{source="plain",group="plain",kind="ntp"} 0.0' \
        in metrics
    table = render(status_document("h", SNAP, [], None, None) | {"origin": "test"})
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert " nts " in rows["ptb"] and " - " in rows["plain"]
    assert rows["source"].split()[-2:] == ["auth", "reason"]


def test_influx_tw_source_has_authenticated() -> None:
    lines = [x for x in to_lines([SNAP], "h") if x.startswith("tw_source,")]
    assert len(lines) == 2
    assert "authenticated=1" in lines[0] and "source=ptb" in lines[0]
    assert "authenticated=0" in lines[1] and "source=plain" in lines[1]
