"""`kind = "ntp"`: one NTP server, polled by timewatch itself (docs/running.md, docs/ntp.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import PORT, Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig


def describe(s: SourceConfig) -> str:
    return f"server {s.server}:{s.port or 123}, poll {s.poll_s:g} s"


KIND = register(Kind(
    name="ntp",
    stability=True,
    reader="timewatch.sources.ntp:NtpReader",
    tracker="timewatch.engine.ntp:NtpTracker",
    keys={"server": Key(str, required=True), "port": PORT,
          "poll_s": Key(float, 64.0, lo=1, hi=1024)},
    describe=describe,
    doctor="timewatch.doctor:check_ntp",
))
