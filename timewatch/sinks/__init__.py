"""Sinks consume what the engine emits. One interface, one config section each (Telegraf's shape).

A slow or dead sink never blocks the engine or another sink: each runs behind its own queue and
spools to disk what it could not deliver (see `spool.py`).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..config import Config
from ..records import Output

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def handle(self, outputs: list[Output]) -> None:
        """Take the engine's outputs. Must not block for long: queue, spool, return."""

    def close(self) -> None:
        """Flush what can be flushed, spool the rest, release resources."""


def build_sinks(cfg: Config, *, store: bool = True, live: bool = False) -> list[Sink]:
    """Every sink the config asks for. The embedded store (and its event log) is on unless
    `store=False`; the HTTP status endpoint only runs `live`."""
    sinks: list[Sink] = []
    if store:
        from .eventlog import EventLogSink
        from .store import StoreSink

        # The event log first: it hands each event's place in its chain to the store.
        sinks.append(EventLogSink(cfg))
        sinks.append(StoreSink(cfg))
    if live and cfg.http_listen:
        from .http import HttpSink

        sinks.append(HttpSink(cfg))
    if cfg.influxdb is not None:
        from .influx import InfluxSink

        sinks.append(InfluxSink(cfg))
    if cfg.webhooks:
        from .webhook import WebhookSink

        sinks.append(WebhookSink(cfg))
    return sinks


def fan_out(sinks: list[Sink], outputs: list[Output]) -> None:
    """Hand outputs to every sink; one sink's failure is logged and never reaches the others."""
    for s in sinks:
        try:
            s.handle(outputs)
        except Exception:  # noqa: BLE001 - a broken sink must not stop the monitor
            log.exception("sink %s failed; its data is kept for retry where it spools", s.name)


def close_all(sinks: list[Sink]) -> None:
    for s in sinks:
        try:
            s.close()
        except Exception:  # noqa: BLE001
            log.exception("sink %s failed to close cleanly", s.name)
