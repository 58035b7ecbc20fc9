"""The runner's life cycle told to systemd (sd_notify): READY, WATCHDOG, STATUS, STOPPING.

The watchdog is pinged from the engine's tick path, so a hung engine or event loop stops the
pings and systemd restarts the service (`WatchdogSec` in hw/systemd/timewatch.service).
"""

from __future__ import annotations

import time

from .notify import Notifier
from .records import Snapshot
from .runner import Hooks, status_line


def add_systemd_hooks(hooks: Hooks, notifier: Notifier | None = None) -> Notifier:
    """Append sd_notify calls to a runner's `Hooks` (a no-op outside systemd)."""
    n = notifier or Notifier()
    if not n.enabled:
        return n
    last_ping = [time.monotonic()]
    last_status = [""]

    def ready(status: str) -> None:
        n.ready(status)
        last_status[0] = status

    def tick(snap: Snapshot | None) -> None:
        now = time.monotonic()
        if n.watchdog_interval_s is not None and now - last_ping[0] >= n.watchdog_interval_s / 2:
            n.watchdog()
            last_ping[0] = now
        s = status_line(snap)
        if s != last_status[0]:
            n.status(s)
            last_status[0] = s

    def stopping() -> None:
        n.stopping()

    hooks.ready.append(ready)
    hooks.tick.append(tick)
    hooks.stop.append(stopping)
    return n
