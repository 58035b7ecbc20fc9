"""`Value`: the base of the engine's small immutable values (estimates, intervals, samples, the
consensus), which are built several times per observation.

A plain class with `__slots__` and `Final` attributes is the cheapest to build in CPython (about
240 ns against 430 for a NamedTuple and 630 for a frozen dataclass), and the one that mypyc
compiles into a native struct (36 ns; tools/build_compiled.py). `Final` makes mypy refuse any
assignment after `__init__`, so the values stay as immutable as a frozen dataclass in practice.
Subclasses list their fields in `_fields`; equality and repr come from it.

Also `median`, which the detectors share.
"""

from __future__ import annotations

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
