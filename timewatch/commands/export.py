"""`timewatch export [-c CONFIG] [--state-dir DIR] [--since T] [--format line-protocol] [-o OUT]`:
the store's history as InfluxDB line protocol (`sinks.export`), to a file or stdout."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from .. import access
from ..config import load
from ..errors import UsageError
from ..sinks.export import export
from ..sinks.store import StoreError
from .progress import LONG_EXPORT_RECORDS, Progress


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
