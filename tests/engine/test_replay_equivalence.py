"""Replay is deterministic, and the engine's fast paths give what the plain computations give.

The speed work on the replay path (one aged estimate per tracker per vote, cheaper vote, msgspec
decoding trace lines into records, active-code checks before releases)
must not change a single event. These tests build their traces here (no golden files): a replay
twice gives identical outputs, and each fast path is checked against the reference computation
it replaced (kept below, or the library function it stands in for).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine import ppstrace as pt
from tests.engine.ntpsim import four_groups, header, schedule
from timewatch import trace as trace_mod
from timewatch.engine import Engine
from timewatch.engine.detectors import DriftDetector
from timewatch.engine.vote import Consensus, Interval, Verdict, _marzullo, vote
from timewatch.records import Header, Observation, observation_to_dict
from timewatch.sim import scenarios
from timewatch.trace import TraceReader, TraceWriter

NS = 1_000_000_000


def _write(path: Path, hdr: Header, obs: list[Observation]) -> Path:
    with TraceWriter(path, hdr) as w:
        for o in obs:
            w.write(o)
    return path


def _replay(path: Path, snapshots: bool = True, samples: bool = True) -> list[str]:
    """Every output of a replay (events, samples, snapshots) as JSON lines."""
    rd = TraceReader(path)
    eng = Engine(rd.header, snapshots=snapshots, samples=samples)
    out = [json.dumps(r.to_dict()) for o in rd for r in eng.feed(o)]
    return out + [json.dumps(r.to_dict()) for r in eng.finish()]


def _traces(tmp_path: Path) -> dict[str, Path]:
    """NTP (the bench's servers, a liar, a host step) and GNSS+PPS traces, a few minutes each."""
    rng = random.Random(5)
    servers = four_groups(rng, poll_s=16.0)
    servers[0].lie_s = 0.08  # a liar from the start: falseticker events in the replay
    out = {"ntp": _write(tmp_path / "ntp.jsonl", header(servers), schedule(servers, 1800, rng))}
    for name in ("host_step", "pps_faults"):
        s = scenarios.build(name, 2, 600.0)
        out[name] = _write(tmp_path / f"{name}.jsonl", s.header, s.observations)
    b = pt.build(300, seed=3)
    out["pps"] = _write(tmp_path / "pps.jsonl", b.header, b.obs)
    return out


def test_replaying_twice_gives_identical_events_samples_and_snapshots(tmp_path: Path) -> None:
    for name, path in _traces(tmp_path).items():
        first, second = _replay(path), _replay(path)
        assert first == second, name
        assert any('"type": "status"' in x for x in first), name
    # The traces exercise alerts, not only quiet operation.
    assert any('"type": "alert"' in x for x in _replay(tmp_path / "ntp.jsonl"))


def test_replay_without_snapshots_or_samples_gives_the_same_events(tmp_path: Path) -> None:
    """`replay` skips the snapshots and samples nobody reads: building them must not have
    changed anything else."""
    for name, path in _traces(tmp_path).items():
        full = _replay(path)
        no_status = [x for x in full if '"type": "status"' not in x]
        assert _replay(path, snapshots=False) == no_status, name
        events = [x for x in no_status if '"type": "sample"' not in x]
        assert len(events) < len(no_status), name  # the trace has samples to skip
        assert _replay(path, snapshots=False, samples=False) == events, name


def test_incremental_vote_and_active_codes_match_fresh_computation(tmp_path: Path) -> None:
    """After every record: each source's state equals the one computed afresh from its tracker
    (the engine looks only at the sources that changed); after a vote, each estimate the vote
    used equals `Tracker.estimate` computed afresh, and the consensus (verdicts included) equals
    `vote()` of every source's interval built afresh (the engine keeps a `Ballot` between votes)
    and the drift detector's reference per group equals the one read from every verdict;
    between votes the verdicts stay the last vote's; and `Alerts.active_codes` counts exactly
    the active alerts."""
    votes = 0
    for name, path in _traces(tmp_path).items():
        rd = TraceReader(path)
        eng = Engine(rd.header)
        ctx = eng.ctx
        last: list[Any] | None = None  # the last vote's verdicts
        for o in rd:
            eng.feed(o)
            now = ctx.now_ns
            for sid, tr in ctx.trackers.items():
                want = (Verdict.UNUSABLE if tr.unusable_reason is not None else Verdict.STALE
                        if tr.is_stale(now) else Verdict.INIT if tr.estimate_ is None else None)
                assert ctx.states[sid].status is want, (name, o, sid)
            if ctx.vote_now_ns is not None:
                votes += 1
                fresh = {sid: tr.estimate(now) for sid, tr in ctx.trackers.items()}
                assert {sid: ctx.estimate(sid) for sid in ctx.trackers} == fresh, (name, o)
                ivs = [Interval(sid, tr.group, e.offset_s, e.bound_s, tr.vote_auth)
                       for sid, tr in ctx.trackers.items() if (e := fresh[sid]) is not None]
                want_c = vote(ivs, ctx.moving_sources(), eng._anchor(), eng.auth_mode)
                assert ctx.consensus == want_c, (name, o)
                last = list(want_c.verdicts.items())
                drift = next(d for d in eng.detectors if isinstance(d, DriftDetector))
                for g in {tr.group for tr in ctx.trackers.values()}:
                    assert drift._reference(g, ctx.consensus) == \
                        drift._reference_by_verdicts(g, ctx.consensus), (name, o, g)
                assert list(ctx.consensus.verdicts.items()) == last
            elif last is not None:  # until the next vote, the verdicts are those the vote gave
                assert list(ctx.consensus.verdicts.items()) == last, (name, o)
            assert ctx.alerts.active_codes == Counter(c for c, *_ in ctx.alerts.active()), name
    assert votes > 1000


def test_moving_alerts_follow_the_moving_state() -> None:
    """After every record, the sources with an active time.step or time.drift alert are exactly
    the sources the engine holds as moving (the alerts follow the state), on traces where
    sources step and drift."""
    seen: set[str] = set()
    for name in ("gnss_push_fast", "gnss_step", "ntp_drift", "ntp_liar"):
        sc = scenarios.build(name, 1, 900.0)
        eng = Engine(sc.header)
        ctx = eng.ctx
        for o in sc.observations:
            eng.feed(o)
            moving = {(code, sid) for sid, st in ctx.states.items() for code in st.moving}
            alerted = {(code, srcs[0]) for code, _, srcs, _ in ctx.alerts.active()
                       if code in ("time.step", "time.drift")}
            assert moving == alerted, (name, o)
            assert ctx.moving_count == sum(1 for st in ctx.states.values() if st.moving), name
            seen |= {code for code, _ in moving}
    assert seen == {"time.step", "time.drift"}


# -- the vote against the straightforward computation it replaced --------------------------------

def _reference_vote(intervals: list[Interval]) -> Consensus:
    """vote() as first written: max/min over generators, weights zipped (the reference)."""
    by_group: dict[str, list[Interval]] = {}
    for iv in intervals:
        by_group.setdefault(iv.group, []).append(iv)
    group_ivs: list[tuple[float, float, str]] = []
    split: list[str] = []
    for g in sorted(by_group):
        members = by_group[g]
        lo = max(m.lo for m in members)
        hi = min(m.hi for m in members)
        if lo <= hi:
            group_ivs.append((lo, hi, g))
        else:
            split.append(g)
    n = len(group_ivs)
    if n == 0:
        verdicts = {iv.src: (Verdict.NO_QUORUM, "no trust group can vote") for iv in intervals}
        return Consensus(False, 0, 0, split_groups=tuple(split), verdicts=verdicts)
    count, lo, hi, names = _marzullo(group_ivs)
    if 2 * count <= n:
        verdicts = {iv.src: (Verdict.NO_QUORUM,
                             f"no strict majority: at most {count} of {n} trust groups agree")
                    for iv in intervals}
        return Consensus(False, n, count, split_groups=tuple(split), verdicts=verdicts)
    agreeing = [iv for g in names for iv in by_group[g]]
    w = [1.0 / max(iv.bound_s, 1e-9) ** 2 for iv in agreeing]
    est = sum(wi * iv.offset_s for wi, iv in zip(w, agreeing, strict=True)) / sum(w)
    est = min(max(est, lo), hi)
    verdicts = {}
    for iv in intervals:
        if iv.hi < lo or iv.lo > hi:
            side = "ahead of" if iv.lo > hi else "behind"
            dist = iv.lo - hi if iv.lo > hi else lo - iv.hi
            verdicts[iv.src] = (Verdict.FALSETICKER,
                                f"{(iv.offset_s - est) * 1e3:+.3f} ms: {side} the consensus of "
                                f"{count}/{n} groups ({dist * 1e3:.3f} ms beyond its bound and "
                                "the consensus region)")
        else:
            verdicts[iv.src] = (Verdict.TRUECHIMER, f"agrees with {count}/{n} trust groups")
    return Consensus(True, n, count, lo, hi, est, tuple(names), tuple(split), verdicts)


def _reference_marzullo(ivs: list[tuple[float, float, str]]) -> tuple[int, float, float, list[str]]:
    """_marzullo's sweep as first written: (x, kind) edges sorted as tuples (the reference)."""
    edges = sorted([(lo, -1) for lo, _, _ in ivs] + [(hi, +1) for _, hi, _ in ivs])
    best, cnt = 0, 0
    regions: list[list[float]] = []
    for x, kind in edges:
        if kind == -1:
            cnt += 1
            if cnt > best:
                best, regions = cnt, [[x, x]]
            elif cnt == best:
                regions.append([x, x])
        else:
            if cnt == best:
                regions[-1][1] = x
            cnt -= 1
    if len(regions) > 1:
        mids = [(lo + hi) / 2 for lo, hi, _ in ivs]
        score = [sum(1 for m in mids if r[0] <= m <= r[1]) for r in regions]
        regions = [r for r, sc in zip(regions, score, strict=True) if sc == max(score)]
    lo_, hi_ = regions[0][0], regions[-1][1]
    return best, lo_, hi_, sorted(name for lo, hi, name in ivs if lo <= hi_ and hi >= lo_)


_ends = st.sampled_from([0.0, -0.0, 1.0, 2.0, -1.0]) | st.floats(-3, 3, allow_nan=False)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(_ends, st.sampled_from([0.0, 1.0]) | st.floats(0, 2)), min_size=1,
                max_size=7))
