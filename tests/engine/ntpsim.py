"""NTP exchanges built in the tests (no sockets), with the noise of docs/threats.md.

A server is a model (path delays, asymmetry, its own error, an optional lie); `exchange` plays one
client/server exchange on a true timeline and returns the `Ntp` record a reader would have
written, `pkt_hex` included (encoded, then decoded as the reader does), so the engine's own
checks see a consistent record. Everything random comes from a seeded `random.Random`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import replace as _replace_dataclass
from typing import Any

import msgspec

from timewatch.engine import Engine
from timewatch.records import Event, Header, Ntp, Observation, Output, SourceInfo
from timewatch.wire.ntp import (
    NtpPacket,
    decode,
    ntp_to_unix_ns,
    short_raw,
    unix_ns_to_ntp,
)

NS = 1_000_000_000
# 2025-11-26 12:26:40 UTC: any recent time works; fixed so runs are reproducible.
T0_NS = 1_764_160_000 * NS
# docs/threats.md: exponential jitter of mean 0.3 ms on each one-way delay.
JITTER_MEAN_S = 0.0003
# docs/threats.md: 2% of exchanges have a delay spike of 5-10x the base delay.
SPIKE_P = 0.02
# docs/threats.md: 0.3% of exchanges time out (at most two in a row).
TIMEOUT_P = 0.003
# The reader gives up on a reply after 2 s (sources/ntp.py REPLY_TIMEOUT_S).
REPLY_TIMEOUT_NS = 2 * NS
# Host realtime error (disciplined by NTP): hundreds of us, slewing sub-ppm (docs/threats.md).
HOST_ERR_AMPL_S = 0.0003
HOST_ERR_PERIOD_S = 6 * 3600.0


def replace(obj: Any, **changes: Any) -> Any:
    """A copy with changes: records are msgspec Structs, the simulator's values dataclasses."""
    if isinstance(obj, msgspec.Struct):
        return msgspec.structs.replace(obj, **changes)
    return _replace_dataclass(obj, **changes)


@dataclass
class Server:
    src: str
    group: str
    delay_s: float  # base one-way delay (docs/threats.md: 2-40 ms)
    asym_s: float = 0.0  # the return path is longer by this much (docs/threats.md: a few ms)
    offset_s: float = 0.0  # the server's own error (docs/threats.md: up to 0.3 ms)
    root_delay_s: float = 0.0005
    root_dispersion_s: float = 0.0005  # covers offset_s: the server is honest
    stratum: int = 1
    refid: bytes = b"GPS\0"
    lie_s: float = 0.0  # added to the server's time (a liar)
    leap: int = 0
    poll_s: float = 64.0
    phase_s: float = 0.0  # first request after T0
    timeouts_in_row: int = field(default=0, repr=False)


def host_error_s(true_ns: int) -> float:
    return HOST_ERR_AMPL_S * math.sin(2 * math.pi * (true_ns - T0_NS) / 1e9 / HOST_ERR_PERIOD_S)


def host_ns(true_ns: int) -> int:
    return true_ns + round(host_error_s(true_ns) * 1e9)


def packet_record(src: str, t1_ns: int, t4_ns: int, pkt: NtpPacket, xmt: int,
                  error: str | None = None, **override: object) -> Ntp:
    """The record a reader writes for reply `pkt` to our request `xmt` (fields from the packet)."""
    rec = Ntp(src=src, rx_ns=t4_ns, t1_ns=t1_ns, xmt_hex=f"{xmt:016x}",
              t2_ns=ntp_to_unix_ns(pkt.rec_ts, t1_ns), t3_ns=ntp_to_unix_ns(pkt.xmt_ts, t1_ns),
              t4_ns=t4_ns, org_hex=f"{pkt.org_ts:016x}", leap=pkt.leap, version=pkt.version,
              mode=pkt.mode, stratum=pkt.stratum, poll=pkt.poll, precision=pkt.precision,
              root_delay=pkt.root_delay_s, root_dispersion=pkt.root_dispersion_s,
              refid=pkt.refid, pkt_hex=pkt.encode().hex(), error=error)
    return replace(rec, **override) if override else rec


