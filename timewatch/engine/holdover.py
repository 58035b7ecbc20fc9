"""The holdover clock: a model of the host's free-running oscillator against the agreeing references.

The host's `CLOCK_MONOTONIC_RAW` (`raw_ns` on records) is a crystal that nothing slews or steps and
that no one can spoof over the air. While the references agree, this module learns how it runs
against them (a straight line: reference time as a function of raw time, i.e. a phase and a
frequency) and how much that frequency wanders. When a reference later moves, the model says
whether the oscillator can explain the move (docs/threats.md: "Holdover is a witness").

Learning (who calls `learn`):
- the PPS tracker (engine/pps.py), with each good edge while the consensus has quorum and the PPS
  source is a truechimer: (raw_ns of the edge, the UTC second it marks, its jitter);
- `HoldoverLearner` (a detector), with the consensus of the vote as a coarse fallback when no PPS
  edge was learned for `pps_recent_s`: (raw_ns of the observation, rx_ns + consensus offset,
  consensus bound).
Points farther from the prediction than `reject_k` sigmas are not learned (counted in `rejected`),
so one outlier or a step never bends the model; a source a detector distrusts is not learned.

The fit is a weighted least-squares line over the last one or two blocks of `block_s` of raw time
(10-20 min). Each completed block also gives its own frequency; the spread of consecutive block
frequencies (the Allan deviation at tau = block_s) is the oscillator's *measured* wander.

API for cross-source detectors (the `time.drift` CUSUM asks "is this reference being pushed?"):

    ho = ctx.holdover                        # always installed (read it at use time)
    ho.ready                                 # False until a model exists: then judge nothing
    ho.freq_ppm                              # raw oscillator frequency error, + = raw runs fast
    ho.freq_sigma_ppm, ho.wander_ppm         # 1-sigma uncertainty; measured wander per block
    p = ho.predict(raw_ns)                   # Prediction(ref_ns, sigma_s): reference time then
    r = ho.residual(rx_ns, raw_ns, offset_s) # Residual | None, for a reference whose offset
                                             # (reference - host realtime) was offset_s at rx_ns:
      r.residual_s          reference time - holdover prediction (s)
      r.sigma_s             1-sigma of the prediction (fit, frequency and wander terms)
      r.rate_sigma_s_per_s  1-sigma residual *rate* the oscillator can explain (frequency
                            uncertainty + measured wander over the model's age): a residual that
                            grows faster than a few of these is a push, not the crystal.
    ho.distrust(src) / ho.trust(src)         # stop / resume learning from a suspect source

All times are integers in ns (raw_ns since boot, ref_ns since the epoch); the arithmetic keeps
them as offsets from an anchor so floats never lose nanoseconds. Pure: no clock is ever read.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Final

from ..records import Observation, Tick

if TYPE_CHECKING:
    from .vote import Consensus

from .core import Context, Detector
from .value import Value

# Block length: docs/threats.md states the wander "over ten minutes"; one block measures one such span.
DEFAULT_BLOCK_S: Final = 600.0
# Completed block frequencies kept for the wander statistic (2 h: long enough for a stable spread).
WANDER_BLOCKS: Final = 12
# Wander assumed until two blocks are measured (docs/threats.md: "about 0.1 ppm over ten minutes").
PRIOR_WANDER_PPM: Final = 0.1
# Floor on the measured wander: an Allan deviation from a few blocks is itself noisy.
WANDER_FLOOR_PPM: Final = 0.005
# A point farther than this many sigmas from the prediction is not learned (outliers, steps).
REJECT_K: Final = 6.0
# A fit needs this much raw time before it predicts (a frequency from seconds is meaningless).
MIN_SPAN_S: Final = 30.0
# The line is refitted every this many points (a 10-20 min fit moves little in 16 more points).
REFIT_EVERY: Final = 16
# Weights are 1/(sigma/1 us)^2: keeps the sums in a comfortable float range.
_WEIGHT_UNIT_S: Final = 1e-6
# No crystal runs this far off (docs/threats.md: 100 ppm): a point whose reference and raw times
# moved apart faster than this since the anchor (plus one second of phase) is not a reading of
# the oscillator (a raw_ns that is garbage) and is refused before it can bend the fit (a slope
# of -1 would divide by zero in the frequency).
MAX_RATE: Final = 1e-3
MAX_PHASE_NS: Final = 1_000_000_000


# The name the consensus learns the holdover under (beside real sources such as a PPS).
CONSENSUS_SRC: Final = "consensus"


class Prediction(Value):
    _fields = ("ref_ns", "sigma_s")
    __slots__ = _fields

    def __init__(self, ref_ns: int, sigma_s: float) -> None:
        self.ref_ns: Final = ref_ns  # reference time predicted at the raw instant
        self.sigma_s: Final = sigma_s  # its 1-sigma uncertainty


class Residual(Value):
    _fields = ("residual_s", "sigma_s", "rate_sigma_s_per_s")
    __slots__ = _fields

    def __init__(self, residual_s: float, sigma_s: float, rate_sigma_s_per_s: float) -> None:
        self.residual_s: Final = residual_s  # reference time - holdover prediction
        self.sigma_s: Final = sigma_s  # 1-sigma of the prediction
        # The residual rate the oscillator's measured wander can explain (1 sigma).
        self.rate_sigma_s_per_s: Final = rate_sigma_s_per_s


class _Sums:
    """Weighted least-squares sums of y against x (x, y in seconds from the model's anchor)."""

    __slots__ = ("n", "w", "wx", "wy", "wxx", "wxy", "wyy", "x_lo", "x_hi")

    def __init__(self) -> None:
        self.n = 0
        self.w = self.wx = self.wy = self.wxx = self.wxy = self.wyy = 0.0
        self.x_lo = math.inf
        self.x_hi = -math.inf

    def add(self, x: float, y: float, w: float) -> None:
        self.n += 1
        self.w += w
        wx, wy = w * x, w * y
        self.wx += wx
        self.wy += wy
        self.wxx += wx * x
        self.wxy += wx * y
        self.wyy += wy * y
        if x < self.x_lo:
            self.x_lo = x
        if x > self.x_hi:
            self.x_hi = x

    def shift(self, dx: float, dy: float) -> None:
        """Re-express the sums with x -> x - dx, y -> y - dy (a new anchor)."""
        w, wx, wy = self.w, self.wx, self.wy
        self.wxx += -2 * dx * wx + dx * dx * w
        self.wyy += -2 * dy * wy + dy * dy * w
        self.wxy += -dx * wy - dy * wx + dx * dy * w
        self.wx -= dx * w
        self.wy -= dy * w
        self.x_lo -= dx
        self.x_hi -= dx

    def plus(self, o: _Sums) -> _Sums:
        s = _Sums()
        s.n = self.n + o.n
        s.w, s.wx, s.wy = self.w + o.w, self.wx + o.wx, self.wy + o.wy
        s.wxx, s.wxy, s.wyy = self.wxx + o.wxx, self.wxy + o.wxy, self.wyy + o.wyy
        s.x_lo, s.x_hi = min(self.x_lo, o.x_lo), max(self.x_hi, o.x_hi)
        return s

    @property
    def span_s(self) -> float:
        return self.x_hi - self.x_lo if self.n else 0.0


class _Fit(Value):
    _fields = ("intercept_s", "slope", "x_mean_s", "w", "sxx", "chi2", "span_s", "scale_s",
               "inv_w", "freq_sigma_ppm")
    __slots__ = _fields

    def __init__(self, intercept_s: float, slope: float, x_mean_s: float, w: float, sxx: float,
                 chi2: float, span_s: float, scale_s: float, inv_w: float,
                 freq_sigma_ppm: float) -> None:
        self.intercept_s: Final = intercept_s  # y at x = 0
        self.slope: Final = slope  # dy/dx (= reference rate / raw rate - 1)
        self.x_mean_s: Final = x_mean_s
        self.w: Final = w
        self.sxx: Final = sxx  # weighted sum of squares of x about its mean
        self.chi2: Final = chi2  # reduced chi-square of the fit (>= 1 used as a scale)
        self.span_s: Final = span_s
        # Derived once per fit (every prediction uses them):
        self.scale_s: Final = scale_s  # 1-sigma scale of the fit: sqrt(max(1, chi2)) weight units
        self.inv_w: Final = inv_w  # 1 / w
        self.freq_sigma_ppm: Final = freq_sigma_ppm  # 1-sigma uncertainty of the slope (ppm)


def _fit(s: _Sums) -> _Fit | None:
    if s.n < 3 or s.w <= 0:
        return None
    xm, ym = s.wx / s.w, s.wy / s.w
    sxx = s.wxx - s.w * xm * xm
    if sxx <= 0:
        return None
    sxy = s.wxy - s.w * xm * ym
    syy = s.wyy - s.w * ym * ym
    slope = sxy / sxx
    resid = max(0.0, syy - slope * sxy)  # weighted residual sum of squares (in weight units)
    chi2 = resid / max(1, s.n - 2)
    return _Fit(ym - slope * xm, slope, xm, s.w, sxx, chi2, s.span_s,
                math.sqrt(max(1.0, chi2)) * _WEIGHT_UNIT_S, 1.0 / s.w,
                math.sqrt(max(1.0, chi2) / sxx) * _WEIGHT_UNIT_S * 1e6)


class Holdover:
    """The raw-oscillator model. See the module docstring for the API detectors use."""

    def __init__(self, block_s: float = DEFAULT_BLOCK_S, prior_wander_ppm: float = PRIOR_WANDER_PPM):
        self.block_s = block_s
        self.prior_wander_ppm = prior_wander_ppm
        self._raw0: int | None = None  # anchor: raw_ns and ref_ns of the current model's origin
        self._ref0 = 0
        self._cur = _Sums()  # the block being filled
        self._prev: _Sums | None = None  # the last completed block
        self._block_start_s = 0.0
        self._block_freqs: deque[float] = deque(maxlen=WANDER_BLOCKS)
        self._wander_ppm: float | None = None  # measured from _block_freqs (None: fewer than 2)
        self._fit: _Fit | None = None
        self._unfitted = 0  # points learned since the last fit
        self._distrusted: set[str] = set()
        self.last_learn_raw_ns: dict[str, int] = {}  # per source: raw_ns of its last learned point
        self.learned = 0
        self.rejected = 0

    # -- learning ----------------------------------------------------------------------------
    def distrust(self, src: str) -> None:
        """Stop learning from `src` (a detector suspects it) until `trust(src)`."""
        self._distrusted.add(src)

    def trust(self, src: str) -> None:
        self._distrusted.discard(src)

    def learn(self, src: str, raw_ns: int, ref_ns: int, sigma_s: float) -> bool:
        """Learn that the reference read `ref_ns` at raw instant `raw_ns` (1-sigma `sigma_s`).

        Returns True if the point was learned (False: distrusted source or too far from the model).
        """
        if src in self._distrusted:
            return False
        sigma_s = max(sigma_s, 1e-9)
        if self._raw0 is None:
            self._raw0, self._ref0 = raw_ns, ref_ns
        draw = raw_ns - self._raw0
        if abs((ref_ns - self._ref0) - draw) > MAX_RATE * abs(draw) + MAX_PHASE_NS:
            self.rejected += 1  # not a reading of this oscillator: raw_ns (or ref) is garbage
            return False
        x, y = self._xy(raw_ns, ref_ns)
        if self._fit is not None:
            pred_y, pred_sigma = self._predict_xy(x)
            if abs(y - pred_y) > REJECT_K * math.hypot(pred_sigma, sigma_s):
                self.rejected += 1
                return False
        if self._cur.n == 0:
            self._block_start_s = x
        elif x - self._block_start_s >= self.block_s:
            self._close_block(raw_ns, ref_ns)
            x, y = 0.0, 0.0
            self._block_start_s = 0.0
        self._cur.add(x, y, (_WEIGHT_UNIT_S / sigma_s) ** 2)
        self._unfitted += 1
        if self._fit is None or self._unfitted >= REFIT_EVERY:
            self._refit()
        self.learned += 1
        self.last_learn_raw_ns[src] = raw_ns
        return True

    def _xy(self, raw_ns: int, ref_ns: int) -> tuple[float, float]:
        assert self._raw0 is not None
        draw = raw_ns - self._raw0
        return draw / 1e9, ((ref_ns - self._ref0) - draw) / 1e9

    def _close_block(self, raw_ns: int, ref_ns: int) -> None:
        """The current block is complete: keep its frequency, make it `prev`, re-anchor at now."""
        f = _fit(self._cur)
        if f is not None and f.span_s >= self.block_s / 2:
            b = self._block_freqs
            b.append(_ppm(f.slope))
            if len(b) >= 2:  # the Allan deviation of consecutive block frequencies
                diffs = [(b[i + 1] - b[i]) ** 2 for i in range(len(b) - 1)]
                self._wander_ppm = max(WANDER_FLOOR_PPM, math.sqrt(0.5 * sum(diffs) / len(diffs)))
        self._prev = self._cur if self._cur.n >= 3 else None
        self._cur = _Sums()
        dx, dy = self._xy(raw_ns, ref_ns)
        if self._prev is not None:
            self._prev.shift(dx, dy)
        self._raw0, self._ref0 = raw_ns, ref_ns
        self._unfitted = REFIT_EVERY  # new anchor and window: refit with this very point

    def _refit(self) -> None:
        self._unfitted = 0
        s = self._cur if self._prev is None else self._cur.plus(self._prev)
        f = _fit(s)
        self._fit = f if f is not None and f.span_s >= MIN_SPAN_S else None

    # -- the model -----------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._fit is not None

    @property
    def freq_ppm(self) -> float | None:
        """Raw oscillator frequency error against the references (+ = raw runs fast), or None."""
        return _ppm(self._fit.slope) if self._fit is not None else None

    @property
    def freq_sigma_ppm(self) -> float | None:
        f = self._fit
        return f.freq_sigma_ppm if f is not None else None

    @property
    def wander_ppm(self) -> float:
        """Measured frequency wander per block (Allan deviation at tau = block_s); prior until
        two blocks are complete."""
        w = self._wander_ppm  # computed when a block completes
        return self.prior_wander_ppm if w is None else w

    @property
    def precise(self) -> bool:
        """A reference other than the consensus (a PPS) has taught the model: its prediction is
        a witness for the vote's consensus (a model learned only from the consensus would
        witness for itself)."""
        return any(src != CONSENSUS_SRC for src in self.last_learn_raw_ns)

    @property
    def wander_measured(self) -> bool:
        return len(self._block_freqs) >= 2

    def _predict_xy(self, x: float) -> tuple[float, float]:
        f = self._fit
        assert f is not None
        dx = x - f.x_mean_s
        fit_sigma = f.scale_s * math.sqrt(f.inv_w + dx ** 2 / f.sxx)
        # Beyond the window centre the frequency may have wandered: a random walk of wander_ppm per
        # block grows as sqrt(age), and its phase effect is the integral, (2/3) age^1.5.
        age_s = dx if dx > 0.0 else 0.0  # max(0.0, dx)
        wander_sigma = self.wander_ppm * 1e-6 * age_s * math.sqrt(age_s / self.block_s) * 2 / 3
        return f.intercept_s + f.slope * x, math.hypot(fit_sigma, wander_sigma)

    def predict(self, raw_ns: int) -> Prediction | None:
        """The reference time the model predicts at `raw_ns`, with its 1-sigma; None if not ready."""
        if self._fit is None or self._raw0 is None:
            return None
        draw = raw_ns - self._raw0
        y, sigma = self._predict_xy(draw / 1e9)
        return Prediction(self._ref0 + draw + round(y * 1e9), sigma)

    def residual(self, rx_ns: int, raw_ns: int, offset_s: float) -> Residual | None:
        """A reference's residual against the model: it read rx_ns + offset_s at raw instant raw_ns."""
        f, raw0 = self._fit, self._raw0
        if f is None or raw0 is None:
            return None
        draw = raw_ns - raw0
        y, sigma_s = self._predict_xy(draw / 1e9)  # what predict() gives, without its record
        res_s = (rx_ns - (self._ref0 + draw + round(y * 1e9))) / 1e9 + offset_s
        age_s = (raw_ns - (raw0 or raw_ns)) / 1e9 - f.x_mean_s
        if not age_s > 0.0:  # max(0.0, age_s)
            age_s = 0.0
        root = math.sqrt(age_s / self.block_s)
        wander = self.wander_ppm * (root if root > 1.0 else 1.0)  # max(1.0, root)
        return Residual(res_s, sigma_s, math.hypot(f.freq_sigma_ppm, wander) * 1e-6)


def _ppm(slope: float) -> float:
    """Oscillator frequency error from d(ref - raw)/d(raw): raw per reference second, minus 1."""
    return (1.0 / (1.0 + slope) - 1.0) * 1e6


def ensure_holdover(ctx: Context) -> Holdover:
    """The engine's one holdover model, installed on first use (read `ctx.holdover` at use time)."""
    if not isinstance(ctx.holdover, Holdover):
        # Its wander until it has measured one: the smallest the PPS tests assume (the Pi's
        # crystal by default; an operator with a TCXO or OCXO lowers both together).
        ctx.holdover = Holdover(prior_wander_ppm=ctx.detect.drift_wander_floor_ppm)
    ho: Holdover = ctx.holdover
    return ho


# Consensus points are learned only when no PPS edge was learned for this long (PPS is far better).
PPS_RECENT_S: Final = 10.0
# ... and only when their bound is within this factor of the model's own prediction sigma: while
# a PPS is withheld (caught moving) or gone, the model free-runs on what the PPS taught it until
# the oscillator's wander makes the coarser consensus worth learning again.
COARSE_FACTOR: Final = 10.0


class HoldoverLearner(Detector):
    """Feeds the holdover with the vote's consensus: the coarse fallback when there is no PPS."""

    SRC: Final = CONSENSUS_SRC

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.holdover = ensure_holdover(ctx)
        self._pair: tuple[int, int] | None = None  # (rx_ns, raw_ns) of the latest observation

    def on_observation(self, obs: Observation) -> None:
        # type() is: core's test (isinstance on a msgspec Struct asks its metaclass, per record).
        if obs.raw_ns is not None and (type(obs) is Tick or obs.src):
            self._pair = (obs.rx_ns, obs.raw_ns)

    def on_vote(self, consensus: Consensus) -> None:
        c, pair = consensus, self._pair
        if not c.quorum or not c.has_offset or c.bound_s is None or pair is None:
            return
        ho = self.holdover
        recent = [r for s, r in ho.last_learn_raw_ns.items() if s != self.SRC]
        if recent and pair[1] - max(recent) < PPS_RECENT_S * 1e9:
            return
        rx_ns, raw_ns = pair
        p = ho.predict(raw_ns)
        if p is not None and c.bound_s > COARSE_FACTOR * max(p.sigma_s, 1e-6):
            return  # far coarser than what the model knows (a PPS taught it): only noise
        off_ns = c.members_offset_ns()  # (round(members_offset_s * 1e9), mostly not summed)
        assert off_ns is not None
        ho.learn(self.SRC, raw_ns, rx_ns + off_ns, max(c.bound_s, 1e-6))
        self._pair = None  # one point per observation
