"""NTS in the engine (issue 15): the `nts` tracker's alerts and `[vote] auth_mode`, on synthetic
records (tests/engine/ntpsim.py: packets encoded and decoded as a reader does).

An `nts` source's records carry `auth = "nts"` and the KE session that an `nts_ke` record opened;
the tracker refuses what failed authentication (nts.auth_failed), what came without it
(nts.downgrade) and sessions nobody opened (ntp.bogus), and raises nts.ke_failed for a key
establishment that failed. The vote weighs authenticated groups by auth_mode, chrony's
authselectmode: every mode is run here with authenticated and unauthenticated groups disagreeing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from tests.engine.ntpsim import NS, T0_NS, Server, events, replace, run, schedule
from timewatch.engine import Engine
from timewatch.engine.vote import AUTH_NA, AUTH_NONE, AUTH_NTS, Interval, Verdict, vote
from timewatch.records import (
    AUTH_NTS as REC_NTS,
)
from timewatch.records import (
    Event,
    Header,
    Ntp,
    NtsKe,
    Observation,
    Output,
    Snapshot,
    SourceInfo,
)

POLL_S = 16.0
DURATION_S = 20 * POLL_S  # long enough for falseticker_confirm and for alerts to settle
LIE_S = 0.2  # what an on-path attacker adds to every plain NTP reply (or a liar to its own)


def servers(spec: list[tuple[str, float]]) -> list[Server]:
    """(id, lie_s) -> honest LAN-like servers, each its own trust group."""
    return [Server(sid, sid, 0.002 + 0.001 * i, lie_s=lie, poll_s=POLL_S, phase_s=0.5 * i)
            for i, (sid, lie) in enumerate(spec)]


def session(sid: str) -> str:
    return f"s-{sid}"


def header(srvs: list[Server], nts: set[str]) -> Header:
    return Header("test", T0_NS, {
        s.src: SourceInfo("nts" if s.src in nts else "ntp", s.group, server=f"{s.src}.test",
                          poll_s=s.poll_s) for s in srvs})


def ke(src: str, t_ns: int = T0_NS, **kw: object) -> NtsKe:
    if "cause" in kw:
        return NtsKe(src, t_ns, **kw)  # type: ignore[arg-type]
    return NtsKe(src, t_ns, session=session(src), ntp_server=f"{src}.test", ntp_port=123,
                 cookies=8, reason="first key establishment")


def authenticate(obs: Sequence[Ntp], nts: set[str]) -> list[Observation]:
    """The records an NTS reader writes: the KE first, then every reply authenticated."""
    out: list[Observation] = [ke(src) for src in sorted(nts)]
    for o in obs:
        if o.src in nts and o.error is None:
            o = replace(o, auth=REC_NTS, ke_session=session(o.src), pkt_hex=o.pkt_hex[:96])
        out.append(o)
    return out


def play(spec: list[tuple[str, float]], nts: set[str], auth_mode: str = "mix",
         seed: int = 1) -> tuple[list[Output], Engine]:
    srvs = servers(spec)
    hdr = header(srvs, nts)
    eng = Engine(hdr, auth_mode=auth_mode)
    obs = authenticate(schedule(srvs, DURATION_S, random.Random(seed)), nts)
    return run(hdr, obs, eng), eng


def alerts(out: Sequence[Output], code: str) -> list[Event]:
    return [e for e in events(out) if e.type == "alert" and e.code == code]


def accused(out: Sequence[Output]) -> set[str]:
    return {s for e in alerts(out, "source.falseticker") for s in e.sources}


def last_snapshot(out: Sequence[Output]) -> Snapshot:
    return [o for o in out if isinstance(o, Snapshot)][-1]


# Two authenticated operators against three plain ones that someone on the path moved by LIE_S
# (the plain ones answer first, so no vote of two against two loses the consensus on the way).
SPLIT = [("ntp-c", LIE_S), ("ntp-d", LIE_S), ("ntp-e", LIE_S), ("nts-a", 0.0), ("nts-b", 0.0)]
SPLIT_NTS = {"nts-a", "nts-b"}


def test_split_under_ignore_names_the_authenticated_groups() -> None:
    """`ignore` (chrony before 4.0): authentication does not count, the moved majority wins."""
    out, _ = play(SPLIT, SPLIT_NTS, "ignore")
    assert accused(out) == SPLIT_NTS
    assert alerts(out, "consensus.auth_split") == []


def test_split_under_mix_is_an_alert_naming_both_sides_and_no_falseticker() -> None:
    out, eng = play(SPLIT, SPLIT_NTS, "mix")
    assert accused(out) == set()
    (a,) = alerts(out, "consensus.auth_split")
    assert a.severity == "critical" and a.sources == ()
    # Raised at nts-a's first reply (nts-b answers half a second later).
    assert a.evidence["authenticated_groups"] == ["nts-a"]
    assert a.evidence["majority_groups"] == ["ntp-c", "ntp-d", "ntp-e"]
    assert a.evidence["authenticated_sources"] == ["nts-a"]
    assert a.evidence["majority_sources"] == ["ntp-c", "ntp-d", "ntp-e"]
    assert "groups nts-a disagree" in a.message and "majority ntp-c, ntp-d, ntp-e" in a.message
    assert alerts(out, "consensus.lost") == []  # the split is the alert, not a lost consensus
    snap = last_snapshot(out)
    assert not snap.quorum and snap.consensus_offset_s is None
    assert {s.verdict for s in snap.sources} == {"no_quorum"}
    assert all("consensus.auth_split" in s.reason for s in snap.sources)
    assert {s.src: s.auth for s in snap.sources} == {
        "nts-a": "nts", "nts-b": "nts", "ntp-c": None, "ntp-d": None, "ntp-e": None}
    assert eng.ctx.consensus.auth_split == (("nts-a", "nts-b"), ("ntp-c", "ntp-d", "ntp-e"))


@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_split_under_require_and_prefer_the_authenticated_groups_decide(mode: str) -> None:
    """Unauthenticated NTP servers are withheld from the consensus (chrony: noselect) but still
    judged against it: the moved ones are named."""
    out, eng = play(SPLIT, SPLIT_NTS, mode)
    assert eng.auth_mode == "require"
    assert accused(out) == {"ntp-c", "ntp-d", "ntp-e"}
    assert alerts(out, "consensus.auth_split") == []
    snap = last_snapshot(out)
    assert snap.quorum and snap.groups_voting == 2 and snap.groups_agreeing == 2
    assert snap.consensus_offset_s is not None and abs(snap.consensus_offset_s) < 0.01


def test_mix_an_authenticated_liar_is_named_when_an_authenticated_group_is_in_the_majority() -> None:
    """`mix` forbids the unauthenticated groups only to condemn the authenticated ones on their
    own: with an authenticated group on the majority side, a lying NTS server is named."""
    spec = [("nts-a", 0.0), ("nts-liar", 2.5), ("ntp-c", 0.0), ("ntp-d", 0.0)]
    out, _ = play(spec, {"nts-a", "nts-liar"}, "mix")
    assert accused(out) == {"nts-liar"}
    assert alerts(out, "consensus.auth_split") == []


def test_mix_authenticated_majority_names_unauthenticated_liar() -> None:
    spec = [("nts-a", 0.0), ("nts-b", 0.0), ("nts-c", 0.0), ("ntp-liar", LIE_S)]
    out, _ = play(spec, {"nts-a", "nts-b", "nts-c"}, "mix")
    assert accused(out) == {"ntp-liar"}


def test_mix_without_authenticated_sources_is_the_plain_vote() -> None:
    spec = [("ntp-a", 0.0), ("ntp-b", 0.0), ("ntp-c", 0.0), ("ntp-liar", LIE_S)]
    for mode in ("mix", "prefer", "ignore"):
        out, eng = play(spec, set(), mode)
        assert accused(out) == {"ntp-liar"}, mode
    assert eng.auth_mode == "ignore"  # prefer without any NTS source


def test_require_without_authenticated_sources_has_no_vote() -> None:
    out, _ = play([("ntp-a", 0.0), ("ntp-b", 0.0), ("ntp-c", LIE_S)], set(), "require")
    assert accused(out) == set()
    snap = last_snapshot(out)
    assert not snap.quorum and snap.groups_voting == 0


def test_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auth_mode"):
        Engine(header(servers([("a", 0.0)]), set()), auth_mode="trust")


# -- the vote itself ---------------------------------------------------------------------------

def iv(src: str, off_ms: float, auth: int, group: str | None = None) -> Interval:
    return Interval(src, group or src, off_ms / 1e3, 1e-3, auth)


def test_require_withholds_only_unauthenticated_ntp_servers() -> None:
    """A GNSS or PPS source (AUTH_NA) is no NTP server: auth_mode never withholds it."""
    c = vote([iv("nts", 0, AUTH_NTS), iv("gnss", 0.5, AUTH_NA), iv("ntp", 0.2, AUTH_NONE)],
             auth_mode="require")
    assert c.quorum and c.groups_voting == 2
    assert c.verdicts["ntp"][0] is Verdict.TRUECHIMER and "withheld" in c.verdicts["ntp"][1]


def test_a_group_with_an_unauthenticated_member_is_not_authenticated() -> None:
    """Mixed group "x" (NTS and plain NTP) at +50 ms against two plain groups at 0: no
    authenticated group is outvoted, so its members are judged as usual."""
    ivs = [iv("x-nts", 50, AUTH_NTS, "x"), iv("x-ntp", 50, AUTH_NONE, "x"),
           iv("b", 0, AUTH_NONE), iv("c", 0, AUTH_NONE)]
    c = vote(ivs, auth_mode="mix")
    assert c.quorum and c.auth_split is None
    assert c.verdicts["x-nts"][0] is Verdict.FALSETICKER


def test_mix_split_only_when_an_authenticated_source_would_be_condemned() -> None:
    """Authenticated and unauthenticated groups that overlap are no split."""
    ivs = [iv("n", 0.9, AUTH_NTS), iv("b", 0, AUTH_NONE), iv("c", 0, AUTH_NONE)]
    c = vote(ivs, auth_mode="mix")
    assert c.quorum and c.auth_split is None
    assert c.verdicts["n"][0] is Verdict.TRUECHIMER


# -- the nts tracker ---------------------------------------------------------------------------

FOUR = [("nts-a", 0.0), ("nts-b", 0.0), ("nts-c", 0.0), ("nts-d", 0.0)]
FOUR_NTS = {s for s, _ in FOUR}


def records(nts: set[str] = FOUR_NTS, seed: int = 2) -> tuple[Header, list[Observation]]:
    srvs = servers(FOUR)
    return header(srvs, nts), authenticate(schedule(srvs, DURATION_S, random.Random(seed)), nts)


def samples_of(out: Sequence[Output], src: str) -> int:
    return sum(1 for o in out if getattr(o, "type", "") == "sample" and o.src == src)  # type: ignore[union-attr]


def test_honest_nts_servers_no_alert_every_source_authenticated() -> None:
    hdr, obs = records()
    out = run(hdr, obs)
    assert [e.code for e in events(out)] == []
    snap = last_snapshot(out)
    assert {s.auth for s in snap.sources} == {"nts"}
    assert {s.verdict for s in snap.sources} == {"truechimer"}
    assert all(s.fields["ke_sessions"] == 1 for s in snap.sources)
    assert all(s.to_dict()["auth"] == "nts" for s in snap.sources)


def forged(o: Ntp, error: str, why: str) -> Ntp:
    """What the reader records for a datagram that failed (its header only, no auth)."""
    return replace(o, auth=None, error=error, auth_error=why, t3_ns=(o.t3_ns or 0) + NS // 2)


def test_reply_that_failed_authentication_is_critical_and_never_used() -> None:
    hdr, obs = records()
    victim = "nts-b"
    mine = [i for i, o in enumerate(obs) if isinstance(o, Ntp) and o.src == victim]
    # Every reply of nts-b from the 5th on is preceded by a forged copy half a second off.
    for i in reversed(mine[4:]):
        o = obs[i]
        assert isinstance(o, Ntp)
        obs.insert(i, forged(o, "nts_auth_failed", "authenticator failed: the reply was "
                                                    "altered or not made with our session's key"))
    out = run(hdr, obs)
    (a,) = alerts(out, "nts.auth_failed")
    assert a.severity == "critical" and a.sources == (victim,)
    assert a.evidence["auth_error"].startswith("authenticator failed")
    assert a.evidence["ke_session"] == session(victim)
    assert accused(out) == set()  # the forged half second never reached the vote
    assert samples_of(out, victim) == len(mine)
    snap = last_snapshot(out)
    st = {s.src: s for s in snap.sources}[victim]
    assert st.verdict == "truechimer" and st.fields["auth_failed_count"] == len(mine) - 4


def test_only_forged_replies_make_the_source_stale_not_a_falseticker() -> None:
    hdr, obs = records()
    victim = "nts-c"
    obs = [forged(o, "nts_auth_failed", "authenticator failed")
           if isinstance(o, Ntp) and o.src == victim and o.rx_ns > T0_NS + 3 * POLL_S * NS
           else o for o in obs]
    out = run(hdr, obs)
    assert [e.sources for e in alerts(out, "nts.auth_failed")] == [(victim,)]
    assert [e.sources for e in alerts(out, "source.stale")] == [(victim,)]
    assert accused(out) == set()


def test_downgrade_reported_by_the_reader_and_found_by_the_engine() -> None:
    hdr, obs = records()
    obs = [forged(o, "nts_downgrade", "no authenticator (downgrade): 0 extension fields")
           if isinstance(o, Ntp) and o.src == "nts-a" and o.error is None
           else replace(o, auth=None) if isinstance(o, Ntp) and o.src == "nts-d"
           else o for o in obs]
    out = run(hdr, obs)
    got = {e.sources[0]: e for e in alerts(out, "nts.downgrade")}
    assert set(got) == {"nts-a", "nts-d"} and {e.severity for e in got.values()} == {"critical"}
    assert got["nts-a"].evidence["auth_error"].startswith("no authenticator")
    assert got["nts-d"].evidence["auth_error"] == "a usable reply without NTS authentication"
    assert samples_of(out, "nts-a") == samples_of(out, "nts-d") == 0
    assert accused(out) == set()


def test_plain_ntp_source_needs_no_authentication() -> None:
    hdr, obs = records(nts={"nts-a", "nts-b", "nts-c"})
    out = run(hdr, obs)
    assert [e.code for e in events(out)] == []
    assert {s.src: s.auth for s in last_snapshot(out).sources}["nts-d"] is None


def test_reply_under_a_session_no_key_establishment_opened_is_bogus() -> None:
    hdr, obs = records()
    obs = [replace(o, ke_session="feedface") if isinstance(o, Ntp) and o.src == "nts-b" else o
           for o in obs]
    out = run(hdr, obs)
    (a,) = alerts(out, "ntp.bogus")
    assert a.sources == ("nts-b",) and "feedface" in a.evidence["reason"]
    assert samples_of(out, "nts-b") == 0


def test_key_establishment_failure_is_a_warning_naming_the_cause_and_clears() -> None:
    hdr, obs = records()
    msg = ("NTS-KE 127.0.0.1:4460: certificate of CN=x (names ['127.0.0.9']) is not for "
           "127.0.0.1")
    failed = ke("nts-a", T0_NS, cause="name", message=msg, reason="first key establishment")
    obs = [o for o in obs if not (isinstance(o, NtsKe) and o.src == "nts-a")]
    t_ok = T0_NS + 5 * round(POLL_S * NS)
    obs = [failed] + [o for o in obs if not (o.src == "nts-a" and o.rx_ns < t_ok)]
    obs.insert(next(i for i, o in enumerate(obs) if o.rx_ns >= t_ok), ke("nts-a", t_ok))
    out = run(hdr, obs)
    (a,) = alerts(out, "nts.ke_failed")
    assert a.severity == "warning" and a.sources == ("nts-a",)
    assert a.evidence["cause"] == "name" and a.evidence["message"] == msg
    assert "(name)" in a.message and "127.0.0.9" in a.message
    clears = [e for e in events(out) if e.type == "clear" and e.code == "nts.ke_failed"]
    assert [c.id for c in clears] == [a.id]  # the next good KE, plus the hold-down
    assert accused(out) == set()


def test_nts_nak_is_counted_without_alert() -> None:
    hdr, obs = records()
    i = next(i for i, o in enumerate(obs) if isinstance(o, Ntp) and o.src == "nts-a"
             and o.rx_ns > T0_NS + 5 * POLL_S * NS)
    o = obs[i]
    assert isinstance(o, Ntp) and o.pkt_hex is not None
    nak = replace(o, auth=None, error="kiss", stratum=0, refid="NTSN",
                  pkt_hex=o.pkt_hex[:2] + "00" + o.pkt_hex[4:24] + b"NTSN".hex() + o.pkt_hex[32:])
    obs[i] = nak
    out = run(hdr, obs)
    assert [e.code for e in events(out)] == []
    st = {s.src: s for s in last_snapshot(out).sources}["nts-a"]
    assert st.fields["nak_count"] == 1


def test_trace_round_trip_keeps_the_nts_fields(tmp_path: object) -> None:
    from pathlib import Path

    from timewatch.trace import TraceReader, TraceWriter

    hdr, obs = records()
    path = Path(str(tmp_path)) / "nts.jsonl"
    w = TraceWriter(path, hdr)
    for o in obs:
        w.write(o)
    w.close()
    back = list(TraceReader(path))
    assert back == obs
    assert sum(isinstance(o, NtsKe) for o in back) == 4
    assert all(o.auth == "nts" for o in back if isinstance(o, Ntp))
