"""`time.drift` (a reference pushed slowly away from the time, found by a sequential test) and,
for NTP sources, `time.step` (an offset that jumped against its own history and the consensus).

For every new sample of a source, two residuals:
- against the *consensus of the other trust groups* (the median of the offsets of the agreeing
  groups other than the source's own): honest references all follow UTC, and the host's realtime
  cancels out, so the residual has no rate beyond `drift_consensus_ppm`;
- against the *holdover clock* (`ctx.holdover`, the raw oscillator learned while the references
  agreed): the residual may move only as fast as the oscillator's measured wander explains
  (`Residual.rate_sigma_s_per_s`, three sigmas of it).
Each residual feeds a two-sided CUSUM over its *increments*, in units of their measured noise
(EWMA, floored per kind), with allowance k plus the rate the reference can explain, each increment
clipped to `drift_cusum_clip` sigmas. Increments of noise telescope (a run of them sums to the
difference of two noise values), so noise alone hardly reaches h; a steady push adds up; a step
counts once (clipped) and then decays, because a step is the vote's business (source.falseticker,
time.step), not a drift. Either test crossing `drift_cusum_h` raises `time.drift` for the source.

A step is caught separately for NTP sources (PPS has its own `time.step` against the holdover):
an increment of the consensus residual of at least `ntp_step_s` and `step_sigmas` sigmas that
the next sample confirms (it stays at the new level instead of coming back) raises `time.step`.
The interval vote cannot see a lie smaller than a server's error bound (delay/2 is up to 40 ms
for a far server); its own history can: its offset is stable to a fraction of a millisecond.

A source the vote already calls a falseticker is not judged (its alert is the vote's). A source
under suspicion is not learned by the holdover (`holdover.distrust`). NTP samples whose delay is
well above the server's minimum (a network spike) are skipped: their offset is off by half the
spike.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from typing import Any, Final

from ...records import Observation, Tick
from ..core import Context, Detector
from ..value import median
from ..vote import Consensus, Verdict

# Increments needed to know a residual's noise before the test judges it.
WARMUP: Final = 5
# EWMA weight of a new squared increment in the noise estimate (~20 samples of memory).
NOISE_GAIN: Final = 0.05
# The holdover's residual may grow at this many sigmas of the rate it says the oscillator explains.
HOLDOVER_RATE_SIGMAS: Final = 3.0
# An NTP sample whose delay exceeds the server's recent minimum by this much (s) plus
# SPIKE_GATE_FRAC of it is a spike: jitter is ~0.3 ms per leg, spikes are 5-10x the base delay.
SPIKE_GATE_S: Final = 0.002
SPIKE_GATE_FRAC: Final = 0.1
# A step must be this many sigmas of the residual's increments (besides `ntp_step_s`) ...
STEP_SIGMAS: Final = 8.0
# ... and the next sample confirms it when it stays within this many sigmas or this fraction of
# the jump of the new level (a lone outlier comes back instead).
STEP_CONFIRM_SIGMAS: Final = 4.0
STEP_CONFIRM_FRAC: Final = 0.25
# A run keeps at most this many (t, residual) points for the rate in the evidence.
RUN_POINTS: Final = 64
# Sources faster than NTP (PPS, NMEA labels: 1 Hz) are tested every this many seconds, on the
# residual's change since the last test: a 1 us/s push moves 16 us, well above the jitter (2 us)
# and the oscillator's rate allowance (3 x 0.1 ppm = 4.8 us); a step still counts once.
BLOCK_S: Final = 16.0
# NTP sources are also tested on blocks of at least this long (the lower median of the block's
# samples, so a step lands in one block increment and counts once): a drift of 15 ppm moves a
# 16-s poll's sample by 0.24 ms, under its noise, but a 128-s block by 1.9 ms, many sigmas.
NTP_BLOCK_S: Final = 128.0
# A source's noise floor moving by this factor means its offset measures something else now
# (a GNSS receiver's label latency learned): its tests restart.
FLOOR_CHANGE: Final = 2.0
# A holdover test started from a source's own history counts its noise as measured by this many
# increments at most (the EWMA's memory, 1 / NOISE_GAIN).
SEED_N: Final = round(1 / NOISE_GAIN)
# A CUSUM score from which the holdover stops learning the source (twice the allowance k of a
# default test: a run that has grown for a block or two).
LEARN_PAUSE: Final = 1.0
# The variance of the median of N samples of white noise, in units of one sample's over N.
MEDIAN_VAR: Final = math.pi / 2
# sqrt(2): the increment of two samples of noise sigma has sigma sqrt(2) x sigma.
SQRT2: Final = math.sqrt(2)


class _Test:
    """One two-sided CUSUM over the increments of one residual of one source. (A class with its
    own __init__, not a dataclass: mypyc leaves a dataclass's __init__ to the interpreter, ten
    times slower, and a replay makes seven of these per source.)"""

    __slots__ = ("last_r", "last_t", "var", "n", "s_pos", "s_neg", "run")

    def __init__(self) -> None:
        self.last_r: float | None = None
        self.last_t: int | None = None
        self.var = 0.0  # EWMA of squared increments (s^2)
        self.n = 0  # increments seen
        self.s_pos = 0.0
        self.s_neg = 0.0
        self.run: list[tuple[int, float]] = []  # points since the CUSUM left 0

    def reset(self) -> None:
        self.last_r = self.last_t = None
        self.s_pos = self.s_neg = 0.0
        self.run = []

    def update(self, t_ns: int, r: float, floor_s: float, allow_rate: float, k: float,
               clip: float, fixed_sigma: float = 0.0) -> bool:
        """Add residual r at t_ns; True when a CUSUM side is above zero (a run in progress).
        With `fixed_sigma` (> 0) the increments' noise is given, not learned (NTP blocks)."""
        # Hot path (every sample of every source): max()/min() are written as comparisons that
        # pick the same operand (max(a, b) is a unless b > a).
        last_r, last_t = self.last_r, self.last_t
        if last_r is None or last_t is None:
            self.last_r, self.last_t = r, t_ns
            self.run = [(t_ns, r)]
            return False
        d = r - last_r
        dt_s = (t_ns - last_t) / 1e9
        if not dt_s > 0.0:
            dt_s = 0.0
        self.last_r, self.last_t = r, t_ns
        if fixed_sigma > 0.0:
            sigma = fixed_sigma
            z = d / sigma
        else:
            n, var = self.n, self.var
            sigma = math.sqrt(var) if n else 0.0
            sigma_floor = SQRT2 * floor_s
            if sigma_floor > sigma:
                sigma = sigma_floor
            z = d / sigma
            # The noise estimate must not learn the push itself (nor a first wild sample):
            # increments are winsorised; it starts as a plain mean, then forgets slowly.
            zc = z if z < clip else clip
            if not zc > -clip:
                zc = -clip
            gain = 1.0 / (n + 1)
            if not gain > NOISE_GAIN:
                gain = NOISE_GAIN
            self.var = var + gain * ((zc * sigma) ** 2 - var)
            self.n = n = n + 1
            if n < WARMUP:
                self.run = [(t_ns, r)]
                return False
        # The rate the reference may explain comes off before the clip: a push faster than it
        # still counts in full when the allowance is many sigmas (a quiet PPS, a long block).
        a = allow_rate * dt_s / sigma
        up = z - a
        down = -z - a
        s_pos = self.s_pos + (up if up < clip else clip) - k
        s_neg = self.s_neg + (down if down < clip else clip) - k
        if not s_pos > 0.0:
            s_pos = 0.0
        if not s_neg > 0.0:
            s_neg = 0.0
        self.s_pos, self.s_neg = s_pos, s_neg
        if s_pos == 0.0 and s_neg == 0.0:
            self.run = [(t_ns, r)]
            return False
        run = self.run
        run.append((t_ns, r))
        if len(run) > RUN_POINTS:  # it grows by one: keep the last RUN_POINTS
            del run[0]
        return True

    @property
    def score(self) -> float:
        """max(s_pos, s_neg), written as the comparison (a hot path)."""
        return self.s_neg if self.s_neg > self.s_pos else self.s_pos

    def rate(self) -> float:
        """Least-squares slope of the run's residuals (s/s)."""
        pts = self.run
        if len(pts) < 2:
            return 0.0
        t0 = pts[0][0]
        xs = [(t - t0) / 1e9 for t, _ in pts]
        ys = [r for _, r in pts]
        xm, ym = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - xm) ** 2 for x in xs)
        if sxx <= 0:
            return 0.0
        return sum((x - xm) * (y - ym) for x, y in zip(xs, ys, strict=True)) / sxx


