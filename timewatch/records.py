"""Observation records (docs/trace-format.md), and what the engine emits: events, samples, snapshots.

Every time is an integer count of nanoseconds. Records are frozen: once a reader hands one over,
nothing changes it, so a live run and its replay see the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol, cast

import msgspec

TRACE_FORMAT = "timewatch-trace"
TRACE_VERSION = 1


class RecordError(ValueError):
    """A record lacks a required field or has one of the wrong type or out of its range."""


# Every number a record holds is range-checked when it is read (trace lines; readers build
# records from clocks and codecs that stay in range): integers within int64, host clock readings
# (rx_ns, raw_ns, the client's t1/t4) not negative, floats finite and within their wire format.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
HostNs = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]  # a reading of a host clock
AnyNs = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]  # a time someone else gave
Int64 = AnyNs
# NTP short format (16.16 s): root delay and dispersion, with sign for the odd server.
ShortS = Annotated[float, msgspec.Meta(ge=-65536.0, le=65536.0)]
_INT_RANGES: dict[str, tuple[int, int]] = {
    "rx_ns": (0, INT64_MAX), "raw_ns": (0, INT64_MAX), "t1_ns": (0, INT64_MAX),
    "t4_ns": (0, INT64_MAX), "created_ns": (0, INT64_MAX),
    "leap": (0, 3), "version": (0, 7), "mode": (0, 7), "stratum": (0, 255),
    "poll": (-128, 127), "precision": (-128, 127),
}
_FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "root_delay": (-65536.0, 65536.0), "root_dispersion": (-65536.0, 65536.0)}


def refuse_constant(name: str) -> Any:
    """json.loads(parse_constant=...): NaN, Infinity and -Infinity are not JSON numbers."""
    raise RecordError(f"non-finite number {name} (not JSON)")


# ---------------------------------------------------------------------------------------------
# Trace header


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One source as the header describes it: its kind and the trust group it votes in."""

    kind: str  # "gnss" | "pps" | "ntp" (later: "gpsd", "chrony")
    group: str
    position: tuple[float, float, float] | None = None  # surveyed [lat_deg, lon_deg, alt_m]
    label_from: str | None = None  # pps: the gnss source naming each edge's second
    server: str | None = None  # ntp: host name or address
    poll_s: float | None = None  # ntp: configured poll interval (extension to the header)
    grandmasters: tuple[str, ...] | None = None  # ptp: the allowed grandmaster identities

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "group": self.group}
        if self.position is not None:
            d["position"] = list(self.position)
        if self.label_from is not None:
            d["label_from"] = self.label_from
        if self.server is not None:
            d["server"] = self.server
        if self.poll_s is not None:
            d["poll_s"] = self.poll_s
        if self.grandmasters is not None:
            d["grandmasters"] = list(self.grandmasters)
        return d

    @classmethod
    def from_dict(cls, sid: str, d: dict[str, Any]) -> SourceInfo:
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise RecordError(f"header.sources.{sid}: needs a string 'kind'")
        pos = d.get("position")
        if pos is not None:
            if not (isinstance(pos, list) and len(pos) == 3 and all(_is_num(v) for v in pos)
                    and -90 <= pos[0] <= 90 and -180 <= pos[1] <= 180
                    and -1e7 <= pos[2] <= 1e7):
                raise RecordError(f"header.sources.{sid}.position: must be [lat_deg, lon_deg, "
                                  f"alt_m] (finite, in range)")
            pos = (float(pos[0]), float(pos[1]), float(pos[2]))
        poll = d.get("poll_s")
        if poll is not None and _is_num(poll) and not 0 < poll <= 1e9:
            raise RecordError(f"header.sources.{sid}.poll_s: must be > 0 and finite, got {poll!r}")
        gms = d.get("grandmasters")
        if gms is not None and not (isinstance(gms, list) and all(isinstance(g, str) for g in gms)):
            raise RecordError(f"header.sources.{sid}.grandmasters: must be a list of strings")
        return cls(
            kind=d["kind"],
            group=str(d.get("group", sid)),
            position=pos,
            label_from=d.get("label_from"),
            server=d.get("server"),
            poll_s=float(poll) if isinstance(poll, int | float) and not isinstance(poll, bool) else None,
            grandmasters=tuple(gms) if gms is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Header:
    host: str
    created_ns: int
    sources: dict[str, SourceInfo]
    # The [detect] keys the recording ran with (docs/trace-format.md): those off their default
    # and the build-date floor. Checked against this build's keys when a replay uses them
    # (engine/params.py detect_from); empty in simulated traces and in older recordings.
    detect: dict[str, float | int] = field(default_factory=dict)
    type: ClassVar[str] = "header"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "header",
            "format": TRACE_FORMAT,
            "version": TRACE_VERSION,
            "host": self.host,
            "created_ns": self.created_ns,
            "sources": {sid: s.to_dict() for sid, s in self.sources.items()},
        }
        if self.detect:
            d["detect"] = dict(self.detect)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Header:
        if d.get("type") != "header" or d.get("format") != TRACE_FORMAT:
            raise RecordError("line 1 is not a timewatch-trace header")
        if d.get("version") != TRACE_VERSION:
            raise RecordError(f"unsupported trace version {d.get('version')!r} (this reads 1)")
        srcs = d.get("sources")
        if not isinstance(srcs, dict):
            raise RecordError("header: 'sources' must be an object")
        det = d.get("detect", {})
        if not isinstance(det, dict):
            raise RecordError("header: 'detect' must be an object of [detect] keys")
        for k, v in det.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise RecordError(f"header.detect.{k}: must be a number, got {v!r}")
        return cls(
            host=str(d.get("host", "")),
            created_ns=_int(d, "created_ns", required=False) or 0,
            sources={str(k): SourceInfo.from_dict(str(k), v) for k, v in srcs.items()},
            detect={str(k): v for k, v in det.items()},
        )


