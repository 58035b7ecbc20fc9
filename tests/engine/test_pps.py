"""PpsTracker on traces built here: PPS faults, steps, label disagreements, and clean runs."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest

from tests.engine import ppstrace as pt
from timewatch.engine.core import Engine
from timewatch.engine.pps import PpsTracker
from timewatch.records import Pps
from timewatch.sim.noise import NS, HostClock

PPS_CODES = {"pps.missing", "pps.interval", "pps.label_mismatch", "time.step"}


def at(i: int) -> int:
    return pt.T0_NS + i * NS


def detect_s(r: pt.Run, code: str, fault_i: int) -> float:
    """Seconds from the fault's second to the alert (trace time)."""
    return (r.first(code).t_ns - at(fault_i)) / NS


def tracker(r: pt.Run) -> PpsTracker:
    tr = r.engine.ctx.trackers["pps0"]
    assert isinstance(tr, PpsTracker)
    return tr


class WanderingHost(HostClock):
    """A crystal whose frequency also drifts 0.1 ppm per 10 minutes (issue 4), besides the
    random walk and diurnal swing of HostClock."""

    def _freq(self, m: int) -> float:
        return super()._freq(m) + 0.01 * m


def test_clean_pulses_pair_with_labels_and_give_precise_offsets() -> None:
    b = pt.build(300, seed=3)
    r = pt.run(b)
    assert r.pps_alerts() == []
    tr = tracker(r)
    assert tr.latency_ns is not None and abs(tr.latency_ns / NS - 0.110) < 0.005
    errs = [s.offset_s + b.host.realtime_error_ns(s.t_ns) / NS for s in r.samples
            if s.src == "pps0"]
    assert len(errs) > 280
    # offset = true second - realtime at the edge: off by the interrupt latency (~5 us late).
    assert abs(statistics.median(errs) + 5e-6) < 1.5e-6
    assert tr.jitter_s is not None and 1.0e-6 < tr.jitter_s < 2.5e-6
    last = [s for s in r.samples if s.src == "pps0"][-1]
    assert 1e-6 <= last.bound_s < 20e-6
    assert {"jitter_s", "missing_total", "interval_faults", "phase_s"} <= set(last.fields)


def test_missing_pulses_raise_pps_missing_only() -> None:
    gone = {at(100), at(101)}

    def cfg(sim: pt.PpsSim) -> None:
        sim.missing = lambda s: s in gone

    r = pt.run(pt.build(200, configure=cfg))
    assert set(r.codes()) == {"pps.missing"}
    assert detect_s(r, "pps.missing", 100) <= 3.0
    assert tracker(r).missing_total == 2


def test_pps_stopping_is_overdue_then_stale() -> None:
    def cfg(sim: pt.PpsSim) -> None:
        sim.missing = lambda s: s >= at(100)

    b = pt.build(120, configure=cfg)
    r = pt.run(b)
    assert detect_s(r, "pps.missing", 100) <= 2.0
    # The overdue alert (no edge came), not a sequence gap (no edge after the gap came either):
    # it says how long pps0 has been silent, and since which edge.
    ev = r.first("pps.missing")
    last_edge = max(o.rx_ns for o in b.obs if isinstance(o, Pps) and o.src == "pps0")
    silent_s = (ev.t_ns - last_edge) / NS
    limit_s = 1 + r.engine.ctx.detect.pps_overdue_s
    assert ev.message == f"pps0: no pulse for {silent_s:.1f} s", ev.message
    assert ev.evidence["last_edge_ns"] == last_edge and "missing" not in ev.evidence
    assert ev.evidence["overdue_limit_s"] == limit_s < silent_s
    assert abs(ev.evidence["silent_s"] - silent_s) < 1e-6
    assert silent_s < limit_s + 1.0  # raised at the first tick past the limit
    assert "source.stale" in r.codes()
    assert "time.step" not in r.codes() and "pps.interval" not in r.codes()


def test_doubled_pulses_raise_pps_interval_and_do_not_move_time() -> None:
    def cfg(sim: pt.PpsSim) -> None:
        sim.doubled = lambda s: 0.3 if s in (at(100), at(160)) else None

    r = pt.run(pt.build(200, configure=cfg))
    assert set(r.codes()) == {"pps.interval"}
    assert detect_s(r, "pps.interval", 100) <= 1.0
    ev = r.first("pps.interval").evidence
    assert abs(ev["interval_s"] - 0.3) < 0.01
    assert tracker(r).interval_faults == 2


