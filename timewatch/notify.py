"""systemd's sd_notify protocol, without depending on systemd (sd_notify(3)).

A datagram of `KEY=VALUE` lines to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a leading `@`
means the abstract namespace). Without the variable every call is a no-op, so the runner calls it
unconditionally. `WATCHDOG_USEC` gives the watchdog period; we ping at half of it, as
sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr: str | None = None
        if addr:
            self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        # Ping at half the period (sd_watchdog_enabled(3)); None when no watchdog is asked for.
        self.watchdog_interval_s: float | None = (
            int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and ours else None)

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message (`READY=1`, `STATUS=...`); False if it could not be sent."""
        if self._addr is None:
            return False
        msg = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(msg, self._addr)
            return True
        except OSError as e:
            log.warning("sd_notify to %s failed: %s", self._addr.lstrip("\0"), e)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, STATUS=status) if status else self.send(READY=1)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
