"""The engine: observations in, events, samples and snapshots out. Pure and deterministic.

The engine never reads a clock, a file or a socket. Time reaches it as the `rx_ns` of the
observations (and of the runner's ticks), so a replay and a live run are the same computation.

Structure (chrony's shape: one narrow interface per reference kind, selection in one place):
- a `Tracker` per source, chosen by kind, turns its observations into `Estimate`s (offset and
  error bound against host realtime) and raises the alerts that its own data justifies;
- `vote.vote` judges every source against the trust groups' consensus;
- `Detector`s watch across sources (drift against holdover, leap announcements, host steps);
- `alerts.Alerts` turns conditions into alert and clear events.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ..records import (
    Event,
    Header,
    Note,
    Observation,
    Output,
    Sample,
    Snapshot,
    SourceInfo,
    SourceStatus,
    Tick,
)
from .alerts import Alerts
from .params import Detect
from .value import Value
from .vote import _FALSE, _TRUE, Consensus, Interval, Verdict, vote

# Records that belong to no source (a tuple: `Tick | Note` would build a union per record).
_NO_SOURCE: Final = (Tick, Note)

# Alerts that make a source a suspect: caught moving against its own history and the holdover.
SUSPECT_CODES: Final = ("time.step", "time.drift")

# Engine time is bounded by the runner's ticks (host time, one a second): a record whose rx_ns
# is more than this ahead of the last tick is refused, so one record with a wrong clock cannot
# move engine time (which never goes back) and make every other source look stale. Readers
# stamp records with the host clock before they hand them over: only a stalled event loop
# makes a genuine record more than a second or two ahead of the last tick.
MAX_LEAD_NS: Final = 5_000_000_000

log = logging.getLogger(__name__)


class Estimate(Value):
    """A source's current measurement for the vote: offset and bound as of `t_ns`."""

    __slots__ = ("offset_s", "bound_s", "t_ns")
    _fields = ("offset_s", "bound_s", "t_ns")  # = __slots__ (mypyc cannot read it)

    def __init__(self, offset_s: float, bound_s: float, t_ns: int) -> None:
        self.offset_s: Final = offset_s
        self.bound_s: Final = bound_s
        self.t_ns: Final = t_ns


class Context:
    """What trackers and detectors share: config, alerts, time, outputs, the last consensus."""

    def __init__(self, header: Header, detect: Detect):
        self.header = header
        self.detect = detect
        self.alerts = Alerts()
        self.now_ns = 0
        self.consensus: Consensus = Consensus(False, 0, 0)
        self.trackers: dict[str, Tracker] = {}
        self.samples: list[Sample] = []
        self.keep_samples = True  # False: a replay whose samples nobody reads (trackers skip them)
        self.dirty = False  # a new sample arrived: vote again
        self.holdover: Any = None  # engine.holdover.Holdover, when the PPS issue installs it
        self.counters: dict[str, int] = {}
        # rx_ns of the last tick, moved by a confirmed host step: host time, which bounds
        # engine time (MAX_LEAD_NS). None before the first tick.
        self.tick_ns: int | None = None
        self.leap_list: Any = None  # engine.leapsec.LeapList the caller loaded (or None)
        # Host realtime steps seen so far (detectors/host.py): (rx_ns of the first record after
        # the step, step in ns). Trackers' estimates were shifted by `Tracker.on_host_step`.
        self.host_steps: list[tuple[int, int]] = []
        self.host_steps_total_ns = 0  # their sum: what undoes them all (detectors add it back)
        # Each tracker's aged estimate as the last vote saw it, while it still holds (a vote
        # ran in the current feed); None otherwise. `estimate` reads it.
        self.vote_estimates: dict[str, Estimate | None] | None = None

    def estimate(self, sid: str) -> Estimate | None:
        """Source `sid`'s aged estimate now: after a vote, the very value the vote used
        (computed once per vote, not once per reader); otherwise computed at `now_ns`."""
        cached = self.vote_estimates
        if cached is not None:
            return cached[sid]
        return self.trackers[sid].estimate(self.now_ns)

    def emit(self, src: str, t_ns: int, offset_s: float, bound_s: float,
             fields: dict[str, float] | None = None) -> None:
        """A tracker's new measurement: the vote is due (`dirty`), and a `Sample` is output
        unless nobody reads samples (`keep_samples` False: a replay without sinks)."""
        self.dirty = True
        if self.keep_samples:
            self.samples.append(Sample(src, t_ns, offset_s, bound_s, fields or {}))

    def add_host_step(self, rx_ns: int, step_ns: int) -> None:
        self.host_steps.append((rx_ns, step_ns))
        self.host_steps_total_ns += step_ns

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    def refuse(self, why: str, obs: Observation, what: str) -> None:
        """`obs` is a bad record: counted as `refused.<why>`, warned about on the 1st, 10th,
        100th... of its kind (a flood of them cannot flood the log; the engine reads no clock)."""
        key = f"refused.{why}"
        n = self.counters.get(key, 0) + 1
        self.counters[key] = n
        if n == 10 ** (len(str(n)) - 1):
            src = obs.src or obs.type
            log.warning("engine: %s record of %s at rx_ns %d refused: %s (%d refused so far)",
                        obs.type, src, obs.rx_ns, what, n)


