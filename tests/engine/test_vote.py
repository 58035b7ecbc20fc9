"""engine/vote.py: trust groups, interval intersection (Marzullo), verdicts with reasons."""

from __future__ import annotations

import random

from timewatch.engine.vote import Interval, Verdict, vote


def iv(src: str, offset_ms: float, bound_ms: float, group: str | None = None) -> Interval:
    return Interval(src, group or src, offset_ms / 1e3, bound_ms / 1e3)


def verdicts(c: object) -> dict[str, Verdict]:
    return {s: v for s, (v, _) in c.verdicts.items()}  # type: ignore[attr-defined]


def test_three_groups_agree_one_liar_is_falseticker_with_reason() -> None:
    c = vote([iv("a", 0.1, 2), iv("b", -0.3, 3), iv("c", 0.5, 1), iv("liar", 60, 5)])
    assert c.quorum and c.groups_voting == 4 and c.groups_agreeing == 3
    assert verdicts(c) == {"a": Verdict.TRUECHIMER, "b": Verdict.TRUECHIMER,
                           "c": Verdict.TRUECHIMER, "liar": Verdict.FALSETICKER}
    reason = c.verdicts["liar"][1]
    assert "ahead of" in reason and "3/4" in reason
    # The region is the intersection of the three honest intervals.
    assert c.lo_s is not None and c.hi_s is not None
    assert abs(c.lo_s - (-0.0005)) < 1e-12 and abs(c.hi_s - 0.0015) < 1e-12
    assert c.offset_s is not None and c.lo_s <= c.offset_s <= c.hi_s


def test_liar_behind_is_named_behind() -> None:
    c = vote([iv("a", 0, 1), iv("b", 0, 1), iv("c", -80, 2)])
    assert c.verdicts["c"][0] == Verdict.FALSETICKER and "behind" in c.verdicts["c"][1]


def test_group_votes_once_however_many_members() -> None:
    # Five members of one group lying together against two honest groups: still one vote.
    ivs = [iv(f"x{i}", 100 + i * 0.1, 2, "op-x") for i in range(5)]
    ivs += [iv("b", 0, 2), iv("c", 0.5, 2)]
    c = vote(ivs)
    assert c.groups_voting == 3 and c.groups_agreeing == 2 and c.quorum
    assert c.agreeing_groups == ("b", "c")
    assert all(verdicts(c)[f"x{i}"] == Verdict.FALSETICKER for i in range(5))
    assert verdicts(c)["b"] == verdicts(c)["c"] == Verdict.TRUECHIMER


def test_split_group_does_not_vote_and_members_are_judged_alone() -> None:
    # Group op-a: one honest member, one liar: their intervals do not meet, the group is split.
    c = vote([iv("a1", 0, 1, "op-a"), iv("a2", 50, 1, "op-a"), iv("b", 0.2, 1), iv("c", -0.2, 1)])
    assert c.split_groups == ("op-a",)
    assert c.groups_voting == 2 and c.groups_agreeing == 2 and c.quorum
    assert verdicts(c) == {"a1": Verdict.TRUECHIMER, "a2": Verdict.FALSETICKER,
                           "b": Verdict.TRUECHIMER, "c": Verdict.TRUECHIMER}


def test_group_votes_with_intersection_of_its_members() -> None:
    # op-a's members overlap only on [0.5, 1] ms; c overlaps op-a's members one by one but not
    # that intersection, so op-a and c do not agree.
    c = vote([iv("a1", 0, 1, "op-a"), iv("a2", 1.5, 1, "op-a"), iv("c", -1.5, 1.2)])
    assert c.groups_voting == 2 and c.groups_agreeing == 1 and not c.quorum


def test_strict_majority_needed_two_of_four_is_no_quorum() -> None:
    c = vote([iv("a", 0, 1), iv("b", 0, 1), iv("c", 50, 1), iv("d", 50, 1)])
    assert not c.quorum and c.groups_voting == 4 and c.groups_agreeing == 2
    assert set(verdicts(c).values()) == {Verdict.NO_QUORUM}
    assert c.lo_s is None and c.offset_s is None and c.bound_s is None


def test_three_of_five_is_a_strict_majority() -> None:
    c = vote([iv("a", 0, 1), iv("b", 0, 1), iv("c", 0, 1), iv("d", 50, 1), iv("e", -50, 1)])
    assert c.quorum and c.groups_agreeing == 3
    assert verdicts(c)["d"] == verdicts(c)["e"] == Verdict.FALSETICKER


def test_three_groups_disagreeing_is_no_quorum() -> None:
    c = vote([iv("a", -100, 1), iv("b", 0, 1), iv("c", 100, 1)])
    assert not c.quorum and c.groups_agreeing == 1 and c.groups_voting == 3
    assert "at most 1 of 3" in c.verdicts["a"][1]


def test_tie_between_two_majority_regions_names_nobody() -> None:
    # g1 is wide and meets g2 near 0 and g3 near 10 ms: each pair is a 2/3 majority. Nothing
    # tells which pair is right, so the consensus spans both (chrony) and nobody is false.
    c = vote([iv("g1", 5, 5), iv("g2", 0.5, 0.5), iv("g3", 9.5, 0.5)])
    assert c.quorum and c.groups_agreeing == 2
    assert set(verdicts(c).values()) == {Verdict.TRUECHIMER}
    assert c.lo_s == 0.0 and c.hi_s is not None and abs(c.hi_s - 0.010) < 1e-12
    # The same intervals in another order give the same consensus.
    c2 = vote([iv("g3", 9.5, 0.5), iv("g1", 5, 5), iv("g2", 0.5, 0.5)])
    assert (c2.lo_s, c2.hi_s, c2.offset_s, c2.verdicts) == (c.lo_s, c.hi_s, c.offset_s, c.verdicts)


