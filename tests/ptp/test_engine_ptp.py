"""engine/ptp.py on synthetic `ptp` records (sim/ptpgen.py) next to the simulated NTP servers:
every PTP detector just above its threshold alarms, and at noise level never does.

Traces are the simulator's deployment (five NTP servers of four operators) plus `ptp0` polled
every second; attacks start after 300 s. `events(...)` replays one through a fresh engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.test_threats_ntp import LIST_2016, LIST_2025
from timewatch.engine import Engine
from timewatch.engine.params import Detect
from timewatch.ptpmgmt import Ptp
from timewatch.records import Event, Snapshot
from timewatch.sim.judge import judge, replay_events
from timewatch.sim.ptpgen import PtpGm
from timewatch.sim.ptpscen import GM_ID, PTP_ID, ROGUE_ID, add_ptp
from timewatch.sim.scenarios import LEAP_2016_T0_NS, NS, Sim, SimTrace, Truth, build

DURATION_S = 600.0
ATTACK_S = 300.0


def sim_trace(gm_at: Callable[[int, int], PtpGm | None], *, seed: int = 1,
              duration_s: float = DURATION_S, t0_ns: int | None = None,
              attack_s: float = ATTACK_S, **ptp: Any) -> tuple[SimTrace, int]:
    """A trace whose ptp0 follows `gm_at(true_ns, attack_ns)`; returns it and the attack's
    start (`attack_s` into the run) in trace time."""
    sim = Sim("ptp_test", seed, duration_s, **({"t0_ns": t0_ns} if t0_ns else {}))
    ta = sim.t0_ns + int(attack_s * NS)
    answers = ptp.pop("answers", None)  # (true_ns, attack_ns) -> ptp4l answers
    if answers is not None:
        ptp["answers"] = lambda t: answers(t, ta)
    add_ptp(sim, lambda t: gm_at(t, ta), **ptp)
    return sim.build(Truth("ptp_test", seed)), sim.trace_ns(ta)


def alerts(ev: list[Event], code: str | None = None) -> list[Event]:
    return [e for e in ev if e.type == "alert" and (code is None or e.code == code)]


def snapshots(st: SimTrace, leap_list: Any = None) -> list[Snapshot]:
    eng = Engine(st.header, Detect(snapshot_interval_s=1.0), leap_list=leap_list)
    out = []
    for o in st.observations:
        out.extend(r for r in eng.feed(o) if isinstance(r, Snapshot))
    return out


def status(snaps: list[Snapshot], after_ns: int) -> list[tuple[int, str, str]]:
    return [(s.t_ns, st.verdict, st.reason) for s in snaps if s.t_ns >= after_ns
            for st in s.sources if st.src == PTP_ID]


HONEST = PtpGm(GM_ID)


# -- the noise floor -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clean_run_raises_nothing_and_ptp_is_a_truechimer(seed: int) -> None:
    st, _ = sim_trace(lambda t, ta: HONEST, seed=seed, duration_s=900.0)
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []
    verdicts = {v for _, v, _ in status(snapshots(st, LIST_2025), st.header.created_ns
                                        + 200 * NS)}
    assert verdicts == {"truechimer"}


def test_noisy_software_stamps_raise_nothing() -> None:
    # 10 us of jitter per stamp: a loaded host. No step, no delay attack, no drift.
    st, _ = sim_trace(lambda t, ta: HONEST, jitter_s=10e-6, duration_s=900.0, seed=4)
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []


# -- ptp.gm_changed ----------------------------------------------------------------------------
def _switch(rogue: PtpGm) -> Callable[[int, int], PtpGm | None]:
    return lambda t, ta: rogue if t >= ta else HONEST


def test_a_grandmaster_not_in_the_allow_list_is_critical_naming_old_and_new() -> None:
    st, ta = sim_trace(_switch(PtpGm(ROGUE_ID, priority1=0, clock_class=6)))
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    gm = [e for e in ev if e.code == "ptp.gm_changed"]
    assert len(gm) == 1 and gm[0].severity == "critical" and gm[0].sources == (PTP_ID,)
    assert ta <= gm[0].t_ns <= ta + 2 * NS
    assert gm[0].evidence["old_identity"] == GM_ID
    assert gm[0].evidence["new_identity"] == ROGUE_ID
    assert gm[0].evidence["priority1"] == 0 and gm[0].evidence["clock_class"] == 6
    assert gm[0].evidence["old_priority1"] == 128
    assert {e.code for e in ev} == {"ptp.gm_changed"}


def test_a_change_to_an_allowed_grandmaster_is_a_warning() -> None:
    st, _ = sim_trace(_switch(PtpGm(ROGUE_ID)), grandmasters=(GM_ID, ROGUE_ID))
    gm = alerts(replay_events(st, leap_list=LIST_2025), "ptp.gm_changed")
    assert [e.severity for e in gm] == ["warning"]


def test_without_an_allow_list_a_change_is_a_warning() -> None:
    st, _ = sim_trace(_switch(PtpGm(ROGUE_ID)), grandmasters=None)
    gm = alerts(replay_events(st, leap_list=LIST_2025), "ptp.gm_changed")
    assert [e.severity for e in gm] == ["warning"]


def test_a_first_grandmaster_outside_the_allow_list_is_critical_at_once() -> None:
    st, _ = sim_trace(lambda t, ta: PtpGm(ROGUE_ID))
    gm = alerts(replay_events(st, leap_list=LIST_2025), "ptp.gm_changed")
    assert len(gm) == 1 and gm[0].severity == "critical"
    assert gm[0].evidence["old_identity"] is None and gm[0].evidence["new_identity"] == ROGUE_ID
    assert gm[0].t_ns < st.header.created_ns + 3 * NS


def test_the_same_grandmaster_after_ptp4l_restarts_is_no_change() -> None:
    # ptp4l dead for 10 s, then 5 s without a master, then the same grandmaster again.
    def gm_at(t: int, ta: int) -> PtpGm | None:
        return None if ta + 10 * NS <= t < ta + 15 * NS else HONEST

    st, ta = sim_trace(gm_at, answers=lambda t, ta: not ta <= t < ta + 10 * NS)
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    assert [(e.code, e.sources) for e in ev] == [("source.stale", (PTP_ID,))]
    assert ta < ev[0].t_ns < ta + 6 * NS


def test_the_source_is_withheld_after_a_change_until_it_agrees_again() -> None:
    st, ta = sim_trace(_switch(PtpGm(ROGUE_ID)), grandmasters=None)
    s = status(snapshots(st, LIST_2025), ta)
    withheld = [(t, r) for t, v, r in s if v == "unusable"]
    assert withheld and withheld[0][1].startswith("withheld: grandmaster changed to " + ROGUE_ID)
    # An honest new grandmaster agrees with the NTP consensus: back after ptp_rejoin_agree.
    back = [t for t, v, _ in s if v == "truechimer" and t > withheld[-1][0]]
    assert back and back[0] - withheld[0][0] <= 10 * NS


def test_a_lying_new_grandmaster_stays_withheld_and_never_drags_the_consensus() -> None:
    st, ta = sim_trace(_switch(PtpGm(ROGUE_ID, priority1=0, lie_s=lambda t: 0.2)))
    snaps = snapshots(st, LIST_2025)
    s = status(snaps, ta + 2 * NS)
    assert s and all(v == "unusable" and "withheld" in r for _, v, r in s)
    assert all(abs(x.consensus_offset_s or 0) < 0.05 for x in snaps if x.t_ns > ta)
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    assert {e.code for e in ev} == {"ptp.gm_changed"}


# -- time.step ---------------------------------------------------------------------------------
def _lie(size_s: float) -> Callable[[int, int], PtpGm | None]:
    return lambda t, ta: PtpGm(GM_ID, lie_s=lambda u: size_s if u >= ta else 0.0)


@pytest.mark.parametrize("size_s", [55e-6, -55e-6, 1e-3])
def test_a_step_just_above_ptp_step_s_is_time_step(size_s: float) -> None:
    st, ta = sim_trace(_lie(size_s))
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    steps = [e for e in ev if e.code == "time.step"]
    assert len(steps) == 1 and steps[0].sources == (PTP_ID,)
    assert ta <= steps[0].t_ns <= ta + 10 * NS
    assert steps[0].evidence["step_s"] == pytest.approx(size_s, abs=5e-6)
    assert {e.code for e in ev} <= {"time.step", "source.falseticker"}


def test_a_late_stamp_among_the_confirming_samples_does_not_move_the_step_size() -> None:
    """The step's size is the median of the samples that confirmed it: the last of them read
    200 us late (one software stamp on a loaded host) leaves it at 1 ms."""
    st, ta = sim_trace(_lie(1e-3))
    clean = [e for e in alerts(replay_events(st, leap_list=LIST_2025)) if e.code == "time.step"]
    t_confirm = clean[0].t_ns

    def late_last(t: int, ta: int) -> PtpGm:
        return PtpGm(GM_ID, lie_s=lambda u: 0.0 if u < ta else 1e-3 + (
            200e-6 if abs(u - t_confirm) < NS // 2 else 0.0))

    st2, ta2 = sim_trace(late_last)
    assert ta2 == ta
    ev = alerts(replay_events(st2, leap_list=LIST_2025))
    steps = [e for e in ev if e.code == "time.step"]
    assert len(steps) == 1 and steps[0].t_ns == t_confirm and steps[0].sources == (PTP_ID,)
    assert steps[0].evidence["offset_s"] - clean[0].evidence["offset_s"] == pytest.approx(
        200e-6, abs=20e-6)  # the last sample did read late
    assert steps[0].evidence["step_s"] == pytest.approx(1e-3, abs=5e-6)


@pytest.mark.parametrize("rate", [1e-6, -1e-6])
def test_a_slow_push_of_1_us_per_s_is_time_drift_within_ten_minutes(rate: float) -> None:
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, lie_s=lambda u: rate * (u - ta) / NS
                                           if u >= ta else 0.0), duration_s=ATTACK_S + 900)
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    drift = [e for e in ev if e.code == "time.drift"]
    assert drift and drift[0].sources == (PTP_ID,) and drift[0].t_ns - ta <= 600 * NS
    assert {e.sources for e in ev} == {(PTP_ID,)}


@pytest.mark.parametrize(("attack_s", "rate"), [(30.0, 1e-6), (40.0, -1e-6), (60.0, 1e-6)])
def test_a_push_from_the_first_minute_is_time_drift_within_two_minutes(
        attack_s: float, rate: float) -> None:
    # The grandmaster is pushed as soon as the monitor has learned the oscillator for half a
    # minute: the holdover, taught by the PTP source itself, witnesses from the first minute
    # (a model learned only from the coarse NTP consensus allowed the push for good).
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, lie_s=lambda u: rate * (u - ta) / NS
                                           if u >= ta else 0.0), attack_s=attack_s,
                       duration_s=attack_s + 300)
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    drift = [e for e in ev if e.code == "time.drift"]
    assert drift and drift[0].sources == (PTP_ID,), ev
    assert drift[0].t_ns - ta <= 120 * NS, (drift[0].t_ns - ta) / NS
    assert {e.sources for e in ev} == {(PTP_ID,)}


@pytest.mark.parametrize(("seed", "rate"), [(1, 1e-6), (2, 1e-6), (3, -1e-6)])
def test_a_push_on_noisy_stamps_is_time_drift_within_two_minutes(seed: int, rate: float) -> None:
    # 3 us of jitter per stamp (a loaded host; the live test's CI run): one stamp per block hid
    # a 1 us/s push under its noise, the test's noise learned the push, and the holdover
    # followed it (never caught in 400 s). The block's median residual, the noise seeded from
    # the source's own history and the holdover pausing as a run builds catch it in 35-40 s.
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, lie_s=lambda u: rate * (u - ta) / NS
                                           if u >= ta else 0.0), attack_s=60.0,
                       duration_s=360.0, jitter_s=3e-6, seed=seed)
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    drift = [e for e in ev if e.code == "time.drift"]
    assert drift and drift[0].sources == (PTP_ID,), ev
    assert drift[0].t_ns - ta <= 120 * NS, (drift[0].t_ns - ta) / NS
    assert {e.sources for e in ev} == {(PTP_ID,)}


@pytest.mark.parametrize("seed", [5, 6])
def test_noisy_stamps_from_the_first_minute_raise_nothing(seed: int) -> None:
    # The same short learning with 10 us of jitter per stamp and no attack: the holdover test
    # starts from the noise the source's own history measured, not from the floor.
    st, _ = sim_trace(lambda t, ta: HONEST, jitter_s=10e-6, duration_s=600.0, seed=seed)
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []


def test_a_step_below_ptp_step_s_is_not_one() -> None:
    st, _ = sim_trace(_lie(40e-6))
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []


def test_liar_scenario_is_detected_within_ten_seconds() -> None:
    for seed in (11, 12):
        v = judge(build("ptp_liar", seed, offset_s=1e-3 if seed == 11 else -1e-3),
                  leap_list=LIST_2025)
        assert v.ok, v.describe()


# -- ptp.delay_attack ----------------------------------------------------------------------------
def _delay(sync_s: float, req_s: float) -> Callable[[int, int], PtpGm | None]:
    return lambda t, ta: PtpGm(GM_ID, extra_delay_s=lambda u: (sync_s, req_s) if u >= ta
                               else (0.0, 0.0))


@pytest.mark.parametrize("leg", ["sync", "delay_req"])
def test_one_leg_delayed_just_above_the_threshold_is_a_delay_attack(leg: str) -> None:
    d = 2 * 52e-6  # the mean path delay rises by d/2 = 52 us (threshold 50 us)
    st, ta = sim_trace(_delay(d, 0.0) if leg == "sync" else _delay(0.0, d))
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    da = [e for e in ev if e.code == "ptp.delay_attack"]
    assert len(da) == 1 and da[0].sources == (PTP_ID,) and da[0].severity == "critical"
    assert ta < da[0].t_ns <= ta + 15 * NS
    assert da[0].evidence["delay_increase_s"] == pytest.approx(d / 2, rel=0.1)
    assert da[0].evidence["offset_shift_s"] == pytest.approx(-d / 2 if leg == "sync" else d / 2,
                                                             rel=0.2)
    assert da[0].evidence["delayed_leg"].startswith("Sync" if leg == "sync" else "Delay_Req")


def test_both_legs_slower_is_a_longer_path_not_an_attack() -> None:
    st, _ = sim_trace(_delay(300e-6, 300e-6))
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []


def test_a_delay_below_the_threshold_is_not_an_attack() -> None:
    st, _ = sim_trace(_delay(2 * 45e-6, 0.0))
    assert alerts(replay_events(st, leap_list=LIST_2025), "ptp.delay_attack") == []


# -- ptp.announce_mismatch -------------------------------------------------------------------------
@pytest.mark.parametrize("utc", [36, 38])
def test_a_wrong_utc_offset_is_critical_at_once_with_the_iers_list(utc: int) -> None:
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, utc_offset=utc, lie_s=lambda u: 37.0 - utc)
                       if t >= ta else HONEST)
    ev = alerts(replay_events(st, leap_list=LIST_2025))
    am = [e for e in ev if e.code == "ptp.announce_mismatch"]
    assert len(am) == 1 and am[0].severity == "critical" and am[0].t_ns <= ta + 2 * NS
    assert am[0].evidence["aspect"] == "utc_offset"
    assert am[0].evidence["utc_offset"] == utc and am[0].evidence["list_utc_offset"] == 37
    # Its time is a second off too: the vote says so.
    assert {e.code for e in ev} <= {"ptp.announce_mismatch", "source.falseticker", "time.step"}


def test_without_a_list_a_utc_offset_changed_outside_a_leap_is_critical_at_once() -> None:
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, utc_offset=38, lie_s=lambda u: -1.0)
                       if t >= ta else HONEST)
    am = alerts(replay_events(st, leap_list=None), "ptp.announce_mismatch")
    assert len(am) == 1 and am[0].severity == "critical" and am[0].t_ns <= ta + 2 * NS
    assert am[0].evidence["previous_utc_offset"] == 37 and am[0].evidence["utc_offset"] == 38


def test_an_expired_list_still_knows_the_offset_cannot_be_lower() -> None:
    expired = LIST_2016  # expired in 2017: the simulated 2025 is past it
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, utc_offset=36, lie_s=lambda u: 1.0)
                       if t >= ta else HONEST)
    am = alerts(replay_events(st, leap_list=expired), "ptp.announce_mismatch")
    assert len(am) == 1 and am[0].severity == "critical"
    assert am[0].evidence["list_utc_offset"] == 37 and am[0].evidence["list_valid"] is False


def test_without_a_list_the_real_leap_changing_the_offset_is_no_mismatch() -> None:
    # 2016-12-31: 36 s until the leap at 2017-01-01T00:00:00Z, 37 s after it.
    leap_ns = 1_483_228_800 * NS
    st, _ = sim_trace(lambda t, ta: PtpGm(GM_ID, utc_offset=37 if t >= leap_ns else 36,
                                          leap61=ta <= t < leap_ns),
                      t0_ns=LEAP_2016_T0_NS, duration_s=8000.0)
    am = alerts(replay_events(st, leap_list=None), "ptp.announce_mismatch")
    # (The leap flag itself is a warning here: the simulated NTP servers do not announce it.)
    assert [e.evidence["aspect"] for e in am] == ["leap"]


def test_the_right_utc_offset_and_an_invalid_one_say_nothing() -> None:
    st, _ = sim_trace(lambda t, ta: PtpGm(GM_ID, utc_offset=30, utc_offset_valid=False)
                      if t >= ta else HONEST)
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []


def test_a_leap_flag_the_list_does_not_schedule_is_critical() -> None:
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, leap61=True) if t >= ta else HONEST)
    am = alerts(replay_events(st, leap_list=LIST_2025), "ptp.announce_mismatch")
    assert len(am) == 1 and am[0].severity == "critical" and am[0].t_ns <= ta + 2 * NS
    assert am[0].evidence["aspect"] == "leap" and am[0].evidence["leap61"] is True


def test_the_real_leap_of_2016_announced_is_no_mismatch() -> None:
    # Before the leap TAI - UTC was 36 s.
    st, _ = sim_trace(lambda t, ta: PtpGm(GM_ID, utc_offset=36, leap61=t >= ta),
                      t0_ns=LEAP_2016_T0_NS)
    assert alerts(replay_events(st, leap_list=LIST_2016), "ptp.announce_mismatch") == []


def test_a_leap_flag_without_a_list_is_judged_against_the_ntp_groups() -> None:
    st, _ = sim_trace(lambda t, ta: PtpGm(GM_ID, leap59=True) if t >= ta else HONEST)
    am = alerts(replay_events(st, leap_list=None), "ptp.announce_mismatch")
    assert len(am) == 1 and am[0].severity == "warning"
    assert am[0].evidence["list_valid"] is False and am[0].evidence["groups_announcing"] == []


@pytest.mark.parametrize("cc", [52, 187, 248])
def test_a_degraded_clock_class_still_selected_is_a_warning(cc: int) -> None:
    st, ta = sim_trace(lambda t, ta: PtpGm(GM_ID, clock_class=cc) if t >= ta else HONEST)
    am = alerts(replay_events(st, leap_list=LIST_2025), "ptp.announce_mismatch")
    assert len(am) == 1 and am[0].severity == "warning" and am[0].t_ns <= ta + 2 * NS
    assert am[0].evidence["aspect"] == "clock_class" and am[0].evidence["clock_class"] == cc


@pytest.mark.parametrize("cc", [6, 7, 13, 14, 135])
def test_synchronised_and_holdover_classes_say_nothing(cc: int) -> None:
    st, _ = sim_trace(lambda t, ta: PtpGm(GM_ID, clock_class=cc) if t >= ta else HONEST)
    assert alerts(replay_events(st, leap_list=LIST_2025)) == []


# -- bad input -------------------------------------------------------------------------------------
def test_errors_and_incomplete_records_are_counted_never_used() -> None:
    st, _ = sim_trace(lambda t, ta: HONEST, duration_s=60.0)
    eng = Engine(st.header, Detect(), leap_list=LIST_2025)
    for o in st.observations:
        eng.feed(o)
    t = st.observations[-1].rx_ns
    eng.feed(Ptp(PTP_ID, t + 1, "malformed", "pmc line 3: not an answer header or field"))
    eng.feed(Ptp(PTP_ID, t + 2, port_state="SLAVE", gm_present=True))  # no identities
    eng.feed(Ptp(PTP_ID, t + 3, port_state="SLAVE", gm_present=True, gm_identity=GM_ID,
                 parent_gm_identity=GM_ID))  # no offset
    tr = eng.ctx.trackers[PTP_ID]
    assert tr.counts["malformed"] == 1 and tr.counts["incomplete"] == 2
    assert eng.ctx.counters["ptp.malformed"] == 1


# -- the threat table's PTP rows (docs/threats.md 22-25) ------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", ["ptp_rogue_gm", "ptp_liar", "ptp_delay_attack",
                                  "ptp_utc_offset"])
def test_ptp_scenario_detected_in_time_culprit_named_nobody_else_accused(name: str,
                                                                         seed: int) -> None:
    v = judge(build(name, seed), leap_list=LIST_2025)
    assert v.ok, v.describe()


@pytest.mark.parametrize("seed,delay_s,leg", [(11, 104e-6, "sync"), (12, 104e-6, "delay_req")])
def test_delay_attack_scenario_just_above_the_threshold(seed: int, delay_s: float,
                                                        leg: str) -> None:
    v = judge(build("ptp_delay_attack", seed, delay_s=delay_s, leg=leg), leap_list=LIST_2025)
    assert v.ok, v.describe()


def test_utc_offset_scenario_without_a_list_is_still_caught_at_once() -> None:
    v = judge(build("ptp_utc_offset", 5, utc_offset=36), leap_list=None)
    assert v.ok, v.describe()
