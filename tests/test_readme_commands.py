"""Every command line of the README, and every command the demo summary suggests, runs as written.

What counts as a command line of README.md:
- each line of a `sh` code block (the "Try it from the clone" block): run exactly as written, in
  order, from a directory laid out like the clone after `make demo` (`.venv/bin/timewatch`, a
  real console script of this source tree, and its `activate`; `examples/`), without `timewatch`
  on PATH;
- each synopsis of the Commands table, with its metavariables given values (the simulated setup
  below) and every optional part included, one line per `a|b` alternative;
- each inline `make ...`, `sudo ...` and `timewatch SUBCOMMAND ARGS...` in the prose (a bare
  `timewatch demo` names a command, it is not a command line).
The table's and the prose's lines run with `.venv/bin` on PATH (activated, as the README says).
A line that cannot run here is in `EXEMPT` with the reason; a README line that is neither run nor
exempt fails the test, and so does an exemption whose line the README no longer has.

The simulated setup: four simulated NTP servers (`sim.ntpserver`) on 127.0.0.31-.34, a webhook
receiver on loopback, a config (`sim.toml`) with a state directory of its own, a raw NMEA capture
from the simulated receiver; `run` is started, asked by `status` while it runs, then stopped
with SIGTERM and its recorded trace replayed.
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from timewatch.sim.nmeagen import NmeaSim
from timewatch.sim.ntpserver import SimNtpServer, start_servers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NTP_HOSTS = ["127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34"]
# Programs a line of a command block may start with.
PROGRAMS = (".venv/bin/timewatch", "timewatch", ".", "make", "sudo")

EXEMPT = {
    "make demo": "creates .venv with pip from the package index, then runs `timewatch demo` for "
                 "two minutes; the demo itself runs here (`timewatch demo --duration 20 "
                 "--scenario ntp_liar`, `.venv/bin/timewatch demo --scenario ntp_liar`)",
    "make test": "is the test suite that runs this test",
    "make bench": "minutes of benchmarks on an otherwise idle machine (bench/ is its own "
                  "entry point)",
    "make compiled": "compiles the core with gcc into the source tree; "
                     "tests/test_compiled_build.py builds it in a temporary copy",
    "make clean-compiled": "undoes `make compiled` (tests/test_compiled_build.py)",
    "sudo hw/install.sh --profile adafruit-ultimate-gps|uputronics|ublox-usb":
        "needs root on a Raspberry Pi; tests/hw/test_install.py runs hw/install.sh into fake "
        "roots of each OS layout",
    "timewatch run --record t.jsonl.gz": "the built-in config polls public NTP servers on the "
        "Internet and tests talk only to loopback; the table's `timewatch run -c CONFIG --record "
        "TRACE` runs against the simulated servers and records t.jsonl.gz for the next line",
}


# -- what the README says ------------------------------------------------------------------


def code_blocks(md: str) -> list[tuple[str, list[str]]]:
    return [(m.group(1), m.group(2).splitlines())
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", md, re.S | re.M)]


def block_commands(md: str) -> list[str]:
    """The lines of the README's command blocks (sh, or unlabelled lines of programs)."""
    out = []
    for lang, lines in code_blocks(md):
        first = [ln.split()[0] for ln in lines if ln.strip()]
        if lang == "sh" or (lang == "" and first and all(w in PROGRAMS for w in first)):
            out += [ln for ln in lines if ln.strip()]
    return out


