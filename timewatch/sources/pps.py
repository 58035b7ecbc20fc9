"""The PPS reader: kernel PPS (RFC 2783) through PPS_FETCH, the sysfs fallback, or libgpiod v2.

Each assert edge becomes a `Pps` observation: `rx_ns` is the kernel's assert timestamp
(CLOCK_REALTIME at the interrupt), `seq` the kernel's assert sequence number, and `raw_ns` the
CLOCK_MONOTONIC_RAW of that instant, derived from a realtime/raw pair read right after the fetch:
raw = raw_now - (real_now - assert). The error of that is (frequency difference of the two clocks)
x (time since the edge): at most 100 ppm x the fetch latency (kernel: microseconds; sysfs: up to
SYSFS_POLL_S, so 1 us at 10 ms).

`device` (docs/config.md) chooses the path:
- `/dev/ppsN`: the PPS_FETCH ioctl, blocking for at most FETCH_TIMEOUT_S in a thread. When the
  device cannot be opened or does not answer PPS_FETCH (permissions: /dev/pps0 is often root-only),
  the reader falls back to `/sys/class/pps/ppsN` (world-readable).
- `/sys/class/pps/ppsN` (or any directory holding an `assert` file): `seconds.nanoseconds#sequence`,
  polled every SYSFS_POLL_S.
- `gpiochipN:LINE` (or `/dev/gpiochipN:LINE`): libgpiod v2 rising-edge events with realtime
  timestamps, for boards without the pps-gpio overlay (optional dependency `gpiod`).

The ioctl number and `struct pps_fdata` are derived from the header's definitions (linux/pps.h and
asm-generic/ioctl.h), not copied: PPS_FETCH is `_IOWR('p', 0xa4, struct pps_fdata *)`, so its size
field is a *pointer's* size (0xc00870a4 on 64-bit, 0xc00470a4 on 32-bit ARM), while the struct is
64 bytes on both (s64 is 8-aligned on x86-64 and on ARM EABI).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..backoff import Backoff
from ..config import SourceConfig
from ..records import Pps
from . import BlockingReader, Emit, now_pair

log = logging.getLogger(__name__)

# -- linux/pps.h and asm-generic/ioctl.h, as data ------------------------------------------------

# asm-generic/ioctl.h: field widths of an ioctl number (x86, ARM, arm64 and RISC-V use these).
_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
# asm-generic/ioctl.h: direction bits.
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, typ: int, nr: int, size: int) -> int:
    """asm-generic/ioctl.h `_IOC(dir, type, nr, size)`."""
    if size >= 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl size {size} does not fit in {_IOC_SIZEBITS} bits")
    return ((direction << _IOC_DIRSHIFT) | (typ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)
            | (size << _IOC_SIZESHIFT))


def _iowr(typ: str, nr: int, size: int) -> int:
    """`_IOWR(type, nr, argtype)` with sizeof(argtype) = size."""
    return _ioc(_IOC_READ | _IOC_WRITE, ord(typ), nr, size)


# linux/pps.h: `#define PPS_FETCH _IOWR('p', 0xa4, struct pps_fdata *)`.
PPS_IOC_TYPE = "p"
PPS_FETCH_NR = 0xA4


def pps_fetch_number(pointer_size: int = ctypes.sizeof(ctypes.c_void_p)) -> int:
    """PPS_FETCH for a userland whose pointers are `pointer_size` bytes (8: 64-bit, 4: 32-bit)."""
    return _iowr(PPS_IOC_TYPE, PPS_FETCH_NR, pointer_size)


PPS_FETCH = pps_fetch_number()
# linux/pps.h: timeout flag meaning "no timeout" (block until an edge).
PPS_TIME_INVALID = 1 << 0


class PpsKtime(ctypes.Structure):
    """linux/pps.h `struct pps_ktime` (native alignment, as the kernel's ABI)."""

    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_int32), ("flags", ctypes.c_uint32)]


class PpsKinfo(ctypes.Structure):
    """linux/pps.h `struct pps_kinfo`."""

    _fields_ = [("assert_sequence", ctypes.c_uint32), ("clear_sequence", ctypes.c_uint32),
                ("assert_tu", PpsKtime), ("clear_tu", PpsKtime), ("current_mode", ctypes.c_int)]


class PpsFdata(ctypes.Structure):
    """linux/pps.h `struct pps_fdata`: what PPS_FETCH reads and writes."""

    _fields_ = [("info", PpsKinfo), ("timeout", PpsKtime)]


PPS_FDATA_SIZE = ctypes.sizeof(PpsFdata)


