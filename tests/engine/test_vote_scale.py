"""engine/vote.py at scale: the ballot's vote, which reads only the members that can give a
group's ends (`_Ends`), gives the very floats of the plain vote over every member (the reference
below, written as the vote was before: every bound aged, every group intersected member by
member, the best estimate summed over every agreeing member in order)."""

from __future__ import annotations

import math
import random
import struct

from hypothesis import given
from hypothesis import strategies as st

from timewatch.engine.vote import (
    ANCHOR_SIGMA_FLOOR_S,
    AUTH_NA,
    AUTH_NONE,
    AUTH_NTS,
    Ballot,
    Interval,
    Verdict,
    _auth_split,
    _marzullo,
)

T0 = 1_700_000_000 * 10**9
SERIES: list[bool] = []  # per vote with a best estimate: did the series say the int?
Member = tuple[str, int, str, float, float, int, int]  # src, order, group, offset, bound, t, auth


def bits(x: float | None) -> object:
    """A float as its bits (-0.0 and 0.0 differ, as they would in a trace)."""
    return None if x is None else struct.pack("<d", x)


def ref_vote(members: list[Member], ppm: float, now: int, suspects: frozenset[str],
             anchor: tuple[float, float] | None, auth_mode: str) -> dict[str, object]:
    """The vote over every member, straight from its definition (the plain full pass)."""
    members = sorted(members, key=lambda m: m[1])
    require = auth_mode == "require"

    def aged(m: Member) -> float:
        age_ns = now - m[5]
        return m[4] + (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6

    voting: dict[str, list[Member]] = {}
    for m in members:
        if m[0] in suspects or (require and m[6] == AUTH_NONE):
            voting.setdefault(m[2], [])
            continue
        voting.setdefault(m[2], []).append(m)
    ivs: list[tuple[float, float, str]] = []
    split: list[str] = []
    for g in sorted(voting):
        ms = voting[g]
        if not ms:
            continue
        lo = hi = 0.0
        for k, m in enumerate(ms):
            b = aged(m)
            if k == 0 or m[3] - b > lo:
                lo = m[3] - b
            if k == 0 or m[3] + b < hi:
                hi = m[3] + b
        if lo <= hi:
            ivs.append((lo, hi, g))
        else:
            split.append(g)
    out: dict[str, object] = {"split": tuple(split)}
    aged_ivs = [Interval(m[0], m[2], m[3], aged(m), m[6]) for m in members]
    if not ivs:
        return out | {"quorum": False, "voting": 0, "agreeing": 0}
    count, lo, hi, names = _marzullo(ivs, anchor)
    n = len(ivs)
    if 2 * count <= n:
        return out | {"quorum": False, "voting": n, "agreeing": count}
    sw = swx = 0.0
    for g in names:
        for m in voting[g]:
            wi = 1.0 / max(aged(m), 1e-9) ** 2
            sw += wi
            swx += wi * m[3]
    plain = min(max(swx / sw, lo), hi)
    if anchor is not None and suspects:
        wi = 1.0 / max(anchor[1], ANCHOR_SIGMA_FLOOR_S) ** 2
        sw += wi
        swx += wi * anchor[0]
    est = min(max(swx / sw, lo), hi)
    verdicts: dict[str, Verdict] = {}
    for iv in aged_ivs:
        if iv.hi < lo or iv.lo > hi:
            verdicts[iv.src] = Verdict.FALSETICKER
        else:
            verdicts[iv.src] = Verdict.TRUECHIMER
    out |= {"quorum": True, "voting": n, "agreeing": count, "lo": bits(lo), "hi": bits(hi),
            "est": bits(est), "plain": bits(plain), "names": tuple(names),
            "verdicts": verdicts}
    if auth_mode == "mix" and any(m[6] == AUTH_NTS for m in members):
        side = _auth_split(aged_ivs, names, {s: (v, "") for s, v in verdicts.items()})
        if side is not None:
            return out | {"quorum": False, "auth_split": (side, tuple(names))}
    return out


def got_vote(ballot: Ballot, now: int, suspects: frozenset[str],
             anchor: tuple[float, float] | None, auth_mode: str) -> dict[str, object]:
    c = ballot.vote(now, suspects, anchor, auth_mode)
    # What the holdover learns, said before the sum (by the series, when it can), and then the
    # best estimate summed: the int must be the sum's, rounded.
    best = c._best
    fast = best.ns() if best is not None else None
    SERIES.append(fast is not None)
    ns = c.members_offset_ns()
    out: dict[str, object] = {"split": c.split_groups, "quorum": c.quorum,
                              "voting": c.groups_voting, "agreeing": c.groups_agreeing}
    if c.quorum:
        plain = c.members_offset_s
        assert plain is not None and ns == round(plain * 1e9)
        assert fast is None or fast == ns
    if c.quorum or c.auth_split is not None:
        # The region (under an auth split, not kept: as "ignore" finds it, which votes alike).
        c2 = c if c.quorum else ballot.vote(now, suspects, anchor, "ignore")
        out |= {"lo": bits(c2.lo_s), "hi": bits(c2.hi_s), "est": bits(c2.offset_s),
                "plain": bits(c2.members_offset_s), "names": c2.agreeing_groups,
                "verdicts": {s: v for s, (v, _) in c2.verdicts.items()}}
    if c.auth_split is not None:
        out |= {"quorum": False, "auth_split": c.auth_split}
    return out


# Numbers close to each other and to their neighbours' sums, signed zeros among them: ties and
# near-ties (an ulp apart) between members' ends are what the fast path must get right.
_BASE = [0.0, -0.0, 1e-3, -1e-3, 2e-3, 5e-4, 1.5e-3, 3e-6, 0.1, 1e-9]


@st.composite
def _number(draw: st.DrawFn, base: list[float]) -> float:
    x = draw(st.sampled_from(base))
    for _ in range(draw(st.integers(0, 2))):
        x = math.nextafter(x, draw(st.sampled_from([math.inf, -math.inf])))
    return x


_OP = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 11), st.integers(0, 3), _number(_BASE),
              _number([0.0, 1e-3, 5e-4, 2e-3, 1e-9, 3e-6]),
              st.sampled_from([0, -1, 1, -10**9, -64 * 10**9, -2**53 - 1, 10**6]),
              st.sampled_from([AUTH_NA, AUTH_NONE, AUTH_NTS])),
    st.tuples(st.just("drop"), st.integers(0, 11)),
    st.tuples(st.just("vote"), st.sampled_from([0, 1, 10**6, 10**9, 64 * 10**9, 10**15]),
              st.sets(st.integers(0, 11), max_size=3),
              st.sampled_from([None, (0.0, 1e-6), (1e-3, 1e-9), (-2e-3, 1e-4)]),
              st.sampled_from(["require", "mix", "ignore"])),
)


