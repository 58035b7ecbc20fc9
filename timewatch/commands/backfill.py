"""What `replay -c` and `export --influxdb` share as backfills: the checkpoint in the state
directory, the outputs handed to the sinks in marked chunks, and the wait for slow sinks.

The checkpoint (`STATE/<command>.checkpoint.json`, replaced atomically after each chunk) names
the backfill (its key), what it reads and how far it has got. Each sink that resumes
(`sinks.Resumable`: the store, InfluxDB) keeps its own mark of the key, written in the same
transaction as the data: after a `kill -9` at any moment, `--resume` hands each sink exactly what
it does not have yet. A sink without marks (the event log, webhooks) gets what follows the
checkpoint's count: the events of the last chunk before a kill may come again (same ids).

A sink that raises on a chunk stops the backfill (`BackfillFailed`) with the checkpoint before
that chunk: a backfill promises every output to every sink, so it does not go on without one.

A replay's mark counts outputs: the engine is deterministic, so a resumed replay runs the whole
trace through the engine again (it needs the state) and hands each sink only the outputs after
its mark. An export's mark is the time it reached (`export.py`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import UsageError
from ..records import Output
from ..sinks import Mark, Sink, close_all

log = logging.getLogger(__name__)

# Outputs per chunk at most (fewer than the store's BATCH_MAX, with room for the outputs of the
# step that reaches it, so that every store commit ends at a mark) ...
CHUNK_OUTPUTS = 4000
# ... and trace records per chunk: one spool transaction (one fsync) and one checkpoint per
# chunk, not per record (about 50 chunks for a day of GNSS + PPS + NTP; 2000 and 4096 made 180,
# whose fsyncs and checkpoints took 7% of the wall time).
CHUNK_RECORDS = 16384
# A backfill waiting for a sink that has taken nothing for this long gives up (the checkpoint
# stays: `--resume` continues).
STALL_S = 600.0
# Seconds between looks at a sink being waited for.
POLL_S = 0.05


class BackfillFailed(Exception):
    """The backfill cannot go on now; the message says why. Its checkpoint and each sink's mark
    stay where every sink had taken everything: `--resume` continues from there."""


class BackfillStalled(BackfillFailed):
    """A sink took nothing for STALL_S; the message says what waits and how to continue."""


def resumable(sink: Sink) -> bool:
    return hasattr(sink, "handle_marked")


def lock(state_dir: Path, command: str) -> int:
    """One backfill at a time per state directory (they share the checkpoint's directory and
    the backfill spool): an exclusive lock on STATE/backfill.lock, held until the returned file
    descriptor is closed (or the process ends). UsageError when another backfill holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "backfill.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise UsageError(f"another backfill is running with the state directory {state_dir} "
                         f"({holder or path}); one at a time") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{command}, pid {os.getpid()}".encode(), 0)
    return fd


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UsageError(f"checkpoint {path} cannot be read ({e}): remove it to start over") \
            from None
    return data if isinstance(data, dict) else None


