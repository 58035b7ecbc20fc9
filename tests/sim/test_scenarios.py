"""`timewatch simulate`: every docs/threats.md scenario listed, same seed same bytes, traces shaped
as docs/trace-format.md says, noise at least as docs/threats.md pins it down."""

from __future__ import annotations

import itertools
import random
import re
import statistics
from pathlib import Path

import pytest

from tests.conftest import ROOT
from timewatch.cli import main
from timewatch.records import Note, Ntp, Tick
from timewatch.sim import noise
from timewatch.sim.scenarios import SCENARIOS, build, new_sim
from timewatch.trace import TraceReader

THREATS = ["ntp_liar", "ntp_drift", "ntp_mitm_delay", "ntp_leap", "gnss_step", "gnss_label_step",
           "gnss_push_fast", "gnss_push_slow", "gnss_position_jump", "gnss_meaconing",
           "gnss_cn0_uniform", "gnss_jamming", "gnss_week_rollover", "gnss_simulator",
           "pps_faults", "host_step", "ntp_group_majority", "ntp_spoofed_replies", "ntp_kiss",
           "ntp_no_majority", "gnss_garbage", "ptp_rogue_gm", "ptp_liar", "ptp_delay_attack",
           "ptp_utc_offset", "gnss_push_stairs", "gnss_outage_shift", "ntp_group_lie_inside"]
NTP_HOST = ["ntp_liar", "ntp_drift", "ntp_mitm_delay", "ntp_leap", "host_step",
            "ntp_group_majority", "ntp_spoofed_replies", "ntp_kiss", "ntp_no_majority", "clean",
            "ntp_server_silent", "ntp_delay_spikes", "ntp_real_leap"]
THREATS_DOC = ROOT / "docs/threats.md"


def test_list_names_every_threats_md_scenario_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--list"]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert listed[:len(THREATS)] == THREATS
    assert [SCENARIOS[n].number for n in THREATS] == list(range(1, len(THREATS) + 1))


def test_list_matches_the_threats_doc_table() -> None:
    names = re.findall(r"^\| (\d+) \| `([a-z_0-9]+)` \|", THREATS_DOC.read_text(), re.M)
    assert [(int(i), n) for i, n in names] == list(enumerate(THREATS, 1))


@pytest.mark.parametrize("name", THREATS)
def test_each_threat_is_declared_once_and_its_truth_comes_from_its_entry(name: str) -> None:
    sc = SCENARIOS[name]
    # A row holds a detection target, or (`holds`) what must never happen instead.
    assert sc.codes and (sc.target_s is None) != (sc.target_polls is None) or \
        (sc.holds and sc.target_s is None and sc.target_polls is None)
    assert sc.warmup_s > 0 and sc.duration_s > sc.warmup_s
    st = build(name, 1)
    t = st.truth
    assert t.scenario == name and t.detect_codes == sc.codes
    assert t.start_ns is not None
    if sc.holds:
        assert t.deadline_ns is None and t.culprits
        return
    assert t.deadline_ns is not None and t.deadline_ns > t.start_ns
    # The attack starts after the warm-up, or half-way in a run too short for it (trace time:
    # the host clock is off by ms at most).
    assert (t.start_ns - st.header.created_ns) / 1e9 > min(sc.warmup_s, sc.duration_s / 2) - 1.0
    if sc.target_s is not None and name not in ("ntp_drift", "host_step"):
        assert t.target_s == pytest.approx(sc.target_s + 1.0, abs=0.01)  # 1 s of slack


