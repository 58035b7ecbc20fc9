"""GNSS as a source: epochs -> receiver state, coarse offset, receiver-level alerts.

The coarse offset: a label names the UTC second whose start the receiver marks; its first
sentence arrives a receiver-specific latency later (output scheduling plus serial time). So
offset = label - (arrival - latency). The latency is learned against the consensus while it has
quorum, all groups agree and a group other than this source's own is among them (so the source
never learns from itself); until then a prior of 0..1 s is used, with a bound that covers it.
The PPS tracker (engine/pps.py) pairs edges with `labels` for the precise offset.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Final

from ..records import Nmea, Observation, SourceInfo, Ubx
from ..wire.ubx import UbxError, UbxInfo, UbxUnsupported, decode_ubx
from .core import Context, Estimate, Tracker
from .gnss_detect import GnssDetectors
from .gnss_epoch import Epoch, EpochAssembler, civil_from_days, decode_line
from .value import Value


class TimeLabel:
    """One epoch's UTC label and the arrival of the first sentence that carried it. Not frozen:
    a host step moves `rx_ns` in place (`GnssTracker.on_host_step`), and the PPS tracker that
    pairs these labels knows them by identity. A plain class (one per epoch): a dataclass's
    generated __init__ runs as Python even compiled."""

    __slots__ = ("utc_ns", "rx_ns", "raw_ns", "valid")

    def __init__(self, utc_ns: int, rx_ns: int, raw_ns: int | None, valid: bool) -> None:
        self.utc_ns = utc_ns
        self.rx_ns = rx_ns
        self.raw_ns = raw_ns
        self.valid = valid

    def __repr__(self) -> str:
        return (f"TimeLabel(utc_ns={self.utc_ns!r}, rx_ns={self.rx_ns!r}, "
                f"raw_ns={self.raw_ns!r}, valid={self.valid!r})")



class GnssState(Value):
    """The receiver's latest epoch, for dashboards (`status_fields`). A Value (engine/value.py):
    one per epoch."""

    _fields = ("t_ns", "utc_ns", "valid", "fix", "lat_deg", "lon_deg", "alt_m", "sats_used",
               "sats_in_view", "cn0_db_hz")
    __slots__ = _fields

    def __init__(self, t_ns: int, utc_ns: int | None, valid: bool, fix: int,
                 lat_deg: float | None, lon_deg: float | None, alt_m: float | None,
                 sats_used: int | None, sats_in_view: int | None,
                 cn0_db_hz: dict[str, float]) -> None:
        self.t_ns: Final = t_ns
        self.utc_ns: Final = utc_ns
        self.valid: Final = valid
        self.fix: Final = fix
        self.lat_deg: Final = lat_deg
        self.lon_deg: Final = lon_deg
        self.alt_m: Final = alt_m
        self.sats_used: Final = sats_used
        self.sats_in_view: Final = sats_in_view
        self.cn0_db_hz: Final = cn0_db_hz


def cn0_stats(cn0_db_hz: dict[str, float]) -> dict[str, float]:
    """Min, mean, max and (population) standard deviation of the satellites' C/N0; empty
    without satellites. A spoofer's signals are uniform (small std) or all strong (high min)."""
    if not cn0_db_hz:
        return {}
    xs = list(cn0_db_hz.values())
    mean = sum(xs) / len(xs)
    return {"cn0_min_db_hz": min(xs), "cn0_mean_db_hz": mean, "cn0_max_db_hz": max(xs),
            "cn0_std_db_hz": math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))}


