"""The InfluxDB sink against a real VictoriaMetrics (Debian `victoria-metrics`) receiving
influxdb-client's `/api/v2/write`: every point of every source arrives, exactly once, also when
the server goes away mid-run and comes back.

VictoriaMetrics turns `measurement field=value` into the series `measurement_field`, keeps time
at millisecond resolution and keeps duplicates (no `-dedup.minScrapeInterval` here), so counting
the exported samples per (series, labels, ms) shows every loss and every duplicate.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration import stores
from tests.integration.stores import (
    SYNTH_SOURCES,
    Victoria,
    synthetic_config_sources,
    synthetic_outputs,
)
from timewatch.config import Config, parse
from timewatch.sinks.influx import InfluxSink
from timewatch.sinks.lineproto import to_lines

pytestmark = pytest.mark.integration
victoria = stores.victoria  # the fixture, by name

DURATION_S = 600  # ten minutes of a five-source run: ~2,300 lines
Key = tuple[str, frozenset[tuple[str, str]], int]


def _cfg(tmp: Path, url: str, **kw: object) -> Config:
    return parse({"monitor": {"host": "pi-lab-1", "state_dir": str(tmp / "state")},
                  "sources": synthetic_config_sources(),
                  "sinks": {"influxdb": {"url": url, "org": "timewatch", "bucket": "timewatch",
                                         "token": "t0ken", "batch_size": 100,
                                         "flush_interval_s": 0.1, "timeout_s": 2.0, **kw}}})


def _unesc(s: str) -> str:
    return s.replace("\\,", ",").replace("\\ ", " ").replace("\\=", "=")


def expected_points(lines: list[str]) -> Counter[Key]:
    """What VictoriaMetrics should hold for these lines: one sample per numeric field."""
    want: Counter[Key] = Counter()
    for line in lines:
        head, rest = re.split(r"(?<!\\) ", line, maxsplit=1)
        fields, ts = rest.rsplit(" ", 1)
        meas, *tags = re.split(r"(?<!\\),", head)
        labels = frozenset(tuple(_unesc(p) for p in t.split("=", 1)) for t in tags)
        for k, v in re.findall(r'(?:^|,)([a-z0-9_]+)=("(?:[^"\\]|\\.)*"|[^,]+)', fields):
            if not v.startswith('"'):  # string fields: not part of what VictoriaMetrics keeps
                want[(f"{meas}_{k}", labels, int(ts) // 1_000_000)] += 1
    return want


def exported_points(vm: Victoria, names: set[str]) -> Counter[Key]:
    got: Counter[Key] = Counter()
    for series in vm.export():
        m = dict(series["metric"])
        name = m.pop("__name__")
        if name not in names:
            continue
        labels = frozenset(m.items())
        for ts in series["timestamps"]:
            got[(name, labels, int(ts))] += 1
    return got


# Seconds an export is repeated while points the sink had acknowledged do not show.
EXPORT_WAIT_S = 20.0


def _wait_export(vm: Victoria, want: Counter[Key]) -> Counter[Key]:
    """What VictoriaMetrics holds of want's series. The sink has closed with nothing pending:
    every point was acknowledged, and `export` flushes VictoriaMetrics' buffers first, so one
    export is normally exact. It is repeated (for up to EXPORT_WAIT_S) while points are
    missing, so that rows the server made searchable late are not misread as lost; a duplicate
    never goes away, and a point still missing after that is lost."""
    names = {k[0] for k in want}
    deadline = time.monotonic() + EXPORT_WAIT_S
    got = exported_points(vm, names)
    while want - got and time.monotonic() < deadline:
        time.sleep(0.5)
        got = exported_points(vm, names)
    return got


def _until(cond: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _diff(want: Counter[Key], got: Counter[Key]) -> str:
    missing = sum((want - got).values())
    dup = sum((got - want).values())
    return f"{missing} points missing, {dup} duplicates; e.g. {list((want - got) or (got - want))[:3]}"


def test_points_of_every_source_arrive(tmp_path: Path, victoria: Victoria) -> None:
    start = time.time_ns() // 10**9 * 10**9 - DURATION_S * 10**9
    outputs = synthetic_outputs(start, DURATION_S)
    cfg = _cfg(tmp_path, victoria.url)
    sink = InfluxSink(cfg)
    for i in range(0, len(outputs), 7):  # the engine hands over a few outputs at a time
        sink.handle(outputs[i:i + 7])
    sink.close()
    assert sink.pending == 0 and sink.rejected == 0
    want = expected_points(to_lines(outputs, "pi-lab-1", cfg.header().sources))
    got = _wait_export(victoria, want)
    assert got == want, _diff(want, got)
    per_source = Counter(dict(k[1])["source"] for k in got if k[0] == "tw_sample_offset_s")
    assert set(per_source) == set(SYNTH_SOURCES)
    assert per_source["gnss0"] == per_source["pps0"] == DURATION_S
    assert per_source["ptb"] == len([k for k in range(DURATION_S) if k % 16 == 2])


def test_server_stopped_mid_run_every_point_arrives_exactly_once(tmp_path: Path,
                                                                 victoria: Victoria) -> None:
    start = time.time_ns() // 10**9 * 10**9 - DURATION_S * 10**9
    outputs = synthetic_outputs(start, DURATION_S)
    cfg = _cfg(tmp_path, victoria.url)
    sink = InfluxSink(cfg)
    n = len(outputs)
    sent_before_stop = 0
    for i in range(0, n, 5):
        sink.handle(outputs[i:i + 5])
        time.sleep(0.004)  # ~2 s of feeding: the sender is writing while the server goes
        if i <= n // 3 < i + 5:
            _until(lambda: sink.sent > 0, "nothing sent before the stop")
            sent_before_stop = sink.sent
            victoria.stop()
        if i <= 2 * n // 3 < i + 5:
            _until(lambda: sink.failures > 0, "the sender never noticed the server was gone")
            victoria.start()
    # One more restart while the sender holds a backlog, from a thread, mid-drain.
    restart = threading.Thread(target=lambda: (victoria.stop(), time.sleep(0.3),
                                               victoria.start()))
    restart.start()
    restart.join()
    sink.close()
    assert sent_before_stop > 0
    assert sink.pending == 0 and sink.rejected == 0
    want = expected_points(to_lines(outputs, "pi-lab-1", cfg.header().sources))
    got = _wait_export(victoria, want)
    dups = sum((got - want).values())
    assert dups == 0, _diff(want, got)
    assert got == want, _diff(want, got)


def test_replay_with_an_influx_sink_delivers_everything_before_it_returns(
        tmp_path: Path, victoria: Victoria) -> None:
    """`timewatch replay -c CONFIG TRACE` sends the sink what it would have received live, and
    every point is on the server when the command returns (close flushes the spool)."""
    import argparse

    from timewatch.commands.replay import cmd_replay, replay_iter
    from timewatch.config import load
    from timewatch.sim import scenarios
    from timewatch.sinks.lineproto import Encoder
    from timewatch.trace import TraceReader

    st = scenarios.build("ntp_liar", seed=3, duration_s=900)
    trace = tmp_path / "liar.jsonl"
    scenarios.write(str(trace), st)
    conf = tmp_path / "timewatch.toml"
    # No [[sources]]: kind and trust group come from the engine's snapshots.
    conf.write_text(f'[monitor]\nhost = "replay-box"\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[sinks.influxdb]\nurl = "{victoria.url}"\ntoken = "t"\n'
                    'batch_size = 5000\nflush_interval_s = 3600\n')
    cfg = load(conf)
    rc = cmd_replay(argparse.Namespace(config=str(conf), trace=str(trace),
                                       events=str(tmp_path / "events.jsonl"), snapshots=False))
    assert rc == 0
    _, outputs = replay_iter(TraceReader(trace), cfg)
    want = expected_points(Encoder(cfg.host, {}).lines(outputs))
    kinds = {dict(k[1]).get("kind") for k in want if k[0] == "tw_sample_offset_s"}
    assert kinds == {"ntp"}
    # The NTP dashboard's sample fields are what the real engine emits for NTP sources.
    board = (Path(__file__).resolve().parents[2] / "grafana/dashboards/ntp.json").read_text()
    queried = set(re.findall(r'\w+\(\\"(\w+)\\"\) FROM \\"tw_sample\\"', board))
    assert {"offset_s", "delay_s", "stratum", "bound_s"} <= queried
    emitted = {k[0].removeprefix("tw_sample_") for k in want if k[0].startswith("tw_sample_")}
    assert queried <= emitted, f"queried but never emitted: {queried - emitted}"
    got = _wait_export(victoria, want)
    assert got == want, _diff(want, got)
