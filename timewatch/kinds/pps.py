"""`kind = "pps"`: kernel PPS, a GPIO line or a sysfs file; its seconds named by a gnss source
(docs/pps.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig


def describe(s: SourceConfig) -> str:
    return f"{s.device}" + (f", labels from {s.label_from}" if s.label_from else "")


KIND = register(Kind(
    name="pps",
    stability=True,
    prtc=True,
    reader="timewatch.sources.pps:PpsReader",
    tracker="timewatch.engine.pps:PpsTracker",
    keys={"device": Key(str, required=True), "label_from": Key(str)},
    default_group="gnss",
    describe=describe,
    doctor="timewatch.doctor:check_pps",
))
