"""The host's own clock: `consensus.host_step` and `consensus.host_offset`.

A step of the host's realtime clock (someone ran `date -s`, a daemon stepped it) moves every
source's offset (source - host realtime) at once. It shows as a jump of `rx_ns - raw_ns`: the
two clocks were read at the same instant, and CLOCK_MONOTONIC_RAW is never stepped. The detector
looks at every record that carries `raw_ns`, before any tracker sees it, and on a step:
- records it in `ctx.host_steps` and tells every tracker (`Tracker.on_host_step`), which
  re-expresses what it measured before in the new host time, so the vote compares like with like
  and no source is accused of the host's step;
- raises `consensus.host_step` (no sources: it is the host, not a reference).
Between steps `rx_ns - raw_ns` drifts with the crystal (up to 100 ppm) and the realtime slews;
that rate is learned so that long gaps between records are not mistaken for steps.

A step is confirmed before it is acted on (`admit`, the engine's input gate): the first record
that jumps is held until the next record taken after it. If that one shows the same jump, the
host clock stepped: the held record and it are taken, the step first. If it shows the old level,
the held record's clocks were wrong (one tick with a garbage raw_ns), not the host's: it is
refused (counted, warned about) and nothing moves. Records taken before the held one pass.
"""

from __future__ import annotations

from typing import Any, Final, cast

import msgspec

from ...records import Observation
from ..core import Context, Detector
from ..vote import Consensus

# Records closer than this in raw time do not update the rate (their difference is mostly noise).
RATE_MIN_GAP_NS: Final = 1_000_000_000
# Weight of a new rate measurement in the learned realtime-vs-raw rate.
RATE_GAIN: Final = 0.05
# A crystal is at most 100 ppm off (docs/threats.md), the realtime slews sub-ppm: clamp the rate there
# with margin.
RATE_MAX: Final = 500e-6
# Records reach the engine up to this late (readers interleave): while a step waits for its
# confirmation, a record taken at most this long before the held one is an older record.
REORDER_NS: Final = 2_000_000_000
# Host realtime readings of a record besides rx_ns (records.py: HostNs fields other than raw_ns).
_REALTIME_FIELDS: Final = ("t1_ns", "t4_ns")


def _shifted(obs: Observation, step_ns: int) -> Observation:
    """obs with its host realtime readings (rx_ns; an NTP exchange's t1_ns, t4_ns) moved by
    step_ns; raw_ns and the source's own timestamps stay."""
    moved: dict[str, int] = {"rx_ns": obs.rx_ns + step_ns}
    for name in _REALTIME_FIELDS:
        v = getattr(obs, name, None)
        if v is not None:
            moved[name] = v + step_ns
    new: Observation = msgspec.structs.replace(cast(Any, obs), **moved)
    return new


