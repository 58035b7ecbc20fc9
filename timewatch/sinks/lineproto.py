"""The time-series schema: the engine's outputs as InfluxDB line protocol (ns precision).

One schema for the live InfluxDB sink and for `timewatch export --format line-protocol`
(docs/influxdb.md documents it; the Grafana dashboards query exactly these names).

| measurement    | tags                                   | fields |
|----------------|----------------------------------------|--------|
| `tw_sample`    | host, source, kind, trust_group        | offset_s, bound_s, + the sample's own numbers (delay_s, cn0_min_db_hz, ...) |
| `tw_source`    | host, source, kind, trust_group        | verdict (string), verdict_code, reason (string), offset_s, bound_s, age_s, + the tracker's status numbers (fix, valid, sats_used, jitter_s, holdover_freq_ppm, ...) |
| `tw_consensus` | host                                   | offset_s, bound_s, quorum, groups_agreeing, groups_voting, holdover_ppm, alerts_active, sources_total, sources_truechimer, sources_falseticker, + live: chain_<stream>_seq, chain_<stream>_sha256 (the latest evidence checkpoint of the trace and the event log) |
| `tw_event`     | host, code, type, severity, sources    | active, severity_level, message (string), id (string), n_sources, ev_<evidence key>... |

Rules that keep the schema safe everywhere it goes:
- Every number is written as a float (never `i`): a field first written as an integer and later
  as a float is a type conflict that makes InfluxDB reject the whole batch.
- Every number a panel shows is numeric (VictoriaMetrics keeps numeric fields only): a verdict is
  also `verdict_code`, an alert is also `active`/`severity_level`.
- No name is an InfluxQL keyword (`offset`, `group`, `time`... need quoting there): hence
  `offset_s` and `trust_group`; a dynamic field name that would be one gets a `_` appended.
- A point is identified by measurement, tags and timestamp: writing it twice overwrites it in
  InfluxDB, so re-sending after a crash is harmless there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..records import Event, Output, Sample, Snapshot, SourceInfo

if TYPE_CHECKING:
    from ..evidence import Head

M_SAMPLE = "tw_sample"
M_SOURCE = "tw_source"
M_CONSENSUS = "tw_consensus"
M_EVENT = "tw_event"
MEASUREMENTS = (M_SAMPLE, M_SOURCE, M_CONSENSUS, M_EVENT)

# Verdicts as numbers, ordered from good to bad, so that max() over a window shows the worst.
VERDICT_CODES: dict[str, int] = {
    "truechimer": 0,
    "init": 1,
    "no_quorum": 2,
    "stale": 3,
    "unusable": 4,
    "falseticker": 5,
}
# Severity as a number (records.SEVERITY_RANK order): info 0, warning 1, critical 2.
SEVERITY_LEVELS: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

# InfluxQL keywords (InfluxDB 1.x influxql/scanner token list) plus `time`: names used unquoted
# in queries must not be one of these.
INFLUXQL_KEYWORDS = frozenset("""
all alter analyze any as asc begin by card cardinality continuous create database databases
default delete desc destinations diagnostics distinct drop duration end every exact explain
field for from grant grants group groups in inf insert into key keys kill limit measurement
measurements name offset on order password policies policy privileges queries query read
replication resample retention revoke select series set shard shards slimit soffset stats
subscription subscriptions tag to user users values where with write time
""".split())


class LineProtocolError(ValueError):
    """A value that line protocol cannot carry (names the measurement and key)."""


# ---------------------------------------------------------------------------------------------
# Escaping (InfluxDB line protocol reference, "Special characters")


def _no_newlines(s: str) -> str:
    # A line ends a point: a newline can be in no name or value (the spec has no escape for it).
    return s.replace("\r", " ").replace("\n", " ")


def escape_measurement(s: str) -> str:
    """Measurement names: escape commas and spaces (a backslash stays as it is, as InfluxDB reads it)."""
    return _no_newlines(s).replace(",", "\\,").replace(" ", "\\ ")


# Names and tag values repeat from line to line: cached, escaping costs a dict look-up (a third
# of the encoding time of a backfill otherwise).
@functools.lru_cache(maxsize=4096)
def escape_key(s: str) -> str:
    """Tag keys, tag values and field keys: escape commas, equals signs and spaces.

    Backslashes stay as they are: InfluxDB 1.x and VictoriaMetrics keep a doubled one doubled."""
    return _no_newlines(s).replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_string(s: str) -> str:
    """String field values, inside double quotes: escape backslashes and double quotes."""
    return '"' + _no_newlines(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=4096)
def safe_name(name: str) -> str:
    """A field name usable unquoted in InfluxQL: keywords get a `_` appended."""
    return name + "_" if name.lower() in INFLUXQL_KEYWORDS else name


def _number(v: Any) -> float | None:
    """The float to write for v, or None when v is not a finite number (bool counts as 0/1)."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def format_line(measurement: str, tags: Mapping[str, str | None], fields: Mapping[str, Any],
                t_ns: int) -> str | None:
    """One point. Tags with empty values are left out (line protocol forbids them); numbers are
    written as floats, strings quoted, anything else (None, NaN, lists) left out. None when no
    field is left."""
    return _line(measurement, _series(measurement, tuple(tags.items())),
                 [(_field_key(k), v) for k, v in fields.items()], t_ns)