def test_marzullo_sweep_equals_sorted_edges(draw: list[tuple[float, float]]) -> None:
    ivs = [(a, a + w, f"g{i}") for i, (a, w) in enumerate(draw)]
    assert repr(_marzullo(ivs)) == repr(_reference_marzullo(ivs))  # repr: -0.0 differs from 0.0


_offsets = st.floats(-0.5, 0.5, allow_nan=False)
_bounds = st.one_of(st.floats(0.0, 0.1, allow_nan=False), st.just(0.0), st.just(1e-10))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), _offsets, _bounds), max_size=9))
def test_vote_equals_reference_computation(draw: list[tuple[int, float, float]]) -> None:
    ivs = [Interval(f"s{i}", f"g{g}", off, b) for i, (g, off, b) in enumerate(draw)]
    assert vote(ivs) == _reference_vote(ivs)


# -- trace parsing: msgspec against json + observation_from_dict ----------------------------------

_ODD_LINES = [
    '{"type": "tick", "rx_ns": 99999999999999999999999}',  # beyond 64 bits: refused
    '{"type": "tick", "rx_ns": -9223372036854775809}',
    '{"type": "note", "rx_ns": 5, "text": "x", "raw_ns": [1, {"a": 18446744073709551616}]}',
    '{"type": "tick", "rx_ns": NaN}', '{"type": "tick", "rx_ns": 1e400}',
    '{"type": "note", "rx_ns": 7, "text": "\\ud83d lone surrogate"}',
    '{"type": "tick", "rx_ns": 1e3}', '{"type": "tick", "rx_ns": 1, "rx_ns": 2}',
    '{not json', '[1, 2]', '{"type": "ntp", "src": "x"}', '{"type": "weird", "rx_ns": 1}',
    # json keeps the last of two equal keys, however spelled: the record is a note, or no record
    '{"type": "tick", "rx_ns": 1, "type": "note", "text": "t"}',
    '{"type": "tick", "rx_ns": 1, "typ\\u0065": "note", "text": "t"}',
    '{"type": "tick", "rx_ns": 1, "t\\u0079pe": "pps"}',
    '{"type": "pps", "src": "p", "rx_ns": 1, "seq": 2, "s\\u0065q": true}',
    '{"type": "note", "rx_ns": 8, "text": "caf\\u00e9 \\" quoted"}',
    '{"type": "tick", "rx_ns": 1, "x": NaN}',  # NaN even in an ignored field: not JSON
    '{"type": "tick", "rx_ns": 1}\f', '{"type": "tick", "rx_ns": 1} x', '{"type": "tick"}',
    '{"type": "pps", "src": "p", "rx_ns": 1, "seq": 2.0}', '{"type": "pps", "src": null}',
    '{"type":"tick","rx_ns":9}', '{"type": "tick" , "rx_ns": 9}',
]
_NTP_ODD = ['"root_delay": -0', '"root_delay": 7', '"root_delay": 1e400',
            '"root_delay": 99999999999999999999999', '"root_dispersion": 2.2250738585072011e-308',
            '"root_dispersion": 123456789012345678901234567890e-10', '"leap": 1E2',
            '"leap": false', '"stratum": 18446744073709551616', '"refid": null', '"src": null']


