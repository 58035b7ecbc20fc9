"""Issue 18 finding 13: what the monitor shows of itself and of its secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.faults.runs import ROOT, NtpServers, Run, config_text, free_port, wait_for


def test_http_server_header_is_timewatch_without_the_python_version(tmp_path: Path) -> None:
    servers = NtpServers(["127.0.0.71"])
    port = free_port()
    cfg = tmp_path / "tw.toml"
    cfg.write_text(config_text(tmp_path / "state", servers, http=f"127.0.0.1:{port}"))
    run = Run(cfg)
    try:
        run.wait_log("status API on")

        def get() -> tuple[int, str] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    return r.status, r.headers["Server"]
            except OSError as e:
                status = getattr(e, "code", None)
                return (status, e.headers["Server"]) if status else None  # type: ignore[attr-defined]

        _, server = wait_for(get, what="an HTTP answer")
        assert server == "timewatch"
    finally:
        assert run.stop() == 0, run.err
        servers.close()


def test_check_config_masks_the_influxdb_password(tmp_path: Path) -> None:
    cfg = tmp_path / "tw.toml"
    cfg.write_text(f'[monitor]\nstate_dir = "{tmp_path}"\n\n[sinks.influxdb]\n'
                   'url = "http://tw-writer:hunter2-s3cret@127.0.0.1:8086/influx"\n'
                   'org = "o"\nbucket = "b"\n')
    p = subprocess.run([sys.executable, "-m", "timewatch.cli", "check-config", str(cfg)],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert "hunter2-s3cret" not in p.stdout + p.stderr
    assert "http://tw-writer:***@127.0.0.1:8086/influx" in p.stdout
