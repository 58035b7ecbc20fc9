"""Issue 18: the runner survives the faults nobody had tried, each on a real `timewatch run`
subprocess against simulated NTP servers (the faults come from tests/faults/faultkind.py, a kind
and two sinks built outside the package, run by tests/faults/harness.py):

- the engine raises on one record: logged naming the record, skipped, everything else flows;
- sinks that raise or hang, and a webhook receiver and an InfluxDB that hang: the store and the
  event log keep all their data, shutdown is bounded, what the hung receivers did not take is
  delivered at the next start;
- SIGTERM and SIGINT: trace flushed and complete, queued events delivered or spooled, exit 0;
- a hung event loop: the systemd watchdog pings stop while it is blocked.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_root
from tests.faults.runs import (
    NtpServers,
    Run,
    config_text,
    events,
    fill,
    influx_points,
    mount_tmpfs,
    store_points,
    umount,
    wait_for,
)
from tests.sinks.test_influx import FakeInflux
from tests.sinks.test_webhook import Receiver

HOSTS = ["127.0.0.121", "127.0.0.122", "127.0.0.123"]
HARNESS = "tests.faults.harness"


@pytest.fixture
def servers() -> Iterator[NtpServers]:
    s = NtpServers(HOSTS)
    yield s
    s.close()


def trace_records(path: Path) -> list[dict[str, Any]]:
    """Every record line of a trace (header left out); a torn or unparsable line fails."""
    text = path.read_text()
    assert text.endswith("\n"), f"the trace ends inside a line: {text[-200:]!r}"
    lines = text.splitlines()
    return [json.loads(ln) for ln in lines[1:]]


def stopped_count(err: str) -> int:
    line = next(ln for ln in err.splitlines() if "stopped: " in ln)
    return int(line.split("stopped: ", 1)[1].split(" observations", 1)[0])


def outbox_keys(state: Path) -> set[str]:
    """Event keys (id.type) waiting in the webhook outboxes."""
    out: set[str] = set()
    for p in (state / "webhooks").glob("*.outbox.db"):
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            out |= {k for (k,) in db.execute("SELECT key FROM q")}
        finally:
            db.close()
    return out


def new_samples(state: Path, t0_ns: int, srcs: list[str]) -> list[int]:
    """Samples of each source in the store taken after t0_ns."""
    got = store_points(state / "timewatch.db")
    return [sum(1 for s, t in got if s == src and t > t0_ns) for src in srcs]


def delivered(hook: Receiver) -> set[str]:
    out = set()
    for r in hook.ok():
        d = r.json()
        out.add(f"{d['data']['id']}.{d['type'].rsplit('.', 1)[-1]}")
    return out


def logged(state: Path) -> set[str]:
    return {f"{e['id']}.{e['type']}" for e in events(state)}


def webhook_toml(hook: Receiver) -> str:
    return (f'[[sinks.webhook]]\nurl = "{hook.url}/hook"\nmin_severity = "info"\n'
            'retry_initial_s = 0.2\nretry_max_s = 1.0\ngroup_window_s = 0\ntimeout_s = 2.0\n')


def influx_toml(influx: FakeInflux) -> str:
    return (f'[sinks.influxdb]\nurl = "http://127.0.0.1:{influx.port}"\norg = "o"\nbucket = "b"\n'
            'batch_size = 20\nflush_interval_s = 0.5\ntimeout_s = 2.0\n\n')


FAULTY = '[[sources]]\nid = "f"\nkind = "faulty"\npoll_s = 0.2\n{opts}\n'


# -- the engine raises on one record ------------------------------------------------------------

def test_an_engine_exception_on_one_record_is_logged_naming_it_and_everything_else_flows(
        tmp_path: Path, servers: NtpServers) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(state, servers,
                               extra=FAULTY.format(opts="poison_every = 4")))
    trace = tmp_path / "run.jsonl"
    run = Run(cfg, args=("--record", str(trace)), module=HARNESS)
    try:
        run.wait_log("skipped (4 so far)", 60)
        # After four failures every source still reaches the store.
        t_fail = time.time_ns()
        wait_for(lambda: all(n >= 3 for n in new_samples(state, t_fail, ["s0", "s1", "s2", "f"])),
                 30, "new samples of every source")
    finally:
        rc = run.stop()
    assert rc == 0, run.err[-3000:]
    # Named by its trace line, with the traceback the first time; the run went on.
    assert ('engine failed on record {"type": "marked", "src": "f", "rx_ns": ' in run.err
            and '"seq": 3, "poison": true' in run.err), run.err[-3000:]
    assert "RuntimeError: marked record 3 of f is poison" in run.err
    assert "skipped (1 so far)" in run.err and "Traceback" in run.err
    # The trace holds what the engine was handed, the poison records too; every other record of
    # f became a sample in the store, none was lost to the failures around it.
    recs = trace_records(trace)
    assert len(recs) == stopped_count(run.err)
    marked = [r for r in recs if r["type"] == "marked"]
    poison = [r for r in marked if r.get("poison")]
    assert len(poison) >= 4 and run.err.count("engine failed on record") == len(poison)
    good = {r["rx_ns"] for r in marked if not r.get("poison")}
    stored = store_points(state / "timewatch.db")
    assert {t for s, t in stored if s == "f"} == good
    ntp = {(r["src"], r["rx_ns"]) for r in recs if r["type"] == "ntp"}
    assert len(ntp) >= 12 and {s for s, _ in stored} == {"s0", "s1", "s2", "f"}


# -- sinks that raise or hang, receivers that hang ----------------------------------------------

def test_sinks_that_raise_or_hang_hold_up_no_other_sink_and_lose_nothing_accepted(
        tmp_path: Path, servers: NtpServers) -> None:
    release = threading.Event()  # the receivers hang until the test releases them
    hook = Receiver(lambda n, r: (200, {}, b"ok") if release.wait() else (503, {}, b""))
    influx = FakeInflux()
    influx.answer = lambda lines: 204 if release.wait() else 503
    state = tmp_path / "state"
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(state, servers, extra=influx_toml(influx) + webhook_toml(hook)))
    try:
        # The hanging sink comes first: a fan-out that waits for it gives nobody anything.
        run = Run(cfg, module=HARNESS, env={"TW_TEST_SINKS": "hang,raise"})
        try:
            run.wait_log("sink hang: handle() blocks for good", 30)
            run.wait_log("sink raise failed on", 30)
            servers.set(2, silent=True)
            run.wait_log("alert source.stale s2", 60)
            servers.set(2, silent=False)
            run.wait_log("clear source.stale s2", 60)
            # The store and the event log keep taking everything meanwhile.
            wait_for(lambda: len(logged(state)) >= 2, 30, "alert and clear in the event log")
            t0 = time.time_ns()
            wait_for(lambda: all(n >= 5 for n in new_samples(state, t0, ["s0", "s1", "s2"])),
                     30, "5 new samples of each source in the store")
            wait_for(lambda: influx.requests == [] and hook.requests, 30,
                     "the webhook receiver holding a request")
        finally:
            t_stop = time.monotonic()
            rc = run.stop(timeout_s=60)
            stop_s = time.monotonic() - t_stop
        assert rc == 0, run.err[-3000:]
        # Shutdown is bounded (the hung sink is left behind, said) and inside TimeoutStopSec=20.
        assert stop_s < 19.0, stop_s
        assert "sink hang did not finish within 15 s of shutdown (hung)" in run.err
        # The raising sink: every failure said, the traceback only at the 1st, 2nd, 4th...
        fails = run.err.count("sink raise failed on")
        tracebacks = sum(ln.startswith("RuntimeError: a test sink that fails on every batch")
                         for ln in run.err.splitlines())
        assert fails >= 10 and tracebacks <= fails.bit_length() + 1, (fails, tracebacks)
        assert "sink raise failed to close cleanly" in run.err
        # What the hung receivers had not taken waits on disk and goes at the next start.
        first_events = logged(state)
        first_points = store_points(state / "timewatch.db")
        assert len(first_events) >= 2 and len(first_points) > 20
        assert first_events <= outbox_keys(state) | delivered(hook)
        assert (state / "influxdb.spool").exists()
        release.set()
        run2 = Run(cfg)
        try:
            wait_for(lambda: first_points <= influx_points(influx.lines), 60,
                     "run 1's points at the InfluxDB")
            wait_for(lambda: first_events <= delivered(hook), 60,
                     "run 1's events at the webhook")
        finally:
            assert run2.stop() == 0, run2.err[-3000:]
    finally:
        release.set()
        hook.close()
        influx.close()


# -- SIGTERM and SIGINT -------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_flushes_the_trace_and_delivers_or_spools_every_event_then_exit_0(
        tmp_path: Path, servers: NtpServers, sig: int) -> None:
    # SIGTERM while the webhook receiver is down: the events are spooled, and delivered at the
    # next start. SIGINT while it is up: they are delivered before the exit.
    down = sig == signal.SIGTERM
    hook = Receiver(lambda n, r: (503, {}, b"down") if down else (200, {}, b"ok"))
    state = tmp_path / "state"
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(state, servers, extra=webhook_toml(hook)))
    trace = tmp_path / "run.jsonl"
    try:
        run = Run(cfg, args=("--record", str(trace)))
        try:
            servers.set(2, silent=True)
            run.wait_log("alert source.stale s2", 60)
            servers.set(2, silent=False)
            run.wait_log("clear source.stale s2", 60)
        finally:
            rc = run.stop(sig=sig)
        assert rc == 0, run.err[-3000:]
        # The trace is complete: every record handed to the engine, each line whole.
        recs = trace_records(trace)
        assert len(recs) == stopped_count(run.err) and len(recs) > 10
        sent = logged(state)
        assert len(sent) >= 2
        if down:
            assert sent <= outbox_keys(state), (sent, outbox_keys(state))
            assert "events not delivered yet; they stay in the outbox" in run.err
            hook.plan = lambda n, r: (200, {}, b"ok")
            run2 = Run(cfg)
            try:
                wait_for(lambda: sent <= delivered(hook), 60, "the spooled events delivered")
            finally:
                assert run2.stop() == 0, run2.err[-3000:]
        else:
            assert sent <= delivered(hook), (sent, delivered(hook))
            assert outbox_keys(state) == set()
    finally:
        hook.close()


# -- a hung event loop --------------------------------------------------------------------------

BLOCK_S = 6.0
WATCHDOG_S = 2.0  # WatchdogSec


def test_a_blocked_event_loop_stops_the_watchdog_pings_and_they_resume_after(
        tmp_path: Path) -> None:
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    got: list[tuple[float, bytes]] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                got.append((time.monotonic(), sock.recv(4096)))
            except TimeoutError:
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    state = tmp_path / "state"
    cfg = tmp_path / "tw.toml"
    # One faulty source: its reader blocks the loop before its 20th record (about 4 s in).
    cfg.write_text(f'[monitor]\nstate_dir = "{state}"\n[http]\nlisten = ""\n\n'
                   + FAULTY.format(opts=f"block_at = 20\nblock_s = {BLOCK_S}"))
    run = Run(cfg, module=HARNESS,
              env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))})
    try:
        run.wait_log("blocking the event loop", 30)
        t_block = time.monotonic()
        run.wait_log("the event loop is free again", BLOCK_S + 10)
        t_free = time.monotonic()
        n = len(got)
        wait_for(lambda: sum(m == b"WATCHDOG=1" for _, m in got[n:]) >= 3, 10,
                 "pings after the block")
    finally:
        rc = run.stop()
        wait_for(lambda: any(m == b"STOPPING=1" for _, m in got), 5, "STOPPING=1")
        done.set()
        listener.join(5)
        sock.close()
    assert rc == 0, run.err[-3000:]
    assert got[0][1].startswith(b"READY=1"), got[:3]
    pings = [t for t, m in got if m == b"WATCHDOG=1"]
    before = [t for t in pings if t < t_block]
    assert len(before) >= 2, got
    # No ping while the loop was blocked: systemd (WatchdogSec=2) would have restarted it.
    assert not [t for t in pings if t_block + 0.5 < t < t_free - 0.5], (t_block, t_free, pings)
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) > BLOCK_S - 1.0 > WATCHDOG_S, gaps
    # Otherwise a ping inside every WatchdogSec, before and after.
    assert sorted(gaps)[-2] < WATCHDOG_S, gaps


# -- a hung sink's queue is bounded -------------------------------------------------------------

def test_a_hung_sinks_queue_is_bounded_and_what_it_drops_is_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """In-process (the bound is a module constant made small here): the hung sink's queue stops
    at SINK_QUEUE_MAX batches, the rest is dropped for it alone and counted; the sink beside it
    gets every output."""
    from tests.faults.faultkind import HangingSink
    from timewatch import runner as runner_mod
    from timewatch.config import parse
    from timewatch.records import Output
    from timewatch.runner import Runner

    class Collect:
        name = "collect"

        def __init__(self) -> None:
            self.batches: list[list[Output]] = []

        def handle(self, outputs: list[Output]) -> None:
            self.batches.append(outputs)

        def close(self) -> None:
            pass

    monkeypatch.setattr(runner_mod, "SINK_QUEUE_MAX", 5)
    monkeypatch.setattr(runner_mod, "SINK_CLOSE_S", 0.5)
    cfg = parse({"monitor": {"state_dir": str(tmp_path)}, "http": {"listen": ""},
                 "sources": [{"id": "f", "kind": "faulty", "poll_s": 0.05}]})
    hang, col = HangingSink(cfg), Collect()
    r = Runner(cfg, duration_s=3.0, sinks=[hang, col])
    caplog.set_level("WARNING", "timewatch.runner")
    assert asyncio.run(r.run()) == 0
    assert r.sinks is not None
    w_hang, w_col = r.sinks.workers
    outputs = sum(len(b) for b in col.batches)
    assert len(col.batches) > 30 and w_col.dropped == 0
    # One batch taken (hanging in handle), SINK_QUEUE_MAX waiting, every later one dropped.
    assert w_hang.dropped == sum(len(b) for b in col.batches[6:]) > 0
    assert w_hang.q.qsize() == 5 + 1  # and the closing sentinel
    drops = [m for m in caplog.messages if "batches waiting (it is hung or too slow)" in m]
    assert 1 <= len(drops) <= (len(col.batches) - 6).bit_length()
    assert f"sink hang: {w_hang.dropped} outputs were dropped for it" in caplog.text
    assert "sink hang did not finish within 0.5 s of shutdown (hung)" in caplog.text
    assert outputs > w_hang.dropped


# -- the trace's disk fills up ------------------------------------------------------------------

def test_a_full_disk_under_the_trace_stops_the_recording_not_the_monitoring(
        tmp_path: Path, servers: NtpServers) -> None:
    need_root()
    rec = tmp_path / "rec"
    mount_tmpfs(rec, "size=1M")
    try:
        state = tmp_path / "state"
        cfg = tmp_path / "tw.toml"
        cfg.write_text(config_text(state, servers))
        trace = rec / "run.jsonl"
        run = Run(cfg, args=("--record", str(trace)))
        try:
            wait_for(lambda: trace.exists() and trace.stat().st_size > 2000, 30,
                     "the trace growing")
            fill(rec / "filler")
            run.wait_log("recording stopped", 30)
            t0 = time.time_ns()
            wait_for(lambda: all(n >= 3 for n in new_samples(state, t0, ["s0", "s1", "s2"])),
                     30, "samples after the trace failed")
        finally:
            rc = run.stop()
        assert rc == 0, run.err[-3000:]
        assert f"trace {trace} cannot be written" in run.err and "No space left" in run.err
        # What was written is whole lines (a last line cut by the full disk at most).
        lines = trace.read_text().splitlines()
        assert len(lines) > 5
        for ln in lines[:-1]:
            json.loads(ln)
    finally:
        umount(rec)
