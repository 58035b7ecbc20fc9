"""`kind = "ptp"`: a PTP (IEEE 1588) domain watched through timewatch's own passive ptp4l
(docs/ptp.md)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from ..ptpmgmt import PROFILES, TIMESTAMPING_CHOICES, Ptp, normalize_identity
from ..records import SourceInfo
from . import Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig


def _identities(v: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(x, str) for x in v):
        raise ValueError(f"must be a list of clock identities (strings), got {v!r}")
    return tuple(normalize_identity(x) for x in v)


def _ipv4s(v: list[Any]) -> tuple[str, ...]:
    try:
        return tuple(str(ipaddress.IPv4Address(x)) for x in v)
    except (ValueError, TypeError):
        raise ValueError(f"must be a list of IPv4 addresses, got {v!r}") from None


def describe(s: SourceConfig) -> str:
    o = s.options
    where = o["interface"] + (f" (network namespace {o['netns']})" if o.get("netns") else "")
    domain = o["domain"] if o.get("domain") is not None else PROFILES[o["profile"]]["domain"]
    gms = o.get("grandmasters")
    return (f"ptp4l on {where}, profile {o['profile']}, domain {domain}, "
            f"{o['timestamping']} timestamping, poll {s.poll_s:g} s, "
            + (f"grandmasters {', '.join(gms)}" if gms else "any grandmaster"))


def infos(s: SourceConfig) -> dict[str, SourceInfo]:
    return {s.id: SourceInfo("ptp", s.group, poll_s=s.poll_s,
                             grandmasters=s.options.get("grandmasters"))}


KIND = register(Kind(
    name="ptp",
    stability=True,  # its offsets are steady (sub-us to us): the report's ADEV/TDEV/MTIE apply
    reader="timewatch.sources.ptp:PtpReader",
    tracker="timewatch.engine.ptp:PtpTracker",
    keys={"interface": Key(str, required=True),
          "profile": Key(str, "default", choices=tuple(PROFILES)),
          "domain": Key(int, lo=0, hi=255),
          "timestamping": Key(str, "auto", choices=TIMESTAMPING_CHOICES),
          "poll_s": Key(float, 1.0, lo=0.25, hi=64),
          "grandmasters": Key(list, parse=_identities),
          "netns": Key(str),
          "unicast_masters": Key(list, parse=_ipv4s)},
    describe=describe,
    infos=infos,
    doctor="timewatch.sources.ptp:doctor_checks",
    records=(Ptp,),
))