def test_legitimate_faults_have_no_target() -> None:
    for sc in SCENARIOS.values():
        if sc.number is None:
            assert sc.target_s is None and sc.target_polls is None and sc.live is None
            assert build(sc.name, 1, 600.0).truth.deadline_ns is None


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    args = ["simulate", "--scenario", "ntp_mitm_delay", "--duration", "900"]
    assert main([*args, "--seed", "7", "-o", str(a)]) == 0
    assert main([*args, "--seed", "7", "-o", str(b)]) == 0
    assert main([*args, "--seed", "8", "-o", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("name", NTP_HOST)
def test_every_ntp_and_host_scenario_builds_deterministically(name: str) -> None:
    x = build(name, 3, 1200.0)
    y = build(name, 3, 1200.0)
    assert x.observations == y.observations
    assert x.header == y.header


def test_gzip_output_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl.gz"
    assert main(["simulate", "--scenario", "clean", "--duration", "120", "-o", str(out)]) == 0
    r = TraceReader(out)
    obs = list(r)
    assert r.stats.bad_lines == 0 and len(obs) > 120


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main(["simulate", "--scenario", "nope", "-o", str(tmp_path / "x")]) == 2
    assert main(["simulate", "-o", str(tmp_path / "x")]) == 2
    assert main(["simulate", "--scenario", "clean"]) == 2


GNSS = ["gnss_step", "gnss_label_step", "gnss_push_fast", "gnss_push_slow", "gnss_position_jump",
        "gnss_meaconing", "gnss_cn0_uniform", "gnss_jamming", "gnss_week_rollover",
        "gnss_simulator", "pps_faults", "gnss_garbage", "gnss_clean", "gnss_obstruction"]


@pytest.mark.parametrize("name", GNSS)
def test_every_gnss_scenario_builds_deterministically_in_the_default_deployment(name: str) -> None:
    x = build(name, 3, 400.0)
    assert x.observations == build(name, 3, 400.0).observations
    src = x.header.sources
    assert src["gnss0"].kind == "gnss" and src["pps0"].kind == "pps"
    assert src["gnss0"].group == src["pps0"].group == "gnss" and src["pps0"].label_from == "gnss0"
    ntp = [i for i in src.values() if i.kind == "ntp"]
    assert len(ntp) >= 4 and len({i.group for i in ntp}) >= 3
    kinds = {type(o).__name__ for o in x.observations}
    assert {"Nmea", "Pps", "Tick", "Ntp"} <= kinds
    if x.truth.start_ns is not None:
        notes = [o for o in x.observations if isinstance(o, Note)]
        assert [n.rx_ns for n in notes] == [x.truth.start_ns]


def test_trace_shape_default_deployment_ticks_raw_ns_and_bounded_reordering() -> None:
    st = build("clean", 5, 1800.0)
    ntp = {s: i for s, i in st.header.sources.items() if i.kind == "ntp"}
    assert len(ntp) >= 4 and len({i.group for i in ntp.values()}) >= 3
    assert all(i.poll_s is not None and 16 <= i.poll_s <= 64 for i in ntp.values())
    ticks = [o for o in st.observations if isinstance(o, Tick)]
    assert len(ticks) == 1801
    assert all(abs((b.rx_ns - a.rx_ns) - 10**9) < 10**6 for a, b in itertools.pairwise(ticks))
    assert all(o.raw_ns is not None for o in st.observations)
    back = [a.rx_ns - b.rx_ns for a, b in itertools.pairwise(st.observations)]
    assert 0 < max(back) <= 20_000_000  # handed over out of order, by at most 20 ms
    assert {o.src for o in st.observations if isinstance(o, Ntp)} == set(ntp)


def test_attack_is_marked_by_a_note_at_its_start() -> None:
    st = build("ntp_liar", 2)
    notes = [o for o in st.observations if isinstance(o, Note)]
    assert len(notes) == 1 and st.truth.culprits[0] in notes[0].text
    assert notes[0].rx_ns == st.truth.start_ns


def test_ntp_noise_at_least_what_threats_md_pins_down() -> None:
    rng = random.Random(1)
    paths = [noise.NtpPath(random.Random(i)) for i in range(200)]
    assert all(0.002 <= p.one_way_s <= 0.040 for p in paths)
    assert max(abs(p.base_out_s - p.base_back_s) for p in paths) > 0.002
    p = noise.NtpPath(rng)
    draws = [p.draw() for _ in range(100_000)]
    timeouts = [d.timed_out for d in draws]
    assert 0.002 < sum(timeouts) / len(draws) < 0.004
    assert "TTT" not in "".join("T" if t else "." for t in timeouts)  # at most two in a row
    spikes = [d for d in draws if d.spiked]
    assert 0.015 < len(spikes) / len(draws) < 0.025
    assert all(max(d.out_s / p.base_out_s, d.back_s / p.base_back_s) >= 4.99 for d in spikes)
    jitter = [d.out_s - p.base_out_s for d in draws if not d.spiked and not d.timed_out]
    assert 0.00027 < statistics.mean(jitter) < 0.00033


def test_host_clock_crystal_wander_and_disciplined_realtime() -> None:
    h = noise.HostClock(random.Random(3), 0)
    assert abs(h.crystal_ppm) <= 100
    minutes = [h.freq_ppm(m) for m in range(24 * 60)]
    assert 1.5 < max(minutes) - min(minutes) < 4  # 2 ppm diurnal swing plus the walk
    ten = [abs(h.freq_ppm(m + 10) - h.freq_ppm(m)) for m in range(0, 24 * 60 - 10, 10)]
    assert statistics.mean(ten) < 0.2  # "about 0.1 ppm over ten minutes"
    errs = [h.realtime_error_ns(t * 10**9) for t in range(0, 86_400, 10)]
    assert 100_000 < max(map(abs, errs)) < 1_000_000  # hundreds of microseconds
    slews = [abs(b - a) / 10e9 for a, b in itertools.pairwise(errs)]
    assert max(slews) < 1e-6  # sub-ppm
    h.step(5 * 10**9, 250_000_000)
    assert h.realtime_error_ns(6 * 10**9) - h.realtime_error_ns(4 * 10**9) > 249_000_000
    r1, r2 = h.raw_ns(10**9), h.raw_ns(2 * 10**9)
    assert abs((r2 - r1) - 10**9) < 200_000  # raw is never stepped


@pytest.mark.parametrize("name", ["ntp_liar", "gnss_step", "ptp_liar", "gnss_outage_shift"])
def test_any_scenario_runs_its_host_on_an_ocxo_when_asked(name: str) -> None:
    """`oscillator` is a parameter of every scenario: the host's raw clock then wanders like an
    oven-controlled oscillator's (a walk 40x smaller, a diurnal swing 100x smaller)."""
    def swing(h: noise.HostClock) -> float:
        day = [h.freq_ppm(m) for m in range(24 * 60)]
        return max(day) - min(day)

    sc = SCENARIOS[name]
    assert swing(new_sim(sc, 3, 60.0, {"oscillator": "ocxo"}).host) < 0.05
    assert swing(new_sim(sc, 3, 60.0, {}).host) > 1.5
    raw = {osc: [o.raw_ns for o in build(name, 3, 600.0, oscillator=osc).observations
                 if isinstance(o, Tick)] for osc in ("crystal", "ocxo")}
    assert len(raw["ocxo"]) == len(raw["crystal"]) > 500
    assert raw["ocxo"] != raw["crystal"]  # the builder took the parameter


def test_an_unknown_oscillator_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="oscillator 'rubidium': one of crystal, ocxo"):
        build("ntp_liar", 1, 60.0, oscillator="rubidium")
