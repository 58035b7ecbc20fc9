"""Cross-source detectors, one module per family (registered in engine/registry.py).

- `host`: `consensus.host_step` (realtime jumped against CLOCK_MONOTONIC_RAW; the trackers'
  estimates are re-expressed in the new host time so no source is accused of the step) and
  `consensus.host_offset` (host realtime away from the consensus);
- `ntpdelay`: `ntp.delay_anomaly` (a persistent delay increase with an offset shift of half of
  it: a man in the middle delaying one direction);
- `leap`: `ntp.leap_anomaly` (a leap second the IERS list, or the other groups, do not announce);
- `drift`: `time.drift` (a sequential test on each reference's residual against the holdover clock
  and against the consensus of the other groups: a time push).

docs/detectors.md describes them for the operator.
"""

from __future__ import annotations

from .drift import DriftDetector
from .host import HostClockDetector
from .leap import LeapDetector
from .ntpdelay import NtpDelayDetector

__all__ = ["DriftDetector", "HostClockDetector", "LeapDetector", "NtpDelayDetector"]
