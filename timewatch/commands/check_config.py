"""`timewatch check-config CONFIG`: validate a config and print what it would run (never a
secret)."""

from __future__ import annotations

import argparse

from ..config import describe, load


def cmd_check_config(args: argparse.Namespace) -> int:
    print(describe(load(args.config)))
    return 0
