"""The threat battery, GNSS and PPS half (docs/threats.md scenarios 5-15, 21, 26 and 27).

Each case simulates a scenario in the default deployment (a GNSS receiver with its PPS in trust
group "gnss", five NTP servers of four operators) with the noise of docs/threats.md, replays it through
a fresh engine and judges the events against the scenario's ground truth (`sim.judge`): detected
within its target, the receiver's sources named (gnss0 and/or pps0), nobody else accused, above
all no honest NTP server because GNSS is more precise. Seeds vary, and attack sizes sit just
above the targets' thresholds. The legitimate faults of "Must not alarm" raise nothing but what
they call for.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.ppstrace import T0_NS
from tests.engine.ppstrace import build as build_pps
from tests.engine.ppstrace import run as run_pps
from timewatch.engine import Engine
from timewatch.engine.params import Detect
from timewatch.records import Event, Sample
from timewatch.sim.judge import Verdict, judge, replay_events
from timewatch.sim.noise import NS
from timewatch.sim.scenarios import GNSS_ID, PPS_ID, build


# -- regression: the coarse NMEA-label offset is not a precise reference ---------------------------
def test_drift_never_judges_coarse_label_offset_with_the_pps_noise_floor() -> None:
    # gnss0 alone with its PPS: the label latency is never learned (no other group), so its coarse
    # offset sits at the latency prior's middle (~0.39 s, bound 0.5 s) with ms of jitter. The
    # drift test once judged it with the 2 us GNSS floor and raised time.drift 37 s in.
    r = run_pps(build_pps(3600, seed=7))
    drift = [e for e in r.alerts if e.code == "time.drift"]
    assert not drift, [(e.sources, (e.t_ns - T0_NS) / 1e9, e.evidence) for e in drift]
    assert not r.alerts, [(e.code, e.sources) for e in r.alerts]


# -- the battery ----------------------------------------------------------------------------------
THREATS = ["gnss_step", "gnss_label_step", "gnss_push_fast", "gnss_position_jump",
           "gnss_meaconing", "gnss_cn0_uniform", "gnss_jamming", "gnss_week_rollover",
           "gnss_simulator", "pps_faults", "gnss_garbage", "gnss_push_stairs",
           "gnss_outage_shift"]
RECEIVER = {GNSS_ID, PPS_ID}


def _check(name: str, seed: int, detect: Detect | None = None, **params: Any) -> Verdict:
    st = build(name, seed, **params)
    v = judge(st, detect)
    assert v.detected, v.describe()
    assert not v.false_alerts, v.describe()
    assert v.time_to_detect_s is not None and v.target_s is not None
    assert v.time_to_detect_s <= v.target_s, v.describe()
    # Nobody but the receiver is ever accused: above all no honest NTP server because GNSS is
    # more precise (the judge says so too; this names the rule).
    named = {s for e in v.events if e.type == "alert" for s in e.sources}
    assert named <= RECEIVER, v.describe()
    return v


# Every GNSS/PPS scenario with its seeded (drawn) attack size and start; push_slow (a 1260 s
# trace) with one seed here and its threshold cases below.
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", THREATS)
def test_scenario_detected_in_time_receiver_named_nobody_else_accused(name: str,
                                                                      seed: int) -> None:
    _check(name, seed)


def test_slow_push_with_drawn_rate_detected() -> None:
    _check("gnss_push_slow", 4)


# -- attack sizes just above the thresholds ------------------------------------------------------
@pytest.mark.parametrize("seed,step_s", [(11, 6.05e-6), (12, -6.05e-6), (13, 6.05e-6),
                                         (14, -6.05e-6), (15, 6.05e-6), (16, -6.05e-6)])
def test_step_of_6_us_caught_within_5_s(seed: int, step_s: float) -> None:
    v = _check("gnss_step", seed, step_s=step_s)
    assert any(e.code == "time.step" and e.sources == (PPS_ID,) for e in v.events)


@pytest.mark.parametrize("seed,label_offset_s", [(11, 1), (12, -1)])
def test_labels_one_second_off_while_pps_in_phase(seed: int, label_offset_s: int) -> None:
    v = _check("gnss_label_step", seed, label_offset_s=label_offset_s)
    mm = [e for e in v.events if e.code == "pps.label_mismatch" and e.type == "alert"]
    assert mm and mm[0].evidence["second_diff_s"] == label_offset_s


@pytest.mark.parametrize("seed,rate", [(11, 1.05e-6), (12, -1.05e-6), (13, 1.05e-6),
                                      (14, -1.05e-6), (15, 10.5e-6)])
def test_push_of_1_us_per_s_within_30_s(seed: int, rate: float) -> None:
    _check("gnss_push_fast", seed, rate_s_per_s=rate)


@pytest.mark.parametrize("name,seed,rate", [("gnss_push_fast", 11, 1.05e-6),
                                           ("gnss_push_fast", 12, -1.05e-6),
                                           ("gnss_push_slow", 13, 0.26e-6),
                                           ("gnss_push_slow", 14, -0.26e-6)])
def test_a_push_from_the_first_minute_within_its_target(name: str, seed: int, rate: float) -> None:
    # The demo's timeline: pushed 55 s after start, the holdover and the jitter learned for
    # less than a minute (measured: 6-10 s for 1 us/s, about 58 s for 0.26 us/s).
    _check(name, seed, rate_s_per_s=rate, start_s=55, duration_s=500.0)


def test_a_clean_start_raises_nothing() -> None:
    # The first minute at 60 seeds: the PPS slope test takes its own jitter estimate's
    # uncertainty (few residuals) into account; taking the estimate as known raised a false
    # time.drift on 4 of these 60 starts (seeds 10, 48, 56, 58, at 38-57 s).
    noisy = {}
    for seed in range(1, 61):
        st = build("gnss_clean", seed, duration_s=150.0)
        alerts = [(e.code, e.sources) for e in replay_events(st) if e.type == "alert"]
        if alerts:
            noisy[seed] = alerts
    assert noisy == {}


@pytest.mark.parametrize("seed,step_s", [(11, 2.5e-6), (12, -2.5e-6), (13, 3.0e-6)])
def test_step_below_the_step_threshold_never_alarms(seed: int, step_s: float) -> None:
    st = build("gnss_step", seed, step_s=step_s)
    events = replay_events(st)
    assert not [e for e in events if e.type == "alert"], [(e.code, e.sources) for e in events]


@pytest.mark.parametrize("seed,rate", [(11, 0.26e-6), (12, -0.26e-6), (13, 0.26e-6),
                                      (14, -0.26e-6)])
def test_slow_push_of_a_quarter_us_per_s_within_five_minutes(seed: int, rate: float) -> None:
    # The warm-up is 600 s here (the holdover learns a full 10-min block): a 1260 s trace.
    v = _check("gnss_push_slow", seed, rate_s_per_s=rate)
    first = next(e for e in v.events if e.code in ("time.drift", "time.step")
                 and e.type == "alert")
    assert first.sources == (PPS_ID,)
    key = "rate_s_per_s" if first.code == "time.drift" else "step_s"
    assert first.evidence[key] * rate > 0  # pushed the way it was pushed


@pytest.mark.parametrize("seed,surveyed", [(11, False), (12, True)])
def test_position_53_m_off_configured_or_surveyed_antenna(seed: int, surveyed: bool) -> None:
    v = _check("gnss_position_jump", seed, distance_m=53.0, surveyed=surveyed)
    jump = next(e for e in v.events if e.code == "gnss.position_jump")
    assert jump.evidence["learned"] is surveyed and 45.0 < jump.evidence["distance_m"] < 65.0


@pytest.mark.parametrize("seed,delay_s,distance_m", [(11, 1.05e-3, 500.0), (12, 1.05e-3, 55.0),
                                                     (13, 8e-3, 2000.0)])
def test_meaconing_1_ms_late_names_both_receiver_sources(seed: int, delay_s: float,
                                                         distance_m: float) -> None:
    _check("gnss_meaconing", seed, delay_s=delay_s, distance_m=distance_m)


@pytest.mark.parametrize("seed,params", [
    (11, {"variant": "uniform", "sigma_db_hz": 1.2}),
    (12, {"variant": "uniform", "sigma_db_hz": 0.3, "level_db_hz": 48.0}),
    (13, {"variant": "raised", "step_db": 6.5}),
])
def test_cn0_uniform_or_all_up_6_db(seed: int, params: dict[str, Any]) -> None:
    _check("gnss_cn0_uniform", seed, **params)


@pytest.mark.parametrize("seed,fault", [(11, "rollover"), (12, "coldstart")])
def test_week_rollover_or_cold_start_date_with_a_valid_fix(seed: int, fault: str) -> None:
    v = _check("gnss_week_rollover", seed, fault=fault)
    assert v.time_to_detect_s is not None and v.time_to_detect_s < 0.25  # its first sentence


@pytest.mark.parametrize("seed,params", [
    (11, {"fault": "missing", "pulses": 1}),
    (12, {"fault": "doubled", "pulses": 1, "extra_s": 0.05}),
    (13, {"fault": "doubled", "pulses": 2, "extra_s": 0.95}),
    (14, {"fault": "shifted", "shift_s": 0.002}),
    (15, {"fault": "shifted", "shift_s": -0.3}),
])
def test_pps_missing_doubled_or_shifted_within_3_s(seed: int, params: dict[str, Any]) -> None:
    _check("pps_faults", seed, **params)


def test_garbage_line_with_few_garbage_lines_still_counts_5_percent() -> None:
    _check("gnss_garbage", 11, garbage_rate=0.002)


# -- must not alarm ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,surveyed", [(1, False), (2, True)])
def test_clean_hour_with_satellites_rising_and_setting_raises_nothing(seed: int,
                                                                     surveyed: bool) -> None:
    st = build("gnss_clean", seed, surveyed=surveyed)
    events = replay_events(st)
    assert not [e for e in events if e.type == "alert"], [(e.code, e.sources) for e in events]


@pytest.mark.parametrize("seed", [1, 2])
def test_one_minute_obstruction_only_no_fix_while_pps_keeps_pulsing(seed: int) -> None:
    st = build("gnss_obstruction", seed)
    assert st.truth.start_ns is not None
    eng = Engine(st.header)
    alerts: list[Event] = []
    pps_samples: list[Sample] = []
    for o in st.observations:
        for x in eng.feed(o):
            if isinstance(x, Event) and x.type == "alert":
                alerts.append(x)
            elif isinstance(x, Sample) and x.src == PPS_ID:
                pps_samples.append(x)
    alerts.extend(e for e in eng.finish() if e.type == "alert")
    assert {e.code for e in alerts} == {"gnss.no_fix"} or \
        {e.code for e in alerts} == {"gnss.no_fix", "gnss.satellites"}, alerts
    assert all(e.sources == (GNSS_ID,) for e in alerts)
    # PPS counted its seconds through the minute without a fix: a sample every second (but for
    # the few pulses beyond 3 jitters of the phase line, kept out as outliers).
    t0 = st.truth.start_ns
    during = [s for s in pps_samples if t0 + 5 * NS <= s.t_ns < t0 + 55 * NS]
    assert len(during) >= 45


@pytest.mark.parametrize("seed,lasting_s", [(11, 1.0), (12, 2.0)])
def test_a_position_outlier_of_one_or_two_epochs_is_no_jump(seed: int, lasting_s: float) -> None:
    st = build("gnss_position_jump", seed, distance_m=200.0, lasting_s=lasting_s)
    events = replay_events(st)
    assert not [e for e in events if e.code == "gnss.position_jump"], events


@pytest.mark.parametrize("seed,step_s,every_s", [(11, 3.5e-6, 7.0), (12, -3.5e-6, 7.0),
                                                 (13, 2.0e-6, 4.0), (14, -3.5e-6, 7.0),
                                                 (15, 2.0e-6, 4.0)])
def test_push_in_stairs_below_the_step_threshold_within_2_min(seed: int, step_s: float,
                                                              every_s: float) -> None:
    _check("gnss_push_stairs", seed, step_s=step_s, every_s=every_s)


# -- 27: time moved while the receiver was jammed (no fix, no PPS) --------------------------------
# Across the silence the holdover clock free-ran: the pulses after it may be off by the step
# threshold plus 3 sigmas of a 0.1 ppm / 10 min wander over the silence (13 us after 100 s,
# 126 us after 10 min, where the simulated crystal's own walk is ~22 us 1-sigma).
@pytest.mark.parametrize("seed,outage_s,shift_s", [
    (11, 100.0, 20.5e-6), (12, 100.0, -20.5e-6), (13, 60.0, 20.5e-6), (14, 30.0, -20.5e-6),
    (15, 100.0, -20.5e-6), (16, 80.0, 20.5e-6)])
def test_time_moved_during_a_silence_of_up_to_100_s_caught_within_10_s(
        seed: int, outage_s: float, shift_s: float) -> None:
    v = _check("gnss_outage_shift", seed, outage_s=outage_s, shift_s=shift_s)
    step = next(e for e in v.events if e.code == "time.step" and e.type == "alert")
    assert step.sources == (PPS_ID,) and step.evidence["step_s"] * shift_s > 0
    assert step.evidence["silence_s"] == pytest.approx(outage_s + 1, abs=0.5)


@pytest.mark.parametrize("seed,shift_s", [(11, 180e-6), (12, -180e-6), (13, 180e-6),
                                          (14, -180e-6)])
def test_time_moved_by_180_us_during_a_10_min_silence_caught_within_10_s(seed: int,
                                                                       shift_s: float) -> None:
    _check("gnss_outage_shift", seed, outage_s=600.0, shift_s=shift_s)


# On an oven-controlled oscillator (the operator says so: drift_wander_floor_ppm 0.002, which is
# also the holdover's wander until it has measured one) the holdover carries the time across 10
# minutes to about a microsecond: the threshold is about 7 us, and 20 us is caught. (On the Pi's
# crystal the same 10 minutes hold only 180 us: its own walk is ~22 us 1-sigma.)
OCXO = Detect(drift_wander_floor_ppm=0.002)


@pytest.mark.parametrize("seed,shift_s", [(11, 20.5e-6), (12, -20.5e-6), (13, 20.5e-6),
                                          (14, -20.5e-6)])
def test_on_an_ocxo_time_moved_by_20_us_during_a_10_min_silence_caught_within_10_s(
        seed: int, shift_s: float) -> None:
    v = _check("gnss_outage_shift", seed, OCXO, outage_s=600.0, shift_s=shift_s,
               oscillator="ocxo")
    step = next(e for e in v.events if e.code == "time.step" and e.type == "alert")
    assert step.sources == (PPS_ID,) and step.evidence["step_s"] * shift_s > 0
    assert step.evidence["threshold_s"] < 10e-6, step.evidence


@pytest.mark.parametrize("seed,outage_s,shift_s", [(15, 600.0, 0.0), (16, 600.0, 0.0),
                                                   (17, 600.0, 5e-6), (18, 300.0, -3e-6),
                                                   (19, 60.0, 0.0)])
def test_on_an_ocxo_a_silence_with_time_unmoved_or_below_the_threshold_accuses_no_time(
        seed: int, outage_s: float, shift_s: float) -> None:
    st = build("gnss_outage_shift", seed, outage_s=outage_s, shift_s=shift_s, oscillator="ocxo")
    alerts = [e for e in replay_events(st, OCXO) if e.type == "alert"]
    assert not [e for e in alerts if e.code in ("time.step", "time.drift",
                                                "source.falseticker")], alerts
    assert {e.code for e in alerts} >= {"gnss.no_fix", "pps.missing"}


@pytest.mark.parametrize("seed,outage_s,shift_s", [
    (11, 30.0, 0.0), (12, 120.0, 0.0), (13, 600.0, 0.0), (14, 600.0, 0.0), (15, 30.0, 3e-6),
    (16, 100.0, -3e-6), (17, 600.0, 20e-6), (18, 300.0, -20e-6)])
def test_a_silence_with_time_unmoved_or_below_the_threshold_accuses_no_time(
        seed: int, outage_s: float, shift_s: float) -> None:
    # Only the jamming itself is reported (gnss.no_fix, pps.missing, ...): after the silence the
    # phase line restarts, and no time code names anyone (they once did after every silence
    # longer than a minute: the line extrapolated its 32-s slope across it).
    st = build("gnss_outage_shift", seed, outage_s=outage_s, shift_s=shift_s)
    events = replay_events(st)
    alerts = [e for e in events if e.type == "alert"]
    assert not [e for e in alerts if e.code in ("time.step", "time.drift",
                                                "source.falseticker")], alerts
    assert {e.code for e in alerts} >= {"gnss.no_fix", "pps.missing"}