def exchange(s: Server, true_t1_ns: int, rng: random.Random, noise: bool = True) -> Ntp:
    """One exchange with server `s` whose request leaves at true time `true_t1_ns`."""
    t1 = host_ns(true_t1_ns)
    xmt = rng.getrandbits(64) | 1
    if noise and s.timeouts_in_row < 2 and rng.random() < TIMEOUT_P:
        s.timeouts_in_row += 1
        return Ntp(src=s.src, rx_ns=t1 + REPLY_TIMEOUT_NS, t1_ns=t1, xmt_hex=f"{xmt:016x}",
                   error="timeout")
    s.timeouts_in_row = 0
    d_out, d_back = s.delay_s, s.delay_s + s.asym_s
    if noise:
        d_out += rng.expovariate(1 / JITTER_MEAN_S)
        d_back += rng.expovariate(1 / JITTER_MEAN_S)
        if rng.random() < SPIKE_P:
            k = rng.uniform(5, 10)
            if rng.random() < 0.5:
                d_out = s.delay_s * k
            else:
                d_back = (s.delay_s + s.asym_s) * k
    proc_ns = rng.randrange(10_000, 100_000) if noise else 50_000
    true_rx = true_t1_ns + round(d_out * 1e9)
    server_err_ns = round((s.offset_s + s.lie_s) * 1e9)
    t2 = true_rx + server_err_ns
    t3 = t2 + proc_ns
    t4 = host_ns(true_rx + proc_ns + round(d_back * 1e9))
    pkt = NtpPacket(s.leap, 4, 4, s.stratum, 6, -20, short_raw(s.root_delay_s),
                    short_raw(s.root_dispersion_s), s.refid, unix_ns_to_ntp(t2 - 1_000_000_000),
                    xmt, unix_ns_to_ntp(t2), unix_ns_to_ntp(t3))
    return packet_record(s.src, t1, t4, decode(pkt.encode()), xmt)


def header(servers: list[Server]) -> Header:
    return Header("test", T0_NS, {s.src: SourceInfo("ntp", s.group, server=f"{s.src}.test",
                                                    poll_s=s.poll_s) for s in servers})


def schedule(servers: list[Server], duration_s: float, rng: random.Random,
             start_s: float = 0.0, noise: bool = True) -> list[Ntp]:
    """Every server polled on its own cadence (with 1% jitter) from start_s for duration_s."""
    out: list[Ntp] = []
    for s in servers:
        t = start_s + s.phase_s
        while t < start_s + duration_s:
            out.append(exchange(s, T0_NS + round(t * 1e9), rng, noise))
            t += s.poll_s * (1 + rng.uniform(-0.01, 0.01))
    out.sort(key=lambda o: o.rx_ns)
    return out


def run(hdr: Header, obs: Sequence[Observation], engine: Engine | None = None) -> list[Output]:
    eng = engine or Engine(hdr)
    out: list[Output] = []
    for o in obs:
        out.extend(eng.feed(o))
    out.extend(eng.finish())
    return out


def events(out: Sequence[Output]) -> list[Event]:
    return [o for o in out if isinstance(o, Event)]


def four_groups(rng: random.Random, poll_s: float = 64.0) -> list[Server]:
    """Six honest servers from four operators, with the delays and asymmetries of docs/threats.md."""
    layout = [("a1", "op-a"), ("a2", "op-a"), ("b1", "op-b"), ("c1", "op-c"), ("c2", "op-c"),
              ("d1", "op-d")]
    out = []
    for sid, g in layout:
        d = rng.uniform(0.002, 0.040)
        out.append(Server(sid, g, d, asym_s=rng.uniform(-1, 1) * min(0.003, d / 2),
                          offset_s=rng.uniform(-0.0003, 0.0003),
                          root_delay_s=rng.uniform(0.0001, 0.002),
                          root_dispersion_s=rng.uniform(0.0003, 0.001), poll_s=poll_s,
                          phase_s=rng.uniform(0, poll_s)))
    return out
