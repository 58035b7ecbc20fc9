"""`timewatch replay TRACE [--format jsonl|text] [-c CONFIG [--resume]] [--detect-from-config]`:
the trace through the parsers and the engine, as fast as possible; events as JSON Lines or,
`--format text`, for people (times as ISO 8601 UTC beside the Unix ns). The thresholds are the
recording's (the trace header's `detect`, `TraceReader.detect`), so a replay gives the live
events; `--detect-from-config` takes the config's `[detect]` instead (this build's defaults
without -c). With a config, a backfill of its sinks (`backfill.py`): outputs handed in marked
chunks, a checkpoint in the state directory, `--resume` after an interruption. A progress bar on
stderr when it is a terminal (`progress.py`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from ..config import Config, load, parse
from ..engine import Detect, Engine
from ..errors import UsageError
from ..evidence import EvidenceError, judge_end, scan
from ..gcfreeze import done as settled
from ..gcfreeze import settle
from ..records import Event, Observation, Output, Snapshot
from ..statedir import StateLock, holder
from ..textfmt import event_text, snapshot_text
from ..trace import TraceReader
from . import backfill
from .progress import LONG_TRACE_BYTES, Progress


def replay_iter(reader: TraceReader, cfg: Config,
                detect: Detect | None = None) -> tuple[Engine, list[Output]]:
    """Replay a whole trace (with the recording's thresholds unless `detect` is given); all
    outputs in order (for tests and small traces)."""
    eng = Engine(reader.header, detect or reader.detect(), auth_mode=cfg.auth_mode)
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
    """'compiled' when the engine runs from the mypyc build (the default install), 'pure Python'
    when it runs from its .py files (no compiler at install, or a source edited since)."""
    from ..engine import core

    return "pure Python" if core.__file__ is None or core.__file__.endswith(".py") else "compiled"


def dumps(o: Event | Snapshot) -> str:
    return json.dumps(o.to_dict(), separators=(", ", ": "))


def check_chain(path: str) -> tuple[str | None, str]:
    """The trace's evidence chain (docs/evidence.md): replay warns, never refuses. Returns the
    warning to print before replaying (None when there is nothing to warn of) and what the
    summary says of the chain ("" for a trace that is not chained: `simulate` writes those)."""
    try:
        sc = scan(path, first_within=2)  # a recorded trace has its first checkpoint on line 2
    except EvidenceError as e:
        return f"replay: warning: cannot check the evidence chain: {e}", "chain unchecked"
    if not sc.checkpoints and sc.cut is None:
        return None, ""
    pid = holder(Path(path).parent)
    judge_end(sc, live_pid=pid if pid is not None and pid > 0 else None)
    if sc.intact:
        first = sc.first.get("seq") if sc.first else "?"
        return None, f"evidence chain intact (checkpoints {first}-{sc.last_seq})"
    line, what = sc.problems[0]
    return (f"replay: WARNING: {path}:{line}: {what}; replaying it all the same",
            "evidence chain BROKEN (warned above)")


def text(o: Event | Snapshot) -> str:
    return event_text(o) if isinstance(o, Event) else snapshot_text(o)


def identity(trace: str, cfg: Config, detect: Detect) -> dict[str, Any]:
    """What a resumed replay must find unchanged: the trace, the thresholds, the version (the
    engine's outputs are counted, so they must be the same outputs)."""
    st = os.stat(trace)
    return {"trace": str(Path(trace).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "detect": repr(detect), "auth_mode": cfg.auth_mode, "version": __version__}


def choose_detect(reader: TraceReader, cfg: Config, from_config: bool,
                  config_given: bool) -> tuple[Detect, str | None]:
    """The thresholds of a replay: the recording's (the trace header's), or with `from_config`
    the config's. Also a note for stderr when a -c config's [detect] differs from the recording's
    (None: nothing to say)."""
    if from_config:
        return cfg.detect, None
    det = reader.detect()
    if not config_given:
        return det, None
    diff = [f.name for f in fields(Detect) if getattr(det, f.name) != getattr(cfg.detect, f.name)]
    if not diff:
        return det, None
    return det, (f"replay: thresholds from the trace header (as recorded); {cfg.path}'s [detect] "
                 f"differs in {', '.join(diff)}: --detect-from-config replays with the config's")


def cmd_replay(args: argparse.Namespace) -> int:
    cfg = load(args.config) if args.config else parse({}, "<defaults>")
    resume = bool(getattr(args, "resume", False))
    if resume and not args.config:
        raise UsageError("--resume needs -c CONFIG: it continues a replay into that config's "
                         "sinks (the checkpoint is in its state directory)")
    reader = TraceReader(args.trace)
    detect, note = choose_detect(reader, cfg, bool(getattr(args, "detect_from_config", False)),
                                 bool(args.config))
    if note:
        print(note, file=sys.stderr)
    warning, chain = check_chain(args.trace)
    if warning:
        print(warning, file=sys.stderr)
    feeder = None
    lock = None
    if args.config:  # its sinks write the state dir: not while a monitor does
        from ..sinks import build_sinks

        lock = StateLock(cfg.state_dir).acquire()
        try:
            feeder = backfill.Feeder.open(cfg, "replay", identity(args.trace, cfg, detect), resume,
                                          lambda: build_sinks(cfg, backfill=True))
        except BaseException:
            lock.release()
            raise
    sinks = feeder.sinks if feeder is not None else []
    from ..leapfile import load_leap_list

    fmt = dumps if getattr(args, "format", "jsonl") == "jsonl" else text
    # Samples and snapshots are built only when something reads them (a sink; --snapshots).
    eng = Engine(reader.header, detect, leap_list=load_leap_list(),
                 snapshots=bool(sinks) or bool(args.snapshots), samples=bool(sinks),
                 auth_mode=cfg.auth_mode)
    out: TextIO = open(args.events, "w", encoding="utf-8") if args.events else sys.stdout
    size = max(1, Path(args.trace).stat().st_size)
    bar = Progress(f"replay {Path(args.trace).name}", long=size >= LONG_TRACE_BYTES)
    n_events = 0
    chunk: list[Output] = []
    cut = 0  # records read when the last chunk was handed
    t0 = time.perf_counter()
    st = reader.stats
    settle(0)
    try:
        for obs in reader:
            if not st.records & 1023 and bar.enabled:
                bar.update(reader.bytes_read() / size, f"{st.records:,} observations" + (
                    " (catching up)" if feeder is not None and feeder.catching_up else ""))
            res = eng.feed(obs)
            settle(st.records)  # (the collector: what lives is frozen, gcfreeze.py)
            if res:
                if feeder is not None:
                    chunk.extend(res)
                for r in res:
                    if isinstance(r, Event) or (args.snapshots and isinstance(r, Snapshot)):
                        out.write(fmt(r) + "\n")
                        n_events += isinstance(r, Event)
            if feeder is not None and chunk and (len(chunk) >= backfill.CHUNK_OUTPUTS
                                                 or st.records - cut >= backfill.CHUNK_RECORDS):
                feeder.hand(chunk, st.records)
                chunk, cut = [], st.records
                backfill.wait_for(sinks, False, lambda why: bar.update(
                    reader.bytes_read() / size, why))
        tail = eng.finish()
        for r in tail:
            out.write(fmt(r) + "\n")
            n_events += 1
        if feeder is not None:
            feeder.hand(chunk + list(tail), st.records)
            feeder.done(lambda why: bar.update(1.0, why))
    except KeyboardInterrupt:
        if feeder is not None:
            print(f"\nreplay interrupted: what was handed to the sinks is kept; `timewatch "
                  f"replay {args.trace} -c {args.config} --resume` continues", file=sys.stderr)
        raise
    except backfill.BackfillFailed as e:
        raise type(e)(
            f"{e}; what was handed is kept (spooled), `timewatch replay {args.trace} -c "
            f"{args.config} --resume` continues") from None
    finally:
        settled()
        bar.done()
        if args.events:
            out.close()
        else:
            out.flush()
        if feeder is not None:
            feeder.close()
        if lock is not None:
            lock.release()
    dt = time.perf_counter() - t0
    unknown = ", ".join(f"{k}: {v}" for k, v in st.unknown_types.items()) or "none"
    print(f"replay {args.trace}: {st.records} observations in {dt:.2f} s "
          f"({st.records / max(dt, 1e-9):,.0f}/s), {n_events} events, "
          f"{st.bad_lines} bad lines, unknown record types: {unknown}; engine: {engine_build()}"
          + (f"; {chain}" if chain else ""), file=sys.stderr)
    if feeder is not None and max(feeder.skip, default=0):
        print(f"resumed: {max(feeder.skip):,} of {feeder.n:,} outputs were already in the sinks "
              "before (not handed again)", file=sys.stderr)
    if eng.unknown_sources:
        print(f"records from sources not in the header (skipped): {eng.unknown_sources}",
              file=sys.stderr)
    return 0
