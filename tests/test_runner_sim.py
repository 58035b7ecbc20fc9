"""The whole live monitor (readers, engine, sinks thread) against simulated NTP servers.

One run per case, in-process, ~10 s each, polling every second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from timewatch.config import parse
from timewatch.records import Event, Output, Sample, Snapshot
from timewatch.runner import Runner
from timewatch.sim.ntpserver import Behaviour, start_servers

HOSTS = ["127.0.0.51", "127.0.0.52", "127.0.0.53", "127.0.0.54"]
IDS = ["a", "b", "c", "d"]


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def handle(self, outputs: list[Output]) -> None:
        self.outputs.extend(outputs)

    def close(self) -> None:
        pass

    def samples(self, src: str) -> list[Sample]:
        return [o for o in self.outputs if isinstance(o, Sample) and o.src == src]

    def verdicts(self, src: str) -> set[str]:
        return {st.verdict for o in self.outputs if isinstance(o, Snapshot)
                for st in o.sources if st.src == src}


def monitor(tmp: Path, d: Behaviour, run_s: float = 10.0) -> tuple[list[Event], Collect, Runner]:
    """Servers a, b, c honest; d behaves as told. Returns events, outputs and the runner."""

    async def main() -> Runner:
        # Port 0: each server holds the port the kernel gives it (parallel runs never collide).
        servers = await start_servers(HOSTS, 0, [Behaviour(), Behaviour(), Behaviour(), d])
        cfg = parse({"monitor": {"state_dir": str(tmp)}, "http": {"listen": ""},
                     "detect": {"snapshot_interval_s": 1.0},
                     "sources": [{"id": i, "kind": "ntp", "server": s.host, "port": s.port,
                                  "poll_s": 1} for i, s in zip(IDS, servers, strict=True)]})
        runner = Runner(cfg, duration_s=run_s, sinks=[col],
                        reader_kwargs={"ntp": {"timeout_s": 0.5}})
        try:
            await runner.run()
        finally:
            for s in servers:
                s.close()
        return runner

    col = Collect()
    runner = asyncio.run(main())
    return runner.events, col, runner


def alerts(events: list[Event], code: str) -> set[str]:
    return {s for e in events if e.type == "alert" and e.code == code for s in e.sources}


def test_unreachable_server_goes_stale_while_the_monitor_runs_on(tmp_path: Path) -> None:
    ev, col, _ = monitor(tmp_path, Behaviour(silent=True))
    assert alerts(ev, "source.stale") == {"d"}
    assert "truechimer" in col.verdicts("a") and "falseticker" not in col.verdicts("a")
    assert len(col.samples("a")) >= 8 and col.samples("d") == []
    assert alerts(ev, "source.falseticker") == set()


def test_wrong_origin_is_bogus_and_never_a_sample(tmp_path: Path) -> None:
    ev, col, _ = monitor(tmp_path, Behaviour(wrong_origin=True, offset_s=5.0), run_s=6.0)
    assert alerts(ev, "ntp.bogus") == {"d"}
    assert col.samples("d") == [] and alerts(ev, "source.falseticker") == set()


def test_kiss_deny_raises_ntp_kiss_then_the_server_goes_stale(tmp_path: Path) -> None:
    ev, col, runner = monitor(tmp_path, Behaviour(kiss="DENY"))
    assert alerts(ev, "ntp.kiss") == {"d"} and alerts(ev, "source.stale") == {"d"}
    assert getattr(runner.readers["d"], "stopped_by", None) == "DENY"


def test_garbage_replies_never_stop_the_monitor(tmp_path: Path) -> None:
    ev, col, runner = monitor(tmp_path, Behaviour(garbage="truncated"), run_s=6.0)
    assert getattr(runner.readers["d"], "counters", {}).get("malformed", 0) >= 4
    assert len(col.samples("a")) >= 4 and alerts(ev, "source.falseticker") == set()


def test_drifting_server_is_named_falseticker_and_nobody_else(tmp_path: Path) -> None:
    # 50 ms/s: past any error bound after a few polls.
    ev, col, _ = monitor(tmp_path, Behaviour(drift_ppm=50_000.0))
    assert alerts(ev, "source.falseticker") == {"d"}
    offs = [s.offset_s for s in col.samples("d")]
    assert offs[-1] - offs[0] > 0.2


def test_asymmetric_delay_shows_as_offset_and_delay(tmp_path: Path) -> None:
    # 0.3 s added on the reply leg only: offset reads 0.15 s low, round trip 0.3 s longer.
    ev, col, _ = monitor(tmp_path, Behaviour(reply_delay_s=0.3), run_s=6.0)
    s = col.samples("d")[-1]
    assert abs(s.offset_s + 0.15) < 0.02 and s.bound_s >= 0.15
    assert "d" not in alerts(ev, "source.stale")


def test_leap_announcement_reaches_the_samples(tmp_path: Path) -> None:
    ev, col, _ = monitor(tmp_path, Behaviour(leap=1), run_s=5.0)
    assert col.samples("d") and all(s.fields.get("leap") == 1.0 for s in col.samples("d"))
    assert all(s.fields.get("leap") == 0.0 for s in col.samples("a"))
    assert alerts(ev, "source.falseticker") == set()
