"""One monitor per state directory: the lock names its holder's PID, a second taker is refused
with it, and the kernel frees the lock when the holder dies, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from timewatch.statedir import StateDirInUse, StateLock, holder

HOLD = ("import sys, time\nfrom timewatch.statedir import StateLock\n"
        "StateLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(60)\n")


def test_a_second_taker_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    first = StateLock(tmp_path / "state").acquire()
    assert holder(tmp_path / "state") == os.getpid()
    with pytest.raises(StateDirInUse, match=f"state dir {tmp_path / 'state'} is in use by "
                                            f"timewatch PID {os.getpid()}"):
        StateLock(tmp_path / "state").acquire()
    first.release()
    assert holder(tmp_path / "state") is None  # free: the file stays, unlocked
    with StateLock(tmp_path / "state"):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        with pytest.raises(StateDirInUse, match=f"PID {p.pid} "):
            StateLock(tmp_path).acquire()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    deadline = time.monotonic() + 5
    while holder(tmp_path) is not None:  # the kernel drops the flock with the process
        assert time.monotonic() < deadline
        time.sleep(0.01)
    StateLock(tmp_path).acquire().release()
