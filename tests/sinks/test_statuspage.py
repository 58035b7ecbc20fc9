"""The status page: the pure renderer (escaping, bars, charts, history) and `/` on a real socket.

The page in a real browser against a running monitor: tests/integration/test_statuspage_chromium.py.
"""

from __future__ import annotations

import re
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from timewatch.config import parse
from timewatch.records import Event, Sample, Snapshot, SourceStatus
from timewatch.sinks import statuspage as sp
from timewatch.sinks.http import HttpSink

S = 1_000_000_000
T = 1_796_083_200 * S  # a bucket boundary (divisible by 15 s)
EVIL_ID = '<script>alert("id")</script>'
EVIL_MSG = '"><img src=x onerror=alert(1)> & <b>bold</b>'


def snap(t_ns: int, *sources: SourceStatus, offset: float | None = 0.0,
         bound: float | None = 1e-3, ho: float | None = None) -> Snapshot:
    return Snapshot(t_ns, tuple(sources), True, 2, 3, offset, bound, (), ho)


def st(src: str, verdict: str = "truechimer", off: float | None = 0.0, bnd: float | None = 1e-3,
       reason: str = "agrees with 3/3 trust groups", kind: str = "ntp",
       group: str = "g") -> SourceStatus:
    return SourceStatus(src, kind, group, verdict, reason, off, bnd, T)


