"""The engine: observations in, events, samples and snapshots out. Pure and deterministic.

The engine never reads a clock, a file or a socket. Time reaches it as the `rx_ns` of the
observations (and of the runner's ticks), so a replay and a live run are the same computation.

Structure (chrony's shape: one narrow interface per reference kind, selection in one place):
- a `Tracker` per source, chosen by kind, turns its observations into `Estimate`s (offset and
  error bound against host realtime) and raises the alerts that its own data justifies;
- `Detector`s watch across sources (drift against holdover, leap announcements, host steps);
  those that catch a source *moving* (time.step, time.drift) say so through the Context;
- `Engine._select` decides every source's state in one place (chrony's `SRC_SelectSource`):
  unusable, stale, init, or judged by `vote.vote` against the trust groups' consensus, with the
  sources caught moving withheld from it and the falseticker streak counted;
- `alerts.Alerts` turns conditions into alert and clear events; the source states' alerts
  (source.stale, source.falseticker, time.step, time.drift) follow from those states.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from heapq import heappop, heappush
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
from .vote import (
    AUTH_MODES,
    AUTH_NA,
    AUTH_NONE,
    AUTH_NTS,
    Ballot,
    Consensus,
    Interval,
    Verdict,
)

# Records that belong to no source (a tuple: `Tick | Note` would build a union per record).
_NO_SOURCE: Final = (Tick, Note)

# Engine time is bounded by the runner's ticks (host time, one a second): a record whose rx_ns
# is more than this ahead of the last tick is refused, so one record with a wrong clock cannot
# move engine time (which never goes back) and make every other source look stale. Readers
# stamp records with the host clock before they hand them over: only a stalled event loop
# makes a genuine record more than a second or two ahead of the last tick.
MAX_LEAD_NS: Final = 5_000_000_000

log = logging.getLogger(__name__)

# A source caught moving agrees again when its offset is within this many sigmas of the level
# it held before it moved (against the holdover prediction, else its own host-step-free
# history), and its interval overlaps the consensus of the others.
AGREE_SIGMAS: Final = 4.0
# The level (and noise) a source holds while it is not moving: an average over this long, so a
# slow push before it is caught moves it little.
LEVEL_TAU_S: Final = 600.0

class Estimate(Value):
    """A source's current measurement for the vote: offset and bound as of `t_ns`."""

    _fields = ("offset_s", "bound_s", "t_ns")
    __slots__ = _fields

    def __init__(self, offset_s: float, bound_s: float, t_ns: int) -> None:
        self.offset_s: Final = offset_s
        self.bound_s: Final = bound_s
        self.t_ns: Final = t_ns


@dataclass(slots=True)
class Moving:
    """One reason a source is *moving*: a detector caught it stepping or drifting (`time.step`,
    `time.drift`) against its own history, the holdover or the consensus of the others."""

    since_ns: int  # when it was caught
    hold_down_s: float  # how long it must agree again before it is no longer moving
    agreeing_since_ns: int | None = None  # since when its detector finds it agreeing again


@dataclass(slots=True)
class Level:
    """A source's usual level of one residual and its noise (an average over LEVEL_TAU_S), kept
    while it is not moving: what "agrees again" is measured against."""

    mean: float = 0.0
    var: float = 0.0
    n: int = 0
    t_ns: int = 0

    def add(self, x: float, t_ns: int, floor_s: float) -> None:
        if self.n == 0:
            self.mean, self.n, self.t_ns = x, 1, t_ns
            return
        gain = (t_ns - self.t_ns) / 1e9 / LEVEL_TAU_S
        gain = min(max(gain, 1.0 / (self.n + 1)), 1.0)
        d = x - self.mean
        lim = AGREE_SIGMAS * self.sigma(floor_s)
        if self.n >= 8 and abs(d) > lim:  # winsorised: an outlier moves it by one limit at most
            d = lim if d > 0 else -lim
        self.mean += gain * d
        self.var += gain * (d * d - self.var)
        self.n += 1
        self.t_ns = t_ns

    def sigma(self, floor_s: float) -> float:
        # (math.pow: the C pow() that ** calls, compiled without the generic power; var >= 0)
        s = math.pow(self.var, 0.5)
        return max(s, floor_s)


