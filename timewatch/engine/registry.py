"""Which tracker serves each source kind, and which cross-source detectors run.

One entry per reference kind or detector family: a new one never touches the others.
"""

from __future__ import annotations

from .chrony import ChronyTracker
from .core import Detector, Tracker
from .detectors import DriftDetector, HostClockDetector, LeapDetector, NtpDelayDetector
from .gnss import GnssTracker
from .holdover import HoldoverLearner
from .ntp import NtpTracker
from .pps import PpsTracker
from .ptp import PtpTracker

TRACKERS: dict[str, type[Tracker]] = {
    "ntp": NtpTracker,
    "gnss": GnssTracker,
    "pps": PpsTracker,
    "chrony": ChronyTracker,
    "ptp": PtpTracker,
}

# Order matters: the holdover learner installs ctx.holdover before the others run, and the host
# clock detector must know of a host step (and re-express the trackers) before anything else.
DETECTORS: list[type[Detector]] = [
    HoldoverLearner,
    HostClockDetector,
    NtpDelayDetector,
    LeapDetector,
    DriftDetector,
]