def test_250ms_phase_shift_raises_interval_and_label_mismatch() -> None:
    def cfg(sim: pt.PpsSim) -> None:
        sim.shift_ns = lambda s: 250_000_000 if s >= at(100) else 0

    r = pt.run(pt.build(200, configure=cfg))
    assert detect_s(r, "pps.interval", 100) <= 3.0
    assert detect_s(r, "pps.label_mismatch", 100) <= 10.0
    lm = r.first("pps.label_mismatch").evidence
    assert abs(lm["label_latency_s"] - lm["learned_latency_s"] + 0.25) < 0.01
    # The pulses' time moved by 250 ms against the raw oscillator: that is a step too.
    assert abs(r.first("time.step").evidence["step_s"] + 0.25) < 1e-3
    assert detect_s(r, "time.step", 100) <= 5.0
    # Once caught moving, pps0 is withheld from the consensus and judged against the labels'
    # coarse time, which it now misses by 250 ms: a falseticker too, and only pps0 is named.
    assert set(r.codes()) == {"pps.interval", "pps.label_mismatch", "time.step",
                              "source.falseticker"}
    assert r.first("source.falseticker").sources == ("pps0",)


def test_20us_step_raises_time_step_within_5s() -> None:
    def cfg(sim: pt.PpsSim) -> None:
        sim.gnss_error_ns = lambda s: 20_000 if s >= at(200) else 0

    r = pt.run(pt.build(300, configure=cfg))
    assert set(r.codes()) == {"time.step"}
    assert detect_s(r, "time.step", 200) <= 5.0
    ev = r.first("time.step").evidence
    # GNSS time 20 us ahead: its pulses come 20 us early, the offset grows by 20 us.
    assert abs(ev["step_s"] - 20e-6) < 4e-6
    # Caught on the step's 3rd pulse at the earliest: the 2 before it left out as later.
    assert ev["pulses_confirming"] >= 3
    assert len([e for e in r.alerts if e.code == "time.step"]) == 1


def test_small_step_below_threshold_does_not_alarm() -> None:
    def cfg(sim: pt.PpsSim) -> None:
        sim.gnss_error_ns = lambda s: 4_000 if s >= at(200) else 0

    r = pt.run(pt.build(300, configure=cfg))
    assert r.pps_alerts() == []


def test_label_step_of_one_second_raises_label_mismatch_and_renumbers() -> None:
    r = pt.run(pt.build(300, label_error_s=lambda s: NS if s >= at(200) else 0))
    assert set(r.codes()) == {"pps.label_mismatch"}
    assert detect_s(r, "pps.label_mismatch", 200) <= 5.0
    assert r.first("pps.label_mismatch").evidence["second_diff_s"] == 1.0
    offs = {s.t_ns: s.offset_s for s in r.samples if s.src == "pps0"}
    before = [o for t, o in offs.items() if t < at(199)]
    after = [o for t, o in offs.items() if t > at(210)]
    assert abs(statistics.median(after) - statistics.median(before) - 1.0) < 1e-3


def test_interrupt_latency_outliers_never_alarm() -> None:
    b = pt.build(1800, seed=11, outlier_probability=0.01)
    r = pt.run(b)
    assert r.pps_alerts() == []
    tr = tracker(r)
    # 1% of 1800 edges are 5-30 us late; those beyond 10 us are set aside as outliers.
    assert 5 <= tr.outliers <= 40
    assert tr.steps == 0


def test_isolated_late_pulses_are_outliers_not_steps() -> None:
    # Three 30 us late pulses in five (worse than 1% noise ever gives) is still not a step.
    late = {at(100), at(102), at(104)}

    def cfg(sim: pt.PpsSim) -> None:
        sim.shift_ns = lambda s: 30_000 if s in late else 0

    r = pt.run(pt.build(200, outlier_probability=0.0, configure=cfg))
    assert r.pps_alerts() == []
    assert tracker(r).outliers == 3


def test_hour_of_clean_pulses_with_wandering_oscillator_never_alarms() -> None:
    import random
    host = WanderingHost(random.Random(5), pt.T0_NS, crystal_ppm=-73.0)
    b = pt.build(3600, seed=5, host=host)
    r = pt.run(b)
    assert r.pps_alerts() == []
    ho = r.engine.ctx.holdover
    assert ho.ready
    # The holdover follows the crystal (mean over its 10-20 min window, here the last minutes).
    truth = statistics.mean(host.freq_ppm(m) for m in range(45, 60))
    assert abs(ho.freq_ppm - truth) < 0.1
    assert ho.wander_measured and 0.03 < ho.wander_ppm < 0.3


def test_labels_sent_before_the_pulse_are_paired_with_the_next_edge() -> None:
    b = pt.build(120, label_latency_s=-0.3)
    r = pt.run(b)
    assert r.pps_alerts() == []
    tr = tracker(r)
    assert tr.latency_ns is not None and abs(tr.latency_ns / NS + 0.3) < 0.01
    errs = [s.offset_s + b.host.realtime_error_ns(s.t_ns) / NS for s in r.samples
            if s.src == "pps0"]
    assert max(abs(e) for e in errs) < 50e-6  # the right second, not one off


