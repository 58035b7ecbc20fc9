"""`timewatch check-config CONFIG`: validate a config and print what it would run (never a
secret)."""

from __future__ import annotations

import argparse

from ..config import describe, load
from .replay import engine_build


def cmd_check_config(args: argparse.Namespace) -> int:
    print(describe(load(args.config)))
    print(f"engine: {engine_build()}")
    return 0