def prose_commands(md: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", md, flags=re.S | re.M)
    prose = prose[:prose.index("## Commands")] + prose[prose.index("\n## ", prose.index(
        "## Commands") + 5):]  # the table's synopses are read by table_synopses
    out = []
    for span in re.findall(r"`([^`\n]+)`", prose):
        words = span.split()
        if words[0] in ("make", "sudo") or (words[0] == "timewatch" and len(words) > 2):
            out.append(span)
    return out


def table_synopses(md: str) -> list[str]:
    sec = md[md.index("## Commands"):]
    sec = sec[:sec.index("\n## ", 5)]
    return [m.group(1).replace("\\|", "|") for m in re.finditer(r"^\| `([^`]+)` \|", sec, re.M)]


def instantiate(synopsis: str, values: dict[str, str]) -> list[str]:
    """The synopsis with every optional part included and its metavariables given values; one
    line per alternative: of `[A | B C]` (either A or B C) and of a word `a|b`."""
    parts: list[list[str]] = []  # each: the alternatives of one part of the line
    for group in re.findall(r"\[[^\]]*\]|\S+", synopsis):
        body = group.strip("[]")
        parts.append([alt.strip() for alt in body.split(" | ")] if " | " in body else [body])
    cmd = synopsis.split()[1] if len(synopsis.split()) > 1 else ""
    lines = []
    for choice in itertools.product(*parts):
        words = " ".join(choice).split()
        options = [w.split("|") if "|" in w and not w.startswith("-") else [w] for w in words]
        for ws in itertools.product(*options):
            out = []
            for prev, w in zip(("", *ws), ws, strict=False):
                if re.fullmatch(r"[A-Z]+", w):
                    key = next((k for k in (f"{cmd}:{prev} {w}", f"{prev} {w}", f"{cmd}:{w}", w)
                                if k in values), None)
                    assert key is not None, f"no value for {w} in {synopsis!r}: add it to VALUES"
                    w = values[key]
                out.append(w)
            lines.append(" ".join(out))
    return lines


def canonical(line: str) -> str:
    """A line without its trailing comment, `.venv/bin/timewatch` and `timewatch` alike."""
    line = re.sub(r"\s+#.*$", "", line).strip()
    return re.sub(r"^\.venv/bin/timewatch ", "timewatch ", line)


# -- the simulated setup -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hook(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Lab:
    """The clone's directory, simulated NTP servers and a webhook receiver."""

    def __init__(self, home: Path):
        self.home = home
        self.bin = home / ".venv" / "bin"
        self.procs: list[subprocess.Popen[str]] = []
        self.bin.mkdir(parents=True)
        exe = self.bin / "timewatch"  # what pip writes for [project.scripts], on this tree
        exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                       "from timewatch.cli import main\nsys.exit(main())\n")
        exe.chmod(0o755)
        (self.bin / "activate").write_text(f'export PATH="{self.bin}:$PATH"\n')
        (home / "examples").symlink_to(ROOT / "examples")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[SimNtpServer] = asyncio.run_coroutine_threadsafe(
            self._start(), self.loop).result(10)
        self.hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        threading.Thread(target=self.hook.serve_forever, daemon=True).start()
        self.http_port = free_port()
        srcs = "".join(f'[[sources]]\nid = "ntp{i}"\nkind = "ntp"\nserver = "{s.host}"\n'
                       f"port = {s.port}\npoll_s = 1\n\n" for i, s in enumerate(self.servers))
        (home / "sim.toml").write_text(
            f'[monitor]\nhost = "readme-lab"\nstate_dir = "state"\n\n{srcs}'
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\n\n'
            f'[[sinks.webhook]]\nurl = "http://127.0.0.1:{self.hook.server_port}/hook"\n\n'
            "[detect]\nsnapshot_interval_s = 1\n")
        sim = NmeaSim(random.Random(1))
        t0 = 1_796_083_200 * 1_000_000_000
        (home / "capture.nmea").write_text("".join(
            ln + "\r\n" for s in range(10) for ln in sim.lines(t0 + s * 1_000_000_000)))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
        self.env_clone = {**env, "PATH": "/usr/local/bin:/usr/bin:/bin"}
        self.env_active = {**env, "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin"}

    @staticmethod
    async def _start() -> list[SimNtpServer]:
        out: list[SimNtpServer] = []
        for h in NTP_HOSTS:
            out += await start_servers([h], 0)
        return out

    def run(self, line: str, activated: bool, timeout_s: float = 300
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", line], cwd=self.home, capture_output=True,
                              text=True, timeout=timeout_s,
                              env=self.env_active if activated else self.env_clone)

    def start(self, line: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(["bash", "-c", line], cwd=self.home, env=self.env_active,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:  # a test that failed half-way leaves no monitor running
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.communicate(timeout=30)
        for s in self.servers:
            self.loop.call_soon_threadsafe(s.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.hook.shutdown()
        self.hook.server_close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("clone"))
    yield lab
    lab.close()


VALUES = {
    "CONFIG": "sim.toml", "replay:OUT": "events.jsonl", "export:OUT": "history.lp", "S": "20",
    "NAME": "ntp_liar", "N": "0",
    "FILE": "capture.nmea", "T": "2020-01-01T00:00:00Z", "DIR": "state",
    "run:TRACE": "t.jsonl.gz", "replay:TRACE": "t.jsonl.gz", "simulate:TRACE": "sim.jsonl",
    "report:TRACE": "t.jsonl.gz", "--until T": "2100-01-01T00:00:00Z",
    "verify:FILE": "t.jsonl.gz", "--pubkey KEY": '"$(timewatch key show -c sim.toml)"',
}
# Subcommands of the table in the order they run (run's trace feeds replay; status asks run).
ORDER = ["--version", "check-config", "simulate", "decode", "run", "status", "replay", "key",
         "verify", "export", "report", "webhook", "doctor", "demo"]
# What a line's output must show, beyond exit status 0: (line pattern, substring of its output).
EXPECT = [
    (r"--version", f"timewatch {version('timewatch')}"),
    (r"check-config", "config sim.toml: OK"),
    (r"status", "monitor pid "),  # asked while `run` runs: the monitor answers, says so
    (r"decode .*jsonl", '{"utc": "2026-12-01T00:00:00.000Z", "valid": true, "fix": 3'),
    (r"decode .*text", "2026-12-01T00:00:00.000000000Z 1796083200000000000 valid 3D"),
    (r"simulate", "-> sim.jsonl (attack/fault from "),
    (r"replay", "observations in"),
    (r"key show", "ed25519:"),
    (r"verify", "t.jsonl.gz: intact ("),  # the trace `run` recorded, checked with key show's key
    (r"export", "lines ("),
    (r"report", "figures, "),
    (r"webhook", "webhook[0] standard to 127.0.0.1: alert: 200"),
    (r"doctor", "checks passed"),
    (r"demo", "=== timewatch demo (ntp_liar): summary"),
]


def expected(line: str) -> str:
    return next((x for pat, x in EXPECT if re.search(pat, line)), "")


def table_lines() -> list[tuple[str, str]]:
    """(subcommand, line) of every instantiated synopsis, in ORDER."""
    out = []
    for syn in table_synopses(README):
        for line in instantiate(syn, VALUES):
            out.append((line.split()[1], line))
    assert {c for c, _ in out} == set(ORDER), "a new command in the table: add it to ORDER"
    return sorted(out, key=lambda cl: ORDER.index(cl[0]))


def _check(lab: Lab, line: str, res: subprocess.CompletedProcess[str], expect: str = "") -> str:
    both = res.stdout + res.stderr
    assert res.returncode == 0, f"{line!r} exited {res.returncode}:\n{both[-3000:]}"
    assert expect in both, f"{line!r}: {expect!r} not in its output:\n{both[-3000:]}"
    return both


def _wait_healthy(port: int, proc: subprocess.Popen[str], within_s: float = 30) -> None:
    t_end = time.monotonic() + within_s
    while time.monotonic() < t_end:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the monitor did not become healthy within {within_s} s")


def test_the_readme_lines_are_all_run_or_exempt_with_a_reason() -> None:
    blocks, prose = block_commands(README), prose_commands(README)
    run = [b for b in blocks if canonical(b) not in EXEMPT]
    assert len(run) >= 7 and run[0].startswith(".venv/bin/timewatch demo")
    for line in prose:
        assert line in EXEMPT or canonical(line) in {canonical(x) for x in blocks} or \
            line.startswith("timewatch "), line
    readme_lines = {canonical(x) for x in blocks + prose + table_synopses(README)}
    stale = [x for x in EXEMPT if x not in readme_lines]
    assert not stale, f"exempt but no longer in the README: {stale}"
    assert all(len(r) > 20 for r in EXEMPT.values())
    assert table_lines()  # every metavariable has a value, every subcommand an order


def test_every_readme_command_line_runs_as_written(lab: Lab) -> None:
    done: set[str] = set()
    # 1. The Commands table, against the simulated setup (activated: `timewatch` on PATH).
    run_proc: subprocess.Popen[str] | None = None
    for cmd, line in table_lines():
        if cmd == "run":
            run_proc = lab.start(line)
            _wait_healthy(lab.http_port, run_proc)
            assert json.loads((lab.home / "state" / "monitor.json").read_text())["listen"] == \
                f"127.0.0.1:{lab.http_port}"
            done.add(canonical(line))
            continue
        if cmd != "status" and run_proc is not None:  # status asked it; now stop it
            os.killpg(run_proc.pid, signal.SIGTERM)
            out, err = run_proc.communicate(timeout=30)
            assert run_proc.returncode == 0, err[-3000:]
            assert (lab.home / "t.jsonl.gz").exists() and "stopped:" in err
            run_proc = None
        _check(lab, line, lab.run(line, activated=True), expected(line))
        done.add(canonical(line))
    assert _Hook.bodies, "webhook test sent nothing"
    # 2. The prose's command lines (activated), unless the block below runs the same line.
    blocks = block_commands(README)
    for line in prose_commands(README):
        if line in EXEMPT:
            continue
        line = " ".join(VALUES.get(w, w) for w in line.split())
        if canonical(line) not in done | {canonical(b) for b in blocks}:
            _check(lab, line, lab.run(line, activated=True))
            done.add(canonical(line))
    # 3. The "Try it from the clone" block, in order, as a fresh clone has it (no PATH).
    summary = ""
    for line in blocks:
        if canonical(line) in EXEMPT:
            continue
        res = lab.run(line, activated=False)
        out = _check(lab, line, res)
        if " demo " in line:
            summary = res.stdout
        if "replay state/demo" in line:
            assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \d+ ALERT source\.falseticker "
                             r"\[critical\] sim-d", res.stdout, re.M), out[-2000:]
    # 4. What the demo summary suggests, exactly as it prints it (no PATH: the clone's way).
    assert "=== timewatch demo (ntp_liar): summary" in summary
    suggested = [ln.strip()[2:] for ln in summary.splitlines() if ln.startswith("  $ ")]
    assert len(suggested) == 3 and all(s.startswith(".venv/bin/timewatch ") for s in suggested)
    assert "(or `. .venv/bin/activate` once, then `timewatch ...`)" in summary
    for line in suggested:
        out = _check(lab, line, lab.run(line, activated=False))
        if " status " in line:
            assert "from the store " in out and "sim-d" in out
