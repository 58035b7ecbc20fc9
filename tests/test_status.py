"""`timewatch status`: from the running monitor's /status.json, else from the store, else a clear
error; a table or JSON."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.commands.status import StatusUnavailable, fmt_s, get_status
from timewatch.config import load, parse
from timewatch.records import Event, Sample, Snapshot, SourceStatus
from timewatch.sinks import monitorfile
from timewatch.sinks.http import HttpSink
from timewatch.sinks.store import StoreSink

T = 1_764_160_950_000_000_000
S = 1_000_000_000

SNAP = Snapshot(
    t_ns=T + 10 * S,
    sources=(SourceStatus("ntp1", "ntp", "g1", "truechimer", "inside the consensus interval",
                          0.0012, 0.002, T + 9 * S),
             SourceStatus("liar", "ntp", "g2", "falseticker",
                          "+2.500 s, outside the consensus interval", 2.5, 0.003, T + 8 * S)),
    quorum=True, groups_agreeing=2, groups_voting=3, consensus_offset_s=1e-4,
    consensus_bound_s=5e-4, active_alerts=("source.falseticker:a1",))
A1 = Event("alert", T + 5 * S, "source.falseticker", ("liar",), "a1", "critical",
           "liar disagrees with the majority of trust groups", {"offset_s": 2.5})
OUTS = [Sample("ntp1", T + S, 0.0012, 0.002), A1, SNAP]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, port: int) -> Path:
    p = tmp / "tw.toml"
    p.write_text(f"""
[monitor]
host = "pi-lab-1"
state_dir = "{tmp / 'state'}"
[http]
listen = "127.0.0.1:{port}"
[[sources]]
id = "ntp1"
kind = "ntp"
server = "127.0.0.1"
group = "g1"
[[sources]]
id = "liar"
kind = "ntp"
server = "127.0.0.2"
group = "g2"
""")
    return p


def check_table(out: str) -> None:
    lines = out.splitlines()
    assert lines[0].startswith("pi-lab-1: status at 2025-11-26 12:42:40 UTC")
    assert lines[1].startswith("from ")  # which monitor (or store) answered
    header = lines[2].split()
    assert header[:4] == ["source", "kind", "group", "offset"]
    liar = next(ln for ln in lines if ln.startswith("liar"))
    assert "+2.500 s" in liar and "3.000 ms" in liar and "falseticker" in liar
    assert "outside the consensus interval" in liar
    ntp1 = next(ln for ln in lines if ln.startswith("ntp1"))
    assert "+1.200 ms" in ntp1 and "truechimer" in ntp1
    assert any("consensus: quorum, 2 of 3 trust groups agree; host offset +100.000 us" in ln
               for ln in lines)
    assert any("critical" in ln and "source.falseticker" in ln and "liar" in ln for ln in lines)


def test_status_asks_the_running_monitor_first(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = write_config(tmp_path, 0)
    http = HttpSink(load(cfg_path))
    try:
        http.handle(OUTS)
        cfg_path = write_config(tmp_path, int(http.address.rsplit(":", 1)[1]))
        doc = get_status(load(cfg_path))
        assert doc["origin"] == f"http://{http.address}/status.json"
        assert doc["counters"]["samples"] == {"ntp1": 1}
        assert main(["status", "-c", str(cfg_path)]) == 0
        check_table(capsys.readouterr().out)
        assert main(["status", "-c", str(cfg_path), "--json"]) == 0
        js = json.loads(capsys.readouterr().out)
        assert js["sources"][1]["verdict"] == "falseticker"
        assert js["active_alerts"] == [A1.to_dict()]
    finally:
        http.close()


def test_status_reads_the_store_when_no_monitor_answers(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = write_config(tmp_path, free_port())
    sink = StoreSink(load(cfg_path))
    sink.handle(OUTS)
    sink.close()
    doc = get_status(load(cfg_path))
    assert doc["origin"] == f"store {tmp_path / 'state' / 'timewatch.db'}"
    assert doc["sources"] == [s.to_dict() for s in SNAP.sources]
    assert main(["status", "-c", str(cfg_path)]) == 0
    check_table(capsys.readouterr().out)
    assert main(["status", "-c", str(cfg_path), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["active_alerts"] == [A1.to_dict()] and js["consensus"]["quorum"] is True


def test_status_with_neither_monitor_nor_store_says_where_it_looked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    cfg_path = write_config(tmp_path, port)
    assert main(["status", "-c", str(cfg_path)]) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and str(tmp_path / "state" / "timewatch.db") in err


@pytest.mark.parametrize(("x", "text"), [(2.5, "+2.500 s"), (-0.0012, "-1.200 ms"),
                                         (3.1e-6, "+3.100 us"), (4e-8, "+40 ns"), (None, "-")])
def test_offsets_print_in_a_readable_unit(x: float | None, text: str) -> None:
    assert fmt_s(x) == text


def _monitor(tmp: Path, name: str, listen_port: int = 0) -> tuple[HttpSink, Path]:
    """A monitor's status API on state dir tmp/name (its own config, a free port by default)."""
    state = tmp / name
    http = HttpSink(parse({"monitor": {"host": f"host-{name}", "state_dir": str(state)},
                           "http": {"listen": f"127.0.0.1:{listen_port}"}}))
    http.handle(OUTS)
    return http, state


