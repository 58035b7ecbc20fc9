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

from enum import StrEnum
from typing import Final

from .value import Value


class Verdict(StrEnum):
    """Every state a source can be in, each with its one-line meaning (chrony's SRC_Status)."""

    INIT = "init"  # no usable sample yet
    TRUECHIMER = "truechimer"  # agrees with the majority of trust groups
    FALSETICKER = "falseticker"  # doesn't agree with the majority of trust groups
    UNUSABLE = "unusable"  # answers, but its data cannot be used (unsynchronised, no fix...)
    STALE = "stale"  # no usable data for its stale limit
    NO_QUORUM = "no_quorum"  # usable, but no strict majority of groups exists to judge it


# The members as module constants: an enum member looked up on its class costs a call per vote.
_TRUE: Final = Verdict.TRUECHIMER
_FALSE: Final = Verdict.FALSETICKER
_NO_QUORUM: Final = Verdict.NO_QUORUM

# What an interval's source is to `auth_mode` (chrony: a refclock, an NTP source, an
# authenticated NTP source).
AUTH_NA: Final = 0  # not an NTP server (GNSS, PPS, chronyd): auth_mode never withholds it
AUTH_NONE: Final = 1  # an unauthenticated NTP server
AUTH_NTS: Final = 2  # an NTP server whose replies are authenticated (NTS)
AUTH_MODES: Final = ("require", "prefer", "mix", "ignore")


class Interval(Value):
    """One usable source for the vote (built per source per vote: see engine/value.py)."""

    __slots__ = ("src", "group", "offset_s", "bound_s", "auth")
    _fields = ("src", "group", "offset_s", "bound_s", "auth")  # = __slots__ (mypyc cannot read it)

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

    __slots__ = ("quorum", "groups_voting", "groups_agreeing", "lo_s", "hi_s", "offset_s",
                 "agreeing_groups", "split_groups", "verdicts", "withheld", "members_offset_s",
                 "auth_split")
    _fields = ("quorum", "groups_voting", "groups_agreeing", "lo_s", "hi_s", "offset_s",
               "agreeing_groups", "split_groups", "verdicts", "withheld",
               "members_offset_s", "auth_split")  # = __slots__ (mypyc cannot read it)

    def __init__(self, quorum: bool, groups_voting: int, groups_agreeing: int,
                 lo_s: float | None = None, hi_s: float | None = None,
                 offset_s: float | None = None, agreeing_groups: tuple[str, ...] = (),
                 split_groups: tuple[str, ...] = (),
                 verdicts: dict[str, tuple[Verdict, str]] | None = None,
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
    """
    require = auth_mode == "require"
    nts = False  # any authenticated interval (mix has something to weigh)
    by_group: dict[str, list[Interval]] = {}
    for iv in intervals:
        if iv.auth == AUTH_NTS:
            nts = True
        if iv.src in suspects or (require and iv.auth == AUTH_NONE):
            continue
        members = by_group.get(iv.group)
        if members is None:
            by_group[iv.group] = [iv]
        else:
            members.append(iv)

    group_ivs: list[tuple[float, float, str]] = []
    split: list[str] = []
    for g in sorted(by_group):
        # The intersection of the members' intervals: max of the lows, min of the highs (a
        # loop in place of max()/min() over generators: the vote runs on every sample).
        lo = hi = None
        for m in by_group[g]:
            m_lo, m_hi = m.offset_s - m.bound_s, m.offset_s + m.bound_s
            if lo is None or m_lo > lo:
                lo = m_lo
            if hi is None or m_hi < hi:
                hi = m_hi
        assert lo is not None and hi is not None
        if lo <= hi:
            group_ivs.append((lo, hi, g))
        else:
            split.append(g)

    n = len(group_ivs)
    if n == 0:
        verdicts = {iv.src: (_NO_QUORUM, "no trust group can vote") for iv in intervals}
        return Consensus(False, 0, 0, split_groups=tuple(split), verdicts=verdicts)

    count, lo, hi, names = _marzullo(group_ivs, anchor)
    if 2 * count <= n:
        verdicts = {
            iv.src: (_NO_QUORUM,
                     f"no strict majority: at most {count} of {n} trust groups agree")
            for iv in intervals
        }
        return Consensus(False, n, count, split_groups=tuple(split), verdicts=verdicts)

    # Best estimate: inverse-variance mean of the agreeing members, kept inside the region.
    # Summed in order, left to right (as sum() of a list did before Python 3.12).
    sw = swx = 0.0
    for g in names:
        for iv in by_group[g]:
            b = iv.bound_s
            wi = 1.0 / (1e-9 if 1e-9 > b else b) ** 2  # max(b, 1e-9), without the call
            sw += wi
            swx += wi * iv.offset_s
    plain = swx / sw
    plain = lo if plain < lo else (hi if plain > hi else plain)
    if anchor is not None and suspects:
        b = anchor[1] if anchor[1] > ANCHOR_SIGMA_FLOOR_S else ANCHOR_SIGMA_FLOOR_S
        wi = 1.0 / b ** 2
        sw += wi
        swx += wi * anchor[0]
    est = swx / sw
    est = lo if est < lo else (hi if est > hi else est)  # min(max(est, lo), hi)

    verdicts = {}
    agrees = _AGREES.get((count, n))  # one for all sources, and for every vote alike
    if agrees is None:
        agrees = _AGREES[(count, n)] = (_TRUE, f"agrees with {count}/{n} trust groups")
    for iv in intervals:
        iv_lo, iv_hi = iv.offset_s - iv.bound_s, iv.offset_s + iv.bound_s
        if iv_hi < lo or iv_lo > hi:
            dist = iv_lo - hi if iv_lo > hi else lo - iv_hi
            side = "ahead of" if iv_lo > hi else "behind"
            verdicts[iv.src] = (
                _FALSE,
                f"{(iv.offset_s - est) * 1e3:+.3f} ms: {side} the consensus of {count}/{n} groups "
                f"({dist * 1e3:.3f} ms beyond its bound and the consensus region)",
            )
        elif iv.src in suspects:
            verdicts[iv.src] = (_TRUE, f"agrees with {count}/{n} trust groups, but "
                                "is withheld from the consensus while it is caught moving "
                                "(time.step/time.drift)")
        elif require and iv.auth == AUTH_NONE:
            verdicts[iv.src] = (_TRUE, f"agrees with {count}/{n} trust groups; unauthenticated, "
                                "so withheld from the consensus ([vote] auth_mode)")
        else:
            verdicts[iv.src] = agrees
    if nts and auth_mode == "mix":
        auth_side = _auth_split(intervals, names, verdicts)
        if auth_side is not None:
            why = (f"no consensus: the authenticated groups {', '.join(auth_side)} disagree with "
                   f"the unauthenticated majority {', '.join(names)} (consensus.auth_split)")
            return Consensus(False, n, count, split_groups=tuple(split),
                             verdicts={iv.src: (_NO_QUORUM, why) for iv in intervals},
                             withheld=suspects, auth_split=(auth_side, tuple(names)))
    return Consensus(True, n, count, lo, hi, est, tuple(names), tuple(split), verdicts,
                     suspects, plain)


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
    if not any(auth[iv.group] and verdicts[iv.src][0] is _FALSE for iv in intervals):
        return None
    return tuple(groups)
