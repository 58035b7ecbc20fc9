"""The commands as a person meets them: `--version`, "did you mean" for a mistyped config key,
`--format text` of replay, simulate and decode (times as ISO 8601 UTC beside the Unix ns; JSON
Lines stays the default), the progress bar on a terminal (and none on a pipe), the demo's live
view at 80 columns and the way its summary names the program."""

from __future__ import annotations

import io
import json
import os
import random
import re
import select
import subprocess
import sys
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.commands import progress
from timewatch.commands.demo import invoked_as
from timewatch.commands.replay import dumps, replay_iter
from timewatch.config import parse
from timewatch.records import Event, Sample, Snapshot, SourceStatus
from timewatch.sim import demo
from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.scenarios import build, write
from timewatch.sinks.store import StoreSink
from timewatch.textfmt import iso_ns
from timewatch.trace import TraceReader

ROOT = Path(__file__).resolve().parent.parent
ISO_NS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (\d+) ")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def check_iso_beside_ns(line: str) -> int:
    """The line starts with an ISO 8601 UTC time and the same instant in Unix ns."""
    m = ISO_NS.match(line)
    assert m, line
    iso, ns = m.group(1), int(m.group(2))
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00")[:26] + "+00:00")
    assert int(dt.timestamp()) == ns // 1_000_000_000 and iso[20:29] == f"{ns % 10**9:09d}"
    return ns


def test_iso_ns_keeps_every_nanosecond() -> None:
    assert iso_ns(1_796_083_200_000_000_123) == "2026-12-01T00:00:00.000000123Z"
    assert iso_ns(0) == "1970-01-01T00:00:00.000000000Z"


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    from timewatch.commands.replay import engine_build

    # ... and which engine it runs (the compiled one is the default install).
    assert capsys.readouterr().out == f"timewatch {version('timewatch')} (engine: {engine_build()})\n"


@pytest.mark.parametrize(("key", "hint"), [
    ("pol_s", "; did you mean poll_s?"), ("servr", "; did you mean server?"),
    ("frobnicate", ""),  # nothing near: no guess
])
def test_an_unknown_config_key_names_the_nearest_known_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, hint: str) -> None:
    cfg = tmp_path / "timewatch.toml"
    cfg.write_text(f'[[sources]]\nid = "a"\nkind = "ntp"\nserver = "127.0.0.1"\n{key} = 1\n')
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"timewatch: timewatch.toml:5: sources[0].{key}: unknown key "
                          "(expected one of: ")
    assert err.endswith(")" + hint)


@pytest.fixture(scope="module")
def liar_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("trace") / "liar.jsonl"
    write(str(p), build("ntp_liar", 1))
    return p


def test_replay_prints_json_lines_by_default_and_text_on_request(
        liar_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(liar_trace)]) == 0
    out = capsys.readouterr().out
    _, outs = replay_iter(TraceReader(liar_trace), parse({}))
    events = [o for o in outs if isinstance(o, Event)]
    assert events and out == "".join(dumps(e) + "\n" for e in events)
    assert main(["replay", str(liar_trace), "--format", "text", "--snapshots"]) == 0
    text = capsys.readouterr().out.splitlines()
    firsts = [ln for ln in text if not ln.startswith("    ")]
    assert [check_iso_beside_ns(ln) for ln in firsts if " ALERT " in ln] == \
        [e.t_ns for e in events if e.type == "alert"]
    alert = next(i for i, ln in enumerate(text) if " ALERT " in ln)
    e = next(e for e in events if e.type == "alert")
    assert f"ALERT {e.code} [{e.severity}] {','.join(e.sources)} (id {e.id})" in text[alert]
    assert text[alert + 1] == f"    {e.message}" and text[alert + 2].startswith("    evidence: ")
    status = [ln for ln in firsts if " status: " in ln]
    assert status and all(check_iso_beside_ns(ln) for ln in status)
    assert any(ln.startswith("    ntp-a ntp op-a truechimer ") for ln in text)


