"""`timewatch report`: a self-contained HTML report of a trace or of the store over a time range.

What it holds (docs/report.md):
- each source's offset and error bound over time, the consensus beside it, its alerts marked;
- the alert timeline (each alert from raise to clear) and the table of events;
- the host clock against the consensus, and the holdover oscillator's frequency;
- the stability of each precise source (kinds registered with `stability`) against two references, the
  host's free-running oscillator (`raw_ns`, CLOCK_MONOTONIC_RAW: what nothing steers) and the
  consensus: ADEV (overlapping), MDEV, TDEV and MTIE, with the ITU-T G.8272 PRTC-A and PRTC-B
  masks on TDEV and MTIE for the kinds a PRTC is made of (kinds registered with `prtc`: GNSS and its PPS).

Data: a trace is replayed through the engine (samples, snapshots, events); the store gives what a
live monitor stored (it has no `raw_ns`: no oscillator reference then). Phase data for the
deviations is each source's time error on a uniform grid of its median sample interval (linear
interpolation across missing samples; the report says how much was filled). Against the
oscillator, the phase is `offset + (rx - raw)` with the oscillator's frequency removed (the
median phase move over a quarter of the range: a crystal's constant rate is not the source's
instability, and an attack's step must not bend the estimate; the report prints it); against the
consensus it is `offset - consensus` (the consensus interpolated between snapshots).

Deviations come from allantools (oadev, mdev, tdev: checked against NIST SP 1065's worked example
in tests/test_report.py); MTIE is computed here with a sparse table of window minima and maxima
(O(N log N); allantools' is O(N m) per tau and takes seconds on a day of PPS), checked against
allantools.mtie. Figures are drawn with matplotlib (Agg) and embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from . import kinds
from .config import Config
from .records import Event, Output, Sample, Snapshot

NS = 1_000_000_000


def _trait(kind: str, trait: str) -> bool:
    """A kind's report trait (`stability`: its stability is analysed; `prtc`: the G.8272 masks
    are drawn), as its registration in timewatch/kinds/ declares it; unknown kinds have none."""
    k = kinds.KINDS.get(kind)
    return bool(k is not None and getattr(k, trait))

# Fewer points than this on the grid: no deviation is computed (the longest tau would be ~8 tau0).
MIN_POINTS = 32
# Time series are drawn from at most this many bins (min/max envelope): a day of PPS is 86,400.
PLOT_BINS = 1500
FIG_DPI = 96


# -- ITU-T G.8272 masks ---------------------------------------------------------------------------
# ITU-T G.8272/Y.1367 (11/2018) "Timing characteristics of primary reference time clocks",
# clause 6.2 "Wander in locked mode" (measured through a first-order 0.1 Hz low-pass filter,
# constant temperature): Table 1 PRTC-A MTIE, Table 2 PRTC-B MTIE, Table 3 PRTC-A TDEV,
# Table 4 PRTC-B TDEV. Each row: (tau_lo, tau_hi, limit(tau) in seconds), for tau_lo < tau <= tau_hi
# (tau in seconds; the tables start at 0.275 s).
Mask = tuple[tuple[float, float, Callable[[float], float]], ...]
PRTC_A_MTIE: Mask = (
    (0.275, 273.0, lambda t: (0.275e-3 * t + 0.025) * 1e-6),  # 0.275e-3 tau + 0.025 us
    (273.0, math.inf, lambda t: 0.10e-6),  # 0.10 us
)
PRTC_B_MTIE: Mask = (
    (0.275, 54.5, lambda t: (0.275e-3 * t + 0.025) * 1e-6),  # 0.275e-3 tau + 0.025 us
    (54.5, math.inf, lambda t: 0.04e-6),  # 0.04 us
)
PRTC_A_TDEV: Mask = (
    (0.275, 100.0, lambda t: 3e-9),  # 3 ns
    (100.0, 1000.0, lambda t: 0.03e-9 * t),  # 0.03 tau ns
    (1000.0, 10000.0, lambda t: 30e-9),  # 30 ns
)
PRTC_B_TDEV: Mask = (
    (0.275, 100.0, lambda t: 1e-9),  # 1 ns
    (100.0, 500.0, lambda t: 0.01e-9 * t),  # 0.01 tau ns
    (500.0, 100000.0, lambda t: 5e-9),  # 5 ns
)
MASKS: dict[str, dict[str, Mask]] = {
    "mtie": {"PRTC-A": PRTC_A_MTIE, "PRTC-B": PRTC_B_MTIE},
    "tdev": {"PRTC-A": PRTC_A_TDEV, "PRTC-B": PRTC_B_TDEV},
}


def mask_limit(mask: Mask, tau: float) -> float | None:
    """The mask's limit at tau (s), or None outside the taus it covers."""
    for lo, hi, f in mask:
        if lo < tau <= hi:
            return f(tau)
    return None


