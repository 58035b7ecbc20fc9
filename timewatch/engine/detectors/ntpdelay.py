"""`ntp.delay_anomaly`: a man in the middle who delays one direction of a server's exchanges.

Delaying the request by D moves the measured offset by +D/2, delaying the reply by -D/2, and the
round-trip delay grows by D: the offset shift is half the delay increase (chrony's and ntpd's
"delay attack"). A network delay spike of a single exchange has the same signature, so the
detector wants it on `ntp_delay_confirm` consecutive exchanges, with consistent delay increases
in the same direction (all but one agreeing on the size: a spike on top of the attack only adds).
Timeouts and replies that are not samples do not break a streak.

Baselines per server: the smallest delay and the median offset of its recent normal exchanges
(those without a delay increase). Offsets are taken in a frame free of host steps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ...records import Ntp, Observation
from ..core import Context, Detector
from ..ntp import NtpSample, NtpTracker
from ..value import median

# Normal exchanges kept per server for the baselines (8 polls: chrony's and ntpd's filter length,
# twice over so one lost sample does not move the minimum).
BASELINE_SIZE: Final = 16
# Normal exchanges needed before the detector judges a server.
BASELINE_MIN: Final = 4
# Delay increases of one streak agree within this much (absolute) ...
STREAK_SPREAD_S: Final = 0.002
# ... or this fraction of their first value (a MITM adds a fixed delay; spikes are random).
STREAK_SPREAD_FRAC: Final = 0.2


def _spread(level_s: float) -> float:
    """How far the delay increases of one streak may sit from its level and still agree."""
    return max(STREAK_SPREAD_S, STREAK_SPREAD_FRAC * level_s)


@dataclass
class _Server:
    seen: NtpSample | None = None  # the tracker's last sample object already judged
    # delay_s and offset_s of the recent normal exchanges, oldest first
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_SIZE))
    offsets: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_SIZE))
    streak: list[tuple[float, float]] = field(default_factory=list)  # (delay up, offset shift)
    # min(delays), kept up to date: scanned again only when the delay that held it leaves
    min_delay_s: float = math.inf

    def add_normal(self, delay_s: float, offset_s: float) -> None:
        delays = self.delays
        evicted = delays[0] if len(delays) == BASELINE_SIZE else None
        delays.append(delay_s)
        self.offsets.append(offset_s)
        if evicted is not None and evicted == self.min_delay_s:
            self.min_delay_s = min(delays)
        elif delay_s < self.min_delay_s:
            self.min_delay_s = delay_s

    def base_offset_s(self) -> float:
        return median(list(self.offsets))


class NtpDelayDetector(Detector):
    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self._servers: dict[str, _Server] = {}

    def on_observation(self, obs: Observation) -> None:
        if not isinstance(obs, Ntp):
            return
        src = obs.src
        tr = self.ctx.trackers.get(src)
        if not isinstance(tr, NtpTracker):  # (typed: compiled, its sample's fields are loads)
            return
        sample = tr.last
        if sample is None:
            return
        st = self._servers.get(src)
        if st is None:  # (not setdefault: it would build a _Server for every record)
            st = self._servers[src] = _Server()
        if sample is st.seen:
            return
        t4 = obs.t4_ns
        if t4 is None or sample.t_ns != (obs.t1_ns + t4) // 2:
            return  # no sample from this record (its `last` was re-expressed at a host step)
        st.seen = sample
        self._judge(src, st, sample.delay_s, sample.offset_s + self.ctx.host_steps_total_ns / 1e9)

    @staticmethod
    def _level(st: _Server) -> float:
        """The attack's delay increase (0: none yet): of the streak's recent exchanges with the
        offset signature, the increase most of the others agree with, the smallest on a tie.
        Spikes on top of an attack add delay, so an attack's own is the smaller; but one
        exchange delayed a little before the attack settles (a probe) does not become what the
        rest must match."""
        ds = [d for d, o in st.streak[-BASELINE_SIZE:] if o != 0.0]  # (the recent ones)
        level, most = 0.0, 0
        for c in ds:
            spread = _spread(c)
            n = sum(1 for d in ds if abs(d - c) <= spread)
            if n > most or (n == most and c < level):
                level, most = c, n
        return level

    def _judge(self, src: str, st: _Server, delay_s: float, offset_s: float) -> None:
        det = self.ctx.detect
        if len(st.delays) < BASELINE_MIN:
            st.add_normal(delay_s, offset_s)
            return
        base_delay = st.min_delay_s  # min(st.delays)
        dd = delay_s - base_delay
        if dd < det.ntp_delay_jump_s:  # the usual case: no delay increase, a normal exchange
            if st.streak:
                st.streak.clear()
            st.add_normal(delay_s, offset_s)
            self.ctx.alerts.release("ntp.delay_anomaly", self.ctx.now_ns, src)
            return
        doff = offset_s - st.base_offset_s()  # (only needed past the delay test)
        half = dd / 2
        # (the offset's own jitter is the floor: a 5-ms attack moves it by 2.5 +- 0.3 ms)
        tol = det.ntp_delay_offset_tolerance * half
        if tol < det.ntp_jitter_s:
            tol = det.ntp_jitter_s
        level = self._level(st)
        on_top = dd > level + _spread(level)  # more delay than the attack's (if any yet)
        if 0.0 < level < dd and not on_top:
            # Under way, a little more delay than the attack's: a small spike on top of it. On
            # the other leg it moves the offset back by half of itself while adding half of
            # itself to `half`: the signature is off by the whole excess. (A spike far above
            # the attack's delay is not given that much room: on the other leg, it would fit
            # the signature on the wrong side and turn the attack's direction.)
            tol += dd - level
        signature = abs(abs(doff) - half) <= tol
        if not signature and on_top:
            # More delay than the attack's (if any yet), offset off: a spike on the other leg,
            # maybe on top of an attack. It confirms nothing but takes its place in the count.
            st.streak.append((dd, 0.0))
            self._maybe_alert(src, st, delay_s, base_delay)
            return
        if not signature:
            st.streak.clear()
            self.ctx.alerts.release("ntp.delay_anomaly", self.ctx.now_ns, src)
            return
        if st.streak and any((o > 0) != (doff > 0) for _, o in st.streak if o != 0.0):
            # The other leg before: those were spikes (an attack delays one leg). They keep
            # their place in the count but confirm nothing.
            st.streak[:] = [(d, 0.0) for d, _ in st.streak]
        st.streak.append((dd, doff))
        self._maybe_alert(src, st, delay_s, base_delay)

    def _maybe_alert(self, src: str, st: _Server, delay_s: float, base_delay: float) -> None:
        det = self.ctx.detect
        # A network spike on top of the attack adds delay: the streak's smallest increase is the
        # attacker's, and all but one of the streak must agree with it.
        level = self._level(st)
        spread = _spread(level)
        agree = sum(1 for d, o in st.streak if o != 0.0 and abs(d - level) <= spread)
        if len(st.streak) < det.ntp_delay_confirm or agree < det.ntp_delay_confirm - 1:
            return
        dd, doff = next((d, o) for d, o in reversed(st.streak) if o != 0.0)
        half = dd / 2
        leg = "request" if doff > 0 else "reply"
        self.ctx.alerts.assert_(
            "ntp.delay_anomaly", self.ctx.now_ns, (src,),
            f"{src}: round-trip delay up {dd * 1e3:.1f} ms with an offset shift of "
            f"{doff * 1e3:+.1f} ms on {len(st.streak)} exchanges: its {leg}s are being delayed",
            {"delay_s": delay_s, "baseline_delay_s": base_delay, "delay_increase_s": dd,
             "offset_shift_s": doff, "expected_shift_s": half if doff > 0 else -half,
             "consecutive": len(st.streak), "delayed_leg": leg},
            severity="warning", hold_down_s=self.ctx.detect.hold_down_s)
