"""ChronyTracker: chrony's selected source against timewatch's verdicts (observations only)."""

from __future__ import annotations

from timewatch.engine import Engine
from timewatch.engine.vote import Consensus, Verdict
from timewatch.records import Chrony, Event, Header, SourceInfo

NOW = 1_764_160_000_000_000_000

TRACKING = ("7F00000E,127.0.0.14,3,1764159990.000000000,-0.000001,0.000002,0.000003,-1.234,"
            "0.001,0.05,0.000123,0.000456,2.0,Normal")


def _sources(selected: str) -> tuple[str, ...]:
    return tuple(f"^,{'*' if a == selected else '+'},{a},2,0,377,1,0.0,0.0,0.0001"
                 for a in ("127.0.0.11", "127.0.0.14"))


def _engine() -> Engine:
    h = Header("t", NOW, {"a": SourceInfo("ntp", "a", server="127.0.0.11"),
                          "liar": SourceInfo("ntp", "l", server="time.example.net"),
                          "chrony": SourceInfo("chrony", "chrony", poll_s=2.0)})
    return Engine(h)


def test_following_a_falseticker_alerts_and_clears() -> None:
    eng = _engine()
    # The vote said: liar is a falseticker (as the NTP trackers would have made it).
    eng.ctx.consensus = Consensus(True, 2, 1, verdicts={
        "liar": (Verdict.FALSETICKER, "2500 ms ahead"), "a": (Verdict.TRUECHIMER, "agrees")})
    names = (("127.0.0.14", "time.example.net"),)
    out = eng.feed(Chrony("chrony", NOW, TRACKING, _sources("127.0.0.14"), names))
    ev = [o for o in out if isinstance(o, Event)]
    assert [(e.code, e.sources) for e in ev] == [("consensus.daemon_disagrees",
                                                  ("chrony", "liar"))]
    assert ev[0].severity == "critical" and ev[0].evidence["chrony_selected"] == "127.0.0.14"
    # chrony moves to the honest server: clears after the hold-down.
    t = NOW
    cleared = []
    for i in range(1, 100):
        t = NOW + i * 2_000_000_000
        out = eng.feed(Chrony("chrony", t, TRACKING, _sources("127.0.0.11"), names))
        cleared += [o for o in out if isinstance(o, Event) and o.type == "clear"]
    assert [e.id for e in cleared] == [ev[0].id]


def test_following_a_truechimer_or_unknown_server_is_quiet() -> None:
    eng = _engine()
    eng.ctx.consensus = Consensus(True, 2, 2, verdicts={
        "liar": (Verdict.TRUECHIMER, ""), "a": (Verdict.TRUECHIMER, "")})
    out = eng.feed(Chrony("chrony", NOW, TRACKING, _sources("127.0.0.14"),
                          (("127.0.0.14", "time.example.net"),)))
    assert not [o for o in out if isinstance(o, Event)]
    out = eng.feed(Chrony("chrony", NOW + 1, TRACKING, _sources("10.9.9.9")))
    assert not [o for o in out if isinstance(o, Event)]
    assert eng.ctx.trackers["chrony"].status_fields()["chrony_stratum"] == 3


def test_chronyc_not_answering_goes_stale() -> None:
    eng = _engine()
    eng.feed(Chrony("chrony", NOW, TRACKING, _sources("127.0.0.11")))
    codes = []
    for i in range(1, 10):
        out = eng.feed(Chrony("chrony", NOW + i * 2_000_000_000, error="unreachable"))
        codes += [(o.code, o.sources) for o in out if isinstance(o, Event)]
    assert ("source.stale", ("chrony",)) in codes
