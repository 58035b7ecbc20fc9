"""`Value`: the engine's one idiom for a small immutable value (estimates, intervals, the
consensus, NTP samples, the holdover's predictions), built several times per observation.

A subclass lists its fields once, in `_fields` (`__slots__ = _fields`), and sets each as a `Final`
attribute in `__init__`: mypy refuses any assignment after `__init__`, the compiled build
refuses it at run time, and neither takes stray attributes. Equality, hash, repr and `replace`
come from `_fields`. Why not a frozen dataclass: mypyc compiles this class into a native struct,
but not a frozen dataclass, whose `__init__` goes through `object.__setattr__` (15x slower to
build, compiled). With Estimate, Interval, Consensus and NtpSample as frozen slotted dataclasses
the replay bench (`python -m bench replay_ntp`) ran 13% slower in pure Python and 41% slower
compiled. The decoder's `Epoch` and the receiver's `GnssState` are Values too (built once per
receiver epoch, and a dataclass's generated `__init__` runs interpreted even compiled); the
GNSS `TimeLabel` is a plain slotted class that a host step moves in place. The configuration
(`params.Detect`) and the leap-seconds list stay frozen dataclasses: built once, they want what
dataclasses give (`fields()`, defaults).

Also `median` and `pstdev`, which the detectors share.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class Value:
    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, k) for k in self._fields))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({inner})"

    def replace(self, **changes: Any) -> Any:
        """A copy with `changes` (dataclasses.replace for these values)."""
        kw = {k: getattr(self, k) for k in self._fields}
        kw.update(changes)
        return type(self)(**kw)


def median(v: list[float]) -> float:
    """`statistics.median(v)`, the same float, without its overhead (detectors take medians of
    a few values on every sample); 1-3 values without a sort (3: the middle element CPython's
    sort puts there)."""
    n = len(v)
    if n == 1:
        return v[0]
    if n == 2:
        return (v[0] + v[1]) / 2
    if n == 3:
        a, b, c = v
        if b < a:
            return b if c < b else c if c < a else a
        return b if not c < b else a if c < a else c
    s = sorted(v)
    i = n // 2
    return s[i] if n % 2 == 1 else (s[i - 1] + s[i]) / 2


# Bits of precision the square root is taken to before its one rounding to a float (as CPython's
# statistics module does: twice a double's mantissa plus 3 guard bits).
_SQRT_BITS = 2 * 53 + 3


def pstdev(v: list[float]) -> float:
    """`statistics.pstdev(v)` for finite floats, the same float (correctly rounded from the exact
    variance), in integers instead of Fractions: C/N0 spreads are taken every second and the
    Fraction arithmetic cost more than the rest of the epoch. Each float is an integer over a
    power of two; over their common denominator d, the variance is (n Q - S^2) / (n d)^2."""
    n = len(v)
    if n < 1:
        raise ValueError("pstdev of no data")
    ratios = [x.as_integer_ratio() for x in v]
    d = max(den for _, den in ratios)
    nums = [num * (d // den) for num, den in ratios]
    s = sum(nums)
    top, bottom = n * sum(x * x for x in nums) - s * s, (n * d) ** 2
    # The correctly rounded sqrt(top / bottom): an integer root to _SQRT_BITS bits, its last bit
    # set when inexact (round to odd), then one division (statistics._float_sqrt_of_frac).
    q = (top.bit_length() - bottom.bit_length() - _SQRT_BITS) // 2
    if q >= 0:
        return float(_isqrt_frac_rto(top, bottom << 2 * q) << q)
    return _isqrt_frac_rto(top << -2 * q, bottom) / (1 << -q)


def _isqrt_frac_rto(n: int, m: int) -> int:
    """isqrt(n / m), rounded to odd."""
    a = math.isqrt(n // m)
    return a | (a * a * m != n)
