"""engine/core.py: time, staleness, the vote's falseticker streak, consensus.lost, snapshots.

A stub tracker (kind "stub") takes `pps` records whose `seq` is the offset in microseconds, so
these tests exercise the core alone (no cross-source detectors) with observations built here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from timewatch import kinds
from timewatch.engine import Engine, Estimate, Tracker, registry
from timewatch.engine.params import Detect
from timewatch.records import Event, Header, Observation, Pps, Snapshot, SourceInfo, Tick

S = 1_000_000_000
T0 = 1_764_160_000 * S
BOUND_S = 0.001  # every stub sample is offset +- 1 ms


class StubTracker(Tracker):
    kind = "stub"

    def feed(self, obs: Observation) -> None:
        assert isinstance(obs, Pps)
        if obs.seq == -999_999:  # "unusable" marker
            self.unusable_reason = "stub says unusable"
            return
        self.unusable_reason = None
        off = obs.seq / 1e6
        self.last_usable_ns = obs.rx_ns
        self.estimate_ = Estimate(off, BOUND_S, obs.rx_ns)
        self.ctx.emit(self.src, obs.rx_ns, off, BOUND_S)


@pytest.fixture(autouse=True)
def stub_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(kinds.KINDS, "stub", kinds.Kind("stub", None, f"{__name__}:StubTracker"))
    monkeypatch.setattr(registry, "DETECTORS", [])
    yield


def hdr(*groups: str) -> Header:
    return Header("t", T0, {g: SourceInfo("stub", g) for g in groups})


def obs(src: str, t_s: float, offset_us: int) -> Pps:
    return Pps(src, T0 + round(t_s * S), offset_us)


def feed(eng: Engine, records: list[Observation]) -> list[Event]:
    out: list[Event] = []
    for r in records:
        out.extend(o for o in eng.feed(r) if isinstance(o, Event))
    out.extend(eng.finish())
    return out


def rounds(t0_s: float, n: int, offsets_us: dict[str, int], step_s: float = 1.0) -> list[Observation]:
    """n rounds, one sample per source per round, sources 0.1 s apart."""
    out: list[Observation] = []
    for k in range(n):
        for i, (src, off) in enumerate(offsets_us.items()):
            out.append(obs(src, t0_s + k * step_s + i * 0.1, off))
    return out


def test_falseticker_needs_consecutive_verdicts_on_new_samples_not_votes() -> None:
    eng = Engine(hdr("a", "b", "c", "x"))
    recs = rounds(0, 3, {"a": 0, "b": 0, "c": 0, "x": 0})
    recs.append(obs("a", 3.0, 0))
    recs.append(obs("x", 3.1, 50_000))  # first lying sample
    recs += [Tick(T0 + round(t * S)) for t in (3.2, 3.3, 3.4, 3.5)]  # votes, no new sample of x
    ev1 = feed(eng, recs)
    assert [e.code for e in ev1] == []  # one verdict so far, however many votes
    ev2 = feed(eng, [obs("x", 3.6, 50_000)])
    assert [(e.type, e.code, e.sources) for e in ev2] == [("alert", "source.falseticker", ("x",))]
    assert ev2[0].evidence["consecutive"] == Detect().falseticker_confirm == 2
    assert ev2[0].evidence["offset_s"] == 0.05


def test_truechimer_verdict_resets_streak_and_clears_after_hold_down_same_id() -> None:
    eng = Engine(hdr("a", "b", "c", "x"))
    honest = {"a": 0, "b": 0, "c": 0}
    recs = rounds(0, 2, honest | {"x": 0})
    for k, x in enumerate((50_000, 0, 50_000)):  # FT, TC, FT: never two in a row, no alert
        recs += rounds(2 + k, 1, honest | {"x": x})
    assert feed(eng, recs) == []
    ev = feed(eng, rounds(5, 1, honest | {"x": 50_000}) + rounds(6, 200, honest | {"x": 0}))
    assert [(e.type, e.code) for e in ev] == [("alert", "source.falseticker"),
                                              ("clear", "source.falseticker")]
    assert ev[0].id == ev[1].id
    assert ev[1].t_ns - (T0 + round(6.3 * S)) == pytest.approx(Detect().hold_down_s * S, abs=1.01 * S)


def test_stale_raised_on_ticks_and_cleared_by_usable_data() -> None:
    eng = Engine(hdr("a", "b", "c"))
    recs: list[Observation] = rounds(0, 2, {"a": 0, "b": 0, "c": 0})
    recs += [Tick(T0 + k * S) for k in range(2, 9)]
    ev = feed(eng, recs)
    assert sorted(e.sources[0] for e in ev if e.code == "source.stale") == ["a", "b", "c"]
    stale_at = {e.sources[0]: e.t_ns for e in ev}
    # last sample of "a" at 1.0 s, limit 5 s: stale at the first tick after 6.0 s
    assert stale_at["a"] == T0 + 7 * S
    assert ev[0].evidence["limit_s"] == Detect().stale_gnss_s
    back = feed(eng, [obs("a", 9, 0)])
    assert [(e.type, e.code, e.sources) for e in back] == [("clear", "source.stale", ("a",))]


def test_source_that_never_speaks_goes_stale() -> None:
    eng = Engine(hdr("a", "mute"))
    ev = feed(eng, [obs("a", k, 0) for k in range(8)])
    assert [(e.code, e.sources) for e in ev] == [("source.stale", ("mute",))]


def test_engine_time_never_goes_backwards_with_late_records() -> None:
    eng = Engine(hdr("a", "b", "c"))
    recs: list[Observation] = rounds(0, 3, {"a": 0, "b": 0, "c": 0})
    recs.append(obs("b", 1.5, 0))  # 1.2 s older than the record before it
    feed(eng, recs)
    assert eng.ctx.now_ns == T0 + round(2.2 * S)


def test_consensus_lost_when_three_groups_disagree_then_regained() -> None:
    eng = Engine(hdr("a", "b", "c"))
    ev = feed(eng, rounds(0, 3, {"a": 0, "b": 0, "c": 0})
              + rounds(3, 2, {"a": -100_000, "b": 0, "c": 100_000}))
    assert [(e.type, e.code, e.sources) for e in ev] == [("alert", "consensus.lost", ())]
    assert ev[0].evidence["groups_voting"] == 3 and ev[0].evidence["groups_agreeing"] == 1
    ev2 = feed(eng, rounds(5, 200, {"a": 0, "b": 0, "c": 0}))
    assert [(e.type, e.code, e.id) for e in ev2] == [("clear", "consensus.lost", ev[0].id)]


def test_unknown_sources_are_counted_not_fatal() -> None:
    eng = Engine(hdr("a"))
    feed(eng, [obs("ghost", 0, 0), obs("ghost", 1, 0), obs("a", 1, 0)])
    assert eng.unknown_sources == {"ghost": 2}


def test_snapshots_every_interval_with_verdicts_and_reasons() -> None:
    eng = Engine(hdr("a", "b", "c", "x", "u"), Detect(snapshot_interval_s=10.0))
    snaps: list[Snapshot] = []
    recs = rounds(0, 25, {"a": 0, "b": 0, "c": 0, "x": 50_000})
    recs.append(obs("u", 24.9, -999_999))
    for r in recs:
        snaps += [o for o in eng.feed(r) if isinstance(o, Snapshot)]
    assert [s.t_ns for s in snaps] == [T0, T0 + 10 * S, T0 + 20 * S]
    last = {s.src: s for s in eng.snapshot().sources}
    assert last["a"].verdict == "truechimer" and "3/4" in last["a"].reason
    assert last["x"].verdict == "falseticker" and "ahead of" in last["x"].reason
    assert last["u"].verdict == "unusable" and last["u"].reason == "stub says unusable"
    snap = eng.snapshot()
    assert snap.quorum and snap.groups_voting == 4 and snap.consensus_offset_s == 0.0
    assert any(a.startswith("source.falseticker:") for a in snap.active_alerts)


def test_estimate_bound_ages_with_time() -> None:
    eng = Engine(hdr("a"))
    feed(eng, [obs("a", 0, 0)])
    tr = eng.ctx.trackers["a"]
    e = tr.estimate(T0 + 4 * S)
    assert e is not None
    assert e.bound_s == pytest.approx(BOUND_S + 4 * Detect().aging_ppm * 1e-6)
    assert tr.estimate(T0 + 6 * S) is None  # stale: out of the vote


def test_same_observations_same_events() -> None:
    def go() -> list[dict[str, object]]:
        eng = Engine(hdr("a", "b", "c", "x"))
        recs = rounds(0, 30, {"a": 0, "b": 10, "c": -10, "x": 60_000})
        recs += rounds(30, 200, {"a": 0, "b": 10, "c": -10, "x": 0})
        return [e.to_dict() for e in feed(eng, recs)]

    a = go()
    assert a == go() and len(a) == 2


def test_engine_time_is_bounded_by_the_last_tick(caplog: pytest.LogCaptureFixture) -> None:
    """A record more than MAX_LEAD_NS ahead of the last tick is refused (counted, warned) and
    moves nothing; one just inside the bound is taken; ticks themselves are host time."""
    from timewatch.engine.core import MAX_LEAD_NS

    eng = Engine(hdr("a", "b", "c"))
    feed(eng, [Tick(T0), *rounds(0.1, 1, {"a": 0, "b": 0, "c": 0})])
    ok = Pps("a", T0 + MAX_LEAD_NS - 1_000_000, 0)
    ahead = Pps("b", T0 + MAX_LEAD_NS + 1_000_000, 0)
    eng.feed(ok)
    assert eng.ctx.now_ns == ok.rx_ns
    with caplog.at_level("WARNING", "timewatch.engine.core"):
        assert eng.feed(ahead) == []
    assert eng.ctx.now_ns == ok.rx_ns and eng.ctx.counters["refused.future"] == 1
    assert eng.ctx.trackers["b"].last_seen_ns == T0 + 200_000_000
    assert "pps record of b" in caplog.text and "ahead of the host clock" in caplog.text
    # A tick far ahead is the host clock itself (a host step): time follows it.
    eng.feed(Tick(T0 + 3600 * S))
    assert eng.ctx.now_ns == T0 + 3600 * S
    eng.feed(Pps("b", T0 + 3600 * S + MAX_LEAD_NS - 1, 0))
    assert eng.ctx.counters["refused.future"] == 1


def test_refused_records_are_warned_about_on_the_1st_10th_100th(
        caplog: pytest.LogCaptureFixture) -> None:
    eng = Engine(hdr("a"))
    eng.feed(Tick(T0))
    with caplog.at_level("WARNING", "timewatch.engine.core"):
        for i in range(150):
            eng.feed(Pps("a", T0 + 3600 * S + i, 0))
    assert eng.ctx.counters["refused.future"] == 150
    assert [r.getMessage().endswith(f"({n} refused so far)") for r, n in
            zip(caplog.records, (1, 10, 100), strict=True)] == [True] * 3
