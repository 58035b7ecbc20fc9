"""Read and write observation traces (spec/trace-format.md): JSON Lines, optionally gzipped."""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .records import Header, Observation, RecordError, observation_from_dict, observation_to_dict

try:  # orjson parses a trace line ~4x faster than json; json alone gives the same records
    import orjson

    _fast_loads: Callable[[str], Any] | None = orjson.loads
    _FastError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is a dependency, but a trace must still read
    _fast_loads, _FastError = None, ValueError

log = logging.getLogger(__name__)


# orjson turns integers beyond 64 bits into floats (json keeps them exact): any float this large
# may have been one, so that line is parsed again by json.
_BIG_FLOAT = 2.0**63


def _has_big_float(v: Any) -> bool:
    if type(v) is float:
        return not -_BIG_FLOAT < v < _BIG_FLOAT
    if type(v) is dict:
        v = v.values()
    elif type(v) is not list:
        return False
    for x in v:  # a loop, not any(): this runs on every field of every line
        if type(x) is float:
            if not -_BIG_FLOAT < x < _BIG_FLOAT:
                return True
        elif (type(x) is dict or type(x) is list) and _has_big_float(x):
            return True
    return False


def _loads(line: str) -> Any:
    """json.loads of one line, faster. orjson first; what it refuses (NaN, Infinity, lone
    surrogates, broken JSON) or may have changed (integers beyond 64 bits) goes to json, which
    gives the same value or the same error message as before."""
    if _fast_loads is not None:
        try:
            d = _fast_loads(line)
        except _FastError:
            pass
        else:
            if not _has_big_float(d):
                return d
    return json.loads(line)


class TraceError(Exception):
    """The trace cannot be read at all (no file, no header)."""


@dataclass
class TraceStats:
    records: int = 0
    bad_lines: int = 0
    unknown_types: dict[str, int] = field(default_factory=dict)
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
            self.header = Header.from_dict(json.loads(first))
        except (json.JSONDecodeError, RecordError, AttributeError, TypeError) as e:
            raise TraceError(f"{self.path}:1: not a timewatch trace header: {e}") from e

    def _problem(self, lineno: int, what: str) -> None:
        self.stats.bad_lines += 1
        msg = f"{self.path}:{lineno}: {what}; line skipped"
        log.warning("%s", msg)
        if len(self.stats.problems) < 100:
            self.stats.problems.append(msg)

    def __iter__(self) -> Iterator[Observation]:
        lineno = 1
        try:
            for line in self._f:
                lineno += 1
                if not line.strip():
                    continue
                try:
                    d = _loads(line)
                    if not isinstance(d, dict):
                        raise RecordError("not a JSON object")
                    obs = observation_from_dict(d)
                except json.JSONDecodeError as e:
                    self._problem(lineno, f"invalid JSON ({e.msg})")
                    continue
                except RecordError as e:
                    self._problem(lineno, str(e))
                    continue
                if obs is None:
                    t = str(d.get("type"))
                    self.stats.unknown_types[t] = self.stats.unknown_types.get(t, 0) + 1
                    continue
                self.stats.records += 1
                yield obs
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as e:
            # A truncated .gz (a recording cut by power loss) keeps everything before the cut.
            self._problem(lineno + 1, f"trace ends early: {e}")
        finally:
            self._f.close()


class TraceWriter:
    """Appends observations to a trace; the runner flushes it every second (`flush`)."""

    def __init__(self, path: str | Path, header: Header):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = _open_text(self.path, "w")
        self._write(header.to_dict())

    def _write(self, d: dict[str, object]) -> None:
        self._f.write(json.dumps(d, separators=(", ", ": "), ensure_ascii=False) + "\n")

    def write(self, obs: Observation) -> None:
        self._write(observation_to_dict(obs))

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
