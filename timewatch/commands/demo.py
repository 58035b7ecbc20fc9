"""`timewatch demo [--duration S] [--scenario NAME] [--state-dir DIR] [--http HOST:PORT|off]`: the
whole monitor against the simulated receiver, PPS and NTP servers (`sim.demo`), then its summary."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
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
    prog, activate = invoked_as()
    print(summary(res, prog, activate))
    return 0


def invoked_as(argv0: str | None = None) -> tuple[str, str | None]:
    """How to run this same timewatch again from the current directory, and the venv's activate
    script when `timewatch` is not on PATH already: `.venv/bin/timewatch` after `make demo`,
    `timewatch` when it is on PATH, `python -m timewatch` when started that way."""
    exe = argv0 if argv0 is not None else sys.argv[0]
    if os.path.basename(exe) == "timewatch" and os.path.exists(exe):
        found = shutil.which("timewatch")
        if found and os.path.realpath(found) == os.path.realpath(exe):
            return "timewatch", None
        prog = _short(exe)
        activate = os.path.join(os.path.dirname(prog), "activate")
        return prog, activate if os.path.exists(activate) else None
    return f"{_short(sys.executable)} -m timewatch", None


def _short(path: str) -> str:
    """A path as typed from the current directory: relative below it, else absolute."""
    rel = os.path.relpath(os.path.abspath(path))
    if rel.startswith(".."):
        return os.path.abspath(path)
    return rel if os.sep in rel else f".{os.sep}{rel}"
