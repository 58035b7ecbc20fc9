"""The vote: trust groups, interval intersection, verdicts with reasons.

As chrony's source selection and ntpd's intersection algorithm, over *trust groups*: sources that
share a failure mode (one operator, one upstream, one antenna) count as one vote.

1. Each usable source is an interval, offset +- bound (offset = source time - host realtime).
2. A group votes with the intersection of its members' intervals. When its members disagree (empty
   intersection) the group does not vote; each member is judged against the other groups.
3. Marzullo's algorithm over the group intervals finds the region where most groups overlap. It is
   the consensus only when a strict majority of voting groups overlap there.
4. A source whose interval overlaps the consensus region is a truechimer, otherwise a falseticker.

The holdover clock (the host's free-running oscillator, learned from a PPS while the references
agreed) is a witness here when the engine passes its prediction (`anchor`): among equally deep
regions the one holding the prediction wins, and while a source caught moving is withheld the
best estimate weighs the prediction as one more member, so the time the withheld (precise)
source gave is carried by the oscillator instead of falling back to coarser members.

Authenticated sources (NTS) weigh more, by `[vote] auth_mode` (chrony's `authselectmode`;
docs/nts.md): `require` withholds unauthenticated NTP servers from the consensus (they are still
judged against it); `prefer` is `require` once any NTS source is configured (the engine resolves
it); under `mix` (the default) the unauthenticated groups can never name an authenticated group
falseticker on their own: when the majority holds no authenticated group but would condemn an
authenticated source, there is no consensus (`auth_split` names both sides); `ignore` votes as
if nothing were authenticated.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterator
from enum import StrEnum
from typing import Final

from .value import Value, median


class Verdict(StrEnum):
    """Every state a source can be in, each with its one-line meaning (chrony's SRC_Status)."""

    INIT = "init"  # no usable sample yet
    TRUECHIMER = "truechimer"  # agrees with the majority of trust groups
    FALSETICKER = "falseticker"  # doesn't agree with the majority of trust groups
    UNUSABLE = "unusable"  # answers, but its data cannot be used (unsynchronised, no fix...)
    STALE = "stale"  # no usable data for its stale limit
    NO_QUORUM = "no_quorum"  # usable, but no strict majority of groups exists to judge it


# What an interval's source is to `auth_mode` (chrony: a refclock, an NTP source, an
# authenticated NTP source).
AUTH_NA: Final = 0  # not an NTP server (GNSS, PPS, chronyd): auth_mode never withholds it
AUTH_NONE: Final = 1  # an unauthenticated NTP server
AUTH_NTS: Final = 2  # an NTP server whose replies are authenticated (NTS)
AUTH_MODES: Final = ("require", "prefer", "mix", "ignore")


class Interval(Value):
    """One usable source for the vote (built per source per vote: see engine/value.py)."""

    _fields = ("src", "group", "offset_s", "bound_s", "auth")
    __slots__ = _fields

    def __init__(self, src: str, group: str, offset_s: float, bound_s: float,
                 auth: int = AUTH_NA) -> None:
        self.src: Final = src
        self.group: Final = group
        self.offset_s: Final = offset_s
        self.bound_s: Final = bound_s
        self.auth: Final = auth  # AUTH_NA, AUTH_NONE or AUTH_NTS

    @property
    def lo(self) -> float:
        return self.offset_s - self.bound_s

    @property
    def hi(self) -> float:
        return self.offset_s + self.bound_s


# A region within this many of the holdover prediction's sigmas holds it (the tie-break).
ANCHOR_SIGMAS: Final = 4.0
# The prediction weighs in the best estimate as a member of at least this sigma.
ANCHOR_SIGMA_FLOOR_S: Final = 1e-7

_NO_VERDICTS: Final[dict[str, tuple[Verdict, str]]] = {}
# The truechimer verdict per (groups agreeing, groups voting): its text is built once.
_AGREES: Final[dict[tuple[int, int], tuple[Verdict, str]]] = {}


class Consensus(Value):
    """The vote's result (one per vote). Never mutated: the shared empty `verdicts` is safe.

    The best estimate (`offset_s`, `members_offset_s`) is a sum over every agreeing member: a
    vote leaves it to `_Best`, which sums it (the same floats) when it is first read, and says
    what the holdover learns of it (`members_offset_ns`) mostly without the sum."""

    _fields = ("quorum", "groups_voting", "groups_agreeing", "lo_s", "hi_s", "offset_s",
               "agreeing_groups", "split_groups", "verdicts", "withheld",
               "members_offset_s", "auth_split")
    __slots__ = ("quorum", "groups_voting", "groups_agreeing", "lo_s", "hi_s", "_offset_s",
                 "agreeing_groups", "split_groups", "verdicts", "withheld",
                 "_members_offset_s", "auth_split", "_best")

    def __init__(self, quorum: bool, groups_voting: int, groups_agreeing: int,
                 lo_s: float | None = None, hi_s: float | None = None,
                 offset_s: float | None = None, agreeing_groups: tuple[str, ...] = (),
                 split_groups: tuple[str, ...] = (),
                 verdicts: dict[str, tuple[Verdict, str]] | Verdicts | None = None,
                 withheld: frozenset[str] = frozenset(),
                 members_offset_s: float | None = None,
                 auth_split: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
                 best: _Best | None = None) -> None:
        self.quorum: Final = quorum
        self.groups_voting: Final = groups_voting
        self.groups_agreeing: Final = groups_agreeing
        self.lo_s: Final = lo_s  # consensus region (None without quorum)
        self.hi_s: Final = hi_s
        self._offset_s = offset_s  # best estimate inside the region (or `best`'s)
        self.agreeing_groups: Final = agreeing_groups
        self.split_groups: Final = split_groups  # groups whose members disagree with each other
        self.verdicts: Final = _NO_VERDICTS if verdicts is None else verdicts
        self.withheld: Final = withheld  # sources kept out of it (caught moving)
        # The members' own best estimate, without the holdover's prediction (what the holdover
        # may learn: a model taught its own prediction would witness for itself).
        self._members_offset_s = offset_s if members_offset_s is None else members_offset_s
        # auth_mode mix: (the authenticated groups, the unauthenticated majority) that disagree;
        # no consensus while they do (None: no such split).
        self.auth_split: Final = auth_split
        self._best = best  # the best estimate, not summed yet (None: given)

    def _sum(self, best: _Best) -> None:
        self._offset_s, self._members_offset_s = best.sums()
        self._best = None

    @property
    def offset_s(self) -> float | None:
        best = self._best
        if best is not None:
            self._sum(best)
        return self._offset_s

    @property
    def members_offset_s(self) -> float | None:
        best = self._best
        if best is not None:
            self._sum(best)
        return self._members_offset_s

    @property
    def has_offset(self) -> bool:
        """There is a best estimate (`offset_s` is not None), said without summing it."""
        return self._best is not None or self._offset_s is not None

    def members_offset_ns(self) -> int | None:
        """round(members_offset_s * 1e9), the same int, mostly without the sum (`_Best.ns`)."""
        best = self._best
        if best is not None:
            ns = best.ns()
            if ns is not None:
                return ns
        off = self.members_offset_s
        return None if off is None else round(off * 1e9)

    @property
    def bound_s(self) -> float | None:
        if self.lo_s is None or self.hi_s is None:
            return None
        return (self.hi_s - self.lo_s) / 2


def _marzullo(ivs: list[tuple[float, float, str]],
              anchor: tuple[float, float] | None = None) -> tuple[int, float, float, list[str]]:
    """Largest number of intervals sharing a point; (count, lo, hi, names) of the consensus region.

    When several disjoint regions reach that count, the intervals cannot tell which is right:
    keep the regions holding the most interval midpoints (the evidence ntpd's intersection
    algorithm weighs: honest offsets sit near the truth, a liar's overlap with wide honest
    intervals sits at their edge), and span the ones still tied (chrony sources.c: from the
    first deepest point to the last), so no interval is named false by an arbitrary pick.
    `names`: the intervals that overlap the region. With the holdover prediction (`anchor`:
    offset, sigma), the regions within ANCHOR_SIGMAS of it win a tie first, and of those the
    one closest to it.
    """
    # A sweep over the sorted starts and ends, a start before an end at one point (touching
    # intervals overlap): two sorted float lists merged, cheaper than sorting (x, kind) tuples.
    los = [lo for lo, _, _ in ivs]
    los.sort()
    his = [hi for _, hi, _ in ivs]
    his.sort()
    n = len(los)
    best, cnt = 0, 0
    # The starts and ends of the regions of the deepest count (kept as floats: a region's list
    # is built only for the ones left at the end).
    r_lo: list[float] = []
    r_hi: list[float] = []
    i = j = 0
    while j < n:
        if i < n and los[i] <= his[j]:
            x = los[i]
            i += 1
            cnt += 1
            if cnt > best:
                best = cnt
                r_lo.clear()
                r_hi.clear()
                r_lo.append(x)
                r_hi.append(x)
            elif cnt == best:
                r_lo.append(x)
                r_hi.append(x)
        else:
            if cnt == best:
                r_hi[-1] = his[j]
            j += 1
            cnt -= 1
    regions = [[a, b] for a, b in zip(r_lo, r_hi, strict=True)]
    if len(regions) > 1 and anchor is not None:
        a, tol = anchor[0], ANCHOR_SIGMAS * anchor[1]
        near = [r for r in regions if r[0] - tol <= a <= r[1] + tol]
        if near:
            # The one closest to the prediction (disjoint regions: one at most holds it): a
            # region a few sigmas off is where a group lying together inside its members'
            # bounds puts its narrow intersection.
            dist = [r[0] - a if a < r[0] else (a - r[1] if a > r[1] else 0.0) for r in near]
            regions = [near[dist.index(min(dist))]]
    if len(regions) > 1:
        mids = [(lo + hi) / 2 for lo, hi, _ in ivs]
        score = [sum(1 for m in mids if r[0] <= m <= r[1]) for r in regions]
        regions = [r for r, sc in zip(regions, score, strict=True) if sc == max(score)]
    best_lo, best_hi = regions[0][0], regions[-1][1]
    names = [name for lo, hi, name in ivs if lo <= best_hi and hi >= best_lo]
    names.sort()
    return best, best_lo, best_hi, names


def vote(intervals: list[Interval], suspects: frozenset[str] = frozenset(),
         anchor: tuple[float, float] | None = None, auth_mode: str = "mix") -> Consensus:
    """Judge every usable source. Pure: the same intervals always give the same consensus.

    `suspects` (sources another detector caught moving: time.step, time.drift) are judged
    like everyone else but withheld from the consensus, so a pushed reference whose interval
    still overlaps cannot drag the consensus along with it. `anchor` (offset, sigma): the
    holdover clock's prediction, a witness (see the module docstring). `auth_mode` is
    "require", "mix" or "ignore" (the caller resolves "prefer"): see the module docstring.
    (A `Ballot` of these intervals, none aged, voting once.)
    """
    ballot = Ballot(0.0)
    for i, iv in enumerate(intervals):
        ballot.put(iv.src, i, iv.group, iv.offset_s, iv.bound_s, 0, iv.auth)
    return ballot.vote(0, suspects, anchor, auth_mode)


class _Entry(Value):
    """One source in the ballot: its estimate as it came (its bound not aged), its place."""

    __slots__ = ("src", "order", "group", "offset_s", "bound_s", "t_ns", "auth")
    _fields = ("src", "order", "group", "offset_s", "bound_s", "t_ns", "auth")  # = __slots__

    def __init__(self, src: str, order: int, group: str, offset_s: float, bound_s: float,
                 t_ns: int, auth: int) -> None:
        self.src: Final = src
        self.order: Final = order  # the source's place in the header (the vote's order)
        self.group: Final = group
        self.offset_s: Final = offset_s
        self.bound_s: Final = bound_s
        self.t_ns: Final = t_ns
        self.auth: Final = auth


def _order(e: _Entry) -> int:
    return e.order


class _Group:
    """One trust group's members in the ballot, in the header's order."""

    __slots__ = ("orders", "entries", "offsets", "bounds", "times", "nums", "median", "unauth",
                 "ends", "moments", "sorted", "zeros", "k_lo", "k_hi", "key_lo", "key_hi",
                 "i_lo", "i_hi", "bad")

    def __init__(self) -> None:
        self.orders: list[int] = []
        self.entries: list[_Entry] = []
        # The entries' numbers as lists (what the vote reads of every member: no attribute
        # lookups in its pass).
        self.offsets: list[float] = []
        self.bounds: list[float] = []
        self.times: list[int] = []
        self.nums = (self.offsets, self.bounds, self.times)  # (the three, for a vote to keep)
        self.median: float | None = None  # of its members' offsets (None: to be computed)
        # Its members' offsets sorted (None: a NaN among them), and how many are zeros: the
        # median's middle ones, read without a sort (`Ballot.group_median`).
        self.sorted: list[float] | None = []
        self.zeros = 0
        self.unauth = 0  # members that are unauthenticated NTP servers (AUTH_NONE)
        self.ends: _Ends | None = None  # (None: to be found again)
        self.moments: _Moments | None = None  # the last ones taken (None: none since a change)
        # Its members' keys (`_Keys`: o - b + s and o + b - s, in the members' order), their
        # max and min and where (i_lo, i_hi; -1: to be found again), how many are not finite.
        self.k_lo: list[float] = []
        self.k_hi: list[float] = []
        self.key_lo = self.key_hi = 0.0
        self.i_lo = self.i_hi = -1
        self.bad = 0

    def keys(self) -> tuple[float, float] | None:
        """(the highest of its members' low keys, the lowest high key); None: one is not
        finite."""
        if self.bad:
            return None
        k_lo, k_hi = self.k_lo, self.k_hi
        if self.i_lo < 0:
            i_lo, key = 0, k_lo[0]
            for k in range(1, len(k_lo)):
                if k_lo[k] > key:
                    i_lo, key = k, k_lo[k]
            self.i_lo, self.key_lo = i_lo, key
        if self.i_hi < 0:
            i_hi, key = 0, k_hi[0]
            for k in range(1, len(k_hi)):
                if k_hi[k] < key:
                    i_hi, key = k, k_hi[k]
            self.i_hi, self.key_hi = i_hi, key
        return self.key_lo, self.key_hi

    def set(self, i: int, e: _Entry, new: bool, key_lo: float, key_hi: float) -> None:
        # (New lists for the numbers, not changed in place: a vote's best estimate, summed
        # later, reads the lists it voted with.)
        offs, bnds, ts = self.offsets.copy(), self.bounds.copy(), self.times.copy()
        x = e.offset_s
        srt = self.sorted
        if not new:
            old = offs[i]
            self.zeros -= old == 0.0
            if srt is not None and old == old:
                del srt[bisect_left(srt, old)]
        if srt is not None:
            if x == x:
                insort(srt, x)
            else:
                self.sorted = None
        self.zeros += x == 0.0
        if new:
            self.orders.insert(i, e.order)
            self.entries.insert(i, e)
            offs.insert(i, e.offset_s)
            bnds.insert(i, e.bound_s)
            ts.insert(i, e.t_ns)
            self.k_lo.insert(i, key_lo)
            self.k_hi.insert(i, key_hi)
            self.i_lo = self.i_hi = -1
        else:
            self.unauth -= self.entries[i].auth == AUTH_NONE
            self.entries[i] = e
            offs[i] = e.offset_s
            bnds[i] = e.bound_s
            ts[i] = e.t_ns
            self.bad -= not (_finite(self.k_lo[i]) and _finite(self.k_hi[i]))
            self.k_lo[i] = key_lo
            self.k_hi[i] = key_hi
            # (The max and min kept unless the member that gave them changed.)
            if self.i_lo == i:
                self.i_lo = -1
            elif self.i_lo >= 0 and key_lo > self.key_lo:
                self.i_lo, self.key_lo = i, key_lo
            if self.i_hi == i:
                self.i_hi = -1
            elif self.i_hi >= 0 and key_hi < self.key_hi:
                self.i_hi, self.key_hi = i, key_hi
        self.bad += not (_finite(key_lo) and _finite(key_hi))
        self.offsets, self.bounds, self.times = offs, bnds, ts
        self.nums = (offs, bnds, ts)
        self.unauth += e.auth == AUTH_NONE
        self.median = None
        self.ends = None
        self.moments = None

    def remove(self, i: int) -> None:
        self.unauth -= self.entries[i].auth == AUTH_NONE
        old = self.offsets[i]
        self.zeros -= old == 0.0
        srt = self.sorted
        if srt is not None:
            del srt[bisect_left(srt, old)]
        del self.orders[i]
        del self.entries[i]
        self.bad -= not (_finite(self.k_lo[i]) and _finite(self.k_hi[i]))
        del self.k_lo[i]
        del self.k_hi[i]
        self.i_lo = self.i_hi = -1
        self.offsets = self.offsets[:i] + self.offsets[i + 1:]
        self.bounds = self.bounds[:i] + self.bounds[i + 1:]
        self.times = self.times[:i] + self.times[i + 1:]
        self.nums = (self.offsets, self.bounds, self.times)
        self.median = None
        self.ends = None
        self.moments = None

    def intersect(self, now_ns: int, ppm: float) -> tuple[float, float]:
        """`_intersect` of all its members, from the members that can give its ends (`_Ends`)
        while that is proven to give the very same floats, else from all of them."""
        ends = self.ends
        if ends is None:
            ends = self.ends = _Ends(self.offsets, self.bounds, self.times, ppm)
        if ends.lo_k and now_ns >= ends.t_max:
            # The error bound of every member's end at now_ns (see `_Ends`).
            age_ns = now_ns - ends.t_min
            q = _aging(age_ns, ends.ppm)
            need = _MARGIN * (ends.size + q)
            if ends.gap_lo > need and ends.gap_hi > need:
                if ends.one:  # (one member gives each end: its numbers kept, as they are)
                    age_ns = now_ns - ends.lo_t
                    lo = ends.lo_o - (ends.lo_b + _aging(age_ns, ppm))
                    age_ns = now_ns - ends.hi_t
                    hi = ends.hi_o + (ends.hi_b + _aging(age_ns, ppm))
                    return lo, hi
                offs, bnds, ts = self.offsets, self.bounds, self.times
                lo = hi = 0.0
                first = True
                for k in ends.lo_k:  # (as `_intersect`, over these members)
                    age_ns = now_ns - ts[k]
                    m_lo = offs[k] - (bnds[k] + _aging(age_ns, ppm))
                    if first or m_lo > lo:
                        lo = m_lo
                    first = False
                first = True
                for k in ends.hi_k:
                    age_ns = now_ns - ts[k]
                    m_hi = offs[k] + (bnds[k] + _aging(age_ns, ppm))
                    if first or m_hi < hi:
                        hi = m_hi
                    first = False
                return lo, hi
        return _intersect(self.offsets, self.bounds, self.times, now_ns, ppm)


def _intersect(offs: list[float], bnds: list[float], ts: list[int], now_ns: int,
               ppm: float) -> tuple[float, float]:
    """The intersection of the members' intervals, each bound aged to now_ns as `Ballot.aged`
    (the same float): (max of the lows, min of the highs; the first of equal ones). A loop over
    numbers, nothing built (mypyc compiles it to C arithmetic)."""
    lo = hi = 0.0
    for k in range(len(offs)):
        age_ns = now_ns - ts[k]
        b = bnds[k] + _aging(age_ns, ppm)
        m_lo, m_hi = offs[k] - b, offs[k] + b
        if k == 0 or m_lo > lo:
            lo = m_lo
        if k == 0 or m_hi < hi:
            hi = m_hi
    return lo, hi


def _weigh(offs: list[float], bnds: list[float], ts: list[int], now_ns: int, ppm: float,
           sw: float, swx: float) -> tuple[float, float]:
    """The best estimate's sums (of the weights, of the weighted offsets) carried on over these
    members, in order: each weight 1 / max(aged bound, 1 ns)**2 (math.pow: the very libm pow of
    `**`, without a boxed float per member under mypyc)."""
    for k in range(len(offs)):
        age_ns = now_ns - ts[k]
        b = bnds[k] + _aging(age_ns, ppm)  # (as `_intersect`)
        wi = 1.0 / math.pow(1e-9 if 1e-9 > b else b, 2.0)  # (max(b, 1e-9) ** 2)
        sw += wi
        swx += wi * offs[k]
    return sw, swx


# A member's aged low end at now, o - (B + age*ppm*1e-6) in floats, is within 8u(|o| + |B| + Q)
# of the real o - B - (now - t)*ppm*1e-6/1e9 (u = 2**-53, Q its aging: five roundings, one
# for 1e-6 itself; also with the nanoseconds' int -> float rounding); its high end alike. The
# margin a group's other members must be below its best ones (in `_Ends`' floats at t_max, each
# as far off) for these to give the same max and min at now: 4 such bounds, taken twice over
# for the roundings of the check itself.
_MARGIN: Final = 256 * 2.0 ** -53
# Members whose end at t_max is within this fraction of the group's size of its best end are kept.
_NEAR: Final = 2.0 ** -20


class _Ends:
    """Which of a group's members can give its intersection's ends, found when the group changes
    (O(its size)) so that a vote reads those only.

    Every bound ages at the same rate, so in real numbers a member's low end at any now past
    every member's time is o - B + t*rate - now*rate: the member with the highest low end
    (lowest high end) stays the same until the group changes. In floats its ends are only
    within rounding of those (see _MARGIN): the members within _NEAR of the best end at t_max
    (`lo_k`, `hi_k`, in the members' order) are kept, and a vote uses them alone while every
    other member's end is below by more than the rounding could reach (`gap_lo`, `gap_hi`
    against `_MARGIN` x (`size` + the oldest member's aging at now)). Then the other members'
    ends are strictly beyond the kept ones' in floats too, so the kept ones, in the members'
    order, give the full pass's very floats (the first of equal ones alike). Otherwise (an
    estimate newer than now, a number not finite) the vote takes the full pass."""

    __slots__ = ("t_max", "t_min", "ppm", "size", "gap_lo", "gap_hi", "lo_k", "hi_k", "one",
                 "lo_o", "lo_b", "lo_t", "hi_o", "hi_b", "hi_t", "best_lo", "best_hi")

    def __init__(self, offs: list[float], bnds: list[float], ts: list[int], ppm: float) -> None:
        n = len(offs)
        t_max = t_min = ts[0]
        for k in range(1, n):  # (max() and min(): generic calls under mypyc)
            t = ts[k]
            if t > t_max:
                t_max = t
            elif t < t_min:
                t_min = t
        self.t_max, self.t_min = t_max, t_min
        self.ppm = abs(ppm)
        size = 0.0
        finite = True
        # The max and min of the members' ends at t_max (the first of equal ones: k_lo, k_hi),
        # and the max and min of the others' (nan: none).
        best_lo = best_hi = sec_lo = sec_hi = math.nan
        k_lo = k_hi = 0
        for k in range(n):
            b = bnds[k] + _aging(t_max - ts[k], ppm)
            x, y = offs[k] - b, offs[k] + b
            if not (_finite(x) and _finite(y)):
                finite = False
            if k == 0:
                best_lo, best_hi = x, y
            else:
                if x > best_lo:
                    sec_lo, best_lo, k_lo = best_lo, x, k
                elif not x <= sec_lo:
                    sec_lo = x
                if y < best_hi:
                    sec_hi, best_hi, k_hi = best_hi, y, k
                elif not y >= sec_hi:
                    sec_hi = y
            s = abs(offs[k]) + abs(bnds[k])
            if s > size:
                size = s
        self.size = size
        self.lo_k: list[int] = []
        self.hi_k: list[int] = []
        self.gap_lo = self.gap_hi = 0.0
        self.one = False
        self.lo_o = self.lo_b = self.hi_o = self.hi_b = 0.0
        self.lo_t = self.hi_t = 0
        self.best_lo = self.best_hi = 0.0
        if not (finite and _finite(size)):
            return  # (lo_k empty: the full pass)
        near = size * _NEAR
        self.best_lo, self.best_hi = best_lo, best_hi  # (the group's ends at t_max)
        cut_lo, cut_hi = best_lo - near, best_hi + near
        if not sec_lo >= cut_lo and not sec_hi <= cut_hi:
            # (One member within near of each end: the others are the runners-up's side.)
            self.lo_k.append(k_lo)
            self.hi_k.append(k_hi)
            rest_lo, rest_hi = sec_lo, sec_hi
        else:
            rest_lo = rest_hi = math.nan
            for k in range(n):  # (each end again: the same floats)
                b = bnds[k] + _aging(t_max - ts[k], ppm)
                x = offs[k] - b
                if x >= cut_lo:
                    self.lo_k.append(k)
                elif not x <= rest_lo:  # (the highest of the others)
                    rest_lo = x
                x = offs[k] + b
                if x <= cut_hi:
                    self.hi_k.append(k)
                elif not x >= rest_hi:
                    rest_hi = x
        # (The subtraction rounds: a little less than it says.)
        shrink = 1.0 - 2.0 ** -50
        self.gap_lo = math.inf if math.isnan(rest_lo) else (best_lo - rest_lo) * shrink
        self.gap_hi = math.inf if math.isnan(rest_hi) else (rest_hi - best_hi) * shrink
        if len(self.lo_k) == 1 and len(self.hi_k) == 1:
            self.one = True
            k, j = self.lo_k[0], self.hi_k[0]
            self.lo_o, self.lo_b, self.lo_t = offs[k], bnds[k], ts[k]
            self.hi_o, self.hi_b, self.hi_t = offs[j], bnds[j], ts[j]


class Ballot:
    """The vote, kept between votes: an observation changes its own source's entry (`put`,
    `drop`: O(size of its group)), and a vote (`vote`) costs a step per trust group, not per
    source, with the floats of the plain vote over every member (each bound aged to the vote's
    time, each group intersected member by member, the best estimate summed over every agreeing
    member in order; tests/engine/test_vote_scale.py holds it to that): a group's intersection
    from the members that can give its ends (`_Ends`, found when the group changes), the best
    estimate summed only when it is read (`_Best`: snapshots, evidence, reasons) and what the
    holdover learns of it at every vote from each group's `_Moments`. Marzullo's sweep runs over
    the groups. Verdicts are not built per vote: `Verdicts` judges a source when it is asked
    (the engine asks for the sources with a new sample, a snapshot for all). A group with a
    member withheld (suspects, auth_mode require) is passed over member by member.

    `aging_ppm`: a bound grows by this much per second since its estimate was taken (as
    `Tracker.aged`; 0 with intervals that are aged already)."""

    def __init__(self, aging_ppm: float) -> None:
        self._aging_ppm = aging_ppm
        self._entries: dict[str, _Entry] = {}
        self._groups: dict[str, _Group] = {}
        self._sorted: list[str] | None = []  # the groups' names sorted (None: to be sorted again)
        self._nts = 0  # entries authenticated (auth_mode mix has something to weigh)
        self._last: Verdicts | None = None  # the last vote's verdicts (still reading the entries)
        self.require = False  # the last vote withheld the unauthenticated (auth_mode require)
        self._names_t: tuple[str, ...] = ()  # `_sorted` as a tuple (while it is not None)
        # Every group's numbers as it votes (`_Group.nums`), kept up to date; a vote's best
        # estimate reads it later, so it is copied before a change once a vote has it.
        self._voters: dict[str, tuple[list[float], list[float], list[int]]] = {}
        self._voters_held = False
        # The groups changed since their last `_Keys` (found again at the next vote) and the
        # groups in order of their ends (`_Keys`); `changes`: the groups changed, in order, for
        # the detectors that keep something per group (`changes_gen` moves when it is cleared).
        self._dirty: set[str] = set()
        self._keys = _Keys()
        self.changes: list[str] = []
        self.changes_gen = 0

    def aged(self, e: _Entry, now_ns: int) -> float:
        """Its bound aged to now_ns (the very float `Tracker.aged` computes)."""
        age_ns = now_ns - e.t_ns
        return e.bound_s + _aging(age_ns, self._aging_ppm)

    def put(self, src: str, order: int, group: str, offset_s: float, bound_s: float, t_ns: int,
            auth: int) -> None:
        """Source `src` (at place `order` of the header) votes with this estimate from now on."""
        e = _Entry(src, order, group, offset_s, bound_s, t_ns, auth)
        old = self._entries.get(src)
        if old is not None and (old.group != group or old.order != order):
            self.drop(src)  # (moved: out of its old place first)
            old = None
        self._keep(src, old)
        self._entries[src] = e
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group()
            self._sorted = None
        key_lo, key_hi = self._keys.member(offset_s, bound_s, t_ns, self._aging_ppm)
        g.set(bisect_left(g.orders, order), e, old is None, key_lo, key_hi)
        if old is not None:
            self._nts -= old.auth == AUTH_NTS
        self._nts += auth == AUTH_NTS
        self._changed(group, g)

    def drop(self, src: str) -> None:
        """Source `src` no longer votes (stale, unusable)."""
        old = self._entries.pop(src, None)
        if old is None:
            return
        self._keep(src, old)
        self._nts -= old.auth == AUTH_NTS
        g: _Group | None = self._groups[old.group]
        assert g is not None
        g.remove(bisect_left(g.orders, old.order))
        if not g.orders:
            del self._groups[old.group]
            self._sorted = None
            g = None
        self._changed(old.group, g)

    def _changed(self, name: str, g: _Group | None) -> None:
        """Group `name` changed (None: it is gone): its numbers, its keys, the log."""
        if self._voters_held:  # (the last vote's best estimate reads the old dict)
            self._voters = self._voters.copy()
            self._voters_held = False
        if g is None:
            self._voters.pop(name, None)
        else:
            self._voters[name] = g.nums
        self._dirty.add(name)
        changes = self.changes
        if len(changes) >= 4096:
            changes.clear()
            self.changes_gen += 1
        changes.append(name)

    def _keep(self, src: str, old: _Entry | None) -> None:
        """The last vote's verdicts keep what `src` voted with before it changes."""
        last = self._last
        if last is not None and src not in last.kept:
            last.kept[src] = old

    def group_median(self, group: str) -> float | None:
        """The median of the offsets of a group's members in the ballot (None: it has none),
        kept until one of them changes."""
        g = self._groups.get(group)
        if g is None:
            return None
        m = g.median
        if m is None:
            srt = g.sorted
            n = len(g.offsets)
            if srt is None or g.zeros or n < 4:
                # (Zeros of two signs: which one the sort puts in the middle is the members'
                # order's; a NaN: no order. The sort of the list itself.)
                m = median(g.offsets)
                if srt is None and all(x == x for x in g.offsets):
                    g.sorted = sorted(g.offsets)
            else:  # (the same float: `median` of the same values, sorted)
                i = n // 2
                m = srt[i] if n % 2 == 1 else (srt[i - 1] + srt[i]) / 2
            g.median = m
        return m

    def intervals(self, now_ns: int) -> list[Interval]:
        """Every source in the ballot as the vote saw it at now_ns (for evidence), in order."""
        es = sorted(self._entries.values(), key=_order)
        return [Interval(e.src, e.group, e.offset_s, self.aged(e, now_ns), e.auth) for e in es]

    def vote(self, now_ns: int, suspects: frozenset[str] = frozenset(),
             anchor: tuple[float, float] | None = None, auth_mode: str = "mix") -> Consensus:
        """The vote at now_ns: `vote()`'s arguments, every bound aged to now_ns."""
        require = self.require = auth_mode == "require"
        names_sorted = self._sorted
        if names_sorted is None:
            names_sorted = self._sorted = sorted(self._groups)
            self._names_t = tuple(names_sorted)
        ppm = self._aging_ppm
        # The groups with a member withheld (the others vote with all their members).
        withheld: set[str] = set()
        entries = self._entries
        for src in suspects:
            e = entries.get(src)
            if e is not None:
                withheld.add(e.group)
        if self._dirty:
            keys, groups = self._keys, self._groups
            for name in self._dirty:
                keys.put(name, groups.get(name))
            self._dirty.clear()
        if not withheld and not require and names_sorted:
            region = self._keys.region(self._groups, now_ns, ppm)
            if region is not None:
                # Every group's intersection holds the region: Marzullo's sweep over them
                # would find it alone, as deep as the groups are many, every group in it.
                last = self._last = Verdicts(self, now_ns, suspects, require)
                self._voters_held = True
                n = len(names_sorted)
                return self._agreed(now_ns, suspects, anchor, auth_mode, last, n, n, region[0],
                                    region[1], names_sorted, self._names_t, (), self._voters)
        group_ivs: list[tuple[float, float, str]] = []
        split: list[str] = []
        # Per group that votes: its voting members' offsets, bounds and times.
        voters: dict[str, tuple[list[float], list[float], list[int]]] = {}
        for name in names_sorted:
            g = self._groups[name]
            offs, bnds, ts = g.offsets, g.bounds, g.times
            if name in withheld or (require and g.unauth):  # (members withheld: those left)
                keep = [k for k, e in enumerate(g.entries)
                        if not (e.src in suspects or (require and e.auth == AUTH_NONE))]
                if not keep:
                    continue  # every member withheld: the group does not vote
                offs = [offs[k] for k in keep]
                bnds = [bnds[k] for k in keep]
                ts = [ts[k] for k in keep]
                lo, hi = _intersect(offs, bnds, ts, now_ns, ppm)
                voters[name] = (offs, bnds, ts)
            else:
                lo, hi = g.intersect(now_ns, ppm)
                voters[name] = g.nums
            if lo <= hi:
                group_ivs.append((lo, hi, name))
            else:
                split.append(name)

        last = self._last = Verdicts(self, now_ns, suspects, require)
        n = len(group_ivs)
        if n == 0:
            last.all_as = (Verdict.NO_QUORUM, "no trust group can vote")
            return Consensus(False, 0, 0, split_groups=tuple(split), verdicts=last)

        count, lo, hi, names = _marzullo(group_ivs, anchor)
        if 2 * count <= n:
            last.all_as = (Verdict.NO_QUORUM,
                           f"no strict majority: at most {count} of {n} trust groups agree")
            return Consensus(False, n, count, split_groups=tuple(split), verdicts=last)
        return self._agreed(now_ns, suspects, anchor, auth_mode, last, count, n, lo, hi, names,
                            tuple(names), tuple(split), voters)

    def _agreed(self, now_ns: int, suspects: frozenset[str], anchor: tuple[float, float] | None,
                auth_mode: str, last: Verdicts, count: int, n: int, lo: float, hi: float,
                names: list[str], names_t: tuple[str, ...], split: tuple[str, ...],
                voters: dict[str, tuple[list[float], list[float], list[int]]]) -> Consensus:
        """The consensus of `count` of `n` voting groups (`names`) on the region lo..hi."""
        # The best estimate: summed when it is read (`_Best`).
        best = _Best(self._groups, names, voters, now_ns, self._aging_ppm, lo, hi,
                     anchor if suspects else None)

        agrees = _AGREES.get((count, n))  # one for all sources, and for every vote alike
        if agrees is None:
            agrees = _AGREES[(count, n)] = (Verdict.TRUECHIMER, f"agrees with {count}/{n} trust groups")
        last.region(count, n, lo, hi, best, agrees)
        if self._nts and auth_mode == "mix":
            intervals = self.intervals(now_ns)
            verdicts = {iv.src: last.judge(iv.src) for iv in intervals}
            auth_side = _auth_split(intervals, names, verdicts)
            if auth_side is not None:
                why = (f"no consensus: the authenticated groups {', '.join(auth_side)} disagree "
                       f"with the unauthenticated majority {', '.join(names)} "
                       "(consensus.auth_split)")
                last.all_as = (Verdict.NO_QUORUM, why)
                return Consensus(False, n, count, split_groups=split, verdicts=last,
                                 withheld=suspects, auth_split=(auth_side, names_t))
        return Consensus(True, n, count, lo, hi, None, names_t, split, last,
                         suspects, None, None, best)


class _Keys:
    """The groups in order of their intersections' ends, for a vote in which every group's
    intersection overlaps every other's (the honest case): Marzullo's region is then the
    highest low end to the lowest high end, and these are found from a few groups.

    Every bound ages at the same rate r (ppm x 1e-15 per ns), so in real numbers a member's low
    end at any now past its time t is o - b - (now - t) r = a - (now - t0) r, with its key
    a = o - b + s (s = (t - t0) r, its shift to a fixed t0), and its high end c + (now - t0) r,
    c = o + b - s: a group's low end at any now past its members' times is the highest of its
    members' keys less (now - t0) r, its high end the lowest high key plus as much. The order
    of the groups' ends never changes until a group changes. Each member's keys are taken when
    it changes (`member`), each group keeps their max and min (`_Group.keys`: found again over
    its members only when the member that gave one changes), and the ballot keeps the groups
    sorted by them (`lo`, `hi`). In floats a group's end at now is within 8u(size + Q) of the
    real one (u = 2**-53; `_MARGIN`: size its members' largest |offset| + |bound|, Q the oldest
    member's aging at now) and a key within 8u(|o| + |b| + |s| + |key|) of its real one (the
    difference's rounding, the shift's four, the sum's): a group whose key is below the top key
    by more than twice both cannot have the highest low end in floats either. `region` takes
    the groups whose key is within 64u(`mag` + Q) of the top (`mag`: the largest
    |o| + |b| + |s| + |key| of any member keyed, Q since the oldest member: twice what it
    must), their ends at now in floats (their `_Group.intersect`, the vote's very floats), the
    highest (the last in the groups' order of equal ones, as the sweep's stable sort) and alike
    the lowest high end. A group with a key that is not finite, or a member newer than now,
    leaves it to the sweep."""

    __slots__ = ("lo", "lo_names", "hi", "hi_names", "of", "unkeyed", "started", "t0", "t_lo",
                 "t_hi", "mag")

    def __init__(self) -> None:
        self.lo: list[float] = []  # the groups' low keys, ascending
        self.lo_names: list[str] = []  # (their groups)
        self.hi: list[float] = []  # the high keys, ascending
        self.hi_names: list[str] = []
        self.of: dict[str, tuple[float, float]] = {}  # per group keyed: its keys
        self.unkeyed: set[str] = set()  # groups whose ends are not finite (the sweep's)
        self.started = False
        self.t0 = 0  # the time the keys are shifted to (the first member's)
        self.t_lo = 0  # the oldest member's time of any group keyed (never later)
        self.t_hi = 0  # the newest (never earlier)
        self.mag = 0.0  # the largest |o| + |b| + |shift| + |key| of any member keyed

    def member(self, offset_s: float, bound_s: float, t_ns: int,
               ppm: float) -> tuple[float, float]:
        """A member's keys (o - b + s, o + b - s; s its shift to t0), and what the margin must
        cover of it (`mag`, `t_lo`, `t_hi`)."""
        if not self.started:
            self.started = True
            self.t0 = self.t_lo = self.t_hi = t_ns
        shift = ((t_ns - self.t0) / 1e9) * ppm * 1e-6
        k_lo = (offset_s - bound_s) + shift
        k_hi = (offset_s + bound_s) - shift
        mag = abs(offset_s) + abs(bound_s) + abs(shift) + \
            (abs(k_lo) if abs(k_lo) > abs(k_hi) else abs(k_hi))
        if not _finite(mag):
            return math.nan, math.nan  # (its group is left to the sweep while it holds it)
        if mag > self.mag:
            self.mag = mag
        if t_ns < self.t_lo:
            self.t_lo = t_ns
        if t_ns > self.t_hi:
            self.t_hi = t_ns
        return k_lo, k_hi

    def put(self, name: str, g: _Group | None) -> None:
        """Group `name` changed (None: it is gone): its keys found again."""
        old = self.of.pop(name, None)
        if old is not None:
            _unsort(self.lo, self.lo_names, old[0], name)
            _unsort(self.hi, self.hi_names, old[1], name)
        self.unkeyed.discard(name)
        if g is None:
            return
        keys = g.keys()
        if keys is None:
            self.unkeyed.add(name)
            return
        k_lo, k_hi = keys
        i = bisect_left(self.lo, k_lo)
        self.lo.insert(i, k_lo)
        self.lo_names.insert(i, name)
        i = bisect_left(self.hi, k_hi)
        self.hi.insert(i, k_hi)
        self.hi_names.insert(i, name)
        self.of[name] = (k_lo, k_hi)

    def region(self, groups: dict[str, _Group], now_ns: int,
               ppm: float) -> tuple[float, float] | None:
        """(the highest low end, the lowest high end) of the groups at now_ns, the vote's
        floats, when the one is not above the other; None: the sweep decides."""
        lo_keys, hi_keys = self.lo, self.hi
        n = len(lo_keys)
        if self.unkeyed or n == 0 or n != len(groups) or now_ns < self.t_hi:
            return None
        age_ns = now_ns - self.t_lo
        margin = 64 * _U * (self.mag + _aging(age_ns, abs(ppm)))
        if not math.isfinite(margin):
            return None
        names = self.lo_names
        i = n - 1
        cut = lo_keys[i] - margin
        lo = 0.0
        lo_name = ""
        first = True
        while i >= 0 and lo_keys[i] >= cut:
            name = names[i]
            x = groups[name].intersect(now_ns, ppm)[0]
            if first or x > lo or (x == lo and name > lo_name):
                lo, lo_name = x, name
                first = False
            i -= 1
        names = self.hi_names
        i = 0
        cut = hi_keys[0] + margin
        hi = 0.0
        hi_name = ""
        first = True
        while i < n and hi_keys[i] <= cut:
            name = names[i]
            x = groups[name].intersect(now_ns, ppm)[1]
            if first or x < hi or (x == hi and name < hi_name):
                hi, hi_name = x, name
                first = False
            i += 1
        if not lo <= hi:
            return None
        return lo, hi


def _unsort(keys: list[float], names: list[str], key: float, name: str) -> None:
    """Take group `name`'s `key` out of the sorted keys."""
    i = bisect_left(keys, key)
    while names[i] != name:
        i += 1
    del keys[i]
    del names[i]


# The best estimate's round-off (u = 2**-53) and the series' reach (see `_Best.ns`).
_U: Final = 2.0 ** -53
_REACH: Final = 2.0 ** -7


class _Best:
    """A vote's best estimate: the inverse-variance mean of the agreeing members' offsets (each
    weighed 1/aged bound**2), kept inside the region; while sources are withheld with the
    holdover's prediction as one more member (`anchor`). `sums` sums it over every member, in
    order, when it is first read; `ns` says round(members' estimate * 1e9), what the holdover
    learns at every vote, from each group's `_Moments` instead (O(groups)) when that is proven
    to be the same int."""

    __slots__ = ("groups", "names", "voters", "now_ns", "ppm", "lo", "hi", "anchor", "_sums")

    def __init__(self, groups: dict[str, _Group], names: list[str],
                 voters: dict[str, tuple[list[float], list[float], list[int]]],
                 now_ns: int, ppm: float, lo: float, hi: float,
                 anchor: tuple[float, float] | None) -> None:
        self.groups = groups  # the ballot's (to keep the moments it takes)
        self.names = names  # the agreeing groups
        self.voters = voters  # per voting group: its voting members' numbers at the vote
        self.now_ns = now_ns
        self.ppm = ppm
        self.lo = lo
        self.hi = hi
        self.anchor = anchor
        self._sums: tuple[float, float] | None = None

    def sums(self) -> tuple[float, float]:
        """(the estimate, the members' own: without the prediction). Summed in order, left to
        right (as sum() of a list did before Python 3.12)."""
        r = self._sums
        if r is None:
            now_ns, ppm, lo, hi = self.now_ns, self.ppm, self.lo, self.hi
            sw = swx = 0.0
            voters = self.voters
            for name in self.names:
                offs, bnds, ts = voters[name]
                sw, swx = _weigh(offs, bnds, ts, now_ns, ppm, sw, swx)
            plain = swx / sw
            plain = min(max(plain, lo), hi)
            anchor = self.anchor
            if anchor is not None:
                b = max(anchor[1], ANCHOR_SIGMA_FLOOR_S)
                wi = 1.0 / b ** 2
                sw += wi
                swx += wi * anchor[0]
            est = swx / sw
            est = min(max(est, lo), hi)
            r = self._sums = (est, plain)
        return r

    def ns(self) -> int | None:
        """round(the members' estimate * 1e9), the int `sums` would give, when the series
        proves it; None when it cannot (then sum).

        The sums' terms are w = (b + x)**-2 and w*o, b a member's bound aged to its group's
        moments' centre and x the aging since (the same for every member): a power series in x
        whose terms alternate and shrink while x <= _REACH b (the moments are taken again at
        the vote's time otherwise), so the first term left out bounds what the rest adds.
        `sums` gets its floats within (n + 18)u of the real sums (n members; u for each of the
        five roundings of a bound, pow's ulp, the division, the product, and each addition of
        the n); the series within (m + 100)u of its terms (m a group's members: the
        moments' roundings and the powers of x). Both bounds, widened by a quarter, make an
        interval for the quotient that holds the float `sums` divides to; when clamped into
        the region and scaled to ns both its ends round to one int, that is the int."""
        r = self._sums
        if r is not None:
            return round(r[1] * 1e9)
        q = self.quotient()
        if q is None:
            return None
        lo, hi = self.lo, self.hi
        ns_lo = round(min(max(q[0], lo), hi) * 1e9)
        ns_hi = round(min(max(q[1], lo), hi) * 1e9)
        return ns_lo if ns_lo == ns_hi else None

    def quotient(self) -> tuple[float, float] | None:
        """An interval that holds the float `sums` divides to (before the clamp), from the
        series (`ns`); None when it cannot say."""
        ppm, now = self.ppm, self.now_ns
        if not ppm >= 0.0:
            return None
        groups = self.groups
        w_sum = x_sum = e_w = e_x = p0 = r0 = a_w = a_x = 0.0
        n = 0
        voters = self.voters
        for name in self.names:
            offs, bnds, ts = voters[name]
            g = groups.get(name)
            mo = g.moments if g is not None else None
            if mo is None or mo.offs is not offs or mo.t_c > now or \
                    _aging(now - mo.t_c, ppm) > mo.a_min * _REACH:
                mo = _Moments(offs, bnds, ts, now, ppm)
                if g is not None and g.offsets is offs:
                    g.moments = mo
            if not mo.ok:
                return None
            x = _aging(now - mo.t_c, ppm)
            c1 = 2.0 * x
            x2 = x * x
            c2 = 3.0 * x2
            c3 = 4.0 * x2 * x
            c4 = 5.0 * x2 * x2
            tail = 6.0 * x2 * x2 * x * 1.01
            w_sum += mo.p0 - c1 * mo.p1 + c2 * mo.p2 - c3 * mo.p3 + c4 * mo.p4
            x_sum += mo.q0 - c1 * mo.q1 + c2 * mo.q2 - c3 * mo.q3 + c4 * mo.q4
            aw = mo.p0 + c1 * mo.p1 + c2 * mo.p2 + c3 * mo.p3 + c4 * mo.p4
            ax = mo.r0 + c1 * mo.r1 + c2 * mo.r2 + c3 * mo.r3 + c4 * mo.r4
            slack = (mo.m + 100) * _U * 1.1
            e_w += slack * aw + tail * mo.p5
            e_x += slack * ax + tail * mo.r5
            a_w += aw
            a_x += ax
            p0 += mo.p0
            r0 += mo.r0
            n += mo.m
        k = len(self.names) + 2  # (the additions over the groups)
        e_w += k * _U * a_w * 1.01
        e_x += k * _U * a_x * 1.01
        e_sw = (e_w + (n + 18) * _U * p0 * 1.02) * 1.25
        e_swx = (e_x + (n + 18) * _U * r0 * 1.02) * 1.25
        sw_lo, sw_hi = w_sum - e_sw, w_sum + e_sw
        num_lo, num_hi = x_sum - e_swx, x_sum + e_swx
        if not (sw_lo > 0.0 and math.isfinite(sw_hi) and math.isfinite(num_lo)
                and math.isfinite(num_hi)):
            return None
        q_lo = num_lo / (sw_hi if num_lo >= 0.0 else sw_lo)
        q_hi = num_hi / (sw_lo if num_hi >= 0.0 else sw_hi)
        q_lo -= abs(q_lo) * 4 * _U + 1e-300  # (the divisions' rounding: an ulp or two)
        q_hi += abs(q_hi) * 4 * _U + 1e-300
        return q_lo, q_hi


def _finite(x: float) -> bool:
    """math.isfinite(x), the same truth (x - x is 0 for a finite x, NaN for inf and NaN),
    without a call through the math module under mypyc."""
    return x - x == 0.0


def _aging(age_ns: int, ppm: float) -> float:
    """A bound's growth over age_ns: every bound in the vote ages so (as `Tracker.aged`: the very
    float; mypyc calls it as fast as the expression written out)."""
    return (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6


class _Moments:
    """A group's members' weights as sums of powers of their bounds aged to `t_c` (a`): p_j =
    sum a**-(j+2), q_j = sum o a**-(j+2), r_j = sum |o| a**-(j+2), for `_Best.ns`. `ok`: every
    bound is >= 0 and aged >= 2 ns (the 1 ns floor never applies), every number finite, and
    no member is newer than t_c."""

    __slots__ = ("offs", "t_c", "ok", "m", "a_min", "p0", "p1", "p2", "p3", "p4", "p5",
                 "q0", "q1", "q2", "q3", "q4", "r0", "r1", "r2", "r3", "r4", "r5")

    def __init__(self, offs: list[float], bnds: list[float], ts: list[int], t_c: int,
                 ppm: float) -> None:
        self.offs = offs
        self.t_c = t_c
        m = self.m = len(offs)
        p0 = p1 = p2 = p3 = p4 = p5 = q0 = q1 = q2 = q3 = q4 = 0.0
        r0 = r1 = r2 = r3 = r4 = r5 = 0.0
        a_min = math.inf
        ok = m > 0
        for t in ts:  # (t_c >= max(ts), without the generic call)
            if t > t_c:
                ok = False
        for k in range(m if ok else 0):
            bk = bnds[k]
            o = offs[k]
            a = bk + _aging(t_c - ts[k], ppm)
            if not (bk >= 0.0 and 2e-9 <= a < math.inf and _finite(o)):
                ok = False
                break
            if a < a_min:
                a_min = a
            inv = 1.0 / a
            ao = abs(o)
            w = inv * inv
            p0 += w
            q0 += w * o
            r0 += w * ao
            w *= inv
            p1 += w
            q1 += w * o
            r1 += w * ao
            w *= inv
            p2 += w
            q2 += w * o
            r2 += w * ao
            w *= inv
            p3 += w
            q3 += w * o
            r3 += w * ao
            w *= inv
            p4 += w
            q4 += w * o
            r4 += w * ao
            w *= inv
            p5 += w
            r5 += w * ao
        self.ok = ok and math.isfinite(p5) and math.isfinite(r5)
        self.a_min = a_min
        self.p0, self.p1, self.p2, self.p3, self.p4, self.p5 = p0, p1, p2, p3, p4, p5
        self.q0, self.q1, self.q2, self.q3, self.q4 = q0, q1, q2, q3, q4
        self.r0, self.r1, self.r2, self.r3, self.r4, self.r5 = r0, r1, r2, r3, r4, r5


class Verdicts:
    """One vote's verdicts, judged when asked (`get`, as a dict's): a source whose entry in the
    ballot changed since the vote is judged on the entry it voted with (`kept`)."""

    def __init__(self, ballot: Ballot, now_ns: int, suspects: frozenset[str],
                 require: bool) -> None:
        self._ballot = ballot
        self._now_ns = now_ns
        self._suspects = suspects
        self._require = require
        self.kept: dict[str, _Entry | None] = {}  # entries changed since the vote: as they were
        self.all_as: tuple[Verdict, str] | None = None  # every source's verdict (no quorum)
        self._count = self._n = 0
        self._lo = self._hi = 0.0
        self._best: _Best | None = None
        self._agrees: tuple[Verdict, str] = (Verdict.TRUECHIMER, "")

    def region(self, count: int, n: int, lo: float, hi: float, best: _Best,
               agrees: tuple[Verdict, str]) -> None:
        self._count, self._n, self._lo, self._hi, self._best = count, n, lo, hi, best
        self._agrees = agrees

    def _estimate(self) -> float:
        assert self._best is not None
        return self._best.sums()[0]

    def _entry(self, src: str) -> _Entry | None:
        kept = self.kept
        if src in kept:
            return kept[src]
        return self._ballot._entries.get(src)

    def judge(self, src: str) -> tuple[Verdict, str]:
        """The verdict of a source in the vote (its interval against the consensus region)."""
        if self.all_as is not None:
            return self.all_as
        e = self._entry(src)
        assert e is not None
        count, n, lo, hi = self._count, self._n, self._lo, self._hi
        b = self._ballot.aged(e, self._now_ns)
        iv_lo, iv_hi = e.offset_s - b, e.offset_s + b
        if iv_hi < lo or iv_lo > hi:
            dist = iv_lo - hi if iv_lo > hi else lo - iv_hi
            side = "ahead of" if iv_lo > hi else "behind"
            return (
                Verdict.FALSETICKER,
                f"{(e.offset_s - self._estimate()) * 1e3:+.3f} ms: {side} the consensus of {count}/{n} "
                f"groups ({dist * 1e3:.3f} ms beyond its bound and the consensus region)",
            )
        if src in self._suspects:
            return (Verdict.TRUECHIMER, f"agrees with {count}/{n} trust groups, but "
                    "is withheld from the consensus while it is caught moving "
                    "(time.step/time.drift)")
        if self._require and e.auth == AUTH_NONE:
            return (Verdict.TRUECHIMER, f"agrees with {count}/{n} trust groups; unauthenticated, "
                    "so withheld from the consensus ([vote] auth_mode)")
        return self._agrees

    def get(self, src: str, default: tuple[Verdict, str] | None = None
            ) -> tuple[Verdict, str] | None:
        if self._entry(src) is None:
            return default
        return self.judge(src)

    def __getitem__(self, src: str) -> tuple[Verdict, str]:
        if self._entry(src) is None:
            raise KeyError(src)
        return self.judge(src)

    def __contains__(self, src: object) -> bool:
        return isinstance(src, str) and self._entry(src) is not None

    def keys(self) -> list[str]:
        """The sources in the vote, in the header's order."""
        es = [(e.order, src) for src in self._all() if (e := self._entry(src)) is not None]
        es.sort()
        return [src for _, src in es]

    def _all(self) -> set[str]:
        return set(self._ballot._entries) | set(self.kept)

    def items(self) -> list[tuple[str, tuple[Verdict, str]]]:
        return [(src, self.judge(src)) for src in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __eq__(self, other: object) -> bool:
        """Equal to the dict of the same verdicts (or to the same `Verdicts`)."""
        if isinstance(other, Verdicts):
            other = dict(other.items())
        return dict(self.items()) == other

    __hash__ = None  # type: ignore[assignment]  # (as a dict's)


def _auth_split(intervals: list[Interval], names: list[str],
                verdicts: dict[str, tuple[Verdict, str]]) -> tuple[str, ...] | None:
    """Under auth_mode mix: the authenticated groups (every member NTS), sorted, when the
    consensus `names` holds none of them and calls one of their members a falseticker; else
    None. (A group is authenticated only if all its members are: an unauthenticated member
    could move or split it.)"""
    auth: dict[str, bool] = {}
    for iv in intervals:
        auth[iv.group] = auth.get(iv.group, True) and iv.auth == AUTH_NTS
    groups = sorted(g for g, a in auth.items() if a)
    if not groups or any(auth.get(g, False) for g in names):
        return None
    if not any(auth[iv.group] and verdicts[iv.src][0] is Verdict.FALSETICKER for iv in intervals):
        return None
    return tuple(groups)
