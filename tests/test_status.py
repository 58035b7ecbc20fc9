"""`timewatch status`: from the running monitor's /status.json, else from the store, else a clear
error; a table or JSON."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.commands.status import fmt_s, get_status
from timewatch.config import load
from timewatch.records import Event, Sample, Snapshot, SourceStatus
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
    header = lines[1].split()
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
