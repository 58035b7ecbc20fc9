"""A kind defined outside the package (tests/kinds/toykind.py) works everywhere a built-in kind
does, without an edit to timewatch: the config parses and checks it, check-config describes it,
doctor runs its check, the real runner starts its reader, the engine builds its tracker and votes
on it, and its own record type goes through a recorded trace and the replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.kinds import toykind
from timewatch import kinds
from timewatch.cli import main
from timewatch.commands.replay import replay_iter
from timewatch.config import ConfigError, load, parse
from timewatch.doctor import run_checks
from timewatch.records import Event, Snapshot
from timewatch.runner import Hooks, Runner
from timewatch.trace import TraceReader

TOML = """
[monitor]
state_dir = "{state}"

[http]
listen = ""

[detect]
snapshot_interval_s = 1
hold_down_s = 1

[[sources]]
id = "t1"
kind = "toy"
station = "north"

[[sources]]
id = "t2"
kind = "toy"
station = "south"
offset_us = 200
poll_s = 0.2

[[sources]]
id = "t3"
kind = "toy"
station = "west"
offset_us = 50_000
"""


def write(tmp_path: Path, text: str = TOML) -> Path:
    p = tmp_path / "toy.toml"
    p.write_text(text.replace("{state}", str(tmp_path / "state")))
    return p


def test_the_toy_kind_is_registered_by_its_own_module() -> None:
    assert kinds.get("toy") is toykind.KIND
    with pytest.raises(LookupError, match=r"unknown source kind 'nope' \(known: gnss, pps, ntp"):
        kinds.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kinds.Kind("toy", None, None))


def test_config_parses_and_checks_a_toy_source(tmp_path: Path) -> None:
    cfg = load(write(tmp_path))
    t1, t2, t3 = cfg.sources
    assert (t1.kind, t1.group, t1.options) == ("toy", "t1", {"station": "north", "offset_us": 0.0})
    assert t1.poll_s == 0.1 and t2.poll_s == 0.2  # the kind's default; its own value
    assert t3.options["offset_us"] == 50_000.0
    h = cfg.header()
    assert h.sources["t2"].kind == "toy" and h.sources["t2"].poll_s == 0.2

    bad = TOML.replace('station = "west"\n', "")
    with pytest.raises(ConfigError, match=r"toy\.toml:\d+: sources\[2\]\.station: required"):
        load(write(tmp_path, bad))
    with pytest.raises(ConfigError, match=r"sources\[2\]\.offset_us: must be between"):
        load(write(tmp_path, TOML.replace("50_000", "2e6")))
    with pytest.raises(ConfigError, match=r"sources\[0\]\.device: unknown key \(expected one of: "
                                          r"group, id, kind, offset_us, poll_s, station\)"):
        load(write(tmp_path, TOML.replace('station = "north"', 'station = "n"\ndevice = "x"')))


def test_check_config_describes_and_doctor_checks_a_toy_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "source t3: toy, group t3: toy clock at station west, 50000 us off" in out
    assert "3 trust groups" in out
    checks = run_checks(load(path))
    assert [c.what for c in checks if "toy station" in c.what] == [
        "t1: toy station north", "t2: toy station south", "t3: toy station west"]


def test_the_runner_reads_the_engine_votes_and_the_trace_replays_a_toy_source(
        tmp_path: Path) -> None:
    cfg = load(write(tmp_path))
    trace = tmp_path / "toy.jsonl"
    hooks = Hooks()
    runner = Runner(cfg, record=trace, duration_s=30, hooks=hooks, sinks=[])

    def raised(code: str, src: str) -> bool:
        return any(e.type == "alert" and e.code == code and src in e.sources
                   for e in runner.events)

    def on_tick(snap: Snapshot | None) -> None:  # stop once t3 is voted out and alerted
        if snap is not None and raised("source.falseticker", "t3"):
            runner.stop()

    hooks.tick.append(on_tick)
    assert asyncio.run(runner.run()) == 0
    assert runner.engine is not None
    trackers = runner.engine.ctx.trackers
    assert all(isinstance(tr, toykind.ToyTracker) and tr.records > 0
               for tr in trackers.values()) and set(trackers) == {"t1", "t2", "t3"}
    assert all(isinstance(r, toykind.ToyReader) and r.sent > 0 for r in runner.readers.values())
    assert raised("source.falseticker", "t3"), [e.code for e in runner.events]
    assert not raised("source.falseticker", "t1") and not raised("source.falseticker", "t2")
    assert runner.snapshot is not None
    verdicts = {s.src: s.verdict for s in runner.snapshot.sources}
    assert verdicts == {"t1": "truechimer", "t2": "truechimer", "t3": "falseticker"}

    # The toy's records, written and read back by the trace code that knows nothing of them.
    reader = TraceReader(trace)
    assert reader.header.sources["t3"].kind == "toy"
    _, out = replay_iter(reader, cfg)
    assert reader.stats.bad_lines == 0 and reader.stats.unknown_types == {}
    assert reader.stats.records == runner.handed
    assert [o for o in out if isinstance(o, Event)] == runner.events
    first = next(line for line in trace.read_text().splitlines() if '"type": "toy"' in line)
    assert '"offset_ns": ' in first and '"station": ' in first


def test_a_toy_record_with_a_bad_field_is_a_bad_line_named_by_field(tmp_path: Path) -> None:
    cfg = parse({"sources": [{"id": "t1", "kind": "toy", "station": "x"}]})
    trace = tmp_path / "bad.jsonl"
    import json

    lines = [json.dumps(cfg.header().to_dict()),
             '{"type": "toy", "src": "t1", "rx_ns": 5, "offset_ns": "ten", "station": "x"}',
             '{"type": "toy", "src": "t1", "rx_ns": 6, "station": "x"}',
             '{"type": "toy", "src": "t1", "rx_ns": 7, "offset_ns": 10, "station": "x"}']
    trace.write_text("\n".join(lines) + "\n")
    reader = TraceReader(trace)
    got = list(reader)
    assert got == [toykind.Toy("t1", 7, 10, "x")]
    assert reader.stats.bad_lines == 2
    assert "offset_ns" in reader.stats.problems[0] and "offset_ns" in reader.stats.problems[1]
