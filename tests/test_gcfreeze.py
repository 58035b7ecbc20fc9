"""timewatch/gcfreeze.py: the collector during a replay, and as it was after."""

from __future__ import annotations

import gc
import weakref

from timewatch import gcfreeze


class _Node:
    me: object


def test_settle_freezes_the_live_state_and_done_puts_the_collector_back() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        gcfreeze.settle(0)
        assert gc.get_threshold() == (gcfreeze.GEN0, *before[1:])
        kept = [[i] for i in range(1000)]  # (a state that lives on)
        for n in range(1, gcfreeze.EVERY):
            gcfreeze.settle(n)
        assert gc.get_freeze_count() == 0  # (not before EVERY records)
        gcfreeze.settle(gcfreeze.EVERY)
        assert gc.get_freeze_count() >= len(kept)
        assert gc.is_tracked(kept[0])
        # A cycle dropped after it was frozen outlives collections until THAW records, when
        # everything is thawed and collected in full, then frozen again.
        node = _Node()
        node.me = node
        ref = weakref.ref(node)
        gcfreeze.settle(2 * gcfreeze.EVERY)
        del node
        gc.collect()
        assert ref() is not None
        gcfreeze.settle(gcfreeze.THAW)
        assert ref() is None
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gcfreeze.done()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_cycle_dropped_before_a_freeze_is_collected_not_frozen() -> None:
    """A sink's or a reader's cyclic garbage is not frozen (a backfill's memory stays flat)."""
    gc.unfreeze()
    try:
        gcfreeze.settle(0)
        node = _Node()
        node.me = node
        ref = weakref.ref(node)
        del node
        gcfreeze.settle(gcfreeze.EVERY)
        assert ref() is None
    finally:
        gcfreeze.done()
    assert gc.get_freeze_count() == 0
