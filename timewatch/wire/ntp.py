"""The engine's NTP packet codec (RFC 5905 section 7.3): the 48-byte header, exact to the bit.

The engine decodes `pkt_hex` itself to check a record against the reply it came from. Integer
code on one `struct` format, not ntplib's `NTPPacket.from_data`: ntplib turns the 64-bit
timestamps into floats (about 0.5 us resolution in this era), so the echoed origin could not be
compared bit for bit with our transmit timestamp (docs/ntp.md says more). The tests check this
codec against ntplib on every field ntplib decodes exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from mypy_extensions import i64

# Seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (RFC 5905 figure 4).
NTP_UNIX_DELTA_S: Final = 2_208_988_800
# Length of an NTP era: 2^32 seconds (RFC 5905 section 6).
NTP_ERA_S: Final = 1 << 32
_NS: Final = 1_000_000_000
_ERA_NS: Final = NTP_ERA_S * _NS
_HALF_ERA_NS: Final = _ERA_NS // 2
_NTP_UNIX_DELTA_NS: Final = NTP_UNIX_DELTA_S * _NS
# An NTP header without extension fields or MAC (RFC 5905 figure 8).
PACKET_LEN: Final = 48
# li/vn/mode, stratum, poll, precision, root delay, root dispersion, refid, 4 timestamps.
_HEADER: Final = struct.Struct("!BBbbII4sQQQQ")
# The same for `unpack_hex`: the reference timestamp skipped, the receive and transmit timestamps
# as their seconds and fraction (32 bits each: no big integers to convert them).
_HEADER_HALVES: Final = struct.Struct("!BBbbII4s8xQIIII")


class PacketError(ValueError):
    """Bytes that are not an NTP header."""


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """An NTP header; timestamps are the raw 64-bit NTP-format integers (era not resolved)."""

    leap: int
    version: int
    mode: int
    stratum: int
    poll: int
    precision: int
    root_delay_raw: int  # NTP short format: 16.16 fixed-point seconds
    root_dispersion_raw: int  # NTP short format: 16.16 fixed-point seconds
    refid_raw: bytes
    ref_ts: int
    org_ts: int
    rec_ts: int
    xmt_ts: int

    @property
    def root_delay_s(self) -> float:
        return self.root_delay_raw / 65536.0

    @property
    def root_dispersion_s(self) -> float:
        return self.root_dispersion_raw / 65536.0

    @property
    def refid(self) -> str:
        return refid_text(self.stratum, self.refid_raw)

    def encode(self) -> bytes:
        return _HEADER.pack((self.leap << 6) | (self.version << 3) | self.mode, self.stratum,
                            self.poll, self.precision, self.root_delay_raw,
                            self.root_dispersion_raw, self.refid_raw, self.ref_ts, self.org_ts,
                            self.rec_ts, self.xmt_ts)


def decode(data: bytes) -> NtpPacket:
    """Decode an NTP header; bytes after the first 48 (extension fields, MAC) are ignored."""
    if len(data) < PACKET_LEN:
        raise PacketError(f"{len(data)} bytes, an NTP header has {PACKET_LEN}")
    lvm, stratum, poll, prec, rd, rdisp, refid, ref, org, rec, xmt = _HEADER.unpack_from(data)
    return NtpPacket(lvm >> 6, (lvm >> 3) & 7, lvm & 7, stratum, poll, prec, rd, rdisp, refid,
                     ref, org, rec, xmt)


def unpack_hex(pkt_hex: str
               ) -> tuple[int, int, int, int, int, int, bytes, int, int, int, int, int]:
    """The raw header fields of a hex packet, without building an NtpPacket (the engine's hot
    path): li_vn_mode, stratum, poll, precision, root delay, root dispersion (16.16), refid,
    origin timestamp, receive and transmit timestamps as seconds and fraction each (for
    `ntp_parts_to_unix_ns`, no big integers)."""
    try:
        data = bytes.fromhex(pkt_hex)
    except ValueError as e:
        raise PacketError(f"pkt_hex is not hexadecimal ({e})") from None
    if len(data) < PACKET_LEN:
        raise PacketError(f"{len(data)} bytes, an NTP header has {PACKET_LEN}")
    return _HEADER_HALVES.unpack_from(data)  # type: ignore[return-value]


def decode_hex(pkt_hex: str) -> NtpPacket:
    try:
        data = bytes.fromhex(pkt_hex)
    except ValueError as e:
        raise PacketError(f"pkt_hex is not hexadecimal ({e})") from None
    return decode(data)


def refid_text(stratum: int, raw: bytes) -> str:
    """The refid as docs/trace-format.md writes it: printable ASCII for stratum 0/1 (a reference or
    kiss code, NULs dropped), a dotted quad otherwise."""
    if stratum <= 1:
        return "".join(chr(b) for b in raw.rstrip(b"\0") if 32 <= b < 127)
    return ".".join(str(b) for b in raw)


def ntp_to_unix_ns(ts: int, near_ns: int) -> int:
    """NTP 64-bit timestamp -> Unix ns (fraction rounded), in the era nearest to `near_ns`."""
    return ntp_parts_to_unix_ns(ts >> 32, ts & 0xFFFF_FFFF, near_ns)


def ntp_parts_to_unix_ns(sec: i64, frac: i64, near_ns: int) -> int:
    """`ntp_to_unix_ns` of the timestamp whose seconds and fraction are sec and frac (32-bit
    fields). i64: compiled, native 64-bit arithmetic (every value here fits in it), where an
    int multiplied past 2^30 takes mypyc's big-integer path (1,500 -> ~100 instructions)."""
    ns: int = (sec - NTP_UNIX_DELTA_S) * _NS + ((frac * _NS + (1 << 31)) >> 32)
    d = near_ns - ns
    if -_HALF_ERA_NS < d < _HALF_ERA_NS:  # the usual case: round(d / _ERA_NS) is 0
        return ns
    return ns + round(d / _ERA_NS) * _ERA_NS


def unix_ns_to_ntp(ns: int) -> int:
    """Unix ns -> NTP 64-bit timestamp (era folded, fraction rounded)."""
    sec, rem = divmod(ns, _NS)
    frac = ((rem << 32) + _NS // 2) // _NS
    if frac >> 32:  # rounded up to the next second
        sec, frac = sec + 1, 0
    return (((sec + NTP_UNIX_DELTA_S) % NTP_ERA_S) << 32) | frac


def is_ntp_zero(unix_ns: int) -> bool:
    """True when a Unix time is an NTP timestamp of 0 ("not set", RFC 5905) in some era."""
    return (unix_ns + _NTP_UNIX_DELTA_NS) % _ERA_NS == 0


def short_raw(seconds: float) -> int:
    """Seconds -> NTP short format (16.16), saturated to the field."""
    return max(0, min(0xFFFF_FFFF, round(seconds * 65536)))
