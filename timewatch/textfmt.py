"""Text for people: times as ISO 8601 UTC, seconds in the unit that fits, alert evidence, and the
`--format text` lines of `replay`, `simulate` and `decode` (JSON Lines stays their default)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from .engine.gnss_epoch import Epoch
from .records import Event, Observation, Snapshot, observation_to_dict

_NS = 1_000_000_000


def iso_ns(t_ns: int) -> str:
    """Unix ns as ISO 8601 UTC with all nine digits: 2026-12-01T00:00:01.000000123Z."""
    sec, ns = divmod(int(t_ns), _NS)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def when(t_ns: int | None) -> str:
    """A time as people and programs read it: ISO 8601 UTC beside the Unix nanoseconds."""
    return "-" if t_ns is None else f"{iso_ns(t_ns)} {t_ns}"


def fmt_s(v: float | None, signed: bool = True) -> str:
    """Seconds in the unit that fits: us, ms or s."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    sign = "+" if signed else ""
    if a < 1e-3:
        return f"{v * 1e6:{sign}.1f} us"
    if a < 1.0:
        return f"{v * 1e3:{sign}.3f} ms"
    return f"{v:{sign}.3f} s"


def fmt_evidence(ev: dict[str, Any], limit: int = 7) -> str:
    """The evidence numbers an operator reads first (the event log has all of it)."""
    parts = []
    for k, v in ev.items():
        if v is None or k.endswith("_ns") or isinstance(v, dict | list):
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            parts.append(f"{k}={v}")
        elif k.endswith("_s_per_s"):
            parts.append(f"{k[:-8]}={v * 1e6:+.2f} us/s")
        elif k.endswith("_s"):  # sizes (bounds, thresholds, jitter) unsigned, offsets signed
            size = any(w in k for w in ("bound", "threshold", "jitter", "sigma", "tolerance",
                                        "limit", "window", "silent"))
            parts.append(f"{k[:-2]}={fmt_s(float(v), signed=not size)}")
        elif k.endswith("_ppm"):
            parts.append(f"{k[:-4]}={v:+.3f} ppm")
        else:
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        if len(parts) >= limit:
            break
    return ", ".join(parts)


def event_text(e: Event) -> str:
    """An alert (message and evidence on indented lines) or a clear."""
    srcs = ",".join(e.sources) or "(host-wide)"
    if e.type == "clear":
        return f"{when(e.t_ns)} clear {e.code} {srcs} (id {e.id})"
    out = f"{when(e.t_ns)} ALERT {e.code} [{e.severity}] {srcs} (id {e.id})\n    {e.message}"
    ev = fmt_evidence(e.evidence, limit=1000)
    return out + (f"\n    evidence: {ev}" if ev else "")


def snapshot_text(s: Snapshot) -> str:
    """The consensus on one line, then one line per source with its verdict and reason."""
    cons = (f"host clock vs consensus {fmt_s(s.consensus_offset_s)} +- "
            f"{fmt_s(s.consensus_bound_s, False)}" if s.consensus_offset_s is not None
            else "no consensus")
    ho = f"{s.holdover_ppm:+.3f} ppm" if s.holdover_ppm is not None else "learning"
    lines = [f"{when(s.t_ns)} status: {s.groups_agreeing}/{s.groups_voting} trust groups agree "
             f"({'quorum' if s.quorum else 'NO QUORUM'}), {cons}; holdover {ho}; "
             f"{len(s.active_alerts)} active alerts"]
    for st in s.sources:
        lines.append(f"    {st.src} {st.kind} {st.group} {st.verdict} {fmt_s(st.offset_s)} +- "
                     f"{fmt_s(st.bound_s, False)}: {st.reason}")
    return "\n".join(lines)


def observation_text(o: Observation) -> str:
    """One trace record: arrival time, source, type, then what it carried (key=value)."""
    d = observation_to_dict(o)
    skip = {"type", "src", "rx_ns", "raw_ns", "pkt_hex"}
    body = " ".join(f"{k}={iso_ns(v)} ({v})" if k.endswith("_ns") and isinstance(v, int)
                    else f"{k}={v}" for k, v in d.items() if k not in skip and v is not None)
    return f"{when(o.rx_ns)} {o.src or '-'} {o.type} {body}".rstrip()


def epoch_text(ep: Epoch) -> str:
    """One `decode` epoch: its time, validity, fix, position, satellites, sentences, anomalies."""
    fix = {0: "no fix", 2: "2D", 3: "3D"}.get(ep.fix, str(ep.fix))
    pos = (f"{ep.lat_deg:.7f},{ep.lon_deg:.7f}" + (f" {ep.alt_m:g} m" if ep.alt_m is not None
                                                  else "")
           if ep.lat_deg is not None and ep.lon_deg is not None else "no position")
    sats = "-" if ep.sats_used is None else str(ep.sats_used)
    cn0 = ""
    if ep.cn0_db_hz:
        xs = list(ep.cn0_db_hz.values())
        cn0 = f", C/N0 {min(xs):.0f}-{max(xs):.0f} dB-Hz"
    t = when(ep.utc_ns) if ep.utc_ns is not None else "(no date and time)"
    return (f"{t} {'valid' if ep.valid else 'INVALID'} {fix} {pos}, {sats} satellites used{cn0}, "
            f"{ep.sentences} sentences ({ep.bad_sentences} bad); anomalies: "
            f"{'; '.join(ep.anomalies) or 'none'}")