@given(ppm=st.sampled_from([0.0, 15.0, 1000.0]), ops=st.lists(_OP, min_size=1, max_size=40))
def test_ballot_vote_is_the_plain_vote(ppm: float, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    ballot = Ballot(ppm)
    table: dict[str, Member] = {}
    now = T0
    votes = 0
    for op in ops:
        if op[0] == "put":
            _, i, g, off, bound, dt, auth = op
            src = f"s{i:02d}"
            m = (src, i, f"g{g}", off, bound, now + dt, auth)
            table[src] = m
            ballot.put(*m)
        elif op[0] == "drop":
            src = f"s{op[1]:02d}"
            table.pop(src, None)
            ballot.drop(src)
        else:
            _, dt, sus, anchor, mode = op
            now += dt
            suspects = frozenset(f"s{i:02d}" for i in sus)
            want = ref_vote(list(table.values()), ppm, now, suspects, anchor, mode)
            assert got_vote(ballot, now, suspects, anchor, mode) == want
            votes += 1
    if table:  # and one vote at the end, as it stands
        want = ref_vote(list(table.values()), ppm, now, frozenset(), None, "mix")
        assert got_vote(ballot, now, frozenset(), None, "mix") == want


def test_large_ballot_votes_the_plain_vote_reading_few_members() -> None:
    """1,000 sources in 20 groups, each re-estimated in turn and voted on, as the engine does:
    the same floats as the plain vote, while the vote reads a few groups (`_Keys`), each
    group's ends from a few members."""
    rnd = random.Random(7)
    ppm = 15.0
    ballot = Ballot(ppm)
    table: dict[str, Member] = {}
    now = T0
    for i in range(1000):
        m = (f"n{i:04d}", i, f"op{i % 20:02d}", rnd.gauss(0, 2e-4), rnd.uniform(1e-3, 3e-3),
             now - rnd.randrange(64 * 10**9), AUTH_NA)
        table[m[0]] = m
        ballot.put(*m)
    for step in range(300):
        now += rnd.randrange(1, 10**8)
        i = rnd.randrange(1000)
        old = table[f"n{i:04d}"]
        m = (old[0], i, old[2], rnd.gauss(0, 2e-4), rnd.uniform(1e-3, 3e-3), now, AUTH_NA)
        table[m[0]] = m
        ballot.put(*m)
        suspects = frozenset({f"n{rnd.randrange(1000):04d}"}) if step % 50 == 0 else frozenset()
        assert got_vote(ballot, now, suspects, None, "mix") == \
            ref_vote(list(table.values()), ppm, now, suspects, None, "mix")
    del SERIES[:]
    for _ in range(100):  # votes as time goes on, nothing re-estimated: the series says the int
        now += 10**8
        assert got_vote(ballot, now, frozenset(), None, "mix") == \
            ref_vote(list(table.values()), ppm, now, frozenset(), None, "mix")
    assert SERIES.count(True) >= 99, SERIES
    kept = [len(g.ends.lo_k) + len(g.ends.hi_k)
            for g in ballot._groups.values() if g.ends is not None]
    # (Only the groups near the top keys were read, each from a few members.)
    assert 1 <= len(kept) <= 5 and max(kept) <= 4, kept


def test_members_newer_than_the_vote_take_the_full_pass() -> None:
    """A member estimated after the vote's time does not age (the ends are no longer a fixed
    member's): the full pass, the same floats."""
    ballot = Ballot(15.0)
    ms = [("a", 0, "g", 1e-3, 1e-3, T0, AUTH_NA), ("b", 1, "g", 1.2e-3, 1e-3, T0 + 10**10,
                                                    AUTH_NA),
          ("c", 2, "h", 1.1e-3, 2e-3, T0, AUTH_NA)]
    for m in ms:
        ballot.put(*m)
    for now in (T0, T0 + 5 * 10**9, T0 + 10**10, T0 + 10**12):
        assert got_vote(ballot, now, frozenset(), None, "mix") == \
            ref_vote(ms, 15.0, now, frozenset(), None, "mix")


def test_group_ends_at_real_ties_are_the_full_pass() -> None:
    """Members whose low ends are equal in real numbers at any time (offset - bound + t x rate
    the same), a few ulps apart in floats: the ends the fast path reads are the full pass's
    floats at every later time (the margin proves it, or the full pass runs)."""
    from timewatch.engine.vote import _intersect

    rnd = random.Random(1)
    for _ in range(4000):
        ppm = rnd.choice([15.0, 1000.0, 3.7])
        ballot = Ballot(ppm)
        base_o, base_b = rnd.uniform(-1e-2, 1e-2), rnd.uniform(1e-4, 1e-2)
        t1 = T0 + rnd.randrange(10**11)
        for i in range(rnd.randint(2, 4)):
            dt = rnd.randrange(10**11)
            o = base_o + dt * ppm * 1e-15 * rnd.choice([1, 1, -1])
            o += rnd.choice([0, 1, -1]) * abs(o) * 2.0 ** -52
            ballot.put(f"s{i}", i, "g", o, base_b, t1 - dt, AUTH_NA)
        g = ballot._groups["g"]
        for _ in range(3):
            now = t1 + rnd.randrange(10**12)
            got = g.intersect(now, ppm)
            want = _intersect(g.offsets, g.bounds, g.times, now, ppm)
            assert [x.hex() for x in got] == [x.hex() for x in want]


def test_series_int_near_half_a_nanosecond() -> None:
    """Estimates a hair from the middle between two nanoseconds: the series says the int the
    sum rounds to, or leaves it to the sum (never another int)."""
    rnd = random.Random(2)
    decided = 0
    for _ in range(1500):
        ballot = Ballot(15.0)
        now = T0
        for i in range(rnd.randint(3, 12)):
            ballot.put(f"s{i}", i, f"g{i % 3}", rnd.gauss(0, 1e-4), rnd.uniform(1e-3, 3e-3),
                       now - rnd.randrange(10 * 10**9), AUTH_NA)
        now += rnd.randrange(10**9)
        c = ballot.vote(now)
        if not c.quorum:
            continue
        plain = c.members_offset_s
        assert plain is not None
        # Shift every offset so that the estimate falls a few ulps from a half ns (twice: a
        # shift moves the estimate by about as much).
        target = (math.floor(plain * 1e9) + 0.5) / 1e9
        for _ in range(rnd.randint(0, 8)):
            target = math.nextafter(target, rnd.choice([math.inf, -math.inf]))
        for _ in range(2):
            for src, e in list(ballot._entries.items()):
                ballot.put(src, e.order, e.group, e.offset_s + (target - plain), e.bound_s,
                           e.t_ns, e.auth)
            c = ballot.vote(now)
            plain = c.members_offset_s
            assert c.quorum and plain is not None
        now += rnd.randrange(10**9)  # (and aged a little: the series' x is not 0)
        c = ballot.vote(now)
        assert c.quorum and c._best is not None
        fast = c._best.ns()
        plain = c.members_offset_s
        assert plain is not None
        assert fast is None or fast == round(plain * 1e9), (fast, plain * 1e9)
        decided += fast is not None
    assert decided > 100  # (most are not that close: the series still decides them)


def test_series_interval_holds_the_sums_quotient() -> None:
    """The interval the series gives holds the quotient the sum in floats divides to, at the
    moments' centre and as the bounds age past it, and is narrow (a few ulps of the sums'
    roundings, under a thousandth of a nanosecond): what `ns` rounds."""
    from timewatch.engine.vote import _weigh

    rnd = random.Random(3)
    for _ in range(300):
        ppm = rnd.choice([15.0, 1000.0])
        ballot = Ballot(ppm)
        now = T0
        for i in range(rnd.randint(3, 40)):
            ballot.put(f"s{i}", i, f"g{i % 5}", rnd.gauss(0, 1e-3), rnd.uniform(1e-4, 5e-2),
                       now - rnd.randrange(64 * 10**9), AUTH_NA)
        for _ in range(6):
            c = ballot.vote(now)
            best = c._best
            if best is not None:
                q = best.quotient()
                assert q is not None
                sw = swx = 0.0
                for name in best.names:
                    offs, bnds, ts = best.voters[name]
                    sw, swx = _weigh(offs, bnds, ts, now, ppm, sw, swx)
                exact = swx / sw
                assert q[0] <= exact <= q[1], (q, exact)
                assert (q[1] - q[0]) * 1e9 < 1e-3, (q, exact)  # (under 1e-3 ns: ns decides)
            now += rnd.randrange(10**9)  # (aging: the moments are kept while in reach)


def _sweep_region(ballot: Ballot, now: int) -> tuple[float, float] | None:
    """Marzullo's sweep over every group's full intersection: its region when every group
    overlaps every other (count = the groups), else None."""
    from timewatch.engine.vote import _intersect

    ivs = []
    for name in sorted(ballot._groups):
        g = ballot._groups[name]
        lo, hi = _intersect(g.offsets, g.bounds, g.times, now, ballot._aging_ppm)
        if not lo <= hi:
            return None
        ivs.append((lo, hi, name))
    count, lo, hi, _ = _marzullo(ivs)
    return (lo, hi) if count == len(ivs) else None


def _region(ballot: Ballot, now: int) -> tuple[float, float] | None:
    """The incremental region (`_Keys.region`) as the vote finds it."""
    for name in ballot._dirty:
        ballot._keys.put(name, ballot._groups.get(name))
    ballot._dirty.clear()
    return ballot._keys.region(ballot._groups, now, ballot._aging_ppm)


def test_region_across_groups_at_real_ties_is_the_sweeps() -> None:
    """Groups whose ends are equal in real numbers at every time (offset - bound + t x rate the
    same, members estimated at different times), a few ulps apart in floats, signed zeros among
    them: the region found from the few groups near the top keys is the sweep's, bit for bit,
    and it is found whenever the groups all overlap."""
    rnd = random.Random(11)
    found = 0
    for trial in range(3000):
        ppm = rnd.choice([15.0, 1000.0, 3.7, 0.0])
        r = ppm * 1e-15
        ballot = Ballot(ppm)
        base_o, base_b = rnd.choice([0.0, rnd.uniform(-1e-2, 1e-2)]), rnd.uniform(1e-4, 1e-2)
        t1 = T0 + rnd.randrange(10**11)
        for i in range(rnd.randint(2, 12)):
            dt = rnd.randrange(10**11)
            # Low ends tied (offset - bound + t r): half the groups, the other half high ends.
            sign = 1 if i % 2 else -1
            o = base_o - sign * dt * r
            o += rnd.choice([0, 1, -1, 2]) * max(abs(o), 1e-300) * 2.0 ** -52
            if trial % 7 == 0:
                o, b = rnd.choice([0.0, -0.0]), base_b  # (ends exactly +-bound: zeros tie)
            else:
                b = base_b
            ballot.put(f"s{i:02d}", i, f"g{rnd.randrange(6)}", o, b, t1 - dt, AUTH_NA)
        for _ in range(4):
            now = t1 + rnd.choice([0, 1, rnd.randrange(10**9), rnd.randrange(10**13)])
            got, want = _region(ballot, now), _sweep_region(ballot, now)
            assert (None if got is None else [x.hex() for x in got]) == \
                (None if want is None else [x.hex() for x in want]), (trial, got, want)
            found += got is not None
            if rnd.random() < 0.5:  # one member re-estimated: its group's keys found again
                i = rnd.randrange(len(ballot._entries))
                e = ballot._entries[f"s{i:02d}"]
                ballot.put(e.src, e.order, e.group, e.offset_s, e.bound_s, now, AUTH_NA)
                t1 = now
    assert found > 3000, found


def test_region_breaks_ties_of_signed_zeros_as_the_sweep() -> None:
    """Groups whose low ends are 0.0 and -0.0 (an offset of -0.0 with a bound of 0.0): the
    sweep's stable sort gives the last group's of equal low ends (and the first group's of
    equal high ends), and so does the region."""
    for zeros in ((0.0, -0.0, 0.0), (-0.0, 0.0, -0.0), (0.0, 0.0, -0.0), (-0.0, -0.0, 0.0)):
        ms = [(f"s{i}", i, f"g{i}", z, 0.0, T0, AUTH_NA) for i, z in enumerate(zeros)]
        ms.append(("w", 9, "g1", 1e-3, 2e-3, T0, AUTH_NA))
        ballot = Ballot(0.0)
        for m in ms:
            ballot.put(*m)
        want = _sweep_region(ballot, T0)
        assert want is not None and bits(want[0]) == bits(zeros[-1])
        got = _region(ballot, T0)  # (the fast path)
        assert got is not None and (bits(got[0]), bits(got[1])) == (bits(want[0]), bits(want[1]))
        assert got_vote(ballot, T0, frozenset(), None, "mix") == \
            ref_vote(ms, 0.0, T0, frozenset(), None, "mix")


_MEDIAN_OP = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 15),
              st.one_of(st.sampled_from([0.0, -0.0, 1e-3, -1e-3, 2e-3, 2e-3 + 2e-19, math.nan,
                                         math.inf]), st.floats(-1.0, 1.0))),
    st.tuples(st.just("drop"), st.integers(0, 15)),
)


