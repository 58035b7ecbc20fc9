"""The serial framer (wire/framer.py): mixed NMEA/UBX bytes in, frames out, whatever the line
delivers; linear in its input even when every position looks like the start of a UBX frame."""

from __future__ import annotations

import random
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.engine.gnss_epoch import decode_line
from timewatch.wire.framer import MAX_LINE, Framer, frames_of
from timewatch.wire.ubx import decode_ubx, frame

GGA = "$GPGGA,080247.00,5327.04300,N,00214.41385,W,1,07,1.63,36.7,M,48.5,M,,*77"
# A UBX NAV-STATUS payload: iTOW, gpsFix 3, flags (gpsFixOk), fixStat, flags2, ttff, msss.
NAV_STATUS = frame(0x01, 0x03, bytes(4) + bytes([3, 0x01, 0, 0x08]) + bytes(8))
# A valid frame as long as the adversarial candidates below claim to be (class 01, id 07, 2816).
BIG = frame(0x01, 0x07, random.Random(5).randbytes(0x0B00))
# Repeated UBX sync bytes: every position (or every sixth) looks like the start of a frame.
ADVERSARIAL = {
    "sync, known class, 2816-byte length, wrong checksum": b"\xb5\x62\x01\x07\x00\x0b" * 20_000,
    "sync, unknown class": b"\xb5\x62\xff\x07\x00\x0b" * 20_000,
    "sync pairs": b"\xb5\x62" * 60_000,
    "first sync byte": b"\xb5" * 120_000,
}
# A 921,600-baud line (8N1: 10 bits a byte) delivers 92,160 bytes/s.
LINE_RATE = 921_600 // 10




def test_framer_splits_mixed_nmea_and_ubx_fed_byte_by_byte() -> None:
    stream = GGA.encode() + b"\r\n" + NAV_STATUS + GGA.encode() + b"\r\n"
    f = Framer()
    out = []
    for b in stream:
        out += f.feed(bytes([b]))
    assert [(fr.kind, fr.data) for fr in out] == [
        ("nmea", GGA.encode()), ("ubx", NAV_STATUS), ("nmea", GGA.encode())]
    assert decode_ubx(out[1].data.hex()).fix_type == 3


def test_framer_resyncs_on_dollar_after_garbage_and_reports_the_garbage() -> None:
    out = list(frames_of(b"\x00\x17garbage$GPGGA,junk" + GGA.encode() + b"\r\n"))
    assert out[-1].data == GGA.encode()
    assert [fr.data for fr in out[:-1]] == [b"\x00\x17garbage", b"$GPGGA,junk"]


def test_framer_cuts_overlong_line_and_recovers_on_the_next() -> None:
    f = Framer()
    out = f.feed(b"$" + b"A" * 5000 + b"\r\n" + GGA.encode() + b"\r\n")
    assert len(out[0].data) == MAX_LINE + 1 and f.stats["overlong"] == 1
    assert out[1].data == GGA.encode()
    assert decode_line(out[0].data.decode())[1] is True  # counted as a bad sentence


def test_framer_drops_line_noise_but_keeps_binary_garbage() -> None:
    out = list(frames_of(b"\x00\x00\xff\r\n\x81\x82\x83\r\n"))
    assert [fr.data for fr in out] == [b"\x81\x82\x83"]


def test_framer_treats_ubx_with_bad_checksum_as_garbage_and_keeps_following_lines() -> None:
    bad = NAV_STATUS[:-1] + bytes([NAV_STATUS[-1] ^ 0xFF])
    out = list(frames_of(bad + GGA.encode() + b"\r\n"))
    assert out[-1].data == GGA.encode()
    assert all(fr.kind == "nmea" for fr in out)


def test_mixed_pyubx2_capture_with_bad_checksum_decodes_everything_else(corpus: Path) -> None:
    data = (corpus / "pyubx2" / "pygpsdata-MIXED3BADCK.log").read_bytes()
    frames = list(frames_of(data))
    ubx = [fr for fr in frames if fr.kind == "ubx"]
    nmea = [fr.data.decode("utf-8", "replace") for fr in frames if fr.kind == "nmea"]
    good = [s for s in (decode_line(x)[0] for x in nmea) if s is not None]
    assert len(ubx) == 1  # the first NAV-PVT; the second has a bad checksum
    assert [s.kind for s in good] == ["GGA", "GSA", "GGA"]  # every NMEA sentence of the file
    assert sum(decode_line(x)[1] for x in nmea) >= 1  # the bad frame is counted, not lost


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_framer_never_raises_and_bounds_its_frames(chunks: list[bytes]) -> None:
    f = Framer()
    for c in chunks:
        for fr in f.feed(c):
            assert fr.kind in ("nmea", "ubx")
            if fr.kind == "nmea":
                assert 0 < len(fr.data) <= MAX_LINE + 1
    f.flush()
    assert len(f._buf) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([GGA.encode() + b"\r\n", NAV_STATUS, b"\r\n", b"$", b"\xb5b"]),
                max_size=12), st.binary(max_size=40), st.integers(1, 64))
