"""The status page at `/` of the HTTP API: server-rendered HTML, no JavaScript needed.

`History` keeps what the page needs beyond the latest snapshot, decimated so that a request costs
the same after an hour as after a minute: per source and per `BUCKET_S` bucket of the last
`WINDOW_S`, the mean offset and the lowest/highest edge of the error intervals; the consensus per
bucket; the last `RECENT_EVENTS` events. `render` is a pure function of it, the latest snapshot
and the active alerts to one HTML page that refreshes itself (`<meta http-equiv="refresh">`),
fits a phone (viewport meta, a fluid grid) and escapes every string it prints (`html.escape`):
source ids, groups, reasons, messages and evidence come from configs and from the network.

Figures are inline SVG: each source's interval against the consensus (what the terminal view of
`timewatch demo` draws as `<==o==|=>`), each source's last hour against the consensus with its
error band, and the host clock against the consensus. docs/http.md describes the page.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

from ..records import Event, Output, Sample, Snapshot, SourceStatus

WINDOW_S = 3600  # the last hour (issue 17)
BUCKET_S = 15  # 240 points across a phone-wide chart: finer would not be visible
RECENT_EVENTS = 50  # events kept for the page (the store and the event log keep them all)
SHOWN_EVENTS = 20
DEFAULT_REFRESH_S = 10
_NS = 1_000_000_000

# verdict -> CSS class (colour); docs/http.md lists the verdicts.
_VERDICT_CLASS = {"truechimer": "ok", "falseticker": "bad", "unusable": "warn", "no_quorum": "warn",
                  "stale": "dim", "init": "dim"}
# Evidence keys ending in _s that are sizes, printed without a sign (as the terminal view does).
_SIZES = ("bound", "threshold", "jitter", "sigma", "tolerance", "limit", "window", "silent")
_SEVERITY_CLASS = {"critical": "bad", "warning": "warn", "info": "dim"}


# -- history ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Bucket:
    """One BUCKET_S of one series: `key` = t_ns // bucket, mean `value`, band [`lo`, `hi`]."""

    key: int
    n: int
    total: float
    lo: float
    hi: float

    @property
    def value(self) -> float:
        return self.total / self.n