def test_fix_lost_for_a_minute_keeps_pps_usable_without_alarms() -> None:
    b = pt.build(300, label_valid=lambda s: not (at(100) <= s < at(160)))
    r = pt.run(b)
    assert not (set(r.codes()) & PPS_CODES)
    times = sorted(s.t_ns for s in r.samples if s.src == "pps0")
    during = [t for t in times if at(100) <= t < at(160)]
    assert len(during) >= 58  # the flywheel kept counting seconds
    assert tracker(r).unusable_reason is None


def test_without_raw_ns_the_realtime_timebase_still_works() -> None:
    r = pt.run(pt.build(300, raw=False))
    assert r.pps_alerts() == []
    assert tracker(r).jitter_s is not None


def test_replay_is_deterministic() -> None:
    def cfg(sim: pt.PpsSim) -> None:
        sim.gnss_error_ns = lambda s: 20_000 if s >= at(150) else 0
        sim.doubled = lambda s: 0.5 if s == at(100) else None

    b = pt.build(250, seed=9, configure=cfg)
    a1 = [e.to_dict() for e in pt.run(b).events]
    a2 = [e.to_dict() for e in pt.run(b, Engine(b.header)).events]
    assert a1 == a2 and a1


# Interrupt latencies (10 ns units) of the 180 pulses from 63400 s into the simulated day of
# `simulate --scenario gnss_clean --seed 1` (recovered from its trace and host clock). Pulses
# 134-147 mostly come 1-4 us late (and 136 is a 29 us outlier), then 151, 152, 154 and 155
# come 2.3-3.4 us early: against a 32-pulse phase line (extrapolated ~20 s past its centre,
# whose end the late pulses pulled down) those four honest pulses sat 4.7-5.3 us off, and a
# false `time.step` was raised at 63555 s (pulse 155).
CLEAN_DAY_LATENCY_10NS = (
    301, 638, 574, 626, 447, 612, 672, 646, 795, 325, 466, 623, 541, 455, 319, 298, 574, 734,
    549, 563, 288, 697, 249, 571, 335, 389, 2250, 788, 673, 526, 690, 405, 455, 524, 746, 353,
    327, 725, 431, 445, 725, 351, 543, 521, 572, 474, 784, 576, 197, 730, 455, 522, 353, 466,
    492, 577, 508, 437, 659, 445, 364, 301, 396, 533, 620, 673, 539, 317, 745, 322, 357, 448,
    676, 676, 724, 269, 550, 555, 601, 314, 516, 566, 698, 700, 638, 684, 480, 244, 303, 148,
    517, 769, 285, 693, 740, 242, 746, 512, 444, 475, 432, 458, 440, 510, 470, 448, 345, 533,
    560, 476, 242, 483, 327, 536, 515, 355, 588, 674, 439, 522, 696, 536, 401, 571, 312, 543,
    515, 436, 480, 795, 525, 456, 159, 405, 749, 684, 2882, 552, 691, 883, 560, 579, 532, 656,
    665, 585, 717, 725, 523, 454, 457, 161, 170, 627, 250, 269, 754, 567, 617, 783, 687, 324,
    558, 519, 720, 592, 235, 434, 409, 367, 3043, 415, 295, 355, 427, 534, 482, 557, 654, 409)
CLEAN_DAY_WARMUP = 300  # seconds of 1.5 us Gaussian latency before the recorded ones


class SteadyHost(HostClock):
    """A crystal at a constant -45.2 ppm: the clean-day pulses alone, no wander to blame."""

    def _freq(self, m: int) -> float:
        return -45.2


# Interrupt latencies (10 ns units) of the 190 pulses from 196990 s into `python -m bench
# clean_week` (seed 1; recovered from its PPS generator) and its crystal's frequency in the
# minutes from 196620 s (ppm; it walks 0.02 ppm a minute). Runs of 6-8 us late pulses, then
# pulses 177-180 come 2.8-4.5 us early: against a 64-pulse line ~1.2 us off they read 4.1-5.8
# us, four of five beyond 4 us, and the old rule (4 of 5 beyond 4 us) raised a false
# `time.step` at 197170 s. Their mean, with the pulse before them, is 5.3 standard errors off.
CLEAN_WEEK_LATENCY_10NS = (
    527, 512, 509, 468, 386, 427, 271, 941, 429, 711, 461, 876, 657, 380, 1729, 380, 124, 390,
    463, 505, 573, 672, 457, 769, 467, 444, 763, 736, 735, 417, 596, 437, 276, 540, 529, 331,
    392, 603, 159, 330, 361, 512, 597, 614, 284, 658, 335, 540, 504, 541, 660, 757, 357, 422,
    416, 554, 516, 361, 303, 285, 418, 527, 637, 383, 579, 457, 629, 557, 791, 660, 600, 580,
    739, 352, 526, 603, 322, 865, 679, 462, 384, 587, 512, 390, 580, 367, 613, 628, 295, 508,
    495, 407, 636, 426, 871, 415, 352, 414, 422, 443, 524, 524, 275, 859, 697, 431, 460, 565,
    381, 548, 324, 696, 537, 282, 536, 236, 377, 353, 469, 442, 390, 449, 441, 278, 310, 433,
    634, 673, 500, 659, 347, 447, 661, 716, 611, 398, 217, 453, 616, 309, 296, 487, 546, 623,
    547, 634, 582, 298, 358, 464, 337, 543, 384, 692, 504, 481, 420, 792, 769, 639, 649, 824,
    610, 397, 567, 426, 809, 390, 755, 653, 572, 515, 268, 615, 534, 462, 431, 204, 217, 92,
    46, 504, 446, 597, 297, 325, 585, 557, 604, 168)