@dataclass(slots=True)
class SourceState:
    """What the engine holds about one source beside its tracker's measurements (chrony: a
    source's `status`). The detectors set `moving` (through `Context.caught_moving`); the
    witnesses (`Context.witness`) end it; `Engine._select` sets the rest and reads it all."""

    # The state `_select` found: UNUSABLE, STALE or INIT, or None when the vote judges it (its
    # verdict is then the consensus's).
    status: Verdict | None = Verdict.INIT
    stale: bool = False  # no usable data for its stale limit (source.stale follows)
    moving: dict[str, Moving] = field(default_factory=dict)  # code -> cause, while caught moving
    streak: int = 0  # falseticker verdicts in a row, one per new sample (source.falseticker)
    judged_t_ns: int | None = None  # t_ns of the estimate the streak last counted
    witnessed_t_ns: int | None = None  # t_ns of the estimate the witnesses last judged
    voted: Estimate | None = None  # the estimate it has in the engine's ballot (None: not in it)
    # Its usual levels while not moving: against the holdover prediction, and its own offset in
    # host-step-free host time (the witness when there is no holdover).
    held: Level = field(default_factory=Level)
    own: Level = field(default_factory=Level)


class Context:
    """What trackers and detectors share: config, alerts, time, outputs, the last consensus."""

    def __init__(self, header: Header, detect: Detect):
        self.header = header
        self.detect = detect
        self.alerts = Alerts()
        self.now_ns = 0
        self.consensus: Consensus = Consensus(False, 0, 0)
        # The vote's inputs, kept between votes (vote.Ballot: a record changes its source's
        # entry); its entries are the sources the vote judges (state None), as the engine
        # decided them last.
        self.ballot = Ballot(detect.aging_ppm)
        self.trackers: dict[str, Tracker] = {}
        self.states: dict[str, SourceState] = {}  # per source, owned by the engine
        self.moving_count = 0  # sources caught moving now (none: the vote need not look)
        # Per source: (rx_ns, raw_ns) of its latest record, and of the latest record of all
        # (where the holdover is asked for its prediction).
        self.rx_raw: dict[str, tuple[int, int]] = {}
        self.now_raw: tuple[int, int] | None = None
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
        # The time of the vote that ran in the current feed (None: none did); `estimate` reads it.
        self.vote_now_ns: int | None = None
        # The sources whose tracker may have changed since the previous vote, in the header's
        # order (set by each vote before its `Detector.on_vote` hooks: they judge these).
        self.voted_since: list[tuple[str, Tracker, SourceState]] = []

    def estimate(self, sid: str) -> Estimate | None:
        """Source `sid`'s aged estimate now: after a vote, the very value the vote used (its
        bound aged to the vote's time, None unless the vote judged it); otherwise computed at
        `now_ns`."""
        tr = self.trackers[sid]
        now = self.vote_now_ns
        if now is not None:
            return tr.aged(now) if self.states[sid].status is None else None
        return tr.estimate(self.now_ns)

    def emit(self, src: str, t_ns: int, offset_s: float, bound_s: float,
             fields: dict[str, float] | None = None) -> None:
        """A tracker's new measurement: the vote is due (`dirty`), and a `Sample` is output
        unless nobody reads samples (`keep_samples` False: a replay without sinks)."""
        self.dirty = True
        if self.keep_samples:
            self.samples.append(Sample(src, t_ns, offset_s, bound_s, fields or {}))

    def caught_moving(self, sid: str, code: str, t_ns: int, message: str,
                      evidence: dict[str, Any]) -> None:
        """A detector caught source `sid` moving (`code`: time.step or time.drift). It stays
        moving, judged but withheld from the consensus, until it has agreed again for the
        hold-down (`witness`). The alert follows: raised now, cleared when it ends."""
        causes = self.states[sid].moving
        m = causes.get(code)
        if m is None and causes:
            # Already moving under another code: the same condition, one alert for it.
            for other in causes.values():
                other.agreeing_since_ns = None
            return
        if m is None:
            self.moving_count += 1
            causes[code] = Moving(t_ns, self.detect.hold_down_s)
        else:
            m.agreeing_since_ns = None
        # Hold-down 0: the state keeps the hold-down, the alert clears when the state says so.
        self.alerts.assert_(code, t_ns, (sid,), message, evidence, severity="critical",
                            hold_down_s=0.0)

    def witness(self, sid: str, tr: Tracker, st: SourceState, e: Estimate,
                c: Consensus) -> None:
        """Judge source `sid`'s new estimate `e` against the witnesses (once per sample).

        Not moving: its usual levels learn it. Moving: it agrees again only when its offset is
        back at the level it held before it moved, against the holdover prediction (else its own
        host-step-free history), and its interval overlaps the consensus of the others; any
        disagreement restarts the hold-down, so a condition that persists is never cleared.
        """
        st.witnessed_t_ns = e.t_ns
        floor = tr.noise_floor_s(e.bound_s)
        own = e.offset_s + self.host_steps_total_ns / 1e9
        ho = self.holdover
        res = None
        pair = self.rx_raw.get(sid)
        if pair is not None and ho is not None and ho.ready:
            res = ho.residual(pair[0], pair[1], e.offset_s)
        if not st.moving:
            if self.alerts.has_active() and self.alerts.names(sid):
                return  # under another alert of its own (a delay attack...): not its usual level
            if res is not None:
                st.held.add(res.residual_s, e.t_ns, floor)
            st.own.add(own, e.t_ns, floor)
            return
        agree = True
        held = st.held
        if res is not None and held.n:
            # The level was known when it was caught; since then the oscillator may have
            # wandered (a random walk of its frequency: (2/3) w t sqrt(t / block) of phase).
            since = min(m.since_ns for m in st.moving.values())
            age_s = (e.t_ns - since) / 1e9 if e.t_ns > since else 0.0
            wander = ho.wander_ppm * 1e-6 * age_s * (age_s / ho.block_s) ** 0.5 * 2 / 3
            tol = AGREE_SIGMAS * (held.sigma(floor) ** 2 + wander ** 2) ** 0.5
            agree = abs(res.residual_s - held.mean) <= tol
        elif st.own.n:
            agree = abs(own - st.own.mean) <= AGREE_SIGMAS * st.own.sigma(floor)
        if agree and c.quorum and c.lo_s is not None and c.hi_s is not None:
            agree = e.offset_s + e.bound_s >= c.lo_s and e.offset_s - e.bound_s <= c.hi_s
        for m in st.moving.values():
            if not agree:
                m.agreeing_since_ns = None
            elif m.agreeing_since_ns is None:
                m.agreeing_since_ns = e.t_ns

    def settle_moving(self, now_ns: int) -> None:
        """End, at now_ns, what has agreed again for its hold-down (after every record)."""
        for sid, st in self.states.items():
            if st.moving:
                for code, m in list(st.moving.items()):
                    self._settle(sid, code, m, now_ns)

    def _settle(self, sid: str, code: str, m: Moving, t_ns: int) -> None:
        since = m.agreeing_since_ns
        if since is not None and t_ns - since >= m.hold_down_s * 1e9:
            causes = self.states[sid].moving
            del causes[code]
            if not causes:
                self.moving_count -= 1
            self.alerts.release(code, t_ns, sid)

    def moving_sources(self) -> frozenset[str]:
        """Sources caught moving now: the vote judges them but keeps them out of the consensus."""
        if not self.moving_count:
            return frozenset()
        return frozenset(sid for sid, st in self.states.items() if st.moving)

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
    # info.server is an NTP server that a local chronyd may follow; also: an NTP source to
    # [vote] auth_mode (require/prefer withhold it unless authenticated).
    ntp_server = False
    auth: str | None = None  # "nts": every reply it uses is authenticated (records.AUTH_NTS)

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
        # What the vote's auth_mode sees (engine/vote.py AUTH_*).
        self.vote_auth = AUTH_NTS if self.auth else AUTH_NONE if self.ntp_server else AUTH_NA

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
        history of offsets shift it too. Its arrival times move with the host time (silence is
        measured in it); the estimate keeps its `t_ns`, which names the sample it came from."""
        e = self.estimate_
        if e is not None:
            self.estimate_ = Estimate(e.offset_s - step_s, e.bound_s, e.t_ns)
        step_ns = round(step_s * 1e9)
        if self.last_usable_ns is not None:
            self.last_usable_ns += step_ns
        if self.last_seen_ns is not None:
            self.last_seen_ns += step_ns
        if self.first_ns is not None:
            self.first_ns += step_ns

    def estimate(self, now_ns: int) -> Estimate | None:
        """The estimate for the vote at now_ns (`aged`), None while the source is unusable or
        stale."""
        if self.unusable_reason is not None or self.is_stale(now_ns):
            return None
        return self.aged(now_ns)

    def aged(self, now_ns: int) -> Estimate | None:
        """The latest estimate, its bound aged for the time since it was taken."""
        e = self.estimate_
        if e is None:
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

    def stale_due_ns(self) -> int | None:
        """The engine time after which `is_stale` turns true if nothing is fed to this tracker
        (it is stale once now is past it); None: the engine asks `is_stale` on every record.
        A tracker that gives a time promises that its staleness, `unusable_reason` and
        `estimate_` change only when it is fed (or ticked, or on a host step): the engine then
        looks at it only then, so a record costs the same whatever the number of sources."""
        return None


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
                 snapshots: bool = True, samples: bool = True, auth_mode: str = "mix"):
        if auth_mode not in AUTH_MODES:
            raise ValueError(f"auth_mode must be one of {', '.join(AUTH_MODES)}, got {auth_mode!r}")
        self.ctx = Context(header, detect or Detect())
        self.ctx.leap_list = leap_list  # the IERS list as engine.leapsec.LeapList, or None
        self.ctx.alerts = Alerts()
        classes = _tracker_classes()
        for sid, info in header.sources.items():
            cls = classes.get(info.kind)
            if cls is not None:
                self.ctx.trackers[sid] = cls(sid, info, self.ctx)
                self.ctx.states[sid] = SourceState()
        # (sid, tracker, state) of every source, in the header's order.
        self._members = [(sid, tr, self.ctx.states[sid]) for sid, tr in self.ctx.trackers.items()]
        self._index = {sid: i for i, (sid, _, _) in enumerate(self._members)}
        # What `_select` looks at on a record (indices into _members): the sources whose tracker
        # may have changed (fed, ticked), those asked on every record (no `stale_due_ns`), and
        # those whose stale time has come (a heap of (due, index); `_due_of` is each source's
        # current one: older entries are skipped). All of them after a host step.
        self._changed: set[int] = set()
        self._polled: set[int] = set(range(len(self._members)))
        self._due: list[tuple[int, int]] = []
        self._due_of: list[int | None] = [None] * len(self._members)
        self._resync = True  # look at every source on the next record
        self._steps_seen = 0  # host steps seen (ctx.host_steps)
        self._since_vote: set[int] = set()  # sources looked at since the last vote
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
        self._next_snapshot_ns: int | None = None
        self._snapshots = snapshots  # False: a replay whose snapshots nobody reads
        self.ctx.keep_samples = samples
        self.unknown_sources: dict[str, int] = {}
        # Per record type: (isinstance of Tick, of _NO_SOURCE), decided once. Compiled, an
        # isinstance that fails on a record (a msgspec Struct: its metaclass is asked) costs
        # ~800 instructions, twice per NTP record.
        self._type_kind: dict[type, tuple[bool, bool]] = {}
        # [vote] auth_mode; `prefer` is `require` once any source is authenticated (chrony).
        self.auth_mode = auth_mode if auth_mode != "prefer" else (
            "require" if any(tr.auth for tr in self.ctx.trackers.values()) else "ignore")

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
        rx = obs.rx_ns  # (a record's fields are read once: compiled, each read is a lookup)
        if type(obs) is Tick:
            ctx.tick_ns = rx
        # Records may arrive up to 2 s out of order: engine time never goes backwards (but
        # with a confirmed host step: detectors/host.py).
        if rx > ctx.now_ns:
            ctx.now_ns = rx
        now = ctx.now_ns
        ctx.vote_now_ns = None  # trackers may change from here on
        for hook in self._before:
            hook(obs)
        raw = obs.raw_ns
        if raw is not None:
            ctx.now_raw = (rx, raw)
        kind = self._type_kind.get(type(obs))
        if kind is None:
            kind = self._type_kind[type(obs)] = (isinstance(obs, Tick),
                                                 isinstance(obs, _NO_SOURCE))
        is_tick, no_source = kind
        if not no_source:
            src = obs.src
            if raw is not None:
                ctx.rx_raw[src] = (rx, raw)
            tr = ctx.trackers.get(src)
            if tr is None:
                self.unknown_sources[src] = self.unknown_sources.get(src, 0) + 1
            else:
                if tr.first_ns is None:
                    tr.first_ns = rx
                tr.last_seen_ns = max(tr.last_seen_ns or 0, rx)
                tr.feed(obs)
                self._changed.add(self._index[src])
        for hook in self._on_obs:
            hook(obs)
        if not self._all_started:
            for tr in ctx.trackers.values():
                if tr.first_ns is None:
                    tr.first_ns = now  # a source that never speaks goes stale too
            self._all_started = True
            self._resync = True
        for tr in self._tickers:
            tr.on_tick(now)
            self._changed.add(self._index[tr.src])
        self._select(now, ctx.dirty or is_tick)
        if ctx.moving_count:
            ctx.settle_moving(now)
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

    # -- selection -------------------------------------------------------------------------
    def _select(self, now: int, voting: bool) -> None:
        """Decide every source's state: here, and nowhere else (chrony's SRC_SelectSource).

        After every record, in this order: *unusable* (its tracker says why), *stale* (no usable
        data for its stale limit: source.stale follows), *init* (no estimate yet); the others
        are judged by the vote, when one is due (`voting`: a new sample, or a tick). The vote
        judges a source caught *moving* (`SourceState.moving`, set by the detectors) like any
        other but keeps it out of the consensus; a falseticker verdict on
        `falseticker_confirm` new samples in a row raises source.falseticker, a truechimer
        verdict releases it.

        A source's state changes only when its tracker changes or its stale time comes
        (`Tracker.stale_due_ns`): only those sources are looked at, in the header's order.
        """
        ctx = self.ctx
        changed = self._changed
        if len(ctx.host_steps) != self._steps_seen:  # every tracker was re-expressed
            self._steps_seen = len(ctx.host_steps)
            self._resync = True
        if self._resync:
            self._resync = False
            changed.update(range(len(self._members)))
        else:
            changed |= self._polled
            due = self._due
            while due and due[0][0] < now:  # stale once now is past its due time
                d, i = heappop(due)
                if self._due_of[i] == d:
                    self._due_of[i] = None
                    changed.add(i)
        if changed:
            for i in sorted(changed):
                self._look(i, now)
            changed.clear()
        if voting:
            self._vote(now)

    def _look(self, i: int, now: int) -> None:
        """Source i's state now (it may have changed): stale, status, its entry in the ballot."""
        sid, tr, st = self._members[i]
        alerts = self.ctx.alerts
        stale = tr.is_stale(now)
        if stale != st.stale:
            st.stale = stale
            if stale:
                ref = tr.last_usable_ns
                alerts.assert_(
                    "source.stale", now, (sid,),
                    f"{sid}: no usable data for {tr.stale_limit_s():.0f} s",
                    {"limit_s": tr.stale_limit_s(), "last_usable_ns": ref,
                     "silent_s": (now - (ref or tr.first_ns or now)) / 1e9},
                    severity="warning", hold_down_s=0.0)
            else:
                alerts.release("source.stale", now, sid)
        st.status = (Verdict.UNUSABLE if tr.unusable_reason is not None else Verdict.STALE if stale
                     else Verdict.INIT if tr.estimate_ is None else None)
        due = tr.stale_due_ns()
        if due is None:
            self._polled.add(i)
        else:
            self._polled.discard(i)
            if not stale and due != self._due_of[i]:
                self._due_of[i] = due
                heappush(self._due, (due, i))
        e = tr.estimate_ if st.status is None else None
        if e is not st.voted:
            st.voted = e
            if e is None:
                self.ctx.ballot.drop(sid)
            else:
                self.ctx.ballot.put(sid, i, tr.group, e.offset_s, e.bound_s, e.t_ns, tr.vote_auth)
        self._since_vote.add(i)

    def _vote(self, now: int) -> None:
        ctx = self.ctx
        ctx.dirty = False
        ctx.vote_now_ns = now
        c = self.ctx.ballot.vote(now, ctx.moving_sources(), self._anchor(), self.auth_mode)
        ctx.consensus = c
        # Only the sources looked at since the last vote can have a sample not judged yet.
        members = self._members
        judged = ctx.voted_since = [members[i] for i in sorted(self._since_vote)]
        self._since_vote.clear()
        self._falsetickers(now, c, judged)
        for sid, tr, st in judged:
            e = tr.estimate_
            if st.status is None and e is not None and st.witnessed_t_ns != e.t_ns:
                ctx.witness(sid, tr, st, e, c)
        if c.auth_split is not None or "consensus.auth_split" in ctx.alerts.active_codes:
            self._auth_split(now, c, self.ctx.ballot.intervals(now))
        if not c.quorum and c.auth_split is None and c.groups_voting + len(c.split_groups) >= 2:
            ivs = self.ctx.ballot.intervals(now)
            ctx.alerts.assert_(
                "consensus.lost", now, (),
                f"no strict majority of trust groups: {c.groups_agreeing} of {c.groups_voting} agree",
                {"groups_voting": c.groups_voting, "groups_agreeing": c.groups_agreeing,
                 "split_groups": list(c.split_groups),
                 "intervals": {iv.src: [iv.offset_s, iv.bound_s] for iv in ivs}},
                severity="critical", key="", hold_down_s=ctx.detect.hold_down_s)
        elif c.quorum:
            ctx.alerts.release("consensus.lost", now, "")
        for hook in self._on_vote:
            hook(c)

    def _auth_split(self, now: int, c: Consensus, ivs: list[Interval]) -> None:
        """consensus.auth_split (auth_mode mix): the authenticated groups against the
        unauthenticated majority, while they disagree."""
        alerts = self.ctx.alerts
        if c.auth_split is None:
            alerts.release("consensus.auth_split", now, "")
            return
        auth_groups, majority = c.auth_split
        side = set(auth_groups)
        alerts.assert_(
            "consensus.auth_split", now, (),
            f"authenticated groups {', '.join(auth_groups)} disagree with the unauthenticated "
            f"majority {', '.join(majority)}: no consensus, no falseticker named",
            {"authenticated_groups": list(auth_groups), "majority_groups": list(majority),
             "authenticated_sources": sorted(iv.src for iv in ivs if iv.group in side),
             "majority_sources": sorted(iv.src for iv in ivs if iv.group in majority),
             "groups_voting": c.groups_voting, "groups_agreeing": c.groups_agreeing,
             "intervals": {iv.src: [iv.offset_s, iv.bound_s] for iv in ivs}},
            severity="critical", key="", hold_down_s=self.ctx.detect.hold_down_s)

    def _anchor(self) -> tuple[float, float] | None:
        """The holdover clock's prediction now, as an offset and its 1-sigma, once a precise
        reference (a PPS) has taught it: the vote keeps the consensus on it, so no source that
        moved, precise as it may be, can drag the consensus away (None: no such witness)."""
        ho, pair = self.ctx.holdover, self.ctx.now_raw
        if ho is None or pair is None or not ho.ready or not ho.precise:
            return None
        p = ho.predict(pair[1])
        if p is None:
            return None
        return (p.ref_ns - pair[0]) / 1e9, p.sigma_s

    def _falsetickers(self, now: int, c: Consensus,
                      judged: list[tuple[str, Tracker, SourceState]]) -> None:
        ctx = self.ctx
        for sid, tr, st in judged:
            v = c.verdicts.get(sid)
            e = tr.estimate_
            # Count a verdict once per new sample of the source, not once per vote.
            if v is None or e is None or st.judged_t_ns == e.t_ns:
                continue
            verdict, reason = v
            st.judged_t_ns = e.t_ns
            if verdict is Verdict.FALSETICKER:
                st.streak += 1
                if st.streak >= ctx.detect.falseticker_confirm:
                    ctx.alerts.assert_(
                        "source.falseticker", now, (sid,),
                        f"{sid} disagrees with the majority of trust groups: {reason}",
                        {"offset_s": e.offset_s, "bound_s": e.bound_s,
                         "consensus_offset_s": c.offset_s,
                         "consensus_lo_s": c.lo_s, "consensus_hi_s": c.hi_s,
                         "groups_agreeing": c.groups_agreeing, "groups_voting": c.groups_voting,
                         "consecutive": st.streak},
                        severity="critical", hold_down_s=ctx.detect.hold_down_s)
            elif verdict is Verdict.TRUECHIMER:
                st.streak = 0
                ctx.alerts.release("source.falseticker", now, sid)

    # -- output ----------------------------------------------------------------------------
    def verdict(self, sid: str) -> tuple[str, str]:
        """Source `sid`'s state as `_select` decided it, and why (in words)."""
        tr = self.ctx.trackers[sid]
        status = self.ctx.states[sid].status
        if status is Verdict.UNUSABLE:
            return status.value, tr.unusable_reason or ""
        if status is Verdict.STALE:
            return status.value, f"no usable data for {tr.stale_limit_s():.0f} s"
        if status is Verdict.INIT:
            return status.value, "no usable sample yet"
        v = self.ctx.consensus.verdicts.get(sid)
        if v is None:
            return Verdict.INIT.value, "not judged yet"
        return v[0].value, v[1]

    def snapshot(self) -> Snapshot:
        ctx = self.ctx
        now = ctx.now_ns
        srcs = []
        for sid, tr in ctx.trackers.items():
            verdict, reason = self.verdict(sid)
            e = ctx.estimate(sid) or tr.estimate_
            srcs.append(SourceStatus(sid, tr.kind, tr.info.group, verdict, reason,
                                     e.offset_s if e else None, e.bound_s if e else None,
                                     tr.last_usable_ns, tr.status_fields(), tr.auth))
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
