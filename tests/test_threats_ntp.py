"""The threat battery, NTP and host half (docs/threats.md scenarios 1-4 and 16-20).

Each case simulates a scenario with the noise of docs/threats.md, replays it through a fresh engine and
judges the events against the scenario's ground truth (`sim.judge`): the attack detected within
its target, the culprits named, nobody else accused. Seeds vary, and attack sizes sit just above
the targets' thresholds, so the engine is not tuned to one trace. The legitimate faults of
"Must not alarm" raise nothing but what they call for.
"""

from __future__ import annotations

import pytest

from timewatch.engine import Engine
from timewatch.engine.leapsec import format_list, parse
from timewatch.records import Event, Sample
from timewatch.sim.judge import judge, replay_events
from timewatch.sim.scenarios import DEADLINE_SLACK_S, build

SEEDS = [1, 2, 3]
# 2017-01-01 (the last real leap second) with the dates around it; the list published in 2016,
# expiring 2017-06-28 like the IERS list of Bulletin C 52.
LEAPS_2017 = [(63_072_000, 10), (1_435_708_800, 36), (1_483_228_800, 37)]
LIST_2016 = parse(format_list(LEAPS_2017, 1_467_331_200, 1_498_608_000))
# A list valid for the simulated 2025 traces: no leap after 2017 (as the real one says).
LIST_2025 = parse(format_list(LEAPS_2017, 1_751_328_000, 1_782_604_800))


def _check(name: str, seed: int, leap_list: object = None, **params: object) -> None:
    st = build(name, seed, **params)
    v = judge(st, leap_list=leap_list)
    assert v.detected, v.describe()
    assert not v.false_alerts, v.describe()


# -- every NTP/host scenario with its default (seeded) attack size -------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["ntp_liar", "ntp_drift", "ntp_mitm_delay", "ntp_leap",
                                  "host_step", "ntp_group_majority", "ntp_spoofed_replies",
                                  "ntp_kiss", "ntp_no_majority"])
def test_scenario_detected_in_time_culprits_named_nobody_else_accused(name: str,
                                                                      seed: int) -> None:
    _check(name, seed, leap_list=LIST_2025)


# -- attack sizes just above the thresholds; noise-level and just-below sizes never alarm ----------
def _quiet(name: str, seed: int, **params: object) -> None:
    """The attack (below what the table promises) raises no alert at all."""
    v = judge(build(name, seed, **params))
    assert not [e for e in v.events if e.type == "alert"], v.describe()


@pytest.mark.parametrize("seed,offset_s", [(11, 0.0155), (12, -0.0155), (13, 0.016), (14, -0.016),
                                           (15, 0.0155)])
def test_liar_just_above_15_ms_named_within_3_polls(seed: int, offset_s: float) -> None:
    _check("ntp_liar", seed, offset_s=offset_s)


@pytest.mark.parametrize("seed,offset_s", [(11, 0.005), (12, -0.005), (13, 0.003)])
def test_liar_of_a_few_ms_like_a_route_change_never_alarms(seed: int, offset_s: float) -> None:
    _quiet("ntp_liar", seed, offset_s=offset_s)


@pytest.mark.parametrize("seed,rate_ppm", [(11, 15.5), (12, -15.5), (13, 16.0), (14, -16.0),
                                           (15, 15.5)])
def test_drift_just_above_15_ppm_before_three_bounds_at_most_10_min(seed: int,
                                                                   rate_ppm: float) -> None:
    st = build("ntp_drift", seed, rate_ppm=rate_ppm)
    assert st.truth.target_s is not None and st.truth.target_s < 600.0 + 2 * DEADLINE_SLACK_S
    _check("ntp_drift", seed, rate_ppm=rate_ppm)


@pytest.mark.parametrize("seed,rate_ppm", [(11, 0.5), (12, -0.5), (13, 0.3)])
def test_drift_at_the_disciplined_clocks_rate_never_alarms(seed: int, rate_ppm: float) -> None:
    _quiet("ntp_drift", seed, rate_ppm=rate_ppm)


