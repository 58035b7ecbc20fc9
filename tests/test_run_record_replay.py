"""`timewatch run --record` for real (a subprocess against simulated servers), with `[detect]`
keys off their defaults, then a plain `timewatch replay` of its trace: the header carries the
keys, and the replay gives exactly the events of the live run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from timewatch.engine.params import Detect
from timewatch.sim.ntpserver import Behaviour, start_servers
from timewatch.trace import TraceReader

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ["127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64"]
RUN_S = 14.0
# Off their defaults (3 polls, 2 evaluations): the live alerts come a poll earlier / later, so a
# replay with the defaults gives other events (checked below).
DETECT = {"stale_polls": 2.0, "falseticker_confirm": 3}


def write_config(tmp: Path, ports: list[int]) -> Path:
    srcs = "".join(f'[[sources]]\nid = "s{i}"\nkind = "ntp"\nserver = "{h}"\nport = {p}\n'
                   f"poll_s = 1\n\n" for i, (h, p) in enumerate(zip(HOSTS, ports, strict=True)))
    cfg = tmp / "tw.toml"
    det = "".join(f"{k} = {v}\n" for k, v in DETECT.items())
    cfg.write_text(f'[monitor]\nhost = "t"\nstate_dir = "{tmp / "state"}"\n\n[http]\n'
                   f'listen = ""\n\n[detect]\n{det}\n{srcs}')
    return cfg


async def live_run(tmp: Path, trace: Path) -> tuple[int, str]:
    behaviours = [Behaviour(), Behaviour(), Behaviour(),
                  Behaviour(lie_after_s=3.0, lie_offset_s=0.15)]
    # Port 0: each server holds the port the kernel gives it (parallel runs never collide).
    servers = await start_servers(HOSTS, 0, behaviours)
    cfg = write_config(tmp, [s.port for s in servers])
    # s2 goes silent half way: a stale alert in the story too.
    asyncio.get_running_loop().call_later(RUN_S / 2, setattr, servers[2].behaviour, "silent",
                                          True)
    try:
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg), "--record", str(trace),
            "--duration", str(RUN_S), stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, err = await p.communicate()
        return p.returncode or 0, err.decode()
    finally:
        for s in servers:
            s.close()


def test_replay_of_a_live_recording_gives_exactly_the_live_events(tmp_path: Path) -> None:
    trace = tmp_path / "live.jsonl.gz"
    rc, err = asyncio.run(live_run(tmp_path, trace))
    assert rc == 0, err
    log = tmp_path / "state" / "events.jsonl"
    assert log.exists(), f"no event log from the live run: {err}"
    live = [d for d in (json.loads(line) for line in log.read_text().splitlines() if line.strip())
            if d["type"] != "checkpoint"]  # the evidence checkpoints that seal the events
    codes = {(e["type"], e["code"], tuple(e["sources"])) for e in live}
    assert ("alert", "source.falseticker", ("s3",)) in codes, live
    assert ("alert", "source.stale", ("s2",)) in codes, live

    hdr = TraceReader(trace).header
    assert hdr.detect == {**DETECT, "gnss_not_before_unix_s": Detect().gnss_not_before_unix_s}

    def replay(*extra: str) -> list[dict[str, object]]:
        out = tmp_path / "replayed.jsonl"
        r = subprocess.run([sys.executable, "-m", "timewatch.cli", "replay", str(trace),
                            "--events", str(out), *extra], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
                           cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]

    # No -c (its sinks would write into the live run's state directory): the thresholds come
    # from the trace header.
    assert replay() == live
    # With this build's defaults instead, the same trace gives other events: the keys mattered.
    assert replay("--detect-from-config") != live
