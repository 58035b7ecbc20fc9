"""`kind = "gnss"`: a receiver on a serial line, NMEA and/or UBX (docs/gnss.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import POSITION, Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig


def describe(s: SourceConfig) -> str:
    return f"{s.device} at {s.baud} baud" + (
        f", antenna at {list(s.position)}" if s.position else ", antenna position learned")


KIND = register(Kind(
    name="gnss",
    stability=True,
    prtc=True,
    reader="timewatch.sources.serial:SerialReader",
    tracker="timewatch.engine.gnss:GnssTracker",
    keys={"device": Key(str, required=True), "baud": Key(int, 9600, lo=300, hi=4_000_000),
          "position": POSITION},
    default_group="gnss",
    describe=describe,
    doctor="timewatch.doctor:check_serial",
))
