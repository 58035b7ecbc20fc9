"""The vote: trust groups, interval intersection, verdicts with reasons.

As chrony's source selection and ntpd's intersection algorithm, over *trust groups*: sources that
share a failure mode (one operator, one upstream, one antenna) count as one vote.

1. Each usable source is an interval, offset +- bound (offset = source time - host realtime).
2. A group votes with the intersection of its members' intervals. When its members disagree (empty
   intersection) the group does not vote; each member is judged against the other groups.
3. Marzullo's algorithm over the group intervals finds the region where most groups overlap. It is
   the consensus only when a strict majority of voting groups overlap there.
4. A source whose interval overlaps the consensus region is a truechimer, otherwise a falseticker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    """Every state a source can be in, each with its one-line meaning (chrony's SRC_Status)."""

    INIT = "init"  # no usable sample yet
    TRUECHIMER = "truechimer"  # agrees with the majority of trust groups
    FALSETICKER = "falseticker"  # doesn't agree with the majority of trust groups
    UNUSABLE = "unusable"  # answers, but its data cannot be used (unsynchronised, no fix...)
    STALE = "stale"  # no usable data for its stale limit
    NO_QUORUM = "no_quorum"  # usable, but no strict majority of groups exists to judge it


@dataclass(frozen=True, slots=True)
class Interval:
    src: str
    group: str
    offset_s: float
    bound_s: float

    @property
    def lo(self) -> float:
        return self.offset_s - self.bound_s

    @property
    def hi(self) -> float:
        return self.offset_s + self.bound_s


@dataclass(frozen=True, slots=True)
class Consensus:
    quorum: bool
    groups_voting: int
    groups_agreeing: int
    lo_s: float | None = None  # consensus region (None without quorum)
    hi_s: float | None = None
    offset_s: float | None = None  # best estimate inside the region
    agreeing_groups: tuple[str, ...] = ()
    split_groups: tuple[str, ...] = ()  # groups whose members disagree with each other
    verdicts: dict[str, tuple[Verdict, str]] = field(default_factory=dict)

    @property
    def bound_s(self) -> float | None:
        if self.lo_s is None or self.hi_s is None:
            return None
        return (self.hi_s - self.lo_s) / 2


def _marzullo(ivs: list[tuple[float, float, str]]) -> tuple[int, float, float, list[str]]:
    """Largest number of intervals sharing a point; (count, lo, hi, names) of the consensus region.

    When several disjoint regions reach that count, the intervals cannot tell which is right:
    keep the regions holding the most interval midpoints (the evidence ntpd's intersection
    algorithm weighs: honest offsets sit near the truth, a liar's overlap with wide honest
    intervals sits at their edge), and span the ones still tied (chrony sources.c: from the
    first deepest point to the last), so no interval is named false by an arbitrary pick.
    `names`: the intervals that overlap the region.
    """
    edges: list[tuple[float, int]] = []
    for lo, hi, _ in ivs:
        edges.append((lo, -1))  # -1 sorts starts before ends at one point: touching overlaps
        edges.append((hi, +1))
    edges.sort()
    best, cnt = 0, 0
    regions: list[list[float]] = []  # [lo, hi] of each region of the deepest count
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
    best_lo, best_hi = regions[0][0], regions[-1][1]
    names = sorted(name for lo, hi, name in ivs if lo <= best_hi and hi >= best_lo)
    return best, best_lo, best_hi, names


def vote(intervals: list[Interval]) -> Consensus:
    """Judge every usable source. Pure: the same intervals always give the same consensus."""
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
        verdicts = {
            iv.src: (Verdict.NO_QUORUM,
                     f"no strict majority: at most {count} of {n} trust groups agree")
            for iv in intervals
        }
        return Consensus(False, n, count, split_groups=tuple(split), verdicts=verdicts)

    # Best estimate: inverse-variance mean of the agreeing members, kept inside the region.
    agreeing = [iv for g in names for iv in by_group[g]]
    w = [1.0 / max(iv.bound_s, 1e-9) ** 2 for iv in agreeing]
    est = sum(wi * iv.offset_s for wi, iv in zip(w, agreeing, strict=True)) / sum(w)
    est = min(max(est, lo), hi)

    verdicts = {}
    for iv in intervals:
        if iv.hi < lo or iv.lo > hi:
            side = "ahead of" if iv.lo > hi else "behind"
            dist = iv.lo - hi if iv.lo > hi else lo - iv.hi
            verdicts[iv.src] = (
                Verdict.FALSETICKER,
                f"{dist * 1e3:.3f} ms {side} the consensus of {count}/{n} groups beyond its bound",
            )
        else:
            verdicts[iv.src] = (Verdict.TRUECHIMER, f"agrees with {count}/{n} trust groups")
    return Consensus(True, n, count, lo, hi, est, tuple(names), tuple(split), verdicts)
