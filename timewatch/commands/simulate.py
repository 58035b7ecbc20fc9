"""`timewatch simulate --scenario NAME [--duration S] [--seed N] -o TRACE [--format jsonl|text]`
(or `--list`): the synthetic trace of a scenario of the catalogue (`sim.scenarios`); `--format
text` lists its records for people instead (times as ISO 8601 UTC beside the Unix ns)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..errors import UsageError
from ..sim.scenarios import SCENARIOS, SimTrace, build, write
from ..textfmt import observation_text, when


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.list:
        for sc in SCENARIOS.values():
            num = f"{sc.number:2d}" if sc.number is not None else " -"
            print(f"{num}  {sc.name:22s} {sc.description} (default {sc.duration_s:.0f} s)")
        return 0
    if not args.scenario:
        raise UsageError("simulate: --scenario NAME is required (--list names them)")
    if args.scenario not in SCENARIOS:
        raise UsageError(f"simulate: --scenario: unknown scenario {args.scenario!r} "
                         f"(--list names them)")
    text = getattr(args, "format", "jsonl") == "text"
    if not args.output and not text:
        raise UsageError("simulate: -o TRACE is required")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"simulate: --duration: must be > 0 s, got {args.duration}")
    st = build(args.scenario, args.seed, args.duration)
    if text:
        write_text(args.output, st)
    else:
        write(args.output, st)
    t = st.truth
    what = f"attack/fault from {when(t.start_ns)}" if t.start_ns is not None else "no attack"
    print(f"simulate {args.scenario} seed {args.seed}: {len(st.observations)} records -> "
          f"{args.output or 'stdout'} ({what})", file=sys.stderr)
    return 0


def write_text(path: str | None, st: SimTrace) -> None:
    """The trace as a listing for people: the header's sources, then one line per record."""
    out: TextIO = open(path, "w", encoding="utf-8") if path else sys.stdout
    try:
        h = st.header
        out.write(f"trace of host {h.host}, created {when(h.created_ns)}\n")
        for sid, info in h.sources.items():
            out.write(f"source {sid}: {info.kind}, group {info.group}\n")
        for o in st.observations:
            out.write(observation_text(o) + "\n")
    finally:
        if path:
            out.close()
        else:
            out.flush()
