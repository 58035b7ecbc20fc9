"""`timewatch demo`: the real monitor against simulated NTP servers on loopback, with a liar.

Four simulated servers on 127.0.0.21-.24 (one trust group each); the fourth starts lying by
+150 ms after ~20 s. The monitor runs in-process with the embedded store under ./state/demo
(or --state-dir), records its trace there, and shows a live view: a refreshing table on a
terminal, plain lines when piped. Needs no root and no network (Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from ..cli import UsageError
from ..config import Config, parse
from ..records import Event, Output, Snapshot
from ..runner import Runner, status_line
from .ntpserver import Behaviour, start_servers

log = logging.getLogger(__name__)

# Loopback addresses of the simulated servers (all of 127.0.0.0/8 is local on Linux).
SERVER_HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24")
SERVER_IDS = ("sim-a", "sim-b", "sim-c", "sim-d")
# Unprivileged port, so the demo needs no root.
SERVER_PORT = 12123
# Poll every 2 s so the story fits in a minute (real servers: 64 s).
DEMO_POLL_S = 2.0
# The liar's story: when it starts lying and by how much (well beyond any error bound).
LIE_AFTER_S = 20.0
LIE_OFFSET_S = 0.150
DEFAULT_DURATION_S = 60.0
# Snapshot once a second for the live view (the default is 10 s).
DEMO_SNAPSHOT_S = 1.0
SCENARIOS = ("ntp-liar",)


def demo_config(state_dir: str, port: int = SERVER_PORT) -> Config:
    return parse({
        "monitor": {"host": "demo", "state_dir": state_dir},
        "http": {"listen": ""},  # no port that could clash with a monitor running on this host
        "detect": {"snapshot_interval_s": DEMO_SNAPSHOT_S},
        "sources": [{"id": sid, "kind": "ntp", "server": host, "port": port,
                     "poll_s": DEMO_POLL_S} for sid, host in zip(SERVER_IDS, SERVER_HOSTS,
                                                                 strict=True)],
    }, "<demo>")


def _ms(v: float | None) -> str:
    return f"{v * 1e3:+9.3f}" if v is not None else "        -"


class DemoView:
    """A sink that draws the monitor's state: a refreshing table on a TTY, lines when piped."""

    name = "demo-view"

    def __init__(self, out: TextIO, tty: bool, t0: float, duration_s: float):
        self.out, self.tty, self.t0, self.duration_s = out, tty, t0, duration_s
        self.alerts: list[str] = []
        self.story: list[str] = []
        self._last_plain = float("-inf")
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        with self._lock:
            line = f"[{self.elapsed():5.1f}s] {text}"
            self.story.append(line)
            if not self.tty:
                print(line, file=self.out, flush=True)

    def handle(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Event):
                what = (f"ALERT {o.code} [{o.severity}] {','.join(o.sources)}: {o.message}"
                        if o.type == "alert" else f"clear {o.code} {','.join(o.sources)}")
                self.alerts.append(f"[{self.elapsed():5.1f}s] {what}")
                self.say(what)
            elif isinstance(o, Snapshot):
                self._draw(o)

    def _table(self, s: Snapshot) -> list[str]:
        rows = [f"{'source':8} {'verdict':12} {'offset ms':>10} {'+- ms':>9}  reason"]
        for st in s.sources:
            rows.append(f"{st.src:8} {st.verdict:12} {_ms(st.offset_s):>10} "
                        f"{(st.bound_s * 1e3 if st.bound_s is not None else 0):9.3f}  "
                        f"{st.reason}")
        rows.append(f"consensus: {status_line(s)}")
        return rows

    def _draw(self, s: Snapshot) -> None:
        with self._lock:
            if self.tty:
                lines = [f"timewatch demo: {self.elapsed():5.1f} / {self.duration_s:.0f} s "
                         f"(4 simulated NTP servers; {SERVER_IDS[3]} lies after "
                         f"{LIE_AFTER_S:.0f} s)", ""] + self._table(s)
                lines += ["", "story and alerts:"] + self.story[-12:]
                self.out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
                self.out.flush()
            elif self.elapsed() - self._last_plain >= 10.0:  # piped: a table every 10 s
                self._last_plain = self.elapsed()
                print("\n".join(f"[{self.elapsed():5.1f}s]   {r}" for r in self._table(s)),
                      file=self.out, flush=True)

    def close(self) -> None:
        pass