def mask_excess(mask: Mask, taus: np.ndarray, values: np.ndarray) -> list[float]:
    """The taus (inside the mask's range) at which `values` exceed the mask."""
    out = []
    for t, v in zip(taus, values, strict=True):
        lim = mask_limit(mask, float(t))
        if lim is not None and v > lim:
            out.append(float(t))
    return out


# -- deviations ----------------------------------------------------------------------------------


def octave_ms(n: int) -> np.ndarray:
    """Averaging factors 1, 2, 4, ... while a deviation still has a few terms (m <= (n-1)/4)."""
    ms = [1]
    while ms[-1] * 2 <= (n - 1) // 4:
        ms.append(ms[-1] * 2)
    return np.array(ms, dtype=np.int64)


def mtie(x: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """MTIE(m tau0) = max over windows of m+1 points of (max - min) of phase x, per m in ms.

    A sparse table: level j holds the max and min of every run of 2^j points; a window of L
    points is covered by two runs of 2^floor(log2 L). O(N log N) memory and time."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    hi_lv, lo_lv = [x], [x]
    out = np.empty(len(ms))
    for i, m in enumerate(ms):
        width = int(m) + 1
        if width > n:
            out[i] = np.nan
            continue
        j = width.bit_length() - 1
        while len(hi_lv) <= j:
            h, lo, s = hi_lv[-1], lo_lv[-1], 1 << (len(hi_lv) - 1)
            hi_lv.append(np.maximum(h[:-s], h[s:]))
            lo_lv.append(np.minimum(lo[:-s], lo[s:]))
        s, k = 1 << j, n - width + 1
        wmax = np.maximum(hi_lv[j][:k], hi_lv[j][width - s:width - s + k])
        wmin = np.minimum(lo_lv[j][:k], lo_lv[j][width - s:width - s + k])
        out[i] = float(np.max(wmax - wmin))
    return out


def deviations(x: np.ndarray, tau0: float,
               ms: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ADEV (overlapping), MDEV, TDEV (allantools) and MTIE of phase data x (s) sampled every
    tau0 s, at taus m tau0 (default: octave-spaced m): name -> (taus, values). Taus with no
    estimate are left out."""
    import allantools

    x = np.asarray(x, dtype=np.float64)
    ms = octave_ms(len(x)) if ms is None else np.asarray(ms, dtype=np.int64)
    taus = ms * tau0
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, fn in (("adev", allantools.oadev), ("mdev", allantools.mdev),
                     ("tdev", allantools.tdev)):
        t, d, _, _ = fn(x, rate=1.0 / tau0, data_type="phase", taus=taus)
        keep = np.isfinite(d) & (d > 0)
        out[name] = (np.asarray(t)[keep], np.asarray(d)[keep])
    mt = mtie(x, ms)
    keep = np.isfinite(mt)
    out["mtie"] = (taus[keep], mt[keep])
    return out


@dataclass
class Stability:
    """One source against one reference: its phase on a uniform grid and its deviations."""

    reference: str  # "oscillator" | "consensus"
    tau0: float
    n: int
    filled: int  # grid points more than 1.5 tau0 from any sample (interpolated across a gap)
    freq_ppm: float | None  # the oscillator's frequency removed, + = fast (oscillator reference)
    devs: dict[str, tuple[np.ndarray, np.ndarray]]


def sample_interval(t_s: np.ndarray) -> float:
    """The median interval; a value within 1% of a whole number of seconds is rounded to it."""
    d = float(np.median(np.diff(t_s)))
    r = round(d)
    return float(r) if r >= 1 and abs(d - r) <= 0.01 * r else d


def on_grid(t_s: np.ndarray, x: np.ndarray, tau0: float) -> tuple[np.ndarray, int]:
    """x(t) on the grid t_s[0] + k tau0 (linear interpolation); and how many grid points lie
    more than 1.5 tau0 from the nearest sample (filled across a gap)."""
    n = int((t_s[-1] - t_s[0]) // tau0) + 1
    grid = t_s[0] + np.arange(n) * tau0
    i = np.clip(np.searchsorted(t_s, grid), 1, len(t_s) - 1)
    near = np.minimum(np.abs(grid - t_s[i - 1]), np.abs(t_s[i] - grid))
    return np.interp(grid, t_s, x), int(np.count_nonzero(near > 1.5 * tau0))


def stability(t_s: np.ndarray, x: np.ndarray, reference: str, detrend: bool) -> Stability | None:
    """The deviations of phase x (s) at times t_s (s, increasing); None with too few points."""
    if len(t_s) < MIN_POINTS:
        return None
    order = np.argsort(t_s, kind="stable")
    t_s, x = t_s[order], x[order]
    keep = np.concatenate(([True], np.diff(t_s) > 0))  # one point per instant
    t_s, x = t_s[keep], x[keep]
    if len(t_s) < MIN_POINTS:
        return None
    tau0 = sample_interval(t_s)
    xs, filled = on_grid(t_s, x, tau0)
    if len(xs) < MIN_POINTS:
        return None
    freq = None
    if detrend:
        # The rate between source and oscillator: the median of the phase moves over a quarter
        # of the range. An attack's step (in under half of those spans) does not bend it as it
        # bends a least-squares line, and the long span averages the source's noise away.
        lag = max(1, len(xs) // 4)
        slope = float(np.median(xs[lag:] - xs[:-lag])) / (lag * tau0)
        xs = xs - slope * np.arange(len(xs)) * tau0
        freq = -slope * 1e6  # the oscillator's frequency against the source (+ = runs fast)
    return Stability(reference, tau0, len(xs), filled, freq, deviations(xs, tau0))


# -- the data ------------------------------------------------------------------------------------


@dataclass
class Series:
    """One source's samples: time (ns), offset and bound (s), raw oscillator time (ns) or -1."""

    src: str
    kind: str
    group: str
    t_ns: list[int] = field(default_factory=list)
    offset_s: list[float] = field(default_factory=list)
    bound_s: list[float] = field(default_factory=list)
    raw_ns: list[int] = field(default_factory=list)


@dataclass
class ReportData:
    host: str
    origin: str  # "trace PATH" | "store PATH"
    since_ns: int | None
    until_ns: int | None
    sources: dict[str, Series]
    events: list[Event] = field(default_factory=list)
    cons_t: list[int] = field(default_factory=list)
    cons_off: list[float] = field(default_factory=list)
    cons_bnd: list[float] = field(default_factory=list)
    hold_t: list[int] = field(default_factory=list)
    hold_ppm: list[float] = field(default_factory=list)
    last: Snapshot | None = None
    records: int = 0  # observations replayed (a trace) or rows read (the store)

    def inside(self, t_ns: int) -> bool:
        return ((self.since_ns is None or t_ns >= self.since_ns)
                and (self.until_ns is None or t_ns <= self.until_ns))

    def add(self, outputs: Iterable[Output], raw_of: Callable[[int], int] | None = None) -> None:
        for o in outputs:
            if not self.inside(o.t_ns):
                continue
            if isinstance(o, Sample):
                s = self.sources.get(o.src)
                if s is None:
                    s = self.sources[o.src] = Series(o.src, "", "")
                s.t_ns.append(o.t_ns)
                s.offset_s.append(o.offset_s)
                s.bound_s.append(o.bound_s)
                s.raw_ns.append(raw_of(o.t_ns) if raw_of is not None else -1)
            elif isinstance(o, Snapshot):
                self.last = o
                if o.consensus_offset_s is not None and o.consensus_bound_s is not None:
                    self.cons_t.append(o.t_ns)
                    self.cons_off.append(o.consensus_offset_s)
                    self.cons_bnd.append(o.consensus_bound_s)
                if o.holdover_ppm is not None:
                    self.hold_t.append(o.t_ns)
                    self.hold_ppm.append(o.holdover_ppm)
                for st in o.sources:
                    s = self.sources.setdefault(st.src, Series(st.src, st.kind, st.group))
                    s.kind, s.group = st.kind, st.group
            elif isinstance(o, Event):
                self.events.append(o)


def _raw_at(raw_ns: int, rx_ns: int) -> Callable[[int], int]:
    return lambda t_ns: raw_ns - (rx_ns - t_ns)


def from_trace(path: str | Path, cfg: Config, since_ns: int | None = None,
               until_ns: int | None = None,
               progress: Callable[[int], None] | None = None) -> ReportData:
    """Replay the trace through the engine and keep what falls in [since, until]."""
    from .engine import Engine
    from .leapfile import load_leap_list
    from .trace import TraceReader

    reader = TraceReader(path)
    # The recording's thresholds (the trace header's), as `replay` takes them.
    eng = Engine(reader.header, reader.detect(), leap_list=load_leap_list(), snapshots=True,
                 samples=True)
    data = ReportData(reader.header.host, f"trace {path}", since_ns, until_ns,
                      {sid: Series(sid, si.kind, si.group)
                       for sid, si in reader.header.sources.items()})
    n = 0
    for obs in reader:
        if until_ns is not None and obs.rx_ns > until_ns:
            break
        out = eng.feed(obs)
        n += 1
        if progress is not None and n % 65536 == 0:
            progress(n)
        if out:
            raw = obs.raw_ns
            rx = obs.rx_ns
            # A sample is made by the record just fed: the oscillator's time at the sample is
            # the record's raw_ns, moved by the (sub-second) distance between the two stamps.
            data.add(out, None if raw is None else _raw_at(raw, rx))
    data.add(eng.finish())
    data.records = n
    return data


def from_store(store_path: str | Path, host: str, since_ns: int | None = None,
               until_ns: int | None = None) -> ReportData:
    """What a live monitor stored in [since, until] (samples, snapshots, events)."""
    from .sinks.store import Store

    st = Store(store_path, readonly=True)
    try:
        data = ReportData(host, f"store {store_path}", since_ns, until_ns,
                          {sid: Series(sid, si.kind, si.group)
                           for sid, si in st.source_info().items()})
        n = 0
        for it in (st.iter_samples(since_ns), st.iter_snapshots(since_ns),
                   st.iter_events(since_ns)):
            for o in it:
                if until_ns is not None and o.t_ns > until_ns:
                    break
                data.add([o])
                n += 1
        data.records = n
    finally:
        st.close()
    return data


# -- analysis ------------------------------------------------------------------------------------


@dataclass
class SourceResult:
    series: Series
    stability: dict[str, Stability]  # reference -> result
    note: str  # why a reference is missing, if one is


def analyse(data: ReportData) -> dict[str, SourceResult]:
    ct = np.array(data.cons_t, dtype=np.int64)
    c_off = np.array(data.cons_off)
    out: dict[str, SourceResult] = {}
    for sid, s in data.sources.items():
        notes: list[str] = []
        res: dict[str, Stability] = {}
        if not _trait(s.kind, "stability"):
            out[sid] = SourceResult(s, res, f"kind {s.kind or '?'}: not a precise source")
            continue
        if len(s.t_ns) < MIN_POINTS:
            out[sid] = SourceResult(s, res, f"{len(s.t_ns)} samples: too few for a deviation")
            continue
        t = np.array(s.t_ns, dtype=np.int64)
        off = np.array(s.offset_s)
        t0 = int(t.min())
        ts = (t - t0) / NS
        raw = np.array(s.raw_ns, dtype=np.int64)
        if (raw >= 0).all():
            # Source time minus oscillator time, from the first sample: offset + (rx - raw).
            x = off + ((t - t0) - (raw - raw[np.argmin(t)])) / NS
            r = stability(ts, x, "oscillator", detrend=True)
            if r is not None:
                res["oscillator"] = r
        else:
            notes.append("no raw_ns (the store keeps none): no oscillator reference")
        if len(ct) >= 2:
            inside = (t >= ct[0]) & (t <= ct[-1])
            if inside.sum() >= MIN_POINTS:
                cx = np.interp((t[inside] - t0) / NS, (ct - t0) / NS, c_off)
                r = stability(ts[inside], off[inside] - cx, "consensus", detrend=False)
                if r is not None:
                    res["consensus"] = r
        if "consensus" not in res:
            notes.append("too little time with a consensus for the consensus reference")
        out[sid] = SourceResult(s, res, "; ".join(notes))
    return out


# -- figures -------------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIG_DPI)  # fixed margins: "tight" would draw it twice
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Axis:
    """Time axis of the report: seconds from t0 shown in minutes or hours."""

    t0_ns: int
    unit_s: float
    label: str

    @classmethod
    def for_span(cls, t0_ns: int, t1_ns: int) -> Axis:
        span = (t1_ns - t0_ns) / NS
        unit, name = (60.0, "min") if span <= 3 * 3600 else (3600.0, "h")
        return cls(t0_ns, unit, f"{name} since {utc(t0_ns)}")

    def x(self, t_ns: np.ndarray | int) -> Any:
        return (np.asarray(t_ns, dtype=np.int64) - self.t0_ns) / NS / self.unit_s


def envelope(x: np.ndarray, mid: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             bins: int = PLOT_BINS) -> tuple[np.ndarray, ...]:
    """At most `bins` points: per bin the mean x and mid, the min of lo, the max of hi."""
    if len(x) <= 2 * bins:
        return x, mid, lo, hi
    edges = np.linspace(0, len(x), bins + 1).astype(np.int64)
    starts = edges[:-1]
    cnt = np.diff(edges)
    return (np.add.reduceat(x, starts) / cnt, np.add.reduceat(mid, starts) / cnt,
            np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts))


def _alert_spans(data: ReportData, end_ns: int) -> list[tuple[Event, int]]:
    """Each alert with the time of its clear (or the end of the data)."""
    cleared = {e.id: e.t_ns for e in data.events if e.type == "clear"}
    return [(e, cleared.get(e.id, end_ns)) for e in data.events if e.type == "alert"]


_SEV_COLOUR = {"critical": "#cf222e", "warning": "#bf8700", "info": "#8c959f"}


def fig_timeline(data: ReportData, ax_t: Axis, end_ns: int) -> str:
    plt = _plt()
    spans = _alert_spans(data, end_ns)
    rows: dict[str, int] = {}
    for e, _ in spans:
        rows.setdefault(f"{e.code}  {','.join(e.sources) or 'host-wide'}", len(rows))
    fig, ax = plt.subplots(figsize=(10, max(1.6, 0.35 * len(rows) + 1.0)))
    for e, end in spans:
        y = rows[f"{e.code}  {','.join(e.sources) or 'host-wide'}"]
        x0, x1 = ax_t.x(e.t_ns), ax_t.x(end)
        ax.barh(y, max(x1 - x0, 1e-9), left=x0, height=0.6,
                color=_SEV_COLOUR.get(e.severity, "#bf8700"))
        ax.plot([x0], [y], marker="|", color="black", markersize=10)
    ax.set_yticks(list(rows.values()), list(rows.keys()), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(ax_t.x(end_ns), 1e-9))
    ax.set_xlabel(ax_t.label)
    if not rows:
        ax.text(0.5, 0.5, "no alerts in this range", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("alerts: raised (|) until cleared; red critical, amber warning")
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=0.3, right=0.98, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.55 / fig.get_figheight())
    return _png(fig)


def fig_host(data: ReportData, ax_t: Axis) -> str:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True)
    if data.cons_t:
        x = ax_t.x(np.array(data.cons_t))
        off, bnd = np.array(data.cons_off), np.array(data.cons_bnd)
        x, mid, lo, hi = envelope(x, off, off - bnd, off + bnd)
        a1.fill_between(x, lo * 1e3, hi * 1e3, color="#0969da", alpha=0.2, linewidth=0,
                        label="consensus bound")
        a1.plot(x, mid * 1e3, color="#0969da", linewidth=1, label="consensus - host")
        a1.legend(loc="upper right", fontsize=8)
    else:
        a1.text(0.5, 0.5, "no consensus in this range", ha="center", transform=a1.transAxes)
    a1.set_ylabel("ms")
    a1.set_title("host clock against the consensus (consensus time minus host realtime)")
    if data.hold_t:
        a2.plot(ax_t.x(np.array(data.hold_t)), data.hold_ppm, color="#8250df", linewidth=1)
    else:
        a2.text(0.5, 0.5, "no holdover model in this range", ha="center",
                transform=a2.transAxes)
    a2.set_ylabel("ppm")
    a2.set_title("holdover: the raw oscillator's frequency against the consensus")
    a2.set_xlabel(ax_t.label)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.11, hspace=0.35)
    return _png(fig)