# Tests (and deployments) subclass trackers in plain Python; a mypyc-compiled class refuses
# that unless it allows it (a no-op when not compiled).
@mypyc_attr(allow_interpreted_subclasses=True)
class Tracker:
    """One source. Subclasses decode their kind's observations and keep its sample statistics.

    A tracker calls `ctx.emit(...)` for each accepted measurement and sets `self.estimate_` to
    the estimate the vote should use; it raises the alerts its own data justifies through
    `ctx.alerts`. It marks itself usable or not (with the reason) for the verdict.
    """

    kind = "?"
    # What detectors ask of a tracker instead of its kind's name:
    judged_for_steps = False  # drift tests its offset for steps (NTP-like; PPS judges its own)
    ntp_server = False  # info.server is an NTP server that a local chronyd may follow

    def __init__(self, src: str, info: SourceInfo, ctx: Context):
        self.src = src
        self.info = info
        self.group = info.group  # read on every vote
        self._aging_ppm = ctx.detect.aging_ppm
        self.ctx = ctx
        self.estimate_: Estimate | None = None
        self.last_usable_ns: int | None = None  # last time a usable measurement arrived
        self.last_seen_ns: int | None = None  # last time anything arrived
        self.unusable_reason: str | None = None  # set while the source answers but can't be used
        self.first_ns: int | None = None

    def feed(self, obs: Observation) -> None:
        """Take one observation of this source."""

    def on_tick(self, now_ns: int) -> None:
        """Time passed (every record moves `ctx.now_ns`); check what is overdue."""

    def stale_limit_s(self) -> float:
        return self.ctx.detect.stale_gnss_s

    def noise_floor_s(self, bound_s: float) -> float:
        """The smallest noise this source's offset can have (drift's floor; `bound_s` is the
        estimate's bound): by default a PPS edge's microseconds of interrupt jitter."""
        return self.ctx.detect.drift_sigma_floor_gnss_s

    def on_host_step(self, step_s: float) -> None:
        """Host realtime jumped by step_s: re-express what was measured before in the new host
        time (offset = source - host realtime, so it drops by step_s). Subclasses that keep a
        history of offsets shift it too."""
        e = self.estimate_
        if e is not None:
            self.estimate_ = Estimate(e.offset_s - step_s, e.bound_s, e.t_ns)

    def estimate(self, now_ns: int) -> Estimate | None:
        """The estimate for the vote at now_ns, its bound aged for the time since it was taken."""
        e = self.estimate_
        if e is None or self.unusable_reason is not None or self.is_stale(now_ns):
            return None
        age_ns = now_ns - e.t_ns
        age_s = age_ns / 1e9 if age_ns > 0 else 0.0
        return Estimate(e.offset_s, e.bound_s + age_s * self._aging_ppm * 1e-6, e.t_ns)

    def is_stale(self, now_ns: int) -> bool:
        ref = self.last_usable_ns if self.last_usable_ns is not None else self.first_ns
        if ref is None:
            return False
        return now_ns - ref > self.stale_limit_s() * 1e9

    def status_fields(self) -> dict[str, Any]:
        """Extra numbers for the snapshot and dashboards (units in names)."""
        return {}


