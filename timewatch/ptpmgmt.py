"""PTP management answers: the `ptp` observation record, and `pmc`'s output read strictly.

A `ptp` source's reader asks its own ptp4l (linuxptp) over the management protocol, through
`pmc -u -b 0 'GET TIME_STATUS_NP' 'GET PARENT_DATA_SET' ...`, once per poll, and emits one `Ptp`
record with the answers' fields as ptp4l gave them (docs/ptp.md, docs/trace-format.md `ptp`).
The engine decides what they mean. Shared by the reader, the engine and the simulator.

pmc prints, for each answer, a header line and one line per field:

    \t160d9b.fffe.d32855-0 seq 0 RESPONSE MANAGEMENT TIME_STATUS_NP
    \t\tmaster_offset              -478
    ...

`parse_pmc` accepts exactly that (plus pmc's own `sending:` lines) and refuses anything else,
naming the line; `record_from_answers` converts each field, naming the data set and field that
is missing or malformed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, Final

import msgspec

# The management data sets a poll asks for, in the order asked.
DATASETS: Final = ("PORT_DATA_SET", "TIME_STATUS_NP", "PARENT_DATA_SET", "CURRENT_DATA_SET",
                   "TIME_PROPERTIES_DATA_SET")
# What each profile means to ptp4l: delay mechanism, transport, default domain, and the
# BMCA's data set comparison (IEEE 1588 default; IEC 61850-9-3 / C37.238 power; ITU-T G.8275.1
# full timing support over Ethernet; G.8275.2 partial support over UDPv4).
PROFILES: Final[dict[str, dict[str, Any]]] = {
    "default": {"delay_mechanism": "E2E", "network_transport": "UDPv4", "domain": 0},
    "power": {"delay_mechanism": "P2P", "network_transport": "L2", "domain": 0},
    "telecom-g8275.1": {"delay_mechanism": "E2E", "network_transport": "L2", "domain": 24,
                        "dataset_comparison": "G.8275.x", "ptp_dst_mac": "01:80:C2:00:00:0E"},
    "telecom-g8275.2": {"delay_mechanism": "E2E", "network_transport": "UDPv4", "domain": 44,
                        "dataset_comparison": "G.8275.x"},
}
# `timestamping` of a source: hardware when ethtool -T says the NIC can (auto), or as asked.
TIMESTAMPING_CHOICES: Final = ("auto", "hardware", "software")
# What `error` of a record says: ptp4l did not answer (not running, restarting, stuck), or
# answered something this parser refuses.
ERRORS: Final = ("unreachable", "malformed")
TIMESTAMPING: Final = ("software", "hardware")
# portState values ptp4l prints (IEEE 1588-2008 table 8, ptp4l's names).
PORT_STATES: Final = ("INITIALIZING", "FAULTY", "DISABLED", "LISTENING", "PRE_MASTER", "MASTER",
                      "PASSIVE", "UNCALIBRATED", "SLAVE", "GRAND_MASTER")


class Ptp(msgspec.Struct, frozen=True):
    """One poll of a PTP source's ptp4l (docs/trace-format.md `ptp`). Times in ns.

    `error` is set when ptp4l did not answer or answered something unreadable (`detail` says
    what); the data-set fields are then absent. Identities are ptp4l's text (`xxxxxx.xxxx.xxxxxx`).
    """

    src: str
    rx_ns: int
    error: str | None = None
    detail: str | None = None
    timestamping: str | None = None  # "software" | "hardware": what the reader configured
    phc_offset_ns: int | None = None  # hardware: PHC - host realtime, measured this poll
    # PORT_DATA_SET
    port_state: str | None = None
    log_announce_interval: int | None = None
    log_sync_interval: int | None = None
    delay_mechanism: int | None = None  # 1 E2E, 2 P2P
    peer_mean_path_delay_ns: int | None = None
    # TIME_STATUS_NP (ptp4l's own: the offset of its clock to the master's, per Sync)
    master_offset_ns: int | None = None
    ingress_ns: int | None = None
    gm_present: bool | None = None
    gm_identity: str | None = None
    # PARENT_DATA_SET
    parent_port: str | None = None
    gm_priority1: int | None = None
    gm_clock_class: int | None = None
    gm_clock_accuracy: int | None = None
    gm_variance: int | None = None  # offsetScaledLogVariance
    gm_priority2: int | None = None
    parent_gm_identity: str | None = None
    # CURRENT_DATA_SET
    steps_removed: int | None = None
    offset_from_master_ns: float | None = None
    mean_path_delay_ns: float | None = None
    # TIME_PROPERTIES_DATA_SET
    utc_offset: int | None = None
    leap61: bool | None = None
    leap59: bool | None = None
    utc_offset_valid: bool | None = None
    ptp_timescale: bool | None = None
    time_traceable: bool | None = None
    frequency_traceable: bool | None = None
    time_source: int | None = None
    raw_ns: int | None = None
    type: ClassVar[str] = "ptp"


class PmcError(ValueError):
    """pmc's output is not what ptp4l answers: the text names the line or the field."""


_HEAD = re.compile(r"^\t([0-9a-f]{6}\.[0-9a-f]{4}\.[0-9a-f]{6}-\d+) seq \d+ "
                   r"RESPONSE (MANAGEMENT|MANAGEMENT_ERROR_STATUS) ([A-Z0-9_]+) ?$")
