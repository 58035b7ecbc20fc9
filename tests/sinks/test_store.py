"""The embedded store: round trip, WAL, retention in trace time, kill -9, and a store that cannot
be written (nothing accepted is silently dropped)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from timewatch.config import Config, parse
from timewatch.records import Event, Output, Sample, Snapshot, SourceStatus
from timewatch.sinks.store import Store, StoreSink

ROOT = Path(__file__).resolve().parents[2]
T = 1_764_160_950_000_000_000  # 2025-11-26T12:42:30Z
S = 1_000_000_000  # one second in ns
DAY = 86400 * S


def make_cfg(state_dir: Path, retention_days: float = 30.0) -> Config:
    return parse({"monitor": {"state_dir": str(state_dir), "host": "test"},
                  "store": {"retention_days": retention_days},
                  "sources": [{"id": "ntp1", "kind": "ntp", "server": "127.0.0.1"},
                              {"id": "ntp2", "kind": "ntp", "server": "127.0.0.2"}]})


def samples(t0: int, n: int, src: str = "ntp1") -> list[Output]:
    return [Sample(src, t0 + i * S, 1e-3 * i, 2e-3, {"delay_s": 0.01 + i * 1e-6, "stratum": 2.0})
            for i in range(n)]


def snapshot(t: int, active: tuple[str, ...] = ()) -> Snapshot:
    return Snapshot(
        t_ns=t,
        sources=(SourceStatus("ntp1", "ntp", "g1", "truechimer", "inside the consensus interval",
                              0.0012, 0.002, t - S),
                 SourceStatus("ntp2", "ntp", "g2", "falseticker", "offset +2.5 s outside [..]",
                              2.5, 0.003, t - 2 * S)),
        quorum=True, groups_agreeing=2, groups_voting=3, consensus_offset_s=1e-4,
        consensus_bound_s=5e-4, active_alerts=active, holdover_ppm=-12.5)


def alert(t: int, aid: str, code: str = "source.falseticker") -> Event:
    return Event("alert", t, code, ("ntp2",), aid, "critical", "ntp2 disagrees",
                 {"offset_s": 2.5, "consensus_offset_s": 1e-4})


def clear(t: int, aid: str, code: str = "source.falseticker") -> Event:
    return Event("clear", t, code, ("ntp2",), aid)


def write_all(cfg: Config, outputs: list[Output], **kw: float) -> StoreSink:
    sink = StoreSink(cfg, **kw)  # type: ignore[arg-type]
    sink.handle(outputs)
    assert sink.flush(10.0)
    sink.close()
    return sink


def test_a_healthy_store_takes_more_than_the_memory_bound_in_one_call(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    sink = write_all(cfg, samples(T, 300), max_pending=100)
    assert sink.written == 300 and sink.dropped == 0


def test_round_trip_samples_snapshots_and_events(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    outs: list[Output] = [*samples(T, 20), alert(T + 5 * S, "a1"), snapshot(T + 10 * S, ("source.falseticker:a1",)),
                          clear(T + 15 * S, "a1"), *samples(T + 20 * S, 5, "ntp2"), snapshot(T + 20 * S)]
    sink = write_all(cfg, outs)
    assert sink.written == len(outs) and sink.dropped == 0
    st = Store(cfg.store_path, readonly=True)
    assert list(st.iter_samples()) == [o for o in outs if isinstance(o, Sample)]
    assert list(st.iter_events()) == [o for o in outs if isinstance(o, Event)]
    assert list(st.iter_snapshots()) == [o for o in outs if isinstance(o, Snapshot)]
    assert st.latest_snapshot() == outs[-1]
    assert list(st.iter_samples(T + 18 * S))[0].t_ns == T + 18 * S
    assert st.counts() == {"samples": 25, "snapshots": 2, "verdicts": 4, "events": 2}
    st.close()


def test_an_event_written_twice_is_stored_once(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    write_all(cfg, [alert(T, "a1")])
    write_all(cfg, [alert(T, "a1"), clear(T + S, "a1")])  # e.g. the same trace replayed again
    st = Store(cfg.store_path, readonly=True)
    assert [(e.id, e.type) for e in st.iter_events()] == [("a1", "alert"), ("a1", "clear")]


def test_active_alerts_are_those_the_latest_snapshot_lists_or_raised_after_it(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    write_all(cfg, [alert(T, "old"), alert(T + S, "gone", "source.stale"),
                    snapshot(T + 2 * S, ("source.falseticker:old", "source.stale:gone")),
                    clear(T + 3 * S, "gone", "source.stale"),
                    alert(T + 4 * S, "new", "consensus.lost")])
    st = Store(cfg.store_path, readonly=True)
    assert [e.id for e in st.active_alerts()] == ["old", "new"]


def test_store_is_wal_with_time_indexes(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    write_all(cfg, samples(T, 3))
    db = sqlite3.connect(cfg.store_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    idx = {r[0]: r[1] for r in db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index'")}
    for table in ("samples", "snapshots", "verdicts", "events"):
        cols = {c for name, t in idx.items() if t == table
                for c in [r[2] for r in db.execute(f"PRAGMA index_info({name})")]}
        assert "t_ns" in cols, f"{table} has no index on t_ns"
    assert cfg.store_path.parent == tmp_path


def test_retention_prunes_by_trace_time_while_running(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, retention_days=1.0)
    sink = StoreSink(cfg)
    sink.handle([*samples(T, 10), alert(T, "a"), snapshot(T + S)])
    assert sink.flush()
    sink.handle(samples(T + 2 * DAY, 3))  # two days later in trace time
    assert sink.flush()
    sink.close()
    st = Store(cfg.store_path, readonly=True)
    assert st.counts() == {"samples": 3, "snapshots": 0, "verdicts": 0, "events": 0}
    assert sink.pruned == 10 + 1 + 1 + 2


def test_retention_prunes_at_start(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, retention_days=1.0)
    st = Store(cfg.store_path)
    st.write([*samples(T, 5), *samples(T + 3 * DAY, 2)])  # written without retention
    st.close()
    sink = StoreSink(cfg)
    assert sink.flush()
    deadline = time.monotonic() + 5
    while sink.pruned == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.close()
    assert sink.pruned == 5
    assert Store(cfg.store_path, readonly=True).counts()["samples"] == 2


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from timewatch.config import parse
    from timewatch.records import Sample
    from timewatch.sinks.store import StoreSink
    cfg = parse({"monitor": {"state_dir": sys.argv[1]}})
    sink = StoreSink(cfg)
    t0 = int(sys.argv[2])
    i = 0
    while True:
        sink.handle([Sample("s", t0 + (i + k) * 1000, 1e-3, 1e-3, {"n": float(i + k)})
                     for k in range(200)])
        i += 200
        if i % 2000 == 0:
            sink.flush()
            print(sink.written, flush=True)
""")


