"""`timewatch export [-c CONFIG] [--since T] [--format line-protocol] [-o OUT]`.

The embedded store's history (samples, snapshots with every verdict, alert and clear events) as
InfluxDB line protocol, ns precision, oldest first, in exactly the schema the live InfluxDB sink
writes (`lineproto`), so a central InfluxDB can be backfilled from an appliance that ran alone:
`timewatch export --since 2026-11-01 -o tw.lp` then `influx write -b timewatch -p ns -f tw.lp`
(2.x) or `influx -import -path tw.lp -precision ns` (1.x, after a DML header).
"""

from __future__ import annotations

import argparse
import heapq
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO

from ..cli import UsageError
from ..config import Config, load
from ..records import Output
from .lineproto import Encoder
from .store import Store, StoreError, damaged_note

log = logging.getLogger(__name__)


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


def history(store: Store, since_ns: int | None = None) -> Iterator[Output]:
    """Samples, events and snapshots merged in time order (at one instant: samples, then
    events, then the snapshot, the order in which the engine emits them)."""
    return heapq.merge(store.iter_samples(since_ns), store.iter_events(since_ns),
                       store.iter_snapshots(since_ns), key=lambda o: o.t_ns)


def encoder_for(cfg: Config, store: Store) -> Encoder:
    """Tags for each source: as the store's verdicts recorded them, else from the config."""
    enc = Encoder.from_config(cfg)
    enc.sources.update(store.source_info())
    return enc


def export(cfg: Config, out: TextIO, since_ns: int | None = None) -> dict[str, int]:
    """Write the history as line protocol to `out`; counts of records and lines written."""
    try:
        store = Store(cfg.store_path, readonly=True)
    except StoreError as e:
        raise StoreError(f"{e} (is [monitor] state_dir / [store] path right?)") from None
    note = damaged_note(cfg.store_path)  # a corrupt store the monitor moved aside
    if note:
        log.warning("%s; it is not exported", note)
    counts = {"sample": 0, "status": 0, "alert": 0, "clear": 0, "lines": 0}
    try:
        enc = encoder_for(cfg, store)
        for o in history(store, since_ns):
            lines = enc.lines([o])
            counts[o.type] += 1
            counts["lines"] += len(lines)
            for line in lines:
                out.write(line)
                out.write("\n")
    finally:
        store.close()
    return counts


def cmd_export(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    if args.format != "line-protocol":
        raise UsageError(f"--format: only line-protocol is supported, got {args.format!r}")
    since = parse_since(args.since) if args.since else None
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        counts = export(cfg, out, since)
    finally:
        if args.output:
            out.close()
        else:
            out.flush()
    print(f"export {cfg.store_path}: {counts['lines']} lines ({counts['sample']} samples, "
          f"{counts['status']} snapshots, {counts['alert']} alerts, {counts['clear']} clears) "
          f"to {args.output or 'stdout'}", file=sys.stderr)
    return 0