def _unit(v: float) -> tuple[float, str]:
    a = abs(v)
    for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if a >= scale:
            return scale, name
    return 1e-9, "ns"


def fig_offsets(data: ReportData, s: Series, ax_t: Axis, end_ns: int) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.0))
    t = np.array(s.t_ns, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    off, bnd = np.array(s.offset_s)[order], np.array(s.bound_s)[order]
    scale, unit = _unit(float(np.median(np.abs(off) + bnd)) if len(off) else 1e-3)
    x, mid, lo, hi = envelope(ax_t.x(t), off, off - bnd, off + bnd)
    ax.fill_between(x, lo / scale, hi / scale, color="#1a7f37", alpha=0.2, linewidth=0,
                    label="offset +- bound", step="mid")
    ax.plot(x, mid / scale, color="#1a7f37", linewidth=0.9, label="offset")
    if data.cons_t:
        ax.plot(ax_t.x(np.array(data.cons_t)), np.array(data.cons_off) / scale,
                color="black", linewidth=0.8, linestyle="--", label="consensus")
    for e, end in _alert_spans(data, end_ns):
        if s.src in e.sources:
            ax.axvspan(ax_t.x(e.t_ns), ax_t.x(end), color=_SEV_COLOUR.get(e.severity, "#bf8700"),
                       alpha=0.15, linewidth=0)
            ax.axvline(ax_t.x(e.t_ns), color=_SEV_COLOUR.get(e.severity, "#bf8700"),
                       linewidth=1)
    if len(off):  # the source's own range, so a far consensus never flattens it
        pad = 0.05 * max(float(hi.max() - lo.min()), 1e-12)
        ax.set_ylim(float(lo.min()) / scale - pad / scale, float(hi.max()) / scale + pad / scale)
    ax.set_ylabel(unit)
    ax.set_xlabel(ax_t.label)
    ax.set_title(f"{s.src} ({s.kind}, group {s.group}): offset against host realtime, "
                 f"alerts shaded")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.16)
    return _png(fig)


