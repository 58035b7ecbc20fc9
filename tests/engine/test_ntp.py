"""engine/ntp.py: NTP validation, samples, the clock filter, and the alerts NTP sources raise.

Observations are built here (tests/engine/ntpsim.py, noise of docs/threats.md); no sockets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import ntplib
import pytest

from timewatch.engine import Engine
from timewatch.engine.ntp import NtpSample, NtpTracker
from timewatch.engine.params import Detect
from timewatch.records import Event, Header, Ntp, Output, Sample, SourceInfo, Tick
from timewatch.wire.ntp import (
    NTP_UNIX_DELTA_S,
    PacketError,
    decode,
    decode_hex,
    is_ntp_zero,
    ntp_parts_to_unix_ns,
    ntp_to_unix_ns,
    unix_ns_to_ntp,
    unpack_hex,
)

from .ntpsim import (
    NS,
    T0_NS,
    Server,
    events,
    exchange,
    four_groups,
    header,
    packet_record,
    replace,
    run,
    schedule,
)


def codes(out: Sequence[Output]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(e.type, e.code, e.sources) for e in events(out)]


# What the NTP tracker and the vote raise; other detectors (time.step...) have their own tests.
OWN_CODES = {"source.falseticker", "source.stale", "source.unusable", "consensus.lost",
             "ntp.kiss", "ntp.bogus"}


def mine(out: Sequence[Output]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [c for c in codes(out) if c[1] in OWN_CODES]


def own_events(out: Sequence[Output]) -> list[Event]:
    return [e for e in events(out) if e.code in OWN_CODES]


def quiet_servers(poll_s: float = 64.0) -> list[Server]:
    """Four groups, fixed delays, for tests that change one thing."""
    return [Server("a1", "op-a", 0.010, poll_s=poll_s, phase_s=1.0),
            Server("a2", "op-a", 0.020, asym_s=0.002, poll_s=poll_s, phase_s=9.0),
            Server("b1", "op-b", 0.004, poll_s=poll_s, phase_s=17.0),
            Server("c1", "op-c", 0.030, asym_s=-0.003, poll_s=poll_s, phase_s=25.0),
            Server("d1", "op-d", 0.015, poll_s=poll_s, phase_s=33.0)]


def reply(s: Server, t_s: float, rng: random.Random, **pkt_changes: object) -> Ntp:
    """A noiseless reply of `s` at t_s, its packet changed as asked (record rebuilt from it)."""
    o = exchange(s, T0_NS + round(t_s * NS), rng, noise=False)
    assert o.pkt_hex is not None
    p = replace(decode_hex(o.pkt_hex), **pkt_changes)  # type: ignore[arg-type]
    return packet_record(o.src, o.t1_ns, o.t4_ns or 0, p, int(o.xmt_hex, 16))


def polls_until_alert(obs: Sequence[Ntp], out: Sequence[Output], src: str, code: str,
                      since_ns: int) -> int | None:
    """How many polls of `src` (from since_ns) it took until `code` named it."""
    ev = [e for e in events(out)
          if e.type == "alert" and e.code == code and src in e.sources]
    if not ev:
        return None
    polls = [o for o in obs if o.src == src and o.t1_ns >= since_ns]
    return sum(1 for o in polls if o.rx_ns <= ev[0].t_ns)


# -- the packet codec -------------------------------------------------------------------------

def test_codec_agrees_with_ntplib_on_every_field_ntplib_decodes() -> None:
    rng = random.Random(3)
    for _ in range(200):
        s = Server("x", "g", rng.uniform(0.001, 0.05), stratum=rng.choice([1, 2, 3, 16]),
                   refid=bytes(rng.randrange(256) for _ in range(4)), leap=rng.randrange(4),
                   root_delay_s=rng.uniform(0, 2), root_dispersion_s=rng.uniform(0, 2))
        o = exchange(s, T0_NS + rng.randrange(10**15), rng, noise=False)
        assert o.pkt_hex is not None
        raw = bytes.fromhex(o.pkt_hex)
        ours, theirs = decode(raw), ntplib.NTPPacket()
        theirs.from_data(raw)
        assert (ours.leap, ours.version, ours.mode, ours.stratum, ours.precision) == \
            (theirs.leap, theirs.version, theirs.mode, theirs.stratum, theirs.precision)
        assert ours.root_delay_s == theirs.root_delay
        assert ours.root_dispersion_s == theirs.root_dispersion
        assert int.from_bytes(ours.refid_raw, "big") == theirs.ref_id
        # ntplib's float timestamps: equal to ours within its ~0.5 us resolution, no better.
        for mine, its in ((ours.rec_ts, theirs.recv_timestamp), (ours.xmt_ts, theirs.tx_timestamp)):
            assert abs(mine / 2**32 - its) < 1e-6
        assert ours.encode() == raw


def test_timestamp_conversion_round_trips_and_resolves_the_era() -> None:
    rng = random.Random(5)
    for _ in range(1000):
        ns = T0_NS + rng.randrange(-10**18, 10**18)
        assert abs(ntp_to_unix_ns(unix_ns_to_ntp(ns), ns + rng.randrange(-10**17, 10**17)) - ns) <= 1
    # 2036-02-07 06:28:16 UTC starts NTP era 1: timestamp 0 again.
    era1_ns = ((1 << 32) - NTP_UNIX_DELTA_S) * NS
    assert unix_ns_to_ntp(era1_ns + 5 * NS) == 5 << 32
    assert ntp_to_unix_ns(5 << 32, era1_ns) == era1_ns + 5 * NS
    assert ntp_to_unix_ns(5 << 32, -NTP_UNIX_DELTA_S * NS) == (5 - NTP_UNIX_DELTA_S) * NS
    assert is_ntp_zero(-NTP_UNIX_DELTA_S * NS) and is_ntp_zero(era1_ns)
    assert not is_ntp_zero(T0_NS)


def test_era_resolution_matches_rounding_at_half_era_boundaries() -> None:
    """The usual-case shortcut of ntp_to_unix_ns (same era) against the plain formula."""
    era_ns = (1 << 32) * NS

    def reference(ts: int, near_ns: int) -> int:
        ns = ((ts >> 32) - NTP_UNIX_DELTA_S) * NS + (((ts & 0xFFFF_FFFF) * NS + (1 << 31)) >> 32)
        return ns + round((near_ns - ns) / era_ns) * era_ns

    rng = random.Random(11)
    for _ in range(5000):
        ts = rng.getrandbits(64)
        ns = ntp_to_unix_ns(ts, ((ts >> 32) - NTP_UNIX_DELTA_S) * NS)  # its own era
        for k in (-3, -1, 0, 1, 3):  # around +-0.5 and +-1.5 eras away, where rounding flips
            near = ns + k * (era_ns // 2) + rng.randint(-3, 3)
            assert ntp_to_unix_ns(ts, near) == reference(ts, near), (ts, near)


def test_unpack_hex_gives_the_fields_decode_gives() -> None:
    """The engine's hot path (`unpack_hex`: timestamps as seconds and fraction, converted by
    `ntp_parts_to_unix_ns`) against `decode` and `ntp_to_unix_ns`, on any 48 bytes."""
    rng = random.Random(8)
    for _ in range(2000):
        raw = rng.randbytes(48)
        p = decode(raw)
        lvm, stratum, poll, prec, rd, rdisp, refid, org, rec_s, rec_f, xmt_s, xmt_f = unpack_hex(
            raw.hex())
        assert (lvm >> 6, (lvm >> 3) & 7, lvm & 7, stratum, poll, prec, rd, rdisp, refid, org) \
            == (p.leap, p.version, p.mode, p.stratum, p.poll, p.precision, p.root_delay_raw,
                p.root_dispersion_raw, p.refid_raw, p.org_ts)
        assert ((rec_s << 32) | rec_f, (xmt_s << 32) | xmt_f) == (p.rec_ts, p.xmt_ts)
        near = T0_NS + rng.randrange(-10**18, 10**18)
        assert ntp_parts_to_unix_ns(rec_s, rec_f, near) == ntp_to_unix_ns(p.rec_ts, near)
        assert ntp_parts_to_unix_ns(xmt_s, xmt_f, near) == ntp_to_unix_ns(p.xmt_ts, near)
    with pytest.raises(PacketError, match="47 bytes"):
        unpack_hex("00" * 47)
    with pytest.raises(PacketError, match="not hexadecimal"):
        unpack_hex("zz" * 48)


def test_codec_rejects_short_or_non_hex_packets() -> None:
    with pytest.raises(PacketError, match="47 bytes"):
        decode(bytes(47))
    with pytest.raises(PacketError, match="not hexadecimal"):
        decode_hex("zz" * 48)


# -- honest servers: no alert -------------------------------------------------------------------

def test_honest_servers_two_days_four_groups_no_alert() -> None:
    rng = random.Random(11)
    servers = four_groups(rng, poll_s=64.0)
    obs = schedule(servers, 2 * 86400, rng)
    out = run(header(servers), list(obs))
    assert codes(out) == []
    samples = [o for o in out if isinstance(o, Sample)]
    # Spikes and timeouts really were in the trace, and every good reply became a sample.
    assert sum(o.error == "timeout" for o in obs) > 0
    spikes = [s for s in samples if s.fields["delay_s"] > 4 * min(
        t.fields["delay_s"] for t in samples if t.src == s.src)]
    assert len(spikes) > 50
    assert len(samples) == sum(o.error is None for o in obs)


def test_honest_servers_fast_polling_half_day_no_alert() -> None:
    rng = random.Random(21)
    servers = four_groups(rng, poll_s=16.0)
    out = run(header(servers), list(schedule(servers, 12 * 3600, rng)))
    assert codes(out) == []


# -- a liar -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,lie_s", [(1, 0.05), (2, -0.05), (3, 0.05), (4, 0.2), (5, 1.0),
                                        (6, -0.05), (7, 0.05), (8, -0.06), (9, 0.05),
                                        (10, -0.05)])
def test_liar_caught_within_three_polls_and_named_alone(seed: int, lie_s: float) -> None:
    rng = random.Random(seed)
    servers = four_groups(rng, poll_s=64.0)
    liar = servers[rng.randrange(len(servers))]
    # Provable by intervals: the liar's bound (~ its one-way delay) plus the tightest honest
    # bound stays under the lie (docs/ntp.md "What the vote can prove").
    liar.delay_s = rng.uniform(0.002, 0.020)
    honest = [s for s in servers if s.group != liar.group]
    rng.choice(honest).delay_s = rng.uniform(0.002, 0.020)
    before = schedule(servers, 3600, rng)
    liar.lie_s = lie_s
    start_ns = T0_NS + 3600 * NS
    after = schedule(servers, 1200, rng, start_s=3600)
    out = run(header(servers), list(before + after))
    got = codes(out)
    assert ("alert", "source.falseticker", (liar.src,)) in got
    assert all(srcs == (liar.src,) for _, _, srcs in got), got  # nobody else is named
    n = polls_until_alert(after, out, liar.src, "source.falseticker", start_ns)
    assert n is not None and n <= 3, f"{liar.src} named after {n} polls"
    ev = [e for e in events(out) if e.code == "source.falseticker"][0]
    assert abs(ev.evidence["offset_s"] - lie_s) < 0.005
    assert ev.severity == "critical"


def test_liar_inside_every_honest_interval_is_not_named_by_the_vote() -> None:
    # Every path is 30-40 ms one way: honest intervals are +-30-40 ms wide, so a 50 ms lie
    # still overlaps all of them and no interval test can prove it (nobody is named falsely).
    rng = random.Random(31)
    servers = four_groups(rng)
    for s in servers:
        s.delay_s = rng.uniform(0.030, 0.040)
    before = schedule(servers, 3600, rng)
    servers[0].lie_s = 0.05
    out = run(header(servers), list(before + schedule(servers, 1200, rng, start_s=3600)))
    assert [c for c in codes(out) if c[1] == "source.falseticker"] == []
    assert all(srcs == (servers[0].src,) for _, _, srcs in codes(out))


def test_liar_whose_first_lie_is_a_delay_spike_still_caught_in_three_polls() -> None:
    rng = random.Random(9)
    servers = quiet_servers()
    liar = servers[2]
    obs = schedule(servers, 1800, rng, noise=False)
    liar.lie_s = 0.05
    lies = schedule([liar], 64 * 5, rng, start_s=1800, noise=False)
    spike = liar.delay_s * 10
    s = replace(liar, delay_s=spike)  # first lying reply: 10x the base delay both ways
    lies[0] = exchange(s, lies[0].t1_ns, rng, noise=False)
    others = schedule([x for x in servers if x is not liar], 64 * 5, rng, start_s=1800,
                      noise=False)
    after = sorted(lies + others, key=lambda o: o.rx_ns)
    out = run(header(servers), list(obs + after))
    assert mine(out) == [("alert", "source.falseticker", (liar.src,))]
    n = polls_until_alert(after, out, liar.src, "source.falseticker", lies[0].t1_ns)
    assert n == 3


def test_liar_stops_lying_and_alert_clears_with_same_id() -> None:
    rng = random.Random(10)
    servers = quiet_servers()
    liar = servers[4]
    liar.lie_s = 0.1
    obs = schedule(servers, 1200, rng)
    liar.lie_s = 0.0
    obs += schedule(servers, 1200, rng, start_s=1200)
    ev = own_events(run(header(servers), list(obs)))
    assert [(e.type, e.code, e.sources) for e in ev] == [
        ("alert", "source.falseticker", ("d1",)), ("clear", "source.falseticker", ("d1",))]
    assert ev[0].id == ev[1].id
    assert ev[1].t_ns - 1200 * NS - T0_NS >= Detect().hold_down_s * NS


def test_majority_of_servers_lying_in_one_group_are_named_honest_groups_not() -> None:
    rng = random.Random(13)
    servers = four_groups(rng)
    liars = [Server(f"x{i}", "op-x", rng.uniform(0.005, 0.03), poll_s=64.0,
                    phase_s=rng.uniform(0, 64)) for i in range(5)]
    allsrv = servers + liars
    before = schedule(allsrv, 1800, rng)
    for x in liars:
        x.lie_s = 0.08
    after = schedule(allsrv, 1800, rng, start_s=1800)
    out = run(header(allsrv), list(before + after))
    got = mine(out)
    assert sorted(got) == sorted(("alert", "source.falseticker", (x.src,)) for x in liars)
    for x in liars:
        n = polls_until_alert(after, out, x.src, "source.falseticker", T0_NS + 1800 * NS)
        assert n is not None and n <= 3


def test_three_groups_disagreeing_lose_consensus_within_three_polls() -> None:
    rng = random.Random(14)
    servers = [Server("a", "op-a", 0.01, phase_s=1), Server("b", "op-b", 0.02, phase_s=5),
               Server("c", "op-c", 0.015, phase_s=9)]
    before = schedule(servers, 1800, rng)
    servers[0].lie_s, servers[2].lie_s = -0.1, 0.1
    after = schedule(servers, 1200, rng, start_s=1800)
    out = run(header(servers), list(before + after))
    assert mine(out) == [("alert", "consensus.lost", ())]
    ev = own_events(out)[0]
    assert ev.severity == "critical" and ev.evidence["groups_agreeing"] == 1
    polls_a = [o for o in after if o.src == "a" and o.rx_ns <= ev.t_ns]
    assert 1 <= len(polls_a) <= 3


# -- staleness --------------------------------------------------------------------------------

def test_stale_after_three_silent_polls_and_clear_after_recovery() -> None:
    rng = random.Random(15)
    servers = quiet_servers()
    silent = servers[1]
    obs = schedule(servers, 1800, rng, noise=False)
    last_ok = max(o.rx_ns for o in obs if o.src == silent.src)
    rest = [s for s in servers if s is not silent]
    obs += schedule(rest, 600, rng, start_s=1800, noise=False)  # about 9 polls of silence
    back = schedule(servers, 600, rng, start_s=2400, noise=False)
    out = run(header(servers), list(obs + back))
    ev = own_events(out)
    assert [(e.type, e.code, e.sources) for e in ev] == [
        ("alert", "source.stale", (silent.src,)), ("clear", "source.stale", (silent.src,))]
    silent_s = (ev[0].t_ns - last_ok) / NS
    # Stale once 3 polls were missed (3.5 polls: the 4th is not due yet), not before.
    assert 3 * 64 < silent_s <= 3.5 * 64 + 10
    assert ev[0].evidence["limit_s"] == pytest.approx(3.5 * 64)
    first_back = min(o.rx_ns for o in back if o.src == silent.src)
    assert ev[1].t_ns == first_back and ev[1].id == ev[0].id


def test_stale_seen_through_ticks_when_every_source_is_silent() -> None:
    servers = quiet_servers(poll_s=16.0)
    obs: list[Ntp | Tick] = list(schedule(servers, 160, random.Random(16), noise=False))
    end = max(o.rx_ns for o in obs)
    obs += [Tick(end + k * NS) for k in range(1, 80)]
    got = mine(run(header(servers), obs))
    assert sorted(got) == sorted(("alert", "source.stale", (s.src,)) for s in servers)


def test_two_timeouts_in_a_row_are_not_stale() -> None:
    rng = random.Random(17)
    servers = quiet_servers()
    obs = schedule(servers, 3600, rng, noise=False)
    b1 = [i for i, o in enumerate(obs) if o.src == "b1"]
    for i in b1[10:12] + b1[30:32]:  # two pairs of consecutive timeouts
        o = obs[i]
        obs[i] = Ntp(src=o.src, rx_ns=o.t1_ns + 2 * NS, t1_ns=o.t1_ns, xmt_hex=o.xmt_hex,
                     error="timeout")
    obs.sort(key=lambda o: o.rx_ns)
    eng = Engine(header(servers))
    assert mine(run(header(servers), list(obs), eng)) == []
    tr = eng.ctx.trackers["b1"]
    assert isinstance(tr, NtpTracker) and tr.counts["timeout"] == 4


def test_poll_interval_learned_from_cadence_when_header_has_none() -> None:
    s = Server("n", "g", 0.01, poll_s=32.0)
    hdr = Header("t", T0_NS, {"n": SourceInfo("ntp", "g")})  # no poll_s
    rng = random.Random(18)
    burst = [exchange(s, T0_NS + k * 2 * NS, rng, noise=False) for k in range(4)]  # iburst
    obs = burst + schedule([s], 600, rng, start_s=10, noise=False)
    eng = Engine(hdr)
    run(hdr, list(obs), eng)
    tr = eng.ctx.trackers["n"]
    assert isinstance(tr, NtpTracker)
    assert tr.poll_s() == pytest.approx(32.0, rel=0.02)
    assert tr.stale_limit_s() == pytest.approx(3.5 * tr.poll_s())
    fresh = Engine(hdr).ctx.trackers["n"]
    assert isinstance(fresh, NtpTracker) and fresh.poll_s() == Detect().ntp_poll_default_s


# -- kiss, bogus, unusable --------------------------------------------------------------------

def kiss_reply(s: Server, t_s: float, rng: random.Random, code: bytes = b"RATE") -> Ntp:
    o = reply(s, t_s, rng, stratum=0, refid_raw=code)
    return replace(o, error="kiss")


def test_kiss_raises_ntp_kiss_with_code_never_falseticker() -> None:
    rng = random.Random(19)
    servers = quiet_servers()
    k = servers[3]
    obs = schedule(servers, 1800, rng, noise=False)
    others = schedule([s for s in servers if s is not k], 600, rng, start_s=1800, noise=False)
    kisses = [kiss_reply(k, 1800 + 64 * i + 25, rng) for i in range(9)]  # until 2337 s
    back = schedule(servers, 900, rng, start_s=2400, noise=False)
    eng = Engine(header(servers))
    out = run(header(servers), list(obs) + sorted(others + kisses, key=lambda o: o.rx_ns)
              + list(back), eng)
    ev = own_events(out)
    assert [(e.type, e.code, e.sources) for e in ev] == [
        ("alert", "ntp.kiss", ("c1",)), ("clear", "ntp.kiss", ("c1",))]
    assert ev[0].evidence["kiss_code"] == "RATE" and "RATE" in ev[0].message
    assert ev[0].t_ns == kisses[0].rx_ns  # on the first kiss
    tr = eng.ctx.trackers["c1"]
    assert isinstance(tr, NtpTracker) and tr.counts["kiss"] == 9 and tr.unusable_reason is None


def test_kiss_verdict_is_unusable_with_the_code_as_reason() -> None:
    rng = random.Random(20)
    servers = quiet_servers()
    obs = schedule(servers, 600, rng, noise=False)
    obs.append(kiss_reply(servers[0], 600, rng, b"DENY"))
    eng = Engine(header(servers))
    run(header(servers), list(obs), eng)
    verdict, reason = eng.verdict("a1")
    assert verdict == "unusable" and "DENY" in reason
    assert eng.ctx.trackers["a1"].estimate(eng.ctx.now_ns) is None


BOGUS_CASES = {
    "wrong_origin": lambda s, t, rng: replace(reply(s, t, rng), org_hex="0123456789abcdef"),
    "reader_bad_origin": lambda s, t, rng: replace(reply(s, t, rng, org_ts=12345),
                                                   error="bad_origin"),
    "mode_3": lambda s, t, rng: reply(s, t, rng, mode=3),
    "version_7": lambda s, t, rng: reply(s, t, rng, version=7),
    "t4_before_t1": lambda s, t, rng: (lambda o: replace(o, t4_ns=o.t1_ns - 1000,
                                                         rx_ns=o.t1_ns - 1000))(reply(s, t, rng)),
    "t3_before_t2": lambda s, t, rng: (lambda o: reply(s, t, rng, xmt_ts=decode_hex(
        o.pkt_hex or "").rec_ts - (1 << 20)))(reply(s, t, rng)),
    "negative_delay": lambda s, t, rng: (lambda o: reply(s, t, rng, xmt_ts=decode_hex(
        o.pkt_hex or "").rec_ts + (1 << 32) // 5))(reply(s, t, rng)),
    "zero_receive_timestamp": lambda s, t, rng: reply(s, t, rng, rec_ts=0),
    "pkt_hex_t3_mismatch": lambda s, t, rng: (lambda o: replace(
        o, t3_ns=(o.t3_ns or 0) + 1_000_000))(reply(s, t, rng)),
    "pkt_hex_stratum_mismatch": lambda s, t, rng: replace(reply(s, t, rng), stratum=2),
    "pkt_hex_truncated": lambda s, t, rng: (lambda o: replace(
        o, pkt_hex=(o.pkt_hex or "")[:80]))(reply(s, t, rng)),
    "reader_malformed": lambda s, t, rng: Ntp(src=s.src, rx_ns=T0_NS + round(t * NS) + 30_000_000,
                                              t1_ns=T0_NS + round(t * NS), xmt_hex="1" * 16,
                                              t4_ns=T0_NS + round(t * NS) + 30_000_000,
                                              pkt_hex="deadbeef", error="malformed"),
    "stratum_reserved": lambda s, t, rng: reply(s, t, rng, stratum=17),
}


@pytest.mark.parametrize("case", sorted(BOGUS_CASES))
def test_bogus_reply_rejected_counted_never_used(case: str) -> None:
    rng = random.Random(22)
    servers = quiet_servers()
    victim = servers[2]
    obs = schedule(servers, 900, rng, noise=False)
    # Bogus replies that would lie by 0.5 s if they were used.
    victim.lie_s = 0.5
    bad = [BOGUS_CASES[case](victim, 900 + 20 * i, rng) for i in range(4)]
    victim.lie_s = 0.0
    out = run(header(servers), sorted(obs + bad, key=lambda o: o.rx_ns))
    assert mine(out) == [("alert", "ntp.bogus", ("b1",))]
    ev = own_events(out)[0]
    assert ev.severity == "warning" and ev.evidence["rejected_count"] == 1
    assert ev.evidence["reason"] in ev.message
    used = [o for o in out if isinstance(o, Sample) and o.src == "b1" and abs(o.offset_s) > 0.1]
    assert used == []


def test_bogus_reasons_name_the_check() -> None:
    rng = random.Random(23)
    s = Server("b1", "op-b", 0.01)
    expect = {"wrong_origin": "does not echo", "mode_3": "mode 3", "version_7": "version 7",
              "t4_before_t1": "t4 < t1", "t3_before_t2": "t3 < t2",
              "negative_delay": "negative round-trip delay", "zero_receive_timestamp": "zero",
              "pkt_hex_t3_mismatch": "t3_ns", "pkt_hex_stratum_mismatch": "stratum 2",
              "pkt_hex_truncated": "bytes", "stratum_reserved": "reserved"}
    for case, words in expect.items():
        eng = Engine(header([s]))
        eng.feed(BOGUS_CASES[case](s, 100, rng))
        tr = eng.ctx.trackers["b1"]
        assert isinstance(tr, NtpTracker)
        assert tr.counts == {"bogus": 1} and tr.last_bogus_reason is not None
        assert words in tr.last_bogus_reason, (case, tr.last_bogus_reason)
        assert tr.estimate_ is None and eng.ctx.counters["ntp.bogus"] == 1


def test_spoofed_replies_next_to_genuine_ones_change_nothing_but_the_count() -> None:
    rng = random.Random(24)
    servers = quiet_servers()
    obs = schedule(servers, 3600, rng, noise=False)
    spoofed = [replace(reply(servers[0], t, rng, org_ts=rng.getrandbits(64),
                             rec_ts=unix_ns_to_ntp(T0_NS + round((t + 3) * NS))),
                       error="bad_origin") for t in range(600, 3600, 64)]
    eng = Engine(header(servers))
    out = run(header(servers), sorted(obs + spoofed, key=lambda o: o.rx_ns), eng)
    assert mine(out) == [("alert", "ntp.bogus", ("a1",))]
    tr = eng.ctx.trackers["a1"]
    assert isinstance(tr, NtpTracker) and tr.counts["bogus"] == len(spoofed)
    assert all(abs(h.offset_s) < 0.01 for h in tr.history)


@pytest.mark.parametrize("change,words", [({"stratum": 16}, "stratum 16"),
                                          ({"leap": 3}, "leap indicator 3")])
def test_unsynchronised_server_is_unusable_then_usable_again(change: dict[str, int],
                                                            words: str) -> None:
    rng = random.Random(25)
    servers = quiet_servers()
    u = servers[0]
    obs = schedule(servers, 600, rng, noise=False)
    bad = [reply(u, 600 + 64 * i + 3, rng, **change) for i in range(5)]
    others = schedule(servers[1:], 330, rng, start_s=600, noise=False)
    back = schedule(servers, 600, rng, start_s=930, noise=False)
    eng = Engine(header(servers))
    out = run(header(servers), obs + sorted(bad + others, key=lambda o: o.rx_ns) + back, eng)
    ev = own_events(out)
    assert [(e.type, e.code, e.sources) for e in ev] == [
        ("alert", "source.unusable", ("a1",)), ("clear", "source.unusable", ("a1",))]
    assert words in ev[0].message
    # No sample from an unsynchronised reply; and silence was not called stale.
    assert not any(isinstance(o, Sample) and o.src == "a1" and bad[0].rx_ns <= o.t_ns <= bad[-1].rx_ns
                   for o in out)


# -- the clock filter and what cross-source detectors read ---------------------------------------

def test_filter_delay_spike_does_not_move_estimate_real_change_does_at_once() -> None:
    rng = random.Random(26)
    s = Server("f", "g", 0.010, offset_s=0.0002, root_dispersion_s=0.0003)
    eng = Engine(header([s]))
    for i in range(8):
        eng.feed(exchange(s, T0_NS + i * 64 * NS, rng))
    tr = eng.ctx.trackers["f"]
    assert isinstance(tr, NtpTracker) and tr.estimate_ is not None
    calm = tr.estimate_
    spike = exchange(replace(s, delay_s=0.09, asym_s=-0.08), T0_NS + 8 * 64 * NS, rng,
                     noise=False)  # 9x out, 1x back: the sample alone is 40 ms off
    eng.feed(spike)
    assert tr.last is not None and abs(tr.last.offset_s) > 0.03
    e = tr.estimate_
    assert e is not None and e.t_ns == tr.last.t_ns
    assert abs(e.offset_s - calm.offset_s) < calm.bound_s + 0.001
    assert e.bound_s < calm.bound_s + 64 * Detect().aging_ppm * 1e-6 + 1e-9
    assert tr.last.bound_s > 0.04  # the spike alone would be a much wider interval
    s.lie_s = 0.05  # a real change: judged on its first sample
    eng.feed(exchange(s, T0_NS + 9 * 64 * NS, rng, noise=False))
    e = tr.estimate_
    assert e is not None and abs(e.offset_s - 0.0502) < 0.002
    assert e.bound_s == pytest.approx(tr.last.bound_s, abs=1e-12)


def test_history_last_and_min_delay_exposed() -> None:
    rng = random.Random(27)
    s = Server("h", "g", 0.010, root_delay_s=0.001, root_dispersion_s=0.0005, stratum=2,
               refid=bytes([192, 0, 2, 7]))
    eng = Engine(header([s]))
    for i in range(12):
        eng.feed(exchange(s, T0_NS + i * 64 * NS, rng, noise=False))
    tr = eng.ctx.trackers["h"]
    assert isinstance(tr, NtpTracker)
    assert len(tr.history) == Detect().ntp_filter_size == 8
    last = tr.last
    assert isinstance(last, NtpSample) and last is tr.history[-1]
    assert last.refid == "192.0.2.7" and last.stratum == 2 and last.leap == 0
    assert last.delay_s == pytest.approx(0.020, abs=1e-6)  # server processing is not delay
    # bound = delay/2 + root_delay/2 + root_dispersion + 2^-20 + host precision
    assert last.bound_s == pytest.approx(last.delay_s / 2 + 0.0005 + 0.0005 + 2**-20 + 1e-6,
                                         abs=2e-5)
    assert tr.min_delay_s == min(h.delay_s for h in tr.history)
    # Immutable: mypy refuses assignments (tests/engine/test_value.py), mypyc at run time.


def test_min_delay_follows_the_history_as_samples_leave() -> None:
    """min_delay_s is kept up to date per sample: right also when the minimum leaves."""
    rng = random.Random(28)
    s = Server("h", "g", 0.010)
    eng = Engine(header([s]))
    tr = eng.ctx.trackers["h"]
    assert isinstance(tr, NtpTracker)
    mins = set()
    for i in range(200):
        rec = exchange(s, T0_NS + i * 64 * NS, rng)
        if i % 10 == 3:  # a much lower delay now and then: the minimum, until it leaves
            rec = replace(rec, t4_ns=rec.t4_ns - 9_000_000, rx_ns=rec.rx_ns - 9_000_000)
        eng.feed(rec)
        if tr.history:
            assert tr.min_delay_s == min(h.delay_s for h in tr.history), i
            mins.add(tr.min_delay_s)
    assert len(mins) > 20  # the minimum did leave the history, many times


def test_sample_fields_and_math() -> None:
    s = Server("m", "g", 0.010, asym_s=0.004, offset_s=0.0001, poll_s=16.0)
    eng = Engine(header([s]))
    out = eng.feed(exchange(s, T0_NS, random.Random(0), noise=False))
    smp = [o for o in out if isinstance(o, Sample)][0]
    # offset = server error - host error + (d_out - d_back)/2 = 0.1 ms - 2 ms
    assert smp.offset_s == pytest.approx(0.0001 - 0.002, abs=1e-6)
    assert set(smp.fields) == {"delay_s", "root_delay_s", "root_dispersion_s", "stratum", "leap",
                               "poll_s"}
    assert smp.fields["delay_s"] == pytest.approx(0.024, abs=1e-6)
    assert smp.fields["poll_s"] == 16.0


# -- determinism ------------------------------------------------------------------------------

def test_same_observations_give_identical_outputs() -> None:
    rng = random.Random(28)
    servers = four_groups(rng)
    obs = schedule(servers, 3 * 3600, rng)
    servers[1].lie_s = 0.07
    obs += schedule(servers, 3600, rng, start_s=3 * 3600)
    a = [o.to_dict() for o in run(header(servers), list(obs))]
    b = [o.to_dict() for o in run(header(servers), list(obs))]
    assert a == b
    assert any(d["type"] == "alert" for d in a)


def test_events_are_events() -> None:
    s = Server("e", "g", 0.01)
    out = run(header([s]), [reply(s, 1, random.Random(1), mode=3)])
    assert all(isinstance(e, Event) for e in own_events(out)) and len(own_events(out)) == 1
