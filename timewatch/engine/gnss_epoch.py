"""GNSS epochs: sentences and UBX messages that share one time label, assembled into what the
receiver said (time, validity, fix, position, satellites). Pure: no clock, no I/O.

An epoch (docs/gnss.md) runs from a time-labelled sentence (RMC, GGA, ZDA, GNS, GLL, GST; UBX
NAV-TIMEUTC) to the next one with a different label; sentences without a label (GSA, GSV, TXT,
other UBX) belong to the epoch in progress. The same labelled sentence twice also starts a new
epoch (a receiver repeating its label). Shared by `timewatch decode` and `GnssTracker`.
"""

from __future__ import annotations

from typing import Any, Final

from ..wire.nmea import LABELLED, NmeaError, Sentence, Unsupported, decode
from ..wire.ubx import UbxInfo
from .value import Value

NS: Final = 1_000_000_000
DAY_MS: Final = 86_400_000
# The GPS epoch: no GPS receiver can have a true date before it.
GPS_EPOCH: Final = (1980, 1, 6)
# Dates receivers report after a cold start or a week-counter wrap (corpus README, gpsd): the GPS
# epoch and the day before it, and the first GPS week rollover (1999-08-22).
DEFAULT_DATES: Final = frozenset({(1980, 1, 5), (1980, 1, 6), (1999, 8, 22)})
# A GPS week-number rollover moves the date by 1024 weeks.
ROLLOVER_S: Final = 1024 * 7 * 86_400
# u-blox spoofing/jamming states from 2 up mean "indicated"/"warning" or worse (interface desc.).
FLAG_STATE: Final = 2


class Epoch(Value):
    """What the receiver said for one time label (docs/gnss.md, `decode` output). A Value
    (engine/value.py), not a frozen dataclass: one is built per epoch, and a frozen
    dataclass's __init__ (object.__setattr__ per field) ran as Python even compiled."""

    _fields = ("tod_ms", "date", "utc_ns", "claims_valid", "valid", "fix", "lat_deg",
               "lon_deg", "alt_m", "sats_used", "sats_in_view", "cn0_db_hz", "elev_deg",
               "sentences", "bad_sentences", "anomalies", "rx_ns", "raw_ns", "index",
               "date_problem", "simulator", "leap_second", "spoofing_state", "jamming_state",
               "leap_change_s", "time_to_leap_s", "sat_sets")
    __slots__ = _fields

    def __init__(self, tod_ms: int | None, date: tuple[int, int, int] | None, utc_ns: int | None,
                 claims_valid: bool, valid: bool, fix: int, lat_deg: float | None,
                 lon_deg: float | None, alt_m: float | None, sats_used: int | None,
                 sats_in_view: int | None, cn0_db_hz: dict[str, float],
                 elev_deg: dict[str, float], sentences: int, bad_sentences: int,
                 anomalies: tuple[str, ...], rx_ns: int | None, raw_ns: int | None,
                 index: int = 0, date_problem: str | None = None, simulator: str | None = None,
                 leap_second: bool = False, spoofing_state: int | None = None,
                 jamming_state: int | None = None, leap_change_s: int | None = None,
                 time_to_leap_s: int | None = None,
                 sat_sets: dict[str, frozenset[str]] | None = None) -> None:
        self.tod_ms: Final = tod_ms  # UTC time of day of the label (second 60 kept)
        self.date: Final = date
        self.utc_ns: Final = utc_ns  # the label as Unix ns (None without date or time)
        self.claims_valid: Final = claims_valid  # the receiver claims a valid fix and time
        self.valid: Final = valid  # ... and nothing contradicts it
        self.fix: Final = fix  # 0 none, 2 2D, 3 3D
        self.lat_deg: Final = lat_deg
        self.lon_deg: Final = lon_deg
        self.alt_m: Final = alt_m
        self.sats_used: Final = sats_used
        self.sats_in_view: Final = sats_in_view
        self.cn0_db_hz: Final = cn0_db_hz  # per satellite key ("GP12")
        self.elev_deg: Final = elev_deg
        self.sentences: Final = sentences
        self.bad_sentences: Final = bad_sentences
        self.anomalies: Final = anomalies
        self.rx_ns: Final = rx_ns  # arrival of the first sentence carrying the label
        self.raw_ns: Final = raw_ns
        self.index: Final = index  # position in the stream (0 = first epoch)
        self.date_problem: Final = date_problem  # why the date is wrong (gnss.date_anomaly)
        self.simulator: Final = simulator  # why we think the output is simulated
        self.leap_second: Final = leap_second  # the label is second 60
        # u-blox: 0 off, 1 none, 2 indicated, 3 affirmed
        self.spoofing_state: Final = spoofing_state
        self.jamming_state: Final = jamming_state  # u-blox: 0 off, 1 ok, 2 warning, 3 critical
        self.leap_change_s: Final = leap_change_s  # u-blox NAV-TIMELS announcement (-1, 0, +1)
        self.time_to_leap_s: Final = time_to_leap_s
        self.sat_sets: Final = sat_sets  # talker -> tracked, from complete reports

    def to_json(self) -> dict[str, Any]:
        """The `timewatch decode` object of this epoch."""
        return {"utc": iso_ms(self.utc_ns) if self.utc_ns is not None else None,
                "valid": self.valid, "fix": self.fix,
                "lat": None if self.lat_deg is None else round(self.lat_deg, 7),
                "lon": None if self.lon_deg is None else round(self.lon_deg, 7),
                "alt_m": self.alt_m, "sats_used": self.sats_used,
                "sentences": self.sentences, "bad_sentences": self.bad_sentences,
                "anomalies": list(self.anomalies)}


