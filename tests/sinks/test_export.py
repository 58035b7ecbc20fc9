"""`timewatch export`: the store's history as line protocol, oldest first, ns precision; loaded
into a real InfluxDB 1.x it gives back every record."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.stores import Influx1, http, influxdb1  # noqa: F401 - fixture
from timewatch.cli import main
from timewatch.config import load
from timewatch.records import Event, Output, Sample, Snapshot, SourceStatus
from timewatch.sinks.store import Store, StoreSink

T = 1_764_160_950_123_456_789  # not a whole second: ns precision must survive
S = 1_000_000_000
SOURCES = (("ntp1", "g1"), ("ntp2", "g2"), ("liar", "g3"))
MESSAGE = 'liar said "2.5 s" \\ and\nmore'  # quotes, a backslash, a newline


def history() -> list[Output]:
    out: list[Output] = []
    for i in range(300):
        t = T + i * S
        for n, (src, _) in enumerate(SOURCES):
            off = 2.5 if src == "liar" and i >= 100 else 1e-4 * n
            out.append(Sample(src, t + n * 1000, off, 2e-3, {"delay_s": 0.01, "stratum": 2.0}))
        if i == 102:
            out.append(Event("alert", t, "source.falseticker", ("liar",), "a1", "critical", MESSAGE,
                             {"offset_s": 2.5, "note": "a string is left out", "consecutive": 2}))
        if i == 250:
            out.append(Event("clear", t, "source.falseticker", ("liar",), "a1"))
        if i % 10 == 0:
            out.append(Snapshot(
                t, tuple(SourceStatus(src, "ntp", grp, "falseticker" if src == "liar" and
                                      102 <= i < 250 else "truechimer", "why", 1e-4, 2e-3, t - S)
                         for src, grp in SOURCES),
                True, 2, 3, 1e-4, 5e-4, ("source.falseticker:a1",) if 102 <= i < 250 else ()))
    return out


def write_config(tmp: Path) -> Path:
    p = tmp / "tw.toml"
    p.write_text(f'[monitor]\nhost = "pi-lab-1"\nstate_dir = "{tmp / "state"}"\n')
    return p


@pytest.fixture
def store_cfg(tmp_path: Path) -> Path:
    cfg_path = write_config(tmp_path)
    sink = StoreSink(load(cfg_path))
    sink.handle(history())
    sink.close()
    assert sink.written == len(history())
    return cfg_path


LINE = re.compile(r"^(tw_sample|tw_source|tw_consensus|tw_event)((?:,(?:[^ ,=\\]|\\.)+=(?:[^ ,\\]|\\.)+)+) "
                  r"((?:[a-z0-9_]+=(?:-?[0-9.e+-]+|\"(?:[^\"\\]|\\.)*\"),?)+) (\d{19})$")


def export_lines(cfg_path: Path, tmp: Path, *extra: str) -> list[str]:
    out = tmp / "out.lp"
    assert main(["export", "-c", str(cfg_path), "-o", str(out), *extra]) == 0
    return out.read_text().splitlines()


def test_export_is_line_protocol_one_point_per_record_oldest_first(
        store_cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = export_lines(store_cfg, tmp_path)
    parsed = [LINE.match(ln) for ln in lines]
    bad = [ln for ln, m in zip(lines, parsed, strict=True) if m is None]
    assert not bad, bad[:3]
    ts = [int(m.group(4)) for m in parsed if m]
    assert ts == sorted(ts) and ts[0] == T
    per = {m: sum(1 for p in parsed if p and p.group(1) == m)
           for m in ("tw_sample", "tw_source", "tw_consensus", "tw_event")}
    h = history()
    assert per == {"tw_sample": sum(isinstance(o, Sample) for o in h),
                   "tw_source": sum(len(o.sources) for o in h if isinstance(o, Snapshot)),
                   "tw_consensus": sum(isinstance(o, Snapshot) for o in h),
                   "tw_event": sum(isinstance(o, Event) for o in h)}
    assert "host=pi-lab-1" in lines[0] and "trust_group=g1" in lines[0]
    err = capsys.readouterr().err
    assert f"{per['tw_sample']} samples, 30 snapshots, 1 alerts, 1 clears" in err


def test_since_takes_unix_seconds_or_iso_time(store_cfg: Path, tmp_path: Path) -> None:
    cut = (T + 200 * S) // 1000 * 1000  # T + 200 s, to the microsecond
    iso = "2025-11-26T12:45:50.123456Z"
    a = export_lines(store_cfg, tmp_path, "--since", f"{cut // S}.{cut % S // 1000:06d}")
    b = export_lines(store_cfg, tmp_path, "--since", iso)
    assert a == b
    assert all(int(ln.rsplit(" ", 1)[1]) >= cut for ln in a)
    assert sum(ln.startswith("tw_sample") for ln in a) == 100 * 3


def test_bad_since_is_a_usage_error(store_cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "-c", str(store_cfg), "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err


def test_export_without_a_store_names_the_path(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "-c", str(write_config(tmp_path))]) == 1
    assert str(tmp_path / "state" / "timewatch.db") in capsys.readouterr().err


@pytest.mark.integration
def test_export_loads_into_influxdb_1_and_every_record_comes_back(
        store_cfg: Path, tmp_path: Path, influxdb1: Influx1) -> None:  # noqa: F811
    db = "export_test"
    status, body = http("POST", f"{influxdb1.url}/query?" +
                        urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}))
    assert status == 200, body
    lines = export_lines(store_cfg, tmp_path)
    for i in range(0, len(lines), 5000):
        influxdb1.write(lines[i:i + 5000], db=db)

    def count(q: str) -> float:
        series = influxdb1.query(q, db=db)["results"][0]["series"]
        return float(series[0]["values"][0][1])

    st = Store(load(store_cfg).store_path, readonly=True)
    c = st.counts()
    assert count("SELECT COUNT(offset_s) FROM tw_sample") == c["samples"]
    assert count("SELECT COUNT(verdict_code) FROM tw_source") == c["verdicts"]
    assert count("SELECT COUNT(quorum) FROM tw_consensus") == c["snapshots"]
    assert count("SELECT COUNT(active) FROM tw_event") == c["events"]
    assert count("SELECT COUNT(offset_s) FROM tw_sample WHERE source = 'liar' AND offset_s > 1") == 200
    first = influxdb1.query("SELECT offset_s FROM tw_sample WHERE source = 'ntp2' LIMIT 1", db=db)
    assert first["results"][0]["series"][0]["values"][0][0] == T + 1000  # ns precision kept
    msg = influxdb1.query("SELECT message, ev_offset_s FROM tw_event WHERE type = 'alert'", db=db)
    assert msg["results"][0]["series"][0]["values"][0][1:] == [MESSAGE.replace("\n", " "), 2.5]


@pytest.mark.parametrize(("text", "ns"), [
    ("1764160950.123456789", 1_764_160_950_123_456_789),
    ("1764160950", 1_764_160_950_000_000_000),
    ("2025-11-26T12:42:30Z", 1_764_160_950_000_000_000),
    ("2025-11-26T13:42:30.5+01:00", 1_764_160_950_500_000_000),
    ("2025-11-26 12:42:30", 1_764_160_950_000_000_000),  # no zone: UTC
])
def test_since_parses_to_exact_ns(text: str, ns: int) -> None:
    from timewatch.commands.export import parse_since

    assert parse_since(text) == ns
