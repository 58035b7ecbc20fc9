"""`timewatch report [TRACE] [-c CONFIG] [--state-dir DIR] [--since T] [--until T] [-o OUT]`:
the HTML report (`timewatch.report`) of a trace, or of the store, over a time range."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from ..config import load, parse
from ..errors import UsageError
from ..report import analyse, from_store, from_trace, parse_time, render
from ..sinks.store import StoreError


def cmd_report(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since, "--since") if args.since else None
        until = parse_time(args.until, "--until") if args.until else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until ({args.until}) must be after --since ({args.since})")
    cfg = load(args.config) if args.config else parse({}, "<defaults>")
    t0 = time.perf_counter()
    if args.trace:
        if args.state_dir:
            raise UsageError("report: give a TRACE or --state-dir, not both")
        tty = sys.stderr.isatty()

        def progress(n: int) -> None:
            if tty:
                print(f"\rreport: {n:,} records replayed", end="", file=sys.stderr, flush=True)

        data = from_trace(args.trace, cfg, since, until, progress)
        if tty:
            print(file=sys.stderr)
    else:
        if args.state_dir:
            cfg = dataclasses.replace(cfg, state_dir=Path(args.state_dir))
        try:
            data = from_store(cfg.store_path, cfg.host, since, until)
        except StoreError as e:
            print(f"timewatch report: {e} (give a TRACE, or the monitor's -c CONFIG or "
                  f"--state-dir DIR)", file=sys.stderr)
            return 1
    results = analyse(data)
    try:
        page = render(data, results)
    except ValueError as e:
        print(f"timewatch report: {e}", file=sys.stderr)
        return 1
    out = Path(args.output)
    out.write_text(page, encoding="utf-8")
    n_fig = page.count("data:image/png;base64,")
    print(f"report {data.origin}: {n_fig} figures, {sum(len(s.t_ns) for s in data.sources.values())}"
          f" samples, {sum(e.type == 'alert' for e in data.events)} alerts -> {out} "
          f"({len(page) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