def iso_ms(utc_ns: int) -> str:
    """ISO 8601 UTC with milliseconds and Z (a leap second shows as the next day's 00:00:00)."""
    ms = utc_ns // 1_000_000
    days, tod = divmod(ms, DAY_MS)
    y, mo, d = civil_from_days(days)
    sec, msec = divmod(tod, 1000)
    return f"{y:04d}-{mo:02d}-{d:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{msec:03d}Z"


def utc_ns_of(date: tuple[int, int, int], tod_ms: int) -> int:
    """Unix ns of a date and time of day. Second 60 maps onto the next day's 00:00:00 (POSIX)."""
    days = _days_from_civil(*date)
    return (days * DAY_MS + tod_ms) * 1_000_000


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (y + (m <= 2), m, d)


def next_day(date: tuple[int, int, int]) -> tuple[int, int, int]:
    return civil_from_days(_days_from_civil(*date) + 1)


def date_problem(date: tuple[int, int, int] | None, date_error: str | None,
                 not_before: tuple[int, int, int]) -> str | None:
    """Why a receiver date is known to be wrong, or None (no date is not a wrong date)."""
    if date_error is not None:
        return f"date field {date_error!r} is not a date (week-rollover firmware bug)"
    if date is None:
        return None
    if date in DEFAULT_DATES:
        return f"{date[0]:04d}-{date[1]:02d}-{date[2]:02d} is a cold-start/rollover default date"
    if date < GPS_EPOCH:
        return f"{date[0]:04d}-{date[1]:02d}-{date[2]:02d} is before the GPS epoch"
    if date < not_before:
        return (f"{date[0]:04d}-{date[1]:02d}-{date[2]:02d} is before "
                f"{not_before[0]:04d}-{not_before[1]:02d}-{not_before[2]:02d} (software build)")
    return None


def is_last_day_of_month(date: tuple[int, int, int]) -> bool:
    return next_day(date)[2] == 1


class _Builder:
    """The epoch in progress. A plain class (a dataclass's generated __init__ runs as Python
    even in the compiled build: one of these per epoch)."""

    def __init__(self, tod_ms: int | None, rx_ns: int | None, raw_ns: int | None, index: int = 0,
                 sec60: bool = False) -> None:
        self.tod_ms = tod_ms
        self.rx_ns = rx_ns
        self.raw_ns = raw_ns
        self.index = index
        self.kinds: set[str] = set()  # talker+kind of labelled sentences seen
        self.date: tuple[int, int, int] | None = None
        self.date_inferred = False
        self.date_error: str | None = None
        self.statuses: list[bool] = []
        self.fix_type: int | None = None
        self.quality: int | None = None
        self.modes: list[str] = []
        self.lat: float | None = None
        self.lon: float | None = None
        self.alt: float | None = None
        self.sats_used: int | None = None
        self.prns_used = 0
        self.in_view: dict[str, int] = {}  # per GSV talker
        self.gsv_parts: dict[str, tuple[int, set[int]]] = {}  # talker -> parts
        self.sets: dict[str, set[str]] = {}  # talker -> tracked satellites
        self.cn0: dict[str, float] = {}
        self.elev: dict[str, float] = {}
        self.sentences = 0
        self.bad = 0
        self.label_sent = False
        self.sec60 = sec60
        self.nav_sat = False  # a UBX NAV-SAT (a complete satellite report) arrived
        self.spoofing: int | None = None  # u-blox spoofing state (SEC-SIG, NAV-STATUS)
        self.jamming: int | None = None  # u-blox jamming state (SEC-SIG, MON-RF, MON-HW)
        self.leap_change_s: int | None = None  # NAV-TIMELS
        self.time_to_leap_s: int | None = None


