"""Receiver-level GNSS detectors: what one receiver's own output can justify (docs/events.md).

Each detector keeps a little state and, on every epoch (or sentence, or UBX message), either
asserts its condition with the evidence or releases it; `alerts.Alerts` turns that into alert and
clear events. Thresholds are `[detect]` keys (engine/params.py), tuned so that none of
`gnss.cn0_anomaly`, `gnss.simulator`, `gnss.receiver_flag` fires on the real receivers of the
gpsd corpus while the GPS-simulator captures and april6_2019.log do raise alerts.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import TYPE_CHECKING, Final

from ..wire.ubx import UbxInfo
from .gnss_epoch import (
    DAY_MS,
    ROLLOVER_S,
    Epoch,
    civil_from_days,
    is_last_day_of_month,
    iso_ms,
    next_day,
)
from .value import median, pstdev

if TYPE_CHECKING:
    from .gnss import GnssTracker

NS: Final = 1_000_000_000
EARTH_RADIUS_M: Final = 6_371_000.0  # mean Earth radius (IUGG), enough for tens-of-metres distances


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between (lat_deg, lon_deg) points."""
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * \
        math.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


# Unit roundoff of a double (2^-53).
_U: Final = 2.0 ** -53


def _spread_below(vals: list[float], limit: float) -> bool | None:
    """Whether pstdev(vals) < limit, from a two-pass variance in floats when it is far enough
    from limit to tell (None: too close, take pstdev). The float variance is within
    gamma(n+4) (u = 2^-53, k roundings: k u / (1 - k u)) of the true variance plus the square
    of its mean's error (at most gamma(n+1) max|x|); pstdev is the correctly rounded root of
    the true variance, so a root below limit (1 - 1e-9) rounds below limit, one above limit
    (1 + 1e-9) does not (the margin is far wider than the roundings of this test itself)."""
    n = len(vals)
    s = 0.0
    big = 0.0
    for x in vals:
        s += x
        ax = abs(x)
        if ax > big:
            big = ax
    m = s / n
    q = 0.0
    for x in vals:
        dx = x - m
        q += dx * dx
    var = q / n
    g = (n + 4) * _U / (1.0 - (n + 4) * _U)
    dm = (n + 1) * _U / (1.0 - (n + 1) * _U) * big
    lim2 = limit * limit
    if var / (1.0 - g) < lim2 * (1.0 - 1e-9):
        return True
    if var / (1.0 + g) - dm * dm > lim2 * (1.0 + 1e-9):
        return False
    return None


