"""Trace format: round trip, .gz, corrupt lines reported by number, unknown types counted."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from timewatch.records import Header, Nmea, Note, Ntp, Pps, SourceInfo, Tick, Ubx
from timewatch.trace import TraceError, TraceReader, TraceWriter

HDR = Header("pi-lab-1", 1764160000000000000, {
    "gnss0": SourceInfo("gnss", "gnss", position=(48.8566, 2.3522, 35.0)),
    "pps0": SourceInfo("pps", "gnss", label_from="gnss0"),
    "ntp-a": SourceInfo("ntp", "op-a", server="ntp-a.example.net"),
})
OBS = [
    Nmea("gnss0", 1764160001093000000, "$GNRMC,123519.00,A,4807.038,N,01131.000,E,0.02,,261126,,,A,V*1C"),
    Ubx("gnss0", 1764160001094000000, "b562010310"),
    Pps("pps0", 1764160001000001234, 81234, raw_ns=81234000000123),
    Ntp("ntp-a", 1764160002012345678, 1764160001990000000, "e9c3a1f25b07d4c1",
        t2_ns=1764160002001100000, t3_ns=1764160002001150000, t4_ns=1764160002012345678,
        org_hex="e9c3a1f25b07d4c1", leap=0, version=4, mode=4, stratum=1, poll=4, precision=-23,
        root_delay=0.0011, root_dispersion=0.0004, refid="GPS", pkt_hex="240406e9"),
    Ntp("ntp-a", 1764160003990000000, 1764160001990000000, "5d02c77a19e0b344", error="timeout"),
    Tick(1764160004000000000, 81234000000123),
    Note(1764160100000000000, "antenna cable replaced"),
]


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    with TraceWriter(p, HDR) as w:
        for o in OBS:
            w.write(o)
    r = TraceReader(p)
    assert r.header == HDR
    assert list(r) == OBS
    assert r.stats.records == len(OBS) and r.stats.bad_lines == 0


def test_spec_example_lines_parse(tmp_path: Path) -> None:
    p = tmp_path / "spec.jsonl"
    lines = [json.dumps(HDR.to_dict()),
             '{"type": "ntp", "src": "ntp-a", "rx_ns": 1764160003990000000, "t1_ns": '
             '1764160001990000000, "xmt_hex": "5d02c77a19e0b344", "error": "timeout"}',
             '{"type": "tick", "rx_ns": 1764160004000000000, "raw_ns": 81234000000123}']
    p.write_text("\n".join(lines) + "\n")
    obs = list(TraceReader(p))
    assert obs[0] == OBS[4] and obs[1] == OBS[5]


def test_corrupt_lines_are_reported_with_line_numbers_and_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join([
        json.dumps(HDR.to_dict()),
        '{"type": "pps", "src": "pps0", "rx_ns": 1, "seq": 1}',
        '{"type": "pps", "src": "pps0", "rx_ns": 2, "se',       # line 3: cut JSON
        '{"type": "pps", "src": "pps0", "rx_ns": "3", "seq": 3}',  # line 4: wrong type
        '{"type": "radar", "rx_ns": 4}',                           # line 5: unknown type
        '[1, 2]',                                                  # line 6: not an object
        '{"type": "pps", "src": "pps0", "rx_ns": 5, "seq": 5}',
    ]) + "\n")
    with caplog.at_level(logging.WARNING):
        r = TraceReader(p)
        obs = list(r)
    assert [o.rx_ns for o in obs] == [1, 5]
    assert r.stats.bad_lines == 3 and r.stats.unknown_types == {"radar": 1}
    text = caplog.text
    assert "bad.jsonl:3: invalid JSON" in text
    assert "bad.jsonl:4: field 'rx_ns' must be an integer" in text
    assert "bad.jsonl:6: not a JSON object" in text


def test_truncated_gzip_keeps_what_came_before(tmp_path: Path) -> None:
    p = tmp_path / "cut.jsonl.gz"
    with TraceWriter(p, HDR) as w:
        for i in range(2000):
            w.write(Pps("pps0", 10**18 + i * 10**9, i))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    r = TraceReader(p)
    got = list(r)
    assert 100 < len(got) < 2000
    assert [o.seq for o in got] == list(range(len(got)))  # type: ignore[union-attr]
    assert r.stats.bad_lines == 1 and "ends early" in r.stats.problems[0]


def test_not_a_trace_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"hello": 1}\n')
    with pytest.raises(TraceError, match="x.jsonl:1: not a timewatch trace header"):
        TraceReader(p)
    with pytest.raises(TraceError, match="cannot read"):
        TraceReader(tmp_path / "missing.jsonl")
    g = tmp_path / "g.jsonl.gz"
    g.write_bytes(gzip.compress(b"garbage\n"))
    with pytest.raises(TraceError):
        TraceReader(g)


def test_header_refuses_non_finite_and_out_of_range_numbers(tmp_path: Path) -> None:
    base = json.dumps(HDR.to_dict())
    for bad, what in [(base.replace("48.8566", "NaN"), "non-finite number NaN"),
                      (base.replace("48.8566", "1e400"), "position"),
                      (base.replace("48.8566", "91.0"), "position"),
                      (base.replace('"created_ns": 1764160000000000000', '"created_ns": -1'),
                       "'created_ns' is out of range")]:
        p = tmp_path / "h.jsonl"
        p.write_text(bad + "\n")
        with pytest.raises(TraceError, match=what):
            TraceReader(p)


def test_a_snapshot_is_always_valid_json() -> None:
    """Inputs are range-checked, so the engine never computes a NaN; should it, the snapshot
    says null rather than write `NaN` (not JSON)."""
    from timewatch.records import Snapshot, SourceStatus

    snap = Snapshot(1, (SourceStatus("a", "ntp", "a", "truechimer", "", float("nan"), float("inf"),
                                     None, {"x": float("-inf"), "y": 1.5}),),
                    True, 1, 1, float("nan"), 0.001, holdover_ppm=float("inf"))
    d = json.loads(json.dumps(snap.to_dict(), allow_nan=False))
    assert d["consensus"]["offset_s"] is None and d["holdover_ppm"] is None
    assert d["sources"][0]["offset_s"] is None and d["sources"][0]["fields"] == {"x": None, "y": 1.5}
