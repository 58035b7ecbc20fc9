"""`kind = "nts"`: one NTP server polled with Network Time Security (RFC 8915, docs/nts.md).

A kind of its own rather than an `nts = true` option of the `ntp` kind: its keys mean other
things (`port` is the NTS-KE port, 4460; the NTPv4 server and port come from the key
establishment), so each kind's keys are checked on their own without "only when nts" rules; the
trace header's kind says that the source is authenticated, so a replay knows it without the
config and the engine expects every reply authenticated (anything else is a downgrade); and the
reader and tracker are the NTP ones with NTS added (`sources.ntp.NtsReader`,
`engine.ntp.NtsTracker`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..records import NtsKe
from . import PORT, Key, Kind, register

if TYPE_CHECKING:
    from ..config import SourceConfig

NTS_KE_PORT = 4460


def parse_ca_file(v: str) -> str:
    """`ca_file`: a readable PEM file with at least one certificate."""
    try:
        data = Path(v).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read CA file {v}: {e.strerror or e}") from None
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{v} holds no PEM certificate (a CA file is PEM: '-----BEGIN "
                         f"CERTIFICATE-----')") from None
    return v


def parse_name(v: str) -> str:
    if not v or any(c.isspace() for c in v):
        raise ValueError(f"must be a host name or address without spaces, got {v!r}")
    return v


def describe(s: SourceConfig) -> str:
    name = s.options.get("server_name") or s.server
    ca = s.options.get("ca_file") or "the system's CA store"
    return (f"NTS-KE {s.server}:{s.port or NTS_KE_PORT} (certificate for {name}, trusted CAs "
            f"from {ca}), poll {s.poll_s:g} s")


KIND = register(Kind(
    name="nts",
    stability=True,
    authenticated=True,
    reader="timewatch.sources.ntp:NtsReader",
    tracker="timewatch.engine.ntp:NtsTracker",
    keys={"server": Key(str, required=True, parse=parse_name), "port": PORT,
          "ntp_port": PORT, "server_name": Key(str, parse=parse_name),
          "ca_file": Key(str, parse=parse_ca_file),
          "poll_s": Key(float, 64.0, lo=1, hi=1024)},
    describe=describe,
    doctor="timewatch.doctor:check_nts",
    records=(NtsKe,),
))
