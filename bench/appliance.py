"""The appliance traces of the replay and backfill benches, and how a command is measured.

- `trace("day")`: `timewatch simulate --scenario gnss_clean --duration 86400`, 24 h of a GNSS
  receiver at 1 Hz (4 sentences a second) with PPS and four NTP servers (~730,000 records);
  `trace("week")`: `timewatch simulate --scenario clean_week`, 7 days of clean operation with the
  legitimate faults. BENCH_APPLIANCE_HOURS=1 makes both one hour long (a quick look).
  Generated once and kept in BENCH_CACHE (default ~/.cache/timewatch-bench) under a name that
  carries the digest of the simulator's sources, so an edited simulator makes new traces.
- `measure(argv, cwd)`: runs a command as a child and returns its wall time, CPU time (user +
  system, from wait4) and peak RSS (its VmHWM); the machine is shared, so both times are
  printed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOURS = os.environ.get("BENCH_APPLIANCE_HOURS")
TRACES = {  # name: (scenario, duration in seconds or None for the scenario's own)
    "day": ("gnss_clean", 86_400 if not HOURS else int(float(HOURS) * 3600)),
    "week": ("clean_week", None if not HOURS else int(float(HOURS) * 3600)),
}
CACHE = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "timewatch-bench"))


def _sim_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "timewatch" / "sim").glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def trace(name: str) -> Path:
    """The trace, generated on first use (about a minute each)."""
    scenario, duration = TRACES[name]
    path = CACHE / f"{scenario}-{duration or 'default'}-{_sim_digest()}.jsonl.gz"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.jsonl.gz")
        argv = ["simulate", "--scenario", scenario, "-o", str(tmp)]
        argv += ["--duration", str(duration)] if duration else []
        t0 = time.monotonic()
        run = measure(argv, ROOT)
        if run.rc != 0:
            raise RuntimeError(f"simulate failed: {run.err[-1000:]}")
        tmp.rename(path)
        print(f"(generated {path.name} in {time.monotonic() - t0:.0f} s)", flush=True)
    return path


def records(path: Path) -> int:
    """Observations in a trace (its lines but the header)."""
    import gzip

    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        return sum(1 for _ in f) - 1


@dataclass
class Run:
    rc: int
    wall_s: float
    cpu_s: float
    rss_mb: float
    err: str


def measure(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """`timewatch ARGV` from the tree `cwd` (its package first on the path), as a child."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(cwd)
    errf = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "timewatch.cli", *argv], cwd=cwd, env=env,
                         stdout=subprocess.DEVNULL, stderr=errf)
    # Peak RSS from the child's own VmHWM, read until it ends: wait4's ru_maxrss would count
    # this (large) process, whose memory the child shared until its exec.
    hwm_kb = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        hwm_kb = max(hwm_kb, _vm_hwm_kb(p.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read()
    errf.close()
    return Run(p.returncode, wall, ru.ru_utime + ru.ru_stime, hwm_kb / 1024, err)


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def version(cwd: Path) -> str:
    """`timewatch --version` of the tree `cwd`: the version and the engine build."""
    env = dict(os.environ, PYTHONPATH=str(cwd))
    out = subprocess.run([sys.executable, "-m", "timewatch.cli", "--version"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
