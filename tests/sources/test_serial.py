"""The GNSS serial reader: its framer (pure, property-tested) and the reader on a real pty."""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.config import SourceConfig
from timewatch.engine import Engine
from timewatch.engine.gnss_epoch import decode_line
from timewatch.records import Event, Header, Nmea, Observation, Sample, SourceInfo, Tick
from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.receiver import PtyReceiver
from timewatch.sources import now_pair
from timewatch.sources.serial import SerialReader
from timewatch.wire.framer import MAX_LINE, Framer, frames_of
from timewatch.wire.ubx import decode_ubx, frame

ROOT = Path(__file__).resolve().parents[2]
GGA = "$GPGGA,080247.00,5327.04300,N,00214.41385,W,1,07,1.63,36.7,M,48.5,M,,*77"
# A UBX NAV-STATUS payload: iTOW, gpsFix 3, flags (gpsFixOk), fixStat, flags2, ttff, msss.
NAV_STATUS = frame(0x01, 0x03, bytes(4) + bytes([3, 0x01, 0, 0x08]) + bytes(8))


# -- framer --------------------------------------------------------------------------------


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


# -- the reader on a pty ---------------------------------------------------------------------


class _Harness:
    """SerialReader in a thread, feeding an in-process Engine, with a tick every 0.25 s."""

    def __init__(self, device: Path):
        self.q: queue.Queue[Observation] = queue.Queue()
        cfg = SourceConfig(id="gnss0", kind="gnss", group="gnss", device=str(device), baud=9600)
        self.reader = SerialReader(cfg, self.q.put)
        self.engine = Engine(Header("t", 0, {"gnss0": SourceInfo("gnss", "gnss")}))
        self.events: list[Event] = []
        self.samples: list[Sample] = []
        self.observations: list[Observation] = []
        self.thread = threading.Thread(target=self.reader.run_blocking, daemon=True)
        self.thread.start()

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                obs = self.q.get(timeout=0.25)
                self.observations.append(obs)
                out = self.engine.feed(obs)
            except queue.Empty:
                rx, raw = now_pair()
                out = self.engine.feed(Tick(rx, raw))
            self.events += [o for o in out if isinstance(o, Event)]
            self.samples += [o for o in out if isinstance(o, Sample)]

    def close(self) -> None:
        self.reader.stop.set()
        self.thread.join(timeout=5)


def test_reader_on_pty_decodes_realtime_stream_then_stale_and_recovery(tmp_path: Path) -> None:
    rcv = PtyReceiver(tmp_path / "gps0", NmeaSim(random.Random(7)))
    h = _Harness(tmp_path / "gps0")
    try:
        rcv.start()
        h.run_for(3.5)
        assert len(h.samples) >= 2, "valid epochs become samples"
        lines = [o for o in h.observations if isinstance(o, Nmea)]
        assert all(decode_line(o.line)[0] is not None for o in lines)  # nothing mangled
        # Each LF is stamped when it arrives: within a few ms of the simulator's schedule
        # (9600 baud, 110 ms after the second), never before it.
        rmc = [o for o in lines if o.line.startswith("$GPRMC")]
        for o in rmc:
            frac_s = (o.rx_ns % 1_000_000_000) / 1e9
            assert 0.17 <= frac_s <= 0.40, frac_s
        assert [e.code for e in h.events if e.type == "alert"] == []

        rcv.unplug()
        h.run_for(6.5)
        assert any(e.code == "source.stale" and e.type == "alert" for e in h.events)
        assert h.reader.errors >= 1

        rcv.replug()
        n = len(h.samples)
        h.run_for(4.0)
        assert h.reader.opens >= 2, "the reader reopened the device"
        assert len(h.samples) > n, "samples resume after the device returns"
        assert any(e.code == "source.stale" and e.type == "clear" for e in h.events)
    finally:
        h.close()
        rcv.close()


def test_reader_opens_exclusively(tmp_path: Path) -> None:
    import serial

    rcv = PtyReceiver(tmp_path / "gps0")
    h = _Harness(tmp_path / "gps0")
    try:
        deadline = time.monotonic() + 3
        while h.reader.opens == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.reader.opens == 1
        with pytest.raises(serial.SerialException):
            serial.Serial(str(tmp_path / "gps0"), 9600, exclusive=True)
    finally:
        h.close()
        rcv.close()


def test_reader_waits_without_spinning_on_a_silent_line(tmp_path: Path) -> None:
    rcv = PtyReceiver(tmp_path / "gps0")  # plugged but never started: a silent line
    h = _Harness(tmp_path / "gps0")
    try:
        t0 = time.process_time()
        time.sleep(2.0)
        assert time.process_time() - t0 < 0.5  # this process, reader thread included
        assert h.reader.opens == 1 and h.q.empty()
    finally:
        h.close()
        rcv.close()


def test_timewatch_run_with_gnss_source_on_pty_records_decodable_sentences(
        tmp_path: Path) -> None:
    if not (ROOT / "timewatch" / "runner.py").exists():
        pytest.skip("runner.py not in this tree yet")
    rcv = PtyReceiver(tmp_path / "gps0", NmeaSim(random.Random(3)))
    rcv.start()
    cfg = tmp_path / "tw.toml"
    cfg.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n[http]\nlisten = ""\n'
                   f'[[sources]]\nid = "gnss0"\nkind = "gnss"\ndevice = "{tmp_path / "gps0"}"\n')
    trace = tmp_path / "trace.jsonl"
    try:
        p = subprocess.run([sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg),
                            "--duration", "5", "--record", str(trace)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        rcv.close()
    assert p.returncode == 0, p.stderr[-2000:]
    recs = [json.loads(x) for x in trace.read_text().splitlines()[1:]]
    lines = [r["line"] for r in recs if r["type"] == "nmea"]
    assert len(lines) >= 15  # about 4 epochs of 7 sentences
    assert [x for x in lines if decode_line(x)[0] is None] == []