def write_checkpoint(path: Path, data: dict[str, Any], sync: bool = False) -> None:
    """Replace the checkpoint atomically (rename); `sync`: on disk first (fsync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def start(path: Path, command: str, identity: dict[str, Any], resume: bool,
          forget: Callable[[str], None]) -> dict[str, Any]:
    """The checkpoint of a new backfill, or (`resume`) of the interrupted one, which must be of
    the same `identity` (what was read, with which settings). `forget(key)` drops the marks of
    an interrupted backfill that is started over."""
    old = read_checkpoint(path)
    if resume:
        if old is None:
            raise UsageError(f"--resume: no interrupted {command} to resume ({path} is not "
                             "there: the last one finished, or none ran with this state "
                             "directory)")
        if old.get("identity") != identity:
            was, now = old.get("identity") or {}, identity
            diff = "; ".join(f"{k}: {was.get(k)!r} then, {now.get(k)!r} now"
                             for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            raise UsageError(f"--resume: the interrupted {command} in {path} was of something "
                             f"else ({diff}); run without --resume to start over")
        log.info("%s: resuming %s (%s outputs handed before it stopped)", command,
                 old["key"], f"{old.get('handed', 0):,}")
        return old
    if old is not None:
        log.warning("%s: an interrupted %s (%s) is left in %s; starting over (`--resume` would "
                    "have continued it)", command, command, old.get("key"), path.parent)
        forget(str(old.get("key")))
    data = {"command": command, "identity": identity, "key": f"{command}-{uuid.uuid4().hex[:12]}",
            "handed": 0, "started": time.time()}
    write_checkpoint(path, data)
    return data


class Feeder:
    """Hands a replay's outputs to the sinks in marked chunks, and on `--resume` skips for each
    sink what it already has (its mark; the checkpoint's count for a sink without marks).
    `Feeder.open` takes the lock, builds the sinks and starts (or resumes) the checkpoint;
    `close` closes the sinks and releases the lock."""

    @classmethod
    def open(cls, cfg: Config, command: str, identity: dict[str, Any], resume: bool,
             build: Callable[[], list[Sink]]) -> Feeder:
        held = lock(cfg.state_dir, command)
        try:
            sinks = build()
            try:
                path = cfg.state_dir / f"{command}.checkpoint.json"

                def forget(key: str) -> None:
                    for s in sinks:
                        if resumable(s):
                            s.forget(key)  # type: ignore[attr-defined]

                return cls(sinks, start(path, command, identity, resume, forget), path, held)
            except BaseException:
                close_all(sinks)
                raise
        except BaseException:
            os.close(held)
            raise

    def __init__(self, sinks: list[Sink], checkpoint: dict[str, Any], path: Path, held: int):
        self.sinks = sinks
        self.ck = checkpoint
        self.path = path
        self.held = held
        self.key = str(checkpoint["key"])
        handed = int(checkpoint.get("handed", 0))
        self.skip = [(s.resume_point(self.key) or 0) if resumable(s)  # type: ignore[attr-defined]
                     else handed for s in sinks]
        self.n = 0  # outputs of the engine so far

    @property
    def catching_up(self) -> bool:
        return self.n < max(self.skip, default=0)

    def hand(self, outputs: list[Output], records: int) -> None:
        first, self.n = self.n, self.n + len(outputs)
        mark = Mark(self.key, self.n)
        failed: list[str] = []
        for s, skip in zip(self.sinks, self.skip, strict=True):
            if first < skip and resumable(s):
                s.passed(outputs[:skip - first])  # type: ignore[attr-defined]
            if self.n <= skip:
                continue
            part = outputs if first >= skip else outputs[skip - first:]
            try:
                if resumable(s):
                    s.handle_marked(part, mark)  # type: ignore[attr-defined]
                else:
                    s.handle(part)
            except Exception as e:  # noqa: BLE001 - the other sinks still take this chunk
                log.exception("sink %s failed on %d outputs", s.name, len(part))
                failed.append(f"sink {s.name} failed on outputs {first + 1:,}-{self.n:,} "
                              f"({type(e).__name__}: {e})")
        if failed:
            # A backfill promises every output once in every sink: it stops rather than go on
            # without this chunk in a sink. The checkpoint stays at the chunk before (a sink
            # without marks gets this chunk again on --resume), the failed sink's mark too.
            raise BackfillFailed("; ".join(failed) + "; the backfill stopped there")
        self.ck["handed"] = max(self.n, int(self.ck.get("handed", 0)))
        self.ck["records"] = records
        write_checkpoint(self.path, self.ck)

    def done(self, show: Callable[[str], None]) -> None:
        """Every output handed: wait until the sinks have it all, then end the backfill."""
        wait_for(self.sinks, True, show)
        finish(self.sinks, self.path, self.key)

    def close(self) -> None:
        close_all(self.sinks)
        os.close(self.held)


def wait_for(sinks: list[Sink], final: bool, show: Callable[[str], None],
             stall_s: float | None = None) -> None:
    """Wait while a sink is behind (`behind(final)`: more than its margin waits; `final`:
    anything waits); `show(why)` meanwhile. Raises BackfillStalled when a sink took nothing for
    `stall_s` (default STALL_S)."""
    limit = STALL_S if stall_s is None else stall_s
    for s in sinks:
        behind = getattr(s, "behind", None)
        if behind is None:
            continue
        while (b := behind(final)) is not None:
            why, idle_s = b
            if idle_s > limit:
                raise BackfillStalled(f"{why}: nothing delivered for {idle_s:.0f} s")
            show(why)
            time.sleep(POLL_S)


def finish(sinks: list[Sink], path: Path, key: str) -> None:
    """The backfill is complete and durable in every sink: the checkpoint goes first (a kill
    after it leaves only unused marks), then the marks."""
    for s in sinks:
        flush = getattr(s, "flush", None)
        if flush is not None and flush(timeout_s=STALL_S) is False:
            raise BackfillStalled(f"sink {s.name}: not everything is written after {STALL_S:.0f} s")
    path.unlink(missing_ok=True)
    for s in sinks:
        if resumable(s):
            s.forget(key)  # type: ignore[attr-defined]
