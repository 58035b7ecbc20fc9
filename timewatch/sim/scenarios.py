"""The scenario catalogue: synthetic observation traces of the threat table's attacks and of the
legitimate faults that must not alarm, and how the demo plays each live.

Each scenario is declared once, in `SCENARIOS`: its number in the threat table, its trace builder,
the alert codes that count as detecting it and its target (seconds, or polls of the attacked
servers), the warm-up before its attack starts, its default duration, and its live action for
`timewatch demo --scenario` (or why it cannot be played live). `timewatch simulate` writes the
traces; `sim.demo` reads the live part.

A trace is a deployment (the header's sources and trust groups), the noise of `sim.noise` (always
on), and a scripted attack or legitimate fault starting at a known moment. `build()` returns the
observations with the ground truth (who is attacked, from when, which alert codes count as
detection, by when), so the threat battery and the bench judge the engine against it; `write`
makes it a trace file. A `note` record marks the attack in the trace.

Determinism: every random number comes from `random.Random` seeded with the seed and a fixed
label per component; nothing reads a clock; records are ordered by (hand-over time, sequence).
The live actions (`sim.world`) run only in the demo, against real time.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..records import Header, Nmea, Note, Ntp, Observation, SourceInfo, Tick
from ..trace import TraceWriter
from .nmeagen import NmeaSim, uniform_cn0
from .noise import NS, HostClock, NtpPath, handover_delay_ns
from .pps import PpsSim
from .world import Action, World, behave, from_now, now_ns, receiver_fault

# 2025-11-26T12:00:00Z: the spec's example traces live around here (docs/trace-format.md header).
DEFAULT_T0_NS = 1_764_158_400 * NS
# 2016-12-31T22:00:00Z: two hours before the last real leap second (IERS Bulletin C 52).
LEAP_2016_T0_NS = 1_483_221_600 * NS
# Seconds from 1900 (NTP era 0) to 1970 (RFC 5905).
NTP_UNIX_OFFSET_S = 2_208_988_800
# The client gives up on a reply after this long (chrony's default maximum is 2 s... the spec's
# example timeout record is 2 s after t1).
TIMEOUT_S = 2.0
# Polls are 16-64 s in the default deployment (docs/threats.md).
POLLS_S = (16, 32, 64)
# The NTP scenarios' learning before their attack or fault starts, in true seconds from the
# trace's start (`Sim.at`: later when the scenario starts it a fraction into a long run,
# half-way into a run too short for it).
NTP_WARMUP_S = 600
# Polls start up to 0.2 s late (the client's timer jitter).
POLL_JITTER_S = 0.2
# Slack on every deadline: one exchange's round trip and the hand-over delay.
DEADLINE_SLACK_S = 1.0
# 2026-12-01T00:00:00Z: GNSS scenarios run after the engine's floor for receiver dates
# (gnss_not_before_unix_s = 2026-11-01, the build date): an earlier receiver date is wrong.
GNSS_T0_NS = 1_796_083_200 * NS
GNSS_ID, PPS_ID = "gnss0", "pps0"
# The antenna's surveyed position, configured for gnss0 (NmeaSim's default: Paris).
ANTENNA = (48.8566, 2.3522, 35.0)
# The receiver's sentences each second: RMC dates the label, GGA and GSA the fix, GSV the C/N0.
GNSS_SENTENCES = ("RMC", "GGA", "GSA", "GSV")


class ScenarioUnavailable(RuntimeError):
    """The scenario needs a generator that is not in this tree yet."""


@dataclass(frozen=True)
class Truth:
    """What happened in a simulated trace, for judging the engine.

    Detection: for every culprit, an alert with one of `detect_codes` naming it (or, with no
    culprits, any alert with one of `detect_codes`) between `start_ns` and `deadline_ns`.
    No false accusation: every alert names only culprits (and not with a `forbidden` code), or is
    in `allowed` (code -> the sources it may name; () for host-wide).
    """

    scenario: str
    seed: int
    start_ns: int | None = None
    deadline_ns: int | None = None
    culprits: tuple[str, ...] = ()
    detect_codes: tuple[str, ...] = ()
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    forbidden: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def target_s(self) -> float | None:
        if self.start_ns is None or self.deadline_ns is None:
            return None
        return (self.deadline_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class SimTrace:
    header: Header
    observations: list[Observation]
    truth: Truth


# -- NTP servers ---------------------------------------------------------------------------------


def _ntp64(ns: int) -> int:
    sec, rem = divmod(ns, NS)
    return (((sec + NTP_UNIX_OFFSET_S) % (1 << 32)) << 32) | ((rem << 32) // NS)


def _from_ntp64(v: int) -> int:
    return ((v >> 32) - NTP_UNIX_OFFSET_S) * NS + (((v & 0xFFFFFFFF) * NS + (1 << 31)) >> 32)


def _exact(ns: int) -> int:
    """The ns value that survives the NTP 64-bit timestamp round trip (the packet agrees)."""
    return _from_ntp64(_ntp64(ns))


def _refid_bytes(refid: str, stratum: int) -> bytes:
    if stratum >= 2:
        return bytes(int(p) for p in refid.split("."))
    return refid.encode("ascii")[:4].ljust(4, b"\0")


@dataclass
class NtpServer:
    """One simulated server: its path, its identity, and what it does to the time."""

    sid: str
    group: str
    poll_s: int
    path: NtpPath
    rng: random.Random
    phase_s: float
    stratum: int
    refid: str
    root_delay_s: float
    root_dispersion_s: float
    precision: int
    # Attacks and faults, functions of true time (ns): the server clock's error beyond its own
    # small error (s), an extra delay on each leg (s), the leap indicator, kiss code, silence,
    # spoofed replies injected before the real one.
    lie_s: Callable[[int], float] = lambda t: 0.0
    extra_delay_s: Callable[[int], tuple[float, float]] = lambda t: (0.0, 0.0)
    leap: Callable[[int], int] = lambda t: 0
    kiss: Callable[[int], str | None] = lambda t: None
    silent: Callable[[int], bool] = lambda t: False
    spoof: Callable[[int], bool] = lambda t: False

    def info(self) -> SourceInfo:
        return SourceInfo(kind="ntp", group=self.group, server=f"{self.sid}.sim.example",
                          poll_s=float(self.poll_s))

    def bound_s(self) -> float:
        """The error bound of a typical sample (delay/2 + root delay/2 + root dispersion)."""
        return ((self.path.base_out_s + self.path.base_back_s) / 2 + self.root_delay_s / 2
                + self.root_dispersion_s)


def _make_servers(rng: random.Random, layout: list[tuple[str, str]], seed: int) -> list[NtpServer]:
    out = []
    for i, (sid, group) in enumerate(layout):
        srng = random.Random(f"{seed}|ntp|{sid}")
        stratum = 1 if rng.random() < 0.5 else 2
        out.append(NtpServer(
            sid=sid, group=group, poll_s=rng.choice(POLLS_S), path=NtpPath(srng), rng=srng,
            phase_s=rng.uniform(0.0, 16.0), stratum=stratum,
            refid=("GPS" if stratum == 1 else f"192.0.2.{10 + i}"),
            # A stratum-1 server's root delay is ~0; stratum 2 adds its own upstream's path.
            root_delay_s=(0.0 if stratum == 1 else rng.uniform(0.001, 0.020)),
            root_dispersion_s=rng.uniform(0.0001, 0.001),
            precision=rng.choice((-20, -23, -25))))
    return out


# Default NTP deployment: five servers of four operators (op-a runs two), docs/threats.md "4+ servers
# of >= 3 operators".
NTP_LAYOUT = [("ntp-a", "op-a"), ("ntp-b", "op-b"), ("ntp-c", "op-c"), ("ntp-d", "op-d"),
              ("ntp-e", "op-a")]


@dataclass
class Receiver:
    """The GNSS receiver and its PPS output, scripted through their fault functions."""

    nmea: NmeaSim
    pps: PpsSim
    position: tuple[float, float, float] | None  # configured antenna position (None: survey)
    # Called with each UTC second before its edges and sentences (to change NmeaSim's rates).
    each_second: Callable[[int], None] | None = None

    def time_error(self, fn: Callable[[int], int]) -> None:
        """The receiver's time error (ns) per UTC second: labels and pulses move together."""
        self.nmea.gnss_error_ns = fn
        self.pps.gnss_error_ns = fn

    def sources(self) -> dict[str, SourceInfo]:
        return {GNSS_ID: SourceInfo("gnss", "gnss", position=self.position),
                PPS_ID: SourceInfo("pps", "gnss", label_from=GNSS_ID)}


