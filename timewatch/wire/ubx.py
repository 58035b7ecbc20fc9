"""u-blox UBX decoding with pyubx2: the messages timewatch uses, type-checked, as `UbxInfo`.

The trace keeps each frame as hex (`ubx` record); this module re-decodes it, so a replay judges
the raw evidence with the current code. Checksums are verified (pyubx2 VALCKSUM). One error
type (`UbxError`); frames of message types we do not use are `UbxUnsupported`.

Messages (u-blox M8/F9 interface descriptions): NAV-STATUS (fix, spoofDetState), NAV-TIMEUTC
(UTC date and time, validity), NAV-TIMELS (leap second announcement), NAV-SAT (per-satellite
C/N0, elevation, used), TIM-TP (next pulse's time, quantisation error), SEC-SIG (jamming and
spoofing states), MON-RF and MON-HW (jamming state, antenna status).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from pyubx2 import VALCKSUM, UBXReader
from pyubx2.exceptions import UBXMessageError, UBXParseError, UBXTypeError

# The messages this module decodes; others are well-formed but unused.
USED: Final = frozenset({"NAV-STATUS", "NAV-TIMEUTC", "NAV-TIMELS", "NAV-SAT", "TIM-TP", "SEC-SIG",
                  "MON-RF", "MON-HW"})
# Longest frame we accept: NAV-SAT with 255 satellites is 8 + 12 * 255 bytes plus header.
MAX_FRAME: Final = 8 + 8 + 12 * 255
# u-blox GNSS ids (NAV-SAT gnssId) -> NMEA talker, so UBX and NMEA satellites share keys.
GNSS_TALKER: Final = {0: "GP", 1: "SB", 2: "GA", 3: "GB", 5: "GQ", 6: "GL", 7: "GI"}


class UbxError(ValueError):
    """A frame that cannot be used: bad sync, length, checksum or field."""


class UbxUnsupported(Exception):
    """A valid frame of a message type we do not use."""


@dataclass(frozen=True, slots=True)
class UbxSat:
    key: str  # NMEA-style key, e.g. "GP12"
    cn0_db_hz: float
    elev_deg: float | None
    used: bool


@dataclass(frozen=True, slots=True)
class UbxInfo:
    """The fields timewatch uses from one UBX message (None where the message has no such field)."""

    identity: str
    fix_type: int | None = None  # NAV-STATUS gpsFix: 0 none, 1 DR, 2 2D, 3 3D, 4 GNSS+DR, 5 time
    fix_ok: bool | None = None
    spoofing_state: int | None = None  # 0 unknown/off, 1 none, 2 indicated, 3 affirmed/multiple
    jamming_state: int | None = None  # 0 unknown/off, 1 ok, 2 warning, 3 critical
    date: tuple[int, int, int] | None = None  # NAV-TIMEUTC
    tod_ms: int | None = None
    utc_valid: bool | None = None
    sec60: bool = False  # NAV-TIMEUTC second is 60 (a leap second)
    leap_change_s: int | None = None  # NAV-TIMELS: -1, 0, +1
    time_to_leap_s: int | None = None  # NAV-TIMELS, when valid
    current_leap_s: int | None = None
    sats: tuple[UbxSat, ...] = ()  # NAV-SAT
    qerr_ps: int | None = None  # TIM-TP quantisation error of the next pulse
    antenna_status: int | None = None  # MON-HW/MON-RF: 0 init, 1 unknown, 2 ok, 3 short, 4 open


def _int(msg: Any, name: str, lo: int, hi: int) -> int | None:
    v = getattr(msg, name, None)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise UbxError(f"{msg.identity}: field {name}={v!r}")
    return v


def _state(msg: Any, name: str) -> int | None:
    return _int(msg, name, 0, 3)


def decode_ubx(hex_: str) -> UbxInfo:
    """Decode one frame given as hex. Raises UbxError or UbxUnsupported, nothing else."""
    try:
        raw = bytes.fromhex(hex_)
    except ValueError:
        raise UbxError("not hex") from None
    if len(raw) < 8 or raw[0:2] != b"\xb5\x62":
        raise UbxError("no UBX sync or frame too short")
    if len(raw) > MAX_FRAME or int.from_bytes(raw[4:6], "little") + 8 != len(raw):
        raise UbxError(f"length field {int.from_bytes(raw[4:6], 'little')} does not match "
                       f"frame of {len(raw)} bytes")
    try:
        msg = UBXReader.parse(raw, validate=VALCKSUM)
    except (UBXParseError, UBXMessageError, UBXTypeError) as e:
        if "checksum" in str(e).lower():
            raise UbxError(f"checksum: {e}") from None
        raise UbxUnsupported(str(e)) from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        raise UbxError(f"malformed: {type(e).__name__}") from None
    ident = getattr(msg, "identity", "")
    if ident not in USED:
        raise UbxUnsupported(str(ident))
    try:
        return _DECODERS[ident](msg)
    except AttributeError as e:
        raise UbxError(f"{ident}: missing field ({e})") from None


def _nav_status(m: Any) -> UbxInfo:
    fix_ok = _int(m, "gpsFixOk", 0, 1)
    return UbxInfo("NAV-STATUS", fix_type=_int(m, "gpsFix", 0, 5),
                   fix_ok=None if fix_ok is None else bool(fix_ok),
                   spoofing_state=_state(m, "spoofDetState"))


def _nav_timeutc(m: Any) -> UbxInfo:
    y, mo, d = _int(m, "year", 1999, 2099), _int(m, "month", 1, 12), _int(m, "day", 1, 31)
    h, mi, s = _int(m, "hour", 0, 23), _int(m, "min", 0, 59), _int(m, "sec", 0, 60)
    nano = _int(m, "nano", -1_000_000_000, 1_000_000_000)
    valid = _int(m, "validUTC", 0, 1)
    date = (y, mo, d) if y is not None and mo is not None and d is not None else None
    tod = None
    if h is not None and mi is not None and s is not None:
        # The navigation epoch is within a few us of the second: round nano to the millisecond.
        tod = ((h * 60 + mi) * 60 + s) * 1000 + round((nano or 0) / 1e6)
    return UbxInfo("NAV-TIMEUTC", date=date, tod_ms=tod, sec60=s == 60,
                   utc_valid=None if valid is None else bool(valid))


def _nav_timels(m: Any) -> UbxInfo:
    valid = _int(m, "validTimeToLsEvent", 0, 1)
    return UbxInfo("NAV-TIMELS", leap_change_s=_int(m, "lsChange", -128, 127),
                   time_to_leap_s=_int(m, "timeToLsEvent", -2**31, 2**31) if valid else None,
                   current_leap_s=_int(m, "currLs", 0, 255))


def _nav_sat(m: Any) -> UbxInfo:
    n = _int(m, "numSvs", 0, 255) or 0
    sats = []
    for i in range(1, n + 1):
        sfx = f"_{i:02d}"
        gnss = getattr(m, "gnssId" + sfx, None)
        gid = {"GPS": 0, "SBAS": 1, "Galileo": 2, "BeiDou": 3, "QZSS": 5, "GLONASS": 6,
               "NavIC": 7}.get(gnss, gnss) if isinstance(gnss, str) else gnss
        sv = _int(m, "svId" + sfx, 0, 255)
        cno = _int(m, "cno" + sfx, 0, 255)
        elev = _int(m, "elev" + sfx, -90, 90)
        used = _int(m, "svUsed" + sfx, 0, 1)
        if not isinstance(gid, int) or sv is None or cno is None:
            continue
        if cno > 0:
            sats.append(UbxSat(f"{GNSS_TALKER.get(gid, f'X{gid}')}{sv}", float(cno),
                               None if elev is None else float(elev), bool(used)))
    return UbxInfo("NAV-SAT", sats=tuple(sats))


def _tim_tp(m: Any) -> UbxInfo:
    return UbxInfo("TIM-TP", qerr_ps=_int(m, "qErr", -2**31, 2**31))


def _sec_sig(m: Any) -> UbxInfo:
    jam = _state(m, "jammingState") if _int(m, "jamDetEnabled", 0, 1) else 0
    spf = _state(m, "spoofingState") if _int(m, "spfDetEnabled", 0, 1) else 0
    return UbxInfo("SEC-SIG", jamming_state=jam, spoofing_state=spf)


def _mon_rf(m: Any) -> UbxInfo:
    n = _int(m, "nBlocks", 0, 16) or 0
    states = [_state(m, f"jammingState_{i:02d}") or 0 for i in range(1, n + 1)]
    ants = [_int(m, f"antStatus_{i:02d}", 0, 255) for i in range(1, n + 1)]
    ant = next((a for a in ants if a is not None), None)
    return UbxInfo("MON-RF", jamming_state=max(states) if states else None, antenna_status=ant)


def _mon_hw(m: Any) -> UbxInfo:
    return UbxInfo("MON-HW", jamming_state=_state(m, "jammingState"),
                   antenna_status=_int(m, "aStatus", 0, 255))


_DECODERS: Final = {"NAV-STATUS": _nav_status, "NAV-TIMEUTC": _nav_timeutc, "NAV-TIMELS": _nav_timels,
             "NAV-SAT": _nav_sat, "TIM-TP": _tim_tp, "SEC-SIG": _sec_sig, "MON-RF": _mon_rf,
             "MON-HW": _mon_hw}


class Fletcher:
    """The UBX checksum (8-bit Fletcher, RFC 1146, as pyubx2's `calc_checksum`) of any span of a
    buffer that grows at its end and is consumed from its start: O(1) per span after O(1) per byte.

    With S[k] the sum of the buffer's first k bytes and T[k] = S[0] + ... + S[k], the span
    [start, end) has CK_A = S[end] - S[start] and CK_B = T[end] - T[start] - (end - start) *
    S[start], mod 256. The sums are extended (at C speed, `accumulate`) only as far as a span
    asks. This keeps the framer linear when every position of its input looks like the start
    of a long frame (repeated sync bytes): checking one candidate costs the same as any other.
    """

    def __init__(self) -> None:
        self._s: list[int] = [0]  # S[0..n]: prefix sums of the n bytes summed so far
        self._t: list[int] = [0]  # T[0..n]

    def span(self, buf: bytes | bytearray, start: int, end: int) -> tuple[int, int]:
        """(CK_A, CK_B) of buf[start:end]."""
        s, t = self._s, self._t
        n = len(s) - 1
        if end > n:
            more = accumulate(buf[n:end], initial=s[n])
            next(more)
            s.extend(more)
            more = accumulate(s[n + 1:], initial=t[n])
            next(more)
            t.extend(more)
        a = s[end] - s[start]
        b = t[end] - t[start] - (end - start) * s[start]
        return a & 0xFF, b & 0xFF

    def drop(self, n: int) -> None:
        """The buffer's first n bytes are gone."""
        s, t = self._s, self._t
        if n >= len(s) - 1:  # nothing summed is left: start again from 0
            self._s, self._t = [0], [0]
            return
        del s[:n]
        del t[:n]
        if t[-1] >= 1 << 40:  # only the sums mod 256 matter: keep the integers small
            self._s = [x & 0xFF for x in s]
            self._t = [x & 0xFF for x in t]


def checksum(body: bytes | bytearray) -> bytes:
    """CK_A, CK_B of a frame's class, id, length and payload."""
    return bytes(Fletcher().span(body, 0, len(body)))


def frame(cls: int, mid: int, payload: bytes) -> bytes:
    """A UBX frame with its Fletcher checksum (for simulators and tests)."""
    body = bytes([cls, mid]) + len(payload).to_bytes(2, "little") + payload
    return b"\xb5\x62" + body + checksum(body)