@given(ops=st.lists(_MEDIAN_OP, min_size=1, max_size=60), n_groups=st.integers(1, 3))
def test_group_median_kept_sorted_is_the_plain_median(ops: list[tuple],  # type: ignore[type-arg]
                                                      n_groups: int) -> None:
    """A group's median read from its members' offsets kept sorted is `median` of the members'
    offsets in their order, bit for bit (zeros of both signs, NaN, ties among them)."""
    from timewatch.engine.value import median

    ballot = Ballot(15.0)
    table: dict[str, Member] = {}
    for op in ops:
        src = f"s{op[1]:02d}"
        if op[0] == "put":
            m = (src, op[1], f"g{op[1] % n_groups}", op[2], 1e-3, T0, AUTH_NA)
            table[src] = m
            ballot.put(*m)
        else:
            table.pop(src, None)
            ballot.drop(src)
        for k in range(n_groups):
            offs = [m[3] for m in sorted(table.values(), key=lambda m: m[1])
                    if m[2] == f"g{k}"]
            got = ballot.group_median(f"g{k}")
            assert (got is None) == (not offs)
            if offs:
                assert bits(got) == bits(median(offs)), (offs, got)


def _plain_ends(offs: list[float], bnds: list[float], ts: list[int],
                ppm: float) -> tuple[object, ...]:
    """`_Ends`' choice as first written: every member's ends at t_max in lists, max() and min(),
    then the members within _NEAR x size of them and the best of the others."""
    from timewatch.engine.vote import _NEAR

    t_max = max(ts)
    los, his = [], []
    for o, b, t in zip(offs, bnds, ts, strict=True):
        age = t_max - t
        a = b + (age / 1e9 if age > 0 else 0.0) * ppm * 1e-6
        los.append(o - a)
        his.append(o + a)
    size = max(abs(o) + abs(b) for o, b in zip(offs, bnds, strict=True))
    if not all(math.isfinite(x) for x in los + his + [size]):
        return ([], [])
    near = size * _NEAR
    best_lo, best_hi = max(los), min(his)
    lo_k = [k for k, x in enumerate(los) if x >= best_lo - near]
    hi_k = [k for k, x in enumerate(his) if x <= best_hi + near]
    rest_lo = max((x for x in los if not x >= best_lo - near), default=math.nan)
    rest_hi = min((x for x in his if not x <= best_hi + near), default=math.nan)
    shrink = 1.0 - 2.0 ** -50
    gap_lo = math.inf if math.isnan(rest_lo) else (best_lo - rest_lo) * shrink
    gap_hi = math.inf if math.isnan(rest_hi) else (rest_hi - best_hi) * shrink
    return (lo_k, hi_k, bits(best_lo), bits(best_hi), bits(gap_lo), bits(gap_hi))