class GnssDetectors:
    """All receiver-level detectors of one GNSS source."""

    def __init__(self, tr: GnssTracker):
        self.tr = tr
        self.ctx = tr.ctx
        self.d = tr.ctx.detect
        self.src = tr.src
        # gnss.no_fix: since when the receiver has reported no valid fix
        self.no_fix_since_ns: int | None = None
        # gnss.sentence_errors: (rx_ns, bad) of the sentences in the window
        self.window: deque[tuple[int, bool]] = deque()
        self.window_bad = 0
        # gnss.position_jump: reference position (configured, or surveyed) and the survey
        pos = tr.info.position
        self.ref: tuple[float, float] | None = (pos[0], pos[1]) if pos else None
        self.ref_learned = False
        self.survey: list[tuple[float, float]] = []
        self.far = 0
        # gnss.cn0_anomaly
        self.uniform_since_ns: int | None = None
        self.cn0_hist: deque[tuple[int, dict[str, float]]] = deque()
        # gnss.satellites: last complete satellite sets per talker
        self.last_sets: dict[str, frozenset[str]] | None = None
        self.last_sets_ns = 0
        self.last_sets_valid = False
        self.last_sets_utc: int | None = None
        # gnss.label_error
        self.last_label: tuple[int, int, bool] | None = None  # (utc_ns, rx_ns, second 60)

    def _assert(self, code: str, t: int, msg: str, ev: dict[str, object], sev: str) -> None:
        self.ctx.alerts.assert_(code, t, (self.src,), f"{self.src}: {msg}", ev, severity=sev,
                                hold_down_s=self.d.hold_down_s)

    def _release(self, code: str, t: int) -> None:
        self.ctx.alerts.release(code, t, self.src)

    def on_host_step(self, step_ns: int) -> None:
        """Host realtime jumped by step_ns: the arrival times kept are re-expressed in it (the
        label test compares a label's step with its arrival's: the host's step is not the
        receiver's)."""
        if self.last_label is not None:
            utc, rx, sec60 = self.last_label
            self.last_label = (utc, rx + step_ns, sec60)
        self.window = deque((t + step_ns, bad) for t, bad in self.window)
        self.cn0_hist = deque((t + step_ns, c) for t, c in self.cn0_hist)
        if self.no_fix_since_ns is not None:
            self.no_fix_since_ns += step_ns
        if self.uniform_since_ns is not None:
            self.uniform_since_ns += step_ns
        self.last_sets_ns += step_ns

    # -- per sentence ----------------------------------------------------------------------
    def on_sentence(self, t: int, bad: bool, what: str = "") -> None:
        d = self.d
        self.window.append((t, bad))
        self.window_bad += bad
        lim = t - int(d.gnss_sentence_window_s * NS)
        while self.window and self.window[0][0] < lim:
            self.window_bad -= self.window.popleft()[1]
        n = len(self.window)
        ratio = self.window_bad / n if n else 0.0
        if self.window_bad >= d.gnss_sentence_error_min and ratio > d.gnss_sentence_error_ratio:
            self._assert("gnss.sentence_errors", t,
                         f"{self.window_bad} of {n} sentences bad in {d.gnss_sentence_window_s:g} s"
                         + (f" (last: {what})" if what else ""),
                         {"bad": self.window_bad, "sentences": n, "ratio": ratio,
                          "limit_ratio": d.gnss_sentence_error_ratio,
                          "window_s": d.gnss_sentence_window_s}, "warning")
        elif ratio <= d.gnss_sentence_error_ratio / 2:  # hysteresis: half the limit to clear
            self._release("gnss.sentence_errors", t)

    # -- per UBX message -------------------------------------------------------------------
    def on_ubx(self, t: int, u: UbxInfo) -> None:
        spf, jam = u.spoofing_state, u.jamming_state
        if spf is None and jam is None:
            return
        key = f"{self.src}:{u.identity}"
        bad = (spf or 0) >= 2 or (jam or 0) >= 2
        if bad:
            what = []
            if (spf or 0) >= 2:
                what.append("spoofing " + {2: "indicated", 3: "affirmed"}.get(spf or 0, "?"))
            if (jam or 0) >= 2:
                what.append("jamming " + {2: "warning", 3: "critical"}.get(jam or 0, "?"))
            self.ctx.alerts.assert_(
                "gnss.receiver_flag", t, (self.src,),
                f"{self.src}: receiver reports {' and '.join(what)} ({u.identity})",
                {"message": u.identity, "spoofing_state": spf, "jamming_state": jam},
                severity="critical", key=key, hold_down_s=self.d.hold_down_s)
        else:
            self.ctx.alerts.release("gnss.receiver_flag", t, key)

    # -- per epoch -------------------------------------------------------------------------
    def on_epoch(self, ep: Epoch) -> None:
        t = ep.rx_ns if ep.rx_ns is not None else self.ctx.now_ns
        self._no_fix(t, ep)
        self._simulator(t, ep)
        self._date(t, ep)
        self._leap(t, ep)
        if ep.valid:
            self._label(t, ep)
            self._position(t, ep)
            self._cn0(t, ep)
        self._satellites(t, ep)

    def on_tick(self, now: int) -> None:
        d = self.d
        if self.no_fix_since_ns is not None and \
                now - self.no_fix_since_ns >= d.gnss_no_fix_s * NS:
            self._assert("gnss.no_fix", now,
                         f"no valid fix for {(now - self.no_fix_since_ns) / NS:.0f} s",
                         {"since_ns": self.no_fix_since_ns, "limit_s": d.gnss_no_fix_s},
                         "warning")

    def _no_fix(self, t: int, ep: Epoch) -> None:
        if ep.claims_valid:
            self.no_fix_since_ns = None
            self._release("gnss.no_fix", t)
        elif self.no_fix_since_ns is None:
            self.no_fix_since_ns = t
        self.on_tick(t)

    def _simulator(self, t: int, ep: Epoch) -> None:
        # Only simulated output presented as valid is a threat: a receiver in demo mode that
        # also says "V" (no valid fix) is not used anyway (unusable, with the reason).
        if ep.simulator is not None and ep.claims_valid:
            self._assert("gnss.simulator", t, f"receiver output is simulated: {ep.simulator}",
                         {"reason": ep.simulator, "utc": iso_ms(ep.utc_ns) if ep.utc_ns else None},
                         "critical")
        elif ep.claims_valid:
            self._release("gnss.simulator", t)

    def _date(self, t: int, ep: Epoch) -> None:
        if not ep.claims_valid:
            return  # a receiver that says it has no fix does not claim its date either
        problem = ep.date_problem
        ev: dict[str, object] = {}  # the evidence after "utc", which is formatted only if needed
        c_off = self.tr.consensus_of_others()
        if problem is None and ep.utc_ns is not None and ep.rx_ns is not None and \
                c_off is not None:
            true_ns = ep.rx_ns + round(c_off * NS)
            diff_s = (ep.utc_ns - true_ns) / NS
            if abs(diff_s) > self.d.gnss_date_tolerance_s:
                eras = round(diff_s / ROLLOVER_S)
                problem = f"{diff_s / 86400:+.1f} days from the consensus of the other sources"
                if eras and abs(diff_s - eras * ROLLOVER_S) < 2 * 86400:
                    problem += f" ({eras:+d} x 1024 GPS weeks: week-number rollover)"
                ev.update({"offset_s": diff_s, "consensus_utc": iso_ms(true_ns)})
        if problem is not None:
            ev = {"utc": iso_ms(ep.utc_ns) if ep.utc_ns is not None else None, **ev,
                  "reason": problem}
            self._assert("gnss.date_anomaly", t, f"implausible date: {problem}", ev, "critical")
        else:
            self._release("gnss.date_anomaly", t)

    def _leap(self, t: int, ep: Epoch) -> None:
        problem = None
        if ep.leap_second and ep.claims_valid:
            tod = ep.tod_ms or 0
            if ep.date is None or not is_last_day_of_month(ep.date) or \
                    tod // 1000 != DAY_MS // 1000:
                problem = "second 60 outside 23:59:60 of a month's last day"
        if ep.leap_change_s and ep.time_to_leap_s is not None and ep.utc_ns is not None:
            event_ns = ep.utc_ns + ep.time_to_leap_s * NS
            day_ms = (event_ns // 1_000_000) % DAY_MS
            days = (event_ns // 1_000_000) // DAY_MS
            y, m, dd = civil_from_days(days)
            if day_ms > 1000 or dd != 1 and next_day((y, m, dd))[2] != 1:
                problem = (f"leap second ({ep.leap_change_s:+d}) announced for {iso_ms(event_ns)},"
                           " not the end of a month")
        if problem is not None:
            self._assert("gnss.leap_second", t, problem,
                         {"utc": iso_ms(ep.utc_ns) if ep.utc_ns else None,
                          "leap_change_s": ep.leap_change_s, "time_to_leap_s": ep.time_to_leap_s},
                         "critical")
        elif ep.claims_valid:
            self._release("gnss.leap_second", t)

    def _label(self, t: int, ep: Epoch) -> None:
        if ep.utc_ns is None or ep.rx_ns is None:
            return
        prev, self.last_label = self.last_label, (ep.utc_ns, ep.rx_ns, ep.leap_second)
        if prev is None or ep.leap_second:
            return
        d_label = (ep.utc_ns - prev[0]) / NS
        # A leap second (23:59:60) lasts a second of arrival time without moving Unix time.
        d_rx = (ep.rx_ns - prev[1]) / NS - (1.0 if prev[2] else 0.0)
        err = d_label - d_rx
        if d_label <= 0 and not prev[2] or abs(err) > self.d.gnss_label_tolerance_s:
            what = ("repeated" if d_label == 0 else "went backwards" if d_label < 0 else
                    f"moved {d_label:.3f} s in {d_rx:.3f} s of arrival time")
            self._assert("gnss.label_error", t, f"time label {what}",
                         {"label_utc": iso_ms(ep.utc_ns), "previous_utc": iso_ms(prev[0]),
                          "label_step_s": d_label, "arrival_step_s": d_rx, "error_s": err,
                          "tolerance_s": self.d.gnss_label_tolerance_s}, "warning")
        else:
            self._release("gnss.label_error", t)

    def _position(self, t: int, ep: Epoch) -> None:
        if ep.lat_deg is None or ep.lon_deg is None:
            return
        p = (ep.lat_deg, ep.lon_deg)
        d = self.d
        if self.ref is None:
            if not self.tr.survey_allowed():
                return
            self.survey.append(p)
            if len(self.survey) >= d.gnss_survey_epochs:
                lat = statistics.fmean(x for x, _ in self.survey)
                lon = statistics.fmean(y for _, y in self.survey)
                spread = max(distance_m((lat, lon), q) for q in self.survey)
                if spread <= d.gnss_position_limit_m / 2:
                    self.ref, self.ref_learned = (lat, lon), True
                self.survey.clear()  # a moving receiver: survey again (never learns)
            return
        dist = distance_m(self.ref, p)
        self.tr.position_error_m = dist
        if dist > d.gnss_position_limit_m:
            self.far += 1
            if self.far >= d.gnss_position_confirm:
                self._assert("gnss.position_jump", t,
                             f"fix {dist:.0f} m from the {'surveyed' if self.ref_learned else 'configured'}"
                             " antenna position",
                             {"distance_m": dist, "limit_m": d.gnss_position_limit_m,
                              "lat_deg": p[0], "lon_deg": p[1], "ref_lat_deg": self.ref[0],
                              "ref_lon_deg": self.ref[1], "learned": self.ref_learned},
                             "critical")
        else:
            self.far = 0
            self._release("gnss.position_jump", t)

    def _cn0(self, t: int, ep: Epoch) -> None:
        d = self.d
        cn0 = ep.cn0_db_hz
        if len(cn0) < d.gnss_cn0_uniform_min_sats:
            return
        vals = sorted(cn0.values(), reverse=True)
        problem = None
        ev: dict[str, object] = {}  # the evidence after the mean, which is taken only if needed
        limit = d.gnss_cn0_uniform_sigma_db_hz
        # statistics.pstdev's float (value.pstdev, exact integers: costly) only when needed.
        sigma: float | None = None
        below = _spread_below(vals, limit)
        if below is None:
            sigma = pstdev(vals)
            below = sigma < limit
        if below:
            if self.uniform_since_ns is None:
                self.uniform_since_ns = t
            held = (t - self.uniform_since_ns) / NS
            if held >= d.gnss_cn0_uniform_s:
                sigma = pstdev(vals) if sigma is None else sigma
                problem = (f"C/N0 uniform across {len(vals)} satellites (sigma {sigma:.2f} "
                           f"dB-Hz) for {held:.0f} s")
                ev["uniform_s"] = held
        else:
            self.uniform_since_ns = None
        k = d.gnss_cn0_uniform_min_sats
        if problem is None and len(vals) >= k and vals[k - 1] > d.gnss_cn0_max_db_hz:
            problem = f"{k} or more satellites above {d.gnss_cn0_max_db_hz:g} dB-Hz"
            ev["cn0_max_db_hz"] = vals[0]
        # A step for all satellites at once: against the oldest epoch in the last 10 s.
        hist = self.cn0_hist
        while hist and t - hist[0][0] > 10 * NS:
            hist.popleft()
        if problem is None and hist:
            base = hist[0][1]
            common = [k2 for k2 in cn0 if k2 in base]
            # A satellite that rose less than half a step rules it out: no sort, no median.
            if len(common) >= d.gnss_cn0_uniform_min_sats and \
                    min([cn0[k2] - base[k2] for k2 in common]) >= d.gnss_cn0_step_db_hz / 2:
                steps = sorted(cn0[k2] - base[k2] for k2 in common)
                med = median(steps)
                if med >= d.gnss_cn0_step_db_hz and steps[0] >= d.gnss_cn0_step_db_hz / 2:
                    problem = (f"C/N0 of all {len(common)} satellites up {med:.1f} dB "
                               f"within {(t - hist[0][0]) / NS:.0f} s")
                    ev.update({"step_median_db": med, "step_min_db": steps[0]})
        hist.append((t, dict(cn0)))
        if problem is not None:
            sigma = pstdev(vals) if sigma is None else sigma
            ev = {"satellites": len(vals), "sigma_db_hz": sigma,
                  "cn0_mean_db_hz": statistics.fmean(vals), **ev}
            self._assert("gnss.cn0_anomaly", t, problem, ev, "critical")
        else:
            self._release("gnss.cn0_anomaly", t)

    def _satellites(self, t: int, ep: Epoch) -> None:
        sets = ep.sat_sets
        if sets is None:
            return  # no complete GSV (or NAV-SAT) report in this epoch
        prev, self.last_sets = self.last_sets, sets
        prev_ns, self.last_sets_ns = self.last_sets_ns, t
        prev_valid, self.last_sets_valid = self.last_sets_valid, ep.valid
        prev_utc, self.last_sets_utc = self.last_sets_utc, ep.utc_ns
        # Compare a tracking receiver with itself: not the acquisition after a (cold) start, nor
        # across a jump of its labels (a restart, a spliced capture).
        continuous = prev_utc is not None and ep.utc_ns is not None and \
            0 < ep.utc_ns - prev_utc <= 10 * NS
        if prev is None or not prev_valid or not continuous or t - prev_ns > 10 * NS or \
                sum(len(v) for v in prev.values()) < self.d.gnss_sat_change_min:
            return
        lost: set[str] = set()
        gained: set[str] = set()
        union: set[str] = set()
        for talker in sets.keys() & prev.keys():  # talkers reported in both epochs
            a, b = prev[talker], sets[talker]
            lost |= a - b
            gained |= b - a
            union |= a | b
        changed = len(lost) + len(gained)
        d = self.d
        if changed >= d.gnss_sat_change_min and changed >= d.gnss_sat_change_ratio * len(union):
            self._assert("gnss.satellites", t,
                         f"tracked satellites changed abruptly: {len(lost)} lost, "
                         f"{len(gained)} new of {len(union)}",
                         {"lost": sorted(lost), "gained": sorted(gained),
                          "tracked": len(union) - len(gained), "window_s": (t - prev_ns) / NS},
                         "warning")
        else:
            self._release("gnss.satellites", t)
