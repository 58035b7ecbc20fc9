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
    # The text says what the evidence says: offset minus consensus.
    e = ev2[0].evidence
    assert f"{(e['offset_s'] - e['consensus_offset_s']) * 1e3:+.3f} ms: ahead of" in ev2[0].message


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


def test_a_source_caught_moving_stays_moving_while_it_disagrees_then_clears_after_hold_down(
) -> None:
    """`moving` is the engine's state (set through the Context, as time.step/time.drift
    detectors do); the vote reads it, the alert follows it, and only the witnesses end it: a
    source whose offset is still off the level it held before it moved is never cleared."""
    eng = Engine(hdr("a", "b", "c", "p"))
    ctx = eng.ctx
    honest = {"a": 0, "b": 0, "c": 0, "p": 800}  # p's interval overlaps theirs: a truechimer
    feed(eng, rounds(0, 3, honest))
    assert ctx.consensus.offset_s == pytest.approx(200e-6, rel=0.01)  # p pulls the mean
    caught = T0 + 3 * S
    ctx.caught_moving("p", "time.drift", caught, "p drifting", {"rate_s_per_s": 1e-6})
    ctx.caught_moving("p", "time.step", caught, "p stepped", {})  # the same condition
    pushed = honest | {"p": 900}  # 100 us off its level, still inside the others' intervals
    hold_ns = round(Detect().hold_down_s * S)
    ev = feed(eng, rounds(3, 300, pushed))  # far longer than the hold-down
    assert [(e.type, e.code, e.sources) for e in ev] == [("alert", "time.drift", ("p",))]
    assert ev[0].t_ns == caught and ctx.states["p"].moving["time.drift"].since_ns == caught
    assert ctx.consensus.offset_s == 0.0 and ctx.moving_sources() == frozenset({"p"})
    verdict, reason = eng.verdict("p")
    assert verdict == "truechimer" and "withheld" in reason
    # Back at its level at 303.3 s: moving until it has agreed for the hold-down.
    ev = feed(eng, rounds(303, 119, honest))
    assert ev == [] and ctx.moving_sources() == frozenset({"p"})
    ev = feed(eng, rounds(422, 3, honest))
    assert [(e.type, e.code) for e in ev] == [("clear", "time.drift")]
    assert ev[0].t_ns == T0 + round(303.3 * S) + hold_ns
    assert ctx.states["p"].moving == {}
    assert ctx.consensus.offset_s == pytest.approx(200e-6, rel=0.01)


def test_disagreeing_again_during_the_hold_down_restarts_it_under_one_alert() -> None:
    eng = Engine(hdr("a", "b", "c", "p"))
    ctx = eng.ctx
    honest = {"a": 0, "b": 0, "c": 0, "p": 800}
    feed(eng, rounds(0, 2, honest))
    ctx.caught_moving("p", "time.drift", T0 + 2 * S, "p drifting", {})
    ev = feed(eng, rounds(2, 98, honest))  # to 99.3 s: agreeing, not yet for the hold-down
    ev += feed(eng, rounds(100, 10, honest | {"p": 900}))  # off again: the hold-down restarts
    ev += feed(eng, rounds(110, 130, honest))
    assert [(e.type, e.code) for e in ev] == [("alert", "time.drift"), ("clear", "time.drift")]
    assert ev[1].t_ns == T0 + round(110.3 * S) + round(Detect().hold_down_s * S)


def test_verdicts_do_not_read_the_alerts() -> None:
    """The states decide: alerts emptied behind the engine's back change no verdict."""
    from timewatch.engine.alerts import Alerts

    eng = Engine(hdr("a", "b", "c", "p", "x", "q"))
    ctx = eng.ctx
    others = {"a": 0, "b": 0, "c": 0, "p": 800, "x": 50_000}
    feed(eng, rounds(0, 1, others | {"q": 0}) + rounds(1, 2, others))  # q falls silent
    ctx.caught_moving("p", "time.step", T0 + 3 * S, "p stepped", {})
    feed(eng, rounds(3, 10, others))
    before = {s.src: (s.verdict, s.reason) for s in eng.snapshot().sources}
    assert ctx.alerts.active_codes == {"source.falseticker": 1, "time.step": 1, "source.stale": 1}
    ctx.alerts = Alerts()
    feed(eng, rounds(13, 1, others))
    after = {s.src: (s.verdict, s.reason) for s in eng.snapshot().sources}
    assert after == before
    assert before["p"][0] == "truechimer" and "withheld" in before["p"][1]
    assert before["x"][0] == "falseticker" and before["q"] == ("stale", "no usable data for 5 s")
    assert ctx.consensus.offset_s == 0.0  # p still withheld


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


def test_consensus_lost_when_the_only_two_groups_disagree() -> None:
    eng = Engine(hdr("a", "b"))
    ev = feed(eng, rounds(0, 3, {"a": 0, "b": 0}) + rounds(3, 2, {"a": -100_000, "b": 100_000}))
    assert [(e.type, e.code, e.sources) for e in ev if e.type == "alert"] == \
        [("alert", "consensus.lost", ())]
