"""Issue 2 "Must show": four real chronyd on 127.0.0.11-.14, one lying by +2.5 s (libfaketime).

timewatch's monitor and a chronyd client poll the same four servers at the same time; both must
name the liar, and only the liar. Both detection times are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from timewatch.config import parse
from timewatch.records import Event, Output, Snapshot
from timewatch.runner import Runner

pytestmark = pytest.mark.integration

# Poll every 2 s (config minimum is 1) so the whole test stays well under a minute.
POLL_S = 2.0
# How long timewatch runs: enough for several polls after detection, to see nobody else accused.
RUN_S = 30.0
LIAR = 3  # index of the lying server: 127.0.0.14


class Collect:
    """A sink that keeps every snapshot (to check no honest server is ever called a falseticker)."""

    name = "collect"

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []

    def handle(self, outputs: list[Output]) -> None:
        self.snapshots.extend(o for o in outputs if isinstance(o, Snapshot))

    def close(self) -> None:
        pass


def test_chronyd_liar_is_the_only_falseticker_for_timewatch_and_chrony(
        chrony_servers, chrony_client, tmp_path):
    servers = chrony_servers(4, liars={LIAR: "+2.5s"})
    ids = [f"ntp-{s.host.rsplit('.', 1)[1]}" for s in servers]
    liar_id, liar_host = ids[LIAR], servers[LIAR].host
    cfg = parse({
        "monitor": {"host": "test", "state_dir": str(tmp_path / "state")},
        "http": {"listen": ""},
        "detect": {"snapshot_interval_s": 1.0},
        "sources": [{"id": sid, "kind": "ntp", "server": s.host, "port": s.port,
                     "poll_s": POLL_S} for sid, s in zip(ids, servers, strict=True)],
    })
    collect = Collect()
    client = chrony_client(servers, timeout_s=int(RUN_S) + 30)
    t0 = time.monotonic()
    chrony_seen: dict[str, float] = {}  # address -> first time chrony marked it 'x'
    chrony_states: list[dict[str, str]] = []

    async def watch_chrony() -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                rows = await asyncio.to_thread(client.sources)
            except RuntimeError:
                continue  # chronyd not answering yet
            for r in rows:
                chrony_states.append(r)
                if r["state"] == "x":
                    chrony_seen.setdefault(r["address"], time.monotonic() - t0)

    async def main() -> Runner:
        runner = Runner(cfg, duration_s=RUN_S, sinks=[collect])
        watcher = asyncio.create_task(watch_chrony())
        await runner.run()
        watcher.cancel()
        return runner

    runner = asyncio.run(main())
    start_ns = runner.started_ns
    ft = [e for e in runner.events if e.type == "alert" and e.code == "source.falseticker"]
    accused = {s for e in ft for s in e.sources}
    honest_flagged = sorted({st.src for snap in collect.snapshots for st in snap.sources
                             if st.verdict == "falseticker" and st.src != liar_id})
    tw_detect_s = (ft[0].t_ns - start_ns) / 1e9 if ft else None
    print(f"\ntimewatch named {sorted(accused)} after {tw_detect_s} s; "
          f"chrony marked {sorted(chrony_seen)} falseticker (x) after "
          f"{chrony_seen.get(liar_host)} s")
    for s in servers:
        assert s.proc.poll() is None, f"chronyd {s.host} died: {s.log()}"
    assert accused == {liar_id}, f"falseticker alerts: {[_fmt(e) for e in ft]}"
    assert honest_flagged == [], f"honest servers judged falseticker: {honest_flagged}"
    assert set(chrony_seen) == {liar_host}, f"chrony's states: {chrony_states[-8:]}"


def _fmt(e: Event) -> str:
    return f"{e.code} {e.sources} {e.message}"
