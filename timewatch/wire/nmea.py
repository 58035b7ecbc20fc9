"""NMEA 0183 decoding: pynmea2 frames and checks the checksum, we type-check every field we use.

pynmea2 hands back the raw string when a conversion fails, so this module never uses its
converting attributes: it reads `msg.data` (the raw fields) and converts each field it needs
itself, naming the field when one is wrong. One decode error type (`NmeaError`) with a `reason`;
sentence types and talkers we do not use are `Unsupported` (not an error: receivers send many).

Times: `tod_ms` is milliseconds since UTC midnight; second 60 (a leap second) is kept as such
(23:59:60.000 -> 86_400_000), never folded into the next second.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

import pynmea2

# Talkers of GNSS receivers (NMEA 0183 4.11): GPS, combined GNSS, GLONASS, Galileo, BeiDou (GB
# and the older BD), QZSS, NavIC.
TALKERS: Final = frozenset({"GP", "GN", "GL", "GA", "GB", "BD", "GQ", "GI"})
# Sentences that carry a UTC time of day (docs/gnss.md: they label an epoch).
LABELLED: Final = frozenset({"RMC", "GGA", "ZDA", "GNS", "GLL", "GST"})
SUPPORTED: Final = LABELLED | {"GSA", "GSV", "TXT"}
# Longest line we try to decode: NMEA says 82 characters; real receivers (u-blox high precision,
# GSV with signal ids, proprietary) go beyond, none of the corpus beyond ~200.
MAX_LINE: Final = 512

Reason = Literal["checksum", "framing", "field"]


class NmeaError(ValueError):
    """A sentence that cannot be used: bad checksum, not NMEA framing, or a malformed field."""

    def __init__(self, reason: Reason, what: str):
        super().__init__(f"{reason}: {what}")
        self.reason: Reason = reason
        self.what = what


class Unsupported(Exception):
    """A well-formed sentence this decoder does not use (other talkers, VTG, proprietary...)."""


class SatView(NamedTuple):
    """One satellite of a GSV sentence. `key` is talker + PRN (e.g. "GP12"). A NamedTuple:
    immutable like the records, and cheap enough for the ~10 of them in every GSV group."""

    key: str
    prn: int
    elev_deg: float | None
    az_deg: float | None
    cn0_db_hz: float | None


class Sentence(NamedTuple):
    """The fields timewatch uses from one sentence, each already type-checked (None = empty).

    A NamedTuple rather than a frozen dataclass: as immutable, and its construction costs a
    fifth (a frozen dataclass sets each of these 25 fields through object.__setattr__), which
    decides whether decoding keeps up with 50,000 sentences/s."""

    talker: str
    kind: str
    tod_ms: int | None = None  # UTC time of day (ms since midnight; second 60 allowed)
    sec60: bool = False  # the time's second is 60 (a leap second)
    date: tuple[int, int, int] | None = None  # (year, month, day)
    date_error: str | None = None  # the date field was present but not a date (rollover bugs)
    status_valid: bool | None = None  # RMC/GLL status A/V, GGA quality > 0, GNS mode
    mode: str | None = None  # RMC/GLL/GNS mode indicator(s): A D E F M N P R S
    quality: int | None = None  # GGA quality (0 none, 1 GPS, 2 DGPS, 4/5 RTK, 6 DR, 8 simulator)
    fix_type: int | None = None  # GSA: 1 none, 2 2D, 3 3D
    lat_deg: float | None = None
    lon_deg: float | None = None
    alt_m: float | None = None
    sats_used: int | None = None  # GGA/GNS: satellites used in the fix
    prns_used: tuple[int, ...] = ()  # GSA
    gsv_total: int | None = None  # GSV: messages in this group, this message's number
    gsv_num: int | None = None
    in_view: int | None = None  # GSV: satellites in view (this talker)
    sats: tuple[SatView, ...] = ()  # GSV
    text: str | None = None  # TXT


# -- field converters: each raises NmeaError("field", ...) naming the field ---------------------


def _digits(v: str) -> bool:
    return v.isascii() and v.isdigit()


def _bad(name: str, v: str) -> NmeaError:
    return NmeaError("field", f"{name}={v!r}")


def _int(v: str, name: str, lo: int, hi: int) -> int | None:
    if v == "":
        return None
    if not (v.isascii() and v.isdigit()):
        raise _bad(name, v)
    n = int(v)
    if not lo <= n <= hi:
        raise _bad(name, v)
    return n


def _float(v: str, name: str, lo: float, hi: float) -> float | None:
    if v == "":
        return None
    try:
        x = float(v)
    except ValueError:
        raise _bad(name, v) from None
    if not lo <= x <= hi:  # also rejects nan
        raise _bad(name, v)
    return x


def parse_tod_ms(v: str, name: str = "time") -> int | None:
    """hhmmss[.fff...] -> ms since midnight (second 60 allowed, fraction truncated to ms)."""
    if v == "":
        return None
    if len(v) < 6 or not _digits(v[:6]):
        raise _bad(name, v)
    h, m, s = int(v[0:2]), int(v[2:4]), int(v[4:6])
    if h > 23 or m > 59 or s > 60:
        raise _bad(name, v)
    ms = 0
    if len(v) > 6:
        frac = v[7:]
        if v[6] != "." or (frac and not _digits(frac)):
            raise _bad(name, v)
        if frac:
            ms = int((frac + "00")[:3])
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def _sec60(v: str) -> bool:
    return v[4:6] == "60"


def _latlon(v: str, hemi: str, name: str, deg_digits: int) -> float | None:
    """ddmm.mmmm / dddmm.mmmm plus N/S or E/W -> signed degrees."""
    if v == "":
        return None
    if len(v) < deg_digits + 2 or not _digits(v[:deg_digits]):
        raise _bad(name, v)
    minutes = _float(v[deg_digits:], name, 0.0, 60.0)
    assert minutes is not None
    deg = int(v[:deg_digits]) + minutes / 60.0
    if deg > (90.0 if deg_digits == 2 else 180.0):
        raise _bad(name, v)
    if hemi in ("N", "E"):
        return deg
    if hemi in ("S", "W"):
        return -deg
    raise _bad(name + "_dir", hemi)


def _status(v: str, name: str) -> bool | None:
    """A is valid; V (and the N some receivers send) is not."""
    if v == "":
        return None
    if len(v) != 1 or not v.isalpha():
        raise _bad(name, v)
    return v == "A"


def _position(d: list[str], i: int, valid: bool | None) -> tuple[float | None, float | None]:
    """lat, lat_dir, lon, lon_dir from field i. Receivers without a fix send placeholders (e.g.
    36000.0000,N,72000.0000,E): a wrong position is malformed only when the fix claims valid."""
    try:
        return (_latlon(_field(d, i), _field(d, i + 1), "lat", 2),
                _latlon(_field(d, i + 2), _field(d, i + 3), "lon", 3))
    except NmeaError:
        if valid is False:
            return None, None
        raise


def _mode(v: str, name: str) -> str | None:
    if v == "":
        return None
    if not (v.isascii() and v.isalpha()) or len(v) > 8:
        raise _bad(name, v)
    return v.upper()


def _rmc_date(v: str) -> tuple[tuple[int, int, int] | None, str | None]:
    """ddmmyy -> (date, None); a non-date (e.g. '2208-1' after a week rollover) -> (None, v)."""
    if v == "":
        return None, None
    if len(v) != 6 or not _digits(v):
        return None, v
    d, m, y = int(v[0:2]), int(v[2:4]), int(v[4:6])
    # Two-digit years: 80-99 are 1980-1999 (GPS began in 1980), 00-79 are 2000-2079.
    year = 1900 + y if y >= 80 else 2000 + y
    if not (1 <= m <= 12 and 1 <= d <= _days_in_month(year, m)):
        return None, v
    return (year, m, d), None


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _field(data: list[str], i: int) -> str:
    return data[i] if i < len(data) else ""


# -- per sentence type -------------------------------------------------------------------------


def _rmc(t: str, d: list[str]) -> Sentence:
    date, derr = _rmc_date(_field(d, 8))
    status = _status(_field(d, 1), "status")
    lat, lon = _position(d, 2, status)
    return Sentence(t, "RMC", tod_ms=parse_tod_ms(_field(d, 0)), sec60=_sec60(_field(d, 0)),
                    date=date, date_error=derr, status_valid=status,
                    mode=_mode(_field(d, 11), "mode"), lat_deg=lat, lon_deg=lon)


def _gga(t: str, d: list[str]) -> Sentence:
    q = _int(_field(d, 5), "quality", 0, 9)
    valid = None if q is None else q > 0
    lat, lon = _position(d, 1, valid)
    return Sentence(t, "GGA", tod_ms=parse_tod_ms(_field(d, 0)), sec60=_sec60(_field(d, 0)),
                    status_valid=valid, quality=q, lat_deg=lat, lon_deg=lon,
                    sats_used=_int(_field(d, 6), "num_sats", 0, 999),
                    alt_m=_float(_field(d, 8), "altitude", -10_000.0, 1e7))


def _gns(t: str, d: list[str]) -> Sentence:
    mode = _mode(_field(d, 5), "mode")
    # One mode character per constellation: the fix is valid if any of them is not N.
    valid = None if mode is None else any(c != "N" for c in mode)
    lat, lon = _position(d, 1, valid)
    return Sentence(t, "GNS", tod_ms=parse_tod_ms(_field(d, 0)), sec60=_sec60(_field(d, 0)),
                    status_valid=valid, mode=mode, lat_deg=lat, lon_deg=lon,
                    sats_used=_int(_field(d, 6), "num_sats", 0, 999),
                    alt_m=_float(_field(d, 8), "altitude", -10_000.0, 1e7))


def _gll(t: str, d: list[str]) -> Sentence:
    status = _status(_field(d, 5), "status")
    lat, lon = _position(d, 0, status)
    return Sentence(t, "GLL", tod_ms=parse_tod_ms(_field(d, 4)), sec60=_sec60(_field(d, 4)),
                    status_valid=status, mode=_mode(_field(d, 6), "mode"),
                    lat_deg=lat, lon_deg=lon)


def _zda(t: str, d: list[str]) -> Sentence:
    day = _int(_field(d, 1), "day", 0, 31)
    month = _int(_field(d, 2), "month", 0, 12)
    year = _int(_field(d, 3), "year", 0, 9999)
    date: tuple[int, int, int] | None = None
    derr: str | None = None
    if day is not None and month is not None and year is not None:
        if year >= 1900 and 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month):
            date = (year, month, day)
        else:
            derr = f"{_field(d, 1)},{_field(d, 2)},{_field(d, 3)}"
    return Sentence(t, "ZDA", tod_ms=parse_tod_ms(_field(d, 0)), sec60=_sec60(_field(d, 0)),
                    date=date, date_error=derr)


def _gst(t: str, d: list[str]) -> Sentence:
    return Sentence(t, "GST", tod_ms=parse_tod_ms(_field(d, 0)), sec60=_sec60(_field(d, 0)))


def _gsa(t: str, d: list[str]) -> Sentence:
    fix = _int(_field(d, 1), "fix_type", 1, 3)
    prns = []
    for i in range(2, min(14, len(d))):
        p = _int(d[i], f"sv_id{i - 1:02d}", 0, 999)
        if p is not None:
            prns.append(p)
    return Sentence(t, "GSA", fix_type=fix, prns_used=tuple(prns))


def _gsv(t: str, d: list[str]) -> Sentence:
    total = _int(_field(d, 0), "num_messages", 0, 99)
    num = _int(_field(d, 1), "msg_num", 0, 99)
    in_view = _int(_field(d, 2), "num_sv_in_view", 0, 999)
    n = len(d) - 3
    if n % 4 == 1:  # NMEA 4.10+: a signal id ends the sentence
        n -= 1
    sats = []
    for k in range(n // 4):  # the hot loop of decoding: the checks of _int/_float, inlined
        i = 3 + 4 * k
        p, e, a, c = d[i], d[i + 1], d[i + 2], d[i + 3]
        if p == "":
            continue
        if not (p.isascii() and p.isdigit()) or len(p) > 3:
            raise _bad(f"sv_prn_num_{k + 1}", p)
        try:
            el = float(e) if e else None
            az = float(a) if a else None
            cn0 = float(c) if c else None
        except ValueError:
            raise _bad(f"sv_{k + 1}", f"{e},{a},{c}") from None
        if el is not None and not -90.0 <= el <= 90.0:
            raise _bad(f"elevation_deg_{k + 1}", e)
        if az is not None and not 0.0 <= az <= 360.0:
            raise _bad(f"azimuth_{k + 1}", a)
        if cn0 is not None and not 0.0 <= cn0 <= 99.0:
            raise _bad(f"snr_{k + 1}", c)
        prn = int(p)
        sats.append(SatView(t + str(prn), prn, el, az, cn0))
    return Sentence(t, "GSV", gsv_total=total, gsv_num=num, in_view=in_view, sats=tuple(sats))


def _txt(t: str, d: list[str]) -> Sentence:
    return Sentence(t, "TXT", text=",".join(d[3:]) if len(d) > 3 else "")


_DECODERS: Final = {"RMC": _rmc, "GGA": _gga, "GNS": _gns, "GLL": _gll, "ZDA": _zda, "GST": _gst,
             "GSA": _gsa, "GSV": _gsv, "TXT": _txt}


def decode(line: str) -> Sentence:
    """Decode one sentence as received (without CR LF).

    Raises NmeaError (bad checksum, missing checksum, not NMEA, malformed field) or Unsupported
    (a well-formed sentence of a type or talker we do not use); nothing else.
    """
    if len(line) > MAX_LINE:
        raise NmeaError("framing", f"line of {len(line)} characters (limit {MAX_LINE})")
    s = line.strip()
    if not s.startswith("$"):
        if s.startswith("!"):  # AIS and other encapsulated sentences
            raise Unsupported(s[:6])
        raise NmeaError("framing", "does not start with '$'")
    try:
        msg = pynmea2.NMEASentence.parse(s, check=True)
    except pynmea2.ChecksumError as e:
        raise NmeaError("checksum", str(e.args[0][0]) if e.args else "checksum") from None
    except pynmea2.SentenceTypeError:
        raise Unsupported(s[1:6]) from None
    except (pynmea2.ParseError, ValueError, TypeError, IndexError) as e:
        raise NmeaError("framing", f"not an NMEA sentence ({type(e).__name__})") from None
    talker = getattr(msg, "talker", None)
    kind = getattr(msg, "sentence_type", None)
    fn = _DECODERS.get(kind) if isinstance(kind, str) else None
    if fn is None or talker not in TALKERS:
        raise Unsupported(s[1:6])
    data = msg.data  # str.split() of the sentence: a list of str
    if type(data) is not list:
        raise NmeaError("framing", "no field list")
    return fn(talker, data)


def checksum(body: str) -> str:
    """The two hex digits of the XOR of the characters between '$' and '*'."""
    x = 0
    for c in body.encode("ascii", "replace"):
        x ^= c
    return f"{x:02X}"


def sentence(body: str) -> str:
    """`$body*HH` with the correct checksum (for simulators and tests)."""
    return f"${body}*{checksum(body)}"
