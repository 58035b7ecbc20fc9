"""`timewatch run [-c CONFIG] [--record TRACE] [--duration S]`: the monitor (`runner.Runner`) until
SIGTERM/SIGINT, with the systemd hooks when systemd runs it."""

from __future__ import annotations

import argparse
import asyncio
import logging

from ..config import load
from ..runner import Runner

log = logging.getLogger("timewatch.runner")


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    for w in cfg.warnings:
        log.warning("config: %s", w)
    runner = Runner(cfg, record=args.record, duration_s=args.duration)
    from ..appliance import add_systemd_hooks

    add_systemd_hooks(runner.hooks)  # READY/WATCHDOG/STATUS/STOPPING when run by systemd
    return asyncio.run(runner.run())
