"""`kind = "gpsd"`: NMEA and PPS from a running gpsd (docs/coexistence.md). One config source is
two sources in the trace and the vote: the receiver `ID` (gnss) and its PPS `ID-pps` (pps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..records import SourceInfo
from . import PORT, POSITION, Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig


def describe(s: SourceConfig) -> str:
    return f"gpsd at {s.server or '127.0.0.1'}:{s.port or 2947}"


def infos(s: SourceConfig) -> dict[str, SourceInfo]:
    """The receiver (`ID`, kind gnss) and its PPS (`ID-pps`, kind pps), in the source's group."""
    return {s.id: SourceInfo("gnss", s.group, position=s.position),
            f"{s.id}-pps": SourceInfo("pps", s.group, label_from=s.id)}


KIND = register(Kind(
    name="gpsd",
    stability=True,
    prtc=True,
    reader="timewatch.sources.gpsd:GpsdReader",
    tracker=None,  # its sources are of kinds gnss and pps
    keys={"server": Key(str), "port": PORT, "position": POSITION},
    default_group="gnss",
    describe=describe,
    infos=infos,
))
