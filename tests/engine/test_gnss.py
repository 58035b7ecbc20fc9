"""GnssTracker: time labels, coarse offset and latency learning, and the receiver-level detectors
on the simulated receiver (each docs/threats.md fault within its target) and on the gpsd corpus."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from timewatch import kinds
from timewatch.commands.decode import capture_observations
from timewatch.engine import Engine
from timewatch.engine.core import Estimate, Tracker
from timewatch.engine.gnss import GnssTracker
from timewatch.engine.params import Detect
from timewatch.records import Event, Header, Nmea, Observation, Sample, SourceInfo, Tick
from timewatch.sim.nmeagen import NmeaSim, raised_cn0, uniform_cn0
from timewatch.wire.nmea import sentence

NS = 1_000_000_000
T0 = 1_795_000_000 * NS  # 2026-11-18, after the build-date floor
GNSS = {"gnss0": SourceInfo("gnss", "gnss")}
# Historical captures: the build-date floor does not apply (the GPS epoch instead).
HISTORY = Detect(gnss_not_before_unix_s=315964800.0)


def run(obs: list[Observation], sources: dict[str, SourceInfo] | None = None,
        detect: Detect | None = None) -> tuple[Engine, list[Event], list[Sample]]:
    eng = Engine(Header("t", 0, sources or GNSS), detect)
    events: list[Event] = []
    samples: list[Sample] = []
    for o in obs:
        for r in eng.feed(o):
            if isinstance(r, Event):
                events.append(r)
            elif isinstance(r, Sample):
                samples.append(r)
    return eng, events, samples


def sim_obs(seconds: int, setup: Callable[[NmeaSim], None] | None = None, seed: int = 1,
            **kw: object) -> list[Observation]:
    sim = NmeaSim(random.Random(seed), **kw)  # type: ignore[arg-type]
    if setup is not None:
        setup(sim)
    out: list[Observation] = []
    for k in range(seconds):
        out += [Nmea("gnss0", t, line) for t, line in sim.epoch(T0 + k * NS)]
    return out


def alerts(events: list[Event], code: str) -> list[Event]:
    return [e for e in events if e.type == "alert" and e.code == code]


# -- clean operation ------------------------------------------------------------------------


def test_clean_receiver_ten_minutes_no_alert_labels_and_samples() -> None:
    eng, events, samples = run(sim_obs(600))
    assert [e.code for e in events if e.type == "alert"] == []
    tr = eng.ctx.trackers["gnss0"]
    assert isinstance(tr, GnssTracker)
    labels = list(tr.labels)
    assert len(labels) == 64 and all(lab.valid for lab in labels)
    assert [lab.utc_ns for lab in labels] == [T0 + k * NS for k in range(536, 600)]
    # The label's first sentence arrives 110 +- 4 ms after its second plus the RMC at 9600 baud.
    assert all(0.16 < (lab.rx_ns - lab.utc_ns) / 1e9 < 0.20 for lab in labels)
    assert len(samples) >= 590
    # Prior latency 0..1 s: the interval must contain the true offset (0).
    assert all(s.offset_s - s.bound_s <= 0 <= s.offset_s + s.bound_s for s in samples)
    st = tr.status_fields()
    assert st["fix"] == 3 and st["sats_used"] >= 4 and 30 < st["cn0_mean_db_hz"] < 52
    assert st["position_error_m"] is not None and st["position_error_m"] < 15


class _Truth(Tracker):
    """A reference that knows the true time (offset 0 +- 1 ms) at every record."""

    kind = "truth"

    def on_tick(self, now_ns: int) -> None:
        self.estimate_ = Estimate(0.0, 0.001, now_ns)
        self.last_usable_ns = now_ns
        self.ctx.dirty = True


TRUTH = kinds.Kind("truth", None, f"{__name__}:_Truth")  # a kind known to the engine only


def test_latency_is_learned_against_an_agreeing_consensus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kinds.KINDS, "truth", TRUTH)
    srcs = {**GNSS, "ref": SourceInfo("truth", "ref")}
    eng, events, samples = run(sim_obs(120), srcs)
    tr = eng.ctx.trackers["gnss0"]
    assert isinstance(tr, GnssTracker)
    assert tr.latency_s is not None and 0.16 < tr.latency_s < 0.20
    assert tr.latency_jitter_s is not None and tr.latency_jitter_s < 0.006
    late = [s for s in samples if s.src == "gnss0"][-30:]
    assert all(abs(s.offset_s) <= s.bound_s < 0.03 for s in late)
    assert [e.code for e in events if e.type == "alert"] == []


def test_date_1024_weeks_from_the_other_groups_is_a_rollover(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kinds.KINDS, "truth", TRUTH)
    srcs = {**GNSS, "ref-a": SourceInfo("truth", "a"), "ref-b": SourceInfo("truth", "b")}
    # 1024 weeks ahead: after the build date, so only the other sources can tell it is wrong.
    def setup(s: NmeaSim) -> None:
        s.label_offset_s = lambda t: 1024 * 7 * 86_400 if t >= T0 + 10 * NS else 0
    _, events, _ = run(sim_obs(15, setup), srcs)
    ev = alerts(events, "gnss.date_anomaly")
    assert len(ev) == 1 and "+1 x 1024 GPS weeks" in ev[0].evidence["reason"]
    assert (ev[0].t_ns - T0) / NS < 12


def test_latency_is_not_learned_from_the_source_itself() -> None:
    eng, _, _ = run(sim_obs(120))
    tr = eng.ctx.trackers["gnss0"]
    assert isinstance(tr, GnssTracker) and tr.latency_s is None


# -- each fault of docs/threats.md within its target ---------------------------------------------


def first_alert_s(events: list[Event], code: str, start_s: float) -> float:
    hits = alerts(events, code)
    assert hits, f"{code} not raised"
    return (hits[0].t_ns - T0) / NS - start_s


def test_simulator_mode_alerts_at_the_first_epoch() -> None:
    def setup(s: NmeaSim) -> None:
        s.simulator = lambda t: True
    _, events, samples = run(sim_obs(5, setup))
    assert first_alert_s(events, "gnss.simulator", 0) < 1.0
    assert samples == []  # simulated output is never used


@pytest.mark.parametrize("fault", ["rollover", "coldstart"])
def test_wrong_date_with_valid_fix_alerts_at_the_first_epoch(fault: str) -> None:
    def setup(s: NmeaSim) -> None:
        s.date_fault = lambda t: fault
    _, events, samples = run(sim_obs(5, setup))
    assert first_alert_s(events, "gnss.date_anomaly", 0) < 1.0
    assert samples == []


def test_position_jump_of_100_m_after_survey_in_within_10_s() -> None:
    def setup(s: NmeaSim) -> None:
        s.position_offset_m = lambda t: (100.0, 0.0) if t >= T0 + 120 * NS else (0.0, 0.0)
    _, events, _ = run(sim_obs(140, setup))
    assert first_alert_s(events, "gnss.position_jump", 120) < 10


def test_configured_position_20_m_noise_is_not_a_jump() -> None:
    srcs = {"gnss0": SourceInfo("gnss", "gnss", position=(48.8566, 2.3522, 35.0))}
    _, events, _ = run(sim_obs(60), srcs)
    assert alerts(events, "gnss.position_jump") == []


def test_uniform_cn0_within_60_s() -> None:
    def setup(s: NmeaSim) -> None:
        u = uniform_cn0(45.0, 0.8, random.Random(2))
        s.cn0_fn = lambda t, c: u(t, c) if t >= T0 + 30 * NS else c
    _, events, _ = run(sim_obs(100, setup))
    assert first_alert_s(events, "gnss.cn0_anomaly", 30) < 60


def test_all_cn0_up_8_db_at_once_within_60_s() -> None:
    def setup(s: NmeaSim) -> None:
        up = raised_cn0(8.0)
        s.cn0_fn = lambda t, c: up(t, c) if t >= T0 + 30 * NS else c
    _, events, _ = run(sim_obs(60, setup))
    assert first_alert_s(events, "gnss.cn0_anomaly", 30) < 60


def test_jamming_no_fix_within_10_s_and_source_unusable_not_stale() -> None:
    def setup(s: NmeaSim) -> None:
        s.jammed = lambda t: t >= T0 + 20 * NS
    eng, events, _ = run(sim_obs(40, setup))
    assert first_alert_s(events, "gnss.no_fix", 20) < 10
    assert alerts(events, "source.stale") == []  # it still talks
    assert eng.verdict("gnss0")[0] == "unusable"


def test_fix_lost_for_a_minute_only_no_fix_and_satellites_then_clear() -> None:
    def setup(s: NmeaSim) -> None:
        s.fix_lost = lambda t: T0 + 60 * NS <= t < T0 + 120 * NS
    _, events, _ = run(sim_obs(400, setup))
    assert {e.code for e in events if e.type == "alert"} <= {"gnss.no_fix", "gnss.satellites"}
    assert alerts(events, "gnss.no_fix")
    assert [e.code for e in events if e.type == "clear"].count("gnss.no_fix") == 1


def test_noisy_line_5_percent_corrupted_within_60_s() -> None:
    _, events, _ = run(sim_obs(90, corrupt_rate=0.05, garbage_rate=0.01))
    assert first_alert_s(events, "gnss.sentence_errors", 0) < 60
    assert alerts(events, "gnss.no_fix") == []


def test_one_corrupted_sentence_in_ten_thousand_is_not_an_error_rate() -> None:
    _, events, _ = run(sim_obs(300, corrupt_rate=1e-3))
    assert alerts(events, "gnss.sentence_errors") == []


def test_labels_one_second_off_raise_label_error_within_5_s() -> None:
    def setup(s: NmeaSim) -> None:
        s.label_offset_s = lambda t: 1 if t >= T0 + 30 * NS else 0
    _, events, _ = run(sim_obs(40, setup))
    assert first_alert_s(events, "gnss.label_error", 30) < 5


def test_half_the_satellites_vanishing_is_abrupt() -> None:
    def setup(s: NmeaSim) -> None:
        keep = {p.prn for p in s.sats[::2]}
        base = s.sky
        s.sky = lambda t: [x for x in base(t) if t < T0 + 30 * NS or x[0] in keep]  # type: ignore
    _, events, _ = run(sim_obs(40, setup))
    assert first_alert_s(events, "gnss.satellites", 30) < 2


def test_second_60_outside_a_month_end_is_a_leap_second_error() -> None:
    obs: list[Observation] = []
    for k, hms in enumerate(["120058", "120059", "120060", "120101"]):
        t = T0 + k * NS
        obs.append(Nmea("gnss0", t, sentence(
            f"GPRMC,{hms}.00,A,4807.038,N,01131.000,E,0.0,,181126,,,A")))
        obs.append(Nmea("gnss0", t + 10_000_000, sentence(
            f"GPGGA,{hms}.00,4807.038,N,01131.000,E,1,08,0.9,35.0,M,46.2,M,,")))
    _, events, _ = run(obs + [Tick(T0 + 6 * NS)])
    assert alerts(events, "gnss.leap_second")


def test_second_60_at_the_end_of_december_is_accepted() -> None:
    base = 1_798_761_540 * NS  # 2026-12-31T23:59:00Z
    obs: list[Observation] = []
    for k, hms in enumerate(["235958", "235959", "235960", "000000"]):
        date = "010127" if hms == "000000" else "311226"
        obs.append(Nmea("gnss0", base + (58 + k) * NS, sentence(
            f"GPRMC,{hms}.00,A,4807.038,N,01131.000,E,0.0,,{date},,,A")))
    _, events, _ = run(obs + [Tick(base + 64 * NS)])
    assert alerts(events, "gnss.leap_second") == [] and alerts(events, "gnss.label_error") == []


# -- the gpsd corpus -------------------------------------------------------------------------

# What real receivers must never cause (docs/threats.md "must not alarm" and the issue): their own
# faults (no fix, bad checksums, wrong dates, repeated or spliced labels) may be reported.
NEVER_ON_REAL = {"gnss.cn0_anomaly", "gnss.simulator", "gnss.receiver_flag",
                 "gnss.position_jump", "gnss.leap_second", "gnss.satellites"}


def corpus_alerts(log: Path) -> Counter[str]:
    _, events, _ = run(list(capture_observations(log.read_bytes())), detect=HISTORY)
    return Counter(e.code for e in events if e.type == "alert" and e.code.startswith("gnss."))


def test_detectors_silent_on_real_receivers_and_fire_on_simulator_captures(corpus: Path) -> None:
    logs = sorted((corpus / "gpsd").glob("*.log"))
    table = {p.name: corpus_alerts(p) for p in logs}
    print()
    for name, codes in table.items():
        print(f"{name:42s} {', '.join(sorted(codes)) or '-'}")
    real = {n: c for n, c in table.items() if not n.startswith("gp-320fw-")}
    assert {n: sorted(set(c) & NEVER_ON_REAL) for n, c in real.items()
            if set(c) & NEVER_ON_REAL} == {}
    assert table["gp-320fw-2019-04-06-overflow.log"]["gnss.cn0_anomaly"] == 1
    assert table["gp-320fw-2019-04-07-coldboot.log"]["gnss.sentence_errors"] == 1
    assert table["april6_2019.log"]["gnss.date_anomaly"] == 1
    # The receivers' own faults are reported where the logs show them.
    assert table["firefly-II.log"]["gnss.sentence_errors"] == 1  # every GGA has a bad checksum
    assert table["bundg_zeus_9.log"]["gnss.label_error"] == 1  # it repeats 09:49:45


def test_build_date_floor_flags_old_dates_live(corpus: Path) -> None:
    """Without the history override, a 2015 date is before the software's build: wrong."""
    _, events, _ = run(list(capture_observations(
        (corpus / "gpsd" / "neo-m8n.log").read_bytes())))
    ev = alerts(events, "gnss.date_anomaly")
    assert len(ev) == 1 and "software build" in ev[0].evidence["reason"]
