"""Synthetic `ptp` records: what a PTP source's reader would record of a grandmaster, poll by
poll, with the noise of software timestamps on a LAN. The simulator's PTP scenarios and the
engine tests build their traces from it; nothing here reads a clock.

A `PtpGm` is one grandmaster as ptp4l sees it (identity, announce, its time error and the path
to it, as functions of true time); `PtpPoll` turns a poll at a true instant into the record,
in host time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..ptpmgmt import Ptp

NS = 1_000_000_000
# Software timestamps on a quiet LAN: a few hundred ns of jitter per stamp, the path ~ 20 us.
SW_JITTER_S = 0.5e-6
BASE_PATH_S = 20e-6


@dataclass
class PtpGm:
    """One grandmaster: its announce, and what it does to the time (functions of true ns)."""

    identity: str = "001122.fffe.334455"
    priority1: int = 128
    priority2: int = 128
    clock_class: int = 6
    clock_accuracy: int = 0x21
    variance: int = 0x4E5D
    time_source: int = 0x20
    utc_offset: int = 37
    utc_offset_valid: bool = True
    ptp_timescale: bool = True
    time_traceable: bool = True
    frequency_traceable: bool = True
    leap61: bool = False
    leap59: bool = False
    steps_removed: int = 1
    # Its time error (s), and extra delay on the Sync (master -> slave) and Delay_Req legs (s).
    lie_s: Callable[[int], float] = lambda t: 0.0
    extra_delay_s: Callable[[int], tuple[float, float]] = lambda t: (0.0, 0.0)


@dataclass
class PtpPoll:
    """The records of one PTP source polled every `poll_s` (its Sync every second)."""

    src: str
    rng: random.Random
    timestamping: str = "software"
    path_s: float = BASE_PATH_S
    jitter_s: float = SW_JITTER_S
    # ptp4l filters the path delay with a moving median (delay_filter_length 10).
    delays: list[float] = field(default_factory=list)
    filter_len: int = 10

    def record(self, gm: PtpGm | None, true_ns: int, rx_ns: int, raw_ns: int | None,
               host_error_ns: int = 0) -> Ptp:
        """The record of a poll answered at true time `true_ns` (rx_ns / raw_ns: its host
        stamps; `host_error_ns`: host realtime - true time then). `gm` None: no master."""
        if gm is None:
            return Ptp(self.src, rx_ns, timestamping=self.timestamping, port_state="LISTENING",
                       log_announce_interval=1, log_sync_interval=0, delay_mechanism=1,
                       peer_mean_path_delay_ns=0, master_offset_ns=0, ingress_ns=0,
                       gm_present=False, gm_identity="aabbcc.fffe.ddeeff",
                       parent_port="aabbcc.fffe.ddeeff-0", gm_priority1=128, gm_clock_class=255,
                       gm_clock_accuracy=0xFE, gm_variance=0xFFFF, gm_priority2=128,
                       parent_gm_identity="aabbcc.fffe.ddeeff", steps_removed=0,
                       offset_from_master_ns=0.0, mean_path_delay_ns=0.0, utc_offset=37,
                       leap61=False, leap59=False, utc_offset_valid=False, ptp_timescale=False,
                       time_traceable=False, frequency_traceable=False, time_source=0xA0,
                       raw_ns=raw_ns)
        # The last Sync: on the whole second before the poll (the master's sync interval 1 s).
        sync_true = (true_ns // NS) * NS
        lie = gm.lie_s(sync_true)
        extra_sync, extra_req = gm.extra_delay_s(sync_true)
        j = self.jitter_s
        leg_ms = self.path_s + extra_sync + self.rng.gauss(0, j)  # t2 - t1 in true time
        leg_sm = self.path_s + extra_req + self.rng.gauss(0, j)  # t4 - t3 in true time
        # Slave clock = host realtime; master clock = true + lie.
        t2_minus_t1 = leg_ms - lie + host_error_ns / 1e9
        t4_minus_t3 = leg_sm + lie - host_error_ns / 1e9
        self.delays.append((t2_minus_t1 + t4_minus_t3) / 2)
        del self.delays[:-self.filter_len]
        mpd = sorted(self.delays)[len(self.delays) // 2]
        master_offset = t2_minus_t1 - mpd  # ptp4l's: slave - master
        ingress = sync_true + round((self.path_s + extra_sync) * NS) + host_error_ns
        return Ptp(self.src, rx_ns, timestamping=self.timestamping, port_state="UNCALIBRATED",
                   log_announce_interval=1, log_sync_interval=0, delay_mechanism=1,
                   peer_mean_path_delay_ns=0, master_offset_ns=round(master_offset * NS),
                   ingress_ns=min(ingress, rx_ns), gm_present=True, gm_identity=gm.identity,
                   parent_port=f"{gm.identity}-1", gm_priority1=gm.priority1,
                   gm_clock_class=gm.clock_class, gm_clock_accuracy=gm.clock_accuracy,
                   gm_variance=gm.variance, gm_priority2=gm.priority2,
                   parent_gm_identity=gm.identity, steps_removed=gm.steps_removed,
                   offset_from_master_ns=float(round(master_offset * NS)),
                   mean_path_delay_ns=float(round(mpd * NS)), utc_offset=gm.utc_offset,
                   leap61=gm.leap61, leap59=gm.leap59, utc_offset_valid=gm.utc_offset_valid,
                   ptp_timescale=gm.ptp_timescale, time_traceable=gm.time_traceable,
                   frequency_traceable=gm.frequency_traceable, time_source=gm.time_source,
                   raw_ns=raw_ns)