@given(ppm=st.sampled_from([0.0, 15.0, 1000.0]),
       members=st.lists(st.tuples(_number(_BASE), _number([0.0, 1e-3, 5e-4, 2e-3, 1e-9]),
                                  st.sampled_from([0, 1, 10**6, 10**9, 64 * 10**9])),
                        min_size=1, max_size=8))
def test_group_ends_are_the_plain_choice(ppm: float,
                                         members: list[tuple[float, float, int]]) -> None:
    """The members `_Ends` keeps for a group's ends (one pass, a second only when a runner-up
    is near), its gaps and its ends at t_max are those of the plain two passes over lists."""
    from timewatch.engine.vote import _Ends

    offs = [m[0] for m in members]
    bnds = [m[1] for m in members]
    ts = [T0 - m[2] for m in members]
    e = _Ends(offs, bnds, ts, ppm)
    want = _plain_ends(offs, bnds, ts, ppm)
    if not e.lo_k:
        assert want == ([], [])
        return
    assert (e.lo_k, e.hi_k, bits(e.best_lo), bits(e.best_hi), bits(e.gap_lo),
            bits(e.gap_hi)) == want


_KEY_OP = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 11), st.integers(0, 2),
              st.floats(-1e-2, 1e-2), st.sampled_from([0.0, 1e-4, 1e-3, 5e-3]),
              st.integers(0, 10**11)),
    st.tuples(st.just("drop"), st.integers(0, 11)),
)


