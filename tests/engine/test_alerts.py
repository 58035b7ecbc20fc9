"""engine/alerts.py: raise once, hold-down before clear, same id on the clear, stable ids."""

from __future__ import annotations

from timewatch.engine.alerts import Alerts, worst

S = 1_000_000_000


def test_condition_is_alerted_once_while_active() -> None:
    a = Alerts()
    assert a.assert_("source.stale", 1 * S, ("ntp-a",), "stale", {"silent_s": 1.0})
    assert not a.assert_("source.stale", 2 * S, ("ntp-a",), "stale", {"silent_s": 2.0})
    assert not a.assert_("source.stale", 3 * S, ("ntp-a",), "stale", {"silent_s": 3.0})
    ev = a.drain()
    assert [(e.type, e.code, e.sources, e.t_ns) for e in ev] == \
        [("alert", "source.stale", ("ntp-a",), 1 * S)]
    assert ev[0].evidence == {"silent_s": 1.0}
    assert a.drain() == []
    assert a.is_active("source.stale", "ntp-a")


def test_clear_only_after_hold_down_and_with_same_id() -> None:
    a = Alerts()
    a.assert_("ntp.kiss", 10 * S, ("b",), "kiss", {}, hold_down_s=120)
    aid = a.drain()[0].id
    a.release("ntp.kiss", 20 * S, "b")
    a.tick(139 * S)
    assert a.drain() == [] and a.is_active("ntp.kiss", "b")
    a.tick(140 * S)
    ev = a.drain()
    assert [(e.type, e.code, e.id, e.t_ns, e.sources) for e in ev] == \
        [("clear", "ntp.kiss", aid, 140 * S, ("b",))]
    assert not a.is_active("ntp.kiss", "b")


def test_reassert_during_hold_down_prevents_flapping() -> None:
    a = Alerts()
    a.assert_("source.falseticker", 0, ("x",), "m", {}, hold_down_s=100)
    a.release("source.falseticker", 10 * S, "x")
    a.assert_("source.falseticker", 50 * S, ("x",), "m", {})  # came back: not raised again
    a.release("source.falseticker", 60 * S, "x")
    a.tick(150 * S)  # 90 s after the last release: still held
    assert [e.type for e in a.drain()] == ["alert"]
    a.tick(160 * S)
    assert [e.type for e in a.drain()] == ["clear"]


def test_release_of_unknown_condition_is_harmless() -> None:
    a = Alerts()
    a.release("source.stale", 5 * S, "nobody")
    a.tick(10 * S)
    assert a.drain() == [] and a.active() == []


def test_zero_hold_down_clears_at_release() -> None:
    a = Alerts()
    a.assert_("source.stale", 1 * S, ("p",), "m", {}, hold_down_s=0.0)
    a.release("source.stale", 2 * S, "p")
    assert [(e.type, e.t_ns) for e in a.drain()] == [("alert", 1 * S), ("clear", 2 * S)]


def test_raised_again_after_clear_gets_new_id() -> None:
    a = Alerts()
    a.assert_("source.stale", 1 * S, ("p",), "m", {}, hold_down_s=0.0)
    a.release("source.stale", 2 * S, "p")
    a.assert_("source.stale", 3 * S, ("p",), "m", {}, hold_down_s=0.0)
    ev = a.drain()
    assert [e.type for e in ev] == ["alert", "clear", "alert"]
    assert ev[0].id == ev[1].id != ev[2].id


def test_ids_are_deterministic_and_distinct_per_key() -> None:
    def run() -> list[str]:
        a = Alerts()
        a.assert_("source.falseticker", 7 * S, ("a",), "m", {})
        a.assert_("source.falseticker", 7 * S, ("b",), "m", {})
        a.assert_("consensus.lost", 7 * S, (), "m", {}, key="")
        return [e.id for e in a.drain()]

    ids = run()
    assert ids == run()
    assert len(set(ids)) == 3
    assert all(len(i) == 8 and int(i, 16) >= 0 for i in ids)


def test_key_separates_instances_of_one_code() -> None:
    a = Alerts()
    a.assert_("gnss.leap_second", 1, ("g",), "m", {}, key="2026-06")
    a.assert_("gnss.leap_second", 1, ("g",), "m", {}, key="2026-12")
    assert len(a.drain()) == 2
    assert [c for c, *_ in a.active()] == ["gnss.leap_second", "gnss.leap_second"]


def test_evidence_floats_rounded_for_stable_replays() -> None:
    a = Alerts()
    a.assert_("time.step", 1, ("g",), "m", {"offset_s": 0.1 + 0.2, "nested": {"x_s": [1 / 3]}})
    ev = a.drain()[0].evidence
    assert ev == {"offset_s": 0.3, "nested": {"x_s": [0.333333333]}}


def test_severity_override_and_active_listing() -> None:
    a = Alerts(severity_overrides={"ntp.kiss": "critical"})
    a.assert_("ntp.kiss", 1, ("n",), "m", {}, severity="warning")
    assert a.drain()[0].severity == "critical"
    assert a.active() == [("ntp.kiss", a.active()[0][1], ("n",), "critical")]
    assert worst(["info", "critical", "warning"]) == "critical" and worst([]) == "info"


def test_evidence_of_active_alert_is_updated_not_reemitted() -> None:
    a = Alerts()
    a.assert_("ntp.bogus", 1, ("n",), "m", {"rejected_count": 1})
    a.assert_("ntp.bogus", 2, ("n",), "m", {"rejected_count": 2})
    assert len(a.drain()) == 1
    assert a._active[("ntp.bogus", "n")].evidence == {"rejected_count": 2}
