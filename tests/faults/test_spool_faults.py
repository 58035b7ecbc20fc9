"""Issue 18 findings 4, 5 and 11, against a real `timewatch run` with simulated NTP servers,
a local InfluxDB stand-in and a webhook receiver: the InfluxDB spool and the webhook outboxes
must lose nothing they were handed when their disk fails under them.

4. the state directory's file system fills up mid-run;
5. the state directory is read-only from the start;
11. the spool and outbox files are deleted mid-run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

HOSTS = ["127.0.0.91", "127.0.0.92", "127.0.0.93"]


@pytest.fixture
def world() -> Iterator[tuple[NtpServers, FakeInflux, Receiver]]:
    servers = NtpServers(HOSTS)
    influx = FakeInflux()
    hook = Receiver()
    yield servers, influx, hook
    hook.close()
    influx.close()
    servers.close()


def sinks_toml(influx: FakeInflux, hook: Receiver) -> str:
    return (f'[sinks.influxdb]\nurl = "http://127.0.0.1:{influx.port}"\norg = "o"\nbucket = "b"\n'
            'batch_size = 20\nflush_interval_s = 0.5\ntimeout_s = 2.0\n\n'
            f'[[sinks.webhook]]\nurl = "{hook.url}/hook"\nmin_severity = "info"\n'
            'retry_initial_s = 0.2\nretry_max_s = 1.0\ngroup_window_s = 0\n')


def delivered(hook: Receiver) -> set[str]:
    """Event keys (id.type) the receiver acknowledged (standard format: one event a message)."""
    out = set()
    for r in hook.ok():
        d = r.json()
        out.add(f"{d['data']['id']}.{d['type'].rsplit('.', 1)[-1]}")
    return out


def logged(state: Path) -> set[str]:
    return {f"{e['id']}.{e['type']}" for e in events(state)}


def stale_alert_and_clear(run: Run, servers: NtpServers, i: int = 2) -> None:
    """Make source s{i} go stale and come back: an alert and its clear."""
    servers.set(i, silent=True)
    run.wait_log(f"alert source.stale s{i}", 60)
    servers.set(i, silent=False)
    run.wait_log(f"clear source.stale s{i}", 60)


def test_disk_full_under_the_state_dir_loses_no_event_and_no_point(
        tmp_path: Path, world: tuple[NtpServers, FakeInflux, Receiver]) -> None:
    need_root()
    servers, influx, hook = world
    state = tmp_path / "state"
    mount_tmpfs(state, "size=4M")
    try:
        cfg = tmp_path / "tw.toml"
        cfg.write_text(config_text(state, servers, extra=sinks_toml(influx, hook)))
        run = Run(cfg)
        try:
            wait_for(lambda: len(influx.lines) >= 10, 60, "first points at the InfluxDB")
            influx.answer = lambda lines: 503  # InfluxDB down: its points must wait somewhere
            filled = fill(state / "filler")
            assert filled > 0
            run.wait_log("disk is full", 30)  # the disk is full for the sinks too
            stale_alert_and_clear(run, servers)
            # Alerts reach the webhook while the disk is full.
            wait_for(lambda: len(delivered(hook)) >= 2, 30, "events at the webhook")
            (state / "filler").unlink()  # space again
            influx.answer = lambda lines: 204
            wait_for(lambda: len(logged(state)) >= 2, 30, "the event log written again")
        finally:
            rc = run.stop()
        assert rc == 0, run.err[-3000:]
        # Everything the engine produced reached the webhook and the InfluxDB: what the store and
        # the event log (which keep their rows in memory meanwhile) hold, all of it.
        assert logged(state) and logged(state) <= delivered(hook), (logged(state),
                                                                    delivered(hook))
        stored = store_points(state / "timewatch.db")
        assert len(stored) > 20
        missing = stored - influx_points(influx.lines)
        assert not missing, f"{len(missing)} points lost of {len(stored)}:\n{run.err[-3000:]}"
        # Said honestly, naming the files.
        assert f"cannot write {state / 'influxdb.spool'}" in run.err
        assert "webhooks/" in run.err and ".outbox.db" in run.err and "kept in memory" in run.err
    finally:
        umount(state)


def test_read_only_state_dir_keeps_run_going_on_memory_and_says_so(
        tmp_path: Path, world: tuple[NtpServers, FakeInflux, Receiver]) -> None:
    need_root()
    servers, influx, hook = world
    state = tmp_path / "state"
    mount_tmpfs(state, "ro,size=1M")
    try:
        cfg = tmp_path / "tw.toml"
        cfg.write_text(config_text(state, servers, extra=sinks_toml(influx, hook)))
        run = Run(cfg)
        try:
            # Before: "unable to open database file", no path named, and the run was over.
            wait_for(lambda: len(influx.lines) >= 10 or run.p.poll() is not None, 60,
                     "points at the InfluxDB")
            assert run.p.poll() is None, run.err[-3000:]
            stale_alert_and_clear(run, servers)
            wait_for(lambda: len(delivered(hook)) >= 2, 30, "events at the webhook")
            # The InfluxDB goes down before the end: what it did not take is only in memory.
            influx.answer = lambda lines: 503
            n = len(influx.lines)
            wait_for(lambda: "write failed" in run.err, 30, "a failed write")
        finally:
            rc = run.stop()
        assert rc == 0, run.err[-3000:]
        assert n >= 10 and len(delivered(hook)) >= 2
        # Said clearly, naming the paths.
        assert f"cannot write {state / 'influxdb.spool'}" in run.err
        assert "webhooks/" in run.err and ".outbox.db" in run.err
        assert "Read-only file system" in run.err or "readonly" in run.err
        # Shutdown does not promise what it cannot keep.
        assert "sent at the next start" not in run.err, run.err[-3000:]
        assert "are lost" in run.err
    finally:
        umount(state)


def test_spool_and_outbox_deleted_mid_run_lose_nothing_and_shutdown_tells_the_truth(
        tmp_path: Path, world: tuple[NtpServers, FakeInflux, Receiver]) -> None:
    servers, influx, hook = world
    state = tmp_path / "state"
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(state, servers, extra=sinks_toml(influx, hook)))
    # Run 1: the InfluxDB and the webhook receiver are down; everything waits in the spools.
    influx.answer = lambda lines: 503
    hook.plan = lambda n, r: (503, {}, b"down")
    run = Run(cfg)
    try:
        servers.set(2, silent=True)
        run.wait_log("alert source.stale s2", 60)
        wait_for(lambda: list((state / "webhooks").glob("*.outbox.db")), 10, "an outbox")
        wait_for(lambda: len(influx.requests) >= 2, 30, "failed writes")
        # Someone deletes the spool and the outboxes (with their -wal and -shm) mid-run.
        victims = list(state.glob("influxdb.spool*")) + list((state / "webhooks").glob(
            "*.outbox.db*"))
        assert len(victims) >= 2
        for p in victims:
            p.unlink()
        servers.set(2, silent=False)
        run.wait_log("clear source.stale s2", 60)
        run.wait_log("was deleted", 30)  # noticed, and said
        n = len(influx.requests)
        wait_for(lambda: len(influx.requests) >= n + 2, 30, "more failed writes")
    finally:
        rc = run.stop()
    assert rc == 0, run.err[-3000:]
    first_points = store_points(state / "timewatch.db")
    first_events = logged(state)
    assert len(first_points) > 10 and len(first_events) >= 2
    # Run 1's shutdown said what stays for the next start: it must be there.
    assert (state / "influxdb.spool").exists(), run.err[-3000:]
    # Run 2: both receivers up; everything run 1 accepted arrives.
    influx.answer = lambda lines: 204
    hook.plan = lambda n, r: (200, {}, b"ok")
    run2 = Run(cfg)
    try:
        wait_for(lambda: first_points <= influx_points(influx.lines), 60,
                 "run 1's points at the InfluxDB")
        wait_for(lambda: first_events <= delivered(hook), 60, "run 1's events at the webhook")
    finally:
        assert run2.stop() == 0, run2.err[-3000:]


def test_a_deleted_webhook_ledger_is_rewritten_so_a_later_clear_still_goes_out(
        tmp_path: Path) -> None:
    from tests.sinks.test_webhook import config, events_sequence, keys
    from timewatch.sinks.webhook import WebhookSink

    hook = Receiver()
    try:
        cfg = config(tmp_path, {"url": hook.url})
        alert, clear = events_sequence(1)
        assert (alert.type, clear.type) == ("alert", "clear")
        sink = WebhookSink(cfg)
        sink.handle([events_sequence(1, seed=3, prefix="x")[0]])
        assert hook.wait(lambda r: len(r.ok()) == 1)
        for p in (tmp_path / "state" / "webhooks").glob("*.ledger.db*"):
            p.unlink()  # deleted while in use
        sink.handle([alert])  # delivered; recorded as open in the ledger
        assert hook.wait(lambda r: len(r.ok()) == 2)
        sink.close()
        # After a restart the ledger still knows the open alert: its clear goes out.
        sink = WebhookSink(cfg)
        sink.handle([clear])
        assert hook.wait(lambda r: len(r.ok()) == 3), "the clear was never sent"
        sink.close()
        assert keys(hook.ok())[1:] == [f"{alert.id}.alert", f"{clear.id}.clear"]
    finally:
        hook.close()
