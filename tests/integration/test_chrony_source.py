"""The chrony source against a real chronyd client made to follow a lying server.

Four chronyd servers on 127.0.0.11-.14, one of them 2.5 s ahead under libfaketime. A chronyd
client polls only the liar, so it follows it. timewatch polls all four and reads the client with
chronyc: it must call the liar a falseticker and raise `consensus.daemon_disagrees`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from timewatch.config import parse
from timewatch.runner import Runner


def test_chrony_following_a_falseticker_raises_daemon_disagrees(
        tmp_path: Path, chrony_servers: Any, chrony_client: Any) -> None:
    servers = chrony_servers(4, liars={3: "+2.5s"})
    liar = servers[3]
    client = chrony_client([liar], timeout_s=90)
    sources = [{"id": f"srv{i}", "kind": "ntp", "server": s.host, "port": s.port,
                "poll_s": 1} for i, s in enumerate(servers)]
    sources.append({"id": "chrony", "kind": "chrony", "socket": str(client.dir / "c.sock"),
                    "poll_s": 2})
    cfg = parse({"monitor": {"state_dir": str(tmp_path / "state")}, "sources": sources,
                 "http": {"listen": ""}, "detect": {"hold_down_s": 5}})
    # Wait until chrony has selected the liar (iburst: a few seconds).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(s["state"] == "*" and s["address"] == liar.host for s in client.sources()):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"chronyd never selected the liar: {client.sources()}")

    runner = Runner(cfg, duration_s=20, sinks=[])
    assert asyncio.run(runner.run()) == 0
    alerts = [e for e in runner.events if e.type == "alert"]
    dis = [e for e in alerts if e.code == "consensus.daemon_disagrees"]
    assert dis, [(e.code, e.sources) for e in alerts]
    assert dis[0].sources == ("chrony", "srv3")
    assert dis[0].evidence["chrony_selected"] == liar.host
    assert abs(dis[0].evidence["source_offset_s"] - 2.5) < 0.2
    accused = {s for e in alerts if e.code == "source.falseticker" for s in e.sources}
    assert accused == {"srv3"}
