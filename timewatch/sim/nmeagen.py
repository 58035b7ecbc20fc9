"""A simulated GNSS receiver's NMEA output: RMC, GGA, GSA, GSV, ZDA with correct checksums.

Time inside the simulator is true time (integer ns since the Unix epoch, as in `sim.noise`). For
each UTC second `second_ns` the receiver marks the second at true time `second_ns -
gnss_error_ns(second_ns)` (a spoofed receiver is off; use the same function for `sim.pps.PpsSim`)
and starts sending that second's sentences 110 ms (+-4 ms, uniform) later, then at the line's
baud rate (10 bits a byte, 8N1): `epoch()` gives (arrival true ns of each line's LF, line).

Noise (docs/threats.md, "at least this much"): satellites rising and setting on 6-hour passes (a
12-hour orbit, above the horizon half of it), C/N0 from elevation plus 1.5 dB-Hz of noise,
position noise of a few metres, one corrupted character per 10,000 sentences.

Faults are functions of the second's true start (ns), like `PpsSim`, so a scenario scripts them:
`gnss_error_ns` (time step/push/meaconing delay), `label_offset_s` (labels wrong by whole seconds),
`position_offset_m` (north, east), `fix_lost`, `jammed` (no fix and C/N0 collapse), `simulator`
(GGA quality 8, RMC mode S, claiming a valid fix), `date_fault` ("rollover": 1024 weeks back;
"coldstart": 1980-01-06, both claiming a valid fix), `cn0_fn` (rewrite the C/N0 table: uniform,
all up 6 dB...). `corrupt_rate` and `garbage_rate` make a noisy line. Seedable: one
`random.Random`, drawn from in a fixed order whatever the faults.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..engine.gnss_epoch import civil_from_days
from ..records import Nmea
from ..wire.nmea import sentence
from .noise import NS, HostClock

# docs/threats.md: "labels arriving 110 ms (+-4 ms) after their edge, then at 9600 baud".
LATENCY_S = 0.110
LATENCY_JITTER_S = 0.004
BAUD = 9600
# docs/threats.md: "one corrupted character per 10,000 sentences".
CORRUPT_RATE = 1e-4
# GPS orbits twice a sidereal day; a satellite is above the horizon about half of it: 6-hour passes.
ORBIT_S = 43_082.0
SATELLITES = 24  # a GPS constellation's worth of PRNs
MASK_DEG = 5.0  # receivers track above ~5 degrees
USED_MASK_DEG = 10.0  # ... and use satellites above ~10 degrees, at most 12 in GSA
# C/N0 at the horizon and the zenith (open sky, patch antenna), and its noise (docs/threats.md).
CN0_HORIZON_DB_HZ = 32.0
CN0_ZENITH_DB_HZ = 50.0
CN0_NOISE_DB_HZ = 1.5
# docs/threats.md: "position noise of a few metres".
POSITION_NOISE_M = 2.0
ALTITUDE_NOISE_M = 3.0
M_PER_DEG_LAT = 111_320.0  # metres per degree of latitude (WGS-84, mid latitudes)
ROLLOVER_DAYS = 1024 * 7  # a GPS week-number rollover


def _zero(_: int) -> int:
    return 0


def _never(_: int) -> bool:
    return False


def _no_offset(_: int) -> tuple[float, float]:
    return (0.0, 0.0)


def _none(_: int) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Sat:
    prn: int
    elev_max_deg: float
    phase: float  # orbit phase at t = 0 (radians)
    az0_deg: float


class NmeaSim:
    """One receiver. Call `epoch(second_ns)` (or `observations`) for each UTC second in order."""

    def __init__(self, rng: random.Random, position: tuple[float, float, float] =
                 (48.8566, 2.3522, 35.0), talker: str = "GP",
                 sentences: tuple[str, ...] = ("RMC", "GGA", "GSA", "GSV", "ZDA"),
                 baud: int = BAUD, src: str = "gnss0", corrupt_rate: float = CORRUPT_RATE,
                 garbage_rate: float = 0.0):
        self.rng = rng
        self.lat_deg, self.lon_deg, self.alt_m = position
        self.talker = talker
        self.sentences = sentences
        self.byte_ns = 10 * NS // baud
        self.src = src
        self.corrupt_rate = corrupt_rate
        self.garbage_rate = garbage_rate
        self.sats = [Sat(p, rng.uniform(25.0, 88.0), rng.uniform(0, 2 * math.pi),
                         rng.uniform(0, 360)) for p in rng.sample(range(1, 33), SATELLITES)]
        self.gnss_error_ns: Callable[[int], int] = _zero
        self.label_offset_s: Callable[[int], int] = _zero
        self.position_offset_m: Callable[[int], tuple[float, float]] = _no_offset
        self.fix_lost: Callable[[int], bool] = _never
        self.jammed: Callable[[int], bool] = _never
        self.simulator: Callable[[int], bool] = _never
        self.date_fault: Callable[[int], str | None] = _none
        self.cn0_fn: Callable[[int, dict[int, float]], dict[int, float]] | None = None

    # -- the sky -----------------------------------------------------------------------------
    def sky(self, second_ns: int) -> list[tuple[int, float, float, float]]:
        """(prn, elevation_deg, azimuth_deg, cn0_db_hz) of the satellites above the mask."""
        t = second_ns / NS
        out = []
        for s in self.sats:
            ph = s.phase + 2 * math.pi * t / ORBIT_S
            el = s.elev_max_deg * math.sin(ph)
            noise = self.rng.gauss(0.0, CN0_NOISE_DB_HZ)  # drawn for every satellite, always
            if el < MASK_DEG:
                continue
            az = (s.az0_deg + 360.0 * t / ORBIT_S) % 360.0
            cn0 = CN0_HORIZON_DB_HZ + (CN0_ZENITH_DB_HZ - CN0_HORIZON_DB_HZ) * \
                math.sin(math.radians(el)) + noise
            out.append((s.prn, el, az, cn0))
        return sorted(out)

    # -- sentences ---------------------------------------------------------------------------
    def lines(self, second_ns: int) -> list[str]:
        """The sentences the receiver sends for UTC second `second_ns` (checksums correct)."""
        r = self.rng
        sky = self.sky(second_ns)
        dn, de = r.gauss(0, POSITION_NOISE_M), r.gauss(0, POSITION_NOISE_M)
        dalt = r.gauss(0, ALTITUDE_NOISE_M)
        jammed = self.jammed(second_ns)
        fix = not (jammed or self.fix_lost(second_ns))
        cn0 = {prn: c for prn, _, _, c in sky}
        if self.cn0_fn is not None:
            cn0 = self.cn0_fn(second_ns, cn0)
        if jammed:  # C/N0 collapse: nothing tracked above the noise
            cn0 = {}
        on, oe = self.position_offset_m(second_ns)
        lat = self.lat_deg + (on + dn) / M_PER_DEG_LAT
        lon = self.lon_deg + (oe + de) / (M_PER_DEG_LAT * math.cos(math.radians(self.lat_deg)))
        alt = self.alt_m + dalt
        label_s = second_ns // NS + self.label_offset_s(second_ns)
        days, tod = divmod(label_s, 86_400)
        fault = self.date_fault(second_ns)
        if fault == "rollover":
            days -= ROLLOVER_DAYS
        elif fault == "coldstart":
            days = 3657  # 1980-01-06, the GPS epoch: a receiver without almanac
        y, mo, d = civil_from_days(days)
        hms = f"{tod // 3600:02d}{tod // 60 % 60:02d}{tod % 60:02d}.00"
        sim = self.simulator(second_ns)
        used = [prn for prn, el, _, _ in sky if el >= USED_MASK_DEG and prn in cn0][:12] \
            if fix else []
        t = self.talker
        out: list[str] = []
        for kind in self.sentences:
            if kind == "RMC":
                status = "A" if fix or sim else "V"
                mode = "S" if sim else ("A" if fix else "N")
                out.append(sentence(f"{t}RMC,{hms},{status},{_lat(lat)},{_lon(lon)},0.02,,"
                                    f"{d:02d}{mo:02d}{y % 100:02d},,,{mode}"))
            elif kind == "GGA":
                q = 8 if sim else (1 if fix else 0)
                out.append(sentence(f"{t}GGA,{hms},{_lat(lat)},{_lon(lon)},{q},{len(used):02d},"
                                    f"0.9,{alt:.1f},M,46.2,M,,"))
            elif kind == "GSA":
                ids = [f"{p:02d}" for p in used] + [""] * (12 - len(used))
                out.append(sentence(f"{t}GSA,A,{3 if fix or sim else 1},{','.join(ids)},"
                                    "1.6,0.9,1.3"))
            elif kind == "GSV":
                view = [(p, el, az) for p, el, az, _ in sky]
                n_msg = max(1, math.ceil(len(view) / 4))
                for k in range(n_msg):
                    part = view[4 * k:4 * k + 4]
                    body = ",".join(
                        f"{p:02d},{el:.0f},{az:03.0f},"
                        + (f"{cn0[p]:.0f}" if p in cn0 else "") for p, el, az in part)
                    out.append(sentence(f"{t}GSV,{n_msg},{k + 1},{len(view):02d}"
                                        + (f",{body}" if body else "")))
            elif kind == "ZDA":
                out.append(sentence(f"{t}ZDA,{hms},{d:02d},{mo:02d},{y:04d},00,00"))
        return [self._noisy(x) for x in out]

    def _noisy(self, line: str) -> str:
        r = self.rng
        a, b, c = r.random(), r.random(), r.randrange(1, max(2, len(line) - 3))
        if a < self.corrupt_rate:  # one character changed: the checksum no longer matches
            ch = line[c]
            repl = "0" if ch != "0" else "1"
            line = line[:c] + repl + line[c + 1:]
        if b < self.garbage_rate:
            junk = "".join(r.choice(string.ascii_letters + string.digits + ",.*$")
                           for _ in range(r.randrange(5, 40)))
            line = junk + "\n" + line  # a garbage line before the sentence
        return line

    # -- timing ------------------------------------------------------------------------------
    def epoch(self, second_ns: int) -> list[tuple[int, str]]:
        """(true time the line's LF arrives, line) for every line of UTC second `second_ns`."""
        start = self.rng.uniform(LATENCY_S - LATENCY_JITTER_S, LATENCY_S + LATENCY_JITTER_S)
        t = second_ns - self.gnss_error_ns(second_ns) + round(start * NS)
        out = []
        for line in self.lines(second_ns):
            for part in line.split("\n"):
                t += (len(part) + 2) * self.byte_ns  # the line and its CR LF
                out.append((t, part))
        return out

    def observations(self, second_ns: int, host: HostClock) -> list[Nmea]:
        """The reader's observations of second `second_ns`: each LF stamped by the host."""
        return [Nmea(self.src, host.realtime_ns(t), line, host.raw_ns(t))
                for t, line in self.epoch(second_ns)]

    def stream(self, start_ns: int, seconds: int) -> Iterator[tuple[int, str]]:
        """(true arrival ns, line) for `seconds` consecutive UTC seconds from start_ns."""
        first = start_ns - start_ns % NS
        for k in range(seconds):
            yield from self.epoch(first + k * NS)


def _lat(v: float) -> str:
    a = abs(v)
    d = int(a)
    return f"{d:02d}{(a - d) * 60:08.5f},{'N' if v >= 0 else 'S'}"


def _lon(v: float) -> str:
    a = abs(v)
    d = int(a)
    return f"{d:03d}{(a - d) * 60:08.5f},{'E' if v >= 0 else 'W'}"


def uniform_cn0(level_db_hz: float = 45.0, sigma_db_hz: float = 0.5,
                rng: random.Random | None = None) -> Callable[[int, dict[int, float]],
                                                               dict[int, float]]:
    """A spoofer's C/N0: every satellite at one level (docs/threats.md #11)."""
    r = rng or random.Random(0)
    return lambda _s, c: {p: level_db_hz + r.gauss(0, sigma_db_hz) for p in c}


def raised_cn0(step_db: float = 8.0) -> Callable[[int, dict[int, float]], dict[int, float]]:
    """All satellites up by step_db at once (docs/threats.md #11)."""
    return lambda _s, c: {p: v + step_db for p, v in c.items()}
