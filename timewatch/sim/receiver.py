"""A simulated GNSS receiver on a pseudo-terminal, writing `NmeaSim` output in real time.

The reader under test opens the pty's slave side, exactly as it would open /dev/serial0. The
path handed out is a symlink (`link`) to the current slave, as udev gives a USB receiver a
stable name: `unplug()` closes the pty (the reader gets EIO), `replug()` opens a new one behind
the same path. Bytes leave in chunks of at most `FIFO_BYTES` at the moment their last byte
would have crossed the line at the configured baud rate (a UART's FIFO), so a line's LF reaches
the reader when `NmeaSim` says it arrives.

The simulator runs on this machine's real clock (it is not the engine): true time = host time.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import tty
from pathlib import Path

from .nmeagen import NmeaSim
from .noise import NS

log = logging.getLogger(__name__)

FIFO_BYTES = 16  # a 16550-style UART FIFO


def sleep_until_ns(t_ns: int, stop: threading.Event) -> bool:
    """Sleep until CLOCK_REALTIME reaches t_ns; False if `stop` was set meanwhile."""
    while True:
        d = t_ns - time.clock_gettime_ns(time.CLOCK_REALTIME)
        if d <= 0:
            return not stop.is_set()
        if stop.wait(min(d / NS, 0.2)):
            return False


class PtyReceiver:
    """`NmeaSim` output on a pty, in real time, from a background thread."""

    def __init__(self, link: str | Path, sim: NmeaSim | None = None, seed: int = 1):
        self.link = Path(link)
        self.sim = sim or NmeaSim(random.Random(seed))
        self.stop = threading.Event()
        self.master: int | None = None
        self.slave: int | None = None
        self.lines_written = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.replug()

    # -- the device ------------------------------------------------------------------------
    def replug(self) -> None:
        """A new pty behind `link` (the device appears)."""
        with self._lock:
            m, s = os.openpty()
            tty.setraw(s)  # no echo, no line discipline: a serial port's raw bytes
            self.master, self.slave = m, s
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(os.ttyname(s))
            tmp.replace(self.link)

    def unplug(self) -> None:
        """Close the pty (the device disappears: the reader gets EIO)."""
        with self._lock:
            for fd in (self.master, self.slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.master = self.slave = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    # -- writing ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pty-receiver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.unplug()
        self.link.unlink(missing_ok=True)

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self.master is None:
                return  # unplugged: the bytes are lost, as on a real line
            try:
                os.write(self.master, data)
            except OSError as e:  # nobody reading and the buffer full: drop, as a UART would
                log.debug("pty write: %s", e)

    def _run(self) -> None:
        now = time.clock_gettime_ns(time.CLOCK_REALTIME)
        second = now - now % NS + NS
        byte_ns = self.sim.byte_ns
        while not self.stop.is_set():
            for t_lf, line in self.sim.epoch(second):
                data = line.encode("ascii", "replace") + b"\r\n"
                t0 = t_lf - len(data) * byte_ns  # when the first byte starts
                for k in range(0, len(data), FIFO_BYTES):
                    chunk = data[k:k + FIFO_BYTES]
                    if not sleep_until_ns(t0 + (k + len(chunk)) * byte_ns, self.stop):
                        return
                    self._write(chunk)
                self.lines_written += 1
            second += NS
