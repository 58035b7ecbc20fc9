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


class GpsdReader:
    def __init__(self, cfg: SourceConfig, emit: Emit):
        self.cfg = cfg
        self.emit = emit
        self.host = cfg.server or "127.0.0.1"
        self.port = cfg.port or GPSD_PORT
        self.bad_lines = 0

    def handle_line(self, line: bytes) -> None:
        rx, raw = now_pair()
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.startswith(("$", "!")):
            self.emit(Nmea(self.cfg.id, rx, text, raw))
            return
        if not text.startswith("{"):
            return
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            self.bad_lines += 1
            return
        if not isinstance(msg, dict) or msg.get("class") != "PPS":
            return
        try:
            clock_ns = int(msg["clock_sec"]) * 1_000_000_000 + int(msg["clock_nsec"])
            real_sec = int(msg["real_sec"])
        except (KeyError, TypeError, ValueError):
            self.bad_lines += 1
            return
        # The edge happened (rx - clock_ns) before now: the raw clock moved as much.
        self.emit(Pps(f"{self.cfg.id}-pps", clock_ns, real_sec, raw - (rx - clock_ns)))

    async def session(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE)
        try:
            writer.write(WATCH)
            await writer.drain()
            log.info("%s: watching gpsd at %s:%d", self.cfg.id, self.host, self.port)
            while True:
                line = await reader.readline()
                if not line:
                    raise ConnectionError("gpsd closed the connection")
                self.handle_line(line)
        finally:
            writer.close()

    async def run(self) -> None:
        backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            error = "gpsd closed the session"
            try:
                await self.session()
            except (OSError, ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
                error = str(e)
            if loop.time() - started > BACKOFF_MAX_S:
                backoff.reset()  # it ran fine for a while: this is a fresh failure
            delay = backoff.next()
            log.warning("%s: gpsd at %s:%d: %s; retrying in %.1f s", self.cfg.id, self.host,
                        self.port, error, delay)
            await asyncio.sleep(delay)
