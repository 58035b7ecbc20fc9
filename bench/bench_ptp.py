"""The live monitor's cost with one PTP source and 4 NTP sources.

A PTP network of its own (timewatch/sim/ptpnet.py: two network namespaces, a veth pair, an honest
ptp4l master), the monitor as a subprocess (`timewatch run`) with one `ptp` source (its own
ptp4l, polled every second with pmc) and 4 simulated NTP servers on loopback polled every 16 s.
Measured from /proc over the window, after ptp4l has followed the master:
- the monitor's own CPU (Python: readers, engine, sinks);
- the pmc runs it waited for (one a poll: its children's CPU);
- ptp4l's own CPU, counted separately;
- the monitor's RSS.
Needs root (network namespaces) and linuxptp. `TW_BENCH_PTP_S` sets the window (default 60 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from timewatch.sim.ntpserver import start_servers
from timewatch.sim.ptpnet import PtpNet

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [f"127.0.0.{i}" for i in range(81, 85)]
PORT = 12181
NTP_POLL_S = 16
PTP_POLL_S = 1
HTTP_PORT = 19481  # the monitor's status API, asked when ptp0 votes
SYNC_TIMEOUT_S = 60.0  # ptp4l follows the master within ~20 s here
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, children: bool = False) -> float:
    """utime + stime of a process (and with `children`, of its waited-for children instead),
    from /proc/PID/stat (fields 14-17)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[13]) + int(f[14]) if children else int(f[11]) + int(f[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ptp4l_child(pid: int) -> int | None:
    """The monitor's ptp4l (a direct child: setpriv and `ip netns exec` exec it in place)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for c in (task / "children").read_text().split():
            try:
                if Path(f"/proc/{c}/comm").read_text().strip() == "ptp4l":
                    return int(c)
            except OSError:
                continue
    return None


async def measure(window_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="timewatch-bench-ptp-") as tmp:
        net = PtpNet(f"twb{os.getpid() % 100000}", Path(tmp))
        net.create()
        servers = await start_servers(HOSTS, PORT)
        try:
            net.start_master()
            gm = net.master_identity()
            cfg = Path(tmp) / "bench.toml"
            cfg.write_text(
                f'[monitor]\nstate_dir = "{tmp}/state"\n[http]\nlisten = "127.0.0.1:{HTTP_PORT}"\n'
                f'[[sources]]\nid = "ptp0"\nkind = "ptp"\ninterface = "{net.veth_b}"\n'
                f'netns = "{net.ns_b}"\npoll_s = {PTP_POLL_S}\ngrandmasters = ["{gm}"]\n'
                + "".join(f'[[sources]]\nid = "n{i}"\nkind = "ntp"\nserver = "{h}"\n'
                          f"port = {PORT}\npoll_s = {NTP_POLL_S}\n" for i, h in enumerate(HOSTS)))
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg),
                env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=asyncio.subprocess.DEVNULL)
            try:
                # Until ptp4l follows the master and the source votes (the monitor's status).
                deadline = time.monotonic() + SYNC_TIMEOUT_S
                ptp4l = None
                while time.monotonic() < deadline:
                    ptp4l = ptp4l or ptp4l_child(p.pid)
                    if ptp4l is not None and _following(HTTP_PORT):
                        break
                    await asyncio.sleep(0.5)
                if ptp4l is None:
                    print("FAILED: the monitor started no ptp4l")
                    return
                c0, k0, q0, t0 = cpu_s(p.pid), cpu_s(p.pid, True), cpu_s(ptp4l), time.monotonic()
                await asyncio.sleep(window_s)
                c1, k1, q1, t1 = cpu_s(p.pid), cpu_s(p.pid, True), cpu_s(ptp4l), time.monotonic()
                mem = rss_mb(p.pid)
            finally:
                p.send_signal(signal.SIGTERM)
                rc = await p.wait()
        finally:
            for s in servers:
                s.close()
            net.remove()
    span = t1 - t0

    def pct(a: float, b: float) -> float:
        return 100 * (b - a) / span

    polls = span / PTP_POLL_S
    print(f"live monitor, 1 PTP source (poll {PTP_POLL_S} s, software stamps on a veth) + "
          f"{len(HOSTS)} NTP servers (poll {NTP_POLL_S} s), {span:.0f} s measured: monitor "
          f"CPU {pct(c0, c1):.2f}% of one core, pmc runs {pct(k0, k1):.2f}% "
          f"({1e3 * (k1 - k0) / polls:.1f} ms CPU a poll), ptp4l {pct(q0, q1):.2f}% (its own "
          f"process), RSS {mem:.1f} MB; exit status after SIGTERM {rc}")


def _following(port: int) -> bool:
    """Whether the PTP source has samples: ptp0 a truechimer in the monitor's /status.json."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=2) as r:
            st = json.load(r)
    except (OSError, ValueError):
        return False
    return any(s["src"] == "ptp0" and s["verdict"] == "truechimer" for s in st.get("sources", []))


def main() -> None:
    if os.geteuid() != 0 or shutil.which("ptp4l") is None:
        print("skipped: needs root (network namespaces) and linuxptp (ptp4l)")
        return
    asyncio.run(measure(float(os.environ.get("TW_BENCH_PTP_S", "60"))))


if __name__ == "__main__":
    main()