def test_kill_9_loses_no_committed_row_and_never_corrupts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    committed = 0
    for run in range(3):
        p = subprocess.Popen([sys.executable, "-c", _WRITER, str(state), str(T + run * DAY)],
                             stdout=subprocess.PIPE, text=True, env=env)
        assert p.stdout is not None
        lines = 0
        for line in p.stdout:
            committed_in_run = int(line)
            lines += 1
            if lines == 3 + run:
                break
        time.sleep(0.01 * run)  # kill at different points of the writer's cycle
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        committed += committed_in_run
        db = sqlite3.connect(state / "timewatch.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        # Every row reported committed is there; rows of a run are contiguous (no holes).
        assert n >= committed, f"run {run}: {n} rows, {committed} reported committed"
        got = db.execute("SELECT COUNT(*), MIN(t_ns), MAX(t_ns) FROM samples WHERE t_ns >= ?",
                         (T + run * DAY,)).fetchone()
        assert got[0] == (got[2] - got[1]) // 1000 + 1
        committed = n
        db.close()


def test_unwritable_state_dir_is_an_error_naming_the_path_and_rows_wait_in_memory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the state directory should be\n")
    cfg = make_cfg(blocker / "state")
    caplog.set_level(logging.INFO)
    sink = StoreSink(cfg, retry_s=0.05)
    outs = [*samples(T, 50), alert(T, "a1"), snapshot(T + S)]
    sink.handle(outs)
    assert not sink.flush(0.5)
    assert sink.pending == len(outs)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and str(cfg.store_path) in errors[0] and "cannot be written" in errors[0]
    blocker.unlink()  # the operator fixes it
    assert sink.flush(10.0)
    sink.close()
    assert sink.written == len(outs) and sink.dropped == 0
    assert Store(cfg.store_path, readonly=True).counts()["samples"] == 50
    assert any("writable again" in r.getMessage() for r in caplog.records)


def test_past_the_memory_bound_the_oldest_are_dropped_counted_and_warned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cfg = make_cfg(blocker / "state")
    sink = StoreSink(cfg, retry_s=0.05, max_pending=100)
    deadline = time.monotonic() + 5
    while sink.failing is None and time.monotonic() < deadline:  # the writer tried at start
        time.sleep(0.01)
    sink.handle(samples(T, 150))
    assert sink.dropped == 50
    assert any(r.levelno == logging.WARNING and "dropped the 50 oldest" in r.getMessage()
               for r in caplog.records)
    blocker.unlink()
    assert sink.flush(10.0)
    sink.close()
    got = list(Store(cfg.store_path, readonly=True).iter_samples())
    assert [s.t_ns for s in got] == [T + i * S for i in range(50, 150)]


_FULL = textwrap.dedent("""
    import json, resource, signal, sys, time
    from timewatch.config import parse
    from timewatch.records import Sample
    from timewatch.sinks.store import StoreSink
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    cfg = parse({"monitor": {"state_dir": sys.argv[1]}})
    sink = StoreSink(cfg, retry_s=0.05)
    sink.handle([Sample("s", 0, 0.0, 0.0, {})])
    assert sink.flush()
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))  # the disk is full now
    n = 20000
    sink.handle([Sample("s", i + 1, 1e-3, 1e-3, {"pad_s": float(i)}) for i in range(n)])
    full = not sink.flush(1.0)
    waiting = sink.pending
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    ok = sink.flush(20.0)
    sink.close()
    print(json.dumps({"full": full, "waiting": waiting, "ok": ok, "written": sink.written,
                      "dropped": sink.dropped}))
""")


def test_disk_full_keeps_the_rows_and_writes_them_when_space_returns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    p = subprocess.run([sys.executable, "-c", _FULL, str(state)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout)
    assert res["full"] and res["waiting"] > 0, res
    assert res["ok"] and res["written"] == 20001 and res["dropped"] == 0, res
    assert "cannot be written" in p.stderr and str(state / "timewatch.db") in p.stderr
    db = sqlite3.connect(state / "timewatch.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 20001


def test_a_deleted_store_file_is_reported_and_a_new_one_takes_the_new_rows(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_cfg(tmp_path)
    sink = StoreSink(cfg, retry_s=0.05)
    sink.handle(samples(T, 10))
    assert sink.flush()
    for suffix in ("", "-wal", "-shm"):
        Path(str(cfg.store_path) + suffix).unlink(missing_ok=True)
    sink.handle(samples(T + 100 * S, 7))
    assert sink.flush(10.0)
    sink.close()
    assert any("deleted" in r.getMessage() and str(cfg.store_path) in r.getMessage()
               for r in caplog.records if r.levelno >= logging.ERROR)
    assert Store(cfg.store_path, readonly=True).counts()["samples"] == 7


def test_reading_a_missing_store_names_the_path(tmp_path: Path) -> None:
    from timewatch.sinks.store import StoreError

    with pytest.raises(StoreError, match=str(tmp_path / "nope.db")):
        Store(tmp_path / "nope.db", readonly=True)


def test_retention_never_counts_from_ahead_of_the_host_clock(tmp_path: Path) -> None:
    """A sample 400 days ahead of the host clock (a wrong clock in a record) deletes nothing
    retention would keep by the host clock; what is older than retention by it still goes."""
    cfg = make_cfg(tmp_path, retention_days=30.0)
    now = time.time_ns()
    sink = StoreSink(cfg)
    sink.handle([*samples(now - 31 * DAY, 2), *samples(now - 29 * DAY, 3), *samples(now - DAY, 4)])
    assert sink.flush()
    sink.handle(samples(now + 400 * DAY, 1))
    assert sink.flush()
    sink.close()
    assert sink.pruned == 2
    assert Store(cfg.store_path, readonly=True).counts()["samples"] == 3 + 4 + 1


def test_a_backfill_commits_each_batch_with_its_mark_even_around_a_poison_output(
        tmp_path: Path) -> None:
    """Outputs handed with marks (replay -c): every commit ends at a mark and carries it, also
    the halves of a batch split to isolate an output SQLite refuses (its mark is what its last
    output reaches), so the store's mark always counts exactly the outputs committed."""
    from timewatch.sinks import Mark
    from timewatch.sinks.store import _reach

    cfg = make_cfg(tmp_path)
    sink = StoreSink(cfg)
    assert sink.resume_point("bf") is None  # no store yet
    first = samples(T, 1500)
    bad = Sample("ntp1", T + 2000 * S, float("nan"), 2e-3, {})  # NOT NULL offset: poison
    second = samples(T + 3000 * S, 1500, "ntp2")
    sink.handle_marked(first, Mark("bf", 1500))
    sink.handle_marked(second[:700] + [bad] + second[700:], Mark("bf", 3001))
    assert sink.flush(30.0)
    assert sink.resume_point("bf") == 3001 and sink.skipped == 1 and sink.written == 3000
    sink.close()
    st = Store(cfg.store_path, readonly=True)
    assert st.counts()["samples"] == 3000 and st.mark("bf") == 3001
    st.close()
    # The mark of what precedes a run of items: the first mark in it (or the one after it)
    # less the outputs before that mark.
    m = Mark("k", 10)
    assert _reach([first[0], first[1], m, first[2]], None) == Mark("k", 8)
    assert _reach([first[0], first[1]], m) == Mark("k", 8)
    assert _reach([first[0]], None) is None
    sink2 = StoreSink(cfg)
    sink2.forget("bf")
    assert sink2.resume_point("bf") is None
    sink2.close()
