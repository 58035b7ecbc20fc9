"""UBX decoding (pyubx2) and the u-blox receiver flags, on pyubx2's own captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyubx2.ubxhelpers import calc_checksum

from timewatch.engine import Engine
from timewatch.records import Event, Header, SourceInfo, Tick, Ubx
from timewatch.wire.framer import frames_of
from timewatch.wire.ubx import (
    Fletcher,
    UbxError,
    UbxInfo,
    UbxUnsupported,
    checksum,
    decode_ubx,
    frame,
)

T0 = 1_795_000_000_000_000_000


def _infos(path: Path) -> list[UbxInfo]:
    out = []
    for fr in frames_of(path.read_bytes()):
        if fr.kind == "ubx":
            try:
                out.append(decode_ubx(fr.data.hex()))
            except UbxUnsupported:
                pass
    return out


def test_nav_messages_of_a_zed_f9p_decode(corpus: Path) -> None:
    infos = {i.identity: i for i in _infos(corpus / "pyubx2" / "pygpsdata-NAV-ZED-X20P.log")}
    assert infos["NAV-STATUS"].fix_type == 3 and infos["NAV-STATUS"].spoofing_state == 1
    assert infos["NAV-TIMEUTC"].date == (2025, 8, 25) and infos["NAV-TIMEUTC"].utc_valid
    assert infos["NAV-TIMELS"].current_leap_s == 18 and infos["NAV-TIMELS"].leap_change_s == 0
    sats = infos["NAV-SAT"].sats
    assert len(sats) >= 5 and all(0 < s.cn0_db_hz <= 60 for s in sats)
    assert any(s.key.startswith("GP") for s in sats)


def test_sec_sig_states_are_decoded(corpus: Path) -> None:
    sig = [i for i in _infos(corpus / "pyubx2" / "pygpsdata-SEC.log") if i.identity == "SEC-SIG"]
    assert [(i.jamming_state, i.spoofing_state) for i in sig] == [(1, 1), (2, 3), (2, 1)]


def _replay_ubx(path: Path) -> list[Event]:
    eng = Engine(Header("t", 0, {"gnss0": SourceInfo("gnss", "gnss")}))
    out = []
    t = T0
    for fr in frames_of(path.read_bytes()):
        if fr.kind == "ubx":
            t += 100_000_000
            out += eng.feed(Ubx("gnss0", t, fr.data.hex()))
    out += eng.feed(Tick(t + 1_000_000_000))
    return [e for e in out if isinstance(e, Event)]


def test_sec_sig_spoofing_and_jamming_raise_receiver_flag(corpus: Path) -> None:
    ev = [e for e in _replay_ubx(corpus / "pyubx2" / "pygpsdata-SEC.log")
          if e.code == "gnss.receiver_flag" and e.type == "alert"]
    assert len(ev) == 1 and ev[0].severity == "critical" and ev[0].sources == ("gnss0",)
    assert ev[0].evidence["spoofing_state"] == 3 and ev[0].evidence["jamming_state"] == 2


def test_mon_rf_critical_jamming_raises_receiver_flag(corpus: Path) -> None:
    ev = [e for e in _replay_ubx(corpus / "pyubx2" / "pygpsdata-MON.log")
          if e.code == "gnss.receiver_flag"]
    assert [e.evidence["message"] for e in ev] == ["MON-RF"]


def test_real_ubx_receivers_raise_no_receiver_flag(corpus: Path) -> None:
    for name in ("pygpsdata-MIXED.log", "pygpsdata-NAV.log", "pygpsdata-NAV-ZED-X20P.log"):
        assert [e.code for e in _replay_ubx(corpus / "pyubx2" / name)
                if e.code == "gnss.receiver_flag"] == [], name


def test_bad_checksum_and_length_are_errors() -> None:
    good = frame(0x27, 0x09, bytes([2, 1, 3, 1, 2, 0, 0, 0]))  # SEC-SIG v2
    bad = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(UbxError, match="checksum"):
        decode_ubx(bad.hex())
    with pytest.raises(UbxError, match="length"):
        decode_ubx(good[:-3].hex())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 255), st.integers(0, 255))
def test_decode_ubx_raises_only_typed_errors(payload: bytes, cls: int, mid: int) -> None:
    for raw in (frame(cls, mid, payload), payload, frame(0x01, 0x35, payload),
                frame(0x27, 0x09, payload), frame(0x0A, 0x38, payload)):
        try:
            decode_ubx(raw.hex())
        except (UbxError, UbxUnsupported):
            pass


# -- the one Fletcher checksum, against pyubx2's -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_checksum_is_pyubx2s(body: bytes) -> None:
    assert checksum(body) == calc_checksum(body)
    assert frame(body[0] if body else 1, 2, body)[-2:] == calc_checksum(
        bytes([body[0] if body else 1, 2]) + len(body).to_bytes(2, "little") + body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=90), st.integers(0, 999), st.integers(0, 999),
                          st.integers(0, 999)), max_size=25))
def test_fletcher_spans_of_a_buffer_growing_and_consumed_like_the_framers(
        steps: list[tuple[bytes, int, int, int]]) -> None:
    buf = bytearray()
    f = Fletcher()
    for data, a, b, drop in steps:
        buf += data
        start, end = sorted((a % (len(buf) + 1), b % (len(buf) + 1)))
        assert bytes(f.span(buf, start, end)) == calc_checksum(bytes(buf[start:end]))
        n = drop % (len(buf) + 1)
        del buf[:n]
        f.drop(n)


def test_fletcher_keeps_its_sums_small_on_a_buffer_never_emptied() -> None:
    buf = bytearray()
    f = Fletcher()
    for _ in range(60):  # 300,000 bytes of 0xFF summed, never all consumed
        buf += b"\xff" * 5000
        assert bytes(f.span(buf, len(buf) - 2824, len(buf))) == calc_checksum(bytes(buf[-2824:]))
        del buf[:4000]
        f.drop(4000)
    assert max(f._t) < 1 << 41  # reduced mod 256 on the way (unreduced: about 1.1e13 > 2**43)