@given(ppm=st.sampled_from([0.0, 15.0, 1000.0]), ops=st.lists(_KEY_OP, min_size=1, max_size=50))
def test_group_keys_kept_are_the_members_max_and_min(ppm: float,
                                                     ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Each group's keys (kept as its members change: the max and min found again only when
    the member that gave one changes) are the max of its members' low keys and the min of their
    high keys, each member's keys as `_Keys.member` takes them; and the region found from the
    groups near the top keys is the sweep's."""
    ballot = Ballot(ppm)
    now = T0
    for op in ops:
        if op[0] == "put":
            _, i, g, off, bound, dt = op
            now += dt
            ballot.put(f"s{i:02d}", i, f"g{g}", off, bound, now - dt // 2, AUTH_NA)
        else:
            ballot.drop(f"s{op[1]:02d}")
        keys = ballot._keys
        for g in ballot._groups.values():
            want_lo, want_hi = [], []
            for o, b, t in zip(g.offsets, g.bounds, g.times, strict=True):
                shift = ((t - keys.t0) / 1e9) * ppm * 1e-6
                want_lo.append((o - b) + shift)
                want_hi.append((o + b) - shift)
            assert g.k_lo == want_lo and g.k_hi == want_hi
            assert g.keys() == (max(want_lo), min(want_hi))
        if not ballot._groups:
            continue
        got, want = _region(ballot, now), _sweep_region(ballot, now)
        assert (None if got is None else [x.hex() for x in got]) == \
            (None if want is None else [x.hex() for x in want])
