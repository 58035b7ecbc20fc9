"""Which tracker serves each source kind, and which cross-source detectors run.

One line per reference kind or detector family: a new one never touches the others.
"""

from __future__ import annotations

from .core import Detector, Tracker

TRACKERS: dict[str, type[Tracker]] = {}
DETECTORS: list[type[Detector]] = []

try:  # each kind registers itself when its module exists
    from .ntp import NtpTracker

    TRACKERS["ntp"] = NtpTracker
except ImportError:  # pragma: no cover - during the build-up only
    pass