class PpsError(Exception):
    """A PPS device, sysfs file or GPIO line that cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one PPS_FETCH returned (times in ns since the epoch)."""

    assert_seq: int
    assert_ns: int
    clear_seq: int
    clear_ns: int
    mode: int


def decode_fdata(buf: bytes | bytearray) -> Fetched:
    """Decode the bytes of a `struct pps_fdata` (native byte order, as the kernel wrote them)."""
    if len(buf) != PPS_FDATA_SIZE:
        raise PpsError(f"struct pps_fdata: {len(buf)} bytes, expected {PPS_FDATA_SIZE}")
    f = PpsFdata.from_buffer_copy(bytes(buf))
    i = f.info
    return Fetched(i.assert_sequence, i.assert_tu.sec * 1_000_000_000 + i.assert_tu.nsec,
                   i.clear_sequence, i.clear_tu.sec * 1_000_000_000 + i.clear_tu.nsec,
                   i.current_mode)


def fetch_request(timeout_s: float | None) -> bytearray:
    """A `struct pps_fdata` asking PPS_FETCH to wait at most timeout_s (None: forever)."""
    f = PpsFdata()
    if timeout_s is None:
        f.timeout.flags = PPS_TIME_INVALID
    else:
        f.timeout.sec = int(timeout_s)
        f.timeout.nsec = int(round((timeout_s - int(timeout_s)) * 1e9))
    return bytearray(bytes(f))


def fetch(fd: int, timeout_s: float | None, device: str = "?") -> Fetched | None:
    """PPS_FETCH on an open /dev/ppsN: the next edge, or None when none came within timeout_s."""
    buf = fetch_request(timeout_s)
    try:
        fcntl.ioctl(fd, PPS_FETCH, buf, True)
    except OSError as e:
        if e.errno == errno.ETIMEDOUT:
            return None
        if e.errno == errno.EINTR:
            return None
        raise PpsError(f"{device}: PPS_FETCH (0x{PPS_FETCH:08x}) failed: "
                       f"{errno.errorcode.get(e.errno or 0, e.errno)} {e.strerror}") from None
    return decode_fdata(buf)


_SYSFS_RE = re.compile(r"^(\d+)\.(\d{1,9})#(\d+)$")


def parse_sysfs_assert(text: str, path: str = "assert") -> tuple[int, int] | None:
    """`seconds.nanoseconds#sequence` (drivers/pps/sysfs.c) -> (assert_ns, seq); None before the
    first edge (sequence 0)."""
    t = text.strip()
    m = _SYSFS_RE.match(t)
    if m is None:
        raise PpsError(f"{path}: expected 'seconds.nanoseconds#sequence', got {t[:40]!r}")
    sec, frac, seq = m.groups()
    if int(seq) == 0:
        return None
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")), int(seq)


def raw_of(assert_ns: int, real_now_ns: int, raw_now_ns: int) -> int:
    """CLOCK_MONOTONIC_RAW at the assert instant, from a realtime/raw pair read after it."""
    return raw_now_ns - (real_now_ns - assert_ns)


# -- the reader ---------------------------------------------------------------------------------

# PPS_FETCH blocks at most this long, so the thread sees `stop` within it (a pulse is due each 1 s).
FETCH_TIMEOUT_S = 1.5
# Sysfs poll period: 10 ms keeps raw_ns within 1 us (100 ppm x 10 ms) at 100 reads a second.
SYSFS_POLL_S = 0.01
# Where the kernel lists PPS sources.
SYSFS_ROOT = "/sys/class/pps"
# Reopen backoff: a device that vanished (module reload) comes back within seconds.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
_GPIO_RE = re.compile(r"^(?:/dev/)?(gpiochip\d+):(\d+)$")


