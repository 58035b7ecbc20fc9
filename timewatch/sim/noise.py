"""Noise models for simulated traces: the host's two clocks and the NTP network paths.

The numbers are the floor that docs/threats.md ("Noise: at least this much") pins down. Every
model draws from a `random.Random` its caller seeds, and is queried in a fixed order, so the same
seed always gives the same numbers (no wall clock, no unordered iteration).

Time inside the simulator is *true* time: integer ns since the Unix epoch (UTC, no leap seconds).
The host reads it through `HostClock.realtime_ns` (CLOCK_REALTIME, disciplined by NTP, may be
stepped) and `HostClock.raw_ns` (CLOCK_MONOTONIC_RAW, the free-running crystal).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

NS = 1_000_000_000
MINUTE_NS = 60 * NS

# docs/threats.md: "a crystal off by up to +-100 ppm".
CRYSTAL_MAX_PPM = 100.0
# docs/threats.md: "temperature swings that move the crystal's frequency by 2 ppm over a day" (+-1 ppm).
DIURNAL_AMPLITUDE_PPM = 1.0
DAY_S = 86_400.0
# docs/threats.md: "a random walk of 0.02 ppm a minute" (one Gaussian step per minute).
RANDOM_WALK_PPM_PER_MIN = 0.02
# An oven-controlled oscillator (OCXO) instead of the board's crystal (`HostClock.ocxo`): a
# random walk of 0.0005 ppm a minute and 0.01 ppm over the day's temperature swing.
OCXO_WALK_PPM_PER_MIN = 0.0005
OCXO_DIURNAL_PPM = 0.01
# docs/threats.md: "the realtime clock disciplined by NTP (sub-ppm slews, hundreds of microseconds of
# error)": three slow sinusoids of 40-120 us with periods of 1-4 h slew at most 0.6 ppm together.
REALTIME_TERMS = 3
REALTIME_AMPLITUDE_S = (40e-6, 120e-6)
REALTIME_PERIOD_S = (3_600.0, 14_400.0)
# Boot happened a while before the trace starts (CLOCK_MONOTONIC_RAW counts from boot).
BOOT_AGO_S = (3_600.0, 30 * 86_400.0)
# docs/threats.md: "records handed over up to 20 ms out of order".
HANDOVER_MAX_S = 0.020


class HostClock:
    """The host: true time -> (CLOCK_REALTIME, CLOCK_MONOTONIC_RAW) readings, both integer ns.

    Raw: frequency = fixed crystal error + diurnal swing + random walk, constant within each
    minute and integrated exactly, so a reading is a pure function of true time. Realtime: true
    time + a small disciplined error + every host step taken so far.
    """

    def __init__(self, rng: random.Random, t0_ns: int, crystal_ppm: float | None = None):
        self.t0_ns = t0_ns
        self.crystal_ppm = (rng.uniform(-CRYSTAL_MAX_PPM, CRYSTAL_MAX_PPM)
                            if crystal_ppm is None else crystal_ppm)
        self._diurnal_phase = rng.uniform(0.0, 2 * math.pi)
        self._raw0_ns = int(rng.uniform(*BOOT_AGO_S) * NS)
        self._rt_terms = [(rng.uniform(*REALTIME_AMPLITUDE_S) * NS,
                           rng.uniform(*REALTIME_PERIOD_S) * NS,
                           rng.uniform(0.0, 2 * math.pi)) for _ in range(REALTIME_TERMS)]
        self._rw_rng = random.Random(rng.getrandbits(64))
        self.walk_ppm_per_min = RANDOM_WALK_PPM_PER_MIN
        self.diurnal_ppm = DIURNAL_AMPLITUDE_PPM
        self._walk_ppm = [0.0]  # random-walk part of the frequency in minute m
        self._phase_ns = [0.0]  # raw - true time accumulated at the start of minute m
        self.steps: list[tuple[int, int]] = []  # (true time, step ns), in time order

    def ocxo(self) -> None:
        """The host runs on an oven-controlled oscillator (before any reading is taken)."""
        assert len(self._phase_ns) == 1, "the oscillator is chosen before the clock is read"
        self.walk_ppm_per_min = OCXO_WALK_PPM_PER_MIN
        self.diurnal_ppm = OCXO_DIURNAL_PPM

    def freq_ppm(self, minute: int) -> float:
        """The crystal's frequency error during minute `minute` of the run (ppm)."""
        self._extend(minute)
        return self._freq(minute)

    def _freq(self, m: int) -> float:
        day_frac = (m * 60.0) / DAY_S
        diurnal = self.diurnal_ppm * math.sin(2 * math.pi * day_frac + self._diurnal_phase)
        return self.crystal_ppm + diurnal + self._walk_ppm[m]

    def _extend(self, m: int) -> None:
        while len(self._phase_ns) <= m + 1:
            k = len(self._phase_ns) - 1
            self._phase_ns.append(self._phase_ns[k] + self._freq(k) * 1e-6 * MINUTE_NS)
            self._walk_ppm.append(self._walk_ppm[k]
                                  + self._rw_rng.gauss(0.0, self.walk_ppm_per_min))

    def raw_ns(self, t_ns: int) -> int:
        """CLOCK_MONOTONIC_RAW at true time t_ns."""
        dt = t_ns - self.t0_ns
        m = max(0, dt // MINUTE_NS)
        self._extend(m)
        phase = self._phase_ns[m] + self._freq(m) * 1e-6 * (dt - m * MINUTE_NS)
        return self._raw0_ns + dt + int(round(phase))

    def realtime_error_ns(self, t_ns: int) -> int:
        """CLOCK_REALTIME - true time at t_ns, host steps included."""
        dt = t_ns - self.t0_ns
        err = sum(a * math.sin(2 * math.pi * dt / p + ph) for a, p, ph in self._rt_terms)
        steps = sum(s for at, s in self.steps if at <= t_ns)
        return int(round(err)) + steps

    def realtime_ns(self, t_ns: int) -> int:
        """CLOCK_REALTIME at true time t_ns."""
        return t_ns + self.realtime_error_ns(t_ns)

    def step(self, at_ns: int, step_ns: int) -> None:
        """Someone steps the host's realtime clock by step_ns at true time at_ns."""
        self.steps.append((at_ns, step_ns))
        self.steps.sort()


# -- NTP paths ---------------------------------------------------------------------------------

# docs/threats.md: "one-way delays of 2-40 ms per server".
ONE_WAY_DELAY_S = (0.002, 0.040)
# docs/threats.md: "paths asymmetric by up to a few ms" (difference between the two legs).
ASYMMETRY_MAX_S = 0.003
# docs/threats.md: "exponential jitter (mean 0.3 ms)" on each leg.
JITTER_MEAN_S = 0.0003
# docs/threats.md: "2% of exchanges with a delay spike of 5-10x the base delay".
SPIKE_PROBABILITY = 0.02
SPIKE_FACTOR = (5.0, 10.0)
# docs/threats.md: "servers off by up to 0.3 ms".
SERVER_ERROR_MAX_S = 0.0003
# docs/threats.md: "0.3% of exchanges timing out (at most two in a row)".
TIMEOUT_PROBABILITY = 0.003
TIMEOUT_MAX_RUN = 2
# A server takes 10-50 us between receiving a request and sending the reply (chronyd on a Pi).
PROCESSING_S = (10e-6, 50e-6)


@dataclass(frozen=True, slots=True)
class PathDraw:
    """One exchange's network: leg delays in seconds, or a timeout."""

    out_s: float
    back_s: float
    processing_s: float
    timed_out: bool = False
    spiked: bool = False


class NtpPath:
    """The network between the host and one NTP server: base delay, asymmetry, jitter, spikes."""

    def __init__(self, rng: random.Random, spike_probability: float = SPIKE_PROBABILITY,
                 spike_factor: tuple[float, float] = SPIKE_FACTOR,
                 one_way_s: float | None = None):
        self.rng = rng
        self.one_way_s = rng.uniform(*ONE_WAY_DELAY_S) if one_way_s is None else one_way_s
        asym = rng.uniform(-ASYMMETRY_MAX_S, ASYMMETRY_MAX_S)
        self.base_out_s = self.one_way_s + asym / 2
        self.base_back_s = self.one_way_s - asym / 2
        self.server_error_s = rng.uniform(-SERVER_ERROR_MAX_S, SERVER_ERROR_MAX_S)
        self.spike_probability = spike_probability
        self.spike_factor = spike_factor
        self._timeouts_in_row = 0

    def draw(self) -> PathDraw:
        """The next exchange. Always consumes the same number of random numbers."""
        r = self.rng
        timeout = r.random() < TIMEOUT_PROBABILITY
        spike = r.random() < self.spike_probability
        spike_leg_out = r.random() < 0.5
        factor = r.uniform(*self.spike_factor)
        out = self.base_out_s + r.expovariate(1.0 / JITTER_MEAN_S)
        back = self.base_back_s + r.expovariate(1.0 / JITTER_MEAN_S)
        proc = r.uniform(*PROCESSING_S)
        if timeout and self._timeouts_in_row < TIMEOUT_MAX_RUN:
            self._timeouts_in_row += 1
            return PathDraw(out, back, proc, timed_out=True)
        self._timeouts_in_row = 0
        if spike:
            if spike_leg_out:
                out = self.base_out_s * factor
            else:
                back = self.base_back_s * factor
        return PathDraw(out, back, proc, spiked=spike)


def handover_delay_ns(rng: random.Random) -> int:
    """How long a reader holds a record before the engine gets it (out-of-order delivery)."""
    return int(rng.uniform(0.0, HANDOVER_MAX_S) * NS)
