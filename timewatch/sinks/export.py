"""The embedded store's history as InfluxDB line protocol (`timewatch export`).

Samples, snapshots with every verdict, alert and clear events, ns precision, oldest first, in
exactly the schema the live InfluxDB sink writes (`lineproto`), so a central InfluxDB can be
backfilled from an appliance that ran alone: `timewatch export --since 2026-11-01 -o tw.lp` then
`influx write -b timewatch -p ns -f tw.lp` (2.x) or `influx -import -path tw.lp -precision ns`
(1.x, after a DML header).
"""
from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterator
from typing import TextIO

from ..config import Config
from ..records import Output
from .lineproto import Encoder
from .store import Store, StoreError, damaged_note

log = logging.getLogger(__name__)


def history(store: Store, since_ns: int | None = None) -> Iterator[Output]:
    """Samples, events and snapshots merged in time order (at one instant: samples, then
    events, then the snapshot, the order in which the engine emits them)."""
    return heapq.merge(store.iter_samples(since_ns), store.iter_events(since_ns),
                       store.iter_snapshots(since_ns), key=lambda o: o.t_ns)


def chunks(store: Store, since_ns: int | None, size: int) -> Iterator[list[Output]]:
    """The history in chunks of about `size` records, each ending with a whole instant (the
    next one starts later): what a resumable export commits at a time, its mark the last
    chunk's time (`--resume` goes on after it)."""
    chunk: list[Output] = []
    for o in history(store, since_ns):
        if len(chunk) >= size and o.t_ns != chunk[-1].t_ns:
            yield chunk
            chunk = []
        chunk.append(o)
    if chunk:
        yield chunk


def encoder_for(cfg: Config, store: Store) -> Encoder:
    """Tags for each source: as the store's verdicts recorded them, else from the config."""
    enc = Encoder.from_config(cfg)
    enc.sources.update(store.source_info())
    return enc


def export(cfg: Config, out: TextIO, since_ns: int | None = None,
           progress: Callable[[float, int], None] | None = None,
           long_records: int = 0) -> dict[str, int]:
    """Write the history as line protocol to `out`; counts of records and lines written.
    `progress(fraction, records)` is called every 1024 records (fraction of the time span from
    the first record written to the newest in the store) when the store holds at least
    `long_records` samples, snapshots and events."""
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
        if progress is not None and long_records:
            c = store.counts()
            if c["samples"] + c["snapshots"] + c["events"] < long_records:
                progress = None
        newest = store.newest_ns() if progress is not None else None
        first: int | None = None
        n = 0
        for o in history(store, since_ns):
            if progress is not None and newest is not None:
                first = o.t_ns if first is None else first
                n += 1
                if not n & 1023:
                    progress((o.t_ns - first) / max(1, newest - first), n)
            lines = enc.lines([o])
            counts[o.type] += 1
            counts["lines"] += len(lines)
            for line in lines:
                out.write(line)
                out.write("\n")
    finally:
        store.close()
    return counts
