"""The operator's view: the status page per request, and `timewatch report` of a 24 h trace.

Targets (issue 17): the page under 50 ms per request with 20 sources; the report of a 24 h trace
under 30 s.
- page: an `HttpSink` fed an hour of 20 sources sampled every second (the page's worst case: every
  chart full), a snapshot every 10 s, 10 active alerts with evidence and 50 events; `GET /` over
  loopback REQUESTS times (wall time per request: what a browser waits) and the render alone
  (CPU time).
- report: `gnss_clean` (GNSS + PPS + five NTP servers, satellites rising and setting) simulated
  for 24 h, then `timewatch report TRACE` in CPU-seconds of this process, split into the replay
  through the engine, the analysis (deviations) and the figures + HTML; then the report of the
  same day from the store (no replay). Twice: pure Python, then with the engine compiled by mypyc
  (tools/build_compiled.py in a temporary copy, as bench_replay_ntp does; skipped with the reason
  when there is no compiler).
Run: `.venv/bin/python -m bench view` (or `make bench`). BENCH_VIEW_HOURS=2 for a shorter trace.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timewatch import report  # noqa: E402
from timewatch.commands.replay import engine_build  # noqa: E402
from timewatch.config import parse  # noqa: E402
from timewatch.records import Event, Sample, Snapshot, SourceStatus  # noqa: E402
from timewatch.sinks.http import HttpSink  # noqa: E402

PAGE_SOURCES = 20
PAGE_TARGET_MS = 50.0
REQUESTS = 200
HOURS = float(os.environ.get("BENCH_VIEW_HOURS", "24"))
REPORT_TARGET_S = 30.0
NS = 1_000_000_000
T0 = 1_796_083_200 * NS


def bench_page() -> None:
    ids = [f"src-{i:02d}" for i in range(PAGE_SOURCES)]
    with tempfile.TemporaryDirectory() as d:
        cfg = parse({"monitor": {"state_dir": d, "host": "bench"},
                     "http": {"listen": "127.0.0.1:0"},
                     "sources": [{"id": i, "kind": "ntp", "server": "127.0.0.1",
                                  "group": f"g{n % 7}"} for n, i in enumerate(ids)]})
        sink = HttpSink(cfg)
        try:
            alerts = [Event("alert", T0 + k * NS, "source.falseticker", (ids[k],), f"a{k}",
                            "critical", f"{ids[k]} is 150 ms ahead of the consensus",
                            {"offset_s": 0.15, "bound_s": 1e-4, "consensus_offset_s": 1e-5,
                             "groups_agreeing": 6, "groups_voting": 7}) for k in range(10)]
            sink.handle(alerts + [Event("clear", T0, "source.stale", ("x",), f"c{k}")
                                  for k in range(40)])
            snap = None
            for s in range(3600):
                t = T0 + s * NS
                out: list[Sample | Snapshot] = [
                    Sample(i, t, 1e-4 * ((s + n) % 13 - 6), 2e-4) for n, i in enumerate(ids)]
                if s % 10 == 0:
                    snap = Snapshot(t, tuple(
                        SourceStatus(i, "ntp", f"g{n % 7}", "truechimer",
                                     "agrees with 7/7 trust groups", 1e-4, 2e-4, t)
                        for n, i in enumerate(ids)), True, 7, 7, 1e-5, 1e-4, (), -12.5)
                    out.append(snap)
                sink.handle(list(out))
            url = f"http://{sink.address}/"
            walls = []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=10) as r:
                    body = r.read()
                walls.append((time.perf_counter() - t0) * 1e3)
            t0 = time.process_time()
            for _ in range(REQUESTS):
                sink.view.page()
            cpu_ms = (time.process_time() - t0) / REQUESTS * 1e3
        finally:
            sink.close()
    walls.sort()
    p95 = walls[int(0.95 * len(walls)) - 1]
    med = statistics.median(walls)
    print(f"status page: {PAGE_SOURCES} sources, an hour of 1 Hz samples each, 10 active alerts, "
          f"50 events; page {len(body) / 1e3:.0f} kB")
    print(f"  GET / over loopback: median {med:.1f} ms, p95 {p95:.1f} ms (wall, {REQUESTS} "
          f"requests); render alone {cpu_ms:.1f} ms CPU; target {PAGE_TARGET_MS:g} ms: "
          f"{'met' if p95 < PAGE_TARGET_MS else 'NOT met'}")


def make_trace(path: Path) -> int:
    from timewatch.sim.scenarios import build, write

    st = build("gnss_clean", 1, HOURS * 3600)
    write(str(path), st)
    return len(st.observations)


def bench_report(trace: Path, n_records: int) -> None:
    cfg = parse({}, "<bench>")
    t0 = time.process_time()
    w0 = time.perf_counter()
    data = report.from_trace(trace, cfg)
    t_replay = time.process_time() - t0
    t1 = time.process_time()
    results = report.analyse(data)
    t_analyse = time.process_time() - t1
    t2 = time.process_time()
    page = report.render(data, results)
    t_render = time.process_time() - t2
    total = time.process_time() - t0
    wall = time.perf_counter() - w0
    n_samples = sum(len(s.t_ns) for s in data.sources.values())
    print(f"report of a {HOURS:g} h trace ({n_records:,} records, {n_samples:,} samples, "
          f"{len(data.sources)} sources), engine {engine_build()}:")
    print(f"  {total:.1f} s CPU ({wall:.1f} s wall): replay {t_replay:.1f} s, deviations "
          f"{t_analyse:.1f} s, figures and HTML {t_render:.1f} s; "
          f"{page.count('data:image/png')} figures, {len(page) / 1e6:.1f} MB; "
          f"target {REPORT_TARGET_S:g} s: {'met' if total < REPORT_TARGET_S else 'NOT met'}")
    if "--no-store" in sys.argv:
        return
    # The same day from the store (what `timewatch report -c CONFIG` reads on an appliance).
    from timewatch.sinks.store import Store

    with tempfile.TemporaryDirectory() as d:
        from timewatch.engine import Engine
        from timewatch.trace import TraceReader

        rd = TraceReader(trace)
        eng = Engine(rd.header, cfg.detect, snapshots=True, samples=True)
        st = Store(Path(d) / "timewatch.db")
        batch: list = []
        for o in rd:
            batch.extend(eng.feed(o))
            if len(batch) > 5000:
                st.write(batch)
                batch = []
        st.write(batch + list(eng.finish()))
        st.close()
        t0 = time.process_time()
        sdata = report.from_store(Path(d) / "timewatch.db", "bench")
        spage = report.render(sdata, report.analyse(sdata))
        t_store = time.process_time() - t0
    print(f"  the same {HOURS:g} h from the store: {t_store:.1f} s CPU "
          f"({spage.count('data:image/png')} figures; no replay, no oscillator reference)")


def main() -> None:
    if "--report-only" not in sys.argv:
        bench_page()
    with tempfile.TemporaryDirectory() as d:
        trace = Path(os.environ.get("BENCH_VIEW_TRACE", "") or Path(d) / "day.jsonl.gz")
        if trace.exists():
            n = int(os.environ.get("BENCH_VIEW_RECORDS", "0"))
        else:
            t0 = time.perf_counter()
            n = make_trace(trace)
            print(f"(simulated {HOURS:g} h of gnss_clean: {n:,} records in "
                  f"{time.perf_counter() - t0:.0f} s)")
        bench_report(trace, n)
        if "--no-compiled" in sys.argv:
            return
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
        from build_compiled import compiled_copy

        with tempfile.TemporaryDirectory() as c:
            try:
                t0 = time.monotonic()
                copy = compiled_copy(Path(c) / "tree")
                print(f"mypyc build of the engine and reader: {time.monotonic() - t0:.0f} s")
            except Exception as e:  # noqa: BLE001 - no compiler: the pure figures stand alone
                detail = getattr(e, "stderr", "") or ""
                print(f"compiled build skipped: {e!r} {detail.strip()[-300:]}")
                return
            env = {**os.environ, "BENCH_VIEW_TRACE": str(trace), "BENCH_VIEW_RECORDS": str(n)}
            out = subprocess.run([sys.executable, "-m", "bench.bench_view", "--no-compiled",
                                  "--report-only", "--no-store"], cwd=copy, env=env,
                                 capture_output=True, text=True, timeout=1800)
            print(out.stdout + out.stderr, end="")


if __name__ == "__main__":
    main()