def _line(measurement: str, head: str, fields: Iterable[tuple[str, Any]], t_ns: int,
          strings: bool = True) -> str | None:
    """`format_line` once the series and the field keys (`key=`) are formatted; `strings`
    False: string values are left out."""
    fs: list[str] = []
    for k, v in fields:
        if type(v) is float:  # most fields: the general case below, without its calls
            if v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
                fs.append(f"{k}{v!r}")
        elif isinstance(v, str):
            if strings:
                fs.append(f"{k}{escape_string(v)}")
        else:
            f = _number(v)
            if f is not None:
                fs.append(f"{k}{f!r}")
    if not fs:
        return None
    if not isinstance(t_ns, int) or isinstance(t_ns, bool):
        raise LineProtocolError(f"{measurement}: timestamp must be integer ns, got {t_ns!r}")
    return f"{head} {','.join(fs)} {t_ns}"


# A series (measurement and tags) and a field key repeat from line to line: formatted once.
@functools.lru_cache(maxsize=4096)
def _series(measurement: str, tags: tuple[tuple[str, str | None], ...]) -> str:
    """The measurement and its tags, sorted (InfluxDB's preferred order, and one key per
    series), those with an empty value left out."""
    return ",".join([escape_measurement(measurement)]
                    + [f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags) if v])


# `key=` of a field key, and of a sample's fields (offset_s, bound_s, then its own after
# `safe_name`) per tuple of its field names (a source's samples have the same few); () when two
# of the names are the same after `safe_name` (then `Encoder.sample` takes the general way).
@functools.lru_cache(maxsize=4096)
def _field_key(k: str) -> str:
    return f"{escape_key(k)}="


@functools.lru_cache(maxsize=4096)
def _sample_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    safe = ["offset_s", "bound_s", *map(safe_name, names)]
    return tuple(map(_field_key, safe)) if len(set(safe)) == len(safe) else ()


# ---------------------------------------------------------------------------------------------
# The schema


