"""`timewatch demo [--duration S] [--scenario NAME] [--state-dir DIR] [--http HOST:PORT|off]`: the
whole monitor against the simulated receiver, PPS and NTP servers (`sim.demo`), then its summary."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ..errors import UsageError
from ..sim.demo import (
    DEFAULT_DURATION_S,
    DEFAULT_HTTP,
    default_plan,
    run_demo,
    scenario_plan,
    summary,
)


def cmd_demo(args: argparse.Namespace) -> int:
    name = getattr(args, "scenario", None)
    duration = float(args.duration) if args.duration else None
    if duration is not None and duration <= 0:
        raise UsageError(f"demo --duration: must be > 0 s, got {args.duration}")
    if name:
        plan = scenario_plan(name, duration)
    else:  # --duration scales the default timeline (its stages keep their proportions)
        plan = default_plan(duration / DEFAULT_DURATION_S if duration else 1.0)
    state_dir = getattr(args, "state_dir", None) or "./state/demo"
    http = getattr(args, "http", None)
    http = DEFAULT_HTTP if http is None else ("" if http in ("off", "") else http)
    tty = sys.stdout.isatty()
    if tty:  # the screen is the view; log lines would tear it
        logging.getLogger("timewatch").setLevel(logging.ERROR)
    res = asyncio.run(run_demo(state_dir, sys.stdout, tty, plan, http=http))
    print(summary(res))
    return 0
