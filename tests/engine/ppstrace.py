"""Test helper: PPS+GNSS traces built in the tests (sim/pps.py edges, real RMC sentences, ticks).

The GNSS labels are real NMEA RMC sentences with correct checksums, arriving `label_latency_s`
(+-4 ms) after the receiver's pulse, as docs/threats.md's noise floor says. They are read by
engine/gnss.py's tracker, the real one: the PPS tests judge PPS against the labels the product
makes (no stand-in tracker).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from timewatch.engine.core import Engine
from timewatch.records import Event, Header, Nmea, Observation, Sample, SourceInfo, Tick
from timewatch.sim.noise import NS, HostClock
from timewatch.sim.pps import PpsSim

T0_NS = 1_795_694_400 * NS  # 2026-11-26T12:00:00Z: after gnss_not_before (the build date)


def nmea_checksum(body: str) -> str:
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"{c:02X}"


def rmc(utc_ns: int, valid: bool = True) -> str:
    t = datetime.fromtimestamp(utc_ns // NS, UTC)
    body = (f"GPRMC,{t:%H%M%S}.00,{'A' if valid else 'V'},4807.038,N,01131.000,E,0.02,,"
            f"{t:%d%m%y},,,{'A' if valid else 'N'}")
    return f"${body}*{nmea_checksum(body)}"


@dataclass
class Built:
    header: Header
    obs: list[Observation]
    host: HostClock
    pps: PpsSim


@dataclass
class Run:
    events: list[Event]
    samples: list[Sample]
    engine: Engine
    built: Built
    alerts: list[Event] = field(default_factory=list)

    def codes(self) -> list[str]:
        """Codes of the alerts about PPS: naming pps0, or a pps.* code. (The GNSS receiver's
        own alerts belong to engine/gnss.py's tests.)"""
        return [e.code for e in self.pps_alerts()]

    def pps_alerts(self) -> list[Event]:
        return [e for e in self.alerts if "pps0" in e.sources or e.code.startswith("pps.")]

    def first(self, code: str) -> Event:
        return next(e for e in self.pps_alerts() if e.code == code)


def build(duration_s: int, seed: int = 1, *, crystal_ppm: float | None = None,
          host: HostClock | None = None, label_latency_s: float = 0.110,
          label_error_s: Callable[[int], int] | None = None,
          label_valid: Callable[[int], bool] | None = None,
          configure: Callable[[PpsSim], None] | None = None,
          outlier_probability: float = 0.01, ticks: bool = True, raw: bool = True) -> Built:
    """`duration_s` seconds of pulses, labels and ticks from T0_NS, in rx order."""
    rng = random.Random(seed)
    host = host or HostClock(random.Random(seed + 1000), T0_NS, crystal_ppm)
    sim = PpsSim(random.Random(seed + 2000), host, outlier_probability=outlier_probability)
    if configure is not None:
        configure(sim)
    header = Header("test", T0_NS, {
        "gnss0": SourceInfo("gnss", "gnss"),
        "pps0": SourceInfo("pps", "gnss", label_from="gnss0"),
    })
    obs: list[Observation] = []
    for i in range(duration_s):
        sec = T0_NS + i * NS
        obs.extend(sim.pulse(sec))
        lat = label_latency_s + rng.uniform(-0.004, 0.004)
        t_label = sim.second_true_ns(sec) + round(lat * NS)
        label = sec + (label_error_s(sec) if label_error_s else 0)
        valid = label_valid(sec) if label_valid else True
        obs.append(Nmea("gnss0", host.realtime_ns(t_label), rmc(label, valid), host.raw_ns(t_label)))
        if ticks:
            t_tick = sec + NS // 2
            obs.append(Tick(host.realtime_ns(t_tick), host.raw_ns(t_tick)))
    obs.sort(key=lambda o: o.rx_ns)
    if not raw:
        obs = [_no_raw(o) for o in obs]
    return Built(header, obs, host, sim)


def _no_raw(o: Observation) -> Observation:
    from msgspec.structs import replace
    return replace(o, raw_ns=None)


def run(b: Built, engine: Engine | None = None) -> Run:
    eng = engine or Engine(b.header)
    events: list[Event] = []
    samples: list[Sample] = []
    for o in b.obs:
        for out in eng.feed(o):
            if isinstance(out, Event):
                events.append(out)
            elif isinstance(out, Sample):
                samples.append(out)
    events.extend(eng.finish())
    return Run(events, samples, eng, b, [e for e in events if e.type == "alert"])


def second_of(b: Built, i: int) -> int:
    return T0_NS + i * NS
