"""`ntp.leap_anomaly`: a leap second announced that the calendar does not hold.

NTP servers announce a leap second (leap indicator 1: insert, 2: delete) for the end of the
current month (ntpd from the leap file, weeks ahead; chrony on the last day). An announcement is
judged, when its sample arrives:
- against the IERS list (`ctx.leap_list`, loaded by the caller), when the list is intact, not
  expired at the sample's time, and covers the month's end: a leap the list does not schedule
  (or of the other sign) is critical at once;
- otherwise against the other trust groups: a minority of the groups that answer announcing it
  (counting any group that announced this month: servers start at different times) is a warning.
Just after a leap, a server may still announce it for a moment: an announcement within
`LEAP_TAIL_S` of a month's start is also checked against the leap that just happened.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Final

from ...records import Ntp, Observation
from ..core import Context, Detector
from ..ntp import NtpSample, NtpTracker

# After a leap a slow server may keep the indicator set for a few polls (1024 s max poll).
LEAP_TAIL_S: Final = 1024
_NS: Final = 1_000_000_000


def month_end_unix_s(t_ns: int) -> int:
    """The first second of the UTC month after the one containing t_ns (where a leap ends)."""
    d = dt.datetime.fromtimestamp(t_ns // _NS, tz=dt.UTC)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0))


def month_start_unix_s(t_ns: int) -> int:
    d = dt.datetime.fromtimestamp(t_ns // _NS, tz=dt.UTC)
    return calendar.timegm((d.year, d.month, 1, 0, 0, 0))


def _iso(unix_s: int) -> str:
    return dt.datetime.fromtimestamp(unix_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LeapDetector(Detector):
    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._seen: dict[str, NtpSample] = {}
        # Per source: (month end it announced for, leap indicator), kept for the whole month.
        self._announced: dict[str, tuple[int, int]] = {}

    def on_observation(self, obs: Observation) -> None:
        if not isinstance(obs, Ntp):
            return
        src = obs.src
        tr = self.ctx.trackers.get(src)
        if not isinstance(tr, NtpTracker):  # (typed: compiled, its sample's fields are loads)
            return
        s = tr.last
        if s is None or self._seen.get(src) is s:
            return
        self._seen[src] = s
        if s.leap not in (1, 2):
            self.ctx.alerts.release("ntp.leap_anomaly", self.ctx.now_ns, src)
            return
        self._judge(src, s.t_ns, s.leap)

    def _judge(self, src: str, t_ns: int, li: int) -> None:
        ctx = self.ctx
        want = 1 if li == 1 else -1
        end = month_end_unix_s(t_ns)
        candidates = [end]
        start = month_start_unix_s(t_ns)
        if t_ns // _NS - start < LEAP_TAIL_S:
            candidates.append(start)
        self._announced[src] = (end, li)
        lst = ctx.leap_list
        kind = "insert" if li == 1 else "delete"
        ev: dict[str, object] = {"leap_indicator": li, "leap_at_utc": _iso(end)}
        if lst is not None and lst.valid_at(t_ns) and lst.covers(end):
            if any(lst.step_at(c) == want for c in candidates):
                ctx.alerts.release("ntp.leap_anomaly", ctx.now_ns, src)
                return
            ev.update(list_valid=True, list_expires_utc=_iso(lst.expires_unix_s))
            ctx.alerts.assert_(
                "ntp.leap_anomaly", ctx.now_ns, (src,),
                f"{src} announces a leap second ({kind}) at {_iso(end)} that the IERS list "
                f"does not schedule", ev, severity="critical",
                hold_down_s=ctx.detect.hold_down_s)
            return
        answering, announcing = self._groups(t_ns, end, li)
        ev.update(list_valid=False, groups_announcing=announcing, groups_answering=answering,
                  list_expires_utc=_iso(lst.expires_unix_s) if lst is not None else None)
        if 2 * len(announcing) < len(answering):
            ctx.alerts.assert_(
                "ntp.leap_anomaly", ctx.now_ns, (src,),
                f"{src} announces a leap second ({kind}) at {_iso(end)} that "
                f"{len(answering) - len(announcing)} of {len(answering)} trust groups do not "
                f"(no valid IERS list to decide)", ev, severity="warning",
                hold_down_s=ctx.detect.hold_down_s)
        else:
            ctx.alerts.release("ntp.leap_anomaly", ctx.now_ns, src)

    def _groups(self, t_ns: int, end: int, li: int) -> tuple[list[str], list[str]]:
        """Trust groups with a usable NTP source now, and those announcing this leap this month."""
        answering: set[str] = set()
        announcing: set[str] = set()
        now = self.ctx.now_ns
        for sid, tr in self.ctx.trackers.items():
            if getattr(tr, "last", None) is None or tr.estimate(now) is None:
                continue
            answering.add(tr.info.group)
            if self._announced.get(sid) == (end, li):
                announcing.add(tr.info.group)
        return sorted(answering), sorted(announcing & answering)