class HostClockDetector(Detector):
    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._raw_ns: int | None = None  # raw_ns of the latest record (in raw time) so far
        self._level_ns = 0  # rx_ns - raw_ns there
        self._rate = 0.0  # d(rx - raw)/d(raw): realtime frequency against the raw crystal
        self._step_raw_ns: int | None = None  # raw_ns of the first record after the last step
        self._last_rx_ns: int | None = None
        # Records taken before a step, handed over after it (re-expressed in the new time).
        self.late_records = 0
        self._last_step_ns = 0  # the last step confirmed
        self._step_min_ns = ctx.detect.host_step_s * 1e9  # (ctx.detect is frozen)
        self._held: Observation | None = None  # first record of a step not yet confirmed
        self._confirmed: Observation | None = None  # the held record, once the step is confirmed

    def _jump(self, obs: Observation, raw: int) -> float:
        """How far obs's rx_ns - raw_ns is from the level the records so far predict."""
        return (obs.rx_ns - raw) - (self._level_ns + self._rate * (raw - (self._raw_ns or 0)))

    def admit(self, obs: Observation) -> tuple[Observation, ...] | None:
        raw = obs.raw_ns
        if raw is None or self._raw_ns is None:
            return None
        jump = self._jump(obs, raw)
        is_jump = (jump if jump >= 0 else -jump) >= self._step_min_ns
        held = self._held
        if held is None:
            if not is_jump:
                return None  # the level holds
            if self._step_raw_ns is not None and raw < self._step_raw_ns:
                step = self._last_step_ns
                if abs(jump + step) < self._step_min_ns:
                    # Taken before the last step (at the old level), handed over after it:
                    # re-expressed in the new host time, like everything taken before it.
                    self.late_records += 1
                    return (_shifted(obs, step),)
                return None  # neither level: before_observation skips it
            self._held = obs
            return ()
        h_raw = held.raw_ns or 0
        same = (obs.rx_ns - raw) - ((held.rx_ns - h_raw) + self._rate * (raw - h_raw))
        if (same if same >= 0 else -same) < self._step_min_ns:  # the step persists: act on it
            self._held = None
            self._confirmed = held
            ctx = self.ctx
            step = round(self._jump(held, h_raw))
            if ctx.tick_ns is not None:  # host time (the last tick) moved with the step
                ctx.tick_ns += step
            # Engine time too (backwards after a negative step): what measures silence in host
            # time (a PPS overdue, a source stale) must not count the step as time passed.
            ctx.now_ns += step
            return (held, obs)
        if not is_jump and 0 <= h_raw - raw <= REORDER_NS:
            return None  # taken just before the held record, at the old level: take it now
        self._held = None
        self._refuse(held, obs)
        if is_jump:  # odd too, in another way: the next record judges it
            self._held = obs
            return ()
        return (obs,)

    def _refuse(self, held: Observation, by: Observation | None) -> None:
        jump = self._jump(held, held.raw_ns or 0)
        self.ctx.refuse("host_clock", held,
                        f"its rx_ns - raw_ns jumped by {jump / 1e9:+.3f} s and "
                        + ("the next record did not" if by is not None else "no record after it")
                        + " confirm it (a host step must persist)")

    def finish(self) -> None:
        if self._held is not None:
            self._refuse(self._held, None)
            self._held = None

    def before_observation(self, obs: Observation) -> None:
        raw = obs.raw_ns
        if raw is None:
            return
        rx = obs.rx_ns
        level = rx - raw
        last_raw = self._raw_ns
        if last_raw is None:
            self._raw_ns, self._level_ns, self._last_rx_ns = raw, level, rx
            return
        gap_ns = raw - last_raw
        jump_ns = level - (self._level_ns + self._rate * gap_ns)
        if (jump_ns if jump_ns >= 0 else -jump_ns) >= self._step_min_ns:  # abs() without a call
            if obs is not self._confirmed:
                return  # at neither level (admit let it through): it teaches nothing
            self._confirmed = None
            self._step(rx, raw, int(round(jump_ns)))
            self._raw_ns, self._level_ns, self._last_rx_ns = raw, level, rx
            return
        if gap_ns >= RATE_MIN_GAP_NS:
            r = (level - self._level_ns) / gap_ns
            # max(-RATE_MAX, min(RATE_MAX, r)) without the calls
            if not r < RATE_MAX:
                r = RATE_MAX
            elif not r > -RATE_MAX:
                r = -RATE_MAX
            self._rate += RATE_GAIN * (r - self._rate)
        if gap_ns > 0:
            self._raw_ns, self._level_ns, self._last_rx_ns = raw, level, rx

    def _step(self, rx_ns: int, raw_ns: int, step_ns: int) -> None:
        ctx = self.ctx
        step_s = step_ns / 1e9
        ctx.add_host_step(rx_ns, step_ns)
        self._last_step_ns = step_ns
        for tr in ctx.trackers.values():
            tr.on_host_step(step_s)
        self._step_raw_ns = raw_ns
        ev = {"step_s": step_s, "before_rx_ns": self._last_rx_ns, "after_rx_ns": rx_ns,
              "raw_ns": raw_ns, "steps_seen": len(ctx.host_steps)}
        ctx.alerts.assert_("consensus.host_step", ctx.now_ns, (),
                           f"host clock stepped by {step_s * 1e3:+.3f} ms against the raw "
                           f"oscillator (sources are not blamed for it)",
                           ev, severity="warning", key="", hold_down_s=ctx.detect.hold_down_s)
        # A step is an event, not a state: the alert clears after the hold-down.
        ctx.alerts.release("consensus.host_step", ctx.now_ns, "")

    def on_vote(self, consensus: Consensus) -> None:
        c = consensus
        ctx = self.ctx
        bound, lo, hi = c.bound_s, c.lo_s, c.hi_s
        if not c.quorum or not c.has_offset or bound is None or lo is None or hi is None:
            return
        limit = ctx.detect.host_offset_s
        # The estimate is inside the region, so |offset| - bound <= max(-lo, hi) - bound (in
        # floats too): within the limit said without summing the estimate (vote._Best).
        if max(-lo, hi) - bound <= limit:
            ctx.alerts.release("consensus.host_offset", ctx.now_ns, "")
            return
        offset = c.offset_s
        assert offset is not None
        excess = abs(offset) - bound
        if excess > limit:
            ctx.alerts.assert_(
                "consensus.host_offset", ctx.now_ns, (),
                f"host clock is {-offset * 1e3:+.3f} ms off the consensus of "
                f"{c.groups_agreeing} trust groups (limit {limit * 1e3:.0f} ms)",
                {"host_offset_s": -offset, "consensus_offset_s": offset,
                 "consensus_bound_s": c.bound_s, "limit_s": limit,
                 "groups_agreeing": c.groups_agreeing},
                severity="warning", key="", hold_down_s=ctx.detect.hold_down_s)
        else:
            ctx.alerts.release("consensus.host_offset", ctx.now_ns, "")
