"""UBX decoding (pyubx2) and the u-blox receiver flags, on pyubx2's own captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.engine import Engine
from timewatch.records import Event, Header, SourceInfo, Tick, Ubx
from timewatch.wire.framer import frames_of
from timewatch.wire.ubx import UbxError, UbxInfo, UbxUnsupported, decode_ubx, frame

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