# ---------------------------------------------------------------------------------------------
# Observations
#
# msgspec Structs (frozen): immutable, slotted, compared by value like frozen dataclasses, and
# what the trace reader decodes a line into in about 1 us, against 2.7 us for a dataclass (the
# reader is a fifth of a replay). `msgspec.structs.replace` copies one with changes.


class Nmea(msgspec.Struct, frozen=True):
    src: str
    rx_ns: HostNs
    line: str
    raw_ns: HostNs | None = None
    type: ClassVar[str] = "nmea"


class Ubx(msgspec.Struct, frozen=True):
    src: str
    rx_ns: HostNs
    hex: str
    raw_ns: HostNs | None = None
    type: ClassVar[str] = "ubx"


class Pps(msgspec.Struct, frozen=True):
    src: str
    rx_ns: HostNs
    seq: Int64
    raw_ns: HostNs | None = None
    type: ClassVar[str] = "pps"


NtpError = Literal["timeout", "unreachable", "bad_origin", "malformed", "kiss", "nts_auth_failed",
                   "nts_downgrade"]


class Ntp(msgspec.Struct, frozen=True):
    """One NTP client exchange, successful or not (docs/trace-format.md `ntp`)."""

    src: str
    rx_ns: HostNs
    t1_ns: HostNs
    xmt_hex: str
    t2_ns: AnyNs | None = None
    t3_ns: AnyNs | None = None
    t4_ns: HostNs | None = None
    org_hex: str | None = None
    leap: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    version: Annotated[int, msgspec.Meta(ge=0, le=7)] | None = None
    mode: Annotated[int, msgspec.Meta(ge=0, le=7)] | None = None
    stratum: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = None
    poll: Annotated[int, msgspec.Meta(ge=-128, le=127)] | None = None
    precision: Annotated[int, msgspec.Meta(ge=-128, le=127)] | None = None
    root_delay: ShortS | None = None  # seconds
    root_dispersion: ShortS | None = None  # seconds
    refid: str | None = None
    pkt_hex: str | None = None
    # NTS (docs/nts.md): "nts" when the reply's authenticator verified; the key establishment
    # it was made under (a random id, never a key or cookie); why a reply failed authentication.
    auth: str | None = None
    ke_session: str | None = None
    auth_error: str | None = None
    error: str | None = None
    raw_ns: HostNs | None = None
    type: ClassVar[str] = "ntp"


