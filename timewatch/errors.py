"""Errors that any part of timewatch may raise and the command line turns into an exit code."""

from __future__ import annotations


class UsageError(Exception):
    """The user asked for something that cannot be done as asked: `timewatch` prints the message
    and exits 2 (as it does for a config error)."""
