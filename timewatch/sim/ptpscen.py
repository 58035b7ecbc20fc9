"""PTP scenarios for `timewatch simulate` (docs/threats.md rows 22-25, docs/ptp.md).

The deployment: the default NTP servers (sim/scenarios.py) plus one PTP source `ptp0` (trust
group `ptp`, polled every second) following grandmaster `001122.fffe.334455`, the only one in its
`grandmasters` allow-list. Its records come from `sim/ptpgen.py` with software-timestamp noise.
The demo cannot play them live: a PTP domain needs ptp4l and a network of its own (root,
network namespaces: tests/ptp does that); replay the trace instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..ptpmgmt import Ptp
from ..records import SourceInfo
from .ptpgen import SW_JITTER_S, PtpGm, PtpPoll
from .scenarios import NS, Params, Scenario, Sim, SimTrace, Truth, _deadline, _p, new_sim

PTP_ID = "ptp0"
GM_ID = "001122.fffe.334455"
ROGUE_ID = "02aabb.fffe.000001"
PTP_DURATION_S = 900.0
# The announce interval of the grandmasters (2 s: logAnnounceInterval 1, the default profile).
ANNOUNCE_S = 2.0
# PTP attacks start after this long: the NTP servers (16-64 s polls) have formed a consensus.
PTP_WARMUP_S = 300
NOT_LIVE = ("a PTP domain needs ptp4l and a network of its own (root, network namespaces); "
            "the trace plays it")


def add_ptp(sim: Sim, gm_at: Callable[[int], PtpGm | None], sid: str = PTP_ID,
            group: str = "ptp", poll_s: float = 1.0,
            grandmasters: tuple[str, ...] | None = (GM_ID,), jitter_s: float = SW_JITTER_S,
            answers: Callable[[int], bool] = lambda t: True) -> None:
    """A PTP source polled every `poll_s` whose ptp4l follows `gm_at(true_ns)` (None: none),
    its timestamps jittering by `jitter_s`; `answers(true_ns)` False: ptp4l is not running."""
    rng = random.Random(f"{sim.seed}|ptp|{sid}")
    poll = PtpPoll(sid, rng, jitter_s=jitter_s)
    phase_s = rng.uniform(0.2, 0.8)
    sim.extra_sources[sid] = SourceInfo("ptp", group, poll_s=poll_s, grandmasters=grandmasters)

    def generate() -> None:
        h = sim.host
        k = 0
        while True:
            t = sim.t0_ns + int((phase_s + k * poll_s) * NS)
            k += 1
            if t >= sim.end_ns:
                return
            rx, raw = h.realtime_ns(t), h.raw_ns(t)
            if not answers(t):
                sim._add(Ptp(sid, rx, "unreachable", "ptp4l (pid 1) exited with code 1; "
                             "restart in 1 s", poll.timestamping, raw_ns=raw), t)
                continue
            sim._add(poll.record(gm_at(t), t, rx, raw, host_error_ns=rx - t), t)

    sim.generators.append(generate)


def _start(sc: Scenario, seed: int, duration_s: float, params: Params) -> tuple[Sim, int]:
    sim = new_sim(sc, seed, duration_s, params)
    return sim, sim.at(0.5, sc.warmup_s)


def _truth(sc: Scenario, sim: Sim, start: int, params: Params) -> Truth:
    return Truth(sc.name, sim.seed, sim.trace_ns(start), _deadline(sim, start, sc.target_s),
                 (PTP_ID,), sc.codes, params=params)


def _ptp_rogue_gm(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """A rogue grandmaster announcing priority1 0 joins the domain and wins the BMCA (ptp4l
    switches after two of its announces); its time is off by a drawn lie."""
    sim, ta = _start(sc, seed, duration_s, params)
    lie = _p(params, "offset_s", lambda: sim.attack_rng.choice((-1, 1))
             * sim.attack_rng.uniform(0.5e-3, 5e-3))
    switch = ta + int(_p(params, "switch_s", lambda: sim.attack_rng.uniform(
        ANNOUNCE_S, 2 * ANNOUNCE_S)) * NS)
    honest = PtpGm(GM_ID)
    rogue = PtpGm(ROGUE_ID, priority1=0, lie_s=lambda t: lie)
    add_ptp(sim, lambda t: rogue if t >= switch else honest)
    sim.note(ta, f"attack ptp_rogue_gm: rogue grandmaster {ROGUE_ID} (priority1 0, "
                 f"{lie * 1e3:+.3f} ms) joins domain 0 of {PTP_ID}")
    return sim.build(_truth(sc, sim, ta, {"offset_s": lie}))


def _ptp_liar(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """The grandmaster itself starts lying: its time steps by 1-5 ms."""
    sim, ta = _start(sc, seed, duration_s, params)
    lie = _p(params, "offset_s", lambda: sim.attack_rng.choice((-1, 1))
             * sim.attack_rng.uniform(1e-3, 5e-3))
    add_ptp(sim, lambda t: PtpGm(GM_ID, lie_s=lambda u: lie if u >= ta else 0.0))
    sim.note(ta, f"attack ptp_liar: grandmaster {GM_ID} of {PTP_ID} lies by {lie * 1e3:+.3f} ms")
    return sim.build(_truth(sc, sim, ta, {"offset_s": lie}))


def _ptp_delay_attack(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """A man in the middle holds back the grandmaster's Sync messages (or our Delay_Req) by
    100 us - 1 ms: the mean path delay and the offset each move by half of it."""
    sim, ta = _start(sc, seed, duration_s, params)
    d = _p(params, "delay_s", lambda: sim.attack_rng.uniform(100e-6, 1e-3))
    leg = _p(params, "leg", lambda: sim.attack_rng.choice(("sync", "delay_req")))
    extra = (d, 0.0) if leg == "sync" else (0.0, d)
    add_ptp(sim, lambda t: PtpGm(GM_ID, extra_delay_s=lambda u: extra if u >= ta
                                 else (0.0, 0.0)))
    sim.note(ta, f"attack ptp_delay_attack: {leg} messages of {PTP_ID} delayed by "
                 f"{d * 1e6:.0f} us")
    return sim.build(_truth(sc, sim, ta, {"delay_s": d, "leg": leg}))


def _ptp_utc_offset(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """The grandmaster announces a wrong UTC offset (36 or 38 s, flagged valid): ptp4l takes
    it, so the time it measures is a whole second off."""
    sim, ta = _start(sc, seed, duration_s, params)
    utc = _p(params, "utc_offset", lambda: sim.attack_rng.choice((36, 38)))
    wrong = PtpGm(GM_ID, utc_offset=utc, lie_s=lambda t: float(37 - utc))
    add_ptp(sim, lambda t: wrong if t >= ta else PtpGm(GM_ID))
    sim.note(ta, f"attack ptp_utc_offset: grandmaster {GM_ID} of {PTP_ID} announces UTC "
                 f"offset {utc} s")
    return sim.build(_truth(sc, sim, ta, {"utc_offset": utc}))


PTP_SCENARIOS: tuple[Scenario, ...] = (
    # Three announce intervals from its first announce.
    Scenario("ptp_rogue_gm", 22, "a rogue PTP grandmaster (priority1 0) takes over the domain",
             PTP_DURATION_S, _ptp_rogue_gm, ("ptp.gm_changed",), target_s=3 * ANNOUNCE_S,
             warmup_s=PTP_WARMUP_S, not_live=NOT_LIVE),
    # ptp_step_confirm (8) samples at 1 s, with margin.
    Scenario("ptp_liar", 23, "the PTP grandmaster's time steps by >= 1 ms", PTP_DURATION_S,
             _ptp_liar, ("time.step", "source.falseticker"), target_s=10.0,
             warmup_s=PTP_WARMUP_S, not_live=NOT_LIVE),
    # ptp4l's path-delay median (10 samples) settles in ~6 s, then 3 confirming samples.
    Scenario("ptp_delay_attack", 24, "PTP Sync or Delay_Req messages delayed by >= 100 us",
             PTP_DURATION_S, _ptp_delay_attack, ("ptp.delay_attack",), target_s=15.0,
             warmup_s=PTP_WARMUP_S, not_live=NOT_LIVE),
    # At once: the next poll after the announce.
    Scenario("ptp_utc_offset", 25, "the PTP grandmaster announces a wrong UTC offset",
             PTP_DURATION_S, _ptp_utc_offset,
             ("ptp.announce_mismatch", "source.falseticker", "time.step"), target_s=2.0,
             warmup_s=PTP_WARMUP_S, not_live=NOT_LIVE),
)
