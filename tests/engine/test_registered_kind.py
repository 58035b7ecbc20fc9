"""The engine builds the tracker of a kind registered outside the package (tests/kinds/toykind.py)
and votes on it, fed the kind's own record type: also under the compiled build, which checks
argument types (tests/test_compiled_build.py runs this directory against it)."""

from __future__ import annotations

from tests.kinds.toykind import Toy, ToyTracker
from timewatch.engine import Engine
from timewatch.engine.params import Detect
from timewatch.records import Event, Header, Output, SourceInfo, Tick

T0 = 1_700_000_000 * 1_000_000_000
S = 1_000_000_000


def test_the_engine_builds_a_registered_kinds_tracker_and_votes_on_its_records() -> None:
    offsets_us = {"t1": 0, "t2": 300, "t3": 40_000}
    h = Header("t", T0, {sid: SourceInfo("toy", sid, poll_s=1.0) for sid in offsets_us})
    eng = Engine(h, Detect(hold_down_s=2, snapshot_interval_s=1))
    assert all(type(tr) is ToyTracker for tr in eng.ctx.trackers.values())
    out: list[Output] = []
    for t in range(10):
        for sid, off in offsets_us.items():
            out += eng.feed(Toy(sid, T0 + t * S + 1000, off * 1000, "x"))
        out += eng.feed(Tick(T0 + t * S + 2000))
    alerts = {(e.code, e.sources) for e in out if isinstance(e, Event) and e.type == "alert"}
    assert alerts == {("source.falseticker", ("t3",))}
    verdicts = {sid: v[0].value for sid, v in eng.ctx.consensus.verdicts.items()}
    assert verdicts == {"t1": "truechimer", "t2": "truechimer", "t3": "falseticker"}
