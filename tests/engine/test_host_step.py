"""The host clock detector confirms a step before acting on it (issue 18): one record whose
rx_ns - raw_ns jumps is held until the next record taken after it says whether the host clock
stepped (both taken, the step first) or that record's clocks were wrong (refused, counted)."""

from __future__ import annotations

from timewatch.engine import Engine
from timewatch.engine.detectors.host import HostClockDetector
from timewatch.engine.detectors.ntpdelay import NtpDelayDetector
from timewatch.records import Event, Header, Note, Ntp, Observation, Pps, SourceInfo, Tick

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


# -- issue 14 item 4: what was measured before a step is re-expressed in the new host time ----
def pps(t_s: float, seq: int, step_s: float = 0.0) -> Pps:
    return Pps("p", T0 + round((t_s + step_s) * S), seq, RAW0 + round(t_s * S))


def test_a_record_taken_before_the_step_handed_over_after_it_is_re_expressed() -> None:
    """A pulse taken just before a +0.3 s step reaches the engine after the step is confirmed:
    it is taken in the new host time (its rx_ns + 0.3 s), like everything measured before."""
    eng = Engine(Header("t", T0, {"p": SourceInfo("pps", "g")}))
    recs: list[Observation] = []
    for t in range(10):
        recs.append(tick(t))
        if t < 9:
            recs.append(pps(t + 0.9, t))
    late = pps(9.9, 9)
    recs += [tick(10, step_s=0.3), tick(10.05, step_s=0.3), late]
    events = []
    for r in recs:
        events += [o for o in eng.feed(r) if isinstance(o, Event)]
    tr = eng.ctx.trackers["p"]
    assert steps(eng) == [300_000_000]
    assert tr._last.rx_ns == late.rx_ns + 300_000_000  # type: ignore[attr-defined]
    det = next(d for d in eng.detectors if isinstance(d, HostClockDetector))
    assert det.late_records == 1
    for t in range(10, 30):
        events += [o for o in eng.feed(pps(t + 0.9, t, step_s=0.3)) if isinstance(o, Event)]
        events += [o for o in eng.feed(tick(t + 1, step_s=0.3)) if isinstance(o, Event)]
    events += eng.finish()
    # No pulse missing or late: only the host's step (and the host now 0.3 s off the pulses).
    assert {e.code for e in events if e.type == "alert"} == {"consensus.host_step",
                                                             "consensus.host_offset"}
    assert not eng.ctx.counters


def ntp(t1_s: float, t4_s: float, step1_s: float = 0.0, step4_s: float = 0.0,
        n: int = 0) -> Ntp:
    """An exchange of server n (true offset 0, 20 ms each way) sent at true time t1_s and
    answered at t4_s, the host clock stepped by step1_s when t1 was read, step4_s at t4."""
    xmt = f"{0x1234_5678_9ABC_DEF0 + n:016x}"
    t4 = T0 + round((t4_s + step4_s) * S)
    return Ntp("n", t4, T0 + round((t1_s + step1_s) * S), xmt, T0 + round((t1_s + 0.02) * S),
               T0 + round((t1_s + 0.02) * S) + 10_000, t4, xmt, leap=0, version=4, mode=4,
               stratum=2, poll=4, precision=-20, root_delay=0.001, root_dispersion=0.001,
               raw_ns=RAW0 + round(t4_s * S))


def test_an_ntp_exchange_across_a_step_is_set_aside_not_bogus() -> None:
    """Request sent before a -1.5 s step, reply read after it: t4 < t1, which would be bogus;
    neither time can be trusted, so the exchange is counted (`ntp.host_step`) and not used.
    The next exchange, sent after the step, is used."""
    recs: list[Observation] = []
    for t in range(20):
        recs.append(tick(t))
        if t % 4 == 0:
            recs.append(ntp(t + 0.1, t + 0.14, n=t))
    b = -1.5
    recs += [ntp(19.98, 20.02, 0.0, b, n=100), tick(20, step_s=b), tick(21, step_s=b),
             ntp(21.1, 21.14, b, b, n=101), tick(22, step_s=b), ntp(22.1, 22.14, b, b, n=102),
             tick(23, step_s=b)]
    eng, events = run(recs)
    assert steps(eng) == [-1_500_000_000]
    # The host is 1.5 s off the server now: consensus.host_offset; nothing names the server.
    assert [e.code for e in events if e.type == "alert"] == ["consensus.host_step",
                                                             "consensus.host_offset"]
    tr = eng.ctx.trackers["n"]
    # The straddling exchange and the one sent within the old time's last 1.5 s are set aside.
    assert tr.counts["host_step"] == 2 and tr.counts["usable"] == 6  # type: ignore[attr-defined]
    assert "ntp.bogus" not in eng.ctx.counters
    # The delay detector judged each usable exchange once: not the last one again when the step
    # re-expressed it and a set-aside exchange came.
    delay = next(d for d in eng.detectors if isinstance(d, NtpDelayDetector))
    assert len(delay._servers["n"].delays) == 6
    e = tr.estimate_
    assert e is not None and abs(e.offset_s - 1.5) < 0.001  # the host is 1.5 s behind now


def test_engine_time_follows_a_backward_step() -> None:
    """After a -1.5 s step engine time is the new host time: silence is measured in it."""
    eng, _ = run([tick(t) for t in range(10)] + [tick(t, step_s=-1.5) for t in range(10, 12)])
    assert eng.ctx.now_ns == tick(11, step_s=-1.5).rx_ns