class Encoder:
    """Turns outputs into lines. `sources` gives each source's kind and trust group (tags)."""

    def __init__(self, host: str, sources: Mapping[str, SourceInfo],
                 anchors: Callable[[], Mapping[str, Head]] | None = None):
        self.host = host
        self.sources = dict(sources)
        # The latest evidence checkpoint per stream, sent with every consensus point, so that
        # what left the box pins the local files (docs/evidence.md).
        self.anchors = anchors
        # Each source's tw_sample series, with the SourceInfo it was made from (`sources` may
        # change: a series is used only while its source's entry is that same object).
        self._heads: dict[str, tuple[SourceInfo | None, str]] = {}

    @classmethod
    def from_config(cls, cfg: Any) -> Encoder:
        """From a `config.Config` (host and [[sources]])."""
        return cls(cfg.host, {s.id: s.info() for s in cfg.sources})

    def _src_tags(self, src: str, kind: str | None = None,
                  group: str | None = None) -> dict[str, str | None]:
        info = self.sources.get(src)
        return {"host": self.host, "source": src,
                "kind": kind or (info.kind if info else None),
                "trust_group": group or (info.group if info else None)}

    def sample(self, s: Sample) -> list[str]:
        info = self.sources.get(s.src)
        head = self._heads.get(s.src)
        if head is None or head[0] is not info:
            head = self._heads[s.src] = (info, _series(M_SAMPLE, tuple(self._src_tags(s.src)
                                                                          .items())))
        names = tuple(s.fields)
        keys = _sample_keys(names)
        if not keys:
            return self._sample(s)
        # Strings are left out (module doc).
        line = _line(M_SAMPLE, head[1], zip(keys, (s.offset_s, s.bound_s, *s.fields.values()),
                                            strict=True), s.t_ns, strings=False)
        return [line] if line else []

    def _sample(self, s: Sample) -> list[str]:
        """`sample`, the general way (two field names the same after `safe_name`)."""
        fields: dict[str, Any] = {"offset_s": s.offset_s, "bound_s": s.bound_s}
        for k, v in s.fields.items():
            name = safe_name(k)
            if name not in fields and not isinstance(v, str):  # strings: see module doc
                fields[name] = v
        line = format_line(M_SAMPLE, self._src_tags(s.src), fields, s.t_ns)
        return [line] if line else []

    def snapshot(self, snap: Snapshot) -> list[str]:
        out: list[str] = []
        counts = {"truechimer": 0, "falseticker": 0}
        for st in snap.sources:
            if st.verdict in counts:
                counts[st.verdict] += 1
            fields: dict[str, Any] = {
                "verdict": st.verdict,
                "verdict_code": VERDICT_CODES.get(st.verdict, max(VERDICT_CODES.values())),
                "reason": st.reason,
                "offset_s": st.offset_s,
                "bound_s": st.bound_s,
                "age_s": (snap.t_ns - st.last_ns) / 1e9 if st.last_ns is not None else None,
                "authenticated": 1 if st.auth else 0,
            }
            for k, v in st.fields.items():  # the tracker's status numbers (status_fields)
                name = safe_name(str(k))
                if name not in fields and not isinstance(v, str):  # dicts, None: left out
                    fields[name] = v
            line = format_line(M_SOURCE, self._src_tags(st.src, st.kind, st.group), fields,
                               snap.t_ns)
            if line:
                out.append(line)
        chain: dict[str, Any] = {}
        for stream, head in (self.anchors() if self.anchors else {}).items():
            chain[f"chain_{stream}_seq"] = head.seq
            chain[f"chain_{stream}_sha256"] = head.sha256
        line = format_line(M_CONSENSUS, {"host": self.host}, {
            "offset_s": snap.consensus_offset_s,
            "bound_s": snap.consensus_bound_s,
            "quorum": snap.quorum,
            "groups_agreeing": snap.groups_agreeing,
            "groups_voting": snap.groups_voting,
            "holdover_ppm": snap.holdover_ppm,
            "alerts_active": len(snap.active_alerts),
            "sources_total": len(snap.sources),
            "sources_truechimer": counts["truechimer"],
            "sources_falseticker": counts["falseticker"],
            **chain,
        }, snap.t_ns)
        if line:
            out.append(line)
        return out

    def event(self, e: Event) -> list[str]:
        alert = e.type == "alert"
        tags: dict[str, str | None] = {
            "host": self.host, "code": e.code, "type": e.type,
            # A clear carries no severity of its own (docs/events.md): tag only alerts with it.
            "severity": e.severity if alert else None,
            "sources": ",".join(e.sources),
        }
        fields: dict[str, Any] = {"active": 1 if alert else 0, "id": e.id,
                                  "n_sources": len(e.sources)}
        if alert:
            fields["severity_level"] = SEVERITY_LEVELS.get(e.severity, 1)
            fields["message"] = e.message
        for k, v in e.evidence.items():
            # Numbers only: a key that is a string in one event and a number in another would
            # be a field type conflict; the message carries the words.
            if _number(v) is not None:
                fields["ev_" + str(k)] = v
        line = format_line(M_EVENT, tags, fields, e.t_ns)
        return [line] if line else []

    def learn(self, snap: Snapshot) -> None:
        """Take kind and trust group of sources the config does not list from a snapshot (a
        replay without [[sources]]): the engine emits one with its first outputs."""
        for st in snap.sources:
            if st.src not in self.sources:
                self.sources[st.src] = SourceInfo(kind=st.kind, group=st.group)

    def lines(self, outputs: Iterable[Output]) -> list[str]:
        outputs = list(outputs)
        for o in outputs:
            if isinstance(o, Snapshot):
                self.learn(o)
        out: list[str] = []
        for o in outputs:
            if isinstance(o, Sample):
                out.extend(self.sample(o))
            elif isinstance(o, Snapshot):
                out.extend(self.snapshot(o))
            elif isinstance(o, Event):
                out.extend(self.event(o))
        return out


def to_lines(outputs: Iterable[Output], host: str,
             sources: Mapping[str, SourceInfo] | None = None) -> list[str]:
    """Line-protocol lines (no trailing newlines) for outputs, tagged with host."""
    return Encoder(host, sources or {}).lines(outputs)
