"""Judge the engine's events against a simulated trace's ground truth (the threat battery, bench).

`judge(sim_trace)` replays the trace through a fresh engine and says whether the attack was
detected in time, by which alert, and which alerts accused someone they should not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine
from ..engine.params import Detect
from ..records import Event
from .scenarios import SimTrace, Truth


@dataclass
class Verdict:
    scenario: str
    seed: int
    detected: bool  # every culprit named in time (True when nothing was to be detected)
    time_to_detect_s: float | None  # from the start of the attack to the last culprit named
    target_s: float | None
    false_alerts: list[Event] = field(default_factory=list)  # alerts nobody asked for
    events: list[Event] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # culprits not named in time

    @property
    def ok(self) -> bool:
        return self.detected and not self.false_alerts

    def describe(self) -> str:
        lines = [f"{self.scenario} seed {self.seed}: detected={self.detected} "
                 f"ttd={self.time_to_detect_s} target={self.target_s} missed={self.missed}"]
        for e in self.false_alerts:
            lines.append(f"  FALSE {e.code} {list(e.sources)} at {e.t_ns}: {e.message}")
        for e in self.events:
            lines.append(f"  {e.type} {e.code} {list(e.sources)} t={e.t_ns}")
        return "\n".join(lines)


def replay_events(st: SimTrace, detect: Detect | None = None, leap_list: Any = None) -> list[Event]:
    eng = Engine(st.header, detect, leap_list=leap_list)
    out: list[Event] = []
    for o in st.observations:
        out.extend(r for r in eng.feed(o) if isinstance(r, Event))
    out.extend(eng.finish())
    return out


def _acceptable(e: Event, t: Truth) -> bool:
    srcs = set(e.sources)
    if e.code in t.allowed and srcs <= set(t.allowed[e.code]):
        return True
    if e.code in t.detect_codes and not t.culprits and not srcs:
        return True
    return bool(srcs) and srcs <= set(t.culprits) and e.code not in t.forbidden


def judge(st: SimTrace, detect: Detect | None = None, leap_list: Any = None) -> Verdict:
    t = st.truth
    events = replay_events(st, detect, leap_list)
    alerts = [e for e in events if e.type == "alert"]
    false = [e for e in alerts if not _acceptable(e, t)]
    detected = True
    ttd: float | None = None
    missed: list[str] = []
    if t.start_ns is not None and t.deadline_ns is not None and t.detect_codes:
        hits = [e for e in alerts if e.code in t.detect_codes and e.t_ns >= t.start_ns]
        needed = list(t.culprits) or [""]
        last = t.start_ns
        for c in needed:
            first = next((e for e in hits if (c in e.sources if c else True)), None)
            if first is None or first.t_ns > t.deadline_ns:
                missed.append(c or "(host-wide)")
            else:
                last = max(last, first.t_ns)
        detected = not missed
        ttd = (last - t.start_ns) / 1e9 if detected else None
    return Verdict(t.scenario, t.seed, detected, ttd, t.target_s, false, events, missed)