class _Source:
    """What the detector keeps per source (a class, not a dataclass: see `_Test`)."""

    __slots__ = ("seen_t_ns", "floor_s", "rx_raw", "own", "consensus", "holdover", "suspect",
                 "paused", "block_t_ns", "chain", "chains", "prev", "step_pending", "step_from",
                 "ref_groups", "own_b", "consensus_b", "holdover_b", "block", "block_start_ns")

    def __init__(self) -> None:
        self.seen_t_ns: int | None = None
        self.floor_s: float | None = None  # noise floor its tests were started with
        self.rx_raw: tuple[int, int] | None = None  # (rx_ns, raw_ns) of its latest record
        self.own = _Test()  # its offset in step-free host time
        self.consensus = _Test()
        self.holdover = _Test()
        self.suspect = False
        self.paused = False  # the holdover does not learn it (a run is building)
        self.block_t_ns: int | None = None  # when its holdover residual was last tested (1 Hz)
        self.chain: float | None = None  # holdover residual, chained across model refits (s)
        self.chains: list[float] = []  # chained residuals of the block so far
        self.prev: tuple[int, int, float] | None = None  # (rx_ns, raw_ns, offset_s), last sample
        self.step_pending: tuple[float, float] | None = None  # (level before, after) to confirm
        self.step_from: float | None = None  # level before an active time.step
        # The groups its consensus residual was last taken against (`_reference`): a residual
        # against other groups is another series, and its change no increment of this one.
        self.ref_groups: tuple[str, ...] = ()
        # NTP block tests: the same three residuals, on block medians (NTP_BLOCK_S)
        self.own_b = _Test()
        self.consensus_b = _Test()
        self.holdover_b = _Test()
        self.block: list[tuple[float, float | None, float | None]] = []
        self.block_start_ns: int | None = None