@dataclass
class History:
    """The last WINDOW_S, decimated into buckets; fed with the engine's outputs in order."""

    window_s: int = WINDOW_S
    bucket_s: int = BUCKET_S
    recent_events: int = RECENT_EVENTS
    sources: dict[str, deque[Bucket]] = field(default_factory=dict)
    consensus: deque[Bucket] = field(default_factory=deque)
    events: deque[Event] = field(default_factory=deque)
    newest_key: int = 0

    def add(self, outputs: Iterable[Output]) -> None:
        for o in outputs:
            if isinstance(o, Sample):
                self._put(self.sources.setdefault(o.src, deque()), o.t_ns, o.offset_s, o.bound_s)
            elif isinstance(o, Snapshot):
                if o.consensus_offset_s is not None and o.consensus_bound_s is not None:
                    self._put(self.consensus, o.t_ns, o.consensus_offset_s, o.consensus_bound_s)
                self._trim(o.t_ns // (self.bucket_s * _NS))
            elif isinstance(o, Event):
                self.events.append(o)
                if len(self.events) > self.recent_events:
                    self.events.popleft()

    def _put(self, q: deque[Bucket], t_ns: int, value: float, bound: float) -> None:
        if not (math.isfinite(value) and math.isfinite(bound)):
            return
        key = t_ns // (self.bucket_s * _NS)
        lo, hi = value - bound, value + bound
        if q and q[-1].key == key:
            b = q[-1]
            b.n += 1
            b.total += value
            b.lo, b.hi = min(b.lo, lo), max(b.hi, hi)
        elif not q or q[-1].key < key:
            q.append(Bucket(key, 1, value, lo, hi))
        # else: a sample older than the newest bucket (records handed over out of order): the
        # chart is coarser than that; it is not worth a search.
        if key > self.newest_key:
            self.newest_key = key

    def _trim(self, key: int) -> None:
        self.newest_key = max(self.newest_key, key)
        oldest = self.newest_key - self.window_s // self.bucket_s
        for q in (*self.sources.values(), self.consensus):
            while q and q[0].key < oldest:
                q.popleft()


# -- formatting ---------------------------------------------------------------------------------


def fmt_s(v: float | None, signed: bool = True) -> str:
    """Seconds in the unit that fits (ns, us, ms, s), as the terminal view prints them."""
    if v is None or not math.isfinite(v):
        return "-"
    a, sign = abs(v), ("+" if signed else "")
    if a < 1e-6:
        return f"{v * 1e9:{sign}.0f} ns"
    if a < 1e-3:
        return f"{v * 1e6:{sign}.1f} us"
    if a < 1.0:
        return f"{v * 1e3:{sign}.3f} ms"
    return f"{v:{sign}.3f} s"


def utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "-"
    return datetime.fromtimestamp(t_ns / _NS, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_value(key: str, v: Any) -> str:
    """One evidence value, unit from the key's suffix (docs/events.md names them so)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, int | float):
        if key.endswith("_ns") and isinstance(v, int) and v > 10**17:
            return utc(v)
        if key.endswith("_s_per_s"):
            return f"{v * 1e6:+.3f} us/s"
        if key.endswith("_s"):  # sizes (bounds, thresholds, jitter) unsigned, offsets signed
            return fmt_s(float(v), signed=not any(w in key for w in _SIZES))
        if key.endswith("_ppm"):
            return f"{v:+.3f} ppm"
        return f"{v:.6g}" if isinstance(v, float) else str(v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt_value(str(k), x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(fmt_value(key, x) for x in v)
    return str(v)


def _e(v: object) -> str:
    return escape(str(v), quote=True)


def scale_for(bound_s: float | None) -> float:
    """Half-range of a source's interval bar: the smallest 1-2-5 step covering twice its bound.
    An honest interval holds the consensus, so it fits; a source far off runs off the end of
    its bar with an arrow, however coarse or fine its neighbours are."""
    need = 2 * max(bound_s or 0.0, 1e-8)
    exp = math.floor(math.log10(need))
    for m in (1, 2, 5, 10):
        step = float(f"{m}e{exp}")  # decimal, so 1e-5 is 1e-5 and not 9.999999999999999e-06
        if step >= need * (1 - 1e-9):
            return step
    return float(f"1e{exp + 1}")


# -- SVG ----------------------------------------------------------------------------------------

_BAR_W, _BAR_H = 300, 22


def interval_svg(st: SourceStatus, centre_s: float | None, range_s: float) -> str:
    """The source's interval (offset +- bound) on consensus +- range_s: band, dot, consensus
    line; a triangle at an end where the interval runs off the scale."""
    mid_x = _BAR_W / 2
    parts = [f'<svg class="bar" viewBox="0 0 {_BAR_W} {_BAR_H}" role="img" '
             f'aria-label="interval against the consensus, +-{_e(fmt_s(range_s, False))}">',
             f'<line x1="0" y1="{_BAR_H / 2}" x2="{_BAR_W}" y2="{_BAR_H / 2}" class="axis"/>']
    if st.offset_s is not None and st.bound_s is not None and centre_s is not None:
        def x(v: float) -> float:
            return mid_x + (v - centre_s) / range_s * mid_x

        lo, hi, dot = x(st.offset_s - st.bound_s), x(st.offset_s + st.bound_s), x(st.offset_s)
        cls = _VERDICT_CLASS.get(st.verdict, "dim")
        a, b = max(0.0, lo), min(float(_BAR_W), hi)
        if b > a or (0 <= lo <= _BAR_W):
            parts.append(f'<rect x="{a:.1f}" y="6" width="{max(b - a, 1.5):.1f}" height="10" '
                         f'class="band {cls}"/>')
        if 0 <= dot <= _BAR_W:
            parts.append(f'<circle cx="{dot:.1f}" cy="11" r="3.5" class="dot {cls}"/>')
        if lo < 0:
            parts.append(f'<path d="M0 11 L9 4 L9 18 Z" class="arrow {cls}"/>')
        if hi > _BAR_W:
            parts.append(f'<path d="M{_BAR_W} 11 L{_BAR_W - 9} 4 L{_BAR_W - 9} 18 Z" '
                         f'class="arrow {cls}"/>')
    parts.append(f'<line x1="{mid_x}" y1="1" x2="{mid_x}" y2="{_BAR_H - 1}" class="centre"/>')
    parts.append("</svg>")
    return "".join(parts)


_CH_W, _CH_H = 300, 70


def _consensus_at(keys: list[int], cons: Sequence[Bucket], key: int, slack: int) -> float | None:
    """The consensus of bucket `key`, or of the nearest bucket before it within `slack`."""
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        return cons[i].value
    if i > 0 and key - keys[i - 1] <= slack:
        return cons[i - 1].value
    return None


def chart_svg(points: Sequence[tuple[int, float, float, float]], first_key: int, last_key: int,
              label: str) -> tuple[str, float, float]:
    """A chart of (key, value, lo, hi) over buckets first_key..last_key: a band, a line, the
    zero line dashed; a gap in the data breaks it. Returns (svg, y_min, y_max)."""
    if not points:
        return (f'<svg class="chart" viewBox="0 0 {_CH_W} {_CH_H}" role="img" '
                f'aria-label="{_e(label)}: no data"><text x="6" y="{_CH_H / 2}" '
                f'class="note">no data in the last hour</text></svg>', 0.0, 0.0)
    y0 = min(0.0, min(p[2] for p in points))
    y1 = max(0.0, max(p[3] for p in points))
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1e-9, y1 + 1e-9
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    span = max(1, last_key - first_key)

    def x(k: int) -> float:
        return (k - first_key) / span * _CH_W

    def y(v: float) -> float:
        return (y1 - v) / (y1 - y0) * _CH_H

    # A gap breaks the line when it is over 3 of the series' usual steps (an NTP server polled
    # every 64 s fills one bucket in four; a PPS every bucket) and over 2 buckets.
    steps = sorted(b[0] - a[0] for a, b in zip(points, points[1:], strict=False))
    join = max(2, 3 * steps[len(steps) // 2]) if steps else 2
    segs: list[list[tuple[int, float, float, float]]] = []
    for p in points:
        if segs and p[0] - segs[-1][-1][0] <= join:
            segs[-1].append(p)
        else:
            segs.append([p])
    out = [f'<svg class="chart" viewBox="0 0 {_CH_W} {_CH_H}" preserveAspectRatio="none" '
           f'role="img" aria-label="{_e(label)}">',
           f'<line x1="0" y1="{y(0):.1f}" x2="{_CH_W}" y2="{y(0):.1f}" class="zero"/>']
    for seg in segs:
        if len(seg) == 1:  # one bucket: a short bar, so that it shows
            k, v, lo, hi = seg[0]
            out.append(f'<rect x="{x(k) - 1:.1f}" y="{y(hi):.1f}" width="2" '
                       f'height="{max(y(lo) - y(hi), 1):.1f}" class="area"/>')
            continue
        top = " ".join(f"{x(k):.1f},{y(hi):.1f}" for k, _, _, hi in seg)
        bottom = " ".join(f"{x(k):.1f},{y(lo):.1f}" for k, _, lo, _ in reversed(seg))
        out.append(f'<polygon points="{top} {bottom}" class="area"/>')
        line = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v, _, _ in seg)
        out.append(f'<polyline points="{line}" class="line"/>')
    out.append("</svg>")
    return "".join(out), y0 + pad, y1 - pad


def source_points(hist: History, src: str) -> list[tuple[int, float, float, float]]:
    """The source's buckets relative to the consensus of the same bucket (or the one before)."""
    cons = list(hist.consensus)
    keys = [b.key for b in cons]
    slack = max(2, 60 // hist.bucket_s)
    out = []
    for b in hist.sources.get(src, ()):
        c = _consensus_at(keys, cons, b.key, slack)
        if c is not None:
            out.append((b.key, b.value - c, b.lo - c, b.hi - c))
    return out


# -- the page -----------------------------------------------------------------------------------

_CSS = """
:root{--bg:#fff;--fg:#1b1f24;--mute:#5c6670;--card:#f5f7f9;--line:#d5dbe1;--ok:#1a7f37;
--bad:#cf222e;--warn:#bf8700;--dim:#8c959f;--acc:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;
--card:#161b22;--line:#30363d;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--dim:#6e7681;
--acc:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;padding:.8rem;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg);max-width:90rem;margin-inline:auto}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.mute,.note{color:var(--mute);fill:var(--mute);font-size:.85rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,21rem),1fr));gap:.6rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.6rem .7rem;
min-width:0}
.card h3{font-size:1rem;margin:0;overflow-wrap:anywhere}
.row{display:flex;flex-wrap:wrap;gap:.3rem .8rem;align-items:baseline}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.8rem;font-weight:600;
color:#fff;background:var(--dim)}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.warn{background:var(--warn)}
.reason{margin:.25rem 0;overflow-wrap:anywhere}
.num{font-variant-numeric:tabular-nums}
svg{display:block;width:100%}
svg.bar{height:22px}svg.chart{height:70px;margin-top:.3rem}
.axis{stroke:var(--line);stroke-width:1}.centre{stroke:var(--fg);stroke-width:1.5}
.zero{stroke:var(--mute);stroke-dasharray:3 3;vector-effect:non-scaling-stroke}
.area{fill:var(--acc);fill-opacity:.25}
.line{fill:none;stroke:var(--acc);stroke-width:1.5;vector-effect:non-scaling-stroke}
.band.ok,.dot.ok,.arrow.ok{fill:var(--ok)}.band.bad,.dot.bad,.arrow.bad{fill:var(--bad)}
.band.warn,.dot.warn,.arrow.warn{fill:var(--warn)}.band.dim,.dot.dim,.arrow.dim{fill:var(--dim)}
.band{fill-opacity:.45}
.alert{border-left:4px solid var(--warn)}.alert.bad{border-left-color:var(--bad)}
.alert.dim{border-left-color:var(--dim)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0 .8rem;margin:.3rem 0 0;
font-size:.85rem}dt{color:var(--mute)}dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.85rem}
td,th{text-align:left;padding:.2rem .5rem .2rem 0;border-bottom:1px solid var(--line);
vertical-align:top}
td.msg{overflow-wrap:anywhere;min-width:12rem}
a{color:var(--acc)}
"""


@dataclass(frozen=True)
class PageInput:
    """Everything the page shows, as the HTTP view holds it."""

    host: str
    snapshot: Snapshot | None
    active: Sequence[Event]
    history: History
    last_output_age_s: float | None = None
    refresh_s: int = DEFAULT_REFRESH_S
    configured: Sequence[tuple[str, str, str]] = ()  # (id, kind, group) before a first snapshot


def _ago(t_ns: int, now_ns: int | None) -> str:
    if now_ns is None:
        return ""
    d = (now_ns - t_ns) / _NS
    if d < 0:
        return ""
    if d < 120:
        return f"{d:.0f} s ago"
    if d < 7200:
        return f"{d / 60:.0f} min ago"
    return f"{d / 3600:.1f} h ago"


def _evidence(ev: dict[str, Any]) -> str:
    if not ev:
        return ""
    rows = "".join(f"<dt>{_e(k)}</dt><dd class=num>{_e(fmt_value(str(k), v))}</dd>"
                   for k, v in ev.items())
    return f"<dl>{rows}</dl>"


def _alerts(active: Sequence[Event], now_ns: int | None) -> str:
    if not active:
        return '<p class="mute" id="no-alerts">No active alerts.</p>'
    cards = []
    for a in active:
        cls = _SEVERITY_CLASS.get(a.severity, "warn")
        srcs = ", ".join(a.sources) or "host-wide"
        cards.append(
            f'<div class="card alert {cls}" data-code="{_e(a.code)}">'
            f'<div class="row"><span class="badge {cls}">{_e(a.severity)}</span>'
            f'<h3>{_e(a.code)}</h3><span>{_e(srcs)}</span></div>'
            f'<p class="reason">{_e(a.message)}</p>'
            f'<div class="mute">since {_e(utc(a.t_ns))} {_e(_ago(a.t_ns, now_ns))} '
            f'&middot; id {_e(a.id)}</div>{_evidence(a.evidence)}</div>')
    return f'<div class="grid" id="alerts">{"".join(cards)}</div>'


def _sources(inp: PageInput, first_key: int, last_key: int) -> str:
    snap = inp.snapshot
    if snap is None or not snap.sources:
        if not inp.configured:
            return '<p class="mute">No sources reported yet.</p>'
        rows = "".join(f'<div class="card source" data-src="{_e(i)}"><h3>{_e(i)}</h3>'
                       f'<div class="mute">{_e(k)} &middot; group {_e(g)}</div>'
                       f'<span class="badge dim verdict">init</span> '
                       f'<p class="reason">waiting for the first snapshot</p></div>'
                       for i, k, g in inp.configured)
        return f'<div class="grid" id="sources">{rows}</div>'
    centre = snap.consensus_offset_s
    cards = []
    for st in snap.sources:
        rng = scale_for(st.bound_s)
        cls = _VERDICT_CLASS.get(st.verdict, "dim")
        rel = (f"{fmt_s(st.offset_s - centre)} from the consensus"
               if st.offset_s is not None and centre is not None else "")
        pts = source_points(inp.history, st.src)
        svg, lo, hi = chart_svg(pts, first_key, last_key,
                                f"{st.src}: offset minus consensus, last hour")
        rng_txt = (f"last hour against the consensus: {fmt_s(lo)} .. {fmt_s(hi)}" if pts
                   else "last hour against the consensus")
        cards.append(
            f'<div class="card source" data-src="{_e(st.src)}" data-verdict="{_e(st.verdict)}">'
            f'<div class="row"><h3>{_e(st.src)}</h3>'
            f'<span class="badge {cls} verdict">{_e(st.verdict)}</span></div>'
            f'<div class="mute">{_e(st.kind)} &middot; group {_e(st.group)}</div>'
            f'<p class="reason">{_e(st.reason)}</p>'
            f'<div class="row num"><span>offset {_e(fmt_s(st.offset_s))}</span>'
            f'<span>&plusmn; {_e(fmt_s(st.bound_s, False))}</span>'
            f'<span class="mute">{_e(rel)}</span></div>'
            f'{interval_svg(st, centre, rng)}'
            f'<div class="mute">interval against the consensus (centre line), '
            f'&plusmn;{_e(fmt_s(rng, False))} full scale</div>'
            f'{svg}<div class="mute num">{_e(rng_txt)}</div></div>')
    return f'<div class="grid" id="sources">{"".join(cards)}</div>'


def _events(events: Sequence[Event], now_ns: int | None) -> str:
    if not events:
        return '<p class="mute">No events since the monitor started.</p>'
    rows = []
    for e in list(events)[::-1][:SHOWN_EVENTS]:
        cls = _SEVERITY_CLASS.get(e.severity, "warn") if e.type == "alert" else "ok"
        rows.append(f'<tr><td class="num">{_e(utc(e.t_ns))}<br><span class="mute">'
                    f'{_e(_ago(e.t_ns, now_ns))}</span></td>'
                    f'<td><span class="badge {cls}">{_e(e.type)}</span></td>'
                    f'<td>{_e(e.code)}<br><span class="mute">{_e(", ".join(e.sources) or "host-wide")}'
                    f'</span></td><td class="msg">{_e(e.message)}</td></tr>')
    return ('<div class="scroll"><table id="events"><thead><tr><th>time</th><th>type</th>'
            '<th>code, sources</th><th>message</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def render(inp: PageInput) -> str:
    """The status page: one self-contained HTML document (inline CSS and SVG, no script)."""
    snap = inp.snapshot
    hist = inp.history
    now_ns = snap.t_ns if snap is not None else None
    last_key = hist.newest_key if hist.newest_key else (
        now_ns // (hist.bucket_s * _NS) if now_ns else 0)
    # The charts span the last hour, or since the first data when the monitor is younger.
    first_key = max(last_key - hist.window_s // hist.bucket_s,
                    min((q[0].key for q in (*hist.sources.values(), hist.consensus) if q),
                        default=last_key) - 1)
    if snap is not None:
        q = "quorum" if snap.quorum else "NO QUORUM"
        qcls = "ok" if snap.quorum else "bad"
        cons = (f"{_e(fmt_s(snap.consensus_offset_s))} &plusmn; "
                f"{_e(fmt_s(snap.consensus_bound_s, False))}"
                if snap.consensus_offset_s is not None else "no consensus")
        ho = (f"oscillator {snap.holdover_ppm:+.3f} ppm against the consensus"
              if snap.holdover_ppm is not None else "learning (no oscillator model yet)")
        pts = [(b.key, b.value, b.lo, b.hi) for b in hist.consensus]
        hsvg, lo, hi = chart_svg(pts, first_key, last_key, "consensus minus host clock, last hour")
        head = (f'<div class="row"><span class="badge {qcls}" id="quorum">{q}</span>'
                f'<span>{snap.groups_agreeing} of {snap.groups_voting} trust groups agree</span>'
                f'<span class="mute">snapshot {_e(utc(snap.t_ns))}</span></div>'
                f'<div class="grid" style="margin-top:.5rem"><div class="card" id="host">'
                f'<h3>Host clock against the consensus</h3>'
                f'<div class="num">consensus minus host: {cons}</div>{hsvg}'
                f'<div class="mute num">last hour: {_e(fmt_s(lo))} .. {_e(fmt_s(hi))}</div>'
                f'</div><div class="card" id="holdover"><h3>Holdover</h3>'
                f'<div class="num">{_e(ho)}</div><div class="mute">the host\'s free-running '
                f'oscillator (CLOCK_MONOTONIC_RAW) as a witness: a reference that moves '
                f'faster than it can explain is pushed</div></div></div>')
    else:
        head = '<p class="mute" id="quorum">No snapshot yet: the engine has not spoken.</p>'
    age = ("" if inp.last_output_age_s is None
           else f" &middot; engine output {inp.last_output_age_s:.1f} s ago")
    n_alerts = len(inp.active)
    title = f"{inp.host}: " + (f"{n_alerts} active alert{'s' if n_alerts != 1 else ''}"
                               if n_alerts else "no alerts") + " - timewatch"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{int(inp.refresh_s)}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>timewatch &middot; <span id="host-name">{_e(inp.host)}</span></h1>'
        f'<div class="mute">refreshes every {int(inp.refresh_s)} s{age} &middot; '
        '<a href="/status.json">status.json</a> &middot; <a href="/metrics">metrics</a> '
        '&middot; <a href="/healthz">healthz</a></div>'
        f"{head}"
        f'<h2>Active alerts ({n_alerts})</h2>{_alerts(inp.active, now_ns)}'
        f"<h2>Sources</h2>{_sources(inp, first_key, last_key)}"
        f"<h2>Recent events</h2>{_events(list(hist.events), now_ns)}"
        "</body></html>\n")
