"""NMEA decoding: checksums required, every used field type-checked, second 60, all talkers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.commands.decode import decode_bytes
from timewatch.engine.core import Context
from timewatch.engine.gnss import GnssTracker
from timewatch.engine.gnss_epoch import decode_line
from timewatch.engine.params import Detect
from timewatch.records import Header, Nmea, SourceInfo
from timewatch.wire.nmea import (
    LABELLED,
    LAYOUTS,
    PRN,
    SATS,
    SUPPORTED,
    TALKERS,
    Field,
    NmeaError,
    Unsupported,
    decode,
    sentence,
)

RMC = "GPRMC,123519.00,A,4807.038,N,01131.000,E,0.02,,261126,,,A"
GGA = "GPGGA,080247.00,5327.04300,N,00214.41385,W,1,07,1.63,36.7,M,48.5,M,,"


def test_rmc_fields_are_converted_and_checked() -> None:
    s = decode(sentence(RMC))
    assert (s.talker, s.kind, s.tod_ms) == ("GP", "RMC", (12 * 3600 + 35 * 60 + 19) * 1000)
    assert s.date == (2026, 11, 26) and s.status_valid is True and s.mode == "A"
    assert s.lat_deg == pytest.approx(48 + 7.038 / 60) and s.lon_deg == pytest.approx(11 + 31 / 60)


def test_gga_west_longitude_quality_and_altitude() -> None:
    s = decode(sentence(GGA))
    assert s.lon_deg == pytest.approx(-(2 + 14.41385 / 60)) and s.quality == 1
    assert s.sats_used == 7 and s.alt_m == 36.7


def test_second_60_is_kept_as_a_leap_second() -> None:
    s = decode(sentence("GPZDA,235960.00,31,12,2016,00,00"))
    assert s.sec60 and s.tod_ms == 86_400_000 and s.date == (2016, 12, 31)


def test_every_gnss_talker_is_accepted() -> None:
    for t in sorted(TALKERS):
        assert decode(sentence(t + RMC[2:])).talker == t


def test_integrated_navigation_talker_decodes_like_the_gnss_talkers() -> None:
    for body in (RMC, GGA, "GPZDA,235960.00,31,12,2016,00,00",
                 "GPGNS,014035.00,4332.69262,S,17235.48549,E,RR,13,0.9,25.63,11.24,,"):
        gp = decode(sentence(body))
        ins = decode(sentence("IN" + body[2:]))
        assert ins.talker == "IN" and ins._replace(talker="GP") == gp


def test_a_receiver_talking_only_in_gives_valid_epochs() -> None:
    lines = []
    for s in range(3):
        hhmmss = f"1235{19 + s:02d}.00"
        lines += [sentence(f"INRMC,{hhmmss},A,4807.038,N,01131.000,E,0.02,,261126,,,A"),
                  sentence(f"INGGA,{hhmmss},4807.038,N,01131.000,E,1,07,1.63,36.7,M,48.5,M,,")]
    epochs = list(decode_bytes("".join(x + "\r\n" for x in lines).encode()))
    t0 = datetime(2026, 11, 26, 12, 35, 19, tzinfo=UTC).timestamp()
    assert [(e.valid, e.utc_ns, e.sentences, e.bad_sentences) for e in epochs] == [
        (True, int(t0 + s) * 1_000_000_000, 2, 0) for s in range(3)]
    assert epochs[0].lat_deg == pytest.approx(48 + 7.038 / 60) and epochs[0].sats_used == 7


def test_checksum_is_required_and_checked() -> None:
    with pytest.raises(NmeaError) as e:
        decode("$" + RMC)
    assert e.value.reason == "checksum"
    good = sentence(RMC)
    with pytest.raises(NmeaError):
        decode(good[:-2] + ("00" if good[-2:] != "00" else "01"))
    assert decode(good[:-2] + good[-2:].lower()).kind == "RMC"  # hex digits in any case


@pytest.mark.parametrize("body, field", [
    ("GPRMC,12x519.00,A,4807.038,N,01131.000,E,0.02,,261126,,,A", "time"),
    ("GPRMC,123519.00,A,4807.038,Q,01131.000,E,0.02,,261126,,,A", "lat_dir"),
    ("GPRMC,123519.00,A,48O7.038,N,01131.000,E,0.02,,261126,,,A", "lat"),
    ("GPRMC,246019.00,A,4807.038,N,01131.000,E,0.02,,261126,,,A", "time"),
    ("GPGGA,080247.00,5327.04300,N,00214.41385,W,X,07,1.63,36.7,M,48.5,M,,", "quality"),
    ("GPGGA,080247.00,5327.04300,N,00214.41385,W,1,07,1.63,nan,M,48.5,M,,", "altitude"),
    ("GPGSV,3,1,11,01,78,221,4x7", "sv_1"),
    ("GPGSV,3,1,11,01,78,221,147", "snr_1"),
    ("GPGSA,A,7,01,,,,,,,,,,,,1.0,1.0,1.0", "fix_type"),
    ("GPGSA,A,3,01,02,1x,,,,,,,,,,1.0,1.0,1.0", "sv_id03"),
    ("GPGSV,3,1,11,01,78,221,47,0123,10,20,30", "sv_prn_num_2"),
    ("GPGSV,3,1,11,01,91,221,47", "elevation_deg_1"),
    ("GPGSV,3,1,11,01,78,361,47", "azimuth_1"),
    ("GPGSV,x,1,11,01,78,221,47", "num_messages"),
    ("GPZDA,160012.71,32,03,2004,-1,00", "day"),
    ("GPZDA,160012.71,11,03,20o4,-1,00", "year"),
    ("GNGNS,014035.00,4332.69262,S,17235.48549,E,R1,13,0.9,25.63,11.24,,", "mode"),
    ("GNGNS,014035.00,4332.69262,S,17235.48549,E,RR,1x,0.9,25.63,11.24,,", "num_sats"),
    ("GPGLL,4916.45,N,12311.12,W,225444,AA,A", "status"),
    ("GPGLL,4916.45,N,12311.12,W,225444,A,A1", "mode"),
    # Several bad fields: the first in the layout's order is the one named.
    ("GPRMC,2x,AA,4807.038,N,01131.000,E,0.02,,261126,,,A", "status"),
    ("GPGGA,2x,5327.04300,N,00214.41385,W,1,07,1.63,nan,M,48.5,M,,", "time"),
])
def test_a_malformed_field_is_an_error_naming_the_field(body: str, field: str) -> None:
    with pytest.raises(NmeaError) as e:
        decode(sentence(body))
    assert e.value.reason == "field" and e.value.what.startswith(field + "=")


def test_layouts_are_tables_read_by_one_decoder() -> None:
    assert SUPPORTED == {"RMC", "GGA", "GNS", "GLL", "ZDA", "GST", "GSA", "GSV", "TXT"}
    # A sentence labels an epoch when its layout has a UTC time field.
    assert LABELLED == {"RMC", "GGA", "GNS", "GLL", "ZDA", "GST"}
    for kind, rows in LAYOUTS.items():
        names = [f.name for f in rows]
        assert len(set(names)) == len(names), kind
        assert all(f.pos >= 0 for f in rows), kind
    gsa = decode(sentence("GPGSA,A,3,01,,03,,,,,,,,,,1.6,0.9,1.3"))
    assert gsa.prns_used == (1, 3) and gsa.fix_type == 3
    zda = decode(sentence("GPZDA,160012.71,31,02,2004,-1,00"))
    assert zda.date is None and zda.date_error == "31,02,2004"
    txt = decode(sentence("GNTXT,01,01,02,u-blox AG, www.u-blox.com"))
    assert txt.text == "u-blox AG, www.u-blox.com" and txt.tod_ms is None


def test_placeholder_position_without_fix_is_not_an_error() -> None:
    s = decode(sentence("GPRMC,000416.984,V,36000.0000,N,72000.0000,E,0.000000,,260120,,"))
    assert s.status_valid is False and s.lat_deg is None


def test_rollover_date_field_is_reported_not_fatal() -> None:
    s = decode(sentence("GPRMC,000231.099,A,4829.0005,N,00022.0015,E,0.15,212.28,2208-1,,,A"))
    assert s.date is None and s.date_error == "2208-1"


def test_gsv_with_signal_id_and_gns_multi_constellation_mode() -> None:
    g = decode(sentence("GAGSV,1,1,02,05,40,120,44,09,12,300,,7"))
    assert [(x.key, x.cn0_db_hz) for x in g.sats] == [("GA5", 44.0), ("GA9", None)]
    n = decode(sentence("GNGNS,112257.00,3844.24011,N,00908.43828,W,NA,03,10.5,,,,"))
    assert n.status_valid is True and n.mode == "NA"


def test_other_sentences_and_talkers_are_unsupported_not_errors() -> None:
    for line in (sentence("GPVTG,339.1,T,333.5,M,0.1,N,0.1,K,A"), sentence("PGRMZ,48,f,3"),
                 sentence("QZGSV,1,1,01,193,40,120,44"), "!AIVDM,1,1,,A,13aEOK?P00PD2wVMdLDRhgvL289?,0*26"):
        with pytest.raises(Unsupported):
            decode(line)


def test_garbage_and_overlong_lines_are_framing_errors() -> None:
    for line in ("garbage", "", "$", "$GP", "$" + "A" * 600):
        with pytest.raises(NmeaError) as e:
            decode(line)
        assert e.value.reason in ("framing", "checksum")


# -- property tests: nothing but NmeaError / Unsupported ever escapes -----------------------

_VALID = [sentence(RMC), sentence(GGA), sentence("GPGSA,A,3,01,02,03,,,,,,,,,,1.6,0.9,1.3"),
          sentence("GPGSV,2,1,05,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45"),
          sentence("GPZDA,160012.71,11,03,2004,-1,00"), sentence("GNTXT,01,01,02,u-blox AG"),
          sentence("GPGST,172814.0,0.006,0.023,0.020,273.6,0.023,0.020,0.031"),
          sentence("GPGLL,4916.45,N,12311.12,W,225444,A,A"),
          sentence("GNGNS,014035.00,4332.69262,S,17235.48549,E,RR,13,0.9,25.63,11.24,,")]


def _decode_ok(line: str) -> None:
    try:
        decode(line)
    except (NmeaError, Unsupported):
        pass


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_decode_random_text_raises_only_typed_errors(text: str) -> None:
    _decode_ok(text)
    _decode_ok("$" + text)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(_VALID), st.integers(0, 120), st.integers(0, 120), st.text(max_size=8),
       st.booleans())
def test_decode_truncated_mutated_and_rechecksummed_sentences(base: str, cut: int, pos: int,
                                                              ins: str, fix_ck: bool) -> None:
    _decode_ok(base[:cut])  # truncated
    body = base[1:base.index("*")]
    p = pos % (len(body) + 1)
    mutated = body[:p] + ins + body[p + 1:]
    _decode_ok("$" + mutated + base[base.index("*"):])  # wrong checksum
    if fix_ck:  # right checksum around broken fields: the field checks must hold
        _decode_ok(sentence(mutated.replace("*", "")))


# Field values near what receivers send: digits, signs, points, letters, and the odd stranger.
_FIELD = st.one_of(st.text(alphabet="0123456789.-+ANSEWVMDRFP", max_size=12),
                   st.sampled_from(["", "nan", "inf", "-0", "1e3", "60", "235960.00", "\u0661"]),
                   st.text(max_size=4))


def _in_range(value: float | None, f: Field) -> bool:
    return value is None or f.lo <= value <= f.hi


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(TALKERS)), st.sampled_from(sorted(LAYOUTS)),
       st.lists(_FIELD, max_size=24))
def test_any_fields_under_a_right_checksum_decode_within_the_layout_or_fail_typed(
        talker: str, kind: str, fields: list[str]) -> None:
    body = f"{talker}{kind}," + ",".join(x.replace("*", "").replace("$", "") for x in fields)
    try:
        s = decode(sentence(body))
    except (NmeaError, Unsupported):
        return
    assert (s.talker, s.kind) == (talker, kind)
    for f in LAYOUTS[kind]:  # every value decoded is within its row's range
        if f.into:
            assert _in_range(getattr(s, f.into), f), (f, s)
        if f.type == PRN:
            assert all(_in_range(p, f) for p in s.prns_used)
        if f.type == SATS:
            prn, el, az, cn0 = f.parts
            assert all(_in_range(x.prn, prn) and _in_range(x.elev_deg, el)
                       and _in_range(x.az_deg, az) and _in_range(x.cn0_db_hz, cn0)
                       and x.key == talker + str(x.prn) for x in s.sats)
    assert s.tod_ms is None or 0 <= s.tod_ms < 86_401_000
    assert s.lat_deg is None or -90 <= s.lat_deg <= 90
    assert s.lon_deg is None or -180 <= s.lon_deg <= 180


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_VALID), st.text(max_size=90)), max_size=40))
def test_tracker_takes_any_line_sequence(lines: list[str]) -> None:
    info = SourceInfo("gnss", "gnss")
    ctx = Context(Header("t", 0, {"gnss0": info}), Detect())
    tr = GnssTracker("gnss0", info, ctx)
    t = 1_795_000_000_000_000_000
    for k, line in enumerate(lines):
        ctx.now_ns = t + k * 100_000_000
        tr.feed(Nmea("gnss0", ctx.now_ns, line))
        tr.on_tick(ctx.now_ns)
    # Every line counted once: sentences we use or bad ones, bad ones apart.
    decoded = [decode_line(x) for x in lines]
    assert tr.sentences == sum(s is not None or bad for s, bad in decoded)
    assert tr.bad_sentences == sum(bad for _, bad in decoded)
    assert tr.sentences - tr.bad_sentences == sum(x in _VALID for x in lines)
