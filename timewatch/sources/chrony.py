"""Reads the local chronyd through chronyc (`kind = "chrony"`): what it follows and how far off.

Every `poll_s` it runs `chronyc -c -n tracking`, `chronyc -c -n sources` and `chronyc -c -N
sources` (the configured names, to match chrony's sources with timewatch's NTP sources) and emits
one `Chrony` record with the CSV lines as chronyc printed them. The engine decides what they mean.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess

from ..config import SourceConfig
from ..records import Chrony
from . import Emit, now_pair

log = logging.getLogger(__name__)

# chronyc answers from its local socket in milliseconds; longer means chronyd is stuck.
CHRONYC_TIMEOUT_S = 5.0


class ChronyReader:
    def __init__(self, cfg: SourceConfig, emit: Emit):
        self.cfg = cfg
        self.emit = emit
        self.chronyc = shutil.which("chronyc") or "chronyc"

    def _chronyc(self, *args: str) -> list[str]:
        cmd = [self.chronyc, "-c"]
        if self.cfg.socket:
            cmd += ["-h", self.cfg.socket]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True,
                           timeout=CHRONYC_TIMEOUT_S)
        if r.returncode != 0:
            raise OSError(f"chronyc {' '.join(args)}: {r.stderr.strip() or r.returncode}")
        return [ln for ln in r.stdout.splitlines() if ln.strip()]

    def poll_once(self) -> Chrony:
        try:
            tracking = self._chronyc("-n", "tracking")
            numeric = self._chronyc("-n", "sources")
            named = self._chronyc("-N", "sources")
        except (OSError, subprocess.TimeoutExpired) as e:
            rx, raw = now_pair()
            log.warning("%s: chronyd did not answer: %s", self.cfg.id, e)
            return Chrony(self.cfg.id, rx, error="unreachable", raw_ns=raw)
        rx, raw = now_pair()
        names = []
        for a, b in zip(numeric, named, strict=False):
            fa, fb = a.split(","), b.split(",")
            if len(fa) > 2 and len(fb) > 2 and fa[2] != fb[2]:
                names.append((fa[2], fb[2]))
        return Chrony(self.cfg.id, rx, tracking[0] if tracking else "", tuple(numeric),
                      tuple(sorted(names)), raw_ns=raw)

    async def run(self) -> None:
        while True:
            self.emit(await asyncio.to_thread(self.poll_once))
            await asyncio.sleep(self.cfg.poll_s)