def _typed(o: Observation) -> tuple[Any, ...]:
    """A record as its class and each field's repr: 0, 0.0, -0.0 and False differ here."""
    return (type(o), *(f"{k}={getattr(o, k)!r}" for k in o.__struct_fields__))


def _read_both(path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
               ) -> list[tuple[Any, Any, list[str]]]:
    """The trace read as it is, and through json and observation_from_dict only (the reference): records,
    counts and every warning."""
    out = []
    for decoders in (trace_mod._DECODERS, {}):
        monkeypatch.setattr(trace_mod, "_DECODERS", decoders)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="timewatch.trace"):
            rd = TraceReader(path)
            records = [_typed(o) for o in rd]
        out.append((records, rd.stats, [r.getMessage() for r in caplog.records]))
    return out


def test_msgspec_reading_equals_json_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Same records (field types too), same counts, same problems with line numbers."""
    assert len(trace_mod._DECODERS) == 6  # msgspec is installed: the first reading uses it
    s = scenarios.build("ntp_spoofed_replies", 1, 600.0)
    path = _write(tmp_path / "t.jsonl", s.header, s.observations)
    lines = path.read_text().splitlines(keepends=True)
    ntp = next(x for x in lines if x.startswith('{"type": "ntp"'))
    odd = _ODD_LINES + [ntp[:-2] + ", " + field + "}" for field in _NTP_ODD]
    for i, line in enumerate(odd):
        lines.insert(5 + 7 * i, line + "\n")
    path.write_text("".join(lines))
    fast, slow = _read_both(path, monkeypatch, caplog)
    assert fast == slow
    records, stats, warnings = fast
    assert stats.bad_lines >= 15 and stats.unknown_types == {"weird": 1}
    assert len(warnings) == stats.bad_lines
    fields = {v for r in records for v in r[1:]}
    # Beyond int64 (and NaN, 1e400) is refused by both readings, naming the field.
    assert not any(f.startswith("rx_ns=99999") for f in fields)
    assert any("'rx_ns' is out of range" in w for w in warnings)
    assert "root_delay=0.0" in fields and "root_delay=-0.0" not in fields  # "-0" is an int: 0.0


_ODD_VALUES = [None, True, False, 0, -5, 2**70, 1.5, 0.0, "x", "", [], {}, ["a"], 10**19, "tick",
               {"a": 2**70}]
_ODD_TEXT = [" ", "\t", ",", ":", "{", "}", "[", "]", '"', "-", "+", ".", "e", "0", "\\", "\x01",
             "\u00e9", "-0", "1E2", "1.", ".5", "00", "null", "true", '"type": "note", ',
             '"rx_ns": 3, ', '"root_delay": 7, ', "99999999999999999999999", "1e400"]


def test_msgspec_reading_equals_json_reading_on_mangled_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """Records of every decoded type with fields replaced, dropped, and text cut or inserted:
    msgspec gives what json gives, or leaves the line to json."""
    rng = random.Random(11)
    servers = four_groups(rng, poll_s=16.0)
    base = [observation_to_dict(o) for o in schedule(servers, 600, rng)]
    g = scenarios.build("pps_faults", 1, 60.0)
    base += [observation_to_dict(o) for o in g.observations]
    base += [{"type": "note", "rx_ns": 5, "text": "hi"}, {"type": "ubx", "src": "g", "rx_ns": 6,
             "hex": "b562"}, {"type": "tick", "rx_ns": 7, "raw_ns": 8}]
    assert {d["type"] for d in base} >= {"ntp", "nmea", "pps", "tick", "note", "ubx"}
    keys = sorted({k for d in base for k in d} | {"raw_ns"})
    lines = [json.dumps(header(servers).to_dict())]
    for _ in range(6000):
        d = dict(rng.choice(base))
        for _ in range(rng.randint(0, 2)):
            k = rng.choice(keys)
            if rng.random() < 0.2:
                d.pop(k, None)
            else:
                d[k] = rng.choice(_ODD_VALUES)
        line = json.dumps(d)
        if rng.random() < 0.3:
            i = rng.randrange(len(line) + 1)
            if rng.random() < 0.3:
                line = line[:i] + line[i + 1:]
            else:
                line = line[:i] + rng.choice(_ODD_TEXT) + line[i:]
        lines.append(line)
    path = tmp_path / "mangled.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fast, slow = _read_both(path, monkeypatch, caplog)
    assert fast == slow
    assert len(fast[0]) > 3000 and fast[1].bad_lines > 500  # both kinds of line are there


# -- the ballot kept between votes against vote() of intervals aged afresh -----------------------

_steps = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3), _offsets, _bounds,
                            st.integers(0, 3_000_000_000), st.booleans(), st.integers(0, 2)),
                  min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(_steps, st.sampled_from(["mix", "require", "ignore"]), st.integers(0, 2))
def test_ballot_votes_as_vote_of_freshly_aged_intervals(
        steps: list[tuple[int, int, float, float, int, bool, int]], auth_mode: str,
        withheld: int) -> None:
    """Sources join, change and leave the ballot in any order (each put or drop a record); after
    each, its vote at a later time equals `vote()` of every source's interval aged afresh as
    `Tracker.aged` does, verdicts included, and the previous vote's verdicts are unchanged."""
    from timewatch.engine.vote import Ballot

    aging = 15.0
    ballot = Ballot(aging)
    have: dict[str, tuple[int, str, float, float, int, int]] = {}
    now = 0
    prev = None
    for i, group, off, b, dt, drop, auth in steps:
        src = f"s{i}"
        if drop:
            ballot.drop(src)
            have.pop(src, None)
        else:
            ballot.put(src, i, f"g{group}", off, b, now, auth)
            have[src] = (i, f"g{group}", off, b, now, auth)
        if prev is not None:
            c0, items0 = prev
            assert list(c0.verdicts.items()) == items0
        now += dt
        ivs = []
        for src, (_, g, o, b0, t, a) in sorted(have.items(), key=lambda kv: kv[1][0]):
            age_ns = now - t
            age_s = age_ns / 1e9 if age_ns > 0 else 0.0
            ivs.append(Interval(src, g, o, b0 + age_s * aging * 1e-6, a))
        suspects = frozenset(sorted(have)[:withheld])
        c = ballot.vote(now, suspects, None, auth_mode)
        want = vote(ivs, suspects, None, auth_mode)
        assert repr(c.__class__) == repr(want.__class__) and c == want
        assert list(c.verdicts.items()) == list(want.verdicts.items())
        prev = (c, list(c.verdicts.items()))