class GnssTracker(Tracker):
    """A GNSS receiver (NMEA and/or UBX over a serial line)."""

    kind = "gnss"

    def __init__(self, src: str, info: SourceInfo, ctx: Context):
        super().__init__(src, info, ctx)
        d = ctx.detect
        floor_days = int(d.gnss_not_before_unix_s // 86_400)
        self.asm = EpochAssembler(civil_from_days(floor_days))
        self.labels: deque[TimeLabel] = deque(maxlen=64)
        self.state: GnssState | None = None
        self.latency_samples: list[float] = []  # label-to-arrival latencies learned (s)
        self.latency_s: float | None = None  # learned (median), None while the prior is used
        self.latency_jitter_s: float | None = None
        self.position_error_m: float | None = None
        self.last_good_ns: int | None = None  # last decodable sentence or UBX frame
        self.sentences = 0
        self.bad_sentences = 0
        self.detectors = GnssDetectors(self)

    def noise_floor_s(self, bound_s: float) -> float:
        """The coarse NMEA-label offset: its bound is gnss_latency_jitter_factor x its own
        measured label jitter (+ label resolution), or the latency prior's half-width until
        learned. Its noise is milliseconds, never the PPS's microseconds."""
        det = self.ctx.detect
        return max(det.drift_sigma_floor_gnss_s, bound_s / det.gnss_latency_jitter_factor)

    # -- input -----------------------------------------------------------------------------
    def feed(self, obs: Observation) -> None:
        if isinstance(obs, Nmea):
            s, bad = decode_line(obs.line)
            if s is None and not bad:
                self.last_good_ns = obs.rx_ns  # a well-formed sentence we do not use
                return
            self.sentences += 1
            self.bad_sentences += bad
            self.detectors.on_sentence(obs.rx_ns, bad, obs.line[:40] if bad else "")
            if s is not None:
                self.last_good_ns = obs.rx_ns
            self._take(self.asm.feed(s, obs.rx_ns, obs.raw_ns))
        elif isinstance(obs, Ubx):
            try:
                u: UbxInfo | None = decode_ubx(obs.hex)
            except UbxUnsupported:
                self.last_good_ns = obs.rx_ns
                return
            except UbxError:
                u = None
            self.sentences += 1
            self.bad_sentences += u is None
            self.detectors.on_sentence(obs.rx_ns, u is None, "UBX frame" if u is None else "")
            if u is not None:
                self.last_good_ns = obs.rx_ns
                self.detectors.on_ubx(obs.rx_ns, u)
            self._take(self.asm.feed(u, obs.rx_ns, obs.raw_ns))

    def _take(self, closed: Epoch | None) -> None:
        lab = self.asm.label()
        if lab is not None:
            utc_ns, rx_ns, raw_ns, valid = lab
            if rx_ns is not None:
                self.labels.append(TimeLabel(utc_ns, rx_ns, raw_ns, valid))
        if closed is not None:
            self._epoch(closed)

    def on_tick(self, now_ns: int) -> None:
        cur = self.asm.cur
        # An epoch nobody closes (the receiver went quiet): close it after the epoch gap limit.
        if cur is not None and cur.rx_ns is not None and \
                now_ns - cur.rx_ns > self.ctx.detect.gnss_epoch_close_s * 1e9:
            ep = self.asm.flush()
            if ep is not None:
                self._epoch(ep)
        self.detectors.on_tick(now_ns)

    def on_host_step(self, step_s: float) -> None:
        """Host realtime jumped by step_s: every arrival time kept (the labels the PPS pairs,
        the epoch in progress, the detectors' label and window times) is re-expressed in the
        new host time, so that no test takes the host's step for the receiver's."""
        super().on_host_step(step_s)
        step_ns = round(step_s * 1e9)
        for lab in self.labels:
            lab.rx_ns += step_ns
        cur = self.asm.cur
        if cur is not None and cur.rx_ns is not None:
            cur.rx_ns += step_ns
        if self.last_good_ns is not None:
            self.last_good_ns += step_ns
        self.detectors.on_host_step(step_ns)

    def is_stale(self, now_ns: int) -> bool:
        # Stale means silent: a receiver that talks but has no fix is `gnss.no_fix`, not stale.
        ref = self.last_good_ns if self.last_good_ns is not None else self.first_ns
        return ref is not None and now_ns - ref > self.stale_limit_s() * 1e9

    # -- epochs ----------------------------------------------------------------------------
    def _epoch(self, ep: Epoch) -> None:
        t = ep.rx_ns if ep.rx_ns is not None else self.ctx.now_ns
        self.state = GnssState(t, ep.utc_ns, ep.valid, ep.fix, ep.lat_deg, ep.lon_deg,
                               ep.alt_m, ep.sats_used, ep.sats_in_view, dict(ep.cn0_db_hz))
        self.detectors.on_epoch(ep)
        if not ep.valid or ep.utc_ns is None or ep.rx_ns is None:
            self.unusable_reason = self._why_unusable(ep)
            return
        self.unusable_reason = None
        raw_offset_s = (ep.utc_ns - ep.rx_ns) / 1e9  # = offset - latency
        self._learn(raw_offset_s)
        offset_s, bound_s = self.coarse(raw_offset_s)
        self.last_usable_ns = ep.rx_ns
        self.estimate_ = Estimate(offset_s, bound_s, ep.rx_ns)
        fields: dict[str, float] = {"fix": float(ep.fix),
                                    "latency_s": self.latency_s if self.latency_s is not None
                                    else float("nan")}
        if ep.sats_used is not None:
            fields["sats_used"] = float(ep.sats_used)
        if ep.sats_in_view is not None:
            fields["sats_in_view"] = float(ep.sats_in_view)
        fields.update(cn0_stats(ep.cn0_db_hz))
        if self.position_error_m is not None:
            fields["position_error_m"] = self.position_error_m
        if math.isnan(fields["latency_s"]):
            del fields["latency_s"]
        self.ctx.emit(self.src, ep.rx_ns, offset_s, bound_s, fields)

    @staticmethod
    def _why_unusable(ep: Epoch) -> str:
        if ep.simulator is not None:
            return f"simulated output: {ep.simulator}"
        if ep.date_problem is not None:
            return f"wrong date: {ep.date_problem}"
        if not ep.claims_valid:
            return "no valid fix"
        return "no usable date and time"

    def coarse(self, raw_offset_s: float) -> tuple[float, float]:
        """(offset_s, bound_s) of a label whose (label - arrival) is raw_offset_s."""
        d = self.ctx.detect
        if self.latency_s is None or self.latency_jitter_s is None:
            lo, hi = 0.0, d.gnss_latency_prior_max_s
            return raw_offset_s + (lo + hi) / 2, (hi - lo) / 2 + d.gnss_label_resolution_s
        bound = d.gnss_latency_jitter_factor * self.latency_jitter_s + d.gnss_label_resolution_s
        return raw_offset_s + self.latency_s, bound

    def consensus_usable(self) -> bool:
        """The consensus has quorum, every voting group agrees, and it is not only our group."""
        c = self.ctx.consensus
        return (c.quorum and c.offset_s is not None and c.groups_agreeing == c.groups_voting
                and not c.split_groups and any(g != self.info.group for g in c.agreeing_groups))

    def consensus_of_others(self) -> float | None:
        """The consensus offset when it has quorum without needing this source's group."""
        c = self.ctx.consensus
        if not c.quorum or c.offset_s is None:
            return None
        return c.offset_s if any(g != self.info.group for g in c.agreeing_groups) else None

    def survey_allowed(self) -> bool:
        """Learn the antenna position while all references agree (or GNSS is all there is)."""
        c = self.ctx.consensus
        return self.consensus_usable() or c.groups_voting + len(c.split_groups) <= 1

    def _learn(self, raw_offset_s: float) -> None:
        d = self.ctx.detect
        if self.latency_s is not None or not self.consensus_usable():
            return
        c_off = self.ctx.consensus.offset_s
        assert c_off is not None
        lat = c_off - raw_offset_s
        if not 0.0 <= lat <= d.gnss_latency_prior_max_s:
            return  # outside the prior: not a latency (the consensus or the labels are off)
        self.latency_samples.append(lat)
        if len(self.latency_samples) >= d.gnss_latency_learn_n:
            xs = sorted(self.latency_samples)
            med = xs[len(xs) // 2]
            # Jitter: the 95th percentile of the deviations from the median, robust to outliers.
            dev = sorted(abs(x - med) for x in xs)
            self.latency_s = med
            self.latency_jitter_s = max(dev[int(0.95 * (len(dev) - 1))], 1e-4)

    # -- dashboards ------------------------------------------------------------------------
    def status_fields(self) -> dict[str, Any]:
        st = self.state
        out: dict[str, Any] = {"sentences": self.sentences, "bad_sentences": self.bad_sentences,
                               "latency_s": self.latency_s,
                               "latency_jitter_s": self.latency_jitter_s,
                               "position_error_m": self.position_error_m}
        if st is not None:
            out.update({"fix": st.fix, "valid": st.valid, "lat_deg": st.lat_deg,
                        "lon_deg": st.lon_deg, "alt_m": st.alt_m, "sats_used": st.sats_used,
                        "sats_in_view": st.sats_in_view,
                        "cn0_db_hz": dict(st.cn0_db_hz)})
            out.update(cn0_stats(st.cn0_db_hz))
        return out
