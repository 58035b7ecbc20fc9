"""What a real `timewatch run` recorded (simulated NTP servers, timewatch.sim.ntpserver) verifies
intact; a changed digit, a deleted line, a cut tail and a forgery with another key are each
reported at their line, exit 1; what left the box (InfluxDB points, webhook payloads) pins the
local files; the store's events carry the event log's chain; a second `timewatch run` on the
same state dir exits 1 naming the first one's PID."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.sinks.test_influx import FakeInflux
from tests.sinks.test_webhook import Receiver
from tests.test_evidence import reseal
from timewatch.evidence import PREFIX, public_text
from timewatch.sim.ntpserver import Behaviour, start_servers

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ["127.0.0.91", "127.0.0.92", "127.0.0.93", "127.0.0.94"]
PORT = 12291
RUN_S = 9.0
N = 5  # [evidence] checkpoint_records: a trace of ~60 records gets a dozen checkpoints
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def tw(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "timewatch.cli", *args], capture_output=True,
                          text=True, env=ENV, timeout=timeout_s)


@dataclass
class Run:
    dir: Path
    cfg: Path
    trace: Path
    events: Path
    pubkey: str
    first_pid: int
    second: subprocess.CompletedProcess[str]
    influx: FakeInflux
    hooks: Receiver


def wait_for(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    d = tmp_path_factory.mktemp("live")
    influx, hooks = FakeInflux(), Receiver()
    srcs = "".join(f'[[sources]]\nid = "s{i}"\nkind = "ntp"\nserver = "{h}"\nport = {PORT}\n'
                   f"poll_s = 1\n\n" for i, h in enumerate(HOSTS))
    cfg = d / "tw.toml"
    cfg.write_text(
        f'[monitor]\nhost = "t"\nstate_dir = "{d / "state"}"\n\n[http]\nlisten = ""\n\n'
        f"[evidence]\ncheckpoint_records = {N}\ncheckpoint_s = 1\n\n"
        "[detect]\nsnapshot_interval_s = 1\n\n"
        f'[sinks.influxdb]\nurl = "http://127.0.0.1:{influx.port}"\nflush_interval_s = 0.2\n\n'
        f'[[sinks.webhook]]\nurl = "{hooks.url}/hook"\nmin_severity = "info"\n\n{srcs}')
    trace = d / "live.jsonl"

    async def live() -> tuple[int, int, subprocess.CompletedProcess[str]]:
        servers = await start_servers(HOSTS, PORT, [Behaviour(), Behaviour(), Behaviour(),
                                                    Behaviour(lie_after_s=2.0,
                                                              lie_offset_s=0.15)])
        try:
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg), "--record",
                str(trace), "--duration", str(RUN_S), stderr=asyncio.subprocess.PIPE, env=ENV)
            lock = d / "state" / "timewatch.lock"
            deadline = time.monotonic() + 20
            while not (lock.exists() and lock.read_text().strip() == str(p.pid)):
                assert time.monotonic() < deadline, "the first monitor never took its lock"
                await asyncio.sleep(0.05)
            second = await asyncio.to_thread(tw, "run", "-c", str(cfg), "--duration", "1")
            _, err = await p.communicate()
            assert p.returncode == 0, err.decode()
            return p.pid, p.returncode, second
        finally:
            for s in servers:
                s.close()

    pid, _, second = asyncio.run(live())
    shown = tw("key", "show", "-c", str(cfg))
    assert shown.returncode == 0, shown.stderr
    try:
        yield Run(d, cfg, trace, d / "state" / "events.jsonl", shown.stdout.strip(), pid, second,
                  influx, hooks)
    finally:
        influx.close()
        hooks.close()


def checkpoints(path: Path) -> dict[int, dict[str, object]]:
    """Line number -> checkpoint, of a file."""
    return {n: json.loads(line) for n, line in
            enumerate(path.read_bytes().splitlines(keepends=True), 1) if line.startswith(PREFIX)}


def test_a_second_run_on_the_same_state_dir_exits_1_naming_the_first_pid(run: Run) -> None:
    assert run.second.returncode == 1
    assert f"state dir {run.dir / 'state'} is in use by timewatch PID {run.first_pid}" \
        in run.second.stderr


def test_the_recorded_trace_and_event_log_verify_intact(run: Run) -> None:
    r = tw("verify", "--pubkey", run.pubkey, str(run.trace), str(run.events))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{run.trace}: intact (") and "the trusted key" in lines[0]
    assert lines[1].startswith(f"{run.events}: intact (") and "the trusted key" in lines[1]
    assert len(checkpoints(run.trace)) >= 6  # start, every 5 records, the end
    events = [json.loads(x) for x in run.events.read_text().splitlines()]
    assert any(e["type"] == "alert" and e["code"] == "source.falseticker" for e in events)


def sealed_by(path: Path, line: int) -> tuple[int, int, int]:
    """(first line of the segment, the checkpoint's line, its seq) that seals `line`."""
    cps = checkpoints(path)
    after = min(n for n in cps if n > line)
    before = max((n for n in cps if n < line), default=0)
    return before + 1, after, int(cps[after]["seq"])  # type: ignore[call-overload]


def record_line(path: Path, pick: Callable[[str], bool]) -> int:
    """The first record line (1-based) that `pick` accepts."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1)
                if not line.startswith('{"type": "checkpoint"') and pick(line))


def edited(run: Run, path: Path, name: str, edit: Callable[[list[str]], list[str]]) -> Path:
    out = run.dir / name
    out.write_text("".join(edit(path.read_text().splitlines(keepends=True))))
    return out


@pytest.mark.parametrize("which", ["trace", "events"])
def test_one_changed_digit_is_named_at_its_sealed_lines(run: Run, which: str) -> None:
    path = run.trace if which == "trace" else run.events
    kind = '"type": "ntp"' if which == "trace" else '"type": "alert"'
    x = record_line(path, lambda s: kind in s)
    first, cp, seq = sealed_by(path, x)

    def change(ls: list[str]) -> list[str]:
        m = re.search(r'"t_ns": (\d+)' if which == "events" else r'"rx_ns": (\d+)', ls[x - 1])
        assert m is not None
        digit = m.group(1)[-1]
        i = m.end(1) - 1
        ls[x - 1] = ls[x - 1][:i] + str((int(digit) + 1) % 10) + ls[x - 1][i + 1:]
        return ls

    bad = edited(run, path, f"{which}-digit.jsonl", change)
    r = tw("verify", "--pubkey", run.pubkey, str(bad))
    assert r.returncode == 1
    seg = f"lines {first}-{cp - 1} changed after checkpoint {seq} (line {cp}) sealed them" \
        if cp - 1 > first else f"line {first} changed after checkpoint {seq} (line {cp}) sealed it"
    assert r.stdout.startswith(f"{bad}:{first}: chain breaks: {seg} ("), r.stdout


@pytest.mark.parametrize("which", ["trace", "events"])
def test_a_deleted_line_is_counted_and_placed(run: Run, which: str) -> None:
    path = run.trace if which == "trace" else run.events
    x = record_line(path, lambda s: '"type": "tick"' in s or '"type": "alert"' in s)
    first, cp, seq = sealed_by(path, x)
    bad = edited(run, path, f"{which}-deleted.jsonl", lambda ls: ls[:x - 1] + ls[x:])
    r = tw("verify", "--pubkey", run.pubkey, str(bad))
    assert (r.returncode, r.stdout.strip()) == (
        1, f"{bad}:{first}: chain breaks: 1 line deleted from "
           f"{f'lines {first}-{cp - 2}' if cp - 2 > first else f'line {cp - 2}'} (checkpoint "
           f"{seq} (line {cp - 1}) was written as line {cp})")


@pytest.mark.parametrize("which", ["trace", "events"])
def test_a_truncated_tail_is_reported_missing(run: Run, which: str) -> None:
    path = run.trace if which == "trace" else run.events
    cps = sorted(checkpoints(path))
    keep = cps[-2] + 1 if cps[-1] - cps[-2] > 1 else cps[-2]  # into the last sealed stretch
    bad = edited(run, path, f"{which}-cut.jsonl", lambda ls: ls[:keep])
    r = tw("verify", "--pubkey", run.pubkey, str(bad))
    seq = int(checkpoints(path)[cps[-2]]["seq"])  # type: ignore[call-overload]
    if keep > cps[-2]:
        want = (f"{bad}:{keep}: missing tail: nothing seals line {keep} after the last checkpoint "
                f"({seq}, line {cps[-2]}): the file's final checkpoint is missing")
    else:
        want = (f"{bad}:{keep}: missing tail: the file ends at checkpoint {seq} (line {keep}), "
                "which is not its final one: what followed was cut off (or the monitor did not "
                "stop cleanly)")
    assert (r.returncode, r.stdout.strip()) == (1, want)


@pytest.mark.parametrize("which", ["trace", "events"])
def test_resealed_with_another_key_is_a_bad_signature(run: Run, which: str) -> None:
    path = run.trace if which == "trace" else run.events
    other = Ed25519PrivateKey.generate()
    bad = run.dir / f"{which}-resealed.jsonl"
    reseal(path, bad, other, lambda b: b.replace(b'"source.falseticker"', b'"source.stale"'))
    first = min(checkpoints(path))
    r = tw("verify", "--pubkey", run.pubkey, str(bad))
    assert r.returncode == 1
    assert r.stdout.startswith(f"{bad}:{first}: bad signature: checkpoint 1 (line {first}) is "
                               f"signed by {public_text(other.public_key())} ("), r.stdout
    assert f"not by the trusted key {run.pubkey}" in r.stdout


def test_what_left_the_box_pins_the_local_files(run: Run) -> None:
    """InfluxDB points and webhook payloads name checkpoints (seq, sha256) that the local files
    hold; a rewrite of the trace re-signed with the appliance's own key no longer does."""
    local = {(str(cp["stream"]), cp["seq"]): cp["sha256"]
             for p in (run.trace, run.events) for cp in checkpoints(p).values()}
    sent: set[tuple[str, int, str]] = set()
    for line in run.influx.lines:
        if line.startswith("tw_consensus,"):
            for stream in ("trace", "events"):
                seq = re.search(rf"chain_{stream}_seq=([0-9.]+)", line)
                sha = re.search(rf'chain_{stream}_sha256="([0-9a-f]{{64}})"', line)
                if seq and sha:
                    sent.add((stream, int(float(seq.group(1))), sha.group(1)))
    assert {s for s, _, _ in sent} == {"trace", "events"}, run.influx.lines[-3:]
    assert run.hooks.ok(), "no webhook delivered"
    for req in run.hooks.ok():
        body = json.loads(req.body)
        assert body["chain"], body
        for stream, head in body["chain"].items():
            sent.add((stream, head["seq"], head["sha256"]))
    assert all(local.get((s, q)) == h for s, q, h in sent), sorted(sent - {
        (s, q, h) for (s, q), h in local.items()})
    # Rewritten and re-signed with the real key: intact to verify, but not to what was sent.
    key = run.dir / "state" / "evidence.key"
    from timewatch.evidence import load_key

    forged = run.dir / "forged.jsonl"
    reseal(run.trace, forged, load_key(key), lambda b: b.replace(b'"stratum": 1', b'"stratum": 2'))
    assert tw("verify", "--pubkey", run.pubkey, str(forged)).returncode == 0
    forged_cps = {(str(cp["stream"]), cp["seq"]): cp["sha256"]
                  for cp in checkpoints(forged).values()}
    moved = [(s, q) for s, q, h in sent if s == "trace" and q > 1 and forged_cps.get((s, q)) != h]
    assert moved, "a rewrite matched every anchor that left the box"


def test_the_stores_events_carry_the_event_log_chain(run: Run) -> None:
    h = hashlib.sha256()
    digests = {}
    for line in run.events.read_bytes().splitlines(keepends=True):
        h.update(line)
        d = json.loads(line)
        if d["type"] != "checkpoint":
            digests[(d["id"], d["type"])] = h.hexdigest()
    db = sqlite3.connect(run.dir / "state" / "timewatch.db")
    rows = {(i, t): c for i, t, c in db.execute("SELECT id, type, chain_sha256 FROM events")}
    assert rows and rows == digests


def test_replay_verifies_and_warns_but_replays(run: Run) -> None:
    """replay checks the chain and warns; it replays every record all the same, and the
    checkpoints change nothing: the events are those of the same file without them."""
    x = record_line(run.trace, lambda s: '"type": "tick"' in s)
    bad = edited(run, run.trace, "replay-deleted.jsonl", lambda ls: ls[:x - 1] + ls[x:])

    def replay(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "timewatch.cli", "replay", str(path)],
                              capture_output=True, text=True, env=ENV, timeout=60)

    def unchained(path: Path) -> Path:
        return edited(run, path, f"plain-{path.name}", lambda ls: [
            x for x in ls if not x.startswith('{"type": "checkpoint"')])

    good, broken = replay(run.trace), replay(bad)
    assert good.returncode == broken.returncode == 0
    assert "; evidence chain intact (checkpoints 1-" in good.stderr
    assert f"replay: WARNING: {bad}:" in broken.stderr and "1 line deleted" in broken.stderr
    assert "; evidence chain BROKEN (warned above)" in broken.stderr
    assert '"source.falseticker"' in good.stdout
    for chained, out in ((run.trace, good), (bad, broken)):
        plain = replay(unchained(chained))
        assert "evidence chain" not in plain.stderr  # not chained: nothing to say
        assert plain.stdout == out.stdout
