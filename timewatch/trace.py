"""Read and write observation traces (docs/trace-format.md): JSON Lines, optionally gzipped.

A trace recorded by `run` is chained (docs/evidence.md): `TraceWriter(..., evidence=...)` seals
it with signed checkpoint lines; `TraceReader` skips them (it counts them in `stats.checkpoints`)
and `evidence.scan` checks them.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from .evidence import ChainWriter, Evidence
from .records import (
    Header,
    Nmea,
    Note,
    Ntp,
    Observation,
    Pps,
    RecordError,
    Tick,
    Ubx,
    observation_from_dict,
    observation_to_dict,
    refuse_constant,
)

if TYPE_CHECKING:
    from .engine.params import Detect

log = logging.getLogger(__name__)
# A header without the build-date floor (recorded before headers carried it) is judged with the
# floor at the day before it was created, when that is earlier than this build's.
_DAY_NS = 86_400 * 1_000_000_000

# Records whose fields are all plain int, float or str (chrony builds tuples: json reads it).
_TYPES_AS_DECODED = (Nmea, Ubx, Pps, Ntp, Tick, Note)
# msgspec decodes a trace line straight into its record (a msgspec Struct), type checks included,
# keyed by the start of a line as TraceWriter writes it, up to the first comma: '{"type": "ntp"'.
_DECODERS: dict[str, Callable[[str], Any]] = {  # Any: each gives its own class
    f'{{"type": "{c.type}"': msgspec.json.Decoder(c).decode for c in _TYPES_AS_DECODED}
# What msgspec refuses goes to json (deep nesting too: json then decides, as before).
_DecodeError: tuple[type[Exception], ...] = (msgspec.DecodeError, RecursionError)


class TraceError(Exception):
    """The trace cannot be read at all (no file, no header)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook for the header: a key given twice (two sources with one id) is an
    error, not the last one silently winning."""
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise RecordError(f"{k!r} is given twice (a duplicate source id?)")
        d[k] = v
    return d


@dataclass
class TraceStats:
    records: int = 0
    bad_lines: int = 0
    unknown_types: dict[str, int] = field(default_factory=dict)
    checkpoints: int = 0  # evidence checkpoint lines, skipped
    problems: list[str] = field(default_factory=list)  # "FILE:LINE: what" (first 100 kept)


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(path, mode + "b"), encoding="utf-8", newline="\n")
    return open(path, mode, encoding="utf-8", newline="\n")


class TraceReader:
    """Iterates a trace's observations. Bad lines are reported with their number and skipped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.stats = TraceStats()
        try:
            self._f = _open_text(self.path, "r")
            first = self._f.readline()
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise TraceError(f"{self.path}: cannot read: {e}") from e
        try:
            self.header = Header.from_dict(json.loads(first, parse_constant=refuse_constant,
                                                      object_pairs_hook=_unique_keys))
        except (json.JSONDecodeError, RecordError, AttributeError, TypeError,
                RecursionError) as e:
            raise TraceError(f"{self.path}:1: not a timewatch trace header: {e}") from e

    def detect(self) -> Detect:
        """The [detect] settings the recording ran with (docs/trace-format.md): the header's
        keys over this build's defaults. A header without the build-date floor (an older
        recording, a simulated trace) gets the day before its `created_ns` when that is earlier
        than this build's floor, so an archive never shows date anomalies it never had.
        TraceError naming the key and the file for a key this build does not know or a value it
        refuses."""
        from .engine.params import DATE_FLOOR_KEY, Detect, detect_from

        h = self.header
        keys: dict[str, object] = dict(h.detect)
        if DATE_FLOOR_KEY not in keys and h.created_ns > _DAY_NS:
            floor_s = (h.created_ns - _DAY_NS) // _DAY_NS * 86_400
            if floor_s < Detect().gnss_not_before_unix_s:
                keys[DATE_FLOOR_KEY] = float(floor_s)
        try:
            return detect_from(keys)
        except ValueError as e:
            raise TraceError(f"{self.path}:1: header detect.{e}; `replay --detect-from-config` "
                             f"replays with the config's [detect] instead") from e

    def bytes_read(self) -> int:
        """How far into the file reading has got (compressed bytes for .gz): for progress."""
        try:
            return os.lseek(self._f.fileno(), 0, os.SEEK_CUR)
        except (OSError, ValueError):
            return 0

    def _problem(self, lineno: int, what: str) -> None:
        self.stats.bad_lines += 1
        msg = f"{self.path}:{lineno}: {what}; line skipped"
        log.warning("%s", msg)
        if len(self.stats.problems) < 100:
            self.stats.problems.append(msg)

    def __iter__(self) -> Iterator[Observation]:
        lineno = 1
        stats, decoders = self.stats, _DECODERS
        try:
            for line in self._f:
                lineno += 1
                # Most lines: msgspec builds the record, or refuses the line. It is handed only
                # lines on which it gives what json and observation_from_dict give: a known
                # type, no escape (no key or value spelled differently) and no second "type"
                # key (json keeps the last one). All else, and what it refuses, goes to json,
                # which reports the line with its number as the spec says.
                decode = decoders.get(line[:line.find(",")])
                if decode is not None and "\\" not in line and line.find('"type"', 2) < 0:
                    try:
                        obs: Observation | None = decode(line)
                    except _DecodeError:
                        obs = self._json_line(line, lineno)
                else:
                    obs = self._json_line(line, lineno)
                if obs is not None:
                    stats.records += 1
                    yield obs
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as e:
            # A truncated .gz (a recording cut by power loss) keeps everything before the cut.
            self._problem(lineno + 1, f"trace ends early: {e}")
        finally:
            self._f.close()

    def _json_line(self, line: str, lineno: int) -> Observation | None:
        """One line read with json: its record, or None after counting or reporting it."""
        if not line.strip():
            return None
        try:
            d = json.loads(line, parse_constant=refuse_constant)
            if not isinstance(d, dict):
                raise RecordError("not a JSON object")
            obs = observation_from_dict(d)
        except json.JSONDecodeError as e:
            self._problem(lineno, f"invalid JSON ({e.msg})")
            return None
        except RecursionError:
            self._problem(lineno, "invalid JSON (nested too deeply)")
            return None
        except RecordError as e:
            self._problem(lineno, str(e))
            return None
        if obs is None:
            t = str(d.get("type"))
            if t == "checkpoint":  # evidence, not an observation (docs/evidence.md)
                self.stats.checkpoints += 1
            else:
                self.stats.unknown_types[t] = self.stats.unknown_types.get(t, 0) + 1
        return obs


class TraceWriter:
    """Appends observations to a trace; the runner flushes it every second (`flush`). With
    `evidence` the trace is chained: a checkpoint after the header, every `checkpoint_records`
    records or (checked at each flush) `checkpoint_s` seconds, and a final one at `close`."""

    def __init__(self, path: str | Path, header: Header, *, evidence: Evidence | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = _open_text(self.path, "w")
        self._chain = ChainWriter(evidence, "trace", self._f.write) if evidence else None
        self._write(header.to_dict())
        if self._chain is not None:
            self._chain.start()

    def _write(self, d: dict[str, object]) -> None:
        s = json.dumps(d, separators=(", ", ": "), ensure_ascii=False) + "\n"
        self._f.write(s)
        if self._chain is not None:
            self._chain.add(s)

    def write(self, obs: Observation) -> None:
        self._write(observation_to_dict(obs))

    def flush(self) -> None:
        if self._chain is not None:
            self._chain.tick()
        self._f.flush()

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            if self._chain is not None:
                self._chain.close()
        finally:
            self._f.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
