"""`timewatch replay TRACE [--format jsonl|text]`: the trace through the parsers and the engine, as
fast as possible; events as JSON Lines or, `--format text`, for people (times as ISO 8601 UTC
beside the Unix ns). A progress bar on stderr when it is a terminal."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from ..config import Config, load, parse
from ..engine import Engine
from ..records import Event, Observation, Output, Snapshot
from ..textfmt import event_text, snapshot_text
from ..trace import TraceReader
from .progress import LONG_TRACE_BYTES, Progress


def replay_iter(reader: TraceReader, cfg: Config) -> tuple[Engine, list[Output]]:
    """Replay a whole trace; all outputs in order (for tests and small traces)."""
    eng = Engine(reader.header, cfg.detect, auth_mode=cfg.auth_mode)
    out: list[Output] = []
    for obs in reader:
        out.extend(eng.feed(obs))
    out.extend(eng.finish())
    return eng, out


def feed_all(eng: Engine, observations: list[Observation]) -> list[Output]:
    out: list[Output] = []
    for o in observations:
        out.extend(eng.feed(o))
    out.extend(eng.finish())
    return out


def engine_build() -> str:
    """'compiled' when the engine runs from the optional mypyc build (`make compiled`)."""
    from ..engine import core

    return "pure Python" if core.__file__ is None or core.__file__.endswith(".py") else "compiled"


def dumps(o: Event | Snapshot) -> str:
    return json.dumps(o.to_dict(), separators=(", ", ": "))


def text(o: Event | Snapshot) -> str:
    return event_text(o) if isinstance(o, Event) else snapshot_text(o)


def cmd_replay(args: argparse.Namespace) -> int:
    cfg = load(args.config) if args.config else parse({}, "<defaults>")
    reader = TraceReader(args.trace)
    sinks = []
    if args.config:
        from ..sinks import build_sinks

        sinks = build_sinks(cfg)
    from ..leapfile import load_leap_list
    from ..sinks import close_all, fan_out

    fmt = dumps if getattr(args, "format", "jsonl") == "jsonl" else text
    # Samples and snapshots are built only when something reads them (a sink; --snapshots).
    eng = Engine(reader.header, cfg.detect, leap_list=load_leap_list(),
                 snapshots=bool(sinks) or bool(args.snapshots), samples=bool(sinks),
                 auth_mode=cfg.auth_mode)
    out: TextIO = open(args.events, "w", encoding="utf-8") if args.events else sys.stdout
    size = max(1, Path(args.trace).stat().st_size)
    bar = Progress(f"replay {Path(args.trace).name}", long=size >= LONG_TRACE_BYTES)
    n_events = 0
    t0 = time.perf_counter()
    st = reader.stats
    try:
        for obs in reader:
            if not st.records & 1023 and bar.enabled:
                bar.update(reader.bytes_read() / size, f"{st.records:,} observations")
            res = eng.feed(obs)
            if not res:
                continue
            if sinks:
                fan_out(sinks, res)
            for r in res:
                if isinstance(r, Event) or (args.snapshots and isinstance(r, Snapshot)):
                    out.write(fmt(r) + "\n")
                    n_events += isinstance(r, Event)
        tail = eng.finish()
        if sinks and tail:
            fan_out(sinks, list(tail))
        for r in tail:
            out.write(fmt(r) + "\n")
            n_events += 1
    finally:
        bar.done()
        if args.events:
            out.close()
        else:
            out.flush()
        close_all(sinks)
    dt = time.perf_counter() - t0
    unknown = ", ".join(f"{k}: {v}" for k, v in st.unknown_types.items()) or "none"
    print(f"replay {args.trace}: {st.records} observations in {dt:.2f} s "
          f"({st.records / max(dt, 1e-9):,.0f}/s), {n_events} events, "
          f"{st.bad_lines} bad lines, unknown record types: {unknown}; engine: {engine_build()}",
          file=sys.stderr)
    if eng.unknown_sources:
        print(f"records from sources not in the header (skipped): {eng.unknown_sources}",
              file=sys.stderr)
    return 0