def test_framer_finds_every_intact_frame_between_noise(parts: list[bytes], noise: bytes,
                                                       chunk: int) -> None:
    stream = b"".join(p + b"\r\n" + noise.replace(b"$", b"").replace(b"\xb5", b"")
                      for p in parts)
    got = [fr.data for fr in frames_of(stream, chunk=chunk)]
    assert got.count(GGA.encode()) == sum(p.startswith(b"$GPGGA") for p in parts)
    assert got.count(NAV_STATUS) == sum(p == NAV_STATUS for p in parts)


# -- adversarial input: repeated sync bytes ----------------------------------------------------


def test_repeated_sync_bytes_hide_no_frame_and_are_one_bad_line_each() -> None:
    line = GGA.encode() + b"\r\n"
    for name, adv in ADVERSARIAL.items():
        stream = line + adv + NAV_STATUS + line + adv[:5000] + BIG + adv[:3000] + b"\r\n" + line
        for chunk in (7, 4096):
            got = [(fr.kind, fr.data) for fr in frames_of(stream, chunk)]
            # Each run of garbage is one line, cut at MAX_LINE + 1 bytes (counted as bad).
            assert got == [("nmea", GGA.encode()), ("nmea", adv[:MAX_LINE + 1]),
                           ("ubx", NAV_STATUS), ("nmea", GGA.encode()),
                           ("nmea", adv[:MAX_LINE + 1]), ("ubx", BIG),
                           ("nmea", adv[:MAX_LINE + 1]), ("nmea", GGA.encode())], (name, chunk)


def _mb_per_cpu_s(data: bytes, chunk: int = 4096) -> float:
    t0 = time.process_time()
    for _ in frames_of(data, chunk):
        pass
    return len(data) / max(time.process_time() - t0, 1e-9) / 1e6


def test_repeated_sync_bytes_are_framed_in_linear_time_faster_than_a_fast_line() -> None:
    # Before the checksum of a candidate cost O(1) (wire/ubx.Fletcher) the first pattern ran at
    # 0.05 MB/s: every sixth byte started a 2824-byte checksum.
    for name, adv in ADVERSARIAL.items():
        for data in (adv, adv * 4):  # 4x the bytes: the same rate, not a quarter
            rate = _mb_per_cpu_s(data)
            assert rate * 1e6 > 5 * LINE_RATE, (name, len(data), f"{rate:.2f} MB/s")
    # Fed a few bytes at a time (a serial read returns what has arrived), still linear.
    rate = _mb_per_cpu_s(next(iter(ADVERSARIAL.values())), chunk=3)
    assert rate * 1e6 > 2 * LINE_RATE, f"{rate:.2f} MB/s"


_GARBAGE = st.lists(st.one_of(
    st.binary(max_size=16),
    st.sampled_from([b"\xb5", b"\xb5\x62", b"\xb5\x62\x01\x07\x00\x0b", b"\xb5\x62\x01\x03\x10",
                     b"\xb5\x62\x27\x09", b"$", b"!", b"\n", b"\r", b"$GPGGA,", b"*77",
                     NAV_STATUS[:9], NAV_STATUS[:-1], BIG[:40]]),
), max_size=10).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_GARBAGE, st.sampled_from([GGA.encode() + b"\r\n", NAV_STATUS, BIG])),
                max_size=6), _GARBAGE, st.integers(1, 700))
def test_framer_never_loses_a_good_frame_surrounded_by_garbage(
        parts: list[tuple[bytes, bytes]], tail: bytes, chunk: int) -> None:
    stream = b"".join(g + p for g, p in parts) + tail
    got = [fr.data for fr in frames_of(stream, chunk)]
    for good in {p for _, p in parts}:
        want = sum(p == good for _, p in parts)
        assert got.count(good.rstrip(b"\r\n")) >= want
