"""InfluxDB sink against a real VictoriaMetrics on 127.0.0.1 (Debian `victoria-metrics`).

Prints:
- the engine-side cost of `handle` (spool put, fsynced) in outputs/s and calls/s;
- the sustained write rate, lines/s from the first `handle` until the server acknowledged all;
- the spool drain rate: lines/s to empty a spool filled while the server was down.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from timewatch.config import Config, parse
from timewatch.records import Output
from timewatch.sinks.influx import InfluxSink

DURATION_S = 3600  # one hour of a five-source run: ~8,000 outputs, ~12,500 lines
CHUNK = 4  # outputs per handle call: what one observation typically yields (sample(s)+snapshot)
BACKLOG_HOURS = 6  # drain bench: six hours of backlog, ~75,000 lines


def _cfg(tmp: Path, url: str, batch_size: int) -> Config:
    from tests.integration.stores import synthetic_config_sources

    return parse({"monitor": {"host": "bench", "state_dir": str(tmp)},
                  "sources": synthetic_config_sources(),
                  "sinks": {"influxdb": {"url": url, "token": "t", "batch_size": batch_size,
                                         "flush_interval_s": 0.2, "timeout_s": 30.0}}})


def _wait_empty(sink: InfluxSink, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while sink.pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sink.pending} lines still pending after {timeout_s} s")
        time.sleep(0.01)


def sustained(tmp: Path, url: str, outs: list[Output], batch_size: int) -> None:
    sink = InfluxSink(_cfg(tmp, url, batch_size))
    n_lines = len(sink.encoder.lines(outs))
    t0 = time.perf_counter()
    for i in range(0, len(outs), CHUNK):
        sink.handle(outs[i:i + CHUNK])
    t_handle = time.perf_counter() - t0
    _wait_empty(sink)
    dt = time.perf_counter() - t0
    sink.close()
    calls = (len(outs) + CHUNK - 1) // CHUNK
    print(f"batch_size {batch_size:>5}: handle {len(outs) / t_handle:>9,.0f} outputs/s "
          f"({calls / t_handle:,.0f} calls/s, fsync each); sustained write "
          f"{n_lines / dt:>9,.0f} lines/s ({n_lines:,} lines in {dt:.2f} s)")


def drain(tmp: Path, vm: object, outs: list[Output], batch_size: int) -> None:
    vm.stop()  # type: ignore[attr-defined]
    sink = InfluxSink(_cfg(tmp, vm.url, batch_size))  # type: ignore[attr-defined]
    for i in range(0, len(outs), 500):  # fill quickly: big handle calls
        sink.handle(outs[i:i + 500])
    n = sink.pending
    size_mb = sink.spool.size_bytes / 2**20
    sink.close()  # the sender gave up (server down): everything stays spooled
    vm.start()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    sink = InfluxSink(_cfg(tmp, vm.url, batch_size))  # type: ignore[attr-defined]
    sink.sender.wake()  # start now rather than after flush_interval_s
    _wait_empty(sink)
    dt = time.perf_counter() - t0
    sink.close()
    print(f"batch_size {batch_size:>5}: drained {n:,} spooled lines ({size_mb:.1f} MB of spool) "
          f"in {dt:.2f} s: {n / dt:,.0f} lines/s")


def main() -> None:
    if shutil.which("victoria-metrics") is None:
        print("skipped: victoria-metrics is not installed (apt-get install victoria-metrics)")
        return
    from tests.integration.stores import Victoria, synthetic_outputs

    now_s = time.time_ns() // 10**9
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        vm = Victoria(tmp)
        vm.start()
        try:
            hour = synthetic_outputs((now_s - 2 * DURATION_S) * 10**9, DURATION_S)
            for bs in (500, 5000):
                sustained(tmp / f"s{bs}", vm.url, hour, bs)
            backlog = synthetic_outputs((now_s - 20 * 3600) * 10**9, BACKLOG_HOURS * 3600)
            for bs in (500, 5000):
                drain(tmp / f"d{bs}", vm, backlog, bs)
        finally:
            vm.stop()


if __name__ == "__main__":
    main()