_FIELD = re.compile(r"^\t\t(\S+)\s+(\S.*?)\s*$")
_IDENTITY = re.compile(r"^[0-9a-f]{6}\.[0-9a-f]{4}\.[0-9a-f]{6}$")
_PORT_IDENTITY = re.compile(r"^[0-9a-f]{6}\.[0-9a-f]{4}\.[0-9a-f]{6}-\d{1,5}$")


def parse_pmc(text: str) -> dict[str, dict[str, str]]:
    """pmc's answers: data set name -> {field: value text}. Raises PmcError on anything else
    (a line of another shape, a field before any answer, an answer twice, an error status)."""
    out: dict[str, dict[str, str]] = {}
    cur: dict[str, str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("sending: "):
            continue
        m = _HEAD.match(line)
        if m is not None:
            _, status, name = m.groups()
            if status != "MANAGEMENT":
                raise PmcError(f"pmc line {n}: ptp4l refused GET {name} ({status})")
            if name in out:
                raise PmcError(f"pmc line {n}: a second answer for {name}")
            cur = out[name] = {}
            continue
        m = _FIELD.match(line)
        if m is None or cur is None:
            raise PmcError(f"pmc line {n}: not an answer header or field: {line[:80]!r}")
        cur[m.group(1)] = m.group(2)
    return out


def _int(v: str) -> int:
    return int(v, 0) if v.startswith(("0x", "0X")) else int(v)


def _bool01(v: str) -> bool:
    if v not in ("0", "1"):
        raise ValueError(f"{v!r} is not 0 or 1")
    return v == "1"


def _truefalse(v: str) -> bool:
    if v not in ("true", "false"):
        raise ValueError(f"{v!r} is not true or false")
    return v == "true"


def _identity(v: str) -> str:
    if not _IDENTITY.match(v):
        raise ValueError(f"{v!r} is not a clock identity (xxxxxx.xxxx.xxxxxx)")
    return v


def _port_identity(v: str) -> str:
    if not _PORT_IDENTITY.match(v):
        raise ValueError(f"{v!r} is not a port identity (xxxxxx.xxxx.xxxxxx-n)")
    return v


def _state(v: str) -> str:
    if v not in PORT_STATES:
        raise ValueError(f"{v!r} is not a port state")
    return v


def _float(v: str) -> float:
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"{v!r} is not a finite number")
    return f


# data set -> (pmc field, record field, conversion), every one required.
FIELDS: Final[dict[str, tuple[tuple[str, str, Callable[[str], Any]], ...]]] = {
    "PORT_DATA_SET": (
        ("portState", "port_state", _state),
        ("logAnnounceInterval", "log_announce_interval", _int),
        ("logSyncInterval", "log_sync_interval", _int),
        ("delayMechanism", "delay_mechanism", _int),
        ("peerMeanPathDelay", "peer_mean_path_delay_ns", _int),
    ),
    "TIME_STATUS_NP": (
        ("master_offset", "master_offset_ns", _int),
        ("ingress_time", "ingress_ns", _int),
        ("gmPresent", "gm_present", _truefalse),
        ("gmIdentity", "gm_identity", _identity),
    ),
    "PARENT_DATA_SET": (
        ("parentPortIdentity", "parent_port", _port_identity),
        ("grandmasterPriority1", "gm_priority1", _int),
        ("gm.ClockClass", "gm_clock_class", _int),
        ("gm.ClockAccuracy", "gm_clock_accuracy", _int),
        ("gm.OffsetScaledLogVariance", "gm_variance", _int),
        ("grandmasterPriority2", "gm_priority2", _int),
        ("grandmasterIdentity", "parent_gm_identity", _identity),
    ),
    "CURRENT_DATA_SET": (
        ("stepsRemoved", "steps_removed", _int),
        ("offsetFromMaster", "offset_from_master_ns", _float),
        ("meanPathDelay", "mean_path_delay_ns", _float),
    ),
    "TIME_PROPERTIES_DATA_SET": (
        ("currentUtcOffset", "utc_offset", _int),
        ("leap61", "leap61", _bool01),
        ("leap59", "leap59", _bool01),
        ("currentUtcOffsetValid", "utc_offset_valid", _bool01),
        ("ptpTimescale", "ptp_timescale", _bool01),
        ("timeTraceable", "time_traceable", _bool01),
        ("frequencyTraceable", "frequency_traceable", _bool01),
        ("timeSource", "time_source", _int),
    ),
}


def record_fields(answers: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The record fields of pmc's answers; PmcError names a missing answer or field, or the
    field whose value does not convert."""
    out: dict[str, Any] = {}
    for ds in DATASETS:
        got = answers.get(ds)
        if got is None:
            raise PmcError(f"no answer for GET {ds}")
        for name, key, conv in FIELDS[ds]:
            v = got.get(name)
            if v is None:
                raise PmcError(f"{ds}.{name}: missing")
            try:
                out[key] = conv(v)
            except ValueError as e:
                raise PmcError(f"{ds}.{name}: {e}") from None
    return out


def pmc_commands() -> list[str]:
    return [f"GET {ds}" for ds in DATASETS]


def normalize_identity(v: str) -> str:
    """A clock identity as ptp4l prints it (`xxxxxx.xxxx.xxxxxx`, lower case) from that form or
    from 16 hex digits with or without `:`/`-` separators. ValueError otherwise."""
    s = v.strip().lower()
    if _IDENTITY.match(s):
        return s
    h = re.sub(r"[:\-.]", "", s)
    if not re.fullmatch(r"[0-9a-f]{16}", h):
        raise ValueError(f"{v!r} is not a clock identity (16 hex digits, e.g. 001122.fffe.334455)")
    return f"{h[:6]}.{h[6:10]}.{h[10:]}"
