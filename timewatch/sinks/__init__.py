"""Sinks consume what the engine emits. One interface, one config section each (Telegraf's shape).

A slow or dead sink never blocks the engine or another sink: each runs behind its own queue and
spools to disk what it could not deliver (see `spool.py`).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import Config
from ..records import Output

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def handle(self, outputs: list[Output]) -> None:
        """Take the engine's outputs. Must not block for long: queue, spool, return."""

    def close(self) -> None:
        """Flush what can be flushed, spool the rest, release resources."""


@dataclass(frozen=True, slots=True)
class Mark:
    """How far a backfill (`replay -c`, `export --influxdb`) has handed its outputs to a sink:
    `n` under the backfill's `key` (replay: outputs so far; export: the time reached). A sink
    that resumes (`handle_marked`) writes the mark in the same transaction as those outputs."""

    key: str
    n: int


class Resumable(Protocol):
    """A sink a backfill can resume without duplicates: the mark goes to disk with the data."""

    def handle_marked(self, outputs: list[Output], mark: Mark) -> None:
        """`handle(outputs)`, and once they are durable, `mark` with them (atomically). May
        wait for the sink to catch up (a backfill is not a live monitor)."""

    def resume_point(self, key: str) -> int | None:
        """The last mark of `key` that is on disk (None: nothing of that backfill reached it)."""

    def passed(self, outputs: list[Output]) -> None:
        """Outputs a resumed backfill does not hand again (the sink has them): what the sink
        learns from outputs, it learns from these too."""

    def forget(self, key: str) -> None:
        """The backfill is over: drop its mark."""


def finite(obj: Any) -> Any:
    """obj with every non-finite float (NaN, +-Infinity) replaced by None, in dicts and lists
    too: what JSON and SQL can hold. A sink writes non-finite numbers as null, never fails."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def to_json(obj: Any, **kw: Any) -> str:
    """json.dumps that always writes JSON: a non-finite number becomes null (not `NaN`)."""
    enc = _encoder(**kw)
    try:
        return enc.encode(obj)
    except ValueError:
        return enc.encode(finite(obj))


@functools.lru_cache(maxsize=16)
def _encoder(**kw: Any) -> json.JSONEncoder:
    """json.dumps's encoder, made once per set of options (the store calls to_json per row:
    making it each time was a quarter of the store's writing)."""
    return json.JSONEncoder(allow_nan=False, **kw)


class SinkStartError(Exception):
    """A configured sink cannot start (module missing, address in use...): names the sink."""


def _make(cfg: Config, name: str, target: str, **kw: object) -> Sink:
    mod, _, cls = target.partition(":")
    try:
        sink_cls = getattr(importlib.import_module(mod), cls)
        sink: Sink = sink_cls(cfg, **kw)
    except ImportError as e:
        raise SinkStartError(f"sink {name} cannot start: a module it needs is missing: "
                             f"{e}") from e
    except Exception as e:  # noqa: BLE001 - whatever it is, say which sink and why
        raise SinkStartError(f"sink {name} cannot start: {e}") from e
    return sink


# A backfill's InfluxDB spool (under the state directory): never the one of a monitor that may
# be running with the same state directory (two senders on one spool would send rows twice).
BACKFILL_SPOOL = "influxdb-backfill.spool"


def build_sinks(cfg: Config, *, store: bool = True, live: bool = False,
                backfill: bool = False) -> list[Sink]:
    """Every sink the config asks for, or none: the embedded store (and its event log) unless
    `store=False`, the HTTP status endpoint when `live`, InfluxDB and webhooks when configured
    (`backfill`: InfluxDB spools to BACKFILL_SPOOL).
    A sink that cannot start raises `SinkStartError` naming it and the cause, after the sinks
    already started are closed (an HTTP server releases its port, a writer thread ends)."""
    wanted: list[tuple[str, str]] = []
    if store:
        # The event log first: it hands each event's place in its chain to the store.
        wanted += [("eventlog", "timewatch.sinks.eventlog:EventLogSink"),
                   ("store", "timewatch.sinks.store:StoreSink")]
    if live and cfg.http_listen:
        wanted.append(("http", "timewatch.sinks.http:HttpSink"))
    if cfg.influxdb is not None:
        wanted.append(("influxdb", "timewatch.sinks.influx:InfluxSink"))
    if cfg.webhooks:
        wanted.append(("webhook", "timewatch.sinks.webhook:WebhookSink"))
    sinks: list[Sink] = []
    for name, target in wanted:
        kw = {"spool_name": BACKFILL_SPOOL} if backfill and name == "influxdb" else {}
        try:
            sinks.append(_make(cfg, name, target, **kw))
        except SinkStartError:
            close_all(sinks)
            raise
    return sinks


def fan_out(sinks: list[Sink], outputs: list[Output]) -> None:
    """Hand outputs to every sink; one sink's failure is logged and never reaches the others."""
    for s in sinks:
        try:
            s.handle(outputs)
        except Exception:  # noqa: BLE001 - a broken sink must not stop the monitor
            log.exception("sink %s failed on %d outputs: they are lost for that sink (the other "
                          "sinks have them)", s.name, len(outputs))


def close_all(sinks: list[Sink]) -> None:
    for s in sinks:
        try:
            s.close()
        except Exception:  # noqa: BLE001
            log.exception("sink %s failed to close cleanly", s.name)
