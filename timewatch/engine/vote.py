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
from bisect import bisect_left
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
    """The vote's result (one per vote). Never mutated: the shared empty `verdicts` is safe."""

    _fields = ("quorum", "groups_voting", "groups_agreeing", "lo_s", "hi_s", "offset_s",
               "agreeing_groups", "split_groups", "verdicts", "withheld",
               "members_offset_s", "auth_split")
    __slots__ = _fields

    def __init__(self, quorum: bool, groups_voting: int, groups_agreeing: int,
                 lo_s: float | None = None, hi_s: float | None = None,
                 offset_s: float | None = None, agreeing_groups: tuple[str, ...] = (),
                 split_groups: tuple[str, ...] = (),
                 verdicts: dict[str, tuple[Verdict, str]] | Verdicts | None = None,
                 withheld: frozenset[str] = frozenset(),
                 members_offset_s: float | None = None,
                 auth_split: tuple[tuple[str, ...], tuple[str, ...]] | None = None) -> None:
        self.quorum: Final = quorum
        self.groups_voting: Final = groups_voting
        self.groups_agreeing: Final = groups_agreeing
        self.lo_s: Final = lo_s  # consensus region (None without quorum)
        self.hi_s: Final = hi_s
        self.offset_s: Final = offset_s  # best estimate inside the region
        self.agreeing_groups: Final = agreeing_groups
        self.split_groups: Final = split_groups  # groups whose members disagree with each other
        self.verdicts: Final = _NO_VERDICTS if verdicts is None else verdicts
        self.withheld: Final = withheld  # sources kept out of it (caught moving)
        # The members' own best estimate, without the holdover's prediction (what the holdover
        # may learn: a model taught its own prediction would witness for itself).
        self.members_offset_s: Final = offset_s if members_offset_s is None else members_offset_s
        # auth_mode mix: (the authenticated groups, the unauthenticated majority) that disagree;
        # no consensus while they do (None: no such split).
        self.auth_split: Final = auth_split

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
    los = sorted([lo for lo, _, _ in ivs])
    his = sorted([hi for _, hi, _ in ivs])
    n = len(los)
    best, cnt = 0, 0
    regions: list[list[float]] = []  # [lo, hi] of each region of the deepest count
    i = j = 0
    while j < n:
        if i < n and los[i] <= his[j]:
            x = los[i]
            i += 1
            cnt += 1
            if cnt > best:
                best, regions = cnt, [[x, x]]
            elif cnt == best:
                regions.append([x, x])
        else:
            if cnt == best:
                regions[-1][1] = his[j]
            j += 1
            cnt -= 1
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

    __slots__ = ("orders", "entries", "offsets", "bounds", "times", "median", "unauth", "ends")

    def __init__(self) -> None:
        self.orders: list[int] = []
        self.entries: list[_Entry] = []
        # The entries' numbers as lists (what the vote reads of every member: no attribute
        # lookups in its pass).
        self.offsets: list[float] = []
        self.bounds: list[float] = []
        self.times: list[int] = []
        self.median: float | None = None  # of its members' offsets (None: to be computed)
        self.unauth = 0  # members that are unauthenticated NTP servers (AUTH_NONE)
        self.ends: _Ends | None = None  # (None: to be found again)

    def set(self, i: int, e: _Entry, new: bool) -> None:
        if new:
            self.orders.insert(i, e.order)
            self.entries.insert(i, e)
            self.offsets.insert(i, e.offset_s)
            self.bounds.insert(i, e.bound_s)
            self.times.insert(i, e.t_ns)
        else:
            self.unauth -= self.entries[i].auth == AUTH_NONE
            self.entries[i] = e
            self.offsets[i] = e.offset_s
            self.bounds[i] = e.bound_s
            self.times[i] = e.t_ns
        self.unauth += e.auth == AUTH_NONE
        self.median = None
        self.ends = None

    def remove(self, i: int) -> None:
        self.unauth -= self.entries[i].auth == AUTH_NONE
        for v in (self.orders, self.entries, self.offsets, self.bounds, self.times):
            del v[i]
        self.median = None
        self.ends = None

    def intersect(self, now_ns: int, ppm: float) -> tuple[float, float]:
        """`_intersect` of all its members, from the members that can give its ends (`_Ends`)
        while that is proven to give the very same floats, else from all of them."""
        ends = self.ends
        if ends is None:
            ends = self.ends = _Ends(self.offsets, self.bounds, self.times, ppm)
        if ends.lo_k and now_ns >= ends.t_max:
            # The error bound of every member's end at now_ns (see `_Ends`).
            age_ns = now_ns - ends.t_min
            q = (age_ns / 1e9 if age_ns > 0 else 0.0) * ends.ppm * 1e-6
            need = _MARGIN * (ends.size + q)
            if ends.gap_lo > need and ends.gap_hi > need:
                offs, bnds, ts = self.offsets, self.bounds, self.times
                lo = hi = 0.0
                first = True
                for k in ends.lo_k:  # (as `_intersect`, over these members)
                    age_ns = now_ns - ts[k]
                    m_lo = offs[k] - (bnds[k] + (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6)
                    if first or m_lo > lo:
                        lo = m_lo
                    first = False
                first = True
                for k in ends.hi_k:
                    age_ns = now_ns - ts[k]
                    m_hi = offs[k] + (bnds[k] + (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6)
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
        b = bnds[k] + (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6
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
        b = bnds[k] + (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6  # (as `_intersect`)
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

    __slots__ = ("t_max", "t_min", "ppm", "size", "gap_lo", "gap_hi", "lo_k", "hi_k")

    def __init__(self, offs: list[float], bnds: list[float], ts: list[int], ppm: float) -> None:
        n = len(offs)
        t_max = self.t_max = max(ts)
        self.t_min = min(ts)
        self.ppm = abs(ppm)
        los: list[float] = []
        his: list[float] = []
        size = 0.0
        for k in range(n):
            age_ns = t_max - ts[k]
            b = bnds[k] + (age_ns / 1e9 if age_ns > 0 else 0.0) * ppm * 1e-6
            los.append(offs[k] - b)
            his.append(offs[k] + b)
            s = abs(offs[k]) + abs(bnds[k])
            if s > size:
                size = s
        self.size = size
        self.lo_k: list[int] = []
        self.hi_k: list[int] = []
        self.gap_lo = self.gap_hi = 0.0
        if not (all(math.isfinite(x) for x in los) and all(math.isfinite(x) for x in his)
                and math.isfinite(size)):
            return  # (lo_k empty: the full pass)
        near = size * _NEAR
        best_lo, best_hi = max(los), min(his)
        cut_lo, cut_hi = best_lo - near, best_hi + near
        rest_lo = rest_hi = math.nan
        for k in range(n):
            x = los[k]
            if x >= cut_lo:
                self.lo_k.append(k)
            elif not x <= rest_lo:  # (the highest of the others)
                rest_lo = x
            x = his[k]
            if x <= cut_hi:
                self.hi_k.append(k)
            elif not x >= rest_hi:
                rest_hi = x
        # (The subtraction rounds: a little less than it says.)
        shrink = 1.0 - 2.0 ** -50
        self.gap_lo = math.inf if math.isnan(rest_lo) else (best_lo - rest_lo) * shrink
        self.gap_hi = math.inf if math.isnan(rest_hi) else (rest_hi - best_hi) * shrink


class Ballot:
    """The vote, kept between votes: an observation changes its own source's entry (`put`,
    `drop`: O(size of its group)), and a vote (`vote`) reads the groups' members' numbers once,
    in one pass that builds no object per source: each member's bound aged to the vote's time,
    its group's intersection and, for the agreeing groups, the best estimate (a sum in the
    members' order: the same floats as summing over every interval). Marzullo's sweep then runs
    over the groups, not the sources. Verdicts are not built per vote: `Verdicts` judges a source
    when it is asked (the engine asks for the sources with a new sample, a snapshot for all).

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

    def aged(self, e: _Entry, now_ns: int) -> float:
        """Its bound aged to now_ns (the very float `Tracker.aged` computes)."""
        age_ns = now_ns - e.t_ns
        age_s = age_ns / 1e9 if age_ns > 0 else 0.0
        return e.bound_s + age_s * self._aging_ppm * 1e-6

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
        g.set(bisect_left(g.orders, order), e, old is None)
        if old is not None:
            self._nts -= old.auth == AUTH_NTS
        self._nts += auth == AUTH_NTS

    def drop(self, src: str) -> None:
        """Source `src` no longer votes (stale, unusable)."""
        old = self._entries.pop(src, None)
        if old is None:
            return
        self._keep(src, old)
        self._nts -= old.auth == AUTH_NTS
        g = self._groups[old.group]
        g.remove(bisect_left(g.orders, old.order))
        if not g.orders:
            del self._groups[old.group]
            self._sorted = None

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
            m = g.median = median([e.offset_s for e in g.entries])
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
        ppm = self._aging_ppm
        # The groups with a member withheld (the others vote with all their members).
        withheld: set[str] = set()
        entries = self._entries
        for src in suspects:
            e = entries.get(src)
            if e is not None:
                withheld.add(e.group)
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
            else:
                lo, hi = g.intersect(now_ns, ppm)
            voters[name] = (offs, bnds, ts)
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

        # Best estimate: inverse-variance mean of the agreeing members, kept inside the region.
        # Summed in order, left to right (as sum() of a list did before Python 3.12).
        sw = swx = 0.0
        for name in names:
            offs, bnds, ts = voters[name]
            sw, swx = _weigh(offs, bnds, ts, now_ns, ppm, sw, swx)
        plain = swx / sw
        plain = min(max(plain, lo), hi)
        if anchor is not None and suspects:
            b = max(anchor[1], ANCHOR_SIGMA_FLOOR_S)
            wi = 1.0 / b ** 2
            sw += wi
            swx += wi * anchor[0]
        est = swx / sw
        est = min(max(est, lo), hi)

        agrees = _AGREES.get((count, n))  # one for all sources, and for every vote alike
        if agrees is None:
            agrees = _AGREES[(count, n)] = (Verdict.TRUECHIMER, f"agrees with {count}/{n} trust groups")
        last.region(count, n, lo, hi, est, agrees)
        if self._nts and auth_mode == "mix":
            intervals = self.intervals(now_ns)
            verdicts = {iv.src: last.judge(iv.src) for iv in intervals}
            auth_side = _auth_split(intervals, names, verdicts)
            if auth_side is not None:
                why = (f"no consensus: the authenticated groups {', '.join(auth_side)} disagree "
                       f"with the unauthenticated majority {', '.join(names)} "
                       "(consensus.auth_split)")
                last.all_as = (Verdict.NO_QUORUM, why)
                return Consensus(False, n, count, split_groups=tuple(split), verdicts=last,
                                 withheld=suspects, auth_split=(auth_side, tuple(names)))
        return Consensus(True, n, count, lo, hi, est, tuple(names), tuple(split), last,
                         suspects, plain)

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
        self._lo = self._hi = self._est = 0.0
        self._agrees: tuple[Verdict, str] = (Verdict.TRUECHIMER, "")

    def region(self, count: int, n: int, lo: float, hi: float, est: float,
               agrees: tuple[Verdict, str]) -> None:
        self._count, self._n, self._lo, self._hi, self._est = count, n, lo, hi, est
        self._agrees = agrees

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
                f"{(e.offset_s - self._est) * 1e3:+.3f} ms: {side} the consensus of {count}/{n} "
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
