"""The line-protocol schema: escaping per the InfluxDB reference, names safe in InfluxQL,
numbers always floats, one identity per point."""

from __future__ import annotations

import re

from timewatch.records import Event, Sample, Snapshot, SourceInfo, SourceStatus
from timewatch.sinks.lineproto import (
    INFLUXQL_KEYWORDS,
    MEASUREMENTS,
    VERDICT_CODES,
    Encoder,
    escape_key,
    escape_measurement,
    escape_string,
    format_line,
    safe_name,
    to_lines,
)

T = 1_764_160_950_123_456_789
SOURCES = {
    "gnss0": SourceInfo("gnss", "gnss"),
    "pps0": SourceInfo("pps", "gnss", label_from="gnss0"),
    "cloudflare": SourceInfo("ntp", "cloudflare", server="time.cloudflare.com"),
}


def _split(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    """A small reader: measurement, tags (separators unescaped), fields (raw values), time."""
    head, rest = re.split(r"(?<!\\) ", line, maxsplit=1)
    fields, ts = rest.rsplit(" ", 1)
    meas, *tags = re.split(r"(?<!\\),", head)
    unesc = [t.replace("\\,", ",").replace("\\ ", " ").replace("\\=", "=") for t in tags]
    fs = re.findall(r'(?:^|,)([a-z0-9_]+)=("(?:[^"\\]|\\.)*"|[^,]+)', fields)
    return meas, dict(t.split("=", 1) for t in unesc), dict(fs), int(ts)


def _outputs() -> list:
    return [
        Sample("gnss0", T, 2.5e-7, 5e-8, {"sats_used": 9, "cn0_mean_db_hz": 41.25, "fix": 3,
                                          "hdop": 0.9}),
        Sample("pps0", T, -1e-7, 1e-6, {"jitter_s": 2e-7}),
        Sample("cloudflare", T, 1.2e-3, 8e-3, {"delay_s": 0.016, "stratum": 3}),
        Snapshot(T, (SourceStatus("gnss0", "gnss", "gnss", "truechimer", "agrees with 2 of 2",
                                  2.5e-7, 5e-8, T - 10**9),
                     SourceStatus("cloudflare", "ntp", "cloudflare", "falseticker",
                                  "outside [-1e-3, 1e-3]", 1.2e-3, 8e-3, T)),
                 True, 2, 3, 1e-7, 4e-7, ("source.falseticker:8f3c1c2e",), 0.35),
        Event("alert", T, "source.falseticker", ("cloudflare",), "8f3c1c2e", "critical",
              "cloudflare disagrees", {"offset_s": 1.2e-3, "consecutive": 3,
                                       "note": "text", "intervals": {"a": [1, 2]}}),
        Event("clear", T + 10**9, "source.falseticker", ("cloudflare",), "8f3c1c2e"),
    ]


def test_escaping_follows_the_line_protocol_reference() -> None:
    assert escape_measurement("tw sample,x") == "tw\\ sample\\,x"
    assert escape_key("a b,c=d") == "a\\ b\\,c\\=d"
    assert escape_string('say "hi" C:\\dir') == '"say \\"hi\\" C:\\\\dir"'
    # A newline would end the point: it becomes a space everywhere.
    assert escape_key("a\nb") == "a\\ b"
    assert escape_string("a\r\nb") == '"a  b"'


def test_empty_tag_values_are_left_out_and_tags_sorted() -> None:
    line = format_line("m", {"z": "1", "a": "", "b": None, "c": "x y"}, {"v": 1}, 5)
    assert line == "m,c=x\\ y,z=1 v=1.0 5"


def test_a_point_without_a_usable_field_is_not_written() -> None:
    assert format_line("m", {"a": "1"}, {"v": None, "w": float("nan"), "x": [1]}, 5) is None


def test_numbers_are_floats_never_integers_and_bools_are_0_or_1() -> None:
    line = format_line("m", {}, {"i": 3, "f": 2.5, "b": True, "n": False, "inf": float("inf")}, 7)
    assert line == "m i=3.0,f=2.5,b=1.0,n=0.0 7"


def test_a_float_subclass_is_written_as_the_float_it_is() -> None:
    # Plain floats take a short path in format_line; a subclass (numpy.float64 is one) the
    # general one: the same line either way, non-finite values left out.
    class F(float):
        def __repr__(self) -> str:
            return "F(...)"

    plain = {"a": 1e-7, "b": -0.25, "c": float("nan"), "d": float("-inf")}
    sub = {k: F(v) for k, v in plain.items()}
    assert format_line("m", {"t": "x"}, sub, 9) == format_line("m", {"t": "x"}, plain, 9) \
        == "m,t=x a=1e-07,b=-0.25 9"


def test_every_name_is_safe_in_influxql() -> None:
    names: set[str] = set()
    for line in to_lines(_outputs(), "pi-lab-1", SOURCES):
        meas, tags, fields, _ = _split(line)
        names |= {meas, *tags, *fields}
    assert names & INFLUXQL_KEYWORDS == set()
    assert {"offset_s", "trust_group", "source", "host"} <= names


def test_keyword_field_names_get_an_underscore() -> None:
    assert safe_name("offset") == "offset_"
    assert safe_name("GROUP") == "GROUP_"
    assert safe_name("delay_s") == "delay_s"
    line = to_lines([Sample("gnss0", T, 0.0, 1e-6, {"offset": 1.0})], "h", SOURCES)[0]
    assert "offset_=1.0" in line


def test_sample_is_tagged_with_host_source_kind_group_at_ns_precision() -> None:
    meas, tags, fields, ts = _split(to_lines(_outputs()[:1], "pi-lab-1", SOURCES)[0])
    assert meas == "tw_sample"
    assert tags == {"host": "pi-lab-1", "source": "gnss0", "kind": "gnss", "trust_group": "gnss"}
    assert fields == {"offset_s": "2.5e-07", "bound_s": "5e-08", "sats_used": "9.0",
                      "cn0_mean_db_hz": "41.25", "fix": "3.0", "hdop": "0.9"}
    assert ts == T


def test_snapshot_gives_a_verdict_per_source_as_string_and_code_and_the_consensus() -> None:
    lines = to_lines(_outputs()[3:4], "h", SOURCES)
    parsed = [_split(ln) for ln in lines]
    by = {(m, t.get("source")): f for m, t, f, _ in parsed}
    gn = by[("tw_source", "gnss0")]
    assert gn["verdict"] == '"truechimer"' and gn["verdict_code"] == "0.0"
    assert gn["reason"] == '"agrees with 2 of 2"'
    assert gn["age_s"] == "1.0"
    assert by[("tw_source", "cloudflare")]["verdict_code"] == "5.0"
    c = by[("tw_consensus", None)]
    assert c == {"offset_s": "1e-07", "bound_s": "4e-07", "quorum": "1.0",
                 "groups_agreeing": "2.0", "groups_voting": "3.0", "holdover_ppm": "0.35",
                 "alerts_active": "1.0", "sources_total": "2.0", "sources_truechimer": "1.0",
                 "sources_falseticker": "1.0"}


def test_verdict_codes_order_good_to_bad() -> None:
    assert VERDICT_CODES["truechimer"] < VERDICT_CODES["init"] < VERDICT_CODES["falseticker"]
    assert max(VERDICT_CODES.values()) == VERDICT_CODES["falseticker"]


def test_event_keeps_numeric_evidence_only_and_clear_has_no_severity() -> None:
    alert, clear = to_lines(_outputs()[4:], "h", SOURCES)
    m, tags, fields, ts = _split(alert)
    assert m == "tw_event" and ts == T
    assert tags == {"host": "h", "code": "source.falseticker", "type": "alert",
                    "severity": "critical", "sources": "cloudflare"}
    assert fields["active"] == "1.0" and fields["severity_level"] == "2.0"
    assert fields["ev_offset_s"] == "0.0012" and fields["ev_consecutive"] == "3.0"
    assert "ev_note" not in fields and "ev_intervals" not in fields
    _, ctags, cfields, cts = _split(clear)
    assert "severity" not in ctags and ctags["type"] == "clear"
    assert cfields["active"] == "0.0" and cfields["id"] == '"8f3c1c2e"' and cts == T + 10**9


def test_event_with_several_sources_tags_them_escaped() -> None:
    e = Event("alert", T, "time.drift", ("gnss0", "pps0"), "ab", "critical", "m", {})
    line = to_lines([e], "h")[0]
    assert "sources=gnss0\\,pps0" in line
    assert _split(line)[1]["sources"] == "gnss0,pps0"


def test_the_same_output_always_gives_the_same_line() -> None:
    # Idempotence: a re-sent point has the same measurement, tags and timestamp (it overwrites).
    assert to_lines(_outputs(), "h", SOURCES) == to_lines(_outputs(), "h", SOURCES)


def test_unknown_source_still_gets_host_and_source_tags() -> None:
    line = to_lines([Sample("x", T, 0.0, 1.0)], "h", {})[0]
    assert line.startswith("tw_sample,host=h,source=x offset_s=0.0,bound_s=1.0 ")


def test_encoder_from_config_uses_host_and_sources() -> None:
    from timewatch.config import parse

    cfg = parse({"monitor": {"host": "box 1"},
                 "sources": [{"id": "ntp1", "kind": "ntp", "server": "127.0.0.1",
                              "group": "g1"}]})
    line = Encoder.from_config(cfg).sample(Sample("ntp1", T, 0.0, 1.0))[0]
    assert line.startswith("tw_sample,host=box\\ 1,kind=ntp,source=ntp1,trust_group=g1 ")
    assert set(MEASUREMENTS) == {"tw_sample", "tw_source", "tw_consensus", "tw_event"}


def test_sources_missing_from_the_config_are_learned_from_snapshots() -> None:
    # A replay without [[sources]]: the snapshot in the same batch names kind and group.
    snap = Snapshot(T, (SourceStatus("n9", "ntp", "g9", "init", "no usable sample yet"),),
                    False, 0, 0, None, None)
    enc = Encoder("h", {})
    first = enc.lines([Sample("n9", T, 0.0, 1.0), snap])[0]
    assert first.startswith("tw_sample,host=h,kind=ntp,source=n9,trust_group=g9 ")
    assert enc.lines([Sample("n9", T + 1, 0.0, 1.0)])[0].startswith(
        "tw_sample,host=h,kind=ntp,source=n9,trust_group=g9 ")


def test_a_sample_s_line_is_the_general_format_line_whatever_its_fields() -> None:
    # Samples take a short path (series per source, field keys per set of names): the same line
    # as format_line gives, field for field, in every case the short path must get right.
    cases = [
        {"delay_s": 0.01, "stratum": 2.0},
        {"stratum": 2, "ok": True, "nan": float("nan"), "inf": float("-inf")},
        {"offset": 1.0, "offset_": 2.0},  # the same name after safe_name: the first stays
        {"offset_s": 9.0, "group": 1.5},  # offset_s is the sample's own; group -> group_
        {"note": "text", "x": 1.0},  # strings are left out
        {"note": "text", "note_": 3.0, "NOTE": 4.0},
        {},
    ]
    enc = Encoder("h", SOURCES)
    for i, f in enumerate(cases):
        s = Sample("gnss0", T + i, 1e-7, float("nan") if i == 6 else 2e-7, f)
        want: dict[str, object] = {"offset_s": s.offset_s, "bound_s": s.bound_s}
        for k, v in f.items():
            if safe_name(k) not in want and not isinstance(v, str):
                want[safe_name(k)] = v
        tags = {"host": "h", "source": "gnss0", "kind": "gnss", "trust_group": "gnss"}
        line = format_line("tw_sample", tags, want, s.t_ns)
        assert enc.sample(s) == enc.sample(s) == [line], f
    # The series follows a source's entry when it changes (learned, or edited by a caller).
    enc.sources["gnss0"] = SourceInfo("gnss", "other")
    assert enc.sample(Sample("gnss0", T, 0.0, 1.0))[0].startswith(
        "tw_sample,host=h,kind=gnss,source=gnss0,trust_group=other ")