# The host's oscillator (every scenario's `oscillator` parameter): the board's crystal, or an
# oven-controlled oscillator (sim/noise.py `HostClock.ocxo`).
OSCILLATORS = ("crystal", "ocxo")


class Sim:
    """Builds one trace: host clock, ticks, NTP exchanges, the GNSS receiver with its PPS (when
    `add_receiver` was called), hand-over order."""

    def __init__(self, name: str, seed: int, duration_s: float, t0_ns: int = DEFAULT_T0_NS,
                 layout: list[tuple[str, str]] | None = None, oscillator: str = "crystal"):
        self.name, self.seed = name, seed
        self.t0_ns = t0_ns
        self.end_ns = t0_ns + int(duration_s * NS)
        self.host = HostClock(random.Random(f"{seed}|host"), t0_ns)
        if oscillator not in OSCILLATORS:
            raise ValueError(f"oscillator {oscillator!r}: one of {', '.join(OSCILLATORS)}")
        if oscillator == "ocxo":
            self.host.ocxo()
        self.deploy_rng = random.Random(f"{seed}|deploy")
        self.attack_rng = random.Random(f"{seed}|attack|{name}")
        self.handover_rng = random.Random(f"{seed}|handover")
        self.servers = _make_servers(self.deploy_rng, layout or NTP_LAYOUT, seed)
        self.notes: list[tuple[int, str]] = []
        self.answered: dict[str, list[int]] = {}  # per server: true times of its replies
        self.receiver: Receiver | None = None
        # Sources of other kinds (sim/ptpscen.py): their header entries and record generators.
        self.extra_sources: dict[str, SourceInfo] = {}
        self.generators: list[Callable[[], None]] = []
        self._seq = 0
        self._out: list[tuple[int, int, Observation]] = []

    # -- scripting ------------------------------------------------------------------------------
    def add_receiver(self, surveyed: bool = False, garbage_rate: float = 0.0) -> Receiver:
        """The default deployment's GNSS receiver (gnss0) with its PPS (pps0), group "gnss".
        `surveyed`: no configured position (the engine surveys the antenna in)."""
        self.receiver = Receiver(
            NmeaSim(random.Random(f"{self.seed}|nmea"), position=ANTENNA, src=GNSS_ID,
                    sentences=GNSS_SENTENCES, garbage_rate=garbage_rate),
            PpsSim(random.Random(f"{self.seed}|pps"), self.host, src=PPS_ID),
            None if surveyed else ANTENNA)
        return self.receiver

    def server(self, sid: str) -> NtpServer:
        return next(s for s in self.servers if s.sid == sid)

    def at(self, frac: float, min_s: float = NTP_WARMUP_S) -> int:
        """True time of an attack start: `frac` into the run but at least `min_s` (learning)."""
        span = self.end_ns - self.t0_ns
        return self.t0_ns + max(int(span * frac), min(int(min_s * NS), span // 2))

    def note(self, t_ns: int, text: str) -> None:
        self.notes.append((t_ns, text))

    def trace_ns(self, t_ns: int) -> int:
        """Trace time (host realtime) of a true instant."""
        return self.host.realtime_ns(t_ns)

    # -- generation -----------------------------------------------------------------------------
    def _add(self, obs: Observation, true_ns: int, handover: bool = True) -> None:
        """Queue a record that arrived at true time true_ns; the engine gets records in the order
        they are handed over (in true time: a host step does not reorder them)."""
        delay = handover_delay_ns(self.handover_rng) if handover else 0
        self._out.append((true_ns + delay, self._seq, obs))
        self._seq += 1

    def _ticks(self) -> None:
        h = self.host
        for k in range(int((self.end_ns - self.t0_ns) // NS) + 1):
            t = self.t0_ns + k * NS
            self._add(Tick(h.realtime_ns(t), h.raw_ns(t)), t, handover=False)

    def _exchanges(self, s: NtpServer) -> None:
        h = self.host
        poll_exp = int(math.log2(s.poll_s))
        k = 0
        while True:
            t1 = self.t0_ns + int((s.phase_s + k * s.poll_s + s.rng.uniform(0, POLL_JITTER_S))
                                  * NS)
            k += 1
            if t1 >= self.end_ns:
                return
            d = s.path.draw()
            xmt = s.rng.getrandbits(64)
            spoof_bits = s.rng.getrandbits(64)
            spoof_skew = s.rng.choice((-1, 1)) * s.rng.uniform(5.0, 3600.0)
            spoof_flagged = s.rng.random() < 2 / 3
            xmt_hex = f"{xmt:016x}"
            h_t1 = h.realtime_ns(t1)
            if s.silent(t1) or d.timed_out:
                tt = t1 + int(TIMEOUT_S * NS)
                self._add(Ntp(src=s.sid, rx_ns=h.realtime_ns(tt), t1_ns=h_t1, xmt_hex=xmt_hex,
                              error="timeout", raw_ns=h.raw_ns(tt)), tt)
                continue
            extra_out, extra_back = s.extra_delay_s(t1)
            t2 = t1 + int((d.out_s + extra_out) * NS)
            t3 = t2 + int(d.processing_s * NS)
            t4 = t3 + int((d.back_s + extra_back) * NS)
            err_s = s.path.server_error_s + s.lie_s(t1)
            if s.spoof(t1):
                # An off-path spoofer answers first, guessing the timing; it cannot see xmt.
                ts = t1 + int(d.out_s * NS)
                skew = int(spoof_skew * NS)
                self._reply(s, poll_exp, xmt_hex, f"{spoof_bits:016x}", h_t1, ts + skew,
                            ts + skew + 20_000, ts + int(d.back_s * NS), 0,
                            "bad_origin" if spoof_flagged else None, None)
            self.answered.setdefault(s.sid, []).append(t4)
            kiss = s.kiss(t1)
            self._reply(s, poll_exp, xmt_hex, xmt_hex, h_t1, t2 + int(err_s * NS),
                        t3 + int(err_s * NS), t4, s.leap(t1), "kiss" if kiss else None, kiss)

    def _reply(self, s: NtpServer, poll_exp: int, xmt_hex: str, org_hex: str, h_t1: int,
               srv_t2: int, srv_t3: int, t4: int, leap: int, error: str | None,
               kiss: str | None) -> None:
        """One reply as the reader records it, with a consistent raw packet."""
        h = self.host
        stratum, refid, leap_ = (0, kiss, 3) if kiss else (s.stratum, s.refid, leap)
        rd = int(round(s.root_delay_s * 65536))
        rdisp = int(round(s.root_dispersion_s * 65536))
        t2n, t3n = _exact(srv_t2), _exact(srv_t3)
        pkt = struct.pack("!BBbbII4sQQQQ", (leap_ << 6) | (4 << 3) | 4, stratum, poll_exp,
                          s.precision, rd, rdisp, _refid_bytes(refid, stratum),
                          _ntp64(srv_t3 - 16 * NS), int(org_hex, 16), _ntp64(t2n), _ntp64(t3n))
        self._add(Ntp(src=s.sid, rx_ns=h.realtime_ns(t4), t1_ns=h_t1, xmt_hex=xmt_hex,
                      t2_ns=t2n, t3_ns=t3n, t4_ns=h.realtime_ns(t4), org_hex=org_hex,
                      leap=leap_, version=4, mode=4, stratum=stratum, poll=poll_exp,
                      precision=s.precision, root_delay=rd / 65536, root_dispersion=rdisp / 65536,
                      refid=refid, pkt_hex=pkt.hex(), error=error, raw_ns=h.raw_ns(t4)), t4)

    def _receiver(self, r: Receiver) -> None:
        """Every UTC second: its PPS edge(s) and its sentences. Each reader hands its own records
        over in order (a serial line is read sequentially), readers interleave up to 20 ms late."""
        h = self.host
        last_line = 0
        sec = -(-self.t0_ns // NS) * NS
        # The receiver runs until the last NTP exchange has ended (a timeout comes 2 s late):
        # otherwise the trace would end with a silent PPS.
        end = self.end_ns + int((TIMEOUT_S + 1.0) * NS)
        while sec < end:
            if r.each_second is not None:
                r.each_second(sec)
            for o in r.pps.pulse(sec):
                # The edge's true time: its stamp minus the realtime's (smooth) error.
                self._add(o, o.rx_ns - h.realtime_error_ns(sec))
            for t, line in r.nmea.epoch(sec):
                at = max(last_line, t + handover_delay_ns(self.handover_rng))
                last_line = at
                self._out.append((at, self._seq, Nmea(GNSS_ID, h.realtime_ns(t), line,
                                                      h.raw_ns(t))))
                self._seq += 1
            sec += NS

    def build(self, truth: Truth, polls: _PollDeadline | None = None) -> SimTrace:
        self._ticks()
        for s in self.servers:
            self._exchanges(s)
        if self.receiver is not None:
            self._receiver(self.receiver)
        for gen in self.generators:
            gen()
        if polls is not None:
            truth = replace(truth, deadline_ns=polls.resolve())
        for t, text in self.notes:
            self._add(Note(self.host.realtime_ns(t), text, self.host.raw_ns(t)), t, handover=False)
        self._out.sort(key=lambda r: (r[0], r[1]))
        sources = {s.sid: s.info() for s in self.servers}
        if self.receiver is not None:
            sources.update(self.receiver.sources())
        sources.update(self.extra_sources)
        header = Header(host=f"sim-{self.name}", created_ns=self.t0_ns, sources=sources)
        return SimTrace(header, [o for _, _, o in self._out], truth)


# -- the catalogue's entries ---------------------------------------------------------------------

# A scenario's parameters (attack sizes, victims...); what is not given is drawn from the seed.
Params = dict[str, Any]
# (the scenario, seed, duration in seconds, parameters) -> the trace with its ground truth.
Builder = Callable[["Scenario", int, float, Params], SimTrace]


@dataclass(frozen=True)
class Live:
    """How `timewatch demo --scenario` plays a scenario after its learning lead, against the
    demo's simulators (NTP servers sim-a .. sim-d, the receiver gnss0 with its pps0)."""

    what: str  # announced when the attack starts
    action: Action  # what it changes, called once at the start
    suspects: tuple[str, ...]  # the demo's sources it attacks: the only ones alerts may name
    window_s: float  # how long the run goes on after the start
    groups: dict[str, str] | None = None  # trust groups, when not one operator per server
    note: str = ""  # said before the run, when the live run differs from the trace


@dataclass(frozen=True)
class Scenario:
    """One scenario, declared once: its trace (`builder`), what counts as detecting it and by
    when, when its attack starts, and how the demo plays it live."""

    name: str
    number: int | None  # its row of the threat table, None for the clean/legit-fault runs
    description: str
    duration_s: float  # default length of its trace
    builder: Builder
    codes: tuple[str, ...] = ()  # the alert codes that count as detecting it
    target_s: float | None = None  # detected within this long after the start ...
    target_polls: int | None = None  # ... or within this many polls of the attacked servers
    warmup_s: int = 0  # the attack starts after at least this much learning (true seconds)
    live: Live | None = None  # how the demo plays it; None: not live
    not_live: str = ""  # why the demo cannot play it (it suggests the trace instead)
    # A row whose target is what must never happen instead of a detection deadline (no
    # target_s or target_polls): its culprits may be named, nobody else.
    holds: str = ""


def new_sim(sc: Scenario, seed: int, duration_s: float, params: Params, **kw: Any) -> Sim:
    """A scenario's simulator; `params` may choose the host's oscillator (any scenario)."""
    return Sim(sc.name, seed, duration_s, oscillator=params.get("oscillator") or "crystal", **kw)


def _p(params: dict[str, Any], key: str, default: Callable[[], Any]) -> Any:
    """A parameter from the caller, else drawn (the draw happens either way: same stream)."""
    v = default()
    return params[key] if params.get(key) is not None else v


def _victim(sim: Sim, params: dict[str, Any]) -> NtpServer:
    sid = _p(params, "victim", lambda: sim.attack_rng.choice([s.sid for s in sim.servers]))
    return sim.server(sid)


def _deadline(sim: Sim, start: int, seconds: float | None) -> int:
    assert seconds is not None, "a scenario judged by time has a target_s"
    return sim.trace_ns(start + int((seconds + DEADLINE_SLACK_S) * NS))


class _PollDeadline:
    """`n` polls of a server after `start`: n * poll, or its n-th answered exchange when a
    timeout took one of those polls (nothing can judge a poll that got no reply). Resolved once
    the exchanges exist (`Sim.build`)."""

    def __init__(self, sim: Sim, start: int, servers: list[NtpServer], n: int):
        self.sim, self.start, self.servers, self.n = sim, start, servers, n

    def resolve(self) -> int:
        t = self.start
        for s in self.servers:
            answered = [a for a in self.sim.answered.get(s.sid, []) if a >= self.start]
            nth = answered[self.n - 1] if len(answered) >= self.n else self.sim.end_ns
            t = max(t, self.start + self.n * s.poll_s * NS, nth)
        return self.sim.trace_ns(t + int(DEADLINE_SLACK_S * NS))


def _polls(sc: Scenario, sim: Sim, start: int, servers: list[NtpServer]) -> _PollDeadline:
    """The scenario's target: its `target_polls` polls of the attacked servers."""
    assert sc.target_polls is not None, f"{sc.name}: no target_polls"
    return _PollDeadline(sim, start, servers, sc.target_polls)


def _ntp_truth(sc: Scenario, sim: Sim, start: int, culprits: tuple[str, ...],
               **kw: Any) -> Truth:
    """The truth of an NTP attack from `start` on, judged by polls (`_polls`)."""
    return Truth(sc.name, sim.seed, sim.trace_ns(start), None, culprits, sc.codes, **kw)


def _ntp_liar(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    lie = _p(params, "offset_s", lambda: sim.attack_rng.choice((-1, 1))
             * sim.attack_rng.uniform(0.015, 0.100))
    ta = sim.at(0.4, sc.warmup_s)
    v.lie_s = lambda t: lie if t >= ta else 0.0
    sim.note(ta, f"attack ntp_liar: {v.sid} lies by {lie * 1e3:+.1f} ms")
    return sim.build(_ntp_truth(sc, sim, ta, (v.sid,), params={"offset_s": lie}),
                     _polls(sc, sim, ta, [v]))


def _ntp_drift(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    rate = _p(params, "rate_ppm", lambda: sim.attack_rng.choice((-1, 1))
              * sim.attack_rng.uniform(15.0, 100.0))
    ta = sim.at(0.4, sc.warmup_s)
    v.lie_s = lambda t: rate * 1e-6 * (t - ta) / NS if t >= ta else 0.0
    if params.get("spike_probability") is not None:  # a busier network than the default 2%
        for s in sim.servers:
            s.path.spike_probability = params["spike_probability"]
    sim.note(ta, f"attack ntp_drift: {v.sid} drifts at {rate:+.1f} ppm")
    # Before its offset exceeds 3 error bounds, at most the scenario's target_s.
    assert sc.target_s is not None
    target = min(sc.target_s, 3 * v.bound_s() / (abs(rate) * 1e-6))
    return sim.build(Truth(sc.name, seed, sim.trace_ns(ta), _deadline(sim, ta, target),
                           (v.sid,), sc.codes, params={"rate_ppm": rate, "bound_s": v.bound_s()}))


def _live_drift(w: World) -> None:
    w.drift("sim-d", 100.0)


def _ntp_mitm_delay(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    extra = _p(params, "delay_s", lambda: sim.attack_rng.uniform(0.005, 0.040))
    leg = _p(params, "leg", lambda: sim.attack_rng.choice(("request", "reply")))
    ta = sim.at(0.4, sc.warmup_s)
    pair = (extra, 0.0) if leg == "request" else (0.0, extra)
    # `probe_s`: the first poll of the attack delays by this much instead (a patient attacker's
    # probe before the attack settles; none unless asked).
    probe = params.get("probe_s")
    if probe is not None:
        first = (probe, 0.0) if leg == "request" else (0.0, probe)

        def probed(t: int) -> tuple[float, float]:
            if t < ta:
                return (0.0, 0.0)
            return first if t < ta + v.poll_s * NS else pair
        v.extra_delay_s = probed
    elif leg == "alternate":  # (a test of the direction check: no attacker delays both legs)
        def alternate(t: int) -> tuple[float, float]:
            if t < ta:
                return (0.0, 0.0)
            return (extra, 0.0) if (t - ta) // (v.poll_s * NS) % 2 == 0 else (0.0, extra)
        v.extra_delay_s = alternate
    else:
        v.extra_delay_s = lambda t: pair if t >= ta else (0.0, 0.0)
    sim.note(ta, f"attack ntp_mitm_delay: {v.sid} {leg}s delayed by {extra * 1e3:.1f} ms")
    return sim.build(_ntp_truth(sc, sim, ta, (v.sid,), params={"delay_s": extra, "leg": leg}),
                     _polls(sc, sim, ta, [v]))


def _ntp_leap(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    li = _p(params, "leap", lambda: sim.attack_rng.choice((1, 2)))
    ta = sim.at(0.4, sc.warmup_s)
    v.leap = lambda t: li if t >= ta else 0
    sim.note(ta, f"attack ntp_leap: {v.sid} announces leap indicator {li}")
    return sim.build(_ntp_truth(sc, sim, ta, (v.sid,), params={"leap": li}),
                     _polls(sc, sim, ta, [v]))


def _host_step(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """The host clock is stepped by `step_s`. With the default deployment's GNSS receiver and
    its PPS running next to the NTP servers (`gnss`, default True; False: NTP only): only
    `consensus.host_step` (and `consensus.host_offset`) may follow. `follower` (an NTP server or
    gnss0): that source's time moves by `step_s` with the host's, so it alone appears to step
    once the step is re-expressed, and it must be named; `host` False: the host does not step,
    the follower alone steps by `step_s` (a source moving is never a host step)."""
    if params.get("gnss", True):
        sim = new_sim(sc, seed, duration_s, params, t0_ns=GNSS_T0_NS)
        r: Receiver | None = sim.add_receiver()
    else:
        sim, r = new_sim(sc, seed, duration_s, params), None
    step = _p(params, "step_s", lambda: sim.attack_rng.choice((-1, 1))
              * sim.attack_rng.uniform(0.1, 1.5))
    ta = sim.at(0.4, sc.warmup_s) + int(sim.attack_rng.uniform(0.0, 1.0) * NS)
    host = params.get("host", True)
    follower = params.get("follower")
    step_ns = int(step * NS)
    if host:
        sim.host.step(ta, step_ns)
        sim.note(ta - 1, f"fault host_step: the host clock is stepped by {step * 1e3:+.1f} ms")
    # Engine time follows the step (back, after a negative one): the host time of the step is
    # the earlier of its two readings.
    start = min(sim.trace_ns(ta - 1), sim.trace_ns(ta))
    allowed: dict[str, tuple[str, ...]] = {"consensus.host_offset": ()} if host else {}
    if follower is None:
        assert sc.target_s is not None
        deadline = max(_deadline(sim, ta, sc.target_s),
                       sim.trace_ns(ta - 1) + int((sc.target_s + DEADLINE_SLACK_S) * NS))
        return sim.build(Truth(sc.name, seed, start, deadline, (), sc.codes, allowed=allowed,
                               params={"step_s": step}))
    if host:
        allowed["consensus.host_step"] = ()
    what = "with the host clock" if host else "alone (the host clock does not step)"
    sim.note(ta, f"attack host_step: {follower} steps by {step * 1e3:+.1f} ms {what}")
    if follower == GNSS_ID:
        assert r is not None, "follower gnss0 needs the receiver (gnss=True)"
        r.time_error(lambda sec: step_ns if sec >= ta else 0)
        codes = (*TIME_CODES, "pps.interval", "pps.label_mismatch", "gnss.label_error")
        allowed.update(_receiver_accused(*codes, "pps.missing"))
        return sim.build(Truth(sc.name, seed, start, _deadline(sim, ta, FOLLOWER_TARGET_S),
                               (PPS_ID,), codes, allowed=allowed,
                               params={"step_s": step, "follower": follower}))
    v = sim.server(follower)
    v.lie_s = lambda t: step if t >= ta else 0.0
    truth = Truth(sc.name, seed, start, None, (v.sid,), ("time.step", "source.falseticker"),
                  allowed=allowed, params={"step_s": step, "follower": follower})
    return sim.build(truth, _PollDeadline(sim, ta, [v], FOLLOWER_POLLS))


# A source that steps with the host clock (or alone) is named as any step is: the receiver
# within the GNSS step's 5 s, an NTP server within 3 of its polls.
FOLLOWER_TARGET_S = 5.0
FOLLOWER_POLLS = 3


def _ntp_group_majority(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    layout = [("ntp-x1", "op-x"), ("ntp-x2", "op-x"), ("ntp-x3", "op-x"), ("ntp-d", "op-d"),
              ("ntp-e", "op-e")]
    sim = new_sim(sc, seed, duration_s, params, layout=layout)
    lie = _p(params, "offset_s", lambda: sim.attack_rng.choice((-1, 1))
             * sim.attack_rng.uniform(0.015, 0.100))
    ta = sim.at(0.4, sc.warmup_s)
    liars = sim.servers[:3]
    for s in liars:
        s.lie_s = lambda t: lie if t >= ta else 0.0
    sim.note(ta, f"attack ntp_group_majority: op-x (3 of 5 servers) lies by {lie * 1e3:+.1f} ms")
    return sim.build(_ntp_truth(sc, sim, ta, tuple(s.sid for s in liars),
                                params={"offset_s": lie}),
                     _polls(sc, sim, ta, liars))


def _live_group_majority(w: World) -> None:
    for sid in ("sim-a", "sim-b", "sim-c"):
        w.b(sid).offset_s = 0.080


# Spoofed replies and kiss codes say nothing of the server's time: these codes would accuse its
# time wrongly.
_NOT_A_TIME_ATTACK = ("source.falseticker", "time.drift", "time.step", "ntp.delay_anomaly",
                      "ntp.leap_anomaly")


def _ntp_spoofed_replies(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    ta = sim.at(0.4, sc.warmup_s)
    v.spoof = lambda t: t >= ta
    sim.note(ta, f"attack ntp_spoofed_replies: an off-path spoofer answers for {v.sid}")
    return sim.build(_ntp_truth(sc, sim, ta, (v.sid,), forbidden=_NOT_A_TIME_ATTACK),
                     _polls(sc, sim, ta, [v]))


def _ntp_kiss(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    ta = sim.at(0.4, sc.warmup_s)
    te = ta + int(_p(params, "kiss_s", lambda: 600.0) * NS)
    v.kiss = lambda t: "RATE" if ta <= t < te else None
    sim.note(ta, f"fault ntp_kiss: {v.sid} answers kiss-o'-death RATE")
    return sim.build(_ntp_truth(sc, sim, ta, (v.sid,), forbidden=_NOT_A_TIME_ATTACK),
                     _polls(sc, sim, ta, [v]))


def _ntp_no_majority(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    layout = [("ntp-a", "op-a"), ("ntp-b", "op-b"), ("ntp-c", "op-c"), ("ntp-d", "op-c")]
    sim = new_sim(sc, seed, duration_s, params, layout=layout)
    # Each group must leave the others' error intervals: beyond the sum of the two bounds.
    margin = _p(params, "margin_s", lambda: sim.attack_rng.uniform(0.010, 0.030))
    a, b, c, d = (sim.server(x) for x in ("ntp-a", "ntp-b", "ntp-c", "ntp-d"))
    up = a.bound_s() + b.bound_s() + margin
    down = a.bound_s() + max(c.bound_s(), d.bound_s()) + margin
    ta = sim.at(0.4, sc.warmup_s)
    b.lie_s = lambda t: up if t >= ta else 0.0
    for x in (c, d):
        x.lie_s = lambda t: -down if t >= ta else 0.0
    lie = (up, -down)
    sim.note(ta, f"attack ntp_no_majority: op-b {up * 1e3:+.1f} ms, op-c {-down * 1e3:+.1f} ms")
    return sim.build(_ntp_truth(sc, sim, ta, (), params={"offset_s": lie},
                                # Until every liar has moved, a majority still exists and judges
                                # the first movers: naming them is right.
                                allowed={code: ("ntp-b", "ntp-c", "ntp-d") for code in
                                         ("source.falseticker", "time.step", "time.drift")}),
                     _polls(sc, sim, ta, [b, c, d]))


def _live_no_majority(w: World) -> None:
    w.b("sim-b").offset_s = 0.020
    w.b("sim-c").offset_s = w.b("sim-d").offset_s = -0.020


# -- GNSS and PPS scenarios ---------------------------------------------------------------------

# Warm-up before a GNSS/PPS attack starts (true seconds from the trace's start; up to
# GNSS_START_JITTER_S more is drawn): every NTP server polled at least four times (64 s polls),
# gnss0's label latency learned (60 labels against an agreeing consensus, ~1-2 min), pps0's
# edges numbered with its latency and jitter measured (8-32 s), and the holdover clock fitted
# over more than four minutes of PPS edges, so the frequency it extrapolates is good to a few
# ppb and only its (prior) wander of 0.1 ppm limits it.
GNSS_WARMUP_S = 300
# A slow push is judged by the holdover's rate allowance: let it learn over a full 10-min block
# first (as the NTP scenarios wait NTP_WARMUP_S before their attacks).
GNSS_SLOW_WARMUP_S = 600
GNSS_START_JITTER_S = 20
# Codes that accuse a time reference (the receiver's, when its time is attacked).
TIME_CODES = ("time.step", "time.drift", "source.falseticker")
# docs/threats.md #11: a spoofer's C/N0 is uniform (sigma < 2 dB-Hz over >= 5 satellites).
CN0_UNIFORM_SIGMA_DB_HZ = (0.3, 1.2)
CN0_UNIFORM_LEVEL_DB_HZ = (40.0, 48.0)


def _gnss_sim(sc: Scenario, seed: int, duration_s: float, params: Params,
              **receiver: Any) -> tuple[Sim, Receiver]:
    sim = new_sim(sc, seed, duration_s, params, t0_ns=GNSS_T0_NS)
    return sim, sim.add_receiver(**receiver)


def _gnss_start(sc: Scenario, sim: Sim, params: Params | None = None) -> int:
    """The attack's start: a whole UTC second after the scenario's warm-up and a drawn jitter
    (half-way in a short run), or `start_s` seconds in when the caller says (a demo's timeline)."""
    k = sc.warmup_s + sim.attack_rng.randrange(GNSS_START_JITTER_S + 1)
    span_s = (sim.end_ns - sim.t0_ns) // NS
    k = min(k, span_s // 2)
    if params and params.get("start_s") is not None:
        k = int(params["start_s"])
    return -(-sim.t0_ns // NS) * NS + k * NS


def _gnss_truth(sc: Scenario, sim: Sim, ta: int, culprits: tuple[str, ...],
                allowed: dict[str, tuple[str, ...]] | None = None, **params: Any) -> Truth:
    """The truth of a GNSS/PPS attack from `ta` on, judged by the scenario's target_s."""
    return Truth(sc.name, sim.seed, sim.trace_ns(ta), _deadline(sim, ta, sc.target_s), culprits,
                 sc.codes, allowed=allowed or {}, params=params)


def _receiver_accused(*codes: str) -> dict[str, tuple[str, ...]]:
    """The receiver's own two sources may be named with these codes (its time is wrong)."""
    return {c: (GNSS_ID, PPS_ID) for c in codes}


def _sign(sim: Sim) -> float:
    return sim.attack_rng.choice((-1.0, 1.0))


def _gnss_step(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    step = _p(params, "step_s", lambda: _sign(sim) * sim.attack_rng.uniform(6.05e-6, 100e-6))
    ta = _gnss_start(sc, sim)
    step_ns = round(step * NS)
    r.time_error(lambda s: step_ns if s >= ta else 0)
    sim.note(ta, f"attack gnss_step: the receiver's time steps {step * 1e6:+.1f} us "
                 "(PPS and labels together)")
    return sim.build(_gnss_truth(sc, sim, ta, (PPS_ID,), _receiver_accused(*TIME_CODES),
                                 step_s=step))


def _gnss_label_step(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    k = _p(params, "label_offset_s", lambda: int(_sign(sim)) * sim.attack_rng.choice((1, 1, 2, 3)))
    ta = _gnss_start(sc, sim)
    r.nmea.label_offset_s = lambda s: k if s >= ta else 0
    sim.note(ta, f"attack gnss_label_step: the labels are {k:+d} s off, PPS in phase")
    # The labels are wrong: PPS says so (pps.label_mismatch names both), gnss0 sees the jump;
    # once the pulses follow the labels, the receiver's time is whole seconds off the others.
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID,),
                                 _receiver_accused("pps.label_mismatch", *TIME_CODES),
                                 label_offset_s=k))


def _gnss_push(lo: float, hi: float) -> Builder:
    """A push of the receiver's time at a drawn rate of lo .. hi s/s (either sign)."""
    def build(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
        sim, r = _gnss_sim(sc, seed, duration_s, params)
        rate = _p(params, "rate_s_per_s", lambda: _sign(sim) * sim.attack_rng.uniform(lo, hi))
        ta = _gnss_start(sc, sim, params)
        # `push_s`: the push stops then and the receiver is back on true time (the demo's
        # recovery); by default it goes on to the end.
        push_s = params.get("push_s")
        te = ta + int(push_s * NS) if push_s is not None else sim.end_ns + 10 * NS
        r.time_error(lambda s: round(rate * (s - ta)) if ta <= s < te else 0)
        sim.note(ta, f"attack {sc.name}: the receiver's time is pushed at {rate * 1e6:+.2f} us/s")
        return sim.build(_gnss_truth(sc, sim, ta, (PPS_ID,), _receiver_accused(*TIME_CODES),
                                     rate_s_per_s=rate, end_ns=sim.trace_ns(te)))
    return build


def _offset_m(sim: Sim, lo_m: float, hi_m: float, params: Params) -> tuple[float, float]:
    dist = _p(params, "distance_m", lambda: sim.attack_rng.uniform(lo_m, hi_m))
    bearing = _p(params, "bearing_deg", lambda: sim.attack_rng.uniform(0.0, 360.0))
    return (dist * math.cos(math.radians(bearing)), dist * math.sin(math.radians(bearing)))


def _gnss_push_stairs(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """A push split into steps each below the PPS step threshold (pps_step_s, 4 us): `step_s`
    every `every_s`, averaging step_s / every_s."""
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    step = _p(params, "step_s", lambda: _sign(sim) * sim.attack_rng.uniform(2e-6, 3.5e-6))
    every = _p(params, "every_s", lambda: abs(step) / sim.attack_rng.uniform(0.5e-6, 1e-6))
    ta = _gnss_start(sc, sim)
    every_ns = int(every * NS)
    r.time_error(lambda s: round(step * NS) * ((s - ta) // every_ns + 1) if s >= ta else 0)
    sim.note(ta, f"attack gnss_push_stairs: the receiver's time steps {step * 1e6:+.2f} us every "
                 f"{every:.1f} s ({step / every * 1e6:+.2f} us/s)")
    return sim.build(_gnss_truth(sc, sim, ta, (PPS_ID,), _receiver_accused(*TIME_CODES),
                                 step_s=step, every_s=every))


# docs/threats.md #27: the receiver silent (jammed: no fix, no PPS) for this long by default ...
OUTAGE_S = (30.0, 100.0)
# ... while its time moves by this much (either sign), seen when the fix returns.
OUTAGE_SHIFT_S = (20e-6, 200e-6)


def _gnss_outage_shift(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """The receiver is jammed (no fix, no PPS) for `outage_s`; its time comes back `shift_s` off
    (a spoofer who took over while it was blind). Judged from the fix's return. Its tests run it
    with `oscillator` = "ocxo" too (a parameter of every scenario)."""
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    outage = _p(params, "outage_s", lambda: sim.attack_rng.uniform(*OUTAGE_S))
    shift = _p(params, "shift_s", lambda: _sign(sim) * sim.attack_rng.uniform(*OUTAGE_SHIFT_S))
    tj = _gnss_start(sc, sim)
    tr = tj + round(outage) * NS  # the fix and the pulses return on a whole second
    r.nmea.jammed = lambda s: tj <= s < tr
    r.pps.missing = lambda s: tj <= s < tr
    shift_ns = round(shift * NS)
    r.time_error(lambda s: shift_ns if s >= tr else 0)
    sim.note(tj, f"attack gnss_outage_shift: the receiver is jammed for {round(outage)} s")
    sim.note(tr, f"attack gnss_outage_shift: the fix returns {shift * 1e6:+.1f} us off")
    # The jamming itself is reported on the receiver's two sources (scenario 12's codes).
    allowed = {"gnss.no_fix": (GNSS_ID,), "gnss.satellites": (GNSS_ID,),
               "pps.missing": (PPS_ID,), "source.stale": (GNSS_ID, PPS_ID),
               **_receiver_accused(*TIME_CODES)}
    return sim.build(_gnss_truth(sc, sim, tr, (PPS_ID,), allowed, outage_s=float(round(outage)),
                                 shift_s=shift))


def _gnss_position_jump(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params, surveyed=bool(params.get("surveyed")))
    ne = _offset_m(sim, 55.0, 500.0, params)
    ta = _gnss_start(sc, sim)
    # `lasting_s`: the fix is off only this long (a multipath outlier, not a jump)
    te = ta + int(params["lasting_s"] * NS) if params.get("lasting_s") else None
    r.nmea.position_offset_m = lambda s: ne if s >= ta and (te is None or s < te) else (0.0, 0.0)
    dist = math.hypot(*ne)
    sim.note(ta, f"attack gnss_position_jump: the fix moves {dist:.0f} m from the antenna")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID,), distance_m=dist))


def _gnss_meaconing(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    delay = _p(params, "delay_s", lambda: sim.attack_rng.uniform(1.0e-3, 5.0e-3))
    ne = _offset_m(sim, 100.0, 2000.0, params)
    ta = _gnss_start(sc, sim)
    # The replayed signal arrives `delay` late: the receiver's time is late by it (its error is
    # negative), and its fix is the meaconer's antenna.
    late_ns = -round(delay * NS)
    r.time_error(lambda s: late_ns if s >= ta else 0)
    r.nmea.position_offset_m = lambda s: ne if s >= ta else (0.0, 0.0)
    dist = math.hypot(*ne)
    sim.note(ta, f"attack gnss_meaconing: replayed {delay * 1e3:.2f} ms late from {dist:.0f} m")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID, PPS_ID), _receiver_accused(*sc.codes),
                                 delay_s=delay, distance_m=dist))


def _live_meaconing(w: World) -> None:
    w.step(-1.5e-3)  # the replayed signal arrives 1.5 ms late: the receiver's time is late
    w.nmea.position_offset_m = from_now(lambda s: (420.0, -310.0), (0.0, 0.0))


def _gnss_cn0_uniform(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    variant = _p(params, "variant", lambda: sim.attack_rng.choice(("uniform", "raised")))
    sigma = _p(params, "sigma_db_hz", lambda: sim.attack_rng.uniform(*CN0_UNIFORM_SIGMA_DB_HZ))
    level = _p(params, "level_db_hz", lambda: sim.attack_rng.uniform(*CN0_UNIFORM_LEVEL_DB_HZ))
    step = _p(params, "step_db", lambda: sim.attack_rng.uniform(6.5, 10.0))
    ta = _gnss_start(sc, sim)
    crng = random.Random(f"{seed}|cn0")
    if variant == "uniform":
        r.nmea.cn0_fn = lambda s, c: ({p: level + crng.gauss(0.0, sigma) for p in c}
                                      if s >= ta else c)
        what = f"uniform at {level:.1f} dB-Hz (sigma {sigma:.2f})"
    else:
        r.nmea.cn0_fn = lambda s, c: {p: v + step for p, v in c.items()} if s >= ta else c
        what = f"all up {step:.1f} dB at once"
    sim.note(ta, f"attack gnss_cn0_uniform: C/N0 {what}")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID,), variant=variant, sigma_db_hz=sigma,
                                 level_db_hz=level, step_db=step))


def _live_cn0(w: World) -> None:
    fn = uniform_cn0()
    t0 = now_ns()
    w.nmea.cn0_fn = lambda s, c: fn(s, c) if s >= t0 else c


def _gnss_jamming(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    ta = _gnss_start(sc, sim)
    r.nmea.jammed = lambda s: s >= ta
    r.pps.missing = lambda s: s >= ta
    sim.note(ta, "attack gnss_jamming: fix lost, C/N0 collapses, PPS stops")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID, PPS_ID),
                                 {"gnss.satellites": (GNSS_ID,), "source.stale": (PPS_ID,)}))


def _live_jamming(w: World) -> None:
    w.nmea.jammed = from_now(lambda s: True, False)
    w.pps.missing = from_now(lambda s: True, False)


# docs/threats.md "first sentence": the faulty second's first sentence (RMC) arrives 110 +- 4 ms after
# the second, then its ~75 ms at 9600 baud.
FIRST_SENTENCE_S = 0.25


def _gnss_week_rollover(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    fault = _p(params, "fault", lambda: sim.attack_rng.choice(("rollover", "rollover",
                                                                "coldstart")))
    ta = _gnss_start(sc, sim)
    r.nmea.date_fault = lambda s: fault if s >= ta else None
    sim.note(ta, f"fault gnss_week_rollover: {fault} date with a valid fix")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID,), fault=fault))


def _gnss_simulator(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    ta = _gnss_start(sc, sim)
    r.nmea.simulator = lambda s: s >= ta
    sim.note(ta, "fault gnss_simulator: the receiver outputs simulated fixes as valid")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID,)))


def _pps_faults(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    kind = _p(params, "fault", lambda: sim.attack_rng.choice(("missing", "doubled", "shifted")))
    n = _p(params, "pulses", lambda: sim.attack_rng.randint(1, 3))
    extra_s = _p(params, "extra_s", lambda: sim.attack_rng.uniform(0.05, 0.95))
    shift = _p(params, "shift_s", lambda: _sign(sim) * sim.attack_rng.uniform(0.002, 0.5))
    ta = _gnss_start(sc, sim)
    te = ta + n * NS
    allowed: dict[str, tuple[str, ...]] = {}
    if kind == "missing":
        r.pps.missing = lambda s: ta <= s < te
        what = f"{n} pulse(s) missing"
    elif kind == "doubled":
        r.pps.doubled = lambda s: extra_s if ta <= s < te else None
        what = f"{n} pulse(s) doubled {extra_s * 1e3:.0f} ms after the edge"
    else:
        shift_ns = round(shift * NS)
        r.pps.shift_ns = lambda s: shift_ns if s >= ta else 0
        what = f"the pulse output shifted by {shift * 1e3:+.1f} ms"
        # The shifted pulses are wrong time, and wrong against the labels.
        allowed = _receiver_accused("pps.label_mismatch", *TIME_CODES)
    sim.note(ta, f"fault pps_faults: {what}")
    return sim.build(_gnss_truth(sc, sim, ta, (PPS_ID,), allowed, fault=kind, pulses=n,
                                 extra_s=extra_s, shift_s=shift))


def _live_pps_faults(w: World) -> None:
    t0 = now_ns() // NS * NS + NS
    w.pps.missing = lambda s: t0 <= s < t0 + 2 * NS  # two pulses missing
    w.pps.doubled = lambda s: 0.3 if t0 + 10 * NS <= s < t0 + 12 * NS else None  # doubled
    w.pps.shift_ns = lambda s: 250_000_000 if s >= t0 + 20 * NS else 0  # a 250 ms shift


def _gnss_garbage(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    corrupt = _p(params, "corrupt_rate", lambda: 0.05)  # docs/threats.md #21: 5% of sentences
    garbage = _p(params, "garbage_rate", lambda: sim.attack_rng.uniform(0.002, 0.02))
    ta = _gnss_start(sc, sim)

    def line_noise(s: int) -> None:  # the line turns noisy when the fault starts
        if s == ta:
            r.nmea.corrupt_rate, r.nmea.garbage_rate = corrupt, garbage

    r.each_second = line_noise
    sim.note(ta, f"fault gnss_garbage: {corrupt:.0%} of sentences corrupted, garbage lines")
    return sim.build(_gnss_truth(sc, sim, ta, (GNSS_ID,), corrupt_rate=corrupt,
                                 garbage_rate=garbage))


def _live_garbage(w: World) -> None:
    w.nmea.corrupt_rate = 0.05  # docs/threats.md #21: 5% of sentences corrupted
    w.nmea.garbage_rate = 0.02  # ... and some garbage lines


# -- clean runs and legitimate faults (docs/threats.md "Must not alarm") ------------------------------


# docs/threats.md #28: one trust group of four servers (one operator) next to two of their own,
# with the default GNSS receiver and its PPS.
GROUP_INSIDE_LAYOUT = [("ntp-x1", "op-x"), ("ntp-x2", "op-x"), ("ntp-x3", "op-x"),
                       ("ntp-x4", "op-x"), ("ntp-d", "op-d"), ("ntp-e", "op-e")]
GROUP_INSIDE_LIE_S = (0.006, 0.010)


def _ntp_group_lie_inside(sc: Scenario, seed: int, duration_s: float,
                          params: Params) -> SimTrace:
    """The four servers of one trust group lie together by a few ms, inside (most of) their
    bounds: the vote may name them, never a source of another group (the PPS above all).
    `gnss` (default True; False: NTP only, the six servers alone)."""
    sim = new_sim(sc, seed, duration_s, params, t0_ns=GNSS_T0_NS, layout=GROUP_INSIDE_LAYOUT)
    if params.get("gnss", True):
        sim.add_receiver()
    lie = _p(params, "offset_s", lambda: sim.attack_rng.choice((-1, 1))
             * sim.attack_rng.uniform(*GROUP_INSIDE_LIE_S))
    ta = sim.at(0.4, sc.warmup_s)
    liars = sim.servers[:4]
    for x in liars:
        x.lie_s = lambda t: lie if t >= ta else 0.0
    sim.note(ta, f"attack ntp_group_lie_inside: op-x (4 servers) lies by {lie * 1e3:+.1f} ms")
    # Nothing needs to be named (a lie inside the bounds can be a route change of the operator);
    # the liars may be, with the codes that accuse a time.
    return sim.build(Truth(sc.name, seed, sim.trace_ns(ta), None, tuple(x.sid for x in liars),
                           sc.codes, params={"offset_s": lie,
                                             "bounds_s": [x.bound_s() for x in liars]}))


def _clean(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    return sim.build(Truth(sc.name, seed))


def _ntp_server_silent(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    ta = sim.at(0.3, sc.warmup_s)
    te = ta + int(_p(params, "silent_s", lambda: 600.0) * NS)
    v.silent = lambda t: ta <= t < te
    sim.note(ta, f"fault ntp_server_silent: {v.sid} stops answering for {(te - ta) / NS:.0f} s")
    return sim.build(Truth(sc.name, seed, sim.trace_ns(ta), None, (v.sid,), sc.codes,
                           allowed={"source.stale": (v.sid,)},
                           forbidden=("source.falseticker", "time.drift", "time.step")))


def _ntp_delay_spikes(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    sim = new_sim(sc, seed, duration_s, params)
    p = _p(params, "spike_probability", lambda: 0.05)
    for s in sim.servers:  # docs/threats.md "network delay spikes of 10x the base delay"
        s.path.spike_probability = p
        s.path.spike_factor = (10.0, 10.0)
    return sim.build(Truth(sc.name, seed, params={"spike_probability": p}))


def _announce_from(start_ns: int, leap_ns: int) -> Callable[[int], int]:
    return lambda t: 1 if start_ns <= t < leap_ns else 0


def _ntp_real_leap(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """The leap second of 2016-12-31, announced by servers starting at different times."""
    sim = new_sim(sc, seed, duration_s, params, t0_ns=LEAP_2016_T0_NS)
    leap_at = 1_483_228_800 * NS  # 2017-01-01T00:00:00Z (leap-seconds.list: 3692217600 37)
    day_start = leap_at - 86_400 * NS  # chrony announces on the last day only
    for i, s in enumerate(sim.servers):
        # Weeks ahead (ntpd with a leap file), on the last day (chrony), or late in that day.
        start = (leap_at - 21 * 86_400 * NS, day_start, leap_at - 2 * 3_600 * NS + i * 600 * NS,
                 day_start, leap_at - 30 * 60 * NS)[i % 5]
        s.leap = _announce_from(start, leap_at)
    sim.note(leap_at, "leap second 2016-12-31T23:59:60Z")
    return sim.build(Truth(sc.name, seed))


def _clean_week(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """Clean operation with the legitimate faults: 10x spikes, a server silent for 10 min."""
    sim = new_sim(sc, seed, duration_s, params)
    v = _victim(sim, params)
    ta = sim.at(0.3, sc.warmup_s)
    te = ta + 600 * NS
    v.silent = lambda t: ta <= t < te
    for s in sim.servers:
        s.path.spike_factor = (5.0, 10.0)
    sim.note(ta, f"fault: {v.sid} stops answering for 600 s")
    return sim.build(Truth(sc.name, seed, sim.trace_ns(ta), None, (v.sid,), sc.codes,
                           allowed={"source.stale": (v.sid,)}))


def _gnss_clean(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """GNSS + PPS + NTP, clean: satellites rise and set, everything else is noise."""
    sim, _ = _gnss_sim(sc, seed, duration_s, params, surveyed=bool(params.get("surveyed")))
    return sim.build(Truth(sc.name, seed))


def _gnss_obstruction(sc: Scenario, seed: int, duration_s: float, params: Params) -> SimTrace:
    """The receiver loses its fix for a minute under an obstruction; its PPS keeps pulsing on its
    own oscillator (docs/threats.md "Must not alarm": only gnss.no_fix and gnss.satellites)."""
    sim, r = _gnss_sim(sc, seed, duration_s, params)
    ta = _gnss_start(sc, sim)
    te = ta + int(_p(params, "obstructed_s", lambda: 60.0) * NS)
    r.nmea.fix_lost = lambda s: ta <= s < te
    sim.note(ta, f"fault gnss_obstruction: no fix for {(te - ta) / NS:.0f} s, PPS keeps pulsing")
    return sim.build(Truth(sc.name, seed, sim.trace_ns(ta), None, (GNSS_ID,), sc.codes,
                           allowed={"gnss.no_fix": (GNSS_ID,), "gnss.satellites": (GNSS_ID,)}))


# -- the catalogue -------------------------------------------------------------------------------

_RECEIVER = (GNSS_ID, PPS_ID)  # the demo's receiver has the trace's source ids

# Every scenario once, in `timewatch simulate --list` order: the threat table (1-21), then the
# clean runs and legitimate faults that must not alarm. Live actions name the demo's servers.
SCENARIOS: dict[str, Scenario] = {sc.name: sc for sc in (
    Scenario("ntp_liar", 1, "one NTP server lies by >= 15 ms", 1800.0, _ntp_liar,
             ("source.falseticker", "time.step"), target_polls=3, warmup_s=NTP_WARMUP_S,
             live=Live("sim-d lies by +80 ms", behave("sim-d", offset_s=0.080), ("sim-d",), 30.0)),
    Scenario("ntp_drift", 2, "one NTP server's time drifts away at >= 15 ppm", 1800.0, _ntp_drift,
             ("time.drift", "source.falseticker"), target_s=600.0, warmup_s=NTP_WARMUP_S,
             live=Live("sim-d's clock drifts away at +100 ppm", _live_drift, ("sim-d",), 90.0)),
    Scenario("ntp_mitm_delay", 3, "a man in the middle delays one server's replies by >= 5 ms",
             1800.0, _ntp_mitm_delay, ("ntp.delay_anomaly",), target_polls=3, warmup_s=NTP_WARMUP_S,
             live=Live("a man in the middle delays sim-d's replies by 25 ms",
                       behave("sim-d", reply_delay_s=0.025), ("sim-d",), 40.0)),
    Scenario("ntp_leap", 4, "one server announces a leap second that nobody else does", 1800.0,
             _ntp_leap, ("ntp.leap_anomaly",), target_polls=2, warmup_s=NTP_WARMUP_S,
             live=Live("sim-d announces a leap second nobody else does", behave("sim-d", leap=1),
                       ("sim-d",), 30.0)),
    Scenario("gnss_step", 5, "GNSS time step >= 6 us (PPS and labels together)", 420.0,
             _gnss_step, TIME_CODES, target_s=5.0, warmup_s=GNSS_WARMUP_S,
             live=Live("the receiver's time steps +50 us (labels and PPS together)",
                       lambda w: w.step(50e-6), _RECEIVER, 30.0)),
    Scenario("gnss_label_step", 6, "GNSS labels wrong by whole seconds, PPS in phase", 420.0,
             _gnss_label_step, ("pps.label_mismatch", "gnss.label_error"), target_s=5.0,
             warmup_s=GNSS_WARMUP_S,
             live=Live("the receiver's labels jump +1 s while its PPS stays in phase",
                       receiver_fault("label_offset_s", 1, 0), _RECEIVER, 30.0)),
    Scenario("gnss_push_fast", 7, "GNSS time push >= 1 us/s", 420.0, _gnss_push(1e-6, 30e-6),
             TIME_CODES, target_s=30.0, warmup_s=GNSS_WARMUP_S,
             live=Live("GNSS time push at +10 us/s", lambda w: w.push(10e-6), _RECEIVER, 90.0)),
    Scenario("gnss_push_slow", 8, "GNSS time push >= 0.25 us/s", 1260.0,
             _gnss_push(0.25e-6, 1e-6), TIME_CODES, target_s=300.0, warmup_s=GNSS_SLOW_WARMUP_S,
             live=Live("GNSS time push at +1 us/s", lambda w: w.push(1e-6), _RECEIVER, 620.0)),
    Scenario("gnss_position_jump", 9, "GNSS position moves >= 50 m", 420.0, _gnss_position_jump,
             ("gnss.position_jump",), target_s=10.0, warmup_s=GNSS_WARMUP_S,
             live=Live("the fix moves 80 m north of the antenna",
                       receiver_fault("position_offset_m", (80.0, 0.0), (0.0, 0.0)), (GNSS_ID,),
                       30.0)),
    Scenario("gnss_meaconing", 10, "GNSS replayed with >= 1 ms extra delay and a shifted position",
             420.0, _gnss_meaconing,
             (*TIME_CODES, "gnss.position_jump", "pps.interval", "pps.label_mismatch"),
             target_s=60.0, warmup_s=GNSS_WARMUP_S,
             live=Live("meaconing: the signal replayed 1.5 ms late from 520 m away",
                       _live_meaconing, _RECEIVER, 90.0)),
    Scenario("gnss_cn0_uniform", 11, "C/N0 uniform across satellites or all up >= 6 dB", 420.0,
             _gnss_cn0_uniform, ("gnss.cn0_anomaly",), target_s=60.0, warmup_s=GNSS_WARMUP_S,
             live=Live("C/N0 uniform across satellites (a simulator's flat signals)", _live_cn0,
                       (GNSS_ID,), 90.0)),
    Scenario("gnss_jamming", 12, "jamming: fix lost, C/N0 collapse, PPS stops", 420.0,
             _gnss_jamming, ("gnss.no_fix", "pps.missing"), target_s=10.0, warmup_s=GNSS_WARMUP_S,
             live=Live("jamming: fix lost, C/N0 collapses, PPS stops", _live_jamming, _RECEIVER,
                       30.0)),
    Scenario("gnss_week_rollover", 13, "GPS week rollover or cold-start date with a valid fix",
             420.0, _gnss_week_rollover, ("gnss.date_anomaly",), target_s=FIRST_SENTENCE_S,
             warmup_s=GNSS_WARMUP_S,
             live=Live("the receiver's date rolls back 1024 weeks, fix still 'valid'",
                       receiver_fault("date_fault", "rollover", None), (GNSS_ID,), 30.0)),
    Scenario("gnss_simulator", 14, "receiver in simulator mode", 420.0, _gnss_simulator,
             ("gnss.simulator",), target_s=FIRST_SENTENCE_S, warmup_s=GNSS_WARMUP_S,
             live=Live("the receiver switches to simulator mode",
                       receiver_fault("simulator", True, False), (GNSS_ID,), 30.0)),
    # Live, a shifted pulse train disagrees with the labels: pps.label_mismatch names the pair.
    Scenario("pps_faults", 15, "PPS pulses missing, doubled or shifted", 420.0, _pps_faults,
             ("pps.missing", "pps.interval", "time.step"), target_s=3.0, warmup_s=GNSS_WARMUP_S,
             live=Live("PPS: 2 pulses missing, then 2 doubled, then shifted by 250 ms",
                       _live_pps_faults, _RECEIVER, 45.0)),
    Scenario("host_step", 16, "the host clock itself is stepped by >= 100 ms", 1800.0, _host_step,
             ("consensus.host_step",), target_s=1.0, warmup_s=NTP_WARMUP_S,
             not_live="it steps the host's own clock, which would need root and would disturb "
                      "this machine"),
    Scenario("ntp_group_majority", 17, "most NTP servers lie together, but share one trust group",
             1800.0, _ntp_group_majority, ("source.falseticker", "time.step"), target_polls=3,
             warmup_s=NTP_WARMUP_S,
             live=Live("sim-a, sim-b, sim-c (one operator, op-x) lie by +80 ms together",
                       _live_group_majority, ("sim-a", "sim-b", "sim-c"), 30.0,
                       {"sim-a": "op-x", "sim-b": "op-x", "sim-c": "op-x", "sim-d": "op-d"})),
    Scenario("ntp_spoofed_replies", 18, "an off-path spoofer injects NTP replies (wrong origin)",
             1800.0, _ntp_spoofed_replies, ("ntp.bogus",), target_polls=3, warmup_s=NTP_WARMUP_S,
             live=Live("an off-path spoofer answers for sim-d with a wrong origin",
                       behave("sim-d", wrong_origin=True), ("sim-d",), 30.0,
                       note="live, the simulated server replaces its real replies with the "
                            "spoofed ones, so sim-d also goes stale (a trace from `timewatch "
                            "simulate` has both)")),
    Scenario("ntp_kiss", 19, "one server answers with kiss-o'-death RATE", 1800.0, _ntp_kiss,
             ("ntp.kiss",), target_polls=2, warmup_s=NTP_WARMUP_S,
             live=Live("sim-d answers kiss-o'-death RATE", behave("sim-d", kiss="RATE"),
                       ("sim-d",), 30.0)),
    Scenario("ntp_no_majority", 20, "three groups disagree: no strict majority", 1800.0,
             _ntp_no_majority, ("consensus.lost",), target_polls=3, warmup_s=NTP_WARMUP_S,
             live=Live("sim-b +20 ms, op-c (sim-c, sim-d) -20 ms: no strict majority left",
                       _live_no_majority, (), 30.0,
                       {"sim-a": "op-a", "sim-b": "op-b", "sim-c": "op-c", "sim-d": "op-c"})),
    Scenario("gnss_garbage", 21, "noisy serial line: 5% corrupted sentences, garbage lines",
             420.0, _gnss_garbage, ("gnss.sentence_errors",), target_s=60.0, warmup_s=GNSS_WARMUP_S,
             live=Live("a noisy serial line: 5% corrupted sentences, garbage lines",
                       _live_garbage, (GNSS_ID,), 90.0)),
    Scenario("gnss_push_stairs", 26,
             "GNSS time pushed in steps each below the step threshold, >= 0.5 us/s on average",
             420.0, _gnss_push_stairs, TIME_CODES, target_s=120.0, warmup_s=GNSS_WARMUP_S,
             not_live="the live receiver has no staircase timer yet; `simulate` covers it"),
    Scenario("gnss_outage_shift", 27,
             "time moved while the receiver was jammed (no fix, no PPS) for up to 10 min",
             1020.0, _gnss_outage_shift, TIME_CODES, target_s=10.0, warmup_s=GNSS_WARMUP_S,
             not_live="the live receiver has no scripted return from jamming yet; `simulate` "
                      "covers it"),
    Scenario("ntp_group_lie_inside", 28,
             "one trust group of 4 servers lies together by 6-10 ms, inside their bounds",
             1800.0, _ntp_group_lie_inside, TIME_CODES, warmup_s=NTP_WARMUP_S,
             holds="never accuses a source of another group",
             not_live="the demo runs four servers of four operators and no group of four; "
                      "`simulate` covers it"),
    Scenario("clean", None, "clean operation with realistic noise", 3600.0, _clean),
    Scenario("ntp_server_silent", None, "one server stops answering for 10 minutes", 3600.0,
             _ntp_server_silent, ("source.stale",), warmup_s=NTP_WARMUP_S),
    Scenario("ntp_delay_spikes", None,
             "network delay spikes of 10x the base delay on 5% of exchanges", 3600.0,
             _ntp_delay_spikes),
    Scenario("ntp_real_leap", None,
             "the real leap second of 2016-12-31, announced at different times", 14400.0,
             _ntp_real_leap),
    Scenario("clean_week", None, "7 days of clean operation with the legitimate faults",
             7 * 86_400.0, _clean_week, warmup_s=NTP_WARMUP_S),
    Scenario("gnss_clean", None, "GNSS + PPS + NTP, clean: satellites rising and setting",
             3600.0, _gnss_clean),
    Scenario("gnss_obstruction", None,
             "the receiver loses its fix for a minute, its PPS keeps pulsing", 900.0,
             _gnss_obstruction, warmup_s=GNSS_WARMUP_S),
)}

# The PTP threats (22-25) follow (sim/ptpscen.py builds them on this module's Sim).
from .ptpscen import PTP_SCENARIOS  # noqa: E402

# The threat table's rows in order, then the clean runs and legitimate faults (a stable sort).
SCENARIOS = {sc.name: sc for sc in sorted([*SCENARIOS.values(), *PTP_SCENARIOS],
                                          key=lambda sc: (sc.number is None, sc.number or 0))}


def build(name: str, seed: int = 1, duration_s: float | None = None,
          **params: Any) -> SimTrace:
    """The trace of scenario `name` with its ground truth. Unknown names raise KeyError."""
    sc = SCENARIOS.get(name)
    if sc is None:
        raise KeyError(f"unknown scenario {name!r}; `timewatch simulate --list` names them")
    return sc.builder(sc, seed, sc.duration_s if duration_s is None else duration_s, params)


def write(path: str, st: SimTrace) -> None:
    with TraceWriter(path, st.header) as w:
        for o in st.observations:
            w.write(o)
