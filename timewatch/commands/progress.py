"""A progress bar on stderr for long commands (replay, export), only when stderr is a terminal.

The command decides what is long from the size of its input (`LONG_TRACE_BYTES`,
`LONG_EXPORT_RECORDS`), so a short one never flickers a bar. None is drawn when stderr is a pipe
or a file (logs and CI stay clean), and the line is erased when the work is done, so the summary
that follows stands alone.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

# A replay of a trace file this large takes about half a second or more (pure Python) ...
LONG_TRACE_BYTES = 1_000_000
# ... and so does an export of this many stored records.
LONG_EXPORT_RECORDS = 10_000
# Seconds between redraws.
REDRAW_S = 0.1


class Progress:
    """`update(fraction, detail)` as the work goes; `done()` at the end (also on failure)."""

    def __init__(self, label: str, stream: TextIO | None = None, *, long: bool = True):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = long and _isatty(self.stream)
        self._last = float("-inf")
        self._drawn = 0  # characters on the line now

    def update(self, fraction: float, detail: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < REDRAW_S:
            return
        self._last = now
        self.draw(fraction, detail)

    def draw(self, fraction: float, detail: str = "") -> None:
        f = min(1.0, max(0.0, fraction))
        cols = shutil.get_terminal_size((80, 24)).columns
        tail = f" {f * 100:5.1f}%" + (f"  {detail}" if detail else "")
        width = max(10, min(40, cols - len(self.label) - len(tail) - 4))
        full = int(f * width)
        line = f"{self.label} [{'#' * full}{'.' * (width - full)}]{tail}"[:max(1, cols - 1)]
        self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
        self.stream.flush()
        self._drawn = len(line)

    def done(self) -> None:
        """Erase the bar (when one was drawn)."""
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
