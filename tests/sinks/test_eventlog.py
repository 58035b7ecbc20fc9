"""The event log: exactly docs/events.md's JSON objects, one per line, flushed per event, between the
evidence checkpoints that seal them (tests/test_evidence.py checks those); an unwritable file is an
error naming it and the events wait for it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from timewatch.config import Config, parse
from timewatch.records import Event, Sample, Snapshot
from timewatch.sinks.eventlog import EventLogSink

T = 1_764_160_950_000_000_000

ALERT = Event("alert", T, "time.drift", ("gnss0", "pps0"), "8f3c1c2e", "critical",
              "GNSS time drifting +1.02 us/s against holdover and 4 NTP groups",
              {"rate_s_per_s": 1.02e-6, "offset_s": 0.000412, "consensus_offset_s": 0.0000031,
               "window_s": 300})
CLEAR = Event("clear", T + 1_000_000_000_000, "time.drift", ("gnss0", "pps0"), "8f3c1c2e")
# The two example lines of docs/events.md, byte for byte (tests/test_docs.py checks the doc).
SPEC_LINES = [
    '{"type": "alert", "t_ns": 1764160950000000000, "code": "time.drift", "severity": "critical", '
    '"sources": ["gnss0", "pps0"], "message": "GNSS time drifting +1.02 us/s against holdover and '
    '4 NTP groups", "evidence": {"rate_s_per_s": 1.02e-06, "offset_s": 0.000412, '
    '"consensus_offset_s": 3.1e-06, "window_s": 300}, "id": "8f3c1c2e"}',
    '{"type": "clear", "t_ns": 1764161950000000000, "code": "time.drift", "sources": ["gnss0", '
    '"pps0"], "id": "8f3c1c2e"}',
]


def make_cfg(state_dir: Path) -> Config:
    return parse({"monitor": {"state_dir": str(state_dir)}})


def event_lines(path: Path) -> list[str]:
    """The file's lines but its evidence checkpoints."""
    return [x for x in path.read_text().splitlines() if not x.startswith('{"type": "checkpoint"')]


def test_events_are_written_as_the_spec_json_lines_and_nothing_else(tmp_path: Path) -> None:
    sink = EventLogSink(make_cfg(tmp_path))
    sink.handle([Sample("gnss0", T, 0.0, 1e-6), ALERT,
                 Snapshot(T, (), True, 1, 1, 0.0, 1e-6)])
    sink.handle([CLEAR])
    lines = event_lines(tmp_path / "events.jsonl")
    assert lines == SPEC_LINES
    assert [Event.from_dict(json.loads(x)) for x in lines] == [ALERT, CLEAR]
    sink.close()
    # a checkpoint opens the file and one ends it: nothing else but the events
    all_lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(x)["reason"] for x in (all_lines[0], all_lines[-1])] == ["start", "end"]
    assert all_lines[1:-1] == SPEC_LINES


def test_each_event_is_on_disk_before_handle_returns(tmp_path: Path) -> None:
    sink = EventLogSink(make_cfg(tmp_path))
    sink.handle([ALERT])
    # Read through another file object while the sink keeps its file open.
    assert event_lines(tmp_path / "events.jsonl") == SPEC_LINES[:1]
    sink.close()


def test_a_new_sink_appends_and_ends_a_cut_off_line_first(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(SPEC_LINES[0] + "\n" + '{"type": "al')
    sink = EventLogSink(make_cfg(tmp_path))
    sink.handle([CLEAR])
    sink.close()
    lines = event_lines(tmp_path / "events.jsonl")
    assert lines == [SPEC_LINES[0], '{"type": "al', SPEC_LINES[1]]


def test_an_unwritable_log_is_an_error_naming_it_and_events_wait(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cfg = make_cfg(blocker / "state")
    sink = EventLogSink(cfg, retry_s=0.0)
    sink.handle([ALERT])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(blocker / "state" / "events.jsonl") in errors[0]
    sink.handle([])  # nothing new, still failing: no second error
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    blocker.unlink()
    sink.handle([CLEAR])
    sink.close()
    assert event_lines(blocker / "state" / "events.jsonl") == SPEC_LINES
    assert sink.written == 2 and sink.dropped == 0
