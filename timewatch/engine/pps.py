"""PPS: edges -> which UTC second each marks -> precise GNSS time; PPS structure; PPS phase steps.

A PPS edge says *when* a second starts (to a microsecond, the kernel's assert timestamp); the GNSS
source named by `label_from` says *which* second (its `TimeLabel`s: one per NMEA epoch, with the
arrival time of the epoch's first sentence). Together: offset_s = (labelled second - edge rx_ns).

1. Structure (every edge): sequence gaps and whole-second intervals -> `pps.missing`; an interval
   that is not a whole number of seconds (+- tolerance) -> `pps.interval`. An edge off the 1-s train
   (doubled pulse) is kept out of everything else; a new phase is adopted after two intervals of
   1 s in it (a shifted train), and the phase jump then shows as a `time.step`.
2. Numbering: a label is paired with the edge it arrived `latency` after. Until the latency is
   learned (median of the first pairs) a label belongs to the edge it follows by a latency in
   [pps_label_latency_min_s, +1 s). Once numbered, edges count seconds on their own (a flywheel), so
   a receiver that loses its fix but keeps pulsing stays usable for pps_label_holdover_s; labels then
   only verify: a different second, or a latency off the learned one, on pps_label_confirm pairs in
   a row -> `pps.label_mismatch`, and numbering follows the labels again (a whole-second disagreement
   re-numbers, it never shows as a phase step).
3. Phase: each numbered edge's phase (second - raw_ns) is compared with a line fitted to the
   previous good edges in raw time (the holdover oscillator: realtime slews and host steps do not
   reach it). A pulse off the line by >= max(pps_step_s, STEP_JITTER_K (3) x jitter) is an
   outlier: kept out of the estimate, the jitter and the holdover. A step: the mean of the last
   pps_step_window pulses (a late interrupt left out; at least pps_step_confirm kept) off the
   line by >= max(pps_step_s, STEP_MEAN_K (5.6) of its standard errors), or all of them outliers
   on one side -> `time.step`, and the line restarts at the new phase.
4. Vote: the latest good edge, offset +- max(pps_bound_floor_s, pps_bound_jitter_k x jitter); the
   source sits in its GNSS receiver's trust group (the header says so).
5. Holdover: good edges teach the raw-oscillator model while the consensus has quorum and this
   source is a truechimer.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..records import Observation, Pps, SourceInfo
from .core import Context, Estimate, Tracker
from .holdover import ensure_holdover
from .value import median
from .vote import Verdict

_S: Final = 1_000_000_000  # ns per second
# Pairs that fix the label latency before it is locked (median of these).
LATENCY_ACQUIRE: Final = 8
# Good edges kept for pairing with labels that arrive late (a label is at most ~1 s late).
RECENT_EDGES: Final = 8
# Good pulses before the phase line is taken as long (shorter: it learns each pulse at once, and
# after a silence the holdover judges until it is this long again).
BASELINE_N: Final = 32
# Good pulses the phase line is fitted over once long (64 s). The line is extrapolated past its
# centre (half its length, plus the pps_step_window pulses not yet learned), so its prediction
# error, common to the whole step window, is jitter x sqrt(1/n + d^2/Sxx): 0.43 jitter at 32
# pulses, 0.28 at 64. The crystal's wander bends longer lines: measured on simulated days
# (0.02 ppm/min random walk, diurnal swing), the residual spread is least at 64 (1.59 us for
# 1.5 us of jitter, against 1.66 at 32 and 1.61 at 96). At 32, a common error of ~2.4 us (a run
# of late pulses at the line's end) put 4 of 5 honest pulses beyond 4 us: a false time.step
# about once in two clean days.
LINE_N: Final = 64
# Pulses the phase line needs before it judges (fewer: a line through noise).
BASELINE_MIN: Final = 8
# Jitter before it is measured: a conservative interrupt-latency spread.
INITIAL_JITTER_S: Final = 10e-6
# Residuals after which the jitter estimate is taken as known (EWMA memory: 2 / JITTER_ALPHA).
JITTER_SETTLED_N: Final = 64
# EWMA weight of one residual in the jitter (about the last 32 pulses).
JITTER_ALPHA: Final = 1 / 32
# The step threshold never drops below this many jitters (noisy hardware must not alarm; a
# 3-sigma pulse on one side is 1.3e-3, four of five 1.5e-11: the late outliers decide the rate).
# Not more: a 6 us step over 1.5 us of measured jitter must stay above it (docs/threats.md #5).
STEP_JITTER_K: Final = 3.0
# After a silence, the median of the pulses since it must be this many jitters (and pps_step_s,
# plus the holdover's uncertainty) off the pulses before it (GAP_SIGMAS).
STEP_MEDIAN_K: Final = 2.5
# The step test (bench/bench_pps_step_model.py models it over 60 days of the simulator's noise).
# The pulses of the window share the line's prediction error (c x jitter, c^2 = 1/n + d^2/Sxx, d
# the window's distance from the line's centre: c = 0.27 for 64 pulses), so counting pulses
# beyond a threshold (the old rule: 4 of 5 beyond 4 us) alarms when that common error and a
# chance run of early or late pulses add up: a false time.step about every 3 weeks (once in the
# 7-day clean bench: four pulses 2.8-4.5 us early against a line 1.2 us off), while it missed 1
# in 10 six-us steps in 5 s. The window's mean has a known standard error, jitter x
# sqrt((1/k + c^2) / (1 + c^2)) for k pulses kept (the jitter, measured on residuals, holds c^2
# once); a step is a mean beyond STEP_MEAN_K of them: 0 false steps in 2 x 60 modelled days,
# 96-97% of 6 us steps caught in 5 s (at 5.5: 1 false step in 60 days; at 5.8: 95% caught).
STEP_MEAN_K: Final = 5.6
# A pulse later than the window's median by this many jitters is a late interrupt (1% of edges,
# 5-30 us): left out of the mean. One earlier than it by as much (no interrupt comes early) says
# the window is no step at all (three late outliers in five, or a step under way).
STEP_SPREAD_K: Final = 3.0
# The step test's jitter: an EWMA over this many residuals (a running mean until then, inflated
# by its own uncertainty as the slope test's). The phase jitter's 32-residual EWMA wanders +-20%
# (1.16-1.87 us at 1.5 us): a low reading would lower the bar; this one stays within +-7%.
STEP_JITTER_ALPHA: Final = 1 / 256
# time.drift: the slope of the PPS phase (in raw time) over the last W seconds against its slope
# over the W seconds before, for each W here: a push changes the slope at once, the crystal only
# as its frequency wanders (a random walk: wander_ppm per block_s, over W: x sqrt(W / block_s)).
DRIFT_WINDOWS_S: Final = (16, 64, 192)
# The slope change must exceed this many of the wander over W plus this many sigmas of the two
# slopes' jitter noise ...
DRIFT_WANDER_K: Final = 3.0
DRIFT_NOISE_K: Final = 5.0
# ... on this many consecutive pulses (one lucky fit is not a push).
DRIFT_CONFIRM: Final = 3
# A half window needs this fraction of its pulses.
DRIFT_FILL: Final = 0.75

# Frequency error allowed per second of a long interval: 200 ppm before holdover knows the crystal
# (docs/threats.md: +-100 ppm, doubled), 2 ppm once it does (wander and a margin).
SLACK_UNKNOWN_PPM: Final = 200.0
SLACK_KNOWN_PPM: Final = 2.0
# After a silence longer than this, an edge restarts the train (counted missing, not an interval).
RESTART_AFTER_S: Final = 10
# A latency off the learned one for this long is learned as the new normal (receiver reconfigured).
RELEARN_LATENCY_S: Final = 600.0
# Across a silence (jamming, a lost fix: RESTART_AFTER_S or more) the phase line cannot judge:
# it restarts, and until it is BASELINE_N pulses long again the pulses are judged against the
# holdover clock, which free-ran meanwhile. The median residual of the last pps_step_window may
# differ from the last pulse's before the silence by the step threshold plus this many sigmas of
# what the oscillator can do over the silence (its frequency uncertainty and wander, the wander
# never below drift_wander_floor_ppm).
GAP_SIGMAS: Final = 3.0


class TimeLabelLike(Protocol):
    """engine/gnss.py's TimeLabel: the epoch's UTC second and when its first sentence arrived."""

    utc_ns: int
    rx_ns: int
    raw_ns: int | None
    valid: bool


@dataclass(slots=True)
class _Edge:
    rx_ns: int
    clock_ns: int  # raw_ns when known (the holdover timebase), else rx_ns
    raw_ns: int | None
    seq: int
    second_ns: int | None = None  # the UTC second it marks, once numbered


class _Line:
    """A straight line through the last `n` (x, y) points, kept as running sums (O(1) a point).

    x is taken from an anchor (the first point after a clear) and the sums are rebuilt from the
    points every REBUILD appends, so rounding never accumulates.
    """

    REBUILD = 1024  # appends between two rebuilds of the sums from the kept points

    def __init__(self, n: int):
        self.pts: deque[tuple[float, float]] = deque(maxlen=n)
        self.clear()

    def clear(self) -> None:
        self.pts.clear()
        self.x0 = 0.0
        self.sx = self.sy = self.sxx = self.sxy = 0.0
        self._appends = 0

    def __len__(self) -> int:
        return len(self.pts)

    def append(self, x: float, y: float) -> None:
        if not self.pts:
            self.x0 = x
        pts = self.pts
        if len(pts) == pts.maxlen:
            ox, oy = pts[0]
            ox -= self.x0
            self.sx -= ox
            self.sy -= oy
            self.sxx -= ox * ox
            self.sxy -= ox * oy
        pts.append((x, y))
        self._appends += 1
        if self._appends >= self.REBUILD:
            self._rebuild()
            return
        x -= self.x0
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.sxy += x * y

    def _rebuild(self) -> None:
        pts = list(self.pts)
        self.clear()
        for x, y in pts:
            self.append(x, y)

    def extrapolation(self, x: float) -> float:
        """The line's prediction variance at x in units of the points' variance:
        1/n + (x - mean x)^2 / Sxx (1.0 while it has no slope)."""
        n = len(self.pts)
        sxx = self.sxx - self.sx * self.sx / n if n else 0.0
        if sxx <= 0:
            return 1.0
        dx = x - self.x0 - self.sx / n
        return 1.0 / n + dx * dx / sxx

    def predict(self, x: float) -> float:
        n = len(self.pts)
        den = n * self.sxx - self.sx * self.sx
        slope = (n * self.sxy - self.sx * self.sy) / den if den > 0 else 0.0
        return (self.sy - slope * self.sx) / n + slope * (x - self.x0)


def _slope(xs: list[float], ys: list[float], i: int, j: int) -> float:
    """Least-squares slope of ys[i:j] on xs[i:j] (two passes about the means). Index loops
    over the caller's lists instead of slices and list comprehensions (a fifth of a replay's
    time went here); the same operations in the same order, so the same bits: the sums add
    left to right as sum() does, and math.pow is the libm pow that `** 2` calls."""
    n = j - i
    sx = 0.0
    sy = 0.0
    for k in range(i, j):
        sx += xs[k]
        sy += ys[k]
    xm = sx / n
    ym = sy / n
    sxx = 0.0
    sxy = 0.0
    for k in range(i, j):
        dx = xs[k] - xm
        sxx += math.pow(dx, 2.0)
        sxy += dx * (ys[k] - ym)
    return sxy / sxx if sxx > 0 else 0.0


# Unit roundoff of a double (2^-53): the error bounds of _History.slope_bound count in it.
_U: Final = 2.0 ** -53


def _gamma(k: float) -> float:
    """The usual bound k u / (1 - k u) on the relative error of k roundings (u = _U)."""
    return k * _U / (1.0 - k * _U)


# The slope test's history: the points a window may reach back over, and the count of points
# after which its running sums are rebuilt (their rounding grows with it).
HIST_KEEP: Final = 2 * DRIFT_WINDOWS_S[-1] + 8
HIST_REBUILD: Final = 1024


class _History:
    """The slope test's history of (x_s, phase_s), increasing x: two columns for the exact
    slopes (`_slope`, each window a range of them found by bisect), and running sums that give
    any window's slope in O(1) with a proven bound on how far `_slope`'s float can be from it
    (`slope_bound`). A window whose two slopes differ by less than the threshold minus those
    bounds cannot alarm, and `_slope` is not run: the same decision, the same floats.

    The sums are taken about an origin (x0, y0) set when the sums are rebuilt: u = x - x0 is
    exact (x0 is 0, or x0 <= x <= 2 x0: Sterbenz), v = y - y0 rounds (its error is a
    perturbation of y, and a slope is linear in y: bounded below). Prefix sums a1 (u), a2 (u^2),
    b1 (v), c1 (u v) run over the points since the rebuild; a window's sums are differences."""

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ps: list[float] = []
        self.a1: list[float] = [0.0]
        self.a2: list[float] = [0.0]
        self.b1: list[float] = [0.0]
        self.c1: list[float] = [0.0]
        self.x0 = 0.0
        self.y0 = 0.0
        self.count = 0  # terms summed since the rebuild (bounds every prefix's rounding)
        self.vmax = 0.0  # the largest |v| since the rebuild

    def clear(self) -> None:
        self.xs.clear()
        self.ps.clear()
        self._rebuild()

    def __len__(self) -> int:
        return len(self.xs)

    def append(self, x: float, y: float) -> None:
        xs = self.xs
        xs.append(x)
        self.ps.append(y)
        if len(xs) >= 2 * HIST_KEEP:  # only the last HIST_KEEP are ever read
            del xs[:len(xs) - HIST_KEEP]
            del self.ps[:len(self.ps) - HIST_KEEP]
            self._rebuild()
            return
        x0 = self.x0
        if self.count >= HIST_REBUILD or x < x0 or (x0 != 0.0 and x > 2.0 * x0) or \
                (x0 == 0.0 and x > HIST_KEEP and x <= 2.0 * xs[0]):  # an origin can be had
            self._rebuild()
            return
        self._add(x, y)

    def _add(self, x: float, y: float) -> None:
        u = x - self.x0
        v = y - self.y0
        self.a1.append(self.a1[-1] + u)
        self.a2.append(self.a2[-1] + u * u)
        self.b1.append(self.b1[-1] + v)
        self.c1.append(self.c1[-1] + u * v)
        self.count += 1
        av = abs(v)
        if av > self.vmax:
            self.vmax = av

    def _rebuild(self) -> None:
        xs, ps = self.xs, self.ps
        self.a1 = [0.0]
        self.a2 = [0.0]
        self.b1 = [0.0]
        self.c1 = [0.0]
        self.count = 0
        self.vmax = 0.0
        # x - x0 exact for the kept points (Sterbenz: x0 <= x <= 2 x0), or no origin at all.
        self.x0 = xs[0] if xs and 0.0 < xs[0] and xs[-1] <= 2.0 * xs[0] else 0.0
        self.y0 = ps[-1] if ps else 0.0
        for k in range(len(xs)):
            self._add(xs[k], ps[k])

    def exact(self) -> bool:
        """Whether u = x - x0 was exact for every point (x0 <= x, and x <= 2 x0 unless x0 = 0)."""
        return self.x0 == 0.0 or (self.xs[0] >= self.x0 and self.xs[-1] <= 2.0 * self.x0)

    def slope_bound(self, i: int, j: int) -> tuple[float, float]:
        """The slope of points i..j-1 from the sums, and a bound on its distance from the float
        `_slope(xs, ps, i, j)` returns (inf when the sums cannot tell).

        The sums' rounding: a prefix of k terms is off by at most gamma(k+1) times the sum of its
        terms' magnitudes (u >= 0: a1, a2 themselves; |v| <= vmax), a difference of two adds its
        own rounding; the centred sums Cxx = Sxx - Sx^2/n and Cxy = Sxy - Sx Sy/n carry those
        errors and three roundings more. y's rounding into v (|eta| <= u |v|) moves the slope by
        sum(c eta) / Cxx <= u vmax sqrt(n / Cxx). `_slope` in floats (two passes): its means are
        off by at most gamma(n+1) max|x| (max|y|), which adds n da^2 to its Sxx and n da db to
        its Sxy; its sums of n products are off by gamma(n+3) of their magnitudes (Cauchy-
        Schwarz: sum |x - xm||y - ym| <= sqrt(n Sxx') (2 max|y| + db)); its quotient by one
        rounding. The whole is doubled for the rounding of the bound's own arithmetic."""
        n = j - i
        inf = math.inf
        if n < 2 or not self.exact():
            return 0.0, inf
        a1, a2, b1, c1 = self.a1, self.a2, self.b1, self.c1
        nf = float(n)
        g = _gamma(self.count + 2.0)
        vmax = self.vmax
        sx = a1[j] - a1[i]
        sxx = a2[j] - a2[i]
        sy = b1[j] - b1[i]
        sxy = c1[j] - c1[i]
        e_sx = 2.0 * g * a1[j] + _U * abs(sx)
        e_sxx = 2.0 * g * a2[j] + _U * abs(sxx)
        e_sy = 2.0 * g * self.count * vmax + _U * abs(sy)
        e_sxy = 2.0 * g * (1.0 + g) * a1[j] * vmax + _U * abs(sxy)
        cxx = sxx - sx * sx / nf
        cxy = sxy - sx * sy / nf
        e_cxx = e_sxx + (2.0 * abs(sx) * e_sx + e_sx * e_sx) / nf + 2.0 * _U * sx * sx / nf \
            + _U * abs(cxx)
        e_cxy = e_sxy + (abs(sx) * e_sy + abs(sy) * e_sx + e_sx * e_sy) / nf \
            + 2.0 * _U * abs(sx * sy) / nf + _U * abs(cxy)
        lo = cxx - e_cxx  # the true Cxx is at least this
        if not lo > 0.0:
            return 0.0, inf
        b = cxy / cxx
        err = (abs(cxy) * e_cxx + cxx * e_cxy) / (cxx * lo) + _U * abs(b) \
            + _U * vmax * math.sqrt(nf / lo)
        # `_slope`'s own rounding, about the true slope of the float points.
        mx = max(abs(self.xs[i]), abs(self.xs[j - 1]))
        my = abs(self.y0) + vmax * (1.0 + _U)
        da = _gamma(nf + 1.0) * mx
        db = _gamma(nf + 1.0) * my
        cu = cxx + e_cxx + nf * da * da  # at least the Sxx `_slope` sums
        rho = (nf * da * da + _gamma(nf + 3.0) * cu) / lo
        if not rho < 0.5:
            return 0.0, inf
        e_xy = nf * da * db + _gamma(nf + 2.0) * math.sqrt(nf * cu) * (2.0 * my + db)
        sxy_y = abs(cxy) + e_cxy + _U * vmax * math.sqrt(nf * cu)
        err += (e_xy + rho * sxy_y) / (lo * (1.0 - rho)) + 2.0 * _U * (abs(b) + err)
        return b, 2.0 * err