def _flagged(st: _Source) -> bool:
    """Under test: its group is no reference for the others (`_reference`)."""
    return st.suspect or st.step_pending is not None or st.step_from is not None


def _lower_median(vals: list[float]) -> float:
    """A sample of the block (never the mean of two): a step is in one block or the next."""
    return sorted(vals)[(len(vals) - 1) // 2]


class _Reference:
    """`DriftDetector._reference` while every member votes: the agreeing groups not under test
    (`order`, in the consensus' order), their medians (`meds`, the ballot's) and those sorted
    (`sorted`), kept up to date from the ballot's log of changed groups (`Ballot.changes`), so
    that the median of all but one group's is read at its place (O(log groups), not a sort
    over them). The same float as `median` of the list: the sorted values are the same, save
    the order of equal zeros of two signs (and NaN's): with a zero or a NaN among them (or
    fewer than 4), the list itself."""

    __slots__ = ("agreeing", "flagged_ver", "gen", "pos", "order", "meds", "sorted", "special",
                 "nan", "used")

    def __init__(self, agreeing: tuple[str, ...], flagged: dict[str, int], flagged_ver: int,
                 ballot: Any) -> None:
        self.agreeing = agreeing
        self.flagged_ver = flagged_ver
        self.gen: int = ballot.changes_gen
        self.pos: int = len(ballot.changes)
        self.order: list[str] = []
        self.meds: dict[str, float] = {}
        self.special = 0  # medians that are zero or NaN
        self.nan = 0  # (NaN: the sorted list cannot be kept)
        for g in agreeing:
            if flagged.get(g):
                continue
            m = ballot.group_median(g)
            if m is not None:
                self.order.append(g)
                self.meds[g] = m
                self.special += not m != 0.0
                self.nan += m != m
        self.sorted: list[float] = sorted(self.meds.values())
        self.used: dict[str, tuple[str, ...]] = {}  # per own group: the groups used

    def catch_up(self, ballot: Any) -> bool:
        """Take the groups changed since (False: it cannot, build it again)."""
        changes = ballot.changes
        if ballot.changes_gen != self.gen or len(changes) < self.pos or self.nan:
            return False
        meds, srt = self.meds, self.sorted
        for k in range(self.pos, len(changes)):
            g = changes[k]
            old = meds.get(g)
            if old is None:
                continue  # (not one of the groups)
            m = ballot.group_median(g)
            if m is None or m != m:
                return False  # (gone, or NaN: built again)
            if m == old and m != 0.0:
                continue  # (the same float)
            del srt[bisect_left(srt, old)]
            insort(srt, m)
            meds[g] = m
            self.special += (m == 0.0) - (old == 0.0)
        self.pos = len(changes)
        return True

    def reference(self, group: str) -> tuple[float | None, tuple[str, ...]]:
        """(the median of the groups' medians but `group`'s, the groups used)."""
        used = self.used.get(group)
        if used is None:
            used = self.used[group] = tuple([g for g in self.order if g != group])
        n = len(used)
        if n == 0:
            return None, used
        meds = self.meds
        if self.special or n < 4:
            return median([meds[g] for g in used]), used
        srt = self.sorted
        own = meds.get(group)
        p = len(srt) if own is None else bisect_left(srt, own)  # (the one left out)
        i = n // 2
        x = srt[i] if i < p else srt[i + 1]
        if n % 2 == 1:
            return x, used
        i -= 1
        return ((srt[i] if i < p else srt[i + 1]) + x) / 2, used


class DriftDetector(Detector):
    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._src: dict[str, _Source] = {}
        # (sid, tracker, trust group, state) of every tracker in the trackers' order, built at the
        # first vote (the engine makes its trackers once, before its detectors).
        self._members: list[tuple[str, Any, str, _Source]] = []
        # Per trust group: its members under test (a suspect, a step pending or active), which
        # keep the group out of the others' reference.
        self._flagged: dict[str, int] = {}
        self._flagged_ver = 0  # (moves when `_flagged` does)
        self._ref: _Reference | None = None  # the reference's groups, kept (`_reference`)

    def on_observation(self, obs: Observation) -> None:
        if isinstance(obs, Tick) or not obs.src or obs.raw_ns is None:
            return
        self._state(obs.src).rx_raw = (obs.rx_ns, obs.raw_ns)

    def _state(self, sid: str) -> _Source:
        st = self._src.get(sid)
        if st is None:
            st = self._src[sid] = _Source()
        return st

    def on_vote(self, consensus: Consensus) -> None:
        members = self._members
        if len(members) != len(self.ctx.trackers):
            members = self._members = [(sid, tr, tr.info.group, self._state(sid))
                                       for sid, tr in self.ctx.trackers.items()]
        # Only the sources the engine looked at since the last vote can have a new sample.
        for sid, tr, _ in self.ctx.voted_since:
            e = tr.estimate_
            if e is None:
                continue
            st = self._state(sid)
            if st.seen_t_ns == e.t_ns:
                continue
            st.seen_t_ns = e.t_ns
            group = tr.info.group
            was = _flagged(st)
            self._judge(sid, st, tr, group, e.offset_s, e.bound_s, e.t_ns, consensus)
            now = _flagged(st)
            if now != was:
                self._flagged[group] = self._flagged.get(group, 0) + (1 if now else -1)
                self._flagged_ver += 1

    def _sample_offset(self, tr: Any, offset_s: float, t_ns: int) -> float | None:
        """The offset of this sample itself (NTP: the raw exchange, unless it is a spike)."""
        last = getattr(tr, "last", None)
        if last is None or getattr(last, "t_ns", None) != t_ns:
            return offset_s
        mind = getattr(tr, "min_delay_s", None)
        if mind is not None and last.delay_s > mind + SPIKE_GATE_S + SPIKE_GATE_FRAC * mind:
            return None
        return float(last.offset_s)

    def _reference(self, group: str, c: Consensus) -> tuple[float | None, tuple[str, ...]]:
        """Median of the agreeing groups' offsets, the source's own group and groups with a
        suspect member (a step or a push under test) left out; and the groups it is taken over.

        A group's offset is the median of its truechimers'. In an agreeing group every member
        that votes is one (its interval holds the group's intersection, which overlaps the
        consensus): its median is the ballot's, kept until a member changes, and this costs a
        step per group, not per source. While sources are withheld (caught moving, or auth_mode
        require) each member's verdict is read instead."""
        if not c.quorum:
            return None, ()
        ctx = self.ctx
        ballot = ctx.ballot
        if not c.withheld and not ballot.require:
            r = self._ref
            agreeing = c.agreeing_groups
            if r is None or r.flagged_ver != self._flagged_ver or \
                    (r.agreeing is not agreeing and r.agreeing != agreeing) or \
                    not r.catch_up(ballot):
                r = self._ref = _Reference(agreeing, self._flagged, self._flagged_ver, ballot)
            return r.reference(group)
        return self._reference_by_verdicts(group, c)

    def _reference_by_verdicts(self, group: str,
                               c: Consensus) -> tuple[float | None, tuple[str, ...]]:
        """`_reference` from every source's verdict and estimate (a pass over the sources)."""
        ctx = self.ctx
        agreeing, verdicts = c.agreeing_groups, c.verdicts
        per_group: dict[str, list[float]] = {}
        suspect_groups: list[str] = []
        for osid, _, g, st in self._members:
            if g == group or g not in agreeing:
                continue
            if st.suspect or st.step_pending is not None or st.step_from is not None:
                suspect_groups.append(g)  # a step or a push under test
            v = verdicts.get(osid)
            if v is None or v[0] != Verdict.TRUECHIMER:
                continue
            e = ctx.estimate(osid)
            if e is None:
                continue
            vals = per_group.get(g)
            if vals is None:
                per_group[g] = [e.offset_s]
            else:
                vals.append(e.offset_s)
        for g in suspect_groups:
            per_group.pop(g, None)
        used = tuple(sorted(per_group))
        if not per_group:
            return None, used
        return median([v[0] if len(v) == 1 else median(v) for v in per_group.values()]), used

    def _judge(self, sid: str, st: _Source, tr: Any, group: str, est_offset_s: float,
               bound_s: float, t_ns: int, c: Consensus) -> None:
        ctx = self.ctx
        det = ctx.detect
        verdict = c.verdicts.get(sid)
        ho = ctx.holdover
        off = self._sample_offset(tr, est_offset_s, t_ns)
        # Steps are judged here for the trackers that ask (PPS judges its own phase steps
        # against the holdover); the noise floor is what the tracker's offset measures.
        ntp_like = tr.judged_for_steps
        floor = tr.noise_floor_s(bound_s)
        if verdict is not None and verdict[0] == Verdict.FALSETICKER:
            # The vote has it; a drift alert would say the same thing twice. But its verdict
            # may not last (a liar at the edge of wide honest bounds overlaps them again a poll
            # later, and its falseticker streak ends unnamed): a step it took on its previous
            # sample is still confirmed on this one.
            if st.step_pending is not None and ntp_like and off is not None:
                self._step(sid, st, off, self._reference(group, c)[0], floor)
            st.consensus.reset()
            st.holdover.reset()
            st.own.reset()
            for test in (st.own_b, st.consensus_b, st.holdover_b):
                test.reset()
            st.block, st.block_start_ns = [], None
            st.step_pending = None
            return
        if off is None:
            return
        floor0 = st.floor_s
        if floor0 is None or not floor0 / FLOOR_CHANGE <= floor <= floor0 * FLOOR_CHANGE:
            # What the offset measures changed (a GNSS label latency got learned: the offset is
            # re-based and its noise shrinks): judge the new series from scratch.
            st.own, st.consensus, st.holdover = _Test(), _Test(), _Test()
            st.own_b, st.consensus_b, st.holdover_b = _Test(), _Test(), _Test()
            st.block, st.block_start_ns = [], None
            st.floor_s = floor
        k, clip = det.drift_cusum_k, det.drift_cusum_clip
        allow = det.drift_consensus_ppm * 1e-6
        # Its own history, in a host time free of host steps (the realtime is disciplined: it
        # moves at most `drift_consensus_ppm` against the truth).
        own = off + ctx.host_steps_total_ns / 1e9
        ref, ref_groups = self._reference(group, c)
        if ref_groups is not st.ref_groups and ref_groups != st.ref_groups:
            # The reference is other groups now (one joined it or left it: a group under test
            # leaves it, a group lying together inside its bounds joins it once its suspicion
            # ends): its jump is the reference's, not the source's. The consensus tests restart
            # from the next residual, their sums kept; the block's residuals against the old
            # groups are dropped.
            st.ref_groups = ref_groups
            st.consensus.last_r = st.consensus_b.last_r = None
            st.block = [(o, None, h) for o, _, h in st.block]
        if ntp_like:
            self._step(sid, st, off, ref, floor)
        st.own.update(t_ns, own, floor, allow, k, clip)
        if ref is None:
            st.consensus.reset()
        else:
            st.consensus.update(t_ns, off - ref, floor, allow, k, clip)
        res = None
        if ho is not None and st.rx_raw is not None and getattr(ho, "ready", False):
            rx, raw = st.rx_raw
            res = ho.residual(rx, raw, off)
        if res is None:
            if st.holdover.last_r is not None:  # else it is reset already (nothing to undo)
                st.holdover.reset()
            st.chain = st.prev = st.block_t_ns = None
            st.chains = []
        elif ntp_like:
            sigma_s = res.sigma_s
            st.holdover.update(t_ns, res.residual_s, sigma_s if sigma_s > floor else floor,
                               HOLDOVER_RATE_SIGMAS * res.rate_sigma_s_per_s, k, clip)
        else:
            # A PPS (or a receiver's labels) speaks every second: test its residual every
            # BLOCK_S, so a push slower than the per-pulse jitter adds up against the oscillator's
            # rate allowance. The residual is chained: each increment is taken under one model
            # (the previous sample re-predicted by the current one), so a refit of the holdover
            # model (its level moves by us when its window slides) is not taken for the source.
            assert st.rx_raw is not None
            if st.chain is None or st.prev is None:
                st.chain = res.residual_s
            else:
                before = ho.residual(*st.prev)
                st.chain += res.residual_s - (before.residual_s if before is not None
                                              else res.residual_s)
            st.prev = (*st.rx_raw, off)
            if st.block_t_ns is None:  # the first block starts here
                st.block_t_ns = t_ns
            st.chains.append(st.chain)
            if (t_ns - st.block_t_ns) / 1e9 >= BLOCK_S:
                # The test takes the lower median of the block's residuals: of N samples of white
                # jitter it is quieter by sqrt(N) (sqrt(pi/2 / N) of one sample), so a push
                # shows in a block or two even on noisy stamps, while a step still lands in
                # one block's increment and counts once.
                n_block = len(st.chains)
                mid = _lower_median(st.chains)
                st.block_t_ns = t_ns
                st.chains = []
                ht, ot = st.holdover, st.own
                if ht.n == 0 and ot.n >= WARMUP:
                    # A new test (the holdover just became ready, or judges this source
                    # afresh) starts from the noise its own history measured (increments of
                    # single samples 1 s apart, host slewing included, over the block's N):
                    # learning the noise from its first increments would learn a push already
                    # under way. It counts as many increments as measured it (up to the EWMA's
                    # memory), so a push cannot inflate it in a block or two.
                    ht.var = ot.var * MEDIAN_VAR / n_block
                    ht.n = max(WARMUP, min(ot.n, SEED_N))
                allow_ppm = max(res.rate_sigma_s_per_s * 1e6, det.drift_wander_floor_ppm)
                st.holdover.update(t_ns, mid, floor * math.sqrt(MEDIAN_VAR / n_block),
                                   HOLDOVER_RATE_SIGMAS * allow_ppm * 1e-6, k, clip)
        if ntp_like:
            self._block(st, t_ns, own, None if ref is None else off - ref,
                        None if res is None else res, floor, allow, k, clip)
        h = det.drift_cusum_h
        if ntp_like:
            # Both: against the others (not the host's own slewing) and against its own history
            # or the oscillator (not another source dragging the consensus): the smaller of the
            # consensus score and the larger witness score (own history on a tie).
            own_score, ho_score = st.own.score, st.holdover.score
            score = st.consensus.score
            witness_score = ho_score if ho_score > own_score else own_score
            if witness_score < score:
                score = witness_score
            worst = st.consensus
            # ... on single samples or on blocks (a slow drift), whichever is further along.
            bown, bho = st.own_b.score, st.holdover_b.score
            bscore = min(st.consensus_b.score, max(bown, bho))
            if bscore > score:
                score, worst, own_score, ho_score = bscore, st.consensus_b, bown, bho
        else:
            worst = st.holdover
            score = worst.score
        # The holdover stops learning the source as soon as a run builds (a push it learned
        # would move the witness with it); the source is a suspect, out of the others'
        # reference, from half way to h.
        paused = score >= LEARN_PAUSE
        if paused != st.paused and ho is not None and hasattr(ho, "distrust"):
            (ho.distrust if paused else ho.trust)(sid)
        st.paused = paused
        st.suspect = score >= h / 2
        if score < h or st.step_pending is not None:
            # (A jump on this very sample is the step test's: the next sample confirms it as a
            # step or, a lone outlier, takes it back.)
            return
        if ntp_like:
            wname = "holdover" if ho_score > own_score else "own history"
            name = f"consensus of the other groups and its {wname}"
        else:
            name = "holdover clock"
        rate = worst.rate()
        ev = {"rate_s_per_s": rate, "offset_s": off,
              "consensus_offset_s": ref if ref is not None else c.offset_s,
              "residual_s": worst.last_r, "reference": name,
              "window_s": (worst.run[-1][0] - worst.run[0][0]) / 1e9 if worst.run else 0.0,
              "cusum": score, "cusum_h": h,
              "holdover_residual_s": res.residual_s if res is not None else None}
        ctx.caught_moving(
            sid, "time.drift", ctx.now_ns,
            f"{sid} drifting {rate * 1e6:+.2f} ppm ({rate * 1e6:+.2f} us/s) against the "
            f"{name}, beyond what honest sources and the oscillator can explain", ev)

    @staticmethod
    def _block(st: _Source, t_ns: int, own: float, r: float | None, res: Any, floor: float,
               allow: float, k: float, clip: float) -> None:
        """Collect the sample in the NTP block; a full block feeds the block tests its medians."""
        st.block.append((own, r, None if res is None else res.residual_s))
        if st.block_start_ns is None:
            st.block_start_ns = t_ns
        if (t_ns - st.block_start_ns) / 1e9 < NTP_BLOCK_S:
            return
        block, st.block, st.block_start_ns = st.block, [], None
        ho_rate = None if res is None else HOLDOVER_RATE_SIGMAS * res.rate_sigma_s_per_s
        for test, sample_test, vals, rate in (
                (st.own_b, st.own, [b[0] for b in block], allow),
                (st.consensus_b, st.consensus, [b[1] for b in block if b[1] is not None], allow),
                (st.holdover_b, st.holdover, [b[2] for b in block if b[2] is not None], ho_rate)):
            if not vals or rate is None or sample_test.n < WARMUP:
                test.reset()
                continue
            # The noise of a block median's increments is taken as that of single samples'
            # (a median of white noise is quieter: a margin for noise that wanders).
            sigma = max(math.sqrt(sample_test.var), SQRT2 * floor)
            test.update(t_ns, _lower_median(vals), floor, rate, k, clip, sigma)

    def _step(self, sid: str, st: _Source, off: float, ref: float | None, floor: float) -> None:
        """The step test of sample offset `off` on its own history (in a host time free of host
        steps), confirmed by its residual against the consensus reference `ref` (when there is
        one): run before the CUSUMs take the sample."""
        ctx = self.ctx
        own = off + ctx.host_steps_total_ns / 1e9
        r = None if ref is None else off - ref
        t = st.own
        if st.step_from is not None:
            if abs(own - st.step_from) < ctx.detect.ntp_step_s / 2:
                st.step_from = None  # back at its level: the witnesses decide when it ends
            return
        last_r, pending = t.last_r, st.step_pending
        if pending is None and (last_r is None or t.n < WARMUP):
            return  # nothing to confirm, and too early to judge a jump
        sigma = max(math.sqrt(t.var) if t.n else 0.0, SQRT2 * floor)
        if pending is not None:
            before, after = pending
            st.step_pending = None
            tol = max(STEP_CONFIRM_SIGMAS * sigma, STEP_CONFIRM_FRAC * abs(after - before))
            if abs(own - after) <= tol:
                st.step_from = before
                ctx.caught_moving(
                    sid, "time.step", ctx.now_ns,
                    f"{sid} stepped {(own - before) * 1e3:+.3f} ms against its own history and "
                    f"the consensus of the other trust groups",
                    {"step_s": own - before, "offset_s": off, "consensus_offset_s": ref,
                     "offset_before_s": before, "consensus_residual_s": r,
                     "noise_sigma_s": sigma / math.sqrt(2)})
            return
        if last_r is None:  # (ruled out above; says so to the type checker)
            return
        jump = own - last_r
        if abs(jump) < max(STEP_SIGMAS * sigma, ctx.detect.ntp_step_s):
            return
        c = st.consensus
        if r is not None and c.last_r is not None and abs(r - c.last_r) < abs(jump) / 2:
            return  # the others moved with it: the host, not this source
        st.step_pending = (last_r, own)