@pytest.mark.parametrize("seed,leg", [(11, "request"), (12, "request"), (12, "reply"),
                                      (13, "reply"), (14, "request")])
def test_mitm_delay_just_above_5_ms_either_leg_within_3_polls(seed: int, leg: str) -> None:
    _check("ntp_mitm_delay", seed, delay_s=0.0052, leg=leg)


@pytest.mark.parametrize("seed", [5, 15])
def test_mitm_delay_with_a_spike_on_the_other_leg_still_within_3_polls(seed: int) -> None:
    # Seed 5 at 5 ms: the third exchange had 0.6 ms more delay on the reply leg, which put its
    # offset 1.07 ms off half the delay increase (tolerance 0.93 ms): the streak restarted and
    # the attack was named after 6 polls. A spike on top of the attack widens the tolerance by
    # itself.
    _check("ntp_mitm_delay", seed, delay_s=0.005)


def test_mitm_delay_with_a_large_spike_on_the_other_leg_still_within_3_polls() -> None:
    # Seed 23 (27 ms on the replies): the third exchange carried 37 ms more on the request leg.
    # Far above the attack's delay, its offset still fitted the tolerance widened by the excess,
    # on the other side: taken for the attack's direction, it made the first two spikes and the
    # attack was named only after 5 polls. More delay than the attack's by more than the
    # streak's spread, on the other leg, is a spike on top of it.
    _check("ntp_mitm_delay", 23)


@pytest.mark.parametrize("seed,delay_s", [(1, 0.006), (2, 0.008), (3, 0.006)])
def test_mitm_after_a_small_probe_still_within_3_polls(seed: int, delay_s: float) -> None:
    # A patient attacker delays the first exchange by 3 ms, then by 6-8 ms for good: the
    # probe's 3 ms was the smallest increase of the streak, the level the rest had to agree
    # with, and the attack was never named. The level is the increase most of the streak agrees
    # with.
    _check("ntp_mitm_delay", seed, delay_s=delay_s, probe_s=0.003)


@pytest.mark.parametrize("seed,leg", [(11, "request"), (12, "reply"), (13, "request")])
def test_mitm_delay_of_2_ms_never_alarms(seed: int, leg: str) -> None:
    _quiet("ntp_mitm_delay", seed, delay_s=0.002, leg=leg)


@pytest.mark.parametrize("seed,step_s,gnss", [(11, 0.105, True), (12, -0.105, True),
                                               (13, 1.9, True), (14, -1.9, True),
                                               (15, 0.105, False), (16, -1.9, False)])
def test_host_step_just_above_100_ms_either_way(seed: int, step_s: float, gnss: bool) -> None:
    _check("host_step", seed, step_s=step_s, gnss=gnss)


