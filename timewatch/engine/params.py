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

    # -- ntp -------------------------------------------------------------------------------
    # Clock filter: number of recent samples kept per server (ntpd and chrony use 8).
    ntp_filter_size: int = 8
    # Poll interval assumed until the header's poll_s or the cadence of our requests tells it
    # (ntpd's and chrony's default minpoll 6 = 64 s).
    ntp_poll_default_s: float = 64.0

    @classmethod
    def keys(cls) -> dict[str, type]:
        return {f.name: type(f.default) for f in fields(cls)}
