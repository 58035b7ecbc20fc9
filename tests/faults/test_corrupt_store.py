"""Issue 18 finding 12: a store corrupted under a running monitor (random bytes over a few
pages). Before, nothing was ever written again ("check permissions and free space"), and
`status` and `export` failed. Now the damaged file is moved aside under a timestamped name (logged),
a fresh store takes everything from then on, and `status` and `export` say where the damaged copy
is; reading a corrupt store says it is corrupt."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.faults.runs import ROOT, NtpServers, Run, config_text, wait_for

PAGE = 4096


def _count(db: Path) -> int:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(c.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def corrupt(db: Path, pages: range, seed: int = 1) -> None:
    """Random bytes over pages of the database file, after its WAL is folded into it (so the
    damage is what the writer reads next, not hidden behind newer copies in the WAL)."""
    c = sqlite3.connect(db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    rng = random.Random(seed)
    with open(db, "r+b") as f:
        for p in pages:
            f.seek(p * PAGE)
            f.write(rng.randbytes(PAGE))
        f.flush()
        os.fsync(f.fileno())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "timewatch.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_corrupt_store_is_moved_aside_writing_resumes_and_status_export_say_so(
        tmp_path: Path) -> None:
    servers = NtpServers(["127.0.0.101", "127.0.0.102", "127.0.0.103"])
    state = tmp_path / "state"
    db = state / "timewatch.db"
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(state, servers))
    run = Run(cfg)
    try:
        wait_for(lambda: _count(db) >= 15, 60, "samples in the store")
        corrupt(db, range(2, 6))
        t_fault = time.time_ns()
        run.wait_log("is corrupt", 30)
        damaged = sorted(state.glob("timewatch.db.corrupt-*"))
        damaged = [p for p in damaged if not p.name.endswith(("-wal", "-shm"))]
        assert len(damaged) == 1, list(state.iterdir())
        assert str(damaged[0]) in run.err  # logged with its name
        # Writing resumes in a fresh store, from the batch that met the damage on.
        wait_for(lambda: _count(db) >= 9, 30, "samples in the fresh store")
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        first = c.execute("SELECT MIN(t_ns) FROM samples").fetchone()[0]
        c.close()
        assert first <= t_fault + 1_000_000_000
        st = cli("status", "-c", str(cfg))
        assert st.returncode == 0, st.stderr
        assert "corrupt" in st.stdout + st.stderr and str(damaged[0]) in st.stdout + st.stderr
        ex = cli("export", "-c", str(cfg), "-o", str(tmp_path / "out.lp"))
        assert ex.returncode == 0, ex.stderr
        assert "corrupt" in ex.stderr and str(damaged[0]) in ex.stderr
        assert "tw_sample" in (tmp_path / "out.lp").read_text()
    finally:
        rc = run.stop()
        servers.close()
    assert rc == 0, run.err[-3000:]
    assert "Traceback" not in run.err

    # A corrupt store read while no monitor runs: status and export say it is corrupt.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(damaged[0], other / "timewatch.db")
    cfg2 = tmp_path / "other.toml"
    cfg2.write_text(f'[monitor]\nhost = "t"\nstate_dir = "{other}"\n\n[http]\nlisten = ""\n')
    for args in (("status", "-c", str(cfg2)), ("export", "-c", str(cfg2), "-o",
                                                 str(tmp_path / "o2.lp"))):
        p = cli(*args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert f"store {other / 'timewatch.db'} is corrupt" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
