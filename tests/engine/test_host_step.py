"""The host clock detector confirms a step before acting on it (issue 18): one record whose
rx_ns - raw_ns jumps is held until the next record taken after it says whether the host clock
stepped (both taken, the step first) or that record's clocks were wrong (refused, counted)."""

from __future__ import annotations

from timewatch.engine import Engine
from timewatch.records import Event, Header, Note, Observation, SourceInfo, Tick

S = 1_000_000_000
T0 = 1_764_160_000 * S
RAW0 = 5_000 * S


def tick(t_s: float, step_s: float = 0.0, raw_off_s: float = 0.0) -> Tick:
    """A tick at t_s seconds, after a host step of step_s (rx moves), raw garbage by raw_off_s."""
    return Tick(T0 + round((t_s + step_s) * S), RAW0 + round((t_s + raw_off_s) * S))


def run(records: list[Observation]) -> tuple[Engine, list[Event]]:
    eng = Engine(Header("t", T0, {"n": SourceInfo("ntp", "n")}))
    events: list[Event] = []
    for r in records:
        events += [o for o in eng.feed(r) if isinstance(o, Event)]
    events += eng.finish()
    return eng, events


def steps(eng: Engine) -> list[int]:
    return [s for _, s in eng.ctx.host_steps]


def test_a_step_that_persists_is_taken_at_the_first_record_after_it() -> None:
    recs = [tick(t) for t in range(10)] + [tick(t, step_s=0.5) for t in range(10, 13)]
    eng, events = run(recs)
    assert steps(eng) == [500_000_000]
    ev = [e for e in events if e.code == "consensus.host_step" and e.type == "alert"]
    assert len(ev) == 1 and ev[0].evidence["after_rx_ns"] == recs[10].rx_ns
    assert "refused.host_clock" not in eng.ctx.counters


def test_just_below_the_threshold_is_no_step_and_nothing_is_held() -> None:
    eng = Engine(Header("t", T0, {}))
    for t in range(10):
        eng.feed(tick(t))
    eng.feed(tick(10, step_s=0.099))
    assert eng.ctx.now_ns == tick(10, step_s=0.099).rx_ns  # taken at once
    assert steps(eng) == [] and not eng.ctx.counters


def test_one_record_with_a_garbage_raw_ns_is_refused_and_moves_nothing() -> None:
    recs = [tick(t) for t in range(10)] + [tick(10, raw_off_s=10_000)] + \
        [tick(t) for t in range(11, 14)]
    eng, events = run(recs)
    assert steps(eng) == [] and events == []
    assert eng.ctx.counters["refused.host_clock"] == 1


def test_a_held_record_is_followed_by_records_taken_just_before_it() -> None:
    """Records taken before the step but handed over after its first record are taken in the
    old host time while the step waits; the step is then confirmed."""
    recs = [tick(t) for t in range(10)]
    recs += [tick(10.5, step_s=-0.3), tick(10.2), tick(10.4), tick(11, step_s=-0.3)]
    eng, _ = run(recs)
    assert steps(eng) == [-300_000_000]
    assert "refused.host_clock" not in eng.ctx.counters


def test_two_odd_records_in_a_row_are_both_refused() -> None:
    recs = [tick(t) for t in range(10)]
    recs += [tick(10, raw_off_s=10_000), tick(11, raw_off_s=-500), tick(12), tick(13)]
    eng, events = run(recs)
    assert steps(eng) == [] and events == []
    assert eng.ctx.counters["refused.host_clock"] == 2


def test_a_record_still_held_at_the_end_is_refused() -> None:
    eng, events = run([tick(t) for t in range(10)] + [tick(10, step_s=2.0)])
    assert steps(eng) == [] and events == []
    assert eng.ctx.counters["refused.host_clock"] == 1


def note(t_s: float, step_s: float = 0.0) -> Note:
    return Note(T0 + round((t_s + step_s) * S), "n", RAW0 + round(t_s * S))


def test_a_forward_step_beyond_engine_times_bound_loses_no_record() -> None:
    """Host time (the last tick) moves with a confirmed step: the records after a 60 s step,
    handed over before the next tick, are taken; a record whose clocks both claim a day ahead
    (no jump of rx - raw) is still refused as ahead of host time."""
    recs: list[Observation] = [tick(t) for t in range(10)]
    recs += [note(9.5), note(10.2, 60), note(10.4, 60), note(10.6, 60), tick(11, step_s=60)]
    eng, _ = run(recs)
    assert steps(eng) == [60 * S] and not eng.ctx.counters
    assert eng.ctx.now_ns == recs[-1].rx_ns
    ahead = Note(T0 + (71 + 86400) * S, "x", RAW0 + (11 + 86400) * S)
    assert eng.feed(ahead) == [] and eng.ctx.counters == {"refused.future": 1}
