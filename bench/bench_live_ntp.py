"""The live monitor's cost: 8 simulated NTP servers polled every 16 s.

The monitor runs as a subprocess (`timewatch run`), measured from /proc/PID, so the simulated
servers in this process do not count. Targets (issue 2): < 1% of one core, < 80 MB RSS.
`TW_BENCH_LIVE_S` sets the measured window (default 90 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from timewatch.sim.ntpserver import start_servers

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [f"127.0.0.{i}" for i in range(71, 79)]
PORT = 12171
POLL_S = 16  # the figure: 8 servers polled every 16 s
WARMUP_S = 5.0  # interpreter start-up and imports are not the steady state
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_CPU_PCT = 1.0
TARGET_RSS_MB = 80.0


def cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def mem_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024
    return out


async def measure(window_s: float) -> None:
    servers = await start_servers(HOSTS, PORT)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(f'[monitor]\nstate_dir = "{tmp}/state"\n[http]\nlisten = ""\n' + "".join(
            f'[[sources]]\nid = "s{i}"\nkind = "ntp"\nserver = "{h}"\nport = {PORT}\n'
            f"poll_s = {POLL_S}\n" for i, h in enumerate(HOSTS)))
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg),
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.sleep(WARMUP_S)
            c0, t0 = cpu_s(p.pid), time.monotonic()
            await asyncio.sleep(window_s)
            c1, t1 = cpu_s(p.pid), time.monotonic()
            mem = mem_mb(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            rc = await p.wait()
            for s in servers:
                s.close()
    pct = 100 * (c1 - c0) / (t1 - t0)
    requests = sum(len(s.requests) for s in servers)
    print(f"live monitor, {len(HOSTS)} NTP servers every {POLL_S} s, {t1 - t0:.0f} s measured "
          f"({requests} requests served): CPU {pct:.2f}% of one core (target < "
          f"{TARGET_CPU_PCT:g}%), RSS {mem.get('VmRSS', 0):.1f} MB, peak {mem.get('VmHWM', 0):.1f}"
          f" MB (target < {TARGET_RSS_MB:g} MB); exit status after SIGTERM {rc}")


def main() -> None:
    asyncio.run(measure(float(os.environ.get("TW_BENCH_LIVE_S", "90"))))


if __name__ == "__main__":
    main()