async def run_demo(state_dir: str, duration_s: float, out: TextIO, tty: bool,
                   port: int = SERVER_PORT) -> tuple[Runner, DemoView, Path]:
    behaviours = [Behaviour() for _ in SERVER_HOSTS]
    behaviours[3].lie_after_s, behaviours[3].lie_offset_s = LIE_AFTER_S, LIE_OFFSET_S
    try:
        servers = await start_servers(list(SERVER_HOSTS), port, behaviours)
    except OSError as e:
        raise UsageError(f"cannot start the simulated NTP servers on 127.0.0.21-24:{port}: {e} "
                         "(another demo running?)") from e
    cfg = demo_config(state_dir, port)
    trace = Path(state_dir) / "demo-trace.jsonl.gz"
    view = DemoView(out, tty, time.monotonic(), duration_s)
    runner = Runner(cfg, record=trace, duration_s=duration_s, extra_sinks=[view])
    loop = asyncio.get_running_loop()
    view.say(f"4 simulated NTP servers on {SERVER_HOSTS[0]}-.24:{port}, polled every "
             f"{DEMO_POLL_S:g} s; {SERVER_IDS[3]} will lie by {LIE_OFFSET_S * 1e3:+.0f} ms "
             f"after {LIE_AFTER_S:.0f} s")
    loop.call_later(LIE_AFTER_S, view.say,
                    f"{SERVER_IDS[3]} now lies by {LIE_OFFSET_S * 1e3:+.0f} ms")
    try:
        await runner.run()
    finally:
        for s in servers:
            s.close()
    return runner, view, trace


def summary(runner: Runner, view: DemoView, trace: Path, cfg: Config) -> str:
    alerts = [e for e in runner.events if e.type == "alert"]
    named = sorted({s for e in alerts if e.code == "source.falseticker" for s in e.sources})
    lines = ["", "=== timewatch demo: summary",
             f"observations handed to the engine: {runner.handed}; alerts: {len(alerts)}, "
             f"clears: {len(runner.events) - len(alerts)}"]
    for e in alerts:
        lines.append(f"  {e.code} {','.join(e.sources)} [{e.severity}]: {e.message}")
    if named:
        lines.append(f"falsetickers named: {', '.join(named)} (the liar was {SERVER_IDS[3]})")
    else:
        lines.append("no falseticker named (is the engine's NTP tracker installed? "
                     "was the demo long enough?)")
    lines.append("where the data went:")
    lines.append(f"  store (SQLite): {cfg.store_path}")
    lines.append(f"  event log: {Path(cfg.state_dir) / 'events.jsonl'}")
    lines.append(f"  trace: {trace}  (replay it: timewatch replay {trace})")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    scenario = getattr(args, "scenario", None)
    if scenario not in (None, *SCENARIOS):
        raise UsageError(f"demo --scenario: unknown {scenario!r} (this demo knows: "
                         f"{', '.join(SCENARIOS)})")
    state_dir = getattr(args, "state_dir", None) or "./state/demo"
    duration = float(args.duration) if args.duration else DEFAULT_DURATION_S
    tty = sys.stdout.isatty()
    if tty:  # the table is the view; log lines would tear it
        logging.getLogger("timewatch").setLevel(logging.ERROR)
    runner, view, trace = asyncio.run(run_demo(state_dir, duration, sys.stdout, tty))
    print(summary(runner, view, trace, runner.cfg))
    return 0
