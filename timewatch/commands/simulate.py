"""`timewatch simulate --scenario NAME [--duration S] [--seed N] -o TRACE` (or `--list`): the
synthetic trace of a scenario of the catalogue (`sim.scenarios`)."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ..sim.scenarios import SCENARIOS, build, write


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
    if not args.output:
        raise UsageError("simulate: -o TRACE is required")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"simulate: --duration: must be > 0 s, got {args.duration}")
    st = build(args.scenario, args.seed, args.duration)
    write(args.output, st)
    t = st.truth
    what = f"attack/fault from {t.start_ns}" if t.start_ns is not None else "no attack"
    print(f"simulate {args.scenario} seed {args.seed}: {len(st.observations)} records -> "
          f"{args.output} ({what})", file=sys.stderr)
    return 0
