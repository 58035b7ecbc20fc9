"""The local chronyd as a witness: is the host clock following a server we call a falseticker?

chronyd disciplines the host clock; timewatch only watches. When chrony's selected source (`*` in
`chronyc sources`) is a server that timewatch's vote calls a falseticker, the host clock is being
steered by a bad reference: `consensus.daemon_disagrees`.
"""

from __future__ import annotations

from ..records import Chrony, Observation, SourceInfo
from .core import Context, Tracker
from .vote import Verdict

# `chronyc -c sources` columns (chrony 4): mode, state, address, stratum, poll, reach, lastRx,
# adjusted offset, measured offset, error. State '*' is the selected source.
_SRC_STATE, _SRC_ADDR = 1, 2
# `chronyc -c tracking` columns: refid, address, stratum, ref time, system time offset, ...
_TRK_ADDR, _TRK_STRATUM, _TRK_SYSTEM_S, _TRK_FREQ_PPM, _TRK_LEAP = 1, 2, 4, 7, 13


class ChronyTracker(Tracker):
    kind = "chrony"
    judged_for_steps = True

    def __init__(self, src: str, info: SourceInfo, ctx: Context) -> None:
        super().__init__(src, info, ctx)
        self.selected: str | None = None  # address chrony follows
        self.selected_name: str | None = None
        self.system_offset_s: float | None = None
        self.stratum: int | None = None
        self.freq_ppm: float | None = None

    def stale_limit_s(self) -> float:
        return self.ctx.detect.stale_polls * (self.info.poll_s or 16.0)

    def noise_floor_s(self, bound_s: float) -> float:
        return self.ctx.detect.drift_sigma_floor_ntp_s

    def feed(self, obs: Observation) -> None:
        if not isinstance(obs, Chrony):
            return
        if obs.error is not None:
            return
        self.last_usable_ns = obs.rx_ns
        names = dict(obs.names)
        self.selected = None
        for line in obs.sources:
            f = line.split(",")
            if len(f) > _SRC_ADDR and f[_SRC_STATE] == "*":
                self.selected = f[_SRC_ADDR]
                self.selected_name = names.get(self.selected, self.selected)
        t = obs.tracking.split(",")
        try:
            self.stratum = int(t[_TRK_STRATUM])
            self.system_offset_s = float(t[_TRK_SYSTEM_S])
            self.freq_ppm = float(t[_TRK_FREQ_PPM])
        except (IndexError, ValueError):
            self.ctx.count("chrony.bad_tracking")
        self._judge(obs.rx_ns)

    def _followed_source(self) -> str | None:
        """The timewatch source of an NTP server chrony follows, if we monitor it."""
        if self.selected is None:
            return None
        wanted = {self.selected, self.selected_name}
        for sid, tr in self.ctx.trackers.items():
            if tr.ntp_server and tr.info.server in wanted:
                return sid
        return None

    def _judge(self, now: int) -> None:
        sid = self._followed_source()
        verdict = self.ctx.consensus.verdicts.get(sid) if sid else None
        if sid is not None and verdict is not None and verdict[0] == Verdict.FALSETICKER:
            tr = self.ctx.trackers[sid]
            e = tr.estimate_
            c = self.ctx.consensus
            self.ctx.alerts.assert_(
                "consensus.daemon_disagrees", now, (self.src, sid),
                f"chronyd follows {self.selected_name} ({sid}), which timewatch calls a "
                f"falseticker: {verdict[1]}",
                {"chrony_selected": self.selected, "timewatch_source": sid,
                 "source_offset_s": e.offset_s if e else None,
                 "consensus_offset_s": c.offset_s,
                 "chrony_system_offset_s": self.system_offset_s},
                severity="critical", key=self.src, hold_down_s=self.ctx.detect.hold_down_s)
        else:
            self.ctx.alerts.release("consensus.daemon_disagrees", now, self.src)

    def status_fields(self) -> dict[str, object]:
        return {"chrony_selected": self.selected_name, "chrony_system_offset_s":
                self.system_offset_s, "chrony_stratum": self.stratum,
                "chrony_freq_ppm": self.freq_ppm}
