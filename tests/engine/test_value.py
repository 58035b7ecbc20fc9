"""The engine's small values (engine/value.py): equality, repr, replace, and immutability, which
mypy enforces through `Final` (a compiled build also refuses the assignment at run time)."""

from __future__ import annotations

import statistics

import mypy.api
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.engine.core import Estimate
from timewatch.engine.holdover import Residual
from timewatch.engine.ntp import NtpSample
from timewatch.engine.value import pstdev
from timewatch.engine.vote import Consensus, Interval, Verdict


def test_equality_repr_and_replace_follow_the_fields() -> None:
    e = Estimate(0.001, 0.02, 5)
    assert e == Estimate(0.001, 0.02, 5) and e != Estimate(0.001, 0.02, 6)
    assert e != (0.001, 0.02, 5)  # a value, not a tuple
    assert repr(e) == "Estimate(offset_s=0.001, bound_s=0.02, t_ns=5)"
    assert e.replace(t_ns=7) == Estimate(0.001, 0.02, 7) and e.t_ns == 5
    assert hash(e) == hash(Estimate(0.001, 0.02, 5))
    c = Consensus(True, 3, 3, -0.001, 0.001, 0.0, ("a",), (), {"x": (Verdict.TRUECHIMER, "ok")})
    assert c.bound_s == 0.001 and c != Consensus(True, 3, 3)
    assert Consensus(False, 0, 0).verdicts == {}
    iv = Interval("a", "g", 0.5, 0.25)
    assert (iv.lo, iv.hi) == (0.25, 0.75)


def test_mypy_refuses_assignment_to_a_value() -> None:
    snippet = (
        "from timewatch.engine.core import Estimate\n"
        "from timewatch.engine.ntp import NtpSample\n"
        "from timewatch.engine.vote import Consensus, Interval\n"
        "from timewatch.engine.holdover import Residual\n"
        "def f(e: Estimate, s: NtpSample, c: Consensus, i: Interval, r: Residual) -> None:\n"
        "    e.offset_s = 1.0\n"
        "    s.delay_s = 1.0\n"
        "    c.quorum = False\n"
        "    i.bound_s = 0.0\n"
        "    r.sigma_s = 0.0\n"
    )
    out, _, status = mypy.api.run(["--no-incremental", "-c", snippet])
    assert status == 1, out
    assert out.count("Cannot assign to final attribute") == 5, out


def test_values_take_no_stray_attributes() -> None:
    e = Estimate(0.0, 0.0, 0)
    with pytest.raises(AttributeError):
        e.other = 1  # type: ignore[attr-defined]
    s = NtpSample(0, 0.0, 0.0, 0.0, 0, 2, "x", 0.0, 0.0)
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]
    r = Residual(0.0, 1e-6, 1e-9)
    with pytest.raises(AttributeError):
        r.extra = 1  # type: ignore[attr-defined]
    assert r == Residual(0.0, 1e-6, 1e-9)


@settings(max_examples=400, derandomize=True)
@given(st.lists(st.one_of(st.integers(0, 99).map(float),
                          st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                          st.floats(allow_nan=False, allow_infinity=False, width=32)),
                min_size=1, max_size=40))
def test_pstdev_is_statistics_pstdev_to_the_bit(xs: list[float]) -> None:
    assert pstdev(xs) == statistics.pstdev(xs)
