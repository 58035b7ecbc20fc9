"""PTP sources: ptp4l's management answers -> an offset with an honest bound, the grandmaster
watched, its announcements checked (docs/ptp.md has the operator's view).

What a `ptp` record goes through:
1. `error` (ptp4l not answering, restarting, or an answer the reader refused): counted, no
   sample. Silence is `source.stale` (the core's), after `stale_polls` polls.
2. No grandmaster (ptp4l LISTENING, or its selected grandmaster is itself): unusable, no alert
   (a restarted ptp4l takes a few announce intervals to select one; stale covers a long gap).
3. The selected grandmaster (PARENT_DATA_SET) against the last one: a change is
   `ptp.gm_changed` (critical when the new one is not in the source's `grandmasters`
   allow-list, warning otherwise; the first grandmaster alerts only when it is not in the
   list). The source is then withheld from the consensus until `ptp_rejoin_agree` consecutive
   samples of the new grandmaster agree with the consensus of the others.
4. The announce (TIME_PROPERTIES_DATA_SET, PARENT_DATA_SET): `ptp.announce_mismatch` when the
   UTC offset or a leap flag contradicts the IERS list (or, without a valid list, the other
   references), or the grandmaster's clock class says it is not synchronised.
5. A new Sync (a new `ingress_time`) is a sample. ptp4l runs `free_running`: its `master_offset`
   is its clock minus the master's, so offset = PTP time - host realtime = -master_offset (with
   hardware stamps the clock is the NIC's: + PHC - realtime, - the UTC offset on the PTP
   timescale). Bound = mean path delay (an asymmetry can put up to the whole round trip on one
   leg: the offset is then off by half of it) + the timestamping's own error.
6. `time.step` when the offset jumps against its own recent level by `ptp_step_s` and stays;
   `ptp.delay_attack` when the mean path delay jumps and the offset moves with it (a man in the
   middle delaying one direction: both move by half the added delay).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from typing import Any, Final

from ..ptpmgmt import Ptp, normalize_identity
from ..records import Observation, SourceInfo
from .core import Context, Estimate, Tracker
from .detectors.leap import month_end_unix_s, month_start_unix_s
from .holdover import ensure_holdover
from .value import median
from .vote import Verdict

_NS: Final = 1_000_000_000
# Port states in which ptp4l follows a master (free_running keeps it UNCALIBRATED: its servo
# never locks because it never adjusts the clock).
FOLLOWING: Final = ("SLAVE", "UNCALIBRATED")
# Clock classes of a grandmaster synchronised to its reference or in holdover within its
# specification (IEEE 1588-2019 table 4: 6/7 primary, 13/14 application-specific; G.8275.1
# table 2 adds 135 for a boundary clock in holdover within spec). Anything else is degraded.
SYNCED_CLASSES: Final = (6, 7, 13, 14, 135)
# A stale limit of `stale_polls` polls, plus half a poll of grace (as NTP's).
STALE_GRACE_POLLS: Final = 0.5
# Before its first sample a source gets this many announce intervals more before it is stale:
# ptp4l (re)started listens for announces, qualifies a master on two of them (IEEE 1588
# FOREIGN_MASTER_THRESHOLD), and an idle domain's master takes its announce receipt timeout (3).
START_ANNOUNCES: Final = 6
# A record's ingress time may be at most this far from its arrival (ptp4l's last Sync: a few
# sync intervals old at most; more means the record's clocks do not match).
INGRESS_MAX_AGE_NS: Final = 60 * _NS
# time.step: recent offsets the level is the median of, and the increments' noise needs.
STEP_LEVEL_N: Final = 5
STEP_WARMUP: Final = 5
STEP_SIGMAS: Final = 8.0
NOISE_GAIN: Final = 0.05
# ptp.delay_attack: normal samples the baseline delay (their minimum) and offset (their
# median) are taken over.
DELAY_BASELINE_N: Final = 16
DELAY_BASELINE_MIN: Final = 4
# A leap flag just after a month's start may still be the leap that just happened.
LEAP_TAIL_S: Final = 1024
# The UTC offset may lag a leap second by this long at the grandmaster.
UTC_OFFSET_TAIL_S: Final = 1024
TRUECHIMER: Final = Verdict.TRUECHIMER
# The holdover learns a PTP offset with its measured jitter, never sharper than this (s), as a PPS.
LEARN_SIGMA_FLOOR_S: Final = 0.5e-6
_OUTCOMES: Final = ("usable", "unreachable", "malformed", "incomplete", "no_master",
                    "inconsistent", "repeated", "ignored")


def tai_utc_at(leap_list: Any, unix_s: int) -> int | None:
    """TAI - UTC in effect at `unix_s` by the IERS list, or None before its first entry."""
    out = None
    for e in leap_list.entries:
        if e.unix_s <= unix_s:
            out = e.dtai_s
    return out


class PtpTracker(Tracker):
    """One PTP source (its own ptp4l): see the module docstring."""

    kind = "ptp"
    judged_for_steps = False  # its own step test (drift's NTP one is milliseconds)

    def __init__(self, src: str, info: SourceInfo, ctx: Context):
        super().__init__(src, info, ctx)
        gms = info.grandmasters
        self.allowed: tuple[str, ...] | None = (
            tuple(normalize_identity(g) for g in gms) if gms is not None else None)
        self.poll_s: float = info.poll_s or 1.0
        self._stale_ns = int((ctx.detect.stale_polls + STALE_GRACE_POLLS) * self.poll_s * _NS)
        self._start_grace_ns = START_ANNOUNCES * 2 * _NS  # until a record says its interval
        self.counts: dict[str, int] = {}
        self.gm: str | None = None  # the grandmaster followed
        self.gm_seen: dict[str, Any] = {}  # its announce as last seen (for the evidence)
        self.port_state: str | None = None
        self.last_rec: Ptp | None = None  # the last record that had a grandmaster
        self.mean_path_delay_s: float | None = None
        self.withheld: str | None = None  # why it is kept out of the consensus
        self._agree = 0
        self._no_master: str | None = None
        self._ingress: int | None = None
        # time.step: recent offsets in step-free host time, the noise of their increments.
        self._own: deque[float] = deque(maxlen=STEP_LEVEL_N)
        self._own_n = 0
        self._own_var = 0.0
        # A jump being confirmed: (level before, the samples since, mean path delay before).
        self._step_pending: tuple[float, list[float], float] | None = None
        self._level_mpd = 0.0  # mean path delay at the level's last sample
        self._step_from: float | None = None
        # ptp.delay_attack: (mean path delay, offset) of normal samples, the attack's streak.
        self._base: deque[tuple[float, float]] = deque(maxlen=DELAY_BASELINE_N)
        self._streak = 0
        self._announce_key: tuple[Any, ...] | None = None
        self._utc_ref: int | None = None  # the grandmaster's UTC offset as first accepted
        self._status: dict[str, Any] | None = None
        self.holdover = ensure_holdover(ctx)

    # -- core interface ----------------------------------------------------------------------
    def stale_limit_s(self) -> float:
        return self._stale_ns / 1e9

    def is_stale(self, now_ns: int) -> bool:
        """Stale after `stale_polls` polls without a usable sample; before the first one, ptp4l
        also gets its start-up: qualifying a master takes announce intervals (START_ANNOUNCES)."""
        ref = self.last_usable_ns
        if ref is not None:
            return now_ns - ref > self._stale_ns
        ref = self.first_ns
        return ref is not None and now_ns - ref > self._stale_ns + self._start_grace_ns

    def noise_floor_s(self, bound_s: float) -> float:
        """drift's noise floor: microseconds, as a PPS (a Sync's offset is read to the ns)."""
        return self.ctx.detect.drift_sigma_floor_gnss_s

    def on_host_step(self, step_s: float) -> None:
        super().on_host_step(step_s)  # the estimate; the step test's history is step-free

    def status_fields(self) -> dict[str, Any]:
        d = self._status
        if d is None:
            r = self.last_rec
            d = {"gm_identity": self.gm, "port_state": self.port_state,
                 "mean_path_delay_s": self.mean_path_delay_s, "withheld": self.withheld,
                 "poll_s": self.poll_s}
            if r is not None:
                d.update(gm_clock_class=r.gm_clock_class, gm_priority1=r.gm_priority1,
                         gm_priority2=r.gm_priority2, steps_removed=r.steps_removed,
                         utc_offset=r.utc_offset, timestamping=r.timestamping,
                         time_source=r.time_source)
            for k, v in self.counts.items():
                d[f"{k}_count"] = v
            self._status = d
        return d.copy()

    def feed(self, obs: Observation) -> None:
        self._status = None
        if not isinstance(obs, Ptp):
            self._count("ignored")
            return
        if obs.error is not None:
            self._count("malformed" if obs.error == "malformed" else "unreachable")
            return
        if (obs.port_state is None or obs.gm_present is None or obs.gm_identity is None
                or obs.parent_gm_identity is None):
            self._count("incomplete")
            return
        self.port_state = obs.port_state
        if obs.log_announce_interval is not None and -7 <= obs.log_announce_interval <= 7:
            self._start_grace_ns = int(START_ANNOUNCES * 2.0 ** obs.log_announce_interval * _NS)
        if not obs.gm_present or obs.port_state not in FOLLOWING:
            self._count("no_master")
            self._set_no_master(f"ptp4l follows no grandmaster (port {obs.port_state})")
            return
        self._set_no_master(None)
        gm = obs.parent_gm_identity
        if obs.gm_identity != gm:  # answers read across a change: the next poll settles it
            self._count("inconsistent")
            return
        self.last_rec = obs
        self._grandmaster(obs, gm)
        self._announce(obs)
        self._sample(obs)

    # -- state -------------------------------------------------------------------------------
    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        self.ctx.count(f"ptp.{what}")

    def _set_no_master(self, why: str | None) -> None:
        self._no_master = why
        self._update_unusable()

    def _update_unusable(self) -> None:
        self.unusable_reason = self._no_master or self.withheld

    # -- grandmaster -------------------------------------------------------------------------
    def _grandmaster(self, o: Ptp, gm: str) -> None:
        seen = {"identity": gm, "clock_class": o.gm_clock_class,
                "clock_accuracy": o.gm_clock_accuracy, "priority1": o.gm_priority1,
                "priority2": o.gm_priority2, "steps_removed": o.steps_removed,
                "parent_port": o.parent_port}
        old, old_seen = self.gm, self.gm_seen
        self.gm_seen = seen
        if gm == old:
            return
        self.gm = gm
        allowed = self.allowed
        if old is None and (allowed is None or gm in allowed):
            return  # the first grandmaster: nothing to compare it with
        ctx = self.ctx
        unknown = allowed is not None and gm not in allowed
        # What was learned of the old grandmaster's path and level no longer applies.
        self._own.clear()
        self._own_n = 0
        self._own_var = 0.0
        self._step_pending = None
        self._base.clear()
        self._streak = 0
        self._ingress = None
        self._utc_ref = None
        ev: dict[str, Any] = {
            "old_identity": old, "new_identity": gm, "clock_class": o.gm_clock_class,
            "priority1": o.gm_priority1, "priority2": o.gm_priority2,
            "clock_accuracy": o.gm_clock_accuracy, "steps_removed": o.steps_removed,
            "parent_port": o.parent_port, "allowed": list(allowed) if allowed is not None else None,
            "old_clock_class": old_seen.get("clock_class"), "old_priority1": old_seen.get(
                "priority1")}
        if old is None:
            msg = f"{self.src}: grandmaster {gm} is not in the allow-list"
        else:
            msg = (f"{self.src}: grandmaster changed from {old} to {gm} (class "
                   f"{o.gm_clock_class}, priority1 {o.gm_priority1})"
                   + (", which is not in the allow-list" if unknown else ""))
        key = f"{self.src}>{gm}"
        ctx.alerts.assert_("ptp.gm_changed", ctx.now_ns, (self.src,), msg, ev,
                           severity="critical" if unknown else "warning", key=key,
                           hold_down_s=ctx.detect.hold_down_s)
        ctx.alerts.release("ptp.gm_changed", ctx.now_ns, key)  # an event: clears after hold-down
        self.withheld = f"withheld: grandmaster changed to {gm}, not yet agreeing with the others"
        self._agree = 0
        self._update_unusable()

    def _rejoin(self, offset_s: float, bound_s: float) -> None:
        """While withheld: does this sample agree with the consensus of the others (which is
        voted without it)? `ptp_rejoin_agree` in a row end the withholding."""
        c = self.ctx.consensus
        lo, hi = c.lo_s, c.hi_s
        if not c.quorum or lo is None or hi is None:
            self._agree = 0
            self.withheld = (f"withheld: grandmaster changed to {self.gm}; no consensus of the "
                             "others to agree with yet")
        elif offset_s + bound_s < lo or offset_s - bound_s > hi:
            self._agree = 0
            dist = lo - (offset_s + bound_s) if offset_s + bound_s < lo else offset_s - bound_s - hi
            self.withheld = (f"withheld: grandmaster changed to {self.gm}, "
                             f"{dist * 1e3:.3f} ms off the consensus of the others")
        else:
            self._agree += 1
            if self._agree >= self.ctx.detect.ptp_rejoin_agree:
                self.withheld = None
        self._update_unusable()

    # -- announce ----------------------------------------------------------------------------
    def _announce(self, o: Ptp) -> None:
        t = o.rx_ns
        lst = self.ctx.leap_list
        list_ok = lst is not None and lst.valid_at(t)
        key = (o.utc_offset, o.utc_offset_valid, o.ptp_timescale, o.leap61, o.leap59,
               o.gm_clock_class, month_end_unix_s(t), list_ok, self.gm)
        if key == self._announce_key:
            return
        self._announce_key = key
        self._check_utc_offset(o, t, lst if list_ok else None)
        self._check_leap(o, t, lst if list_ok else None)
        self._check_class(o)

    def _mismatch(self, aspect: str, ok: bool, message: str, ev: dict[str, Any],
                  severity: str) -> None:
        ctx = self.ctx
        key = f"{self.src}:{aspect}"
        if ok:
            ctx.alerts.release("ptp.announce_mismatch", ctx.now_ns, key)
            return
        ev = {"aspect": aspect, "gm_identity": self.gm, **ev}
        ctx.alerts.assert_("ptp.announce_mismatch", ctx.now_ns, (self.src,), message, ev,
                           severity=severity, key=key, hold_down_s=ctx.detect.hold_down_s)

    def _check_utc_offset(self, o: Ptp, t_ns: int, lst: Any) -> None:
        """The announced TAI - UTC against the IERS list when it is valid. Without one: against
        what this grandmaster announced before (it changes only at a leap second, by one, at a
        month's end), the last value an expired list knows (leap seconds have only ever been
        inserted), and the other PTP trust groups."""
        if not (o.utc_offset_valid and o.ptp_timescale) or o.utc_offset is None:
            self._mismatch("utc_offset", True, "", {}, "warning")
            return
        utc = o.utc_offset
        unix_s = t_ns // _NS
        if lst is not None:
            want = {tai_utc_at(lst, s) for s in (unix_s - UTC_OFFSET_TAIL_S, unix_s,
                                                 unix_s + UTC_OFFSET_TAIL_S)} - {None}
            if want:
                self._utc_ref = utc if utc in want else self._utc_ref
                self._mismatch(
                    "utc_offset", utc in want,
                    f"{self.src}: grandmaster {self.gm} announces UTC offset {utc} s; "
                    f"the IERS list says {tai_utc_at(lst, unix_s)} s",
                    {"utc_offset": utc, "list_utc_offset": tai_utc_at(lst, unix_s),
                     "list_valid": True}, "critical")
                return
        old = self.ctx.leap_list
        known = old.entries[-1].dtai_s if old is not None and old.hash_ok and old.entries else None
        if known is not None and utc < known:
            self._mismatch("utc_offset", False,
                           f"{self.src}: grandmaster {self.gm} announces UTC offset {utc} s, "
                           f"below the {known} s in force since the IERS list's last leap second",
                           {"utc_offset": utc, "list_utc_offset": known, "list_valid": False},
                           "critical")
            return
        ref = self._utc_ref
        if ref is None:
            self._utc_ref = ref = utc
        elif utc != ref:
            at_leap = min(unix_s - month_start_unix_s(t_ns),
                          month_end_unix_s(t_ns) - unix_s) < UTC_OFFSET_TAIL_S
            if at_leap and abs(utc - ref) == 1:
                self._utc_ref = ref = utc  # the leap second itself
            else:
                self._mismatch("utc_offset", False,
                               f"{self.src}: grandmaster {self.gm} changed its UTC offset from "
                               f"{ref} s to {utc} s, not at a leap second",
                               {"utc_offset": utc, "previous_utc_offset": ref,
                                "list_valid": False}, "critical")
                return
        others = self._other_ptp(lambda r: r.utc_offset if r.utc_offset_valid
                                 and r.ptp_timescale else None)
        agree = [g for g, v in others.items() if v == utc]
        self._mismatch(
            "utc_offset", not others or 2 * len(agree) >= len(others),
            f"{self.src}: grandmaster {self.gm} announces UTC offset {utc} s, which "
            f"{len(others) - len(agree)} of {len(others)} other PTP trust groups do not "
            "(no valid IERS list to decide)",
            {"utc_offset": utc, "list_valid": False, "others": others}, "warning")

    def _check_leap(self, o: Ptp, t_ns: int, lst: Any) -> None:
        li = 1 if o.leap61 else (-1 if o.leap59 else 0)
        if li == 0:
            self._mismatch("leap", True, "", {}, "warning")
            return
        end = month_end_unix_s(t_ns)
        candidates = [end]
        if t_ns // _NS - month_start_unix_s(t_ns) < LEAP_TAIL_S:
            candidates.append(month_start_unix_s(t_ns))
        what = "leap61 (insert)" if li == 1 else "leap59 (delete)"
        at = dt.datetime.fromtimestamp(end, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ev: dict[str, Any] = {"leap61": bool(o.leap61), "leap59": bool(o.leap59),
                              "leap_at_utc": at}
        if lst is not None and lst.covers(end):
            ok = any(lst.step_at(c) == li for c in candidates)
            self._mismatch("leap", ok, f"{self.src}: grandmaster {self.gm} announces {what} at "
                           f"{at}, which the IERS list does not schedule",
                           {**ev, "list_valid": True}, "critical")
            return
        # No list to decide: the other references that answer (NTP leap indicators, other PTP
        # grandmasters' flags), one vote per trust group.
        answering: set[str] = set()
        announcing: set[str] = set()
        now = self.ctx.now_ns
        for sid, tr in self.ctx.trackers.items():
            if sid == self.src or tr.group == self.group or tr.estimate(now) is None:
                continue
            if isinstance(tr, PtpTracker):
                r = tr.last_rec
                flag = None if r is None else (1 if r.leap61 else (-1 if r.leap59 else 0))
            else:
                last = getattr(tr, "last", None)
                leap = getattr(last, "leap", None)
                flag = None if leap is None else {1: 1, 2: -1}.get(leap, 0)
            if flag is None:
                continue
            answering.add(tr.group)
            if flag == li:
                announcing.add(tr.group)
        self._mismatch(
            "leap", not answering or 2 * len(announcing) >= len(answering),
            f"{self.src}: grandmaster {self.gm} announces {what} at {at}, which "
            f"{len(answering) - len(announcing)} of {len(answering)} other trust groups do not "
            "(no valid IERS list to decide)",
            {**ev, "list_valid": False, "groups_answering": sorted(answering),
             "groups_announcing": sorted(announcing)}, "warning")

    def _check_class(self, o: Ptp) -> None:
        cc = o.gm_clock_class
        self._mismatch(
            "clock_class", cc is None or cc in SYNCED_CLASSES,
            f"{self.src}: grandmaster {self.gm} announces clock class {cc} (not synchronised "
            "to its reference) and is still selected",
            {"clock_class": cc, "clock_accuracy": o.gm_clock_accuracy,
             "time_source": o.time_source, "time_traceable": o.time_traceable,
             "synchronised_classes": list(SYNCED_CLASSES)}, "warning")

    def _other_ptp(self, value: Any) -> dict[str, Any]:
        """group -> `value(record)` of the other trust groups' usable PTP sources."""
        out: dict[str, Any] = {}
        now = self.ctx.now_ns
        for sid, tr in self.ctx.trackers.items():
            if sid == self.src or tr.group == self.group or not isinstance(tr, PtpTracker):
                continue
            r = tr.last_rec
            if r is None or tr.estimate(now) is None:
                continue
            v = value(r)
            if v is not None:
                out[tr.group] = v
        return out

    # -- samples -----------------------------------------------------------------------------
    def _sample(self, o: Ptp) -> None:
        mo, ingress, mpd = o.master_offset_ns, o.ingress_ns, o.mean_path_delay_ns
        if mo is None or ingress is None or mpd is None:
            self._count("incomplete")
            return
        if ingress == self._ingress:
            self._count("repeated")  # no Sync since the last poll
            return
        det = self.ctx.detect
        hardware = o.timestamping == "hardware"
        if hardware:
            if o.phc_offset_ns is None:
                self._count("incomplete")
                return
            # The NIC's clock: PTP time - PHC = -master_offset; PHC - realtime measured.
            offset_ns = -mo + o.phc_offset_ns
            if o.ptp_timescale:  # PTP timescale is TAI: UTC is TAI - the UTC offset
                offset_ns -= (o.utc_offset or 0) * _NS
            t_ns = ingress - o.phc_offset_ns
        else:
            offset_ns = -mo  # ptp4l's clock is the host's realtime (UTC-corrected by ptp4l)
            t_ns = ingress
        if not (mpd >= 0 and math.isfinite(mpd)) or not (
                o.rx_ns - INGRESS_MAX_AGE_NS <= t_ns <= o.rx_ns + _NS):
            self._count("inconsistent")
            return
        self._ingress = ingress
        t_ns = min(t_ns, o.rx_ns)
        offset_s = offset_ns / 1e9
        mpd_s = mpd / 1e9
        bound_s = mpd_s + (det.ptp_bound_hardware_s if hardware else det.ptp_bound_software_s)
        self._count("usable")
        self.mean_path_delay_s = mpd_s
        self.last_usable_ns = o.rx_ns
        self.estimate_ = Estimate(offset_s, bound_s, t_ns)
        ctx = self.ctx
        ctx.emit(self.src, t_ns, offset_s, bound_s, {
            "mean_path_delay_s": mpd_s, "clock_class": float(o.gm_clock_class or 0),
            "steps_removed": float(o.steps_removed or 0), "poll_s": self.poll_s})
        own = offset_s + ctx.host_steps_total_ns / 1e9  # free of host steps
        self._step(own, offset_s, mpd_s)
        self._delay(mpd_s, own)
        if self.withheld is not None:
            self._rejoin(offset_s, bound_s)
        self._learn(o, offset_ns)

    def _learn(self, o: Ptp, offset_ns: int) -> None:
        """Teach the holdover clock, as a PPS does: a PTP offset is read to microseconds, so the
        oscillator is known from the first minute and a grandmaster pushed after it is caught
        against it (a model learned only from the coarse consensus would allow the push).
        Only while the source is an agreeing truechimer that nothing suspects: the witness never
        learns from a source that moved."""
        c = self.ctx.consensus
        if o.raw_ns is None or not c.quorum or self.withheld is not None:
            return
        if (self._step_pending is not None or self._step_from is not None or self._streak
                or self._own_n < STEP_WARMUP):
            return
        v = c.verdicts.get(self.src)
        if v is None or v[0] != TRUECHIMER or self.src in c.withheld:
            return
        jitter = math.sqrt(self._own_var / 2)  # increments of two samples: sqrt(2) x jitter
        self.holdover.learn(self.src, o.raw_ns, o.rx_ns + offset_ns,
                            jitter if jitter > LEARN_SIGMA_FLOOR_S else LEARN_SIGMA_FLOOR_S)

    # -- time.step -----------------------------------------------------------------------------
    def _step(self, own: float, offset_s: float, mpd_s: float) -> None:
        """A jump of the offset against its recent level that stays `ptp_step_confirm` samples
        while the mean path delay stays put. ptp4l filters the path delay with a moving median,
        so when the path itself changes (both legs slower: a new route) the offset jumps for a
        few samples until the median follows, then comes back: that is no step, nor is a jump
        that arrives with a path-delay change (one leg delayed: ptp.delay_attack)."""
        ctx = self.ctx
        det = ctx.detect
        hist = self._own
        if self._step_from is not None:
            # Caught moving: the engine withholds it until it agrees again (Context.witness);
            # then a new level is learned from here.
            if ctx.states[self.src].moving:
                return
            self._step_from = None
            hist.clear()
        sigma = math.sqrt(self._own_var) if self._own_n else 0.0
        pending = self._step_pending
        if pending is not None:
            before, seen, mpd0 = pending
            after = seen[0]
            jump = after - before
            if abs(own - before) < abs(jump) / 2 or abs(mpd_s - mpd0) >= abs(jump) / 2:
                # It came back (an outlier, a path-change transient), or the path changed with
                # it: a new level from here, no step.
                self._step_pending = None
                if abs(mpd_s - mpd0) >= abs(jump) / 2:
                    hist.clear()
                hist.append(own)
                self._level_mpd = mpd_s
                return
            if abs(own - after) > max(4 * sigma, abs(jump) / 4):
                self._step_pending = None  # moving about: judge it afresh
                return
            seen.append(own)
            n = len(seen)
            if n < det.ptp_step_confirm:
                return
            self._step_pending = None
            self._step_from = before
            hist.clear()
            hist.append(own)
            # The step's size: the median of the samples that confirmed it against the level's
            # (one software time stamp taken late on a loaded host moves it no more than that).
            step_s = median(seen) - before
            ctx.caught_moving(
                self.src, "time.step", ctx.now_ns,
                f"{self.src} stepped {step_s * 1e6:+.1f} us against its own recent "
                f"level (grandmaster {self.gm}), the path delay unchanged",
                {"step_s": step_s, "offset_s": offset_s, "offset_before_s": before,
                 "samples": n, "mean_path_delay_s": mpd_s, "noise_sigma_s": sigma,
                 "gm_identity": self.gm})
            return
        if hist and self._own_n >= STEP_WARMUP:
            level = median(list(hist))
            jump = own - level
            if abs(jump) >= max(det.ptp_step_s, STEP_SIGMAS * sigma):
                self._step_pending = (level, [own], self._level_mpd)
                return
        if hist:
            d = own - hist[-1]
            gain = max(NOISE_GAIN, 1.0 / (self._own_n + 1))
            self._own_var += gain * (d * d - self._own_var)
            self._own_n += 1
        hist.append(own)
        self._level_mpd = mpd_s

    # -- ptp.delay_attack ------------------------------------------------------------------------
    def _delay(self, mpd_s: float, own: float) -> None:
        ctx = self.ctx
        det = ctx.detect
        base = self._base
        if len(base) < DELAY_BASELINE_MIN:
            base.append((mpd_s, own))
            return
        base_mpd = min(m for m, _ in base)
        base_off = median([o for _, o in base])
        dd = mpd_s - base_mpd
        doff = own - base_off
        if dd < det.ptp_delay_jump_s:
            self._streak = 0
            if abs(doff) < det.ptp_delay_jump_s / 2:  # (a moved offset is not baseline)
                base.append((mpd_s, own))
            ctx.alerts.release("ptp.delay_attack", ctx.now_ns, self.src)
            return
        if abs(abs(doff) - dd) > det.ptp_delay_offset_tolerance * dd:
            self._streak = 0
            return
        self._streak += 1
        if self._streak < det.ptp_delay_confirm:
            return
        leg = "Sync (master to slave)" if doff < 0 else "Delay_Req (slave to master)"
        ctx.alerts.assert_(
            "ptp.delay_attack", ctx.now_ns, (self.src,),
            f"{self.src}: mean path delay up {dd * 1e6:.1f} us with the offset moved "
            f"{doff * 1e6:+.1f} us on {self._streak} samples: its {leg} messages are being "
            "delayed", {"mean_path_delay_s": mpd_s, "baseline_delay_s": base_mpd,
                        "delay_increase_s": dd, "offset_shift_s": doff,
                        "consecutive": self._streak, "delayed_leg": leg,
                        "gm_identity": self.gm},
            severity="critical", hold_down_s=det.hold_down_s)
