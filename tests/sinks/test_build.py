"""A sink that cannot start is an error at start-up naming it and the cause; the sinks already
started are closed; nothing is silently left out (issue 13 item 8)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from timewatch.config import parse
from timewatch.runner import build_live_sinks
from timewatch.sinks import SinkStartError

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _influx_cfg(state: Path, http: str) -> str:
    return (f'[monitor]\nhost = "t"\nstate_dir = "{state}"\n\n[http]\nlisten = "{http}"\n\n'
            '[[sources]]\nid = "n1"\nkind = "ntp"\nserver = "127.0.0.1"\nport = 9\npoll_s = 1\n\n'
            '[sinks.influxdb]\nurl = "http://127.0.0.1:9"\norg = "o"\nbucket = "b"\n')


def test_run_with_a_sink_missing_its_module_stops_at_start_naming_it(tmp_path: Path) -> None:
    # influxdb_client cannot be imported in the child: a package on its path that refuses.
    shadow = tmp_path / "shadow" / "influxdb_client"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("No module named influxdb_client '
                                        '(shadowed by the test)")\n')
    cfg = tmp_path / "tw.toml"
    cfg.write_text(_influx_cfg(tmp_path / "state", ""))
    p = subprocess.run([sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg),
                        "--duration", "3"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": f"{tmp_path / 'shadow'}:{ROOT}"})
    # Before: the run went on for its 3 s with no sink at all (no store, no event log).
    assert p.returncode == 1, p.stderr[-2000:]
    assert "sink influxdb cannot start" in p.stderr and "influxdb_client" in p.stderr
    assert "monitoring" not in p.stderr  # it never started monitoring without its sinks


def test_a_failing_sink_closes_the_ones_started_before_it(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "influxdb_client", None)  # import raises ImportError
    port = _free_port()
    cfg_path = tmp_path / "tw.toml"
    cfg_path.write_text(_influx_cfg(tmp_path / "state", f"127.0.0.1:{port}"))
    from timewatch.config import load

    cfg = load(cfg_path)
    with pytest.raises(SinkStartError, match="sink influxdb cannot start: a module it needs"):
        build_live_sinks(cfg)
    # The HTTP server started before it released its port, the store's writer ended.
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert not [t for t in threading.enumerate() if t.name in ("store-writer", "http")]
    # And a config that starts builds every sink it names.
    monkeypatch.delitem(sys.modules, "influxdb_client")
    ok = parse({"monitor": {"host": "t", "state_dir": str(tmp_path / "s2")},
                "http": {"listen": f"127.0.0.1:{port}"}})
    sinks = build_live_sinks(ok)
    try:
        assert [s.name for s in sinks] == ["eventlog", "store", "http"]  # the log hands the store its chain
    finally:
        for s in sinks:
            s.close()