# `Ntp.auth` of a reply whose NTS authenticator verified.
AUTH_NTS = "nts"


class NtsKe(msgspec.Struct, frozen=True):
    """One NTS key establishment of an `nts` source (docs/trace-format.md `nts_ke`): the session
    it opened (its id, the NTPv4 server and port it named, how many cookies), or why it failed
    (`cause`, `message`). Never a key or a cookie. Registered by the `nts` kind."""

    src: str
    rx_ns: HostNs
    session: str | None = None
    ntp_server: str | None = None
    ntp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    cookies: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    reason: str | None = None  # why new keys were needed (first, NTS NAK, cookies exhausted...)
    cause: str | None = None  # a failure: config, connect, timeout, tls, alpn, untrusted, ...
    message: str | None = None
    raw_ns: HostNs | None = None
    type: ClassVar[str] = "nts_ke"


class Tick(msgspec.Struct, frozen=True):
    rx_ns: HostNs
    raw_ns: HostNs | None = None
    src: ClassVar[str] = ""
    type: ClassVar[str] = "tick"


class Note(msgspec.Struct, frozen=True):
    rx_ns: HostNs
    text: str
    raw_ns: HostNs | None = None
    src: ClassVar[str] = ""
    type: ClassVar[str] = "note"


class Chrony(msgspec.Struct, frozen=True):
    """What the local chronyd said (`chronyc -n -c tracking` and `sources`), as it said it.

    An extension record (deployments may add types; older readers skip it): `tracking` is the CSV
    line, `sources` the CSV lines, `names` maps an address to the configured server name it was
    resolved from, `error` is set when chronyc did not answer.
    """

    src: str
    rx_ns: HostNs
    tracking: str = ""
    sources: tuple[str, ...] = ()
    names: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    raw_ns: HostNs | None = None
    type: ClassVar[str] = "chrony"


class Observation(Protocol):
    """What every observation record has: the records above and those a source kind registers
    (a protocol, not a union, so that the compiled engine takes a registered record too)."""

    type: ClassVar[str]

    @property
    def src(self) -> str: ...

    @property
    def rx_ns(self) -> int: ...

    @property
    def raw_ns(self) -> int | None: ...


# Record types a source kind brings (timewatch.kinds registers them): type -> class. Each is a
# frozen msgspec Struct with `src`, `rx_ns` and `raw_ns` fields and a `type` ClassVar; a trace
# line of its type is checked and built by msgspec, and written with its fields in order.
EXTENSION_RECORDS: dict[str, type[msgspec.Struct]] = {}
_CORE_TYPES = ("header", "nmea", "ubx", "pps", "ntp", "tick", "note", "chrony")


def register_record(cls: type[msgspec.Struct]) -> None:
    t = getattr(cls, "type", None)
    if not isinstance(t, str) or t in _CORE_TYPES or EXTENSION_RECORDS.get(t, cls) is not cls:
        raise ValueError(f"record type {t!r} of {cls.__name__} is taken or not a string")
    EXTENSION_RECORDS[t] = cls

_NTP_INT = ("t2_ns", "t3_ns", "t4_ns", "leap", "version", "mode", "stratum", "poll", "precision")
_NTP_FLOAT = ("root_delay", "root_dispersion")
_NTP_STR = ("org_hex", "refid", "pkt_hex", "auth", "ke_session", "auth_error", "error")


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int(d: dict[str, Any], key: str, required: bool = True) -> int | None:
    v = d.get(key)
    if v is None:
        if required:
            raise RecordError(f"missing required field '{key}'")
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RecordError(f"field '{key}' must be an integer, got {v!r}")
    lo, hi = _INT_RANGES.get(key, (INT64_MIN, INT64_MAX))
    if not lo <= v <= hi:
        raise RecordError(f"field '{key}' is out of range ({lo}..{hi}), got {v!r}")
    return v


