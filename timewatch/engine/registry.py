"""Which tracker serves each source kind, and which cross-source detectors run.

One line per reference kind or detector family: a new one never touches the others.
"""

from __future__ import annotations

from .core import Detector, Tracker

TRACKERS: dict[str, type[Tracker]] = {}
DETECTORS: list[type[Detector]] = []

from .ntp import NtpTracker  # noqa: E402

TRACKERS["ntp"] = NtpTracker

from .chrony import ChronyTracker  # noqa: E402

TRACKERS["chrony"] = ChronyTracker

from .pps import PpsTracker  # noqa: E402

TRACKERS["pps"] = PpsTracker

from .gnss import GnssTracker  # noqa: E402

TRACKERS["gnss"] = GnssTracker

from .holdover import HoldoverLearner  # noqa: E402

DETECTORS.insert(0, HoldoverLearner)  # first: installs ctx.holdover before other detectors start

from .detectors import (  # noqa: E402
    DriftDetector,
    HostClockDetector,
    LeapDetector,
    NtpDelayDetector,
)

# Host first: a host step must be known (and the trackers re-expressed) before anything else.
DETECTORS.extend([HostClockDetector, NtpDelayDetector, LeapDetector, DriftDetector])