class Detector:
    """A cross-source detector: sees every observation after its tracker, and every vote."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def admit(self, obs: Observation) -> tuple[Observation, ...] | None:
        """The engine's input gate, before anything sees `obs` (a record with raw_ns): None to
        take it now, or the records to take now in its place (none while it is held). At most
        one detector overrides it (the host clock's: a step is confirmed before it is taken)."""
        return None

    def finish(self) -> None:
        """The input ended (`Engine.finish`): a record still held is resolved."""

    def before_observation(self, obs: Observation) -> None:
        """Before any tracker takes `obs` (host-clock checks: a step must be known first)."""

    def on_observation(self, obs: Observation) -> None:
        """After the source's tracker has taken `obs`."""

    def on_vote(self, consensus: Consensus) -> None:
        """After a vote."""


def _tracker_classes() -> dict[str, type[Tracker]]:
    from . import registry

    return registry.tracker_classes()


def _detector_classes() -> list[type[Detector]]:
    from . import registry

    return registry.DETECTORS


class Engine:
    """Feed observations in trace order; get back the events, samples and snapshots they cause."""

    def __init__(self, header: Header, detect: Detect | None = None, leap_list: Any = None,
                 snapshots: bool = True, samples: bool = True):
        self.ctx = Context(header, detect or Detect())
        self.ctx.leap_list = leap_list  # the IERS list as engine.leapsec.LeapList, or None
        self.ctx.alerts = Alerts()
        classes = _tracker_classes()
        for sid, info in header.sources.items():
            cls = classes.get(info.kind)
            if cls is not None:
                self.ctx.trackers[sid] = cls(sid, info, self.ctx)
        self.detectors = [cls(self.ctx) for cls in _detector_classes()]
        # Each hook is called only on the detectors that override it (most are empty).
        self._before = [d.before_observation for d in self.detectors
                        if type(d).before_observation is not Detector.before_observation]
        self._on_obs = [d.on_observation for d in self.detectors
                        if type(d).on_observation is not Detector.on_observation]
        self._on_vote = [d.on_vote for d in self.detectors
                         if type(d).on_vote is not Detector.on_vote]
        gates = [d.admit for d in self.detectors if type(d).admit is not Detector.admit]
        assert len(gates) <= 1, "one input gate (Detector.admit) at most"
        self._gate = gates[0] if gates else None
        # Only trackers that override `on_tick` are called on every record (the base one is empty).
        self._tickers = [tr for tr in self.ctx.trackers.values()
                         if type(tr).on_tick is not Tracker.on_tick]
        self._all_started = not self.ctx.trackers  # every tracker has its first_ns
        self._streak: dict[str, int] = {}  # consecutive falseticker votes per source
        self._voted_at: dict[str, int] = {}  # estimate t_ns last judged per source
        self._next_snapshot_ns: int | None = None
        self._snapshots = snapshots  # False: a replay whose snapshots nobody reads
        self.ctx.keep_samples = samples
        self.unknown_sources: dict[str, int] = {}

    # -- input -----------------------------------------------------------------------------
    def feed(self, obs: Observation) -> list[Output]:
        """Take one observation; the outputs it causes. A bad record is refused (counted in
        `ctx.counters` as `refused.*`, warned about) and changes nothing. Input checks: the
        gate (a host step is confirmed before it is taken), then engine time's bound."""
        gate = self._gate
        if gate is not None and obs.raw_ns is not None:
            now = gate(obs)
            if now is not None:
                out: list[Output] = []
                for o in now:
                    out.extend(self._bounded(o))
                return out
        return self._bounded(obs)

    def _bounded(self, obs: Observation) -> list[Output]:
        tick = self.ctx.tick_ns
        if tick is not None and obs.rx_ns - tick > MAX_LEAD_NS and type(obs) is not Tick:
            self.ctx.refuse("future", obs, f"{(obs.rx_ns - tick) / 1e9:.3f} s ahead of the "
                            f"host clock (the last tick)")
            return []
        return self._process(obs)

    def _process(self, obs: Observation) -> list[Output]:
        ctx = self.ctx
        if type(obs) is Tick:
            ctx.tick_ns = obs.rx_ns
        # Records may arrive up to 2 s out of order: engine time never goes backwards.
        if obs.rx_ns > ctx.now_ns:
            ctx.now_ns = obs.rx_ns
        now = ctx.now_ns
        ctx.vote_estimates = None  # trackers may change from here on
        for hook in self._before:
            hook(obs)
        if not isinstance(obs, _NO_SOURCE):
            tr = ctx.trackers.get(obs.src)
            if tr is None:
                self.unknown_sources[obs.src] = self.unknown_sources.get(obs.src, 0) + 1
            else:
                if tr.first_ns is None:
                    tr.first_ns = obs.rx_ns
                tr.last_seen_ns = max(tr.last_seen_ns or 0, obs.rx_ns)
                tr.feed(obs)
        for hook in self._on_obs:
            hook(obs)
        if not self._all_started:
            for tr in ctx.trackers.values():
                if tr.first_ns is None:
                    tr.first_ns = now  # a source that never speaks goes stale too
            self._all_started = True
        for tr in self._tickers:
            tr.on_tick(now)
        self._check_stale(now)
        if ctx.dirty or isinstance(obs, Tick):
            self._vote(now)
        alerts = ctx.alerts
        if alerts.has_active():
            alerts.tick(now)
        out: list[Output] = []
        if ctx.samples:
            out.extend(ctx.samples)
            ctx.samples = []
        if alerts.has_pending():
            out.extend(alerts.drain())
        if not self._snapshots:
            return out
        if self._next_snapshot_ns is None:
            self._next_snapshot_ns = now
        if now >= self._next_snapshot_ns:
            out.append(self.snapshot())
            step = int(ctx.detect.snapshot_interval_s * 1e9)
            self._next_snapshot_ns = now - now % step + step
        return out

    # -- stale -----------------------------------------------------------------------------
    def _check_stale(self, now: int) -> None:
        alerts = self.ctx.alerts
        for sid, tr in self.ctx.trackers.items():
            stale = tr.is_stale(now)
            # Only a change does anything: source.stale clears at its first release (hold-down
            # 0), and asserting it again while active would only replace unread evidence.
            if stale == ("source.stale" in alerts.active_codes
                         and alerts.is_active("source.stale", sid)):
                continue
            if stale:
                ref = tr.last_usable_ns
                alerts.assert_(
                    "source.stale", now, (sid,),
                    f"{sid}: no usable data for {tr.stale_limit_s():.0f} s",
                    {"limit_s": tr.stale_limit_s(),
                     "last_usable_ns": ref, "silent_s": (now - (ref or tr.first_ns or now)) / 1e9},
                    severity="warning", hold_down_s=0.0)
            else:
                alerts.release("source.stale", now, sid)

    # -- vote ------------------------------------------------------------------------------
    def _vote(self, now: int) -> None:
        ctx = self.ctx
        ctx.dirty = False
        ivs = []
        ests: dict[str, Estimate | None] = {}
        for sid, tr in ctx.trackers.items():
            e = ests[sid] = tr.estimate(now)
            if e is not None:
                ivs.append(Interval(sid, tr.group, e.offset_s, e.bound_s))
        ctx.vote_estimates = ests
        c = vote(ivs, self._suspects())
        ctx.consensus = c
        self._falsetickers(now, c)
        if not c.quorum and c.groups_voting + len(c.split_groups) >= 2:
            ctx.alerts.assert_(
                "consensus.lost", now, (),
                f"no strict majority of trust groups: {c.groups_agreeing} of {c.groups_voting} agree",
                {"groups_voting": c.groups_voting, "groups_agreeing": c.groups_agreeing,
                 "split_groups": list(c.split_groups),
                 "intervals": {iv.src: [iv.offset_s, iv.bound_s] for iv in ivs}},
                severity="critical", key="", hold_down_s=ctx.detect.hold_down_s)
        elif c.quorum and "consensus.lost" in ctx.alerts.active_codes:
            ctx.alerts.release("consensus.lost", now, "")
        for hook in self._on_vote:
            hook(c)

    def _suspects(self) -> frozenset[str]:
        """Sources with an active time.step or time.drift: judged, but kept out of the consensus."""
        codes = self.ctx.alerts.active_codes
        if not (codes.get("time.step") or codes.get("time.drift")):
            return frozenset()
        return frozenset(s for code, _, srcs, _ in self.ctx.alerts.active()
                         if code in SUSPECT_CODES for s in srcs)

    def _falsetickers(self, now: int, c: Consensus) -> None:
        ctx = self.ctx
        trackers, voted_at = ctx.trackers, self._voted_at
        for sid, (verdict, reason) in c.verdicts.items():
            e = trackers[sid].estimate_
            # Count a verdict once per new sample of the source, not once per vote.
            if e is None or voted_at.get(sid) == e.t_ns:
                continue
            voted_at[sid] = e.t_ns
            if verdict is _FALSE:
                self._streak[sid] = self._streak.get(sid, 0) + 1
                if self._streak[sid] >= ctx.detect.falseticker_confirm:
                    ctx.alerts.assert_(
                        "source.falseticker", now, (sid,),
                        f"{sid} disagrees with the majority of trust groups: {reason}",
                        {"offset_s": e.offset_s, "bound_s": e.bound_s,
                         "consensus_offset_s": c.offset_s,
                         "consensus_lo_s": c.lo_s, "consensus_hi_s": c.hi_s,
                         "groups_agreeing": c.groups_agreeing, "groups_voting": c.groups_voting,
                         "consecutive": self._streak[sid]},
                        severity="critical", hold_down_s=ctx.detect.hold_down_s)
            elif verdict is _TRUE:
                self._streak[sid] = 0
                if "source.falseticker" in ctx.alerts.active_codes:
                    ctx.alerts.release("source.falseticker", now, sid)

    # -- output ----------------------------------------------------------------------------
    def verdict(self, sid: str, now: int) -> tuple[str, str]:
        tr = self.ctx.trackers[sid]
        if tr.unusable_reason is not None:
            return Verdict.UNUSABLE.value, tr.unusable_reason
        if tr.is_stale(now):
            return Verdict.STALE.value, f"no usable data for {tr.stale_limit_s():.0f} s"
        if tr.estimate_ is None:
            return Verdict.INIT.value, "no usable sample yet"
        v = self.ctx.consensus.verdicts.get(sid)
        if v is None:
            return Verdict.INIT.value, "not judged yet"
        return v[0].value, v[1]

    def snapshot(self) -> Snapshot:
        ctx = self.ctx
        now = ctx.now_ns
        srcs = []
        for sid, tr in ctx.trackers.items():
            verdict, reason = self.verdict(sid, now)
            e = ctx.estimate(sid) or tr.estimate_
            srcs.append(SourceStatus(sid, tr.kind, tr.info.group, verdict, reason,
                                     e.offset_s if e else None, e.bound_s if e else None,
                                     tr.last_usable_ns, tr.status_fields()))
        c = ctx.consensus
        ho = ctx.holdover
        return Snapshot(
            t_ns=now, sources=tuple(srcs), quorum=c.quorum, groups_agreeing=c.groups_agreeing,
            groups_voting=c.groups_voting, consensus_offset_s=c.offset_s,
            consensus_bound_s=c.bound_s,
            active_alerts=tuple(f"{code}:{aid}" for code, aid, _, _ in ctx.alerts.active()),
            holdover_ppm=getattr(ho, "freq_ppm", None) if ho is not None else None,
        )

    def finish(self) -> list[Event]:
        """Events still pending at the end of a trace (none are invented)."""
        for d in self.detectors:
            d.finish()
        return self.ctx.alerts.drain()
