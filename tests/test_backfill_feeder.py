"""A backfill whose sink fails on a chunk stops (exit 1, naming the sink, the outputs and how to
continue) instead of going on without that chunk in that sink; `--resume` then gives every sink
every output: once in a sink with marks, the failed chunk at most twice in one without (the
event log and webhooks, whose receivers deduplicate by id), none missing anywhere."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from timewatch import cli
from timewatch import sinks as sinks_mod
from timewatch.commands import backfill
from timewatch.config import load
from timewatch.sim import scenarios
from timewatch.sinks import Mark

CHUNK = 10
IDENTITY = {"trace": "t.jsonl", "size": 1}


class MarkedSink:
    """A sink that resumes (`sinks.Resumable`), in memory: its marks survive the 'restart'."""

    def __init__(self, name: str, fail_at: int | None = None):
        self.name = name
        self.fail_at = fail_at  # the mark whose chunk it refuses
        self.got: list[int] = []
        self.marks: dict[str, int] = {}

    def handle_marked(self, outputs: list[Any], mark: Mark) -> None:
        if mark.n == self.fail_at:
            raise OSError("disk on fire")
        self.got.extend(outputs)
        self.marks[mark.key] = mark.n

    def resume_point(self, key: str) -> int | None:
        return self.marks.get(key)

    def passed(self, outputs: list[Any]) -> None:
        pass

    def forget(self, key: str) -> None:
        self.marks.pop(key, None)

    def handle(self, outputs: list[Any]) -> None:
        raise AssertionError("a backfill hands a resumable sink its outputs with a mark")

    def close(self) -> None:
        pass


class PlainSink:
    """A sink without marks (the event log, webhooks)."""

    name = "plain"

    def __init__(self) -> None:
        self.got: list[int] = []

    def handle(self, outputs: list[Any]) -> None:
        self.got.extend(outputs)

    def close(self) -> None:
        pass


def feeder(tmp: Path, sinks: list[Any], resume: bool) -> backfill.Feeder:
    path = tmp / "replay.checkpoint.json"
    fd = os.open(tmp / "lock", os.O_RDWR | os.O_CREAT)

    def forget(key: str) -> None:
        for s in sinks:
            if backfill.resumable(s):
                s.forget(key)

    return backfill.Feeder(sinks, backfill.start(path, "replay", IDENTITY, resume, forget),
                           path, fd)


def run(f: backfill.Feeder, outputs: list[int]) -> None:
    for i in range(0, len(outputs), CHUNK):
        f.hand(outputs[i:i + CHUNK], i + CHUNK)  # type: ignore[arg-type]


def test_a_sink_failing_on_a_chunk_stops_the_backfill_and_resume_loses_nothing(
        tmp_path: Path) -> None:
    outputs = list(range(50))
    flaky, store, plain = MarkedSink("influxdb", fail_at=30), MarkedSink("store"), PlainSink()
    f = feeder(tmp_path, [flaky, store, plain], resume=False)
    with pytest.raises(backfill.BackfillFailed) as e:
        run(f, outputs)
    f.close()
    msg = str(e.value)
    assert "sink influxdb failed on outputs 21-30" in msg and "OSError: disk on fire" in msg
    # The other sinks took the chunk; the checkpoint and the failed sink's mark stay before it.
    assert store.got == outputs[:30] and plain.got == outputs[:30]
    assert flaky.got == outputs[:20]
    ck = json.loads((tmp_path / "replay.checkpoint.json").read_text())
    assert ck["handed"] == 20 and flaky.marks == {ck["key"]: 20}

    flaky.fail_at = None  # the disk was replaced
    f = feeder(tmp_path, [flaky, store, plain], resume=True)
    assert f.skip == [20, 30, 20]
    run(f, outputs)
    f.done(lambda why: None)
    f.close()
    assert flaky.got == outputs and store.got == outputs  # once each
    twice = Counter(plain.got) - Counter(outputs)
    assert set(plain.got) == set(outputs) and set(twice) <= set(outputs[20:30])
    assert not (tmp_path / "replay.checkpoint.json").exists()
    assert flaky.marks == {} and store.marks == {}


def test_without_a_failure_every_sink_gets_every_output_once(tmp_path: Path) -> None:
    outputs = list(range(50))
    a, b, plain = MarkedSink("influxdb"), MarkedSink("store"), PlainSink()
    f = feeder(tmp_path, [a, b, plain], resume=False)
    run(f, outputs)
    f.done(lambda why: None)
    f.close()
    assert a.got == b.got == plain.got == outputs


class FailsOnce:
    """A sink without marks that raises on its second hand-over, in the first run only."""

    name = "webhook"
    calls = 0

    def handle(self, outputs: list[Any]) -> None:
        FailsOnce.calls += 1
        if FailsOnce.calls == 2:
            raise ConnectionError("receiver went away")

    def close(self) -> None:
        pass


def test_replay_c_stops_with_exit_1_naming_the_sink_and_resume_completes_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.jsonl"
    scenarios.write(str(trace), scenarios.build("gnss_clean", seed=3, duration_s=600))
    conf = tmp_path / "timewatch.toml"
    conf.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n')
    cfg = load(conf)
    real = sinks_mod.build_sinks
    monkeypatch.setattr(sinks_mod, "build_sinks",
                        lambda c, backfill=False: [*real(c, backfill=backfill), FailsOnce()])
    monkeypatch.setattr(backfill, "CHUNK_OUTPUTS", 200)
    FailsOnce.calls = 0

    assert cli.main(["replay", str(trace), "-c", str(conf), "--events", os.devnull]) == 1
    err = capsys.readouterr().err
    assert "sink webhook failed on outputs" in err and "ConnectionError: receiver went away" in err
    assert "--resume` continues" in err
    assert (cfg.state_dir / "replay.checkpoint.json").exists()

    assert cli.main(["replay", str(trace), "-c", str(conf), "--events", os.devnull,
                     "--resume"]) == 0
    assert not (cfg.state_dir / "replay.checkpoint.json").exists()
    monkeypatch.setattr(sinks_mod, "build_sinks", real)
    # The store: every sample of the uninterrupted replay, once.
    con = sqlite3.connect(f"file:{cfg.store_path}?mode=ro", uri=True)
    try:
        got = Counter(con.execute("SELECT src, t_ns FROM samples").fetchall())
    finally:
        con.close()
    whole = tmp_path / "whole"
    conf2 = tmp_path / "whole.toml"
    conf2.write_text(f'[monitor]\nstate_dir = "{whole}"\n')
    assert cli.main(["replay", str(trace), "-c", str(conf2), "--events", os.devnull]) == 0
    con = sqlite3.connect(f"file:{load(conf2).store_path}?mode=ro", uri=True)
    try:
        want = Counter(con.execute("SELECT src, t_ns FROM samples").fetchall())
    finally:
        con.close()
    assert sum(want.values()) > 1000 and got == want