def test_touching_intervals_overlap() -> None:
    # [-1, 1] ms and [1, 3] ms share the point 1 ms: they agree, the region is that point.
    c = vote([iv("a", 0, 1), iv("b", 2, 1), iv("c", 40, 1)])
    assert c.quorum and c.groups_agreeing == 2
    assert c.lo_s == c.hi_s and c.lo_s is not None and abs(c.lo_s - 0.001) < 1e-12
    assert verdicts(c)["a"] == verdicts(c)["b"] == Verdict.TRUECHIMER
    assert verdicts(c)["c"] == Verdict.FALSETICKER


def test_interval_just_outside_is_falseticker() -> None:
    c = vote([iv("a", 0, 1), iv("b", 0, 1), iv("c", 2.000001, 1)])
    assert verdicts(c)["c"] == Verdict.FALSETICKER


def test_no_groups_at_all() -> None:
    c = vote([iv("a1", 0, 1, "op-a"), iv("a2", 50, 1, "op-a")])
    assert not c.quorum and c.groups_voting == 0 and c.split_groups == ("op-a",)
    assert set(verdicts(c).values()) == {Verdict.NO_QUORUM}
    assert vote([]).groups_voting == 0


def test_single_group_is_its_own_majority() -> None:
    c = vote([iv("a", 3, 1)])
    assert c.quorum and c.groups_voting == 1 and c.offset_s == 0.003


def test_consensus_estimate_favours_tighter_intervals_and_stays_in_region() -> None:
    c = vote([iv("a", 0.0, 0.1), iv("b", 0.9, 10), iv("c", -0.5, 10)])
    assert c.offset_s is not None and abs(c.offset_s) < 0.0001
    assert c.lo_s is not None and c.hi_s is not None and c.lo_s <= c.offset_s <= c.hi_s


def test_vote_is_independent_of_input_order() -> None:
    rng = random.Random(7)
    ivs = [iv(f"s{i}", rng.uniform(-3, 3), rng.uniform(0.5, 4), f"g{i % 4}") for i in range(9)]
    ivs.append(iv("liar", 70, 2, "g1"))
    first = vote(ivs)
    for _ in range(20):
        rng.shuffle(ivs)
        c = vote(ivs)
        assert (c.quorum, c.lo_s, c.hi_s, c.groups_agreeing, c.split_groups) == \
            (first.quorum, first.lo_s, first.hi_s, first.groups_agreeing, first.split_groups)
        assert c.verdicts == first.verdicts
        assert c.offset_s is not None and first.offset_s is not None
        assert abs(c.offset_s - first.offset_s) < 1e-15


def test_suspects_are_judged_but_withheld_from_the_consensus() -> None:
    # pps0 is precise and 40 us off, inside the NTP intervals: it would pin the consensus.
    ivs = [Interval("a", "a", 0.0, 0.002), Interval("b", "b", 0.0001, 0.002),
           Interval("c", "c", -0.0001, 0.002), Interval("pps0", "gnss", 0.00004, 0.000002)]
    pinned = vote(ivs)
    assert pinned.offset_s is not None and abs(pinned.offset_s - 0.00004) < 1e-6
    c = vote(ivs, frozenset({"pps0"}))
    assert c.quorum and c.groups_voting == 3 and "gnss" not in c.agreeing_groups
    assert c.offset_s is not None and abs(c.offset_s) < 0.0001 and c.lo_s is not None
    assert c.lo_s < -0.001  # the NTP region, not pps0's 2 us
    verdict, reason = c.verdicts["pps0"]
    assert verdict == Verdict.TRUECHIMER and "withheld" in reason
    # A suspect outside the region is a falseticker like anyone else.
    far = [*ivs[:3], Interval("pps0", "gnss", 0.01, 0.000002)]
    assert vote(far, frozenset({"pps0"})).verdicts["pps0"][0] == Verdict.FALSETICKER
    # Everyone suspect: nobody can vote.
    assert not vote(ivs, frozenset({"a", "b", "c", "pps0"})).quorum


# Issue 14: one trust group of four servers lying together by 6 ms inside their bounds; its
# intersection (2.4 +- 2.2 ms, its tightest member) excludes the truth. Two wide honest groups
# overlap both it and the PPS: two regions of three groups each, both within 4 sigmas of the
# holdover's prediction (0.150 +- 0.028 ms), the group's holding more midpoints.
GROUP_LIE = [iv("x1", 2.4177, 2.1793, "op-x"), iv("x2", 5.0829, 8.3772, "op-x"),
             iv("x3", 1.1065, 42.1223, "op-x"), iv("x4", 0.058, 32.1706, "op-x"),
             iv("d", 1.646, 24.5872), iv("e", -1.2394, 22.5895),
             iv("gnss0", 2.473, 14.0884, "gnss"), iv("pps0", 0.1397, 0.0073, "gnss")]


def test_the_region_closest_to_the_holdover_prediction_wins_a_tie() -> None:
    c = vote(GROUP_LIE, anchor=(0.150e-3, 0.0285e-3))
    v = verdicts(c)
    assert v["pps0"] == Verdict.TRUECHIMER and c.agreeing_groups == ("d", "e", "gnss")
    assert v["x1"] == Verdict.FALSETICKER  # the group's tight member is what lies
    assert c.lo_s is not None and c.lo_s <= 0.150e-3 + 4 * 0.0285e-3
    # Without the witness the midpoints decide, for the group's region: the PPS was named.
    assert verdicts(vote(GROUP_LIE))["pps0"] == Verdict.FALSETICKER