class PpsReader(BlockingReader):
    """Reader of a `pps` source (sources/__init__.py interface)."""

    def __init__(self, cfg: SourceConfig, emit: Emit, sysfs_root: str = SYSFS_ROOT,
                 poll_s: float = SYSFS_POLL_S, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        if not cfg.device:
            raise ValueError(f"source {cfg.id}: no device")
        self.cfg = cfg
        self.emit = emit
        self.sysfs_root = sysfs_root
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        super().__init__()
        self.mode: str | None = None  # "kernel", "sysfs", "gpiod": what is in use now
        self.edges = 0
        self.errors = 0

    def run_blocking(self) -> None:
        """Read until `stop` is set; on any device error log it and retry with backoff."""
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while not self.stop.is_set():
            edges = self.edges
            try:
                self._read_once()
            except PpsError as e:
                self.errors += 1
                if self.edges > edges:  # it delivered edges before failing: a fresh failure
                    backoff.reset()
                delay = backoff.next()
                log.warning("%s: %s; retry in %.1f s", self.cfg.id, e, delay)
                self.stop.wait(delay)

    def _read_once(self) -> None:
        dev = self.cfg.device or ""
        g = _GPIO_RE.match(dev)
        if g is not None:
            self._gpiod(f"/dev/{g.group(1)}", int(g.group(2)))
        elif os.path.isdir(dev):
            self._sysfs(dev)
        else:
            try:
                self._kernel(dev)
            except PpsError as e:
                fallback = os.path.join(self.sysfs_root, os.path.basename(dev))
                if not os.path.isfile(os.path.join(fallback, "assert")):
                    raise
                log.warning("%s: %s; using %s instead", self.cfg.id, e, fallback)
                self._sysfs(fallback)

    def _edge(self, assert_ns: int, seq: int, real_now: int, raw_now: int) -> None:
        self.edges += 1
        self.emit(Pps(self.cfg.id, assert_ns, seq, raw_of(assert_ns, real_now, raw_now)))

    # RFC 2783 through the kernel's character device.
    def _kernel(self, dev: str) -> None:
        try:
            fd = os.open(dev, os.O_RDWR)
        except PermissionError:
            try:
                fd = os.open(dev, os.O_RDONLY)
            except OSError as e:
                raise PpsError(f"{dev}: cannot open: {e.strerror}") from None
        except OSError as e:
            raise PpsError(f"{dev}: cannot open: {e.strerror}") from None
        try:
            last_seq: int | None = None
            first = fetch(fd, 0.0, dev)  # PPS_FETCH answers at once or fails: is this PPS at all?
            if first is not None:
                last_seq = first.assert_seq
            self.mode = "kernel"
            log.info("%s: reading %s (PPS_FETCH)", self.cfg.id, dev)
            while not self.stop.is_set():
                f = fetch(fd, self.timeout_s, dev)
                if f is None or f.assert_seq == last_seq or f.assert_ns == 0:
                    continue  # timeout, or woken by a clear edge
                real_now, raw_now = now_pair()
                last_seq = f.assert_seq
                self._edge(f.assert_ns, f.assert_seq, real_now, raw_now)
        finally:
            os.close(fd)

    # drivers/pps/sysfs.c: /sys/class/pps/ppsN/assert, polled.
    def _sysfs(self, directory: str) -> None:
        path = os.path.join(directory, "assert")
        last: tuple[int, int] | None = None
        first = True
        self.mode = "sysfs"
        log.info("%s: polling %s every %.0f ms", self.cfg.id, path, self.poll_s * 1e3)
        while not self.stop.is_set():
            try:
                text = Path(path).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as e:
                raise PpsError(f"{path}: cannot read: {e}") from None
            real_now, raw_now = now_pair()
            cur = parse_sysfs_assert(text, path)
            if cur is not None and cur != last:
                if not first:  # the edge already there at start may be old: its raw_ns would be
                    self._edge(cur[0], cur[1], real_now, raw_now)
                last = cur
            first = False
            self.stop.wait(self.poll_s)

    # libgpiod v2, realtime edge timestamps.
    def _gpiod(self, chip: str, line: int) -> None:
        try:
            import gpiod  # optional dependency: pip install 'timewatch[gpio]'
            from gpiod.line import Clock, Edge
        except ImportError:
            raise PpsError(f"{chip}:{line}: libgpiod v2 Python bindings are not installed "
                           "(pip install 'timewatch[gpio]')") from None
        settings = gpiod.LineSettings(edge_detection=Edge.RISING, event_clock=Clock.REALTIME)
        try:
            req = gpiod.request_lines(chip, consumer="timewatch", config={line: settings})
        except OSError as e:
            raise PpsError(f"{chip}:{line}: cannot request the line: {e.strerror}") from None
        self.mode = "gpiod"
        log.info("%s: rising edges of %s line %d (libgpiod)", self.cfg.id, chip, line)
        try:
            while not self.stop.is_set():
                if not req.wait_edge_events(self.timeout_s):
                    continue
                events = req.read_edge_events()
                real_now, raw_now = now_pair()
                for ev in events:
                    self._edge(ev.timestamp_ns, ev.line_seqno, real_now, raw_now)
        except OSError as e:
            raise PpsError(f"{chip}:{line}: {e.strerror}") from None
        finally:
            req.release()