class EpochAssembler:
    """Sentences in arrival order -> closed epochs. Pure: no clock, no I/O."""

    def __init__(self, not_before: tuple[int, int, int] = GPS_EPOCH):
        self.not_before = not_before
        self.cur: _Builder | None = None
        self.last_date: tuple[int, int, int] | None = None  # of the last epoch with a date
        self.last_tod_ms: int | None = None
        self.count = 0  # epochs started so far; the one in progress has index count - 1

    def _new(self, tod: int | None, rx_ns: int | None, raw_ns: int | None,
             sec60: bool = False) -> _Builder:
        self.count += 1
        self.cur = _Builder(tod, rx_ns, raw_ns, self.count - 1, sec60=sec60)
        return self.cur

    def feed(self, s: Sentence | UbxInfo | None, rx_ns: int | None = None,
             raw_ns: int | None = None) -> Epoch | None:
        """Take one sentence or UBX message (None: a bad one). Returns the epoch it closed."""
        closed: Epoch | None = None
        b = self.cur
        if isinstance(s, Sentence):
            labelled = s.kind in LABELLED
            key, tod, sec60 = s.talker + s.kind, s.tod_ms, s.sec60
        else:
            labelled = isinstance(s, UbxInfo) and s.identity == "NAV-TIMEUTC"
            key = "UBX-TIMEUTC"
            tod, sec60 = (s.tod_ms, s.sec60) if s is not None else (None, False)
        if labelled:
            # A new epoch: a different label, or the same sentence again (a repeated label).
            if b is None or tod != b.tod_ms or sec60 != b.sec60 or key in b.kinds:
                if b is not None:
                    closed = self._close(b)
                b = self._new(tod, rx_ns, raw_ns, sec60)
            b.kinds.add(key)
        if b is None:
            b = self._new(None, rx_ns, raw_ns)
        b.sentences += 1
        if s is None:
            b.bad += 1
        elif isinstance(s, Sentence):
            self._take(b, s)
        else:
            self._take_ubx(b, s)
        return closed

    def flush(self) -> Epoch | None:
        b, self.cur = self.cur, None
        return self._close(b) if b is not None else None

    def label(self) -> tuple[int, int | None, int | None, bool] | None:
        """(utc_ns, rx_ns, raw_ns, valid-so-far) of the epoch in progress, once, when known."""
        b = self.cur
        if b is None or b.label_sent or b.tod_ms is None or b.rx_ns is None:
            return None
        date = b.date or self._infer_date(b.tod_ms)
        if date is None:
            return None
        b.label_sent = True
        ok = bool(b.statuses) and all(b.statuses) and b.quality != 8 and \
            date_problem(date, b.date_error, self.not_before) is None and \
            not any("S" in m for m in b.modes)
        return utc_ns_of(date, b.tod_ms), b.rx_ns, b.raw_ns, ok

    def _infer_date(self, tod_ms: int) -> tuple[int, int, int] | None:
        if self.last_date is None or self.last_tod_ms is None:
            return None
        # Past midnight when the time of day fell by more than half a day.
        if self.last_tod_ms - tod_ms > DAY_MS // 2:
            return next_day(self.last_date)
        return self.last_date

    def _take_ubx(self, b: _Builder, u: UbxInfo) -> None:
        ident = u.identity
        if ident == "NAV-TIMEUTC":
            if u.utc_valid is not None:
                b.statuses.append(u.utc_valid)
            if u.date is not None and b.date is None and b.date_error is None:
                b.date = u.date
        elif ident == "NAV-STATUS":
            if u.fix_ok is not None:
                b.statuses.append(u.fix_ok)
            if u.fix_type is not None:
                # gpsFix 4 (GNSS + dead reckoning) is a 3D fix; 1 (DR only) and 5 (time only) none.
                ft = {0: 1, 1: 1, 2: 2, 3: 3, 4: 3, 5: 1}[u.fix_type]
                b.fix_type = max(b.fix_type or 0, ft)
        elif ident == "NAV-SAT":
            b.nav_sat = True
            for sv in u.sats:
                b.cn0[sv.key] = sv.cn0_db_hz
                b.sets.setdefault(sv.key[:2], set()).add(sv.key)
                if sv.elev_deg is not None:
                    b.elev[sv.key] = sv.elev_deg
        elif ident == "NAV-TIMELS":
            b.leap_change_s = u.leap_change_s
            b.time_to_leap_s = u.time_to_leap_s
        if u.spoofing_state is not None:
            b.spoofing = max(b.spoofing or 0, u.spoofing_state)
        if u.jamming_state is not None:
            b.jamming = max(b.jamming or 0, u.jamming_state)

    def _take(self, b: _Builder, s: Sentence) -> None:
        k = s.kind
        if s.status_valid is not None and k in LABELLED:
            b.statuses.append(s.status_valid)
        if s.date is not None or s.date_error is not None:
            if b.date is None and b.date_error is None:
                b.date, b.date_error = s.date, s.date_error
        if s.mode is not None:
            b.modes.append(s.mode)
        if s.lat_deg is not None and s.lon_deg is not None and s.status_valid:
            if b.lat is None:
                b.lat, b.lon = s.lat_deg, s.lon_deg
        if s.alt_m is not None and s.status_valid and b.alt is None:
            b.alt = s.alt_m
        if k == "GGA":
            b.quality = s.quality
            b.sats_used = s.sats_used
        elif k == "GNS":
            if b.sats_used is None:
                b.sats_used = s.sats_used
        elif k == "GSA":
            if s.fix_type is not None:
                b.fix_type = max(b.fix_type or 0, s.fix_type)
            b.prns_used += len(s.prns_used)
        elif k == "GSV":
            if s.in_view is not None:
                b.in_view[s.talker] = s.in_view
            if s.gsv_total is not None and s.gsv_num is not None:
                total, seen = b.gsv_parts.get(s.talker, (s.gsv_total, set()))
                seen.add(s.gsv_num)
                b.gsv_parts[s.talker] = (total, seen)
            tracked = b.sets.setdefault(s.talker, set())
            for sv in s.sats:
                if sv.cn0_db_hz is not None and sv.cn0_db_hz > 0:
                    b.cn0[sv.key] = sv.cn0_db_hz
                    tracked.add(sv.key)
                if sv.elev_deg is not None:
                    b.elev[sv.key] = sv.elev_deg

    def _close(self, b: _Builder) -> Epoch:
        date = b.date
        if date is None and b.date_error is None and b.tod_ms is not None:
            date = self._infer_date(b.tod_ms)
        utc = utc_ns_of(date, b.tod_ms) if date is not None and b.tod_ms is not None else None
        if b.date is not None and b.tod_ms is not None:
            self.last_date, self.last_tod_ms = b.date, b.tod_ms
        elif date is not None and b.tod_ms is not None:
            self.last_date, self.last_tod_ms = date, b.tod_ms
        anomalies: list[str] = []
        problem = date_problem(date, b.date_error, self.not_before)
        if problem is not None:
            anomalies.append("gnss.date_anomaly")
        sim = None
        if b.quality == 8:
            sim = "GGA quality 8 (simulator mode)"
        elif any("S" in m for m in b.modes):
            sim = "mode indicator S (simulator)"
        if sim is not None:
            anomalies.append("gnss.simulator")
        if b.bad:
            anomalies.append("gnss.sentence_errors")
        if (b.spoofing or 0) >= FLAG_STATE or (b.jamming or 0) >= FLAG_STATE:
            anomalies.append("gnss.receiver_flag")
        claims = bool(b.statuses) and all(b.statuses) and b.fix_type != 1
        valid = claims and utc is not None and problem is None and sim is None
        if claims:
            if b.fix_type in (2, 3):
                fix = b.fix_type
            elif b.alt is not None or (b.quality or 0) > 0 and b.alt is not None:
                fix = 3
            else:
                fix = 2
        else:
            fix = 0
        in_view = sum(b.in_view.values()) if b.in_view else None
        # Satellite sets only from complete reports: every GSV part of every talker (or NAV-SAT).
        complete = b.nav_sat or (bool(b.gsv_parts) and all(
            seen == set(range(1, total + 1)) for total, seen in b.gsv_parts.values()))
        sat_sets = {k: frozenset(v) for k, v in b.sets.items()} if complete else None
        used = b.sats_used if b.sats_used is not None else (b.prns_used or None)
        return Epoch(
            tod_ms=b.tod_ms, date=date, utc_ns=utc, claims_valid=claims, valid=valid, fix=fix,
            lat_deg=b.lat, lon_deg=b.lon, alt_m=b.alt, sats_used=used, sats_in_view=in_view,
            cn0_db_hz=dict(b.cn0), elev_deg=dict(b.elev), sentences=b.sentences,
            bad_sentences=b.bad, anomalies=tuple(anomalies), rx_ns=b.rx_ns, raw_ns=b.raw_ns, index=b.index,
            date_problem=problem, simulator=sim, leap_second=b.sec60, spoofing_state=b.spoofing,
            jamming_state=b.jamming, leap_change_s=b.leap_change_s,
            time_to_leap_s=b.time_to_leap_s, sat_sets=sat_sets)


def decode_line(line: str) -> tuple[Sentence | None, bool]:
    """(sentence or None, counts as a bad sentence). Never raises."""
    try:
        return decode(line), False
    except NmeaError:
        return None, True
    except Unsupported:
        return None, False