def _within(tail: deque[tuple[float, float, float]], limit: float) -> bool:
    """Whether every residual of the window is inside +-limit (then so are its mean and its
    median: the step test and the jitter's guard need not take them)."""
    for _, _, r in tail:
        if not abs(r) < limit:
            return False
    return True


def _ewma_sd(var: float, r: float, alpha: float) -> float:
    """One step of a jitter's EWMA (the phase jitter's, the step test's): the variance `var`
    (the first residual's square to start) moves by `alpha` toward this residual's square; the
    new jitter, a standard deviation."""
    return math.sqrt(var + alpha * (r * r - var))


def _young(jitter_s: float, n: int) -> float:
    """A jitter learned from n residuals, as the step and slope tests take it: the estimate is
    itself uncertain (relative sigma 1/sqrt(2n)), so until JITTER_SETTLED_N the tests take two
    of those sigmas more (a quiet start, an estimate on the low side, would read as a push)."""
    return jitter_s * (1.0 + math.sqrt(2.0 / n)) if n < JITTER_SETTLED_N else jitter_s


class PpsTracker(Tracker):
    kind = "pps"

    def __init__(self, src: str, info: SourceInfo, ctx: Context):
        super().__init__(src, info, ctx)
        self.holdover = ensure_holdover(ctx)
        self.missing_total = 0
        self.interval_faults = 0
        self.outliers = 0
        self.steps = 0
        self.unpaired_labels = 0
        self.jitter_s: float | None = None
        self._jitter_n = 0  # residuals the jitter has learned (its estimate's own uncertainty)
        self._step_jitter_s: float | None = None  # the slow jitter the step test scales by
        self._last: _Edge | None = None  # last edge seen
        self._train: _Edge | None = None  # last edge on the 1-s train
        self._resync = 0  # consecutive 1-s intervals off the train (a new phase?)
        self._recent: deque[_Edge] = deque(maxlen=RECENT_EDGES)
        self._numbered: _Edge | None = None  # last numbered edge (the flywheel)
        self._last_label: Any = None
        self._label_deque: deque[TimeLabelLike] | None = None
        self._pending: list[TimeLabelLike] = []
        self._lat_acq: list[int] = []
        self._lat_recent: deque[int] = deque(maxlen=16)
        self.latency_ns: int | None = None
        self._sec_bad = 0
        self._phase_bad = 0
        self._phase_bad_since_ns: int | None = None
        self._last_valid_label_ns: int | None = None
        self._anchor: tuple[int, int] | None = None  # (clock_ns, second_ns) of the phase origin
        self._base = _Line(LINE_N)  # (x_s, phase_s) of the last good pulses
        self._tail: deque[tuple[float, float, float]] = deque(maxlen=ctx.detect.pps_step_window)
        # (x_s, phase_s, residual_s or None) of the pulses judged good but not yet learned: the
        # line and the jitter learn a pulse once the step test is done with it (a step learned
        # pulse by pulse drags the line's end: 6 us showed as 4 us after four pulses).
        self._lag: deque[tuple[float, float, float | None]] = deque()
        self._rephased_s: float | None = None  # the train was re-phased by this (s): a step
        # The slope test's (x_s, phase_s) history (time.drift).
        self._hist = _History()
        self._drift_run = 0  # consecutive pulses the slope test found a push on
        # After a silence: (its length in raw seconds, the holdover residual of the pulses
        # before it, those of the pulses since) until the phase line is long again (GAP_SIGMAS).
        self._gap: tuple[float, float, list[float]] | None = None

    # -- input ---------------------------------------------------------------------------------
    def feed(self, obs: Observation) -> None:
        if not isinstance(obs, Pps):
            return
        e = _Edge(obs.rx_ns, obs.raw_ns if obs.raw_ns is not None else obs.rx_ns, obs.raw_ns,
                  obs.seq)
        last = self._last
        if last is not None and (e.clock_ns <= last.clock_ns or
                                 (last.raw_ns is None) != (e.raw_ns is None)):
            if e.clock_ns <= last.clock_ns:
                self.ctx.count("pps.out_of_order")
                return
            self._reset_phase()  # raw_ns appeared or vanished: another timebase
        seq_gap = e.seq - last.seq - 1 if last is not None and e.seq > last.seq else 0
        self._last = e
        if self._structure(e, last, seq_gap):
            self._recent.append(e)
            self._number(e)
            self._resolve_labels()

    def on_tick(self, now_ns: int) -> None:
        self._new_labels()
        d = self.ctx.detect
        t = self._last  # any edge counts as a pulse here; a wrong one is pps.interval's
        if t is not None and now_ns - t.rx_ns > (1 + d.pps_overdue_s) * _S:
            silent_s = (now_ns - t.rx_ns) / _S
            self.ctx.alerts.assert_(
                "pps.missing", now_ns, (self.src,),
                f"{self.src}: no pulse for {silent_s:.1f} s",
                {"silent_s": silent_s, "last_edge_ns": t.rx_ns, "overdue_limit_s": 1 + d.pps_overdue_s,
                 "missing_total": self.missing_total},
                severity="warning", hold_down_s=d.hold_down_s)
        if self.info.label_from is not None and self._last_valid_label_ns is not None:
            quiet_s = (now_ns - self._last_valid_label_ns) / _S
            self.unusable_reason = (
                f"no valid time label from {self.info.label_from} for {quiet_s:.0f} s"
                if quiet_s > d.pps_label_holdover_s else None)

    def on_host_step(self, step_s: float) -> None:
        """Host realtime jumped: the estimate moves (core); edges are re-expressed in the new
        realtime (their arrival; their clock too when timed in realtime, no raw_ns), so the step
        is not taken for the pulses'. The labels they pair with move with their receiver's
        tracker (the same objects), and the label times kept here move with them."""
        super().on_host_step(step_s)
        step_ns = round(step_s * _S)
        if self._last_valid_label_ns is not None:
            self._last_valid_label_ns += step_ns
        if self._phase_bad_since_ns is not None:
            self._phase_bad_since_ns += step_ns
        for e in {id(x): x for x in (self._last, self._train, self._numbered, *self._recent)
                  if x is not None}.values():
            e.rx_ns += step_ns
            if e.raw_ns is None:
                e.clock_ns += step_ns
        if self._anchor is not None and self._last is not None and self._last.raw_ns is None:
            self._anchor = (self._anchor[0] + step_ns, self._anchor[1])

    # -- 1. structure --------------------------------------------------------------------------
    def _structure(self, e: _Edge, last: _Edge | None, seq_gap: int) -> bool:
        """Judge the edge's interval; True if it is on the 1-s train (usable)."""
        d, ctx, t = self.ctx.detect, self.ctx, self._train
        if t is None:
            self._train = e
            return True
        dt_s = self._seconds(e.clock_ns - t.clock_ns)
        k = round(dt_s)
        tol_s = d.pps_interval_tolerance_s + max(0, k - 1) * self._slack_ppm() * 1e-6
        on_train = k >= 1 and abs(dt_s - k) <= tol_s
        if dt_s > RESTART_AFTER_S:
            on_train = True  # back after a silence: count what was missed, judge no interval
            self._reset_phase()  # the phase line cannot bridge it: the holdover judges (_gap)
            self._arm_gap(t, e)
        missing = max(seq_gap, k - 1) if on_train else seq_gap
        self.missing_total += missing
        if missing:
            ctx.alerts.assert_(
                "pps.missing", e.rx_ns, (self.src,),
                f"{self.src}: {missing} pulse(s) missing before the edge at seq {e.seq}",
                {"missing": missing, "sequence_gap": seq_gap, "interval_s": dt_s,
                 "missing_total": self.missing_total},
                severity="warning", hold_down_s=d.hold_down_s)
        elif on_train:
            ctx.alerts.release("pps.missing", e.rx_ns, self.src)
        if on_train:
            self._train, self._resync = e, 0
            ctx.alerts.release("pps.interval", e.rx_ns, self.src)
            return True
        self.interval_faults += 1
        prev_s = self._seconds(e.clock_ns - last.clock_ns) if last is not None else dt_s
        kp = round(prev_s)
        in_new_phase = last is not t and kp >= 1 and abs(prev_s - kp) <= d.pps_interval_tolerance_s
        self._resync = self._resync + 1 if in_new_phase else 0
        kind = "extra pulse" if dt_s < 1 - d.pps_interval_tolerance_s else "shifted pulse"
        ctx.alerts.assert_(
            "pps.interval", e.rx_ns, (self.src,),
            f"{self.src}: {kind}: {dt_s:.6f} s since the last pulse on the 1-s train",
            {"interval_s": dt_s, "interval_prev_s": prev_s, "expected_s": float(max(k, 1)),
             "tolerance_s": d.pps_interval_tolerance_s, "interval_faults": self.interval_faults},
            severity="critical", hold_down_s=d.hold_down_s)
        if self._resync >= 2:  # two 1-s intervals in a new phase: it is the train now
            self._train, self._resync = e, 0
            self._recent.clear()
            self._rephased_s = k - dt_s  # the phase (second - clock) moved by this much
            return True
        return False

    def _slack_ppm(self) -> float:
        return SLACK_KNOWN_PPM if self.holdover.ready else SLACK_UNKNOWN_PPM

    def _seconds(self, dclock_ns: int) -> float:
        """Clock interval in reference seconds (raw time corrected by the holdover frequency)."""
        f = self.holdover.freq_ppm if self._last is not None and self._last.raw_ns is not None else None
        return dclock_ns / _S / (1 + (f or 0.0) * 1e-6)

    # -- 2. numbering and labels ---------------------------------------------------------------
    def _number(self, e: _Edge) -> None:
        n = self._numbered
        if self.info.label_from is None:
            # No label source: the host's second (chrony's PPS without a lock; host within 0.5 s).
            e.second_ns = (e.rx_ns + _S // 2) // _S * _S
        elif n is not None:
            e.second_ns = n.second_ns + round(self._seconds(e.clock_ns - n.clock_ns)) * _S  # type: ignore[operator]
        else:
            return  # waits for a label
        self._numbered = e
        self._measure(e)

    def _labels(self) -> deque[TimeLabelLike] | None:
        if self._label_deque is None:  # looked up until found, then kept (runs on every record)
            lf = self.info.label_from
            tr = self.ctx.trackers.get(lf) if lf is not None else None
            labels = getattr(tr, "labels", None)
            self._label_deque = labels if isinstance(labels, deque) else None
        return self._label_deque

    def _new_labels(self) -> None:
        labels = self._label_deque if self._label_deque is not None else self._labels()
        if not labels or labels[-1] is self._last_label:
            return
        new: list[TimeLabelLike] = []
        for lab in reversed(labels):
            if lab is self._last_label:
                break
            new.append(lab)
        self._last_label = labels[-1]
        for lab in reversed(new):
            if lab.valid:
                self._last_valid_label_ns = max(self._last_valid_label_ns or 0, lab.rx_ns)
                self._pending.append(lab)
        if self._pending:
            self._resolve_labels()

    def _resolve_labels(self) -> None:
        if not self._pending:
            return
        d = self.ctx.detect
        lo_ns = round(d.pps_label_latency_min_s * _S)
        keep: list[TimeLabelLike] = []
        for lab in self._pending:
            edge = None
            for e in reversed(self._recent):  # newest first: the label is usually the latest's
                lat = lab.rx_ns - e.rx_ns
                if (abs(lat - self.latency_ns) <= _S // 2 if self.latency_ns is not None
                        else lo_ns <= lat < lo_ns + _S):
                    edge = e
                    break
            if edge is not None:
                self._pair(lab, edge)
            elif self.ctx.now_ns - lab.rx_ns <= 2 * _S:
                keep.append(lab)  # its edge may still come (labels sent before the pulse)
            else:
                self.unpaired_labels += 1
        self._pending = keep

    def _pair(self, lab: TimeLabelLike, e: _Edge) -> None:
        d, ctx = self.ctx.detect, self.ctx
        lat = lab.rx_ns - e.rx_ns
        if self._numbered is None:  # first pairing: number this edge and the ones after it
            e.second_ns = lab.utc_ns
            self._numbered = e
            self._measure(e)
            after = False
            for r in list(self._recent):
                if after:
                    self._number(r)
                after = after or r is e
        if self.latency_ns is None:
            self._lat_acq.append(lat)
            if len(self._lat_acq) >= LATENCY_ACQUIRE:
                self.latency_ns = sorted(self._lat_acq)[len(self._lat_acq) // 2]
        self._lat_recent.append(lat)
        sec_diff_ns = lab.utc_ns - e.second_ns if e.second_ns is not None else 0
        self._sec_bad = self._sec_bad + 1 if sec_diff_ns else 0
        tol_ns = d.pps_label_phase_tolerance_s * _S
        off_phase = self.latency_ns is not None and abs(lat - self.latency_ns) > tol_ns
        self._phase_bad = self._phase_bad + 1 if off_phase else 0
        if off_phase:
            since = self._phase_bad_since_ns = self._phase_bad_since_ns or lab.rx_ns
            if lab.rx_ns - since >= RELEARN_LATENCY_S * _S:
                self.latency_ns = sorted(self._lat_recent)[len(self._lat_recent) // 2]
                self._phase_bad_since_ns = None
        else:
            self._phase_bad_since_ns = None
        ev = {"label_utc_ns": lab.utc_ns, "label_rx_ns": lab.rx_ns, "edge_rx_ns": e.rx_ns,
              "pps_second_utc_ns": e.second_ns, "second_diff_s": sec_diff_ns / _S,
              "label_latency_s": lat / _S,
              "learned_latency_s": self.latency_ns / _S if self.latency_ns is not None else None,
              "phase_tolerance_s": d.pps_label_phase_tolerance_s}
        second_wrong = self._sec_bad >= d.pps_label_confirm
        if second_wrong or self._phase_bad >= d.pps_label_confirm:
            msg = (f"{self.src}: labels from {self.info.label_from} name another second "
                   f"({sec_diff_ns / _S:+.0f} s) than the pulses count" if second_wrong else
                   f"{self.src}: labels from {self.info.label_from} arrive {lat / 1e6:+.1f} ms "
                   f"from their pulse, "
                   f"{self.latency_ns / 1e6 if self.latency_ns else 0:+.1f} ms learned")
            ctx.alerts.assert_("pps.label_mismatch", lab.rx_ns,
                               (self.src, self.info.label_from or ""), msg, ev,
                               severity="critical", key=self.src, hold_down_s=d.hold_down_s)
            if second_wrong:
                self._renumber(sec_diff_ns)
                self._sec_bad = 0
        elif self._sec_bad == 0 and self._phase_bad == 0:
            ctx.alerts.release("pps.label_mismatch", lab.rx_ns, self.src)

    def _renumber(self, delta_ns: int) -> None:
        """The labels say the seconds are counted `delta_ns` off: follow them. The phase line moves
        with the numbering, so a re-numbering is never taken for a phase step."""
        for e in self._recent:
            if e.second_ns is not None:
                e.second_ns += delta_ns
        if self._anchor is not None:
            self._anchor = (self._anchor[0], self._anchor[1] + delta_ns)

    # -- 3. phase, estimate, holdover ----------------------------------------------------------
    def _reset_phase(self) -> None:
        self._anchor = None
        self._base.clear()
        self._tail.clear()
        self._lag.clear()
        self._hist.clear()
        self._drift_run = 0

    def _arm_gap(self, before: _Edge, after: _Edge) -> None:
        """A silence between edges `before` and `after`: judge the pulses from `after` on against
        the holdover, from the median residual of the last edges before it (one may be late)."""
        ho = self.holdover
        self._gap = None
        if before.raw_ns is None or after.raw_ns is None or not ho.ready:
            return
        res = []
        for e in self._recent:
            if e.raw_ns is not None and e.second_ns is not None:
                r = ho.residual(e.rx_ns, e.raw_ns, (e.second_ns - e.rx_ns) / _S)
                if r is not None:
                    res.append(r.residual_s)
        if res:
            self._gap = ((after.raw_ns - before.raw_ns) / _S, median(res), [])

    def _check_gap(self, e: _Edge, jitter: float) -> bool | None:
        """A pulse after a silence against the holdover clock (GAP_SIGMAS): the time moved while
        the receiver was jammed or without a fix is a `time.step`. Returns whether the pulse is
        an outlier (off the median of those since the silence; the young phase line learns only
        the others), None when the phase line judges again."""
        gap = self._gap
        assert gap is not None and e.second_ns is not None
        ho, d = self.holdover, self.ctx.detect
        r = ho.residual(e.rx_ns, e.raw_ns, (e.second_ns - e.rx_ns) / _S) \
            if e.raw_ns is not None else None
        if r is None:
            self._gap = None
            return None
        silent_s, before_s, after = gap
        pulse_thr_s = max(d.pps_step_s, STEP_JITTER_K * jitter)
        off = len(after) >= 2 and abs(r.residual_s - median(after)) >= pulse_thr_s
        after.append(r.residual_s)
        if len(after) >= BASELINE_N:
            self._gap = None  # the phase line judges again from the next pulse
        if len(after) < d.pps_step_window:
            return off
        wander = max(ho.wander_ppm, d.drift_wander_floor_ppm) * 1e-6
        sigma_s = math.hypot((ho.freq_sigma_ppm or 0.0) * 1e-6 * silent_s,
                             wander * silent_s * math.sqrt(silent_s / ho.block_s) * 2 / 3)
        thr_s = max(d.pps_step_s, STEP_MEDIAN_K * jitter) + GAP_SIGMAS * sigma_s
        step_s = median(after[-d.pps_step_window:]) - before_s
        if abs(step_s) < thr_s:
            return off
        self._gap = None
        self.steps += 1
        self.ctx.caught_moving(
            self.src, "time.step", e.rx_ns,
            f"{self.src}: PPS phase moved {step_s * 1e6:+.1f} us across a {silent_s:.0f}-s "
            f"silence, beyond the {thr_s * 1e6:.1f} us the holdover clock can explain",
            {"step_s": step_s, "threshold_s": thr_s, "silence_s": silent_s,
             "holdover_sigma_s": sigma_s, "jitter_s": self.jitter_s,
             "pulses_window": d.pps_step_window, "edge_rx_ns": e.rx_ns,
             "reference": "holdover clock"})
        return off

    def _measure(self, e: _Edge) -> None:
        d, ctx = self.ctx.detect, self.ctx
        assert e.second_ns is not None
        if self._rephased_s is not None:
            self._rephased(e, self._rephased_s)
            self._rephased_s = None
        gap_off: bool | None = None
        if self._gap is not None:
            gap_off = self._check_gap(e, self.jitter_s if self.jitter_s is not None
                                      else INITIAL_JITTER_S)
        if self._anchor is None:
            self._anchor = (e.clock_ns, e.second_ns)
        c0, s0 = self._anchor
        x_s = (e.clock_ns - c0) / _S
        phase_s = ((e.second_ns - s0) - (e.clock_ns - c0)) / _S
        res_s = self._residual(x_s, phase_s)
        jitter = self.jitter_s if self.jitter_s is not None else INITIAL_JITTER_S
        thr_s = max(d.pps_step_s, STEP_JITTER_K * jitter)
        if gap_off is not None:  # after a silence the holdover judges the pulses, not the line
            outlier = gap_off
        else:
            outlier = res_s is not None and abs(res_s) >= thr_s
        self._tail.append((x_s, phase_s, res_s if res_s is not None else 0.0))
        if outlier:
            self.outliers += 1
        # A pulse that shows a step is the new phase's (the line restarts with it): it is
        # usable (the source is withheld as moving), so five stepped pulses, each an outlier
        # to the old line, never also read as five seconds without data (source.stale).
        stepped = res_s is not None and gap_off is None and self._check_step(e, jitter)
        if outlier and not stepped:
            return
        lag = self._lag
        if not stepped:
            lag.append((x_s, phase_s, res_s))
        if len(self._base) < BASELINE_N and not stepped:  # short: learn at once (poor slope)
            lag.clear()
            self._base.append(x_s, phase_s)
        while len(lag) >= d.pps_step_window:
            lx, lp, lr = lag.popleft()
            self._base.append(lx, lp)
            # The jitter learns no pulse while the last ones sit off the line on one side (a
            # step may be building: it must not widen the threshold that judges it).
            half = d.pps_step_s / 2
            if lr is not None and (_within(self._tail, half) or
                                   abs(median([r for _, _, r in self._tail])) < half):
                self.jitter_s = _ewma_sd(jitter * jitter if self.jitter_s is not None
                                         else lr * lr, lr, JITTER_ALPHA)
                self._jitter_n += 1
                self._step_jitter_s = _ewma_sd(
                    self._step_jitter_s ** 2 if self._step_jitter_s is not None else lr * lr,
                    lr, max(STEP_JITTER_ALPHA, 1.0 / self._jitter_n))
        if gap_off is None:
            self._check_drift(e, x_s, phase_s)
        offset_s = (e.second_ns - e.rx_ns) / _S
        bound_s = max(d.pps_bound_floor_s, d.pps_bound_jitter_k * (self.jitter_s or INITIAL_JITTER_S))
        self.estimate_ = Estimate(offset_s, bound_s, e.rx_ns)
        self.last_usable_ns = e.rx_ns
        fields: dict[str, float] = {
            "jitter_s": self.jitter_s if self.jitter_s is not None else INITIAL_JITTER_S,
            "missing_total": float(self.missing_total), "phase_s": res_s or 0.0,
            "interval_faults": float(self.interval_faults), "seq": float(e.seq)}
        if self.latency_ns is not None:
            fields["label_latency_s"] = self.latency_ns / _S
        ctx.emit(self.src, e.rx_ns, offset_s, bound_s, fields)
        if not stepped:
            self._learn(e, res_s)

    def _rephased(self, e: _Edge, step_s: float) -> None:
        """The pulse train moved to a new phase (seen by pps.interval over three edges): the
        pulses' time stepped. Raise it and restart the phase line at the new phase."""
        d = self.ctx.detect
        self._reset_phase()
        if abs(step_s) < d.pps_step_s:
            return
        self.steps += 1
        self.ctx.caught_moving(
            self.src, "time.step", e.rx_ns,
            f"{self.src}: PPS pulse train re-phased by {step_s * 1e3:+.3f} ms",
            {"step_s": step_s, "threshold_s": d.pps_step_s, "jitter_s": self.jitter_s,
             "edge_rx_ns": e.rx_ns, "pulses_confirming": 3})

    def _residual(self, x_s: float, phase_s: float) -> float | None:
        """Phase off the line fitted to the previous good pulses (None while it has too few)."""
        if len(self._base) < BASELINE_MIN:
            return None
        return phase_s - self._base.predict(x_s)

    def _check_step(self, e: _Edge, jitter: float) -> bool:
        """A step: the mean of the last pps_step_window pulses off the line by at least
        max(pps_step_s, STEP_MEAN_K standard errors), the late ones (STEP_SPREAD_K) left out and
        pps_step_confirm kept; or every one of them an outlier on one side. True when one was
        found (the line restarts at the new phase)."""
        d, ctx = self.ctx.detect, self.ctx
        tail = self._tail
        n = len(tail)
        if n < d.pps_step_window or _within(tail, d.pps_step_s / 2):
            return False  # (a mean inside +-pps_step_s / 2 is below every bar: no step)
        sig = _young(self._step_jitter_s, self._jitter_n) if self._step_jitter_s is not None \
            else jitter
        res = [r for _, _, r in tail]
        med = median(res)
        spread = STEP_SPREAD_K * sig
        out_s = max(d.pps_step_s, STEP_JITTER_K * jitter)  # an outlier (_measure)
        lo_s: float | None = None  # the bar when every pulse is an outlier
        if all(r >= out_s for r in res) or all(r <= -out_s for r in res):
            # Every pulse an outlier on one side, however spread (a step, or a push faster
            # than a us a second that the spread test below would take for no step): moved.
            kept = res
            lo_s = out_s
        elif any(r - med > spread for r in res):
            return False  # a pulse far earlier than the others: no interrupt does that
        else:
            kept = [r for r in res if med - r <= spread]  # late interrupts (r < 0) left out
        k = len(kept)
        if k < d.pps_step_confirm:
            return False
        step_s = sum(kept) / k
        # The jitter, measured on residuals, holds the line's error c^2 once already.
        c2 = self._base.extrapolation(sum(x for x, _, _ in tail) / n)
        se_s = sig * math.sqrt((1.0 / k + c2) / (1.0 + c2))
        thr_s = lo_s if lo_s is not None else max(d.pps_step_s, STEP_MEAN_K * se_s)
        if abs(step_s) < thr_s:
            return False
        self.steps += 1
        ev: dict[str, Any] = {"step_s": step_s, "threshold_s": thr_s, "step_sigma_s": se_s,
                              "jitter_s": self.jitter_s, "pulses_confirming": k,
                              "pulses_window": n, "edge_rx_ns": e.rx_ns}
        ho = self.holdover
        if e.raw_ns is not None and ho.ready and e.second_ns is not None:
            r = ho.residual(e.rx_ns, e.raw_ns, (e.second_ns - e.rx_ns) / _S)
            if r is not None:
                ev["holdover_residual_s"] = r.residual_s
                ev["holdover_sigma_s"] = r.sigma_s
                ev["holdover_freq_ppm"] = ho.freq_ppm
        ctx.caught_moving(
            self.src, "time.step", e.rx_ns,
            f"{self.src}: PPS phase stepped {step_s * 1e6:+.1f} us against the raw oscillator "
            f"(mean of {k} of the last {n} pulses, {abs(step_s) / se_s:.1f} sigma)", ev)
        # The new phase is the history now: restart the line from the pulses that moved.
        new = [(x, p) for x, p, r in tail if lo_s is not None or med - r <= spread]
        self._base.clear()
        for x, p in new:
            self._base.append(x, p)
        self._tail.clear()
        self._lag.clear()
        self._hist.clear()  # the phase jumped: slopes start again
        return True

    def _check_drift(self, e: _Edge, x_s: float, phase_s: float) -> None:
        """The slope test (module docstring, DRIFT_*): a phase slope that changed faster than the
        crystal can is a push (`time.drift`)."""
        hist = self._hist
        xs, ps = hist.xs, hist.ps
        if xs and x_s < xs[-1]:  # the clock went back (corrupt raw times): start again
            hist.clear()
        hist.append(x_s, phase_s)
        if e.raw_ns is None:  # realtime slews would look like pushes: judge raw time only
            return
        jitter = _young(self.jitter_s, self._jitter_n) if self.jitter_s is not None \
            else INITIAL_JITTER_S
        ho = self.holdover
        wander_ppm = max(ho.wander_ppm, self.ctx.detect.drift_wander_floor_ppm)
        found: tuple[float, float, int] | None = None
        end = len(xs)
        lo = max(0, end - HIST_KEEP)  # increasing x: each window is a range found by bisect
        for w in DRIFT_WINDOWS_S:
            i1 = bisect_right(xs, x_s - w, lo)  # recent: x > x_s - w
            i0 = bisect_right(xs, x_s - 2 * w, lo)  # before: x_s - 2w < x <= x_s - w
            n_recent, n_before = end - i1, i1 - i0
            need = DRIFT_FILL * w
            if n_recent < need or n_before < need:
                break  # longer windows have even less
            noise = jitter * math.sqrt(12.0 / n_recent ** 3 + 12.0 / n_before ** 3)
            allow = wander_ppm * 1e-6 * math.sqrt(w / ho.block_s)
            thr = DRIFT_WANDER_K * allow + DRIFT_NOISE_K * noise
            q2, e2 = hist.slope_bound(i1, end)
            q1, e1 = hist.slope_bound(i0, i1)
            if abs(q2 - q1) + e2 + e1 < thr * (1.0 - 8.0 * _U):
                continue  # no float _slope gives could alarm: the same decision, unrun
            b2, b1 = _slope(xs, ps, i1, end), _slope(xs, ps, i0, i1)
            if abs(b2 - b1) > thr:
                found = (b2 - b1, thr, w)
                break
        if found is None:
            self._drift_run = 0
            return
        self._drift_run += 1
        if self._drift_run < DRIFT_CONFIRM:
            return
        diff, thr, w = found
        rate = diff
        self.ctx.caught_moving(
            self.src, "time.drift", e.rx_ns,
            f"{self.src} drifting {rate * 1e6:+.2f} ppm ({rate * 1e6:+.2f} us/s) against the "
            f"holdover clock, beyond what honest sources and the oscillator can explain",
            {"rate_s_per_s": rate, "threshold_s_per_s": thr, "window_s": float(w),
             "reference": "holdover clock", "jitter_s": jitter, "wander_ppm": wander_ppm,
             "offset_s": (e.second_ns - e.rx_ns) / _S if e.second_ns is not None else None})

    def _learn(self, e: _Edge, res_s: float | None) -> None:
        c = self.ctx.consensus
        if e.raw_ns is None or res_s is None or e.second_ns is None or not c.quorum:
            return
        if self._gap is not None or \
                any(abs(r) >= self.ctx.detect.pps_step_s for _, _, r in self._tail):
            return  # a step may be building: teach the holdover nothing until it is decided
        v = c.verdicts.get(self.src)
        if v is None or v[0] != Verdict.TRUECHIMER or self.src in c.withheld:
            return  # the witness never learns from a source that moved
        self.holdover.learn(self.src, e.raw_ns, e.second_ns, max(self.jitter_s or 0.0, 0.5e-6))

    # -- output --------------------------------------------------------------------------------
    def status_fields(self) -> dict[str, Any]:
        return {"jitter_s": self.jitter_s, "missing_total": self.missing_total,
                "interval_faults": self.interval_faults, "outliers": self.outliers,
                "steps": self.steps, "unpaired_labels": self.unpaired_labels,
                "label_latency_s": self.latency_ns / _S if self.latency_ns is not None else None,
                "holdover_freq_ppm": self.holdover.freq_ppm,
                # The crystal's measured wander (None until two 10-min blocks are complete).
                "holdover_wander_ppm": (self.holdover.wander_ppm if self.holdover.wander_measured
                                        else None)}