def test_status_of_a_named_state_dir_asks_its_own_monitor_and_says_which(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Monitor A listens where the config says; monitor B (a demo, say) on a free port.
    a, state_a = _monitor(tmp_path, "a")
    b, state_b = _monitor(tmp_path, "b")
    try:
        cfg = write_config(tmp_path, int(a.address.rsplit(":", 1)[1]))
        assert json.loads((state_b / "monitor.json").read_text())["listen"] == b.address
        assert main(["status", "-c", str(cfg), "--state-dir", str(state_b)]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].startswith("host-b: status at")
        assert (f"from monitor pid {os.getpid()} on host-b, state dir {state_b.resolve()}, at "
                f"http://{b.address}") in out
        assert main(["status", "--state-dir", str(state_a), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["monitor"]["state_dir"] == str(state_a.resolve())
        assert doc["monitor"]["listen"] == a.address and doc["host"] == "host-a"
    finally:
        a.close()
        b.close()
    assert not (state_b / "monitor.json").exists()  # removed when the monitor stops


def test_status_never_shows_the_monitor_of_another_state_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _monitor(tmp_path, "a")
    try:
        port = int(a.address.rsplit(":", 1)[1])
        cfg_path = write_config(tmp_path, port)  # its state dir is tmp/state, not a's
        sink = StoreSink(load(cfg_path))
        sink.handle(OUTS)
        sink.close()
        assert main(["status", "-c", str(cfg_path)]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].startswith("pi-lab-1: status at")  # the store's host
        assert f"from the store {tmp_path / 'state' / 'timewatch.db'}" in out
        assert f"note: monitor pid {os.getpid()} on host-a" in out and "not shown" in out
        # Nothing named: whatever answers at the listen address, saying which monitor it is.
        doc = get_status(load(cfg_path), named=False)
        assert doc["host"] == "host-a" and "host-a" in doc["answered_by"]
    finally:
        a.close()


def test_a_monitor_file_left_by_a_dead_monitor_is_ignored(tmp_path: Path) -> None:
    port = free_port()
    cfg_path = write_config(tmp_path, port)
    state = tmp_path / "state"
    state.mkdir()
    proc = subprocess.Popen(["true"])  # a process id that exited (and was reaped)
    proc.wait()
    (state / "monitor.json").write_text(json.dumps(
        {"pid": proc.pid, "host": "x", "state_dir": str(state), "listen": "127.0.0.1:1"}))
    assert not monitorfile.alive(proc.pid) and monitorfile.alive(os.getpid())
    assert monitorfile.read(state) is None
    with pytest.raises(StatusUnavailable, match=f"127.0.0.1:{port}/status.json"):
        get_status(load(cfg_path))