class _Collect(HTMLParser):
    """Every start tag (name, attrs) and every text node: what a browser would build."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_page(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    return p


def test_hostile_ids_messages_and_evidence_are_printed_as_text_never_as_markup() -> None:
    evil = st(EVIL_ID, "falseticker", 2.5, 1e-3, reason=EVIL_MSG, group=EVIL_MSG,
              kind="<i>k</i>")
    alert = Event("alert", T, "source.falseticker", (EVIL_ID,), 'id"<x>', "critical", EVIL_MSG,
                  {EVIL_MSG: EVIL_MSG, "offset_s": 2.5, "nested": {"<k>": "<v>"}})
    hist = sp.History()
    hist.add([Sample(EVIL_ID, T, 2.5, 1e-3), alert, snap(T + S, evil)])
    page = sp.render(sp.PageInput('<h1>host</h1>"', snap(T + S, evil), [alert], hist))
    doc = parse_page(page)
    # No element beyond the page's own: no script, no img, no b/i from the data.
    assert {t for t, _ in doc.tags} <= {"html", "head", "meta", "title", "style", "body", "h1",
                                        "h2", "h3", "span", "div", "a", "p", "svg", "line",
                                        "rect", "circle", "path", "polygon", "polyline", "text",
                                        "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th",
                                        "td", "br"}
    assert not any("onerror" in a for _, attrs in doc.tags for a in attrs)
    text = "".join(doc.text)
    # ... and the hostile strings are all there, as text.
    for s in (EVIL_ID, EVIL_MSG, "<i>k</i>", '<h1>host</h1>"', "<k>=<v>", 'id"<x>'):
        assert s in text, s
    # Attribute values are escaped too (data-src carries the id).
    assert any(attrs.get("data-src") == EVIL_ID for _, attrs in doc.tags)
    assert "<script" not in page and "<img" not in page


def test_a_page_with_nothing_yet_lists_the_configured_sources() -> None:
    page = sp.render(sp.PageInput("lab", None, [], sp.History(),
                                  configured=[("ntp1", "ntp", "op-a")]))
    assert "No snapshot yet" in page and 'data-src="ntp1"' in page and "init" in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert re.search(r'<meta http-equiv="refresh" content="\d+">', page)
    assert "<script" not in page  # works without JavaScript


def test_interval_bar_centres_the_consensus_and_marks_what_runs_off_the_scale() -> None:
    inside = sp.interval_svg(st("a", off=0.0005, bnd=0.0002), 0.0, 0.001)
    # 300 px wide, consensus at 150: offset +0.5 ms of +-1 ms is at 225, band 195..255.
    assert 'cx="225.0"' in inside and 'x="195.0"' in inside and 'width="60.0"' in inside
    assert "<path" not in inside
    far = sp.interval_svg(st("b", "falseticker", off=-0.150, bnd=0.001), 0.0, 0.001)
    assert "<circle" not in far and 'd="M0 11' in far and "bad" in far
    assert "<path" not in sp.interval_svg(st("c", off=None, bnd=None), 0.0, 0.001)


def test_each_bar_is_scaled_to_its_own_interval_so_a_liar_runs_off_it() -> None:
    assert sp.scale_for(0.0003) == 0.001  # 2 x 0.3 ms -> 1 ms
    assert sp.scale_for(2e-6) == 5e-6 and sp.scale_for(5e-6) == 1e-5
    assert sp.scale_for(0.5) == 1.0 and sp.scale_for(None) == 2e-8
    liar = st("d", "falseticker", off=0.150, bnd=150e-6)
    assert "<path" in sp.interval_svg(liar, 0.0, sp.scale_for(liar.bound_s))


def test_history_buckets_samples_relative_to_the_consensus_and_keeps_one_hour() -> None:
    h = sp.History()
    for i in range(30):  # 30 s at 1 Hz, host 1 ms behind the consensus, source 0.1 ms off it
        t = T + i * S
        h.add([Sample("pps0", t, 0.0011, 2e-6)])
        h.add([snap(t, offset=0.001, bound=1e-5)])
    pts = sp.source_points(h, "pps0")
    assert [p[0] for p in pts] == [T // (15 * S), T // (15 * S) + 1]
    for _, v, lo, hi in pts:
        assert abs(v - 1e-4) < 1e-12 and abs(lo - (1e-4 - 2e-6)) < 1e-12
        assert abs(hi - (1e-4 + 2e-6)) < 1e-12
    # An hour and a bit later the first buckets are gone.
    h.add([Sample("pps0", T + 3700 * S, 0.0011, 2e-6), snap(T + 3700 * S, offset=0.001)])
    assert min(b.key for b in h.sources["pps0"]) > T // (15 * S) + 1
    # Non-finite values never reach a chart; events keep the last RECENT_EVENTS.
    h.add([Sample("pps0", T + 3701 * S, float("nan"), 1.0)])
    assert all(b.n == 1 for b in h.sources["pps0"])
    h.add([Event("clear", T, "x", (), str(i)) for i in range(sp.RECENT_EVENTS + 5)])
    assert len(h.events) == sp.RECENT_EVENTS and h.events[-1].id == str(sp.RECENT_EVENTS + 4)


def test_chart_breaks_at_a_real_gap_but_joins_a_slow_poll() -> None:
    k0 = 1000
    slow = [(k0 + 4 * i, 0.0, -1.0, 1.0) for i in range(10)]  # one bucket in four (64 s poll)
    svg, _, _ = sp.chart_svg(slow, k0, k0 + 240, "x")
    assert svg.count("<polyline") == 1
    gap = [(k0 + i, 0.0, -1.0, 1.0) for i in range(5)] + [(k0 + 50 + i, 0.0, -1, 1)
                                                          for i in range(5)]
    svg, lo, hi = sp.chart_svg(gap, k0, k0 + 240, "x")
    assert svg.count("<polyline") == 2 and (lo, hi) == (-1.0, 1.0)
    empty, _, _ = sp.chart_svg([], k0, k0 + 240, "x")
    assert "no data" in empty


def test_evidence_values_are_printed_with_their_units() -> None:
    assert sp.fmt_value("offset_s", -0.193113) == "-193.113 ms"
    assert sp.fmt_value("bound_s", 9.2e-6) == "9.2 us"
    assert sp.fmt_value("rate_s_per_s", 1e-5) == "+10.000 us/s"
    assert sp.fmt_value("freq_ppm", -46.25) == "-46.250 ppm"
    assert sp.fmt_value("since_ns", T) == "2026-12-01 00:00:00 UTC"
    assert sp.fmt_value("valid", True) == "true"


def test_slash_serves_the_page_from_what_the_sink_was_handed(tmp_path: Path) -> None:
    cfg = parse({"monitor": {"state_dir": str(tmp_path), "host": "pi-lab-1"},
                 "http": {"listen": "127.0.0.1:0"},
                 "sources": [{"id": "ntp1", "kind": "ntp", "server": "127.0.0.1"},
                             {"id": EVIL_ID, "kind": "ntp", "server": "127.0.0.2"}]})
    sink = HttpSink(cfg)
    try:
        def get() -> tuple[str, str]:
            with urllib.request.urlopen(f"http://{sink.address}/", timeout=5) as r:
                return r.headers["Content-Type"], r.read().decode()

        ctype, page = get()
        assert ctype == "text/html; charset=utf-8" and 'data-src="ntp1"' in page
        alert = Event("alert", T + S, "source.falseticker", (EVIL_ID,), "a1", "critical",
                      EVIL_MSG, {"offset_s": 0.15})
        sink.handle([Sample("ntp1", T, 1e-4, 1e-3), Sample(EVIL_ID, T, 0.15, 1e-3), alert,
                     snap(T + S, st("ntp1"), st(EVIL_ID, "falseticker", 0.15, 1e-3,
                                                   reason="150 ms ahead"))])
        _, page = get()
        doc = parse_page(page)
        verdicts = {a.get("data-src"): a.get("data-verdict") for t, a in doc.tags
                    if t == "div" and a.get("data-verdict")}
        assert verdicts == {"ntp1": "truechimer", EVIL_ID: "falseticker"}
        assert 'data-code="source.falseticker"' in page and EVIL_MSG in "".join(doc.text)
        assert "<script" not in page
    finally:
        sink.close()
