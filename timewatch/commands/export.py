"""`timewatch export [-c CONFIG] [--state-dir DIR] [--since T] [--format line-protocol]
[-o OUT | --influxdb] [--resume]`: the store's history as InfluxDB line protocol (`sinks.export`),
to a file or stdout, or (`--influxdb`) straight into the config's `[sinks.influxdb]` through a
spool of its own.

To a file or InfluxDB the export is a backfill (`backfill.py`): written in chunks that end with a
whole instant, a checkpoint in the state directory after each, and `--resume` after an
interruption goes on after the last instant that was on disk (the file is cut back to it; the
spool's mark says it for InfluxDB): no line twice, none missing."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from .. import access
from ..config import Config, load, redact_url
from ..errors import UsageError
from ..sinks import Mark
from ..sinks.export import chunks, encoder_for, export
from ..sinks.store import StoreError, StorePermissionError, damaged_note, open_readonly
from . import backfill
from .progress import LONG_EXPORT_RECORDS, Progress

log = logging.getLogger(__name__)

# Records per chunk: one checkpoint and one fsync (of the file, or of the spool) per chunk.
CHUNK_RECORDS = 4000


def parse_since(text: str) -> int:
    """`--since`: Unix seconds or an ISO 8601 time (UTC when no zone is given) -> ns."""
    t = text.strip()
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", t):
        return int(Decimal(t) * 1_000_000_000)  # exact: a float loses the ns of a Unix time
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since: expected Unix seconds or an ISO time "
                         f"(2026-11-26T14:00:00Z), got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def cmd_export(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    if getattr(args, "state_dir", None):
        cfg = dataclasses.replace(cfg, state_dir=Path(args.state_dir))
    if args.format != "line-protocol":
        raise UsageError(f"--format: only line-protocol is supported, got {args.format!r}")
    since = parse_since(args.since) if args.since else None
    if getattr(args, "influxdb", False) or getattr(args, "resume", False) or (
            args.output and _writable(cfg.state_dir)):
        return export_backfill(cfg, args, since)
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    bar = Progress(f"export {cfg.store_path.name}")
    try:
        counts = export(cfg, out, since, (lambda f, n: bar.update(f, f"{n:,} records"))
                        if bar.enabled else None, long_records=LONG_EXPORT_RECORDS)
    except (StoreError, PermissionError):
        if access.blocker(cfg.store_path) is None:
            raise
        raise StoreError(f"store {cfg.store_path}: permission denied: "
                         f"{access.fix(cfg.store_path)}") from None
    finally:
        bar.done()
        if args.output:
            out.close()
        else:
            out.flush()
    print(f"export {cfg.store_path}: {counts['lines']} lines ({counts['sample']} samples, "
          f"{counts['status']} snapshots, {counts['alert']} alerts, {counts['clear']} clears) "
          f"to {args.output or 'stdout'}", file=sys.stderr)
    return 0


def export_backfill(cfg: Config, args: argparse.Namespace, since: int | None) -> int:
    """`export -o FILE` or `--influxdb`, resumable (see the module doc)."""
    to_influx = bool(getattr(args, "influxdb", False))
    if to_influx and args.output:
        raise UsageError("--influxdb and -o: one or the other")
    if not to_influx and not args.output:
        raise UsageError("--resume needs -o FILE or --influxdb (stdout cannot be resumed)")
    if to_influx and cfg.influxdb is None:
        raise UsageError(f"--influxdb: {cfg.path} has no [sinks.influxdb] to send to")
    try:
        store = open_readonly(cfg.store_path)
    except StorePermissionError:
        raise
    except StoreError as e:
        raise StoreError(f"{e} (is [monitor] state_dir / [store] path right?)") from None
    note = damaged_note(cfg.store_path)  # a corrupt store the monitor moved aside
    if note:
        log.warning("%s; it is not exported", note)
    to = (f"influxdb {redact_url(cfg.influxdb.url)} {cfg.influxdb.bucket}"
          if to_influx and cfg.influxdb else str(Path(args.output).resolve()))
    identity = {"store": str(cfg.store_path.resolve()), "since": since, "to": to}
    ck_path = cfg.state_dir / "export.checkpoint.json"
    held = backfill.lock(cfg.state_dir, "export")
    sink = None
    out = None
    c = store.counts()
    bar = Progress(f"export {cfg.store_path.name}",
                   long=c["samples"] + c["snapshots"] + c["events"] >= LONG_EXPORT_RECORDS)
    counts = {"sample": 0, "status": 0, "alert": 0, "clear": 0, "lines": 0}
    try:
        enc = encoder_for(cfg, store)
        if to_influx:
            from ..sinks import BACKFILL_SPOOL
            from ..sinks.influx import InfluxSink

            sink = InfluxSink(cfg, spool_name=BACKFILL_SPOOL)
            sink.encoder.sources.update(enc.sources)
            ck = backfill.start(ck_path, "export", identity, args.resume, sink.forget)
            reached = sink.resume_point(ck["key"])
        else:
            ck = backfill.start(ck_path, "export", identity, args.resume, lambda key: None)
            reached = ck.get("t_ns") if args.resume else None
            offset = int(ck.get("offset", 0)) if args.resume else 0
            if args.resume and (not os.path.exists(args.output)
                                or os.path.getsize(args.output) < offset):
                raise UsageError(f"--resume: {args.output} is gone or shorter than the "
                                 f"{offset} bytes the checkpoint says were written; export "
                                 "again without --resume")
            out = open(args.output, "r+b" if args.resume else "wb")
            out.truncate(offset)
            out.seek(0, os.SEEK_END)
        start = since if reached is None else (
            reached + 1 if since is None else max(since, reached + 1))
        newest = store.newest_ns() or 0
        first = None
        for chunk in chunks(store, start, CHUNK_RECORDS):
            t = chunk[-1].t_ns
            first = chunk[0].t_ns if first is None else first
            if sink is not None:
                try:
                    sink.handle_marked(chunk, Mark(str(ck["key"]), t))
                except Exception as e:  # noqa: BLE001 - the export stops here, resumable
                    log.exception("sink %s failed on %d records", sink.name, len(chunk))
                    raise backfill.BackfillFailed(
                        f"sink {sink.name} failed on the records up to t_ns {t} "
                        f"({type(e).__name__}: {e}); the export stopped there") from e
                counts["lines"] = sink.sent
            else:
                assert out is not None
                lines = enc.lines(chunk)
                counts["lines"] += len(lines)
                out.write("".join(ln + "\n" for ln in lines).encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())  # on disk before the checkpoint says so
                ck["offset"] = out.tell()
            for o in chunk:
                counts[o.type] += 1
            ck["t_ns"] = t
            backfill.write_checkpoint(ck_path, ck, sync=sink is None)
            show = functools.partial(bar.update, (t - first) / max(1, newest - first))
            show(f"{sum(counts[k] for k in ('sample', 'status', 'alert', 'clear')):,} records")
            if sink is not None:
                backfill.wait_for([sink], False, show)
        if sink is not None:
            backfill.wait_for([sink], True, lambda why: bar.update(1.0, why))
            counts["lines"] = sink.sent
        backfill.finish([sink] if sink is not None else [], ck_path, str(ck["key"]))
    except KeyboardInterrupt:
        print(f"\nexport interrupted: `timewatch export {_again(args)} --resume` continues",
              file=sys.stderr)
        raise
    except backfill.BackfillFailed as e:
        raise type(e)(f"{e}; what was handed is kept (spooled), "
                      f"`timewatch export {_again(args)} --resume` continues") from None
    finally:
        bar.done()
        store.close()
        if out is not None:
            out.close()
        if sink is not None:
            sink.close()
        os.close(held)
    where = to if to_influx else args.output
    print(f"export {cfg.store_path}: {counts['lines']} lines ({counts['sample']} samples, "
          f"{counts['status']} snapshots, {counts['alert']} alerts, {counts['clear']} clears) "
          f"to {where}" + (" (resumed)" if args.resume else ""), file=sys.stderr)
    return 0


def _writable(d: Path) -> bool:
    """The checkpoint of a resumable export can go in d (else the export to a file is a plain
    one: reading another user's store must not need write access to its directory)."""
    while not d.exists() and d != d.parent:
        d = d.parent
    if os.access(d, os.W_OK):
        return True
    log.warning("%s is not writable: this export cannot be resumed if interrupted", d)
    return False


def _again(args: argparse.Namespace) -> str:
    """The command line to continue with (without --resume)."""
    parts = [f"-c {args.config}"] if args.config else []
    parts += [f"--state-dir {args.state_dir}"] if getattr(args, "state_dir", None) else []
    parts += [f"--since {args.since}"] if args.since else []
    parts += ["--influxdb"] if getattr(args, "influxdb", False) else [f"-o {args.output}"]
    return " ".join(parts)
