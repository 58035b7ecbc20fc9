"""The live monitor with one PTP source (its own ptp4l on side B of the tests' veth pair) and
four simulated NTP servers on loopback, each its own trust group, all polled every second.

`Live(net, ...)` runs the real `Runner` in-process; `until(pred)` ends the run as soon as `pred`
holds over what the run has output so far (or at its deadline), so no test sleeps a fixed time.
`during` runs an action in the middle of the run (start a rogue master, kill ptp4l, ...).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ptp.conftest import PtpNet
from timewatch.config import parse
from timewatch.records import Event, Output, Sample, Snapshot, SourceStatus
from timewatch.runner import Runner
from timewatch.sim.ntpserver import Behaviour, start_servers

NTP_HOSTS = ["127.0.0.71", "127.0.0.72", "127.0.0.73", "127.0.0.74"]
NTP_IDS = ["n1", "n2", "n3", "n4"]
NTP_PORT = 12171
PTP_ID = "ptp0"


class Collect:
    """A sink that keeps everything and ends the run when `stop_when(self)` holds."""

    name = "collect"

    def __init__(self) -> None:
        self.outputs: list[Output] = []
        self.stop_when: Callable[[Collect], bool] | None = None
        self.runner: Runner | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def handle(self, outputs: list[Output]) -> None:
        self.outputs.extend(outputs)
        if self.stop_when is not None and self.runner is not None and self.stop_when(self):
            self.stop_when = None
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self.runner.stop)

    def close(self) -> None:
        pass

    # -- reading -----------------------------------------------------------------------------
    def events(self) -> list[Event]:
        return [o for o in self.outputs if isinstance(o, Event)]

    def alerts(self, code: str | None = None) -> list[Event]:
        return [e for e in self.events() if e.type == "alert" and (code is None or e.code == code)]

    def samples(self, src: str) -> list[Sample]:
        return [o for o in self.outputs if isinstance(o, Sample) and o.src == src]

    def statuses(self, src: str) -> list[tuple[int, SourceStatus]]:
        return [(o.t_ns, st) for o in self.outputs if isinstance(o, Snapshot)
                for st in o.sources if st.src == src]


@dataclass
class Live:
    net: PtpNet
    tmp: Path
    grandmasters: list[str] | None = None
    ntp: list[Behaviour] = field(default_factory=lambda: [Behaviour() for _ in NTP_HOSTS])
    record: Path | None = None
    col: Collect = field(default_factory=Collect)
    runner: Runner | None = None

    def config(self) -> Any:
        ptp: dict[str, Any] = {"id": PTP_ID, "kind": "ptp", "interface": self.net.veth_b,
                               "netns": self.net.ns_b, "poll_s": 1}
        if self.grandmasters is not None:
            ptp["grandmasters"] = self.grandmasters
        return parse({"monitor": {"state_dir": str(self.tmp / "state")}, "http": {"listen": ""},
                      "detect": {"snapshot_interval_s": 1.0},
                      "sources": [ptp] + [{"id": i, "kind": "ntp", "server": h,
                                           "port": NTP_PORT, "poll_s": 1}
                                          for i, h in zip(NTP_IDS, NTP_HOSTS, strict=True)]})

    def run(self, until: Callable[[Collect], bool], deadline_s: float,
            during: Callable[[Live], Awaitable[None]] | None = None) -> Collect:
        async def main() -> None:
            servers = await start_servers(NTP_HOSTS, NTP_PORT, self.ntp)
            runner = self.runner = Runner(self.config(), duration_s=deadline_s,
                                          sinks=[self.col], record=self.record,
                                          reader_kwargs={"ntp": {"timeout_s": 0.5}})
            self.col.runner, self.col.loop = runner, asyncio.get_running_loop()
            self.col.stop_when = until
            task = asyncio.create_task(during(self)) if during is not None else None
            try:
                await runner.run()
            finally:
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                for s in servers:
                    s.close()

        asyncio.run(main())
        return self.col

    def reader(self) -> Any:
        assert self.runner is not None
        return self.runner.readers[PTP_ID]


async def wait_for(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `pred` every 0.1 s until it holds; TimeoutError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.1)