CLEAN_WEEK_FREQ_PPM = (-43.12255, -43.12785, -43.12296, -43.13207, -43.12163, -43.11589,
                       -43.13805, -43.13890, -43.15786, -43.18467)
CLEAN_WEEK_WARMUP = 370  # Gaussian latencies before the recorded ones: from 196620 s (a minute)


class WeekHost(HostClock):
    """The clean week's crystal in the minutes around its false step."""

    def _freq(self, m: int) -> float:
        return CLEAN_WEEK_FREQ_PPM[min(m, len(CLEAN_WEEK_FREQ_PPM) - 1)]


@dataclass(frozen=True)
class Recorded:
    """Recorded interrupt latencies (a run of late pulses, then early ones) after `warmup` s of
    1.5 us Gaussian latency, on a host crystal; a 6 us step goes in from pulse `step_i`."""

    name: str
    latency_10ns: tuple[int, ...]
    warmup: int
    host: type[HostClock]
    step_i: int
    jitter_max_s: float  # the phase jitter at the end (the early pulses end the run)

    def run(self, step_from: int | None = None, step_ns: int = 0) -> pt.Run:
        import random
        rng = random.Random(7)
        lat = [round(rng.gauss(5e-6, 1.5e-6) * NS) for _ in range(self.warmup)]
        lat += [v * 10 for v in self.latency_10ns]

        def cfg(sim: pt.PpsSim) -> None:
            sim.jitter_s = 0.0  # the latency is all in lat: 5 us + shift
            sim.shift_ns = lambda s: lat[(s - pt.T0_NS) // NS] - 5000
            if step_from is not None:
                sim.gnss_error_ns = lambda s: step_ns if s >= at(step_from) else 0

        return pt.run(pt.build(len(lat), host=self.host(random.Random(1), pt.T0_NS),
                               outlier_probability=0.0, configure=cfg))


# The step goes in through the late run and the early pulses (either sign: the line's error
# helps one, works against the other). Day: from pulse 140 (a -6 us step from pulse 148-154 is
# caught 5-11 s late: the four early pulses, 2.3 sigma each, hide it). Week: from pulse 170 (a
# -6 us step from pulse 172-185 is caught late or not at all: the four early pulses, 2-3 sigma
# each, cancel it). 6 us in 5 s holds at the noise of docs/threats.md, not against every rare
# cluster of it. The week's early pulses end its run: the 32-pulse jitter reads them (the step
# test's, 256, less).
RECORDED = (
    Recorded("clean_day", CLEAN_DAY_LATENCY_10NS, CLEAN_DAY_WARMUP, SteadyHost,
             CLEAN_DAY_WARMUP + 140, 1.8e-6),
    Recorded("clean_week", CLEAN_WEEK_LATENCY_10NS, CLEAN_WEEK_WARMUP, WeekHost,
             CLEAN_WEEK_WARMUP + 170, 2.2e-6),
)


@pytest.fixture(params=RECORDED, ids=lambda r: r.name)
def recorded(request: pytest.FixtureRequest) -> Recorded:
    rec = request.param
    assert isinstance(rec, Recorded)
    return rec


def test_recorded_late_pulses_then_early_ones_are_no_step(recorded: Recorded) -> None:
    r = recorded.run()
    assert r.pps_alerts() == []
    tr = tracker(r)
    assert tr.steps == 0
    assert tr.jitter_s is not None and 1.2e-6 < tr.jitter_s < recorded.jitter_max_s


def test_6_us_step_in_the_recorded_pulses_is_caught_within_5_s(recorded: Recorded) -> None:
    at_i = recorded.step_i
    for step_ns in (6_000, -6_000):
        r = recorded.run(at_i, step_ns)
        assert r.codes() == ["time.step"], (step_ns, r.codes())
        assert detect_s(r, "time.step", at_i) <= 5.0
        assert r.first("time.step").evidence["step_s"] * step_ns > 0