def _str(d: dict[str, Any], key: str, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise RecordError(f"missing required field '{key}'")
        return None
    if not isinstance(v, str):
        raise RecordError(f"field '{key}' must be a string, got {v!r}")
    return v


def observation_from_dict(d: dict[str, Any]) -> Observation | None:
    """Build an observation from a decoded JSON object; None for an unknown `type`.

    Raises RecordError naming the field when a required field is missing or mistyped.
    """
    t = d.get("type")
    raw = _int(d, "raw_ns", required=False)
    if t == "nmea":
        return Nmea(_str(d, "src") or "", _int(d, "rx_ns") or 0, _str(d, "line") or "", raw)
    if t == "ubx":
        return Ubx(_str(d, "src") or "", _int(d, "rx_ns") or 0, _str(d, "hex") or "", raw)
    if t == "pps":
        return Pps(_str(d, "src") or "", _int(d, "rx_ns") or 0, _int(d, "seq") or 0, raw)
    if t == "ntp":
        return _ntp_from_dict(d, raw)
    if t == "chrony":
        srcs = d.get("sources", [])
        names = d.get("names", {})
        if not isinstance(srcs, list) or not all(isinstance(x, str) for x in srcs):
            raise RecordError("field 'sources' must be a list of strings")
        if not isinstance(names, dict):
            raise RecordError("field 'names' must be an object")
        return Chrony(_str(d, "src") or "", _int(d, "rx_ns") or 0,
                      _str(d, "tracking", required=False) or "", tuple(srcs),
                      tuple(sorted((str(k), str(v)) for k, v in names.items())),
                      _str(d, "error", required=False), raw)
    if t == "tick":
        return Tick(_int(d, "rx_ns") or 0, raw)
    if t == "note":
        return Note(_int(d, "rx_ns") or 0, _str(d, "text") or "", raw)
    if not isinstance(t, str):
        raise RecordError("missing required field 'type'")
    ext = EXTENSION_RECORDS.get(t)
    if ext is not None:
        try:
            return cast(Observation, msgspec.convert(d, ext))
        except msgspec.ValidationError as e:
            raise RecordError(str(e)) from None
    return None


def _ntp_from_dict(d: dict[str, Any], raw: int | None) -> Ntp:
    """The `ntp` record, its fields checked in the order of the spec's lists above."""
    kw: dict[str, Any] = {k: _int(d, k, required=False) for k in _NTP_INT}
    for k in _NTP_FLOAT:
        v = d.get(k)
        if v is not None and not _is_num(v):
            raise RecordError(f"field '{k}' must be a number, got {v!r}")
        lo, hi = _FLOAT_RANGES[k]
        if v is not None and not lo <= v <= hi:  # nan fails too
            raise RecordError(f"field '{k}' is out of range ({lo:g}..{hi:g}), got {v!r}")
        kw[k] = float(v) if v is not None else None
    kw.update({k: _str(d, k, required=False) for k in _NTP_STR})
    return Ntp(src=_str(d, "src") or "", rx_ns=_int(d, "rx_ns") or 0,
               t1_ns=_int(d, "t1_ns") or 0, xmt_hex=_str(d, "xmt_hex") or "", raw_ns=raw, **kw)


def observation_to_dict(o: Observation) -> dict[str, Any]:
    """The JSON object of an observation, fields in spec order, absent optionals left out."""
    d: dict[str, Any] = {"type": o.type}
    if not isinstance(o, Tick | Note):
        d["src"] = o.src
    d["rx_ns"] = o.rx_ns
    if isinstance(o, Nmea):
        d["line"] = o.line
    elif isinstance(o, Ubx):
        d["hex"] = o.hex
    elif isinstance(o, Pps):
        d["seq"] = o.seq
    elif isinstance(o, Note):
        d["text"] = o.text
    elif isinstance(o, Chrony):
        d["tracking"] = o.tracking
        d["sources"] = list(o.sources)
        d["names"] = dict(o.names)
        if o.error is not None:
            d["error"] = o.error
    elif isinstance(o, Ntp):
        for k in ("t1_ns", "t2_ns", "t3_ns", "t4_ns", "xmt_hex", "org_hex", "leap", "version",
                  "mode", "stratum", "poll", "precision", "root_delay", "root_dispersion",
                  "refid", "pkt_hex", "error", "auth", "ke_session", "auth_error"):
            v = getattr(o, k)
            if v is not None:
                d[k] = v
    else:
        ext = EXTENSION_RECORDS.get(o.type)
        if ext is not None and isinstance(o, ext):
            d.update((k, v) for k, v in msgspec.structs.asdict(o).items()
                     if k not in ("src", "rx_ns", "raw_ns") and v is not None)
    if o.raw_ns is not None:
        d["raw_ns"] = o.raw_ns
    return d


# ---------------------------------------------------------------------------------------------
# What the engine emits

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Event:
    """An alert or its clear (docs/events.md). `id` is shared by an alert and its clear."""

    type: Literal["alert", "clear"]
    t_ns: int
    code: str
    sources: tuple[str, ...]
    id: str
    severity: str = "warning"
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        if self.type == "clear":
            return {"type": "clear", "t_ns": self.t_ns, "code": self.code,
                    "sources": list(self.sources), "id": self.id}
        return {"type": "alert", "t_ns": self.t_ns, "code": self.code, "severity": self.severity,
                "sources": list(self.sources), "message": self.message,
                "evidence": self.evidence, "id": self.id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(type=d["type"], t_ns=int(d["t_ns"]), code=d["code"],
                   sources=tuple(d.get("sources", ())), id=d["id"],
                   severity=d.get("severity", "warning"), message=d.get("message", ""),
                   evidence=dict(d.get("evidence", {})))


@dataclass(frozen=True, slots=True)
class Sample:
    """One accepted measurement of a source against the host clock.

    offset_s = source time - host realtime; bound_s = half-width of its error interval.
    `fields` carries kind-specific numbers with units in their names (delay_s, cn0_mean_db_hz...).
    """

    src: str
    t_ns: int
    offset_s: float
    bound_s: float
    fields: dict[str, float] = field(default_factory=dict)
    type: ClassVar[str] = "sample"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "sample", "src": self.src, "t_ns": self.t_ns, "offset_s": self.offset_s,
                "bound_s": self.bound_s, "fields": self.fields}


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source in a status snapshot: where it stands and why (chrony's SRC_Status, with words)."""

    src: str
    kind: str
    group: str
    verdict: str  # truechimer | falseticker | unusable | stale | init
    reason: str
    offset_s: float | None = None
    bound_s: float | None = None
    last_ns: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # the tracker's status numbers
    auth: str | None = None  # "nts": its replies are authenticated (absent from to_dict: None)

    def to_dict(self) -> dict[str, Any]:
        d = {"src": self.src, "kind": self.kind, "group": self.group, "verdict": self.verdict,
             "reason": self.reason, "offset_s": _finite(self.offset_s),
             "bound_s": _finite(self.bound_s), "last_ns": self.last_ns,
             "fields": {k: _finite(v) for k, v in self.fields.items()}}
        if self.auth is not None:
            d["auth"] = self.auth
        return d


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The engine's state at t_ns: every source's verdict, the consensus, active alerts."""

    t_ns: int
    sources: tuple[SourceStatus, ...]
    quorum: bool
    groups_agreeing: int
    groups_voting: int
    consensus_offset_s: float | None  # consensus time - host realtime
    consensus_bound_s: float | None
    active_alerts: tuple[str, ...] = ()  # "code:id"
    holdover_ppm: float | None = None  # raw oscillator frequency against the consensus
    type: ClassVar[str] = "status"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "status", "t_ns": self.t_ns,
            "consensus": {"quorum": self.quorum, "groups_agreeing": self.groups_agreeing,
                          "groups_voting": self.groups_voting,
                          "offset_s": _finite(self.consensus_offset_s),
                          "bound_s": _finite(self.consensus_bound_s)},
            "holdover_ppm": _finite(self.holdover_ppm),
            "sources": [s.to_dict() for s in self.sources],
            "active_alerts": list(self.active_alerts),
        }


Output = Event | Sample | Snapshot


def _finite(v: Any) -> Any:
    """A snapshot's number as JSON can hold it: a NaN or infinity (never expected: inputs are
    range-checked) becomes null, so a snapshot is always valid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