def test_simulate_text_lists_every_record_with_its_time(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert main(["simulate", "--scenario", "ntp_liar", "--duration", "60", "--format",
                 "text"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    st = build("ntp_liar", 1, 60)
    assert lines[0].startswith(f"trace of host {st.header.host}, created ")
    records = lines[1 + len(st.header.sources):]
    assert len(records) == len(st.observations)
    assert [check_iso_beside_ns(ln) for ln in records] == [o.rx_ns for o in st.observations]
    assert "-> stdout (attack/fault from 20" in cap.err


def test_simulate_jsonl_still_needs_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "ntp_liar"]) == 2
    assert "-o TRACE is required" in capsys.readouterr().err


def test_decode_text_gives_one_line_per_epoch_beside_the_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = NmeaSim(random.Random(1))
    t0 = 1_796_083_200 * 1_000_000_000
    cap = tmp_path / "capture.nmea"
    cap.write_text("".join(ln + "\r\n" for s in range(5)
                           for ln in sim.lines(t0 + s * 1_000_000_000)))
    assert main(["decode", str(cap)]) == 0
    js = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert main(["decode", str(cap), "--format", "text"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(js) == len(text) == 5
    for s, (j, ln) in enumerate(zip(js, text, strict=True)):
        assert check_iso_beside_ns(ln) == t0 + s * 1_000_000_000
        assert j["utc"] == iso_ns(t0 + s * 1_000_000_000)[:23] + "Z"
        assert " valid 3D " in ln and f"{j['sats_used']} satellites used" in ln


# -- progress bar ---------------------------------------------------------------------------


def _run_with_stderr_on_a_pty(args: list[str], cwd: Path) -> tuple[str, str]:
    """stdout, and what a terminal on stderr received."""
    master, slave = os.openpty()
    env = {**ENV, "COLUMNS": "100"}
    p = subprocess.Popen([sys.executable, "-m", "timewatch", *args], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    got = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        assert r, "no output from the command for 60 s"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    out = p.stdout.read().decode() if p.stdout else ""
    assert p.wait(timeout=60) == 0
    os.close(master)
    return out, got.decode()


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace whose replay takes a couple of seconds (past the bar's delay)."""
    p = tmp_path_factory.mktemp("long") / "push.jsonl"
    write(str(p), build("gnss_push_fast", 1, 1800))
    return p


def test_a_long_replay_draws_a_progress_bar_on_a_terminal_and_erases_it(long_trace: Path
                                                                        ) -> None:
    out, err = _run_with_stderr_on_a_pty(["replay", str(long_trace)], long_trace.parent)
    bars = re.findall(r"\rreplay push\.jsonl \[[#.]+\] +(\d+\.\d)%  ([\d,]+) observations", err)
    assert bars, err
    pcts = [float(p) for p, _ in bars]
    assert pcts == sorted(pcts) and 0 < pcts[-1] <= 100
    erased = err.rindex("%")  # the bar's line is blanked before the summary
    assert re.match(r"%  [\d,]+ observations *\r +\rreplay \S+push\.jsonl: 15615 observations in ",
                    err[erased:]), err[erased:]
    assert out.count("\n") >= 1  # the events still go to stdout


def test_a_replay_into_a_pipe_or_a_short_one_draws_no_bar(long_trace: Path, liar_trace: Path
                                                         ) -> None:
    assert long_trace.stat().st_size >= progress.LONG_TRACE_BYTES > liar_trace.stat().st_size
    p = subprocess.run([sys.executable, "-m", "timewatch", "replay", str(long_trace)],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 0
    assert "\r" not in p.stderr and "[#" not in p.stderr and "%" not in p.stderr
    assert p.stderr.startswith("replay ") and p.stderr.count("\n") == 1
    _, err = _run_with_stderr_on_a_pty(["replay", str(liar_trace)], liar_trace.parent)
    assert err.startswith("replay ") and "%" not in err and err.count("\r") == 1  # \r\n


def test_export_draws_its_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    cfg = parse({"monitor": {"state_dir": str(tmp_path)}})
    sink = StoreSink(cfg)
    t0 = 1_796_083_200 * 1_000_000_000
    n = progress.LONG_EXPORT_RECORDS + 100
    sink.handle([Sample("ntp1", t0 + i * 10**9, 1e-4, 1e-3) for i in range(n)])
    sink.close()
    master, slave = os.openpty()
    tty = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 - closed below
    monkeypatch.setattr(progress, "REDRAW_S", 0.0)  # every update drawn
    monkeypatch.setattr(sys, "stderr", tty)
    try:
        assert main(["export", "--state-dir", str(tmp_path), "-o", str(tmp_path / "x.lp")]) == 0
    finally:
        tty.flush()
        monkeypatch.undo()
        tty.close()
    err = b""  # a few lines: they fit the terminal's buffer, which is read now
    while select.select([master], [], [], 0.5)[0]:
        try:
            err += os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed and all of it was read
            break
    os.close(master)
    text = err.decode()
    bars = re.findall(r"\rexport timewatch\.db \[[#.]+\] +\d+\.\d%  ([\d,]+) records", text)
    counts = [int(b.replace(",", "")) for b in bars]  # one redraw per chunk of the export
    assert len(counts) >= 2 and counts == sorted(set(counts)) and counts[-1] <= n, text[:300]
    assert f"export {tmp_path / 'timewatch.db'}: {n} lines ({n} samples" in text
    assert (tmp_path / "x.lp").read_text().count("\n") == n


def test_the_bar_never_draws_into_a_file() -> None:
    buf = io.StringIO()
    bar = progress.Progress("x", buf)
    bar.update(0.5)
    bar.done()
    assert not bar.enabled and buf.getvalue() == ""


# -- the demo's view and summary ------------------------------------------------------------

LONG_REASON = ("151.2 ms ahead of the consensus of 4/5 trust groups, beyond its bound of "
               "0.3 ms; confirmed over 3 polls")
SNAP = Snapshot(1, (
    SourceStatus("gnss0", "gnss", "gnss", "truechimer", "agrees with 4/5 trust groups "
                 "(inside the consensus interval)", 1e-4, 3e-3),
    SourceStatus("sim-d", "ntp", "op-d", "falseticker", LONG_REASON, 0.1512, 3e-4)),
    True, 4, 5, 1e-5, 2e-5)


def _draw(monkeypatch: pytest.MonkeyPatch, columns: int) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("LINES", "50")
    out = io.StringIO()
    view = demo.DemoView(out, True, demo.default_plan(), 0.0)
    view.handle([Event("alert", 1, "source.falseticker", ("sim-d",), "a1", "critical",
                       "sim-d is " + LONG_REASON, {"offset_s": 0.1512, "bound_s": 3e-4}), SNAP])
    screens = out.getvalue().split("\x1b[H\x1b[J")
    return screens[-1].splitlines()


def _words(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def test_the_live_view_fits_80_columns_and_still_shows_every_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _draw(monkeypatch, 80)
    assert max(len(ln) for ln in lines) <= 80
    row = next(i for i, ln in enumerate(lines) if ln.startswith("sim-d "))
    assert "falseticker" in lines[row] and "+151.200 ms" in lines[row]
    assert "|" in lines[row] and lines[row].rstrip().endswith(">")  # the bar, narrower
    reason = []
    for ln in lines[row + 1:]:
        if not ln.startswith(" " * demo.REASON_INDENT):
            break
        reason.append(ln)
    assert len(reason) >= 2 and _words(reason) == LONG_REASON  # wrapped, not cut
    assert "evidence: " in _words(lines) or "offset=+151.200 ms" in _words(lines)


def test_a_wide_terminal_keeps_one_line_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _draw(monkeypatch, 200)
    row = next(ln for ln in lines if ln.startswith("sim-d "))
    assert row.endswith(LONG_REASON) and len(row) <= 200
    assert "interval vs consensus +-1.000 ms" in next(ln for ln in lines
                                                      if ln.startswith("source "))


def test_the_summary_names_the_program_as_started_from_the_clone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    exe = bin_ / "timewatch"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (bin_ / "activate").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert invoked_as(str(exe)) == (".venv/bin/timewatch", ".venv/bin/activate")
    monkeypatch.setenv("PATH", f"{bin_}:/usr/bin:/bin")  # activated: plain `timewatch`
    assert invoked_as(str(exe)) == ("timewatch", None)
    prog, act = invoked_as(str(tmp_path / "timewatch" / "__main__.py"))
    assert prog.endswith(" -m timewatch") and act is None
