"""The cycle collector on a long replay (`timewatch replay`, bench/bench_sources.py).

The engine's state is hundreds of thousands of long-lived objects (10,000 sources: ~350k), and
CPython's collector walks all of them at each of its full collections; its young collections
(every 700 new containers) walk each new one, with every number in it (a group's members'
numbers are new lists at each of its records), a few times over before it is dropped: a fifth
of a replay's time. The engine makes no reference cycles (its garbage goes by reference counts:
a replay of bench_sources' trace with the collector off leaves none to collect). So while a
replay runs (`settle`, called before it and once per record), the young generation is collected every `GEN0`
new containers (most are dropped before: never walked), and what is alive is moved out of the
collector's sight (`gc.freeze`) every `EVERY` records, after a collection (nothing dead is
frozen): each collection then walks only what was made since. Every `THAW` records everything
is thawed and collected in full, so that a cycle a sink or a reader leaves among frozen objects
is freed within that many records; `done` puts the collector back as it was."""

from __future__ import annotations

import gc
from typing import Final

GEN0: Final = 50_000  # new containers between two young collections (CPython: 700)
EVERY: Final = 1 << 12  # records between two freezes (a power of two)
THAW: Final = 1 << 20  # records between two full collections (a multiple of EVERY)

_saved: list[tuple[int, int, int]] = []  # the thresholds before the replay


def settle(records: int) -> None:
    """Call with 0 before the first record, then once per record (`records`: how many so far)."""
    if records & (EVERY - 1):
        return
    if not records:  # (the replay starts: the engine's first vote makes a state per source)
        if not _saved:
            _saved.append(gc.get_threshold())
            gc.set_threshold(GEN0, *_saved[0][1:])
        return
    if not records & (THAW - 1):
        gc.unfreeze()
    gc.collect()  # walks only what is not frozen yet: what was made since the last freeze
    gc.freeze()


def done() -> None:
    """The replay is over: the collector as it was, everything in its sight again."""
    if _saved:
        gc.set_threshold(*_saved.pop())
    gc.unfreeze()
