"""The ground-truth judge itself (timewatch/sim/judge.py): it must fail a missed detection, a
late one and a false accusation, and pass the real thing. Real traces from the catalogue; the
engine is made blind or wrong through its `[detect]` keys, not mocked."""

from __future__ import annotations

from dataclasses import replace

from timewatch.engine.params import Detect
from timewatch.sim.judge import judge
from timewatch.sim.scenarios import build


def test_detected_liar_passes() -> None:
    v = judge(build("ntp_liar", 11, offset_s=0.030))
    assert v.ok and v.detected and not v.false_alerts and not v.missed
    assert v.time_to_detect_s is not None and v.target_s is not None
    assert 0 <= v.time_to_detect_s <= v.target_s


def test_missed_detection_fails() -> None:
    # A liar of 30 ms with the step test and the vote made blind (steps of 1000 s only, and a
    # falseticker confirmed after 1000 evaluations): nothing names it.
    blind = Detect(ntp_step_s=1000.0, falseticker_confirm=1000)
    st = build("ntp_liar", 11, offset_s=0.030)
    v = judge(st, blind)
    assert not v.detected and not v.ok
    assert v.missed == list(st.truth.culprits)
    assert v.time_to_detect_s is None


def test_detection_after_the_deadline_is_a_miss() -> None:
    st = build("ntp_liar", 11, offset_s=0.030)
    v = judge(st)
    assert v.ok and st.truth.start_ns is not None
    # The same events judged against a deadline just before the detection: missed.
    first = min(e.t_ns for e in v.events if e.type == "alert")
    late = replace(st, truth=replace(st.truth, deadline_ns=first - 1))
    v2 = judge(late)
    assert not v2.detected and not v2.ok and v2.missed == list(st.truth.culprits)


def test_false_accusation_fails() -> None:
    # A clean hour with a drift test that fires on noise (h tiny, no allowance): honest servers
    # accused, and the judge must say so.
    jumpy = Detect(drift_cusum_h=0.5, drift_cusum_k=0.0)
    v = judge(build("clean", 1), jumpy)
    assert v.false_alerts and not v.ok
    assert all(e.sources for e in v.false_alerts)


def test_accusing_an_honest_source_besides_the_culprit_fails() -> None:
    st = build("ntp_liar", 11, offset_s=0.030)
    v = judge(st)
    assert v.ok
    # The same trace judged as if a different server were the culprit: the real liar's alert
    # is now a false accusation and the named culprit is missed.
    others = [s for s in st.header.sources if s not in st.truth.culprits]
    wrong = replace(st, truth=replace(st.truth, culprits=(others[0],)))
    v2 = judge(wrong)
    assert not v2.ok and v2.false_alerts and v2.missed == [others[0]]
