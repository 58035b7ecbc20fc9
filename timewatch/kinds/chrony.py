"""`kind = "chrony"`: the local chronyd as a witness, asked through chronyc (docs/coexistence.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig


def describe(s: SourceConfig) -> str:
    return f"chronyd via {s.socket or 'chronyc'}"


KIND = register(Kind(
    name="chrony",
    reader="timewatch.sources.chrony:ChronyReader",
    tracker="timewatch.engine.chrony:ChronyTracker",
    keys={"socket": Key(str), "poll_s": Key(float, 16.0, lo=1, hi=1024)},
    describe=describe,
))
