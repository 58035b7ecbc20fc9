"""The GNSS serial reader on a real pty (its framer: tests/wire/test_framer.py)."""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from timewatch.config import SourceConfig
from timewatch.engine import Engine
from timewatch.engine.gnss_epoch import decode_line
from timewatch.records import Event, Header, Nmea, Observation, Sample, SourceInfo, Tick
from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.receiver import PtyReceiver
from timewatch.sources import now_pair
from timewatch.sources.serial import BACKOFF_MAX_S, SerialReader

ROOT = Path(__file__).resolve().parents[2]


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

    def run_for(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Feed the engine for `seconds`, or until `until()` holds (then a second more)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                end, until = min(end, time.monotonic() + 1.0), None
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
        # The reader retries with back-off (at most BACKOFF_MAX_S apart): wait for the reopen
        # and the first samples after it, bounded by one full back-off step and some seconds.
        h.run_for(BACKOFF_MAX_S + 6.0,
                  until=lambda: h.reader.opens >= 2 and len(h.samples) > n + 1 and any(
                      e.code == "source.stale" and e.type == "clear" for e in h.events))
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