_TITLES = {"adev": "ADEV (overlapping)", "mdev": "MDEV", "tdev": "TDEV (s)", "mtie": "MTIE (s)"}
_REF_STYLE = {"oscillator": ("#0969da", "o"), "consensus": ("#bc4c00", "s")}
_MASK_STYLE = {"PRTC-A": ("#cf222e", "--"), "PRTC-B": ("#8250df", ":")}


def fig_stability(r: SourceResult) -> str:
    plt = _plt()
    from matplotlib.ticker import LogLocator, NullLocator

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    masks = _trait(r.series.kind, "prtc")
    for ax, name in zip(axes.flat, ("adev", "mdev", "tdev", "mtie"), strict=True):
        tmin, tmax = math.inf, 0.0
        for ref, stab in r.stability.items():
            taus, vals = stab.devs[name]
            if len(taus):
                colour, marker = _REF_STYLE[ref]
                ax.loglog(taus, vals, color=colour, marker=marker, markersize=3, linewidth=1,
                          label=f"against the {ref}")
                tmin, tmax = min(tmin, float(taus[0])), max(tmax, float(taus[-1]))
        if masks and name in MASKS and tmax > 0:
            tt = np.logspace(math.log10(max(tmin, 0.276)), math.log10(tmax), 200)
            for label, mask in MASKS[name].items():
                lim = [mask_limit(mask, float(t)) for t in tt]
                pts = [(t, v) for t, v in zip(tt, lim, strict=True) if v is not None]
                if pts:
                    colour, style = _MASK_STYLE[label]
                    ax.loglog([p[0] for p in pts], [p[1] for p in pts], color=colour,
                              linestyle=style, linewidth=1.2, label=f"G.8272 {label}")
        ax.set_title(_TITLES[name], fontsize=10)
        ax.set_xlabel("tau (s)")
        # Major ticks only (minor ticks over the masks' 8 decades cost most of the drawing);
        # 1-2-5 steps when the values span under two decades, so that the axis has numbers.
        for a, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            if 0 < lo < hi < 100 * lo:
                a.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            a.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"{r.series.src} ({r.series.kind}): stability", fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.08, hspace=0.35, wspace=0.28)
    return _png(fig)


