"""The store keeps each source's status numbers (SourceStatus.fields) with its verdict, export
writes them into `tw_source`, and a store of schema version 1 (verdicts without them) is still
read, and migrated when opened for writing."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

from timewatch.config import parse
from timewatch.records import Snapshot, SourceStatus
from timewatch.sinks.export import export
from timewatch.sinks.store import SCHEMA_VERSION, Store

T_NS = 1_796_083_200 * 10**9
GNSS_FIELDS = {"fix": 3, "valid": True, "sats_used": 11, "cn0_min_db_hz": 33.0,
               "cn0_std_db_hz": 4.5, "latency_s": None, "cn0_db_hz": {"GP12": 41.0}}

# The verdicts table as schema version 1 created it (timewatch before status numbers).
V1_SCHEMA = """
CREATE TABLE samples (t_ns INTEGER NOT NULL, src TEXT NOT NULL, offset_s REAL NOT NULL,
    bound_s REAL NOT NULL, fields_json TEXT NOT NULL);
CREATE TABLE snapshots (id INTEGER PRIMARY KEY, t_ns INTEGER NOT NULL, quorum INTEGER NOT NULL,
    groups_agreeing INTEGER NOT NULL, groups_voting INTEGER NOT NULL, consensus_offset_s REAL,
    consensus_bound_s REAL, holdover_ppm REAL, active_alerts_json TEXT NOT NULL);
CREATE TABLE verdicts (snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    t_ns INTEGER NOT NULL, src TEXT NOT NULL, kind TEXT NOT NULL, trust_group TEXT NOT NULL,
    verdict TEXT NOT NULL, reason TEXT NOT NULL, offset_s REAL, bound_s REAL, last_ns INTEGER);
CREATE TABLE events (t_ns INTEGER NOT NULL, type TEXT NOT NULL, code TEXT NOT NULL,
    id TEXT NOT NULL, severity TEXT, sources_json TEXT NOT NULL, event_json TEXT NOT NULL,
    UNIQUE (id, type));
INSERT INTO snapshots VALUES (1, 1796083190000000000, 1, 1, 1, 0.0, 1e-6, NULL, '[]');
INSERT INTO verdicts VALUES (1, 1796083190000000000, 'gnss0', 'gnss', 'gnss', 'truechimer',
    'agrees', 0.0, 1e-6, 1796083190000000000);
PRAGMA user_version = 1;
"""


def snapshot(t_ns: int = T_NS) -> Snapshot:
    return Snapshot(t_ns, (SourceStatus("gnss0", "gnss", "gnss", "unusable", "no valid fix",
                                        None, None, t_ns - 10**10, dict(GNSS_FIELDS)),),
                    False, 0, 0, None, None)


def test_status_fields_round_trip_through_the_store(tmp_path: Path) -> None:
    st = Store(tmp_path / "tw.db")
    st.write([snapshot()])
    st.close()
    got = list(Store(tmp_path / "tw.db", readonly=True).iter_snapshots())
    assert got[0].sources[0].fields == GNSS_FIELDS


def test_export_writes_status_numbers_into_tw_source(tmp_path: Path) -> None:
    cfg = parse({"monitor": {"host": "h1", "state_dir": str(tmp_path)}})
    st = Store(cfg.store_path)
    st.write([snapshot()])
    st.close()
    buf = io.StringIO()
    export(cfg, buf)
    line = next(x for x in buf.getvalue().splitlines() if x.startswith("tw_source,"))
    fields = dict(re.findall(r"[ ,](\w+)=(-?[0-9][^, ]*)", line))  # the numeric fields
    assert fields["fix"] == "3.0" and fields["valid"] == "1.0" and fields["sats_used"] == "11.0"
    assert fields["cn0_min_db_hz"] == "33.0" and fields["cn0_std_db_hz"] == "4.5"
    assert "latency_s=" not in line and "cn0_db_hz=" not in line  # None and a dict: left out


def _v1_store(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()


def test_a_version_1_store_is_read_without_status_numbers(tmp_path: Path) -> None:
    _v1_store(tmp_path / "old.db")
    got = list(Store(tmp_path / "old.db", readonly=True).iter_snapshots())
    assert got[0].sources[0].verdict == "truechimer" and got[0].sources[0].fields == {}


def test_a_version_1_store_is_migrated_when_opened_for_writing(tmp_path: Path) -> None:
    _v1_store(tmp_path / "old.db")
    st = Store(tmp_path / "old.db")
    st.write([snapshot()])
    st.close()
    db = sqlite3.connect(tmp_path / "old.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    # every migration ran: the verdicts' status numbers (2) and auth (3), the events' chain (4)
    assert "auth" in [r[1] for r in db.execute("PRAGMA table_info(verdicts)")]
    assert "chain_sha256" in [r[1] for r in db.execute("PRAGMA table_info(events)")]
    db.close()
    old, new = list(Store(tmp_path / "old.db", readonly=True).iter_snapshots())
    assert old.sources[0].fields == {} and new.sources[0].fields == GNSS_FIELDS
