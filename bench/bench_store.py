"""Embedded store: how fast StoreSink commits (a full-speed replay's load) and how fast export reads.

Prints outputs/s committed for 200,000 samples plus snapshots, export lines/s, and the store's
size per sample and per snapshot (what retention_days costs on disk).
"""

from __future__ import annotations

import io
import sqlite3
import tempfile
import time
from pathlib import Path

from timewatch.config import parse
from timewatch.records import Output, Sample, Snapshot, SourceStatus
from timewatch.sinks.export import export
from timewatch.sinks.store import StoreSink

N_SAMPLES = 200_000  # two replays' worth of the >= 100,000-observation bench trace
SOURCES = 8  # the live-monitor bench polls 8 servers
T0 = 1_764_160_950_000_000_000


def outputs() -> list[Output]:
    out: list[Output] = []
    for i in range(N_SAMPLES // SOURCES):
        t = T0 + i * 1_000_000_000
        for n in range(SOURCES):
            out.append(Sample(f"ntp{n}", t + n, 1e-4 * n, 2e-3,
                              {"delay_s": 0.01, "stratum": 2.0, "root_dispersion_s": 1e-4}))
        if i % 10 == 0:
            out.append(Snapshot(t, tuple(SourceStatus(f"ntp{n}", "ntp", f"g{n}", "truechimer",
                                                      "inside", 1e-4, 2e-3, t)
                                         for n in range(SOURCES)), True, SOURCES, SOURCES,
                                1e-4, 5e-4))
    return out


def bytes_each(outs: list[Output]) -> float:
    """Store size per output once everything is checkpointed into the main file."""
    with tempfile.TemporaryDirectory() as d:
        cfg = parse({"monitor": {"state_dir": d}})
        sink = StoreSink(cfg)
        sink.handle(outs)
        sink.flush(600)
        sink.close()
        db = sqlite3.connect(cfg.store_path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return sum(p.stat().st_size for p in Path(d).glob("timewatch.db*")) / len(outs)


def main() -> None:
    outs = outputs()
    with tempfile.TemporaryDirectory() as d:
        cfg = parse({"monitor": {"state_dir": d}})
        sink = StoreSink(cfg)
        t0 = time.perf_counter()
        for i in range(0, len(outs), 50):  # the engine hands over a few outputs per call
            sink.handle(outs[i:i + 50])
        sink.flush(600)
        dt = time.perf_counter() - t0
        sink.close()
        size = sum(p.stat().st_size for p in Path(d).glob("timewatch.db*"))
        print(f"store write: {len(outs):,} outputs in {dt:.2f} s = {len(outs) / dt:,.0f} outputs/s "
              f"committed; {size / 2**20:.1f} MB on disk ({size / N_SAMPLES:.0f} bytes/sample "
              "incl. snapshots)")
        buf = io.StringIO()
        t0 = time.perf_counter()
        counts = export(cfg, buf)
        dt = time.perf_counter() - t0
        print(f"export: {counts['lines']:,} lines in {dt:.2f} s = {counts['lines'] / dt:,.0f} "
              "lines/s")
    per_sample = bytes_each([o for o in outs if isinstance(o, Sample)])
    per_snap = bytes_each([o for o in outs if isinstance(o, Snapshot)])
    print(f"store size: {per_sample:.0f} bytes per sample, {per_snap:.0f} bytes per snapshot of "
          f"{SOURCES} sources; a day of 8 NTP servers at 64 s and a snapshot every 10 s: "
          f"{(86400 / 64 * SOURCES * per_sample + 8640 * per_snap) / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
