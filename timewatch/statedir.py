"""One monitor per state directory: an exclusive `flock` on STATE_DIR/timewatch.lock, which holds
the PID of the monitor that has it. The kernel drops the lock when that process ends, however it
ends (kill -9 included), so a stale file never blocks the next start; the file is left in place
(removing it would let a third process lock a new file while a second still waits on the old).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILENAME = "timewatch.lock"


class StateDirInUse(Exception):
    """Another process holds the state directory's lock."""


class StateLock:
    """Held from `acquire` until `release` (or the end of the process)."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_FILENAME
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        """Take the lock. Raises StateDirInUse naming the holder's PID, or OSError when the lock
        file can be neither made nor opened (a read-only state dir without one)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        writable = True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:  # a read-only state dir: lock the file that is there (or raise)
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            pid = holder(self.state_dir)
            who = str(pid) if pid is not None and pid > 0 else "(starting)"
            raise StateDirInUse(f"state dir {self.state_dir} is in use by timewatch PID {who} "
                                f"(its lock: {self.path}); one monitor per state directory") \
                from None
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(state_dir: str | Path) -> int | None:
    """The PID written in the lock file, when the lock is held; None when it is free or absent."""
    path = Path(state_dir) / LOCK_FILENAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
