"""`timewatch demo` end to end: the default timeline, compressed, against the real readers.

One run of ~46 s (the default timeline at 0.4x): a receiver on a pty read by the serial reader,
live PPS, four NTP servers on loopback, the monitor with its store, event log and trace.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from tests.conftest import free_port
from timewatch.errors import UsageError
from timewatch.records import Event, SourceStatus
from timewatch.sim import demo
from timewatch.sources.serial import SerialReader

# A port free on every demo address (a `make demo` or another test run may hold one); the demo
# starts its servers on one port for all four addresses.
PORT = free_port([f"127.0.0.{i}" for i in range(21, 25)])
# The default timeline at this scale: rogue at 10 s, push at 22 s, recovery at 36 s, end 46 s.
SCALE = 0.4


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[demo.DemoResult, str, str]:
    state = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    res = asyncio.run(demo.run_demo(str(state), out, False, demo.default_plan(SCALE),
                                    port=PORT))
    return res, out.getvalue(), demo.summary(res)


def _alerts(res: demo.DemoResult) -> list[Event]:
    return [e for e in res.runner.events if e.type == "alert"]


def test_demo_names_the_rogue_ntp_server_as_falseticker(run: tuple[demo.DemoResult, str, str]
                                                        ) -> None:
    res, _, _ = run
    rogue_at = res.stage_t_ns[1]
    hits = [e for e in _alerts(res) if e.code == "source.falseticker" and e.sources == ("sim-d",)]
    assert hits, [(e.code, e.sources) for e in _alerts(res)]
    assert hits[0].t_ns >= rogue_at  # not before it lied


def test_demo_catches_the_gnss_push_on_the_gnss_sources(run: tuple[demo.DemoResult, str, str]
                                                        ) -> None:
    res, _, _ = run
    push_at, recover_at = res.stage_t_ns[2], res.stage_t_ns[3]
    hits = [e for e in _alerts(res) if push_at <= e.t_ns < recover_at
            and e.code in ("time.drift", "time.step", "source.falseticker")
            and set(e.sources) & {demo.GNSS_ID, demo.PPS_ID}]
    assert hits, [(e.code, e.sources, e.t_ns - push_at) for e in _alerts(res)]
    f = {x.stage.title.split(":")[0]: x for x in demo.findings(res)}
    assert f["GNSS time push"].alert is not None and f["rogue NTP server"].alert is not None


def test_demo_accuses_no_honest_ntp_server(run: tuple[demo.DemoResult, str, str]) -> None:
    res, _, _ = run
    honest = {"sim-a", "sim-b", "sim-c"}
    assert [(e.code, e.sources) for e in _alerts(res) if set(e.sources) & honest] == []


def test_demo_reads_the_receiver_through_the_serial_reader_and_pairs_pps(
        run: tuple[demo.DemoResult, str, str]) -> None:
    res, _, _ = run
    reader = res.runner.readers[demo.GNSS_ID]
    assert isinstance(reader, SerialReader) and reader.opens >= 1
    eng = res.runner.engine
    assert eng is not None
    gnss, pps = eng.ctx.trackers[demo.GNSS_ID], eng.ctx.trackers[demo.PPS_ID]
    assert gnss.sentences > 100 and gnss.bad_sentences <= 2  # ~10 a second for 46 s
    assert getattr(pps, "latency_ns", None) is not None  # edges paired with the labels
    snap = res.runner.snapshot
    assert snap is not None and snap.quorum


def test_demo_summary_and_output_say_where_the_data_went(
        run: tuple[demo.DemoResult, str, str]) -> None:
    res, out, summ = run
    cfg = res.runner.cfg
    assert str(cfg.store_path) in summ and cfg.store_path.exists()
    assert str(res.trace) in summ and res.trace.exists()
    assert (Path(cfg.state_dir) / "events.jsonl").exists()
    assert "rogue NTP server (from" in summ and "detected" in summ
    for n in (1, 2, 3, 4):  # every stage announced in the piped view
        assert f"== stage {n}/4" in out
    assert "ALERT source.falseticker sim-d" in out and "evidence:" in out


def test_host_step_is_not_live_and_points_at_simulate_and_replay() -> None:
    with pytest.raises(UsageError, match=r"timewatch simulate --scenario host_step .*replay"):
        demo.scenario_plan("host_step")
    with pytest.raises(UsageError, match="unknown"):
        demo.scenario_plan("no_such_scenario")


def test_every_threats_scenario_is_live_or_explained() -> None:
    from timewatch.sim.scenarios import SCENARIOS

    threats = {s.name for s in SCENARIOS.values() if s.number is not None}
    assert set(demo.scenario_names()) == threats
    for name in threats:
        sc = SCENARIOS[name]
        assert (sc.live is not None) != bool(sc.not_live), name  # one or the other
        if sc.live is None:
            continue
        plan = demo.scenario_plan(name)
        assert plan.expected and plan.duration_s == demo.SCENARIO_LEAD_S + sc.live.window_s
        # The demo judges the live run by the catalogue's entry, as the threat battery does.
        (attack,) = plan.expected
        assert attack.codes == sc.codes and attack.suspects == sc.live.suspects
        assert attack.action is sc.live.action and attack.at_s == demo.SCENARIO_LEAD_S
        assert set(attack.suspects) <= set(plan.groups) | {demo.GNSS_ID, demo.PPS_ID}


def test_a_scenario_with_its_own_trust_groups_gets_them_live() -> None:
    plan = demo.scenario_plan("ntp_group_majority")
    assert plan.groups == {"sim-a": "op-x", "sim-b": "op-x", "sim-c": "op-x", "sim-d": "op-d"}
    assert demo.scenario_plan("ntp_liar").groups == demo.DEFAULT_GROUPS
    assert "stale" in demo.scenario_plan("ntp_spoofed_replies").note


def test_interval_bar_puts_the_consensus_in_the_middle_and_clips_a_liar() -> None:
    near = SourceStatus("a", "ntp", "a", "truechimer", "", 0.0, 0.0003)
    far = SourceStatus("d", "ntp", "d", "falseticker", "", 0.150, 0.0004)
    bar = demo.interval_bar(near, 0.0, width=33, range_s=1e-3)
    assert bar[16] == "o" and bar.strip().startswith("=") and bar[0] == " "
    bar = demo.interval_bar(far, 0.0, width=33, range_s=1e-3)
    assert bar[16] == "|" and bar[-1] == ">" and "o" not in bar


def test_demo_push_alert_stays_active_for_the_whole_push(run: tuple[demo.DemoResult, str, str]
                                                         ) -> None:
    res, _, summ = run
    assert demo.alert_gaps(res, 2) == []
    line = next(x for x in summ.splitlines() if x.strip().startswith("GNSS time push"))
    assert "alert active for the whole attack" in line, summ


def test_summary_flags_an_alert_gap_while_the_attack_goes_on() -> None:
    from types import SimpleNamespace

    s = 1_000_000_000
    stages = (demo.Stage(0.0, "start"), demo.Stage(10.0, "push: x", None, ("pps0",), ("time.step",)),
              demo.Stage(50.0, "recovery"))
    plan = demo.Plan("t", 60.0, stages)
    ev = [Event("alert", 12 * s, "time.step", ("pps0",), "a1", "critical", "m", {}),
          Event("clear", 20 * s, "time.step", ("pps0",), "a1", "critical", "", {}),
          Event("alert", 30 * s, "time.step", ("pps0",), "a2", "critical", "m", {})]
    res = SimpleNamespace(plan=plan, stage_t_ns={0: 0, 1: 10 * s, 2: 50 * s}, start_ns=0,
                          runner=SimpleNamespace(events=ev))
    assert demo.alert_gaps(res, 1) == [(20.0, 30.0)]  # type: ignore[arg-type]
    ev[1:2] = []
    assert demo.alert_gaps(res, 1) == []  # type: ignore[arg-type]


def test_a_plain_replay_of_the_demo_trace_gives_its_live_events(
        run: tuple[demo.DemoResult, str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The demo runs with hold_down_s and snapshot_interval_s off their defaults: the header
    # carries them, so `timewatch replay TRACE` (no -c) judges as the live run did (issue 14).
    import json

    from timewatch.cli import main
    from timewatch.trace import TraceReader

    res, _, _ = run
    hdr = TraceReader(res.trace).header
    assert hdr.detect["hold_down_s"] == demo.DEMO_HOLD_DOWN_S
    assert hdr.detect["snapshot_interval_s"] == demo.DEMO_SNAPSHOT_S
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(res.trace), "--events", str(out)]) == 0
    replayed = [json.loads(line) for line in out.read_text().splitlines()]
    live = [json.loads(json.dumps(e.to_dict())) for e in res.runner.events]
    assert live and replayed == live
    # The header's keys are the ones judging: the demo's snapshot interval, not the default's.
    def snapshots(*extra: str) -> int:
        assert main(["replay", str(res.trace), "--events", str(out), "--snapshots", *extra]) == 0
        return sum(json.loads(line)["type"] == "status" for line in out.read_text().splitlines())

    as_recorded, as_default = snapshots(), snapshots("--detect-from-config")
    assert as_recorded > as_default > 0
    assert as_default == pytest.approx(as_recorded * demo.DEMO_SNAPSHOT_S / 10.0, abs=2)
