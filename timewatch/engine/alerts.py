"""Alert state machine: raise once, clear after a hold-down, carry the evidence.

Detectors do not emit events themselves. Each evaluation they either `assert_` a condition (it
holds now, with its evidence) or `release` it (it does not hold now). This module turns that
stream into alert/clear events: an active condition is alerted once, and it clears only after it
has stayed released for its hold-down time (docs/events.md: no flapping).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from ..records import SEVERITY_RANK, Event

# A condition must stay released this long before it clears (unless the detector says otherwise):
# long enough to outlast one noisy poll of a 64 s NTP source, short enough for an operator.
DEFAULT_HOLD_DOWN_S: Final = 120.0


@dataclass
class _Active:
    id: str
    code: str
    sources: tuple[str, ...]
    severity: str
    raised_ns: int
    released_since_ns: int | None = None
    hold_down_s: float = DEFAULT_HOLD_DOWN_S
    evidence: dict[str, Any] = field(default_factory=dict)


def _round_floats(v: Any) -> Any:
    """Evidence numbers are rounded to 9 significant digits: readable, and stable in replays."""
    if isinstance(v, float):
        return float(f"{v:.9g}")
    if isinstance(v, dict):
        return {k: _round_floats(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_round_floats(x) for x in v]
    return v


class Alerts:
    """Holds every active condition, keyed by (code, key); collects the events to emit."""

    def __init__(self, severity_overrides: dict[str, str] | None = None):
        self._active: dict[tuple[str, str], _Active] = {}
        # Active alerts per code: `release` of a code with none active returns at once (most
        # conditions are not active; callers on hot paths release without testing first).
        self.active_codes: dict[str, int] = {}
        self._pending: list[Event] = []
        self._severity = severity_overrides or {}

    # -- what detectors call ---------------------------------------------------------------
    def assert_(self, code: str, t_ns: int, sources: tuple[str, ...] | list[str], message: str,
                evidence: dict[str, Any], severity: str = "warning", key: str | None = None,
                hold_down_s: float = DEFAULT_HOLD_DOWN_S) -> bool:
        """The condition holds now. Raises an alert unless it is already active; True if raised.

        `key` tells apart two instances of one code (default: the sources). An active alert whose
        severity rises (warning -> critical) is not raised again; its evidence is updated.
        """
        srcs = tuple(sources)
        k = (code, key if key is not None else ",".join(srcs))
        a = self._active.get(k)
        if a is not None:
            a.released_since_ns = None
            a.evidence = evidence
            return False
        sev = self._severity.get(code, severity)
        aid = hashlib.blake2s(f"{code}|{k[1]}|{t_ns}".encode(), digest_size=4).hexdigest()
        self._active[k] = _Active(aid, code, srcs, sev, t_ns, None, hold_down_s, evidence)
        self.active_codes[code] = self.active_codes.get(code, 0) + 1
        self._pending.append(Event("alert", t_ns, code, srcs, aid, sev, message,
                                   _round_floats(evidence)))
        return True

    def release(self, code: str, t_ns: int, key: str) -> None:
        """The condition does not hold now. It clears once it has stayed so for its hold-down."""
        if code not in self.active_codes:
            return
        a = self._active.get((code, key))
        if a is None:
            return
        if a.released_since_ns is None:
            a.released_since_ns = t_ns
        self._maybe_clear((code, key), a, t_ns)

    def release_sources(self, code: str, t_ns: int, sources: tuple[str, ...] | list[str]) -> None:
        self.release(code, t_ns, ",".join(sources))

    def is_active(self, code: str, key: str) -> bool:
        return (code, key) in self._active

    def names(self, src: str) -> bool:
        """An active alert names source `src`."""
        return any(src in a.sources for a in self._active.values())

    def active(self) -> list[tuple[str, str, tuple[str, ...], str]]:
        """(code, id, sources, severity) of every active alert, in the order they were raised."""
        return [(a.code, a.id, a.sources, a.severity) for a in self._active.values()]

    # -- what the engine calls -------------------------------------------------------------
    def has_active(self) -> bool:
        return bool(self._active)

    def has_pending(self) -> bool:
        """Events wait to be drained (the engine skips the drain, a new list, otherwise)."""
        return bool(self._pending)

    def tick(self, t_ns: int) -> None:
        """Clear the conditions whose hold-down has run out by t_ns."""
        for k, a in list(self._active.items()):
            self._maybe_clear(k, a, t_ns)

    def drain(self) -> list[Event]:
        out, self._pending = self._pending, []
        return out

    def _maybe_clear(self, k: tuple[str, str], a: _Active, t_ns: int) -> None:
        if a.released_since_ns is not None and t_ns - a.released_since_ns >= a.hold_down_s * 1e9:
            del self._active[k]
            left = self.active_codes[a.code] - 1
            if left:
                self.active_codes[a.code] = left
            else:
                del self.active_codes[a.code]
            self._pending.append(Event("clear", t_ns, a.code, a.sources, a.id))


def worst(severities: list[str]) -> str:
    return max(severities, key=lambda s: SEVERITY_RANK.get(s, 0)) if severities else "info"
