"""Detection thresholds: the `[detect]` config section. Pure data, no I/O.

Every field is a `[detect]` config key (docs/config.md documents each, with its range);
defaults meet docs/threats.md. Names carry their units. Add a field here, with a one-line reason,
for every new threshold, and its range to RANGES (what `check-config` accepts).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Final


@dataclass(frozen=True, slots=True)
class Detect:
    # -- engine ----------------------------------------------------------------------------
    # Status snapshots for dashboards and the store, in trace time.
    snapshot_interval_s: float = 10.0
    # A condition stays released this long before its alert clears (no flapping).
    hold_down_s: float = 120.0

    # -- staleness -------------------------------------------------------------------------
    # NTP: no usable reply for this many polls (docs/events.md: "3 polls").
    stale_polls: float = 3.0
    # GNSS and PPS: no usable data for this long (docs/events.md: "5 s for PPS/GNSS").
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
    # (docs/threats.md scenario 16: a step of >= 100 ms).
    host_step_s: float = 0.1

    # -- ntp -------------------------------------------------------------------------------
    # Clock filter: number of recent samples kept per server (ntpd and chrony use 8).
    ntp_filter_size: int = 8
    # Poll interval assumed until the header's poll_s or the cadence of our requests tells it
    # (ntpd's and chrony's default minpoll 6 = 64 s).
    ntp_poll_default_s: float = 64.0
    # Clock filter: an offset that moved from the lowest-delay sample by more than half the
    # change in delay plus this (plus aging) is a real change of the server's time, not
    # queueing (docs/threats.md: exponential jitter of mean 0.3 ms on each leg).
    ntp_jitter_s: float = 0.001

    # -- ntp.delay_anomaly (detectors/ntpdelay.py) ------------------------------------------
    # Round-trip delay above the server's baseline by at least this much (docs/threats.md: a MITM
    # adds >= 5 ms; jitter is ~0.3 ms a leg): half of it to catch 5 ms with margin.
    ntp_delay_jump_s: float = 0.0025
    # ... with an offset shift within this fraction of half the delay increase ...
    ntp_delay_offset_tolerance: float = 0.3
    # ... on this many consecutive exchanges (a single 10x spike never does it; docs/threats.md: 3 polls).
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
    # jitter on a LAN) and GNSS/PPS (1.5 us of interrupt jitter, docs/threats.md).
    drift_sigma_floor_ntp_s: float = 0.0001
    drift_sigma_floor_gnss_s: float = 2e-6
    # The rate a PPS may move against the holdover clock is 3 x the crystal's wander, never taken
    # below this (ppm): a wander measured from a few 10-min blocks can be far too small by chance
    # (docs/threats.md: a Pi crystal wanders ~0.1 ppm over ten minutes; lower it for a TCXO/OCXO).
    # It is also the holdover's wander until it has measured one (engine/holdover.py).
    drift_wander_floor_ppm: float = 0.1
    # time.step for NTP sources: the offset against the consensus of the other groups jumped by
    # at least this much and stayed (docs/threats.md: a liar of >= 50 ms; Internet route changes move
    # a path's asymmetry by a few ms).
    ntp_step_s: float = 0.010

    # -- pps (engine/pps.py) ----------------------------------------------------------------
    # Pulse interval tolerance around whole seconds: a 100 ppm crystal (100 us) plus 30 us
    # interrupt-latency outliers (docs/threats.md), with a 7x margin.
    pps_interval_tolerance_s: float = 0.001
    # pps.missing once the next edge is this late (records reach the engine tens of ms late).
    pps_overdue_s: float = 0.5
    # time.step: PPS phase jump against the raw oscillator (docs/threats.md: a step >= 6 us is
    # caught in 5 s): the mean of the last pulses off the phase line by max(this, 5.6 of its
    # standard errors: ~4.5 us at 1.5 us of jitter; engine/pps.py STEP_MEAN_K) ...
    pps_step_s: float = 4e-6
    # ... this many of the last pps_step_window pulses kept at least (those 3 jitters later than
    # the window's median are late interrupts, left out: 1% of edges are 5-30 us late; on a
    # step's 3rd pulse the 2 before it are later too).
    pps_step_confirm: int = 3
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

    # -- gnss (engine/gnss.py, engine/gnss_detect.py) ------------------------------------------
    # Receiver dates before this are wrong (the software's build date, 2026-11-01 UTC; the engine
    # never reads a clock). Set it lower only to replay captures older than the build.
    gnss_not_before_unix_s: float = 1793491200.0
    # gnss.date_anomaly: receiver date this far from the consensus of other sources ("days").
    gnss_date_tolerance_s: float = 86400.0
    # Coarse offset: label-to-arrival latency prior is [0, this] until learned (NMEA output starts
    # within the second it labels; docs/threats.md: 110 ms typical).
    gnss_latency_prior_max_s: float = 1.0
    # ... learned as the median of this many labels against an agreeing consensus (one minute).
    gnss_latency_learn_n: int = 60
    # ... bound = factor x the 95th-percentile jitter + the labels' millisecond resolution.
    gnss_latency_jitter_factor: float = 3.0
    gnss_label_resolution_s: float = 0.001
    # An epoch still open after this long is closed (a receiver that went quiet mid-epoch).
    gnss_epoch_close_s: float = 2.0
    # gnss.no_fix after this long without a valid fix (docs/threats.md: jamming within 10 s).
    gnss_no_fix_s: float = 5.0
    # gnss.sentence_errors: more than this fraction of bad sentences in the window (docs/threats.md:
    # 5% corrupted must alarm, 1 in 10,000 is normal noise) ...
    gnss_sentence_error_ratio: float = 0.02
    gnss_sentence_window_s: float = 60.0
    # ... and at least this many bad ones (a single bad line at start-up is not a rate).
    gnss_sentence_error_min: int = 5
    # gnss.position_jump: fix farther than this from the antenna position (docs/threats.md: 50 m) ...
    gnss_position_limit_m: float = 50.0
    # ... on this many valid epochs in a row (a single multipath outlier is not a jump).
    gnss_position_confirm: int = 3
    # Survey-in of an unconfigured antenna: this many valid epochs within limit/2 of their mean.
    gnss_survey_epochs: int = 60
    # gnss.cn0_anomaly: C/N0 standard deviation across satellites below this (docs/threats.md) ...
    gnss_cn0_uniform_sigma_db_hz: float = 2.0
    # ... over at least this many satellites (the GPS-simulator capture tracks 4) ...
    gnss_cn0_uniform_min_sats: int = 4
    # ... for this long (the simulator capture lasts 19 s; real receivers at most 6 s in corpus).
    gnss_cn0_uniform_s: float = 15.0
    # ... or that many satellites above this (open-sky signals peak near 50-52 dB-Hz) ...
    gnss_cn0_max_db_hz: float = 55.0
    # ... or all satellites up by this much within 10 s (docs/threats.md: all up >= 6 dB at once).
    gnss_cn0_step_db_hz: float = 6.0
    # gnss.satellites: at least this many satellites lost or gained between two reports ...
    gnss_sat_change_min: int = 4
    # ... and at least this fraction of those tracked (rising/setting changes 1 at a time).
    gnss_sat_change_ratio: float = 0.4
    # gnss.label_error: label step minus arrival step beyond this (jitter is ~4 ms; a skipped
    # second is 1 s).
    gnss_label_tolerance_s: float = 0.5

    # -- ptp (engine/ptp.py, docs/ptp.md) ------------------------------------------------------
    # Error bound of a PTP offset: the mean path delay (any asymmetry, up to all of the round
    # trip on one leg) plus the timestamping's own error: software stamps are taken by the
    # kernel after interrupt and queueing latency (tens of us on a loaded host) ...
    ptp_bound_software_s: float = 100e-6
    # ... hardware stamps at the NIC (ns; PHC-to-system reads, cable and PHY delays: 1 us).
    ptp_bound_hardware_s: float = 1e-6
    # time.step for PTP: the offset jumped against its own recent level by at least this much
    # (software stamps jitter by a few us, at most ~20 us under load) and stayed.
    ptp_step_s: float = 50e-6
    # ... on this many samples in a row (ptp4l's path-delay median, 10 long, takes up to 6
    # samples to follow a path change: a jump that lasts longer, the path unchanged, is a step).
    ptp_step_confirm: int = 8
    # ptp.delay_attack: the mean path delay above its recent minimum by at least this much
    # (software stamps: a few us of jitter; a delay attack adds tens of us or more) ...
    ptp_delay_jump_s: float = 50e-6
    # ... with the offset moved by the same amount (one leg delayed by d: the mean path delay and
    # the offset both move by d/2) within this fraction ...
    ptp_delay_offset_tolerance: float = 0.3
    # ... on this many consecutive samples (ptp4l's path-delay median filter settles first).
    ptp_delay_confirm: int = 3
    # After a grandmaster change the source is withheld from the consensus until this many
    # consecutive samples of the new grandmaster agree with the consensus of the others.
    ptp_rejoin_agree: int = 3

    @classmethod
    def keys(cls) -> dict[str, type]:
        return {f.name: type(f.default) for f in fields(cls)}


# A key's range: (lo, hi, lo_open): lo <= v <= hi, or lo < v <= hi when lo_open; finite.
Range = tuple[float, float, bool]


def _r(lo: float, hi: float) -> Range:
    return (lo, hi, False)


def _gt0(hi: float) -> Range:
    """0 < v <= hi: a length, a rate or a threshold for which 0 is nonsense."""
    return (0.0, hi, True)


DAY_S: Final = 86400.0
# Every key's range: what `check-config` accepts (nan, inf and out-of-range values are config
# errors naming the key). Upper bounds are sane limits, far beyond any useful setting.
RANGES: Final[dict[str, Range]] = {
    "snapshot_interval_s": _r(0.1, DAY_S),
    "hold_down_s": _r(0.0, DAY_S),
    "stale_polls": _r(1.0, 1000.0),
    "stale_gnss_s": _r(1.0, DAY_S),
    "falseticker_confirm": _r(1, 1000),
    "aging_ppm": _r(0.0, 1000.0),
    "host_offset_s": _gt0(DAY_S),
    "host_step_s": _r(0.001, DAY_S),
    "ntp_filter_size": _r(1, 64),
    "ntp_poll_default_s": _r(1.0, 131072.0),
    "ntp_jitter_s": _r(0.0, 10.0),
    "ntp_delay_jump_s": _gt0(10.0),
    "ntp_delay_offset_tolerance": _r(0.0, 10.0),
    "ntp_delay_confirm": _r(1, 1000),
    "drift_cusum_h": _gt0(1000.0),
    "drift_cusum_k": _r(0.0, 100.0),
    "drift_cusum_clip": _gt0(1000.0),
    "drift_consensus_ppm": _r(0.0, 1000.0),
    "drift_sigma_floor_ntp_s": _gt0(10.0),
    "drift_sigma_floor_gnss_s": _gt0(10.0),
    "drift_wander_floor_ppm": _gt0(1000.0),
    "ntp_step_s": _gt0(DAY_S),
    "pps_interval_tolerance_s": _gt0(0.5),
    "pps_overdue_s": _gt0(60.0),
    "pps_step_s": _gt0(1.0),
    "pps_step_confirm": _r(1, 1000),
    "pps_step_window": _r(1, 1000),
    "pps_label_latency_min_s": _r(-1.0, 1.0),
    "pps_label_phase_tolerance_s": _gt0(0.5),
    "pps_label_confirm": _r(1, 1000),
    "pps_label_holdover_s": _r(0.0, 7 * DAY_S),
    "pps_bound_jitter_k": _r(0.0, 1000.0),
    "pps_bound_floor_s": _gt0(1.0),
    "gnss_not_before_unix_s": _r(0.0, 4102444800.0),  # up to 2100-01-01
    "gnss_date_tolerance_s": _gt0(1e9),
    "gnss_latency_prior_max_s": _gt0(10.0),
    "gnss_latency_learn_n": _r(1, 100_000),
    "gnss_latency_jitter_factor": _gt0(100.0),
    "gnss_label_resolution_s": _r(0.0, 1.0),
    "gnss_epoch_close_s": _gt0(60.0),
    "gnss_no_fix_s": _gt0(DAY_S),
    "gnss_sentence_error_ratio": _gt0(1.0),
    "gnss_sentence_window_s": _r(1.0, DAY_S),
    "gnss_sentence_error_min": _r(1, 1_000_000),
    "gnss_position_limit_m": _gt0(1e7),
    "gnss_position_confirm": _r(1, 1000),
    "gnss_survey_epochs": _r(1, 1_000_000),
    "gnss_cn0_uniform_sigma_db_hz": _r(0.0, 100.0),
    "gnss_cn0_uniform_min_sats": _r(2, 1000),
    "gnss_cn0_uniform_s": _gt0(DAY_S),
    "gnss_cn0_max_db_hz": _gt0(100.0),
    "gnss_cn0_step_db_hz": _gt0(100.0),
    "gnss_sat_change_min": _r(1, 1000),
    "gnss_sat_change_ratio": _gt0(1.0),
    "gnss_label_tolerance_s": _gt0(10.0),
    "ptp_bound_software_s": _gt0(1.0),
    "ptp_bound_hardware_s": _gt0(1.0),
    "ptp_step_s": _gt0(DAY_S),
    "ptp_step_confirm": _r(1, 1000),
    "ptp_delay_jump_s": _gt0(10.0),
    "ptp_delay_offset_tolerance": _r(0.0, 10.0),
    "ptp_delay_confirm": _r(1, 1000),
    "ptp_rejoin_agree": _r(1, 1000),
}
# Keys whose value must not exceed another's (a confirmation within its window).
AT_MOST: Final[dict[str, str]] = {"pps_step_confirm": "pps_step_window"}


# The build-date floor of the GNSS date checks: a trace header always carries it
# (docs/trace-format.md), so a replay by a later build judges dates as the recording did.
DATE_FLOOR_KEY: Final = "gnss_not_before_unix_s"


def range_problem(name: str, v: float) -> str | None:
    """What is wrong with the number `v` as the value of [detect] key `name`, or None."""
    lo, hi, lo_open = RANGES[name]
    if not ((lo < v if lo_open else lo <= v) and v <= hi):  # nan fails both
        return f"must be {'>' if lo_open else '>='} {lo:g} and <= {hi:g}, got {v!r}"
    return None


def detect_from(keys: dict[str, object]) -> Detect:
    """The defaults with `keys` (a trace header's `detect`) over them. ValueError naming the key:
    a key this build does not know, a value of the wrong type or out of its range."""
    known = Detect.keys()
    kw: dict[str, float | int] = {}
    for name, v in keys.items():
        typ = known.get(name)
        if typ is None:
            near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            raise ValueError(f"{name}: not a [detect] key of this timewatch"
                             + (f" (did you mean {near[0]}?)" if near else ""))
        if isinstance(v, bool) or not isinstance(v, int | float) or \
                (typ is int and not isinstance(v, int)):
            raise ValueError(f"{name}: must be {'an integer' if typ is int else 'a number'}, "
                             f"got {v!r}")
        problem = range_problem(name, v)
        if problem is not None:
            raise ValueError(f"{name}: {problem}")
        kw[name] = float(v) if typ is float else v
    d = Detect(**kw)  # type: ignore[arg-type]
    for name, limit in AT_MOST.items():
        if getattr(d, name) > getattr(d, limit):
            raise ValueError(f"{name}: {getattr(d, name)} must not exceed {limit} "
                             f"({getattr(d, limit)})")
    return d


def detect_keys(d: Detect) -> dict[str, float | int]:
    """What a trace header records of `d`: every key that differs from its default, and the
    build-date floor always (a later build's default floor is later)."""
    out: dict[str, float | int] = {
        f.name: getattr(d, f.name) for f in fields(Detect) if getattr(d, f.name) != f.default}
    out.setdefault(DATE_FLOOR_KEY, d.gnss_not_before_unix_s)
    return dict(sorted(out.items()))
