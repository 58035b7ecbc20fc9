"""Backfill speed: `timewatch replay TRACE -c CONFIG` of the appliance traces (bench/appliance.py:
24 h and 7 days of GNSS + PPS + NTP) into the embedded store and a real VictoriaMetrics (api
v2), then a real InfluxDB 1.6 (api v1, Debian `influxdb`); then `timewatch export --influxdb` of
the store so filled into a fresh server.

Targets (issue 20): >= 20,000 observations/s of backfill; peak RSS < 200 MB for the 7-day trace.
The rate is observations of the trace per wall second, from the start of the command until it
returns, which is when every point is on the server. The machine is shared: the CPU seconds of
timewatch and of the server, and the load average (1 minute, at the start and the end of the
command), are printed beside it; timewatch's CPU against the wall time says whether the wall
time is timewatch's work (CPU close to wall), waiting for the server, or a loaded machine. The engine is the
build this tree runs (`timewatch --version`).
Run: `.venv/bin/python -m bench backfill` (or `make bench`). BENCH_APPLIANCE_HOURS=1: one hour.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.appliance import (  # noqa: E402
    ROOT,
    loadavg,
    measure,
    proc_cpu_s,
    records,
    trace,
    version,
)

TARGET_OBS_S = 20_000
RSS_MAX_MB = 200


def _server(kind: str, tmp: Path):  # type: ignore[no-untyped-def]
    from tests.integration.stores import Influx1, Victoria

    tmp.mkdir(parents=True, exist_ok=True)
    srv = Victoria(tmp) if kind == "victoria-metrics" else Influx1(tmp)
    srv.start()
    if kind != "victoria-metrics":
        srv.query("CREATE DATABASE timewatch")
    return srv


def _config(tmp: Path, kind: str, url: str) -> Path:
    conf = tmp / "timewatch.toml"
    api = 'api = "v1"\n' if kind != "victoria-metrics" else ""
    conf.write_text(f'[monitor]\nhost = "bench"\nstate_dir = "{tmp / "state"}"\n'
                    f'[sinks.influxdb]\nurl = "{url}"\nbucket = "timewatch"\ntoken = "t"\n{api}')
    return conf


def one(name: str, kind: str, path: Path, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        srv = _server(kind, tmp / "srv")
        try:
            conf = _config(tmp, kind, srv.url)
            c0, l0 = proc_cpu_s(srv.proc.pid), loadavg().split()[0]
            run = measure(["replay", str(path), "-c", str(conf), "--events", os.devnull], ROOT)
            srv_cpu = proc_cpu_s(srv.proc.pid) - c0
            load = f"{l0}-{loadavg().split()[0]}"
        finally:
            srv.stop()
        if run.rc != 0:
            print(f"{name} into {kind}: FAILED: {run.err[-800:]}")
            return
        db = sqlite3.connect(tmp / "state" / "timewatch.db")
        samples, snaps = (db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                          for t in ("samples", "snapshots"))
        db.close()
        rate = n / run.wall_s
        ok = rate >= TARGET_OBS_S and (name != "week" or run.rss_mb < RSS_MAX_MB)
        print(f"{name} into {kind:16}: replay -c {rate:>8,.0f} obs/s ({run.wall_s:.1f} s wall; "
              f"timewatch {run.cpu_s:.1f} s CPU = {n / run.cpu_s:,.0f} obs per CPU-second, "
              f"server {srv_cpu:.1f} s CPU; load {load}), peak RSS {run.rss_mb:.0f} MB; store {samples:,} "
              f"samples, {snaps:,} snapshots; target >= {TARGET_OBS_S:,} obs/s"
              f"{f', RSS < {RSS_MAX_MB} MB' if name == 'week' else ''}: "
              f"{'met' if ok else 'NOT met'}", flush=True)

        srv = _server(kind, tmp / "srv2")  # a fresh server: the export sends all of it again
        try:
            conf = _config(tmp, kind, srv.url)
            c0, l0 = proc_cpu_s(srv.proc.pid), loadavg().split()[0]
            ex = measure(["export", "-c", str(conf), "--influxdb"], ROOT)
            srv_cpu = proc_cpu_s(srv.proc.pid) - c0
            load = f"{l0}-{loadavg().split()[0]}"
        finally:
            srv.stop()
        lines = ex.err.rsplit("export ", 1)[-1].split(": ", 1)[-1].split(" lines", 1)[0]
        print(f"{name} into {kind:16}: export --influxdb {int(lines) / ex.wall_s:>8,.0f} lines/s "
              f"({lines} lines in {ex.wall_s:.1f} s wall; timewatch {ex.cpu_s:.1f} s CPU, server "
              f"{srv_cpu:.1f} s CPU; load {load}), peak RSS {ex.rss_mb:.0f} MB" if ex.rc == 0 else
              f"{name} into {kind}: export FAILED: {ex.err[-800:]}", flush=True)


def main() -> None:
    missing = [b for b in ("victoria-metrics", "influxd") if shutil.which(b) is None
               and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (apt-get install victoria-metrics "
              "influxdb)")
        return
    print(f"-- {version(ROOT)} ({ROOT})")
    for name in ("day", "week"):
        path = trace(name)
        n = records(path)
        print(f"{name}: {path.name}: {n:,} observations")
        for kind in ("victoria-metrics", "influxdb 1.6"):
            one(name, kind, path, n)
    print(f"load average: {loadavg()}")


if __name__ == "__main__":
    main()
