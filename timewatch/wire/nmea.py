"""NMEA 0183 decoding: framing and checksum, then we type-check every field we use.

A well-formed sentence of a type we use is split here (`_split`: the fields pynmea2 would give
it, a fifth of pynmea2's cost); everything else goes to pynmea2, which frames it, checks the
checksum and says what is wrong. pynmea2 hands back the raw string when a conversion fails, so
this module never uses its converting attributes: it reads `msg.data` (the raw fields), and
converts each field it needs itself, naming the field when one is wrong. One decode error type
(`NmeaError`) with a `reason`; sentence types and talkers we do not use are `Unsupported` (not
an error: receivers send many).

Times: `tod_ms` is milliseconds since UTC midnight; second 60 (a leap second) is kept as such
(23:59:60.000 -> 86_400_000), never folded into the next second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple

import pynmea2

# Talkers of GNSS receivers (NMEA 0183 4.11): GPS, combined GNSS, GLONASS, Galileo, BeiDou (GB
# and the older BD), QZSS, NavIC; and IN, integrated navigation (the fix of a GNSS/inertial
# receiver, e.g. $INRMC, $INGGA).
TALKERS: Final = frozenset({"GP", "GN", "GL", "GA", "GB", "BD", "GQ", "GI", "IN"})
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


def _int(v: str, name: str, lo: float, hi: float) -> int | None:
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


# -- sentence layouts -------------------------------------------------------------------------
# As pyubx2 describes UBX payloads (ubxtypes_get.py), a table per sentence type says where each
# field is, how it reads and its range; one decoder (`_walk`) reads every sentence from its
# table. Positions count from the first field after the address (`$GPRMC,` -> 0). Rows are read
# in table order and the first bad field is the error, so a row that depends on another comes
# after it (POSITION after the row that says whether the fix is valid).


class Field(NamedTuple):
    """One row of a layout: a field of a sentence, or a fixed group of fields."""

    name: str  # what an error calls it (pynmea2's attribute names)
    pos: int  # position in the sentence's data
    type: str  # how it reads and what it fills in: one of the types below
    lo: float = 0  # INT, FLOAT, PRN, QUALITY: the range of a value
    hi: float = 0
    into: str = ""  # INT, FLOAT: the Sentence field it fills
    parts: tuple[Field, ...] = ()  # DMY, SATS: the group's fields (pos within the group)


# Field types and what they fill in.
TIME: Final = "time"  # hhmmss[.sss] UTC -> tod_ms, sec60
STATUS: Final = "status"  # A valid, V (or the N some receivers send) not -> status_valid
QUALITY: Final = "quality"  # GGA fix quality -> quality, status_valid (quality > 0)
MODE: Final = "mode"  # mode indicator letter(s) -> mode
MODES: Final = "modes"  # one mode letter per constellation -> mode, status_valid (any not N)
POSITION: Final = "position"  # 4 fields: lat (ddmm.mm), lat_dir (N/S), lon (dddmm.mm), lon_dir
#   (E/W) -> lat_deg, lon_deg; receivers without a fix send placeholders (36000.0000,N,...), so a
#   bad position is malformed only when the fix does not say it is invalid
DDMMYY: Final = "ddmmyy"  # a date -> date, or date_error when it is not one (rollover bugs)
DMY: Final = "dmy"  # day, month, year (the parts) -> date, or date_error when not a date
INT: Final = "int"  # an integer -> the Sentence field `into`
FLOAT: Final = "float"  # a number -> the Sentence field `into`
PRN: Final = "prn"  # a satellite id, added to prns_used when present
SATS: Final = "sats"  # repeated groups of the 4 parts (prn of up to 3 digits, elevation, azimuth,
#   C/N0) to the end, where NMEA 4.10+ adds a signal id -> sats; "<name>_<k>" names group k's
#   numbers when one of them is not a number
TEXT: Final = "text"  # this field and every one after it, commas kept -> text

LAYOUTS: Final[dict[str, tuple[Field, ...]]] = {
    "RMC": (Field("status", 1, STATUS), Field("lat", 2, POSITION), Field("time", 0, TIME),
            Field("mode", 11, MODE), Field("date", 8, DDMMYY)),
    "GGA": (Field("quality", 5, QUALITY, 0, 9), Field("lat", 1, POSITION), Field("time", 0, TIME),
            Field("num_sats", 6, INT, 0, 999, "sats_used"),
            Field("altitude", 8, FLOAT, -10_000.0, 1e7, "alt_m")),
    "GNS": (Field("mode", 5, MODES), Field("lat", 1, POSITION), Field("time", 0, TIME),
            Field("num_sats", 6, INT, 0, 999, "sats_used"),
            Field("altitude", 8, FLOAT, -10_000.0, 1e7, "alt_m")),
    "GLL": (Field("status", 5, STATUS), Field("lat", 0, POSITION), Field("time", 4, TIME),
            Field("mode", 6, MODE)),
    "ZDA": (Field("date", 1, DMY, parts=(Field("day", 0, INT, 0, 31),
                                         Field("month", 1, INT, 0, 12),
                                         Field("year", 2, INT, 0, 9999))),
            Field("time", 0, TIME)),
    "GST": (Field("time", 0, TIME),),
    "GSA": (Field("fix_type", 1, INT, 1, 3, "fix_type"),
            *(Field(f"sv_id{k:02d}", 1 + k, PRN, 0, 999) for k in range(1, 13))),
    "GSV": (Field("num_messages", 0, INT, 0, 99, "gsv_total"),
            Field("msg_num", 1, INT, 0, 99, "gsv_num"),
            Field("num_sv_in_view", 2, INT, 0, 999, "in_view"),
            Field("sv", 3, SATS, parts=(Field("sv_prn_num", 0, INT, 0, 999),
                                        Field("elevation_deg", 1, FLOAT, -90.0, 90.0),
                                        Field("azimuth", 2, FLOAT, 0.0, 360.0),
                                        Field("snr", 3, FLOAT, 0.0, 99.0)))),
    "TXT": (Field("text", 3, TEXT),),
}
SUPPORTED: Final = frozenset(LAYOUTS)
# Sentences that carry a UTC time of day: they label an epoch.
LABELLED: Final = frozenset(k for k, rows in LAYOUTS.items() if any(f.type == TIME for f in rows))

# -- the decoder walking a layout: a Sentence filled in as a list, one reader per field type --

_SLOT: Final = {name: k for k, name in enumerate(Sentence._fields)}
_TOD: Final = _SLOT["tod_ms"]
_SEC60: Final = _SLOT["sec60"]
_DATE: Final = _SLOT["date"]
_DATE_ERROR: Final = _SLOT["date_error"]
_VALID: Final = _SLOT["status_valid"]
_MODE: Final = _SLOT["mode"]
_QUALITY: Final = _SLOT["quality"]
_LAT: Final = _SLOT["lat_deg"]
_LON: Final = _SLOT["lon_deg"]
_PRNS: Final = _SLOT["prns_used"]
_SATS: Final = _SLOT["sats"]
_TEXT: Final = _SLOT["text"]
_BLANK: Final = tuple(Sentence("", ""))[2:]  # every field after talker and kind, as defaulted


def _read_time(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    x = _field(d, f.pos)
    v[_TOD] = parse_tod_ms(x, f.name)
    v[_SEC60] = x[4:6] == "60"


def _read_status(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    v[_VALID] = _status(_field(d, f.pos), f.name)


def _read_quality(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    q = _int(_field(d, f.pos), f.name, f.lo, f.hi)
    v[_QUALITY] = q
    v[_VALID] = None if q is None else q > 0


def _read_mode(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    v[_MODE] = _mode(_field(d, f.pos), f.name)


def _read_modes(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    mode = _mode(_field(d, f.pos), f.name)
    v[_MODE] = mode
    v[_VALID] = None if mode is None else any(c != "N" for c in mode)


def _read_position(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    i = f.pos
    try:
        v[_LAT] = _latlon(_field(d, i), _field(d, i + 1), "lat", 2)
        v[_LON] = _latlon(_field(d, i + 2), _field(d, i + 3), "lon", 3)
    except NmeaError:
        if v[_VALID] is not False:
            raise
        v[_LAT] = v[_LON] = None


def _read_ddmmyy(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    v[_DATE], v[_DATE_ERROR] = _rmc_date(_field(d, f.pos))


def _read_dmy(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    raw = [_field(d, f.pos + p.pos) for p in f.parts]
    day, month, year = [_int(x, p.name, p.lo, p.hi) for x, p in zip(raw, f.parts, strict=True)]
    if day is None or month is None or year is None:
        return
    if year >= 1900 and 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month):
        v[_DATE] = (year, month, day)
    else:
        v[_DATE_ERROR] = ",".join(raw)


def _read_int(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    v[slot] = _int(_field(d, f.pos), f.name, f.lo, f.hi)


def _read_float(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    v[slot] = _float(_field(d, f.pos), f.name, f.lo, f.hi)


def _read_prn(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    p = _int(_field(d, f.pos), f.name, f.lo, f.hi)
    if p is not None:
        v[_PRNS] += (p,)


def _read_sats(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    prn_f, el_f, az_f, cn0_f = f.parts
    talker = v[0]
    n = len(d) - f.pos
    if n % 4 == 1:  # NMEA 4.10+: a signal id ends the sentence
        n -= 1
    sats = []
    for k in range(n // 4):  # the hot loop of decoding: the checks of _int/_float, inlined
        i = f.pos + 4 * k
        p, e, a, c = d[i], d[i + 1], d[i + 2], d[i + 3]
        if p == "":
            continue
        if not (p.isascii() and p.isdigit()) or len(p) > 3:
            raise _bad(f"{prn_f.name}_{k + 1}", p)
        try:
            el = float(e) if e else None
            az = float(a) if a else None
            cn0 = float(c) if c else None
        except ValueError:
            raise _bad(f"{f.name}_{k + 1}", f"{e},{a},{c}") from None
        if el is not None and not el_f.lo <= el <= el_f.hi:
            raise _bad(f"{el_f.name}_{k + 1}", e)
        if az is not None and not az_f.lo <= az <= az_f.hi:
            raise _bad(f"{az_f.name}_{k + 1}", a)
        if cn0 is not None and not cn0_f.lo <= cn0 <= cn0_f.hi:
            raise _bad(f"{cn0_f.name}_{k + 1}", c)
        prn = int(p)
        if not prn_f.lo <= prn <= prn_f.hi:
            raise _bad(f"{prn_f.name}_{k + 1}", p)
        # tuple.__new__: what SatView(...) does, without the Python frame of its __new__
        sats.append(tuple.__new__(SatView, (talker + str(prn), prn, el, az, cn0)))
    v[_SATS] = tuple(sats)


def _read_text(d: list[str], f: Field, slot: int, v: list[Any]) -> None:
    v[_TEXT] = ",".join(d[f.pos:]) if len(d) > f.pos else ""


Reader = Callable[[list[str], Field, int, list[Any]], None]
_READERS: Final[dict[str, Reader]] = {
    TIME: _read_time, STATUS: _read_status, QUALITY: _read_quality, MODE: _read_mode,
    MODES: _read_modes, POSITION: _read_position, DDMMYY: _read_ddmmyy, DMY: _read_dmy,
    INT: _read_int, FLOAT: _read_float, PRN: _read_prn, SATS: _read_sats, TEXT: _read_text}
# Each layout as (reader, row, Sentence slot of `into` or -1), built once.
_PLANS: Final[dict[str, tuple[tuple[Reader, Field, int], ...]]] = {
    kind: tuple((_READERS[f.type], f, _SLOT.get(f.into, -1)) for f in rows)
    for kind, rows in LAYOUTS.items()}


def _walk(talker: str, kind: str, d: list[str], plan: tuple[tuple[Reader, Field, int], ...]
          ) -> Sentence:
    v: list[Any] = [talker, kind, *_BLANK]
    for read, f, slot in plan:
        read(d, f, slot, v)
    return tuple.__new__(Sentence, v)  # what Sentence._make does, without its Python frame


_HEX: Final = frozenset("0123456789ABCDEF")


def _split(s: str) -> tuple[str, str, list[str]] | None:
    """(talker, kind, fields) of `$TTKKK,...*HH` when it is a sentence we use, all ASCII, with
    its checksum in capitals and the right one: what pynmea2's parse(s, check=True) gives it
    (tests/wire/test_nmea_fast.py holds the two equal over the receiver corpus). None for
    anything else, which pynmea2 then parses and names what is wrong with it."""
    n = len(s)
    if n < 10 or s[n - 3] != "*" or s[n - 2] not in _HEX or s[n - 1] not in _HEX \
            or s[6] != ",":
        return None
    talker, kind = s[1:3], s[3:6]
    if talker not in TALKERS or kind not in SUPPORTED:
        return None
    body = s[1:n - 3]
    if "*" in body or not body.isascii():
        return None
    x = 0
    raw = body.encode("ascii")
    for i in range(len(raw)):  # indexed: a third of the cost of iterating the bytes compiled
        x ^= raw[i]
    if x != int(s[n - 2:], 16):
        return None
    return talker, kind, s[7:n - 3].split(",")


def _by_pynmea2(s: str) -> tuple[str, str, list[str]]:
    """(talker, kind, fields) as pynmea2 parses them, for what `_split` does not take: the
    error naming what is wrong, Unsupported, or a sentence we use in an unusual form (lowercase
    checksum, non-ASCII text)."""
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
    if not isinstance(kind, str) or kind not in SUPPORTED or talker not in TALKERS:
        raise Unsupported(s[1:6])
    data = msg.data  # str.split() of the sentence: a list of str
    if type(data) is not list:
        raise NmeaError("framing", "no field list")
    return talker, kind, data


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
    talker, kind, data = _split(s) or _by_pynmea2(s)
    return _walk(talker, kind, data, _PLANS[kind])


def checksum(body: str) -> str:
    """The two hex digits of the XOR of the characters between '$' and '*'."""
    x = 0
    for c in body.encode("ascii", "replace"):
        x ^= c
    return f"{x:02X}"


def sentence(body: str) -> str:
    """`$body*HH` with the correct checksum (for simulators and tests)."""
    return f"${body}*{checksum(body)}"