# -- host steps are the host's (issue 14 item 4): GNSS, PPS and NTP running -----------------------
@pytest.mark.parametrize("step_s", [0.105, -0.105, 0.5, -0.5, 1.5, -1.5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_host_step_with_gnss_pps_and_ntp_raises_only_host_step_and_host_offset(
        seed: int, step_s: float) -> None:
    """Receiver labels, PPS edges and NTP histories are re-expressed in the new host time before
    any per-source test: nothing but the host's own alerts (gnss.label_error, pps.missing,
    ntp.bogus and falsetickers were raised before)."""
    st = build("host_step", seed, 900.0, step_s=step_s, gnss=True)
    assert {"gnss0", "pps0", "ntp-a"} <= set(st.header.sources)
    v = judge(st)
    assert v.detected and not v.false_alerts, v.describe()
    assert {e.code for e in v.events if e.type == "alert"} <= {"consensus.host_step",
                                                              "consensus.host_offset"}


@pytest.mark.parametrize("seed,follower,step_s", [(1, "ntp-a", 0.5), (2, "ntp-c", -0.105),
                                                  (3, "ntp-d", 1.5), (4, "gnss0", 0.5),
                                                  (5, "gnss0", -1.5)])
def test_a_source_stepping_with_the_host_clock_is_still_named(seed: int, follower: str,
                                                              step_s: float) -> None:
    """A source whose time moves with the host's (it hid the step from a detector that trusted
    the sources) appears to step once the step is re-expressed: named within its target."""
    v = judge(build("host_step", seed, 900.0, step_s=step_s, follower=follower))
    assert v.ok, v.describe()
    assert any(e.code == "consensus.host_step" for e in v.events)


@pytest.mark.parametrize("seed,follower,step_s", [(1, "ntp-b", 0.5), (2, "ntp-e", -0.105),
                                                  (3, "gnss0", 0.5), (4, "gnss0", -1.5)])
def test_a_source_stepping_by_a_host_step_alone_is_named_and_no_host_step(
        seed: int, follower: str, step_s: float) -> None:
    """The host step is read from the host's two clocks (realtime against the raw oscillator),
    never from the sources: one source moving by a host step's size is that source's step."""
    v = judge(build("host_step", seed, 900.0, step_s=step_s, follower=follower, host=False))
    assert v.ok, v.describe()
    assert not any(e.code.startswith("consensus.") for e in v.events)


@pytest.mark.parametrize("seed", [11, 12])
def test_group_majority_liars_just_above_15_ms(seed: int) -> None:
    _check("ntp_group_majority", seed, offset_s=0.0155)


@pytest.mark.parametrize("seed", [4, 5, 6, 7, 8, 9, 10])
def test_group_majority_every_liar_named_within_3_polls(seed: int) -> None:
    # Seed 6 (-25 ms): ntp-x1 (bound 5 ms) sits at the edge of the honest servers' 21-ms bounds;
    # the vote calls it falseticker on one poll and truechimer on the next, so its falseticker
    # streak never reaches 3. Its step (pending on its first lying sample) is confirmed on the
    # falseticker sample: it was never named before.
    _check("ntp_group_majority", seed, leap_list=LIST_2025)


@pytest.mark.parametrize("seed", [134, 159, 177])
def test_group_majority_a_liars_jump_is_named_a_step_not_a_drift(seed: int) -> None:
    # A 38-64 ms jump on a source whose drift CUSUMs sat near h/2 pushed them over h on the
    # jump itself: the liar was named `time.drift` "+200 ppm" (not a detection code of a step)
    # before the next sample could confirm the step.
    v = judge(build("ntp_group_majority", seed))
    assert v.ok, v.describe()
    assert not [e for e in v.events if e.code == "time.drift"], v.describe()


def test_host_step_raised_when_the_next_record_confirms_it() -> None:
    """The first record after the step is held; the next one taken after it shows the same
    step: both are taken, the step first (its alert at the first record's time)."""
    st = build("host_step", 21, step_s=0.3)
    eng = Engine(st.header)
    prev = None
    held = None
    for i, o in enumerate(st.observations):
        level = o.rx_ns - (o.raw_ns or 0)
        stepped = prev is not None and abs(level - prev) > 100_000_000
        events = [r for r in eng.feed(o) if isinstance(r, Event) and r.type == "alert"]
        if held is not None and o.raw_ns is not None and o.raw_ns > (held.raw_ns or 0):
            assert [e.code for e in events][:1] == ["consensus.host_step"], i
            ev = events[0].evidence
            assert abs(ev["step_s"] - 0.3) < 0.001 and ev["after_rx_ns"] == held.rx_ns
            assert eng.ctx.host_steps[0][0] == held.rx_ns
            return
        if stepped and held is None:
            held = o
        if o.raw_ns is not None:
            prev = level
        assert not events, i
    pytest.fail("no step in the trace")


# -- leap seconds: the IERS list decides, else the other groups ----------------------------------
def test_unscheduled_leap_is_critical_at_once_with_a_valid_list() -> None:
    st = build("ntp_leap", 5)
    ev = [e for e in replay_events(st, leap_list=LIST_2025) if e.code == "ntp.leap_anomaly"]
    assert ev and ev[0].severity == "critical" and ev[0].evidence["list_valid"] is True
    v = judge(st, leap_list=LIST_2025)
    assert v.ok and v.time_to_detect_s is not None
    assert v.time_to_detect_s <= st.header.sources[st.truth.culprits[0]].poll_s + 2  # type: ignore[operator]


def test_minority_leap_is_a_warning_without_a_valid_list() -> None:
    st = build("ntp_leap", 5)
    expired = parse(format_list(LEAPS_2017, 1_467_331_200, 1_498_608_000))  # expired in 2017
    for lst in (None, expired):
        ev = [e for e in replay_events(st, leap_list=lst) if e.code == "ntp.leap_anomaly"]
        assert ev and ev[0].severity == "warning", lst
        assert ev[0].evidence["list_valid"] is False
        assert judge(st, leap_list=lst).ok


def test_tampered_list_is_not_trusted() -> None:
    text = format_list(LEAPS_2017, 1_751_328_000, 1_782_604_800).replace("\t37", "\t38")
    lst = parse(text)
    assert not lst.hash_ok and not lst.valid_at(1_764_158_400 * 10**9)


@pytest.mark.parametrize("leap_list", [LIST_2016, None], ids=["iers_list", "no_list"])
def test_real_leap_second_announced_at_different_times_raises_nothing(leap_list: object) -> None:
    st = build("ntp_real_leap", 3)
    v = judge(st, leap_list=leap_list)
    assert not [e for e in v.events if e.type == "alert"], v.describe()


# -- legitimate faults and clean operation -------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_hour_raises_nothing(seed: int) -> None:
    v = judge(build("clean", seed), leap_list=LIST_2025)
    assert not [e for e in v.events if e.type == "alert"], v.describe()


@pytest.mark.parametrize("seed", [1, 2])
def test_server_silent_ten_minutes_only_stale_for_it(seed: int) -> None:
    st = build("ntp_server_silent", seed)
    v = judge(st)
    alerts = [e for e in v.events if e.type == "alert"]
    assert [(e.code, e.sources) for e in alerts] == [("source.stale", st.truth.culprits)]
    assert v.ok


@pytest.mark.parametrize("seed", [1, 2])
def test_ten_fold_delay_spikes_raise_nothing(seed: int) -> None:
    v = judge(build("ntp_delay_spikes", seed))
    assert not [e for e in v.events if e.type == "alert"], v.describe()


def test_kiss_is_ntp_kiss_never_a_falseticker() -> None:
    st = build("ntp_kiss", 6)
    v = judge(st)
    assert v.ok, v.describe()
    codes = {e.code for e in v.events if e.type == "alert"}
    assert "ntp.kiss" in codes and "source.falseticker" not in codes


def test_spoofed_replies_are_rejected_counted_and_never_used() -> None:
    st = build("ntp_spoofed_replies", 7)
    victim = st.truth.culprits[0]
    eng = Engine(st.header)
    samples: list[Sample] = []
    for o in st.observations:
        samples.extend(r for r in eng.feed(o) if isinstance(r, Sample) and r.src == victim)
    assert eng.ctx.counters.get("ntp.bogus", 0) >= 10
    assert samples and all(abs(s.offset_s) < 1.0 for s in samples)  # spoofs were >= 5 s off
    assert judge(st).ok


# -- a CI-sized run: half a day with the legitimate faults (bench_threats runs the 7 days) ----------------------------------
@pytest.mark.slow
def test_clean_half_day_with_legitimate_faults_only_what_they_call_for() -> None:
    st = build("clean_week", 9, 43_200.0)
    v = judge(st, leap_list=LIST_2025)
    assert v.ok, v.describe()


# -- the drift test skips spiked exchanges (their offset is off by half the spike) ----------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spikes_on_a_quarter_of_exchanges_never_move_a_source(seed: int) -> None:
    # (Three 10x spikes in a row on one leg, all the same size, look like a delay attack:
    # ntp.delay_anomaly may say so; nobody is called a mover or a falseticker.)
    v = judge(build("ntp_delay_spikes", seed, spike_probability=0.25))
    moved = [e for e in v.events if e.type == "alert" and e.code != "ntp.delay_anomaly"]
    assert not moved, v.describe()


@pytest.mark.parametrize("seed", [11, 12])
def test_delays_alternating_between_the_legs_are_no_delay_attack(seed: int) -> None:
    # Each exchange alone has the signature (delay up 8 ms, offset moved by half of it), but
    # the offset moves the other way every poll: congestion, not a man in the middle.
    events = replay_events(build("ntp_mitm_delay", seed, delay_s=0.008, leg="alternate"))
    assert not [e for e in events if e.code == "ntp.delay_anomaly"], events


@pytest.mark.parametrize("seed,step_s", [(21, 0.15), (22, -0.15)])
def test_host_left_150_ms_off_raises_host_offset(seed: int, step_s: float) -> None:
    events = replay_events(build("host_step", seed, step_s=step_s))
    off = [e for e in events if e.code == "consensus.host_offset" and e.type == "alert"]
    assert off and off[0].sources == (), events
    assert abs(off[0].evidence["host_offset_s"] - step_s) < 0.01


@pytest.mark.parametrize("seed", [13, 14])
def test_drift_on_a_busy_network_named_and_no_spike_taken_for_a_drift(seed: int) -> None:
    # 15% of exchanges spiked (5-10x the base delay): their offsets are off by half the spike,
    # so the drift tests skip them (the spike gate); the 15.5 ppm drift is still named in time.
    v = judge(build("ntp_drift", seed, rate_ppm=15.5, spike_probability=0.15))
    assert v.detected, v.describe()
    assert not [e for e in v.false_alerts if e.code != "ntp.delay_anomaly"], v.describe()


# -- 28: one trust group of four servers lying together inside their bounds -----------------------
# With the GNSS receiver and its PPS: the group's intersection (narrow when one of its servers is
# close) may tie with the PPS's region; the holdover's prediction decides, so the honest PPS is
# never named (it once was, at +6 ms on seeds 5 and 6).
def _never_another_group(seed: int, **params: object) -> list[Event]:
    st = build("ntp_group_lie_inside", seed, **params)
    v = judge(st)
    assert not v.false_alerts, v.describe()
    liars = {"ntp-x1", "ntp-x2", "ntp-x3", "ntp-x4"}
    named = {s for e in v.events if e.type == "alert" for s in e.sources}
    assert named <= liars, v.describe()
    return v.events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_group_lying_inside_its_bounds_never_accuses_another_group(seed: int) -> None:
    _never_another_group(seed)


@pytest.mark.parametrize("seed,offset_s", [(5, 0.006), (6, 0.006), (5, -0.006), (7, 0.0065),
                                           (8, -0.008), (9, 0.010), (4, -0.010)])
def test_group_lying_6_to_10_ms_never_names_the_pps_or_another_group(seed: int,
                                                                    offset_s: float) -> None:
    _never_another_group(seed, offset_s=offset_s)


@pytest.mark.parametrize("seed,offset_s", [(5, 0.001), (6, -0.001)])
def test_group_off_by_a_route_change_raises_nothing(seed: int, offset_s: float) -> None:
    _quiet("ntp_group_lie_inside", seed, offset_s=offset_s)


# NTP only (the six servers, no receiver): the holdover learns from the consensus the lying
# group's intersection pulls, and the others' reference changes groups as groups come under test
# and leave it. Seed 5 at +6 ms named honest ntp-d `time.drift` (its consensus residual jumped
# twice as op-x joined the reference and op-e left it, two block increments against an honest
# server); seed 49 (its drawn size) named ntp-e the same way.
@pytest.mark.parametrize("seed,offset_s", [(5, 0.006), (5, -0.006), (6, 0.006), (7, 0.0065),
                                           (8, -0.008), (9, 0.010), (4, -0.010), (49, None)])
def test_ntp_only_group_lying_inside_never_accuses_another_group(seed: int,
                                                                 offset_s: float | None) -> None:
    _never_another_group(seed, offset_s=offset_s, gnss=False)


@pytest.mark.parametrize("seed,offset_s", [(5, 0.001), (6, -0.001)])
def test_ntp_only_group_off_by_a_route_change_raises_nothing(seed: int, offset_s: float) -> None:
    _quiet("ntp_group_lie_inside", seed, offset_s=offset_s, gnss=False)
