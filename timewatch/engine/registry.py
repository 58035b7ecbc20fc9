"""Which tracker serves each source kind (each kind's registration in `timewatch.kinds`), and
which cross-source detectors run (one entry per detector family).
"""

from __future__ import annotations

from .core import Detector, Tracker
from .detectors import DriftDetector, HostClockDetector, LeapDetector, NtpDelayDetector
from .holdover import HoldoverLearner


def tracker_classes() -> dict[str, type[Tracker]]:
    """kind -> its tracker class, for every registered kind that has one."""
    from .. import kinds

    out: dict[str, type[Tracker]] = {}
    for name, kind in kinds.KINDS.items():
        if kind.tracker is not None:
            out[name] = kind.tracker_class()
    return out


# Order matters: the holdover learner installs ctx.holdover before the others run, and the host
# clock detector must know of a host step (and re-express the trackers) before anything else.
DETECTORS: list[type[Detector]] = [
    HoldoverLearner,
    HostClockDetector,
    NtpDelayDetector,
    LeapDetector,
    DriftDetector,
]
