"""Reads NMEA and PPS from a running gpsd (`kind = "gpsd"`), for when gpsd owns the receiver.

It connects to gpsd's JSON socket (default 127.0.0.1:2947), asks
`?WATCH={"enable":true,"json":true,"nmea":true,"pps":true}` and turns what arrives into the same
observations as the serial and PPS readers, so the engine judges them the same way:
- NMEA lines -> `nmea` records of source `ID`. For NMEA receivers gpsd passes the sentences
  through; for binary receivers (u-blox UBX, SiRF...) they are **gpsd's own rendering** of its
  fix, not the receiver's words: checksums, talkers and sentence mix are gpsd's.
- `PPS` reports -> `pps` records of source `ID-pps`. `rx_ns` is gpsd's `clock_sec/clock_nsec`
  (the host clock at the edge). gpsd's reports carry **no kernel sequence number**: `seq` is
  gpsd's `real_sec` (the UTC second gpsd assigned to the edge), so a gap in seq is a missing
  second, and the second is gpsd's opinion, not an independent count.

gpsd's `clock_sec` is a clock taken from outside the reader: it is checked against the host
clock read when the report arrives. A report whose edge is more than `CLOCK_TOLERANCE_S` from
that is refused (a warning names it): it would otherwise move the engine's time (a report one
day ahead would make every other source look stale).
"""

from __future__ import annotations

import asyncio
import json
import logging

from ..backoff import Backoff
from ..config import SourceConfig
from ..records import Nmea, Pps
from . import Emit, now_pair

log = logging.getLogger(__name__)

GPSD_PORT = 2947  # gpsd's registered port
WATCH = b'?WATCH={"enable":true,"json":true,"nmea":true,"pps":true};\n'
# Reconnect back-off: first retry quickly (gpsd restarting), then at most once a minute.
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 60.0
# gpsd's longest JSON report (SKY with many satellites) stays well below this.
MAX_LINE = 65536
# A PPS report's clock_sec/clock_nsec (the host clock at the edge, as gpsd read it) is refused
# farther than this from the host clock when the report arrives: gpsd reports an edge within
# milliseconds, and the engine's time must not follow another program's idea of the host clock.
CLOCK_TOLERANCE_S = 1.0


class BadLine(ValueError):
    """A line gpsd sent that cannot be used; `kind` groups them for the log."""

    def __init__(self, kind: str, what: str):
        super().__init__(what)
        self.kind = kind


def _no_constant(name: str) -> float:
    raise BadLine("json", f"non-finite number {name}")


def _int_field(msg: dict[str, object], key: str, lo: int, hi: int) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadLine("pps", f"PPS report: '{key}' must be an integer, got {str(v)[:40]!r}")
    if not lo <= v <= hi:
        raise BadLine("pps", f"PPS report: '{key}' = {v} is out of range")
    return v


class GpsdReader:
    def __init__(self, cfg: SourceConfig, emit: Emit):
        self.cfg = cfg
        self.emit = emit
        self.host = cfg.server or "127.0.0.1"
        self.port = cfg.port or GPSD_PORT
        self.bad_lines = 0
        self.bad_kinds: dict[str, int] = {}  # bad lines per kind (json, pps, clock, long, ...)

    def handle_line(self, line: bytes) -> None:
        """One line from gpsd. Whatever is wrong with it makes it a bad line: counted, logged
        once per kind, and the reader goes on with the next."""
        rx, raw = now_pair()
        try:
            self._line(line, rx, raw)
        except BadLine as e:
            self._bad(e.kind, str(e))
        except Exception as e:  # noqa: BLE001 - any error of one line is that line's, not ours
            self._bad(type(e).__name__, f"{type(e).__name__}: {str(e)[:200]}")

    def _bad(self, kind: str, what: str) -> None:
        self.bad_lines += 1
        n = self.bad_kinds[kind] = self.bad_kinds.get(kind, 0) + 1
        if n == 1:
            log.warning("%s: bad line from gpsd (%s); line skipped, further bad lines of this "
                        "kind are only counted", self.cfg.id, what)

    def _line(self, line: bytes, rx: int, raw: int) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.startswith(("$", "!")):
            self.emit(Nmea(self.cfg.id, rx, text, raw))
            return
        if not text.startswith("{"):
            return
        try:
            msg = json.loads(text, parse_constant=_no_constant)
        except (json.JSONDecodeError, RecursionError) as e:
            raise BadLine("json", f"invalid JSON: {type(e).__name__}: {str(e)[:100]}") from None
        if not isinstance(msg, dict) or msg.get("class") != "PPS":
            return
        clock_ns = (_int_field(msg, "clock_sec", 0, 2**62 // 1_000_000_000) * 1_000_000_000
                    + _int_field(msg, "clock_nsec", 0, 999_999_999))
        real_sec = _int_field(msg, "real_sec", 0, 2**62 // 1_000_000_000)
        if abs(rx - clock_ns) > CLOCK_TOLERANCE_S * 1e9:
            raise BadLine("clock", f"PPS edge at clock {clock_ns // 1_000_000_000}."
                                   f"{clock_ns % 1_000_000_000:09d}, {(clock_ns - rx) / 1e9:+.3f} s "
                                   f"from the host clock: refused (more than "
                                   f"{CLOCK_TOLERANCE_S:g} s)")
        # The edge happened (rx - clock_ns) before now: the raw clock moved as much.
        self.emit(Pps(f"{self.cfg.id}-pps", clock_ns, real_sec, raw - (rx - clock_ns)))

    async def session(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE)
        try:
            writer.write(WATCH)
            await writer.drain()
            log.info("%s: watching gpsd at %s:%d", self.cfg.id, self.host, self.port)
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE: asyncio dropped what it buffered
                    self._bad("long", f"a line longer than {MAX_LINE} bytes")
                    continue
                if not line:
                    raise ConnectionError("gpsd closed the connection")
                self.handle_line(line)
        finally:
            writer.close()

    async def run(self) -> None:
        """Read gpsd until cancelled: on any failure (gpsd gone, or a bug), reconnect with
        back-off. The reader never dies."""
        backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            error = "gpsd closed the session"
            try:
                await self.session()
            except (OSError, ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
                error = str(e)
            except Exception as e:  # noqa: BLE001 - never die: the source would go stale for good
                log.exception("%s: gpsd reader failed; reconnecting", self.cfg.id)
                error = f"reader failed ({type(e).__name__})"
            if loop.time() - started > BACKOFF_MAX_S:
                backoff.reset()  # it ran fine for a while: this is a fresh failure
            delay = backoff.next()
            log.warning("%s: gpsd at %s:%d: %s; retrying in %.1f s", self.cfg.id, self.host,
                        self.port, error, delay)
            await asyncio.sleep(delay)
