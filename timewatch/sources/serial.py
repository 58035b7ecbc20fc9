"""The GNSS serial reader: pyserial, framing of mixed NMEA/UBX streams, reconnects.

The framer (`wire/framer.py`) is pure (bytes in, frames out), tested without a device and shared
with `timewatch decode`. It survives what real serial lines deliver (gpsd's packet sniffer is the
model): garbage and binary noise between sentences, sentences cut short, overlong lines (cut at
`MAX_LINE` and reported as such), UBX frames interleaved with NMEA. A text line starts at '$'
or '!' and ends at LF; a '$' inside a line starts a new one (the cut prefix is reported as a bad
line). A UBX frame is recognised by its sync, a known class, a sane length and a correct
checksum; anything else is text. Garbage is handed on as a line too, so the engine counts it.

`SerialReader` stamps each frame with `now_pair()` when the read that completed it returned,
opens the device exclusively, never spins on a silent line (blocking reads with a timeout), and
reopens the device with backoff when it vanishes (USB unplugged, EIO).
"""

from __future__ import annotations

import logging

from ..backoff import Backoff
from ..config import SourceConfig
from ..records import Nmea, Ubx
from ..wire.framer import Frame, Framer
from . import BlockingReader, Emit, now_pair

log = logging.getLogger(__name__)

# Reconnect backoff: first retry soon (a USB re-enumeration takes ~1 s), then up to 10 s.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
# Blocking read timeout: how long a silent line waits before the loop looks at `stop` again.
READ_TIMEOUT_S = 0.5


def to_observation(fr: Frame, src: str, rx_ns: int, raw_ns: int | None) -> Nmea | Ubx:
    if fr.kind == "ubx":
        return Ubx(src, rx_ns, fr.data.hex(), raw_ns)
    return Nmea(src, rx_ns, fr.data.decode("utf-8", "replace"), raw_ns)


class SerialReader(BlockingReader):
    """Reader of a `gnss` source (sources/__init__.py interface)."""

    def __init__(self, cfg: SourceConfig, emit: Emit) -> None:
        if not cfg.device:
            raise ValueError(f"source {cfg.id}: no device")
        self.cfg = cfg
        self.emit = emit
        super().__init__()
        self.opens = 0  # successful opens (tests watch reconnects)
        self.errors = 0

    def run_blocking(self) -> None:
        """Read until `stop` is set: open, read, and on any device error reopen with backoff."""
        import serial  # pyserial: imported here so the engine side never needs it

        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while not self.stop.is_set():
            try:
                port = serial.Serial(self.cfg.device, self.cfg.baud, timeout=READ_TIMEOUT_S,
                                     exclusive=True)
            except (serial.SerialException, OSError, ValueError) as e:
                self.errors += 1
                delay = backoff.next()
                log.warning("%s: cannot open %s: %s; retry in %.1f s", self.cfg.id,
                            self.cfg.device, e, delay)
                self.stop.wait(delay)
                continue
            self.opens += 1
            backoff.reset()  # opened: a later loss retries soon (USB re-enumeration)
            log.info("%s: reading %s at %d baud", self.cfg.id, self.cfg.device, self.cfg.baud)
            try:
                self._read(port)
            except (serial.SerialException, OSError) as e:
                self.errors += 1
                log.warning("%s: %s lost: %s; reopening", self.cfg.id, self.cfg.device, e)
                self.stop.wait(BACKOFF_FIRST_S)  # it was working: reopen soon, then back off
            finally:
                try:
                    port.close()
                except (serial.SerialException, OSError):
                    pass

    def _read(self, port: object) -> None:
        framer = Framer()
        src = self.cfg.id
        read = port.read  # type: ignore[attr-defined]
        synced = False  # after an open, the first bytes may be the tail of a line: skip to LF
        while not self.stop.is_set():
            waiting = getattr(port, "in_waiting", 0) or 1
            data = read(min(waiting, 4096))  # blocks up to READ_TIMEOUT_S on a silent line
            if not data:
                continue
            rx_ns, raw_ns = now_pair()
            if not synced:
                lf = data.find(b"\n")
                if lf < 0:
                    continue
                data, synced = data[lf + 1:], True
            for fr in framer.feed(data):
                self.emit(to_observation(fr, src, rx_ns, raw_ns))
