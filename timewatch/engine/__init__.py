"""The pure core: `Engine(header, detect).feed(observation) -> [Sample | Event | Snapshot]`.

Imports nothing from readers, sinks, the runner or the CLI, and never reads a clock or a file.
"""

from .core import Context, Detector, Engine, Estimate, Tracker
from .params import Detect
from .vote import Consensus, Verdict

__all__ = ["Consensus", "Context", "Detect", "Detector", "Engine", "Estimate", "Tracker", "Verdict"]
