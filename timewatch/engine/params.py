"""Detection thresholds: the `[detect]` config section. Pure data, no I/O.

Every field is a config key of `[detect]` (README documents each); defaults meet spec/threats.md.
Names carry their units. Add a field here, with a one-line reason, for every new threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Detect:
    # -- engine ----------------------------------------------------------------------------
    # Status snapshots for dashboards and the store, in trace time.
    snapshot_interval_s: float = 10.0
    # A condition stays released this long before its alert clears (no flapping).
    hold_down_s: float = 120.0

    # -- staleness -------------------------------------------------------------------------
    # NTP: no usable reply for this many polls (spec/events.md: "3 polls").
    stale_polls: float = 3.0
    # GNSS and PPS: no usable data for this long (spec/events.md: "5 s for PPS/GNSS").
    stale_gnss_s: float = 5.0

    # -- vote ------------------------------------------------------------------------------
    # A source must be a falseticker on this many consecutive evaluations of its own samples
    # before `source.falseticker` is raised (a liar must still be caught within 3 polls).
    falseticker_confirm: int = 2
    # Worst-case frequency error of the host clock between samples, used to age a sample's
    # bound (chrony's maxclockerror is 1 ppm; a free-running Pi crystal can be 100 ppm off,
    # but the realtime clock is disciplined, so sub-ppm slews plus margin).
    aging_ppm: float = 15.0

    # -- host ------------------------------------------------------------------------------
    # consensus.host_offset: host realtime farther than this from the consensus (beyond bounds).
    host_offset_s: float = 0.1
    # consensus.host_step: realtime jumped against CLOCK_MONOTONIC_RAW by at least this much
    # (threats.md scenario 16: a step of >= 100 ms).
    host_step_s: float = 0.1

    # -- ntp -------------------------------------------------------------------------------
    # Clock filter: number of recent samples kept per server (ntpd and chrony use 8).
    ntp_filter_size: int = 8
    # Poll interval assumed until the header's poll_s or the cadence of our requests tells it
    # (ntpd's and chrony's default minpoll 6 = 64 s).
    ntp_poll_default_s: float = 64.0

    # -- ntp.delay_anomaly (detectors/ntpdelay.py) ------------------------------------------
    # Round-trip delay above the server's baseline by at least this much (threats.md: a MITM
    # adds >= 20 ms; jitter is ~0.3 ms): half of it to catch 20 ms with margin.
    ntp_delay_jump_s: float = 0.010
    # ... with an offset shift within this fraction of half the delay increase ...
    ntp_delay_offset_tolerance: float = 0.3
    # ... on this many consecutive exchanges (a single 10x spike never does it; threats.md: 3 polls).
    ntp_delay_confirm: int = 3

    # -- time.drift (detectors/drift.py) ----------------------------------------------------
    # Two-sided CUSUM over the increments of a source's residual, in units of their noise:
    # alarm level h (a run of noise increments telescopes, so h ~ 6 is reached by noise only
    # with a 8-sigma excursion) ...
    drift_cusum_h: float = 6.0
    # ... allowance k per sample (on top of the rate the reference can explain) ...
    drift_cusum_k: float = 0.5
    # ... and each increment clipped at this many sigmas, so a step (the vote's job) counts once.
    drift_cusum_clip: float = 4.0
    # Residual rate against the consensus of other groups that honest sources can show: their
    # clocks are disciplined, the host's realtime cancels out; 1 ppm is chrony's maxclockerror.
    drift_consensus_ppm: float = 1.0
    # Floor of the residual noise of a source, per kind: NTP (chrony's filter leaves ~0.1 ms of
    # jitter on a LAN) and GNSS/PPS (1.5 us of interrupt jitter, threats.md).
    drift_sigma_floor_ntp_s: float = 0.0001
    drift_sigma_floor_gnss_s: float = 2e-6

    # -- pps (engine/pps.py) ----------------------------------------------------------------
    # Pulse interval tolerance around whole seconds: a 100 ppm crystal (100 us) plus 30 us
    # interrupt-latency outliers (threats.md), with a 7x margin.
    pps_interval_tolerance_s: float = 0.001
    # pps.missing once the next edge is this late (records reach the engine tens of ms late).
    pps_overdue_s: float = 0.5
    # time.step: PPS phase jump against the raw oscillator (issue 4: >= 10 us by default) ...
    pps_step_s: float = 10e-6
    # ... confirmed by this many of the last pps_step_window pulses on one side (1% of edges are
    # 5-30 us late: four of five by chance is ~5e-8 per pulse, once in a year of pulses).
    pps_step_confirm: int = 4
    pps_step_window: int = 5
    # Until learned, a label belongs to the edge it follows by a latency in [this, this + 1 s):
    # receivers send labels 100-500 ms after their pulse, some up to 0.4 s before it.
    pps_label_latency_min_s: float = -0.4
    # A label off the learned latency by more than this disagrees on sub-second phase (9600 baud
    # framing and scheduling move the first sentence by a few ms; a shifted pulse by 100s of ms).
    pps_label_phase_tolerance_s: float = 0.1
    # Consecutive disagreeing label/edge pairs before pps.label_mismatch (one glitch is not it).
    pps_label_confirm: int = 3
    # PPS keeps counting seconds without a valid label this long (a fix lost under an
    # obstruction while the receiver keeps pulsing), then it is unusable.
    pps_label_holdover_s: float = 600.0
    # Vote interval of PPS+GNSS time: this many measured jitters ...
    pps_bound_jitter_k: float = 5.0
    # ... and at least this (a timing receiver's PPS is within ~100 ns of UTC; cable and
    # comparator delays are not calibrated: 1 us).
    pps_bound_floor_s: float = 1e-6

    @classmethod
    def keys(cls) -> dict[str, type]:
        return {f.name: type(f.default) for f in fields(cls)}
