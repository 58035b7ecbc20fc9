"""Source kinds: each kind is declared once, here, and everything else asks this registry.

A kind is one `Kind(...)` registered by its own module (`kinds/ntp.py`, `kinds/gnss.py`, ...):
its config keys and their checks, its reader and tracker ("module:Class", imported when a source
of the kind is used), what `check-config` says about a source, the trace-header sources a config
source becomes, its `doctor` checks, and any observation record type of its own. What the engine
needs to know about a kind (judged for steps, its noise floor, an NTP server chronyd may follow)
are attributes of its tracker class (`engine.core.Tracker`), so the engine asks the tracker.

Adding a kind: its reader module, its tracker module, and one module that calls `register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..records import SourceInfo, register_record

if TYPE_CHECKING:
    from ..config import SourceConfig
    from ..doctor import Check


@dataclass(frozen=True)
class Key:
    """One config key a kind accepts in its `[[sources]]` entries (beyond id, kind and group).

    The config loader checks the type (an int is accepted for a float), the range `lo..hi` and
    `choices`, then `parse` (which may convert; a ValueError's text becomes the error). A key
    named like a `SourceConfig` field fills that field; any other key goes to `options`.
    """

    type: type | tuple[type, ...]
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    parse: Callable[[Any], Any] | None = None


def parse_position(v: list[Any]) -> tuple[float, float, float]:
    """`position = [lat_deg, lon_deg, alt_m]` (a surveyed antenna)."""
    if len(v) != 3 or not all(isinstance(x, int | float) for x in v) or not (-90 <= v[0] <= 90 and -180 <= v[1] <= 180):
        raise ValueError(f"must be [lat_deg, lon_deg, alt_m], got {v!r}")
    return (float(v[0]), float(v[1]), float(v[2]))


# Keys several kinds share.
POSITION = Key(list, parse=parse_position)
PORT = Key(int, lo=1, hi=65535)


def _no_description(sc: SourceConfig) -> str:
    return ""


def _one_source(sc: SourceConfig) -> dict[str, SourceInfo]:
    return {sc.id: sc.info()}


@dataclass(frozen=True)
class Kind:
    """Everything timewatch knows about one kind of source."""

    name: str
    reader: str | None  # "module:Class" built as Class(SourceConfig, emit); None: no reader
    tracker: str | None  # "module:Class", an engine.Tracker; None: infos() names other kinds
    keys: Mapping[str, Key] = field(default_factory=dict)
    default_group: str | None = None  # trust group when the source names none; None: its id
    describe: Callable[[SourceConfig], str] = _no_description  # check-config's words for it
    # The trace-header sources one config source becomes (default: itself, of this kind).
    infos: Callable[[SourceConfig], dict[str, SourceInfo]] = _one_source
    doctor: str | None = None  # "module:function": SourceConfig -> iterable of doctor Checks
    records: tuple[type, ...] = ()  # its own observation record types (msgspec Structs)
    # `timewatch report`: its offsets are steady enough for ADEV/MDEV/TDEV/MTIE (`stability`),
    # and it is part of a primary reference time clock, so ITU-T G.8272's masks apply (`prtc`).
    stability: bool = False
    prtc: bool = False
    # Every reply it uses is authenticated (NTS): what `[vote] auth_mode = "require"` keeps.
    authenticated: bool = False

    def header_keys(self) -> list[str]:
        """Those of its keys that a trace header carries (`SourceInfo` fields)."""
        return [f.name for f in fields(SourceInfo) if f.name in self.keys]

    def reader_class(self) -> Any:
        return load(self.reader) if self.reader else None

    def tracker_class(self) -> Any:
        return load(self.tracker) if self.tracker else None

    def doctor_checks(self, sc: SourceConfig) -> list[Check]:
        if self.doctor is None:
            return []
        checks: Iterable[Check] = load(self.doctor)(sc)
        return list(checks)


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make `kind` known (its record types too). Registering a second kind of a name is an error."""
    old = KINDS.get(kind.name)
    if old is not None and old != kind:
        raise ValueError(f"source kind {kind.name!r} is already registered")
    for rec in kind.records:
        register_record(rec)
    KINDS[kind.name] = kind
    return kind


class UnknownKind(LookupError):
    """A kind nobody registered."""


def get(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise UnknownKind(f"unknown source kind {name!r} (known: {', '.join(KINDS)})")
    return kind


def load(target: str) -> Any:
    """The object `module:name` names (ImportError or AttributeError when it is not there)."""
    mod, _, name = target.partition(":")
    return getattr(importlib.import_module(mod), name)


# The built-in kinds (imported for their `register` call; the order is the order errors list).
from . import gnss, pps, ntp, nts, gpsd, chrony, ptp  # noqa: E402, F401, I001