# -- the HTML ------------------------------------------------------------------------------------


def utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "-"
    return datetime.fromtimestamp(t_ns / NS, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _g(v: float) -> str:
    return f"{v:.4g}"


def _img(fid: str, b64: str, alt: str, src: str = "") -> str:
    extra = f' data-src="{_e(src)}"' if src else ""
    return (f'<figure><img id="{_e(fid)}"{extra} alt="{_e(alt)}" '
            f'src="data:image/png;base64,{b64}"></figure>')


def _stability_table(r: SourceResult) -> str:
    parts = []
    for ref, st in r.stability.items():
        taus = sorted({float(t) for v in st.devs.values() for t in v[0]})
        head = "".join(f"<th>{_g(t)}</th>" for t in taus)
        rows = []
        for name in ("adev", "mdev", "tdev", "mtie"):
            vals = dict(zip((float(t) for t in st.devs[name][0]), st.devs[name][1], strict=True))
            rows.append(f"<tr><th>{name.upper()}</th>"
                        + "".join(f"<td>{_g(vals[t]) if t in vals else ''}</td>" for t in taus)
                        + "</tr>")
        extra = (f", oscillator frequency {st.freq_ppm:+.3f} ppm removed"
                 if st.freq_ppm is not None else "")
        masks = ""
        if _trait(r.series.kind, "prtc"):
            verdicts = []
            for name in ("mtie", "tdev"):
                taus_d, vals_d = st.devs[name]
                for label, mask in MASKS[name].items():
                    over = mask_excess(mask, taus_d, vals_d)
                    verdicts.append(f"{name.upper()} {label}: " + (
                        f"exceeded at tau = {', '.join(_g(t) for t in over)} s" if over
                        else "within the mask"))
            masks = f"<p>{_e('; '.join(verdicts))}</p>"
        parts.append(
            f"<h4>against the {_e(ref)}</h4><p class=mute>tau0 {_g(st.tau0)} s, {st.n} points"
            f" ({st.filled} interpolated across gaps){_e(extra)}</p>{masks}"
            f'<div class="scroll"><table class="dev"><tr><th>tau (s)</th>{head}</tr>'
            f'{"".join(rows)}</table></div>')
    return "".join(parts)


def stability_json(results: dict[str, SourceResult]) -> dict[str, Any]:
    """The deviations as data (embedded in the report for other tools, and for its tests)."""
    return {sid: {ref: {"tau0_s": st.tau0, "n": st.n, "filled": st.filled,
                        "freq_ppm": st.freq_ppm,
                        **{name: {"tau_s": [float(t) for t in v[0]],
                                  "value": [float(d) for d in v[1]]}
                           for name, v in st.devs.items()}}
                  for ref, st in r.stability.items()}
            for sid, r in results.items() if r.stability}


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:72rem;
margin:0 auto;padding:1rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5dbe1}
h3{font-size:1rem;margin-top:1.4rem}h4{font-size:.9rem;margin:.8rem 0 .2rem}
.mute{color:#5c6670}figure{margin:.4rem 0}img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.8rem;font-variant-numeric:tabular-nums}
td,th{border:1px solid #d5dbe1;padding:.15rem .4rem;text-align:right}
th:first-child,td.l{text-align:left}.scroll{overflow-x:auto}
.sev-critical{color:#cf222e;font-weight:600}.sev-warning{color:#bf8700;font-weight:600}
"""


def render(data: ReportData, results: dict[str, SourceResult], *,
           generated_ns: int | None = None) -> str:
    """The report: one HTML document with every figure inside it."""
    from . import __version__

    times = [t for s in data.sources.values() for t in s.t_ns] + data.cons_t
    times += [e.t_ns for e in data.events]
    if not times:
        raise ValueError(f"{data.origin}: nothing in the requested time range "
                         f"({utc(data.since_ns)} .. {utc(data.until_ns)})")
    t0, t1 = min(times), max(times)
    ax_t = Axis.for_span(t0, t1)
    figs = ['<h2 id="timeline">Alert timeline</h2>'
            + _img("fig-timeline", fig_timeline(data, ax_t, t1), "alert timeline")]
    alerts = [e for e in data.events if e.type == "alert"]
    if data.events:
        rows = "".join(
            f'<tr><td class="l">{_e(utc(e.t_ns))}</td><td class="l">{_e(e.type)}</td>'
            f'<td class="l sev-{_e(e.severity if e.type == "alert" else "")}">'
            f'{_e(e.severity if e.type == "alert" else "")}</td><td class="l">{_e(e.code)}</td>'
            f'<td class="l">{_e(", ".join(e.sources) or "host-wide")}</td>'
            f'<td class="l">{_e(e.message)}</td></tr>' for e in data.events)
        figs.append('<div class="scroll"><table id="events"><tr><th>time</th><th>type</th>'
                    '<th>severity</th><th>code</th><th>sources</th><th>message</th></tr>'
                    f"{rows}</table></div>")
    figs.append('<h2 id="host">Host clock and holdover</h2>'
                + _img("fig-host", fig_host(data, ax_t), "host clock against the consensus"))
    figs.append('<h2 id="offsets">Offsets and bounds per source</h2>')
    for i, (sid, s) in enumerate(data.sources.items()):
        if s.t_ns:
            figs.append(_img(f"fig-offsets-{i}", fig_offsets(data, s, ax_t, t1),
                             f"{sid}: offset and bound over time", sid))
        else:
            figs.append(f"<p>{_e(sid)}: no samples in this range.</p>")
    figs.append('<h2 id="stability">Stability</h2><p>Each precise source against the host '
                "oscillator (raw, unsteered; its mean frequency removed) and against the "
                "consensus. The ITU-T G.8272 (11/2018) clause 6.2 PRTC-A and PRTC-B masks "
                "(Tables 1-4) are drawn on TDEV and MTIE for GNSS and PPS sources; they are "
                "specified through a 0.1 Hz low-pass filter against an ideal reference, so a "
                "host's timestamping noise counts against them here.</p>")
    for i, (sid, r) in enumerate(results.items()):
        figs.append(f"<h3>{_e(sid)} <span class=mute>({_e(r.series.kind)}, group "
                    f"{_e(r.series.group)})</span></h3>")
        if r.note:
            figs.append(f'<p class="mute">{_e(r.note)}</p>')
        if r.stability:
            figs.append(_img(f"fig-stability-{i}", fig_stability(r),
                             f"{sid}: ADEV, MDEV, TDEV, MTIE", sid))
            figs.append(_stability_table(r))
    last = data.last
    verdicts = ""
    if last is not None:
        verdicts = "".join(
            f'<tr><td class="l">{_e(st.src)}</td><td class="l">{_e(st.kind)}</td>'
            f'<td class="l">{_e(st.group)}</td><td class="l">{_e(st.verdict)}</td>'
            f'<td class="l">{_e(st.reason)}</td></tr>' for st in last.sources)
        verdicts = ('<table id="verdicts"><tr><th>source</th><th>kind</th><th>group</th>'
                    f"<th>verdict</th><th>reason</th></tr>{verdicts}</table>")
    by_code: dict[str, int] = {}
    for e in alerts:
        by_code[e.code] = by_code.get(e.code, 0) + 1
    summary = ", ".join(f"{c} x{n}" for c, n in sorted(by_code.items())) or "none"
    data_json = json.dumps(stability_json(results)).replace("</", "<\\/")
    gen = utc(generated_ns if generated_ns is not None else time.time_ns())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>timewatch report: {_e(data.host)}</title><style>{_CSS}</style></head><body>"
        f"<h1>timewatch report: {_e(data.host)}</h1>"
        f'<p class="mute">{_e(data.origin)}; {_e(utc(t0))} to {_e(utc(t1))} '
        f"({(t1 - t0) / NS / 3600:.2f} h); {data.records} records read; generated {_e(gen)} "
        f"by timewatch {_e(__version__)}</p>"
        f"<p>{len(alerts)} alerts: {_e(summary)}.</p>"
        f"<h2>Verdicts at the end of the range</h2>{verdicts or '<p>no snapshot</p>'}"
        + "".join(figs)
        + f'<script type="application/json" id="stability-data">{data_json}</script>'
        "</body></html>\n")


# -- the command's helpers -----------------------------------------------------------------------


def parse_time(text: str, option: str) -> int:
    """`--since`/`--until`: Unix seconds or an ISO 8601 time (UTC when no zone) -> ns."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", t):
        return int(Decimal(t) * NS)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option}: expected Unix seconds or an ISO time "
                         f"(2026-11-26T14:00:00Z), got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS + dt.microsecond * 1000

