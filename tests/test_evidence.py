"""Tamper-evident evidence on real files (docs/evidence.md): a chained trace reads and replays as
before; checkpoints come every N records or S seconds and not before; each way of tampering is
named at its line; the key is made 0600 and a loose one refused; the event log keeps its chain
across restarts, unclean stops and rotation; the store's events carry the event log's chain;
the latest checkpoint goes out in InfluxDB lines and every webhook format.

tests/test_evidence_live.py does the same on what a real `timewatch run` recorded.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from timewatch import cli
from timewatch.config import Config, parse
from timewatch.evidence import (
    PREFIX,
    SIG_CONTEXT,
    ChainWriter,
    Evidence,
    Head,
    judge_end,
    public_text,
    scan,
)
from timewatch.records import Event, Header, Sample, Snapshot, SourceInfo, Tick
from timewatch.runner import Runner
from timewatch.secretfile import SecretFileError
from timewatch.sinks import build_sinks, close_all, fan_out
from timewatch.sinks.eventlog import EventLogSink
from timewatch.sinks.lineproto import Encoder
from timewatch.sinks.webhook_formats import FORMATS, FormatContext, Notice
from timewatch.trace import TraceReader, TraceWriter

T = 1_764_160_000_000_000_000
S = 1_000_000_000
HDR = Header("lab", T, {"ntp-a": SourceInfo("ntp", "a", server="192.0.2.1")})
N = 5  # checkpoint_records in these tests: a seal every 5 records


def make_cfg(tmp: Path, every: int = N, every_s: float = 3600.0, **ev: object) -> Config:
    return parse({"monitor": {"state_dir": str(tmp / "state"), "host": "lab"},
                  "http": {"listen": ""},
                  "evidence": {"checkpoint_records": every, "checkpoint_s": every_s, **ev}})


def record(path: Path, cfg: Config, n: int) -> list[Tick]:
    obs = [Tick(T + i * S, i) for i in range(n)]
    with TraceWriter(path, HDR, evidence=Evidence.for_config(cfg)) as w:
        for o in obs:
            w.write(o)
    return obs


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = cli.main(["verify", *args])
    return rc, capsys.readouterr().out.strip()


def checkpoint_lines(path: Path) -> list[int]:
    return [i for i, line in enumerate(path.read_bytes().splitlines(keepends=True), 1)
            if line.startswith(PREFIX)]


def rewrite(path: Path, out: Path, edit: object) -> None:
    lines = path.read_text().splitlines(keepends=True)
    out.write_text("".join(edit(lines)))  # type: ignore[operator]


# -- writing and reading -------------------------------------------------------------------------
def test_a_chained_trace_reads_as_the_same_observations_and_verifies_intact(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    obs = record(tmp_path / "t.jsonl", cfg, 12)
    with TraceWriter(tmp_path / "plain.jsonl", HDR) as w:
        for o in obs:
            w.write(o)
    chained, plain = TraceReader(tmp_path / "t.jsonl"), TraceReader(tmp_path / "plain.jsonl")
    assert list(chained) == list(plain) == obs
    # the header and the start, a seal after every 5 records, the end
    assert checkpoint_lines(tmp_path / "t.jsonl") == [2, 8, 14, 17]
    assert chained.stats.checkpoints == 4 and chained.stats.unknown_types == {}
    assert chained.stats.bad_lines == 0 and chained.stats.records == 12
    rc, out = verify(capsys, str(tmp_path / "t.jsonl"))
    assert rc == 0 and out.startswith(f"{tmp_path / 't.jsonl'}: intact (13 lines sealed by checkpoints "
                                  "1-4, signed by ed25519:")
    rc, out = verify(capsys, str(tmp_path / "plain.jsonl"))
    assert rc == 1 and out == f"{tmp_path / 'plain.jsonl'}:1: no checkpoint: not a chained file " \
                              "(written before evidence chaining, or by `timewatch simulate`)"


def test_a_seal_comes_at_n_records_and_not_one_before(tmp_path: Path) -> None:
    ev = Evidence.for_config(make_cfg(tmp_path))
    written: list[str] = []
    ch = ChainWriter(ev, "trace", written.append)
    ch.start()
    for _ in range(N - 1):
        ch.add('{"type": "tick", "rx_ns": 1}\n')
    assert len(written) == 1  # the start only: N - 1 records stay unsealed
    ch.add('{"type": "tick", "rx_ns": 1}\n')
    assert len(written) == 2 and json.loads(written[1])["reason"] == "interval"


def test_a_seal_comes_after_s_seconds_with_records_unsealed_and_never_for_nothing(
        tmp_path: Path) -> None:
    ev = Evidence.for_config(make_cfg(tmp_path, every=1000, every_s=0.2))
    written: list[str] = []
    ch = ChainWriter(ev, "trace", written.append)
    ch.start()
    t0 = time.monotonic()
    ch.add('{"type": "tick", "rx_ns": 1}\n')
    ch.tick()
    assert len(written) == 1  # just written: not due yet
    while not ch.due():
        assert time.monotonic() - t0 < 5, "never due"
        time.sleep(0.02)
    assert time.monotonic() - t0 >= 0.2
    ch.tick()
    assert [json.loads(x)["reason"] for x in written] == ["start", "interval"]
    while time.monotonic() - t0 < 0.5:
        time.sleep(0.05)
    ch.tick()  # time passed, but nothing new to seal
    assert len(written) == 2


def test_gzip_trace_is_chained_over_its_uncompressed_bytes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "t.jsonl.gz"
    record(p, make_cfg(tmp_path), 8)
    assert verify(capsys, str(p))[0] == 0
    data = gzip.decompress(p.read_bytes())
    (tmp_path / "cut.jsonl.gz").write_bytes(p.read_bytes()[:-30])  # power cut mid-file
    rc, out = verify(capsys, str(tmp_path / "cut.jsonl.gz"))
    assert rc == 1 and "the file is cut off after line" in out and data


# -- each kind of tampering, named at its line ---------------------------------------------------
@pytest.fixture
def trace(tmp_path: Path) -> Path:
    p = tmp_path / "t.jsonl"
    record(p, make_cfg(tmp_path), 12)
    assert checkpoint_lines(p) == [2, 8, 14, 17]  # records: lines 3-7, 9-13, 15-16
    return p


def test_one_changed_digit_names_the_lines_its_checkpoint_sealed(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "digit.jsonl"
    assert '"raw_ns": 7}' in trace.read_text().splitlines()[10]  # line 11
    rewrite(trace, bad, lambda ls: ls[:10] + [ls[10].replace('"raw_ns": 7', '"raw_ns": 8')]
            + ls[11:])
    rc, out = verify(capsys, str(bad))
    assert rc == 1
    assert out.startswith(f"{bad}:9: chain breaks: lines 9-13 changed after checkpoint 3 "
                          "(line 14) sealed them (SHA-256 ")


def test_a_deleted_line_is_counted_and_placed(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "deleted.jsonl"
    rewrite(trace, bad, lambda ls: ls[:10] + ls[11:])  # line 11
    assert verify(capsys, str(bad)) == (1, f"{bad}:9: chain breaks: 1 line deleted from lines "
                                           "9-12 (checkpoint 3 (line 13) was written as line 14)")


def test_an_inserted_line_is_counted_and_placed(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "inserted.jsonl"
    rewrite(trace, bad, lambda ls: ls[:3] + ['{"type": "note", "rx_ns": 1, "text": "x"}\n']
            + ls[3:])
    assert verify(capsys, str(bad)) == (1, f"{bad}:3: chain breaks: 1 line inserted into lines "
                                           "3-8 (checkpoint 2 (line 9) was written as line 8)")


def test_a_truncated_tail_is_missing_its_final_checkpoint(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cut.jsonl"
    rewrite(trace, bad, lambda ls: ls[:10])
    assert verify(capsys, str(bad)) == (
        1, f"{bad}:9: missing tail: nothing seals lines 9-10 after the last checkpoint (2, "
           "line 8): the file's final checkpoint is missing")
    at_seal = tmp_path / "at-seal.jsonl"  # cut right after a checkpoint: not the final one
    rewrite(trace, at_seal, lambda ls: ls[:14])
    assert verify(capsys, str(at_seal)) == (
        1, f"{at_seal}:14: missing tail: the file ends at checkpoint 3 (line 14), which is not "
           "its final one: what followed was cut off (or the monitor did not stop cleanly)")


def reseal(src: Path, dst: Path, key: Ed25519PrivateKey, edit: object = None) -> None:
    """What an attacker with a key can do: rewrite the file (`edit`: line -> line) and make every
    checkpoint again, hashes and all, signed with `key`."""
    h = hashlib.sha256()
    out: list[bytes] = []
    nbytes = 0
    for n, line in enumerate(src.read_bytes().splitlines(keepends=True), 1):
        if line.startswith(PREFIX):
            d = json.loads(line)
            d.update(line=n, bytes=nbytes, sha256=h.hexdigest(),
                     key=public_text(key.public_key()))
            d.pop("sig")
            d["sig"] = __import__("base64").b64encode(
                key.sign(SIG_CONTEXT + json.dumps(d).encode())).decode()
            line = (json.dumps(d) + "\n").encode()
        elif edit is not None:
            line = edit(line)  # type: ignore[operator]
        out.append(line)
        h.update(line)
        nbytes += len(line)
    dst.write_bytes(b"".join(out))


def test_resealed_with_another_key_is_a_bad_signature_against_the_trusted_key(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = json.loads(trace.read_text().splitlines()[1])["key"]
    other = Ed25519PrivateKey.generate()
    bad = tmp_path / "resealed.jsonl"
    reseal(trace, bad, other, lambda b: b.replace(b'"raw_ns": 7', b'"raw_ns": 8'))
    rc, out = verify(capsys, "--pubkey", own, str(bad))
    assert (rc, out) == (1, f"{bad}:2: bad signature: checkpoint 1 (line 2) is signed by "
                            f"{public_text(other.public_key())} (SHA256:"
                            + out.split("(SHA256:", 1)[1].split(")")[0]
                            + f"), not by the trusted key {own} (SHA256:"
                            + out.split("(SHA256:")[2].split(")")[0] + ")")
    # Without --pubkey the forgery is consistent: verify names the key it was checked with.
    rc, out = verify(capsys, str(bad))
    assert rc == 0 and public_text(other.public_key()) in out and "the key the file names" in out
    # The public key from a file, as `key show > FILE` leaves it.
    (tmp_path / "pub").write_text(own + "\n")
    assert verify(capsys, "--pubkey", str(tmp_path / "pub"), str(trace))[0] == 0


def test_a_signature_of_another_key_under_the_own_key_name_does_not_verify(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = json.loads(trace.read_text().splitlines()[1])["key"]
    bad = tmp_path / "forged.jsonl"
    reseal(trace, bad, Ed25519PrivateKey.generate())
    text = bad.read_text()
    lines = [json.loads(x) for x in text.splitlines()]
    text = text.replace(lines[1]["key"], own)  # claims the own key, signed with another
    bad.write_text(text)
    rc, out = verify(capsys, str(bad))
    assert (rc, out.split(" (SHA256")[0]) == (
        1, f"{bad}:2: bad signature: checkpoint 1 (line 2) is not what {own}")


def test_a_changed_checkpoint_field_is_a_bad_signature(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "seq.jsonl"
    rewrite(trace, bad, lambda ls: ls[:7] + [ls[7].replace('"seq": 2', '"seq": 7')] + ls[8:])
    rc, out = verify(capsys, str(bad))
    assert rc == 1 and out.startswith(f"{bad}:8: bad signature: checkpoint 7 (line 8) is not what")


def test_files_of_one_stream_must_continue_each_other(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    record(a, cfg, 3)
    record(b, cfg, 3)
    first_b = json.loads(b.read_text().splitlines()[1])
    assert first_b["seq"] == 3 and first_b["prev"] == hashlib.sha256(a.read_bytes()).hexdigest()
    rc, out = verify(capsys, str(a), str(b))
    assert rc == 0 and out.count(": intact (") == 2
    rc, out = verify(capsys, str(b), str(a))
    assert rc == 1 and f"{a}:2: starts its stream's chain (no previous file), so it cannot " \
                       f"follow {b}" in out
    c = tmp_path / "c.jsonl"
    record(c, cfg, 3)
    rc, out = verify(capsys, str(a), str(c))  # b left out: c does not follow a
    assert rc == 1 and f"{c}:2: does not continue {a}: its first checkpoint names SHA-256 " in out


def test_without_a_key_checkpoints_are_unsigned_and_verify_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "blocker").write_text("")  # the key's directory cannot be made
    cfg = make_cfg(tmp_path, key_file=str(tmp_path / "blocker" / "evidence.key"))
    record(tmp_path / "t.jsonl", cfg, 3)
    assert "no signing key" in caplog.text and "written unsigned" in caplog.text
    rc, out = verify(capsys, str(tmp_path / "t.jsonl"))
    assert (rc, out) == (1, f"{tmp_path / 't.jsonl'}:2: checkpoint 1 (line 2) is not signed (the "
                            "monitor had no signing key)")


# -- the key ---------------------------------------------------------------------------------------
def test_the_key_is_made_0600_and_key_show_prints_what_the_checkpoints_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "tw.toml"
    cfg_file.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n')
    assert cli.main(["key", "show", "-c", str(cfg_file)]) == 1  # never made by key show
    assert "no signing key at" in capsys.readouterr().err
    record(tmp_path / "t.jsonl", make_cfg(tmp_path), 2)
    key = tmp_path / "state" / "evidence.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert cli.main(["key", "show", "-c", str(cfg_file)]) == 0
    shown = capsys.readouterr().out.strip()
    assert shown == json.loads((tmp_path / "t.jsonl").read_text().splitlines()[1])["key"]
    assert verify(capsys, "--pubkey", shown, str(tmp_path / "t.jsonl"))[0] == 0


def test_a_key_readable_by_others_is_refused_with_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    record(tmp_path / "t.jsonl", cfg, 1)
    key = cfg.key_path
    key.chmod(0o640)
    fresh = Evidence(cfg.state_dir)  # a new process's view: the key is loaded again
    with pytest.raises(SecretFileError, match=f"mode 0640.*chmod 600 {key}"):
        fresh.signer.load()
    # the monitor refuses to start
    cfg2 = parse({"monitor": {"state_dir": str(tmp_path / "state2")}, "http": {"listen": ""},
                  "evidence": {"key_file": str(key)}})
    with pytest.raises(SecretFileError, match="chmod 600"):
        asyncio.run(Runner(cfg2, duration_s=0.1, sinks=[]).run())
    cfg_file = tmp_path / "tw.toml"
    cfg_file.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n')
    assert cli.main(["key", "show", "-c", str(cfg_file)]) == 1
    assert f"chmod 600 {key}" in capsys.readouterr().err


# -- the event log ---------------------------------------------------------------------------------
ALERT = Event("alert", T, "source.stale", ("ntp-a",), "a1", "warning", "quiet", {})
CLEAR = Event("clear", T + 5 * S, "source.stale", ("ntp-a",), "a1")
ALERT2 = Event("alert", T + 9 * S, "source.stale", ("ntp-a",), "a2", "warning", "again", {})


def test_the_event_log_chain_runs_on_across_restarts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    log_path = tmp_path / "state" / "events.jsonl"
    for ev in (ALERT, CLEAR):  # two runs, each stopped cleanly
        sink = EventLogSink(cfg)
        sink.handle([ev])
        sink.close()
    reasons = [json.loads(x).get("reason") for x in log_path.read_text().splitlines()]
    assert reasons == ["start", None, "end", "start", None, "end"]
    assert [json.loads(x)["seq"] for x in log_path.read_text().splitlines() if "reason" in x] \
        == [1, 2, 3, 4]
    assert verify(capsys, str(log_path))[0] == 0


def test_an_unclean_stop_is_sealed_at_the_next_start_and_noted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    log_path = tmp_path / "state" / "events.jsonl"
    EventLogSink(cfg).handle([ALERT])  # killed: never closed, the alert unsealed
    rc, out = verify(capsys, str(log_path))
    assert (rc, out) == (1, f"{log_path}:2: missing tail: nothing seals line 2 after the last "
                            "checkpoint (1, line 1): the file's final checkpoint is missing")
    sink = EventLogSink(cfg)
    sink.handle([CLEAR])
    sink.close()
    rc, out = verify(capsys, str(log_path))
    assert rc == 0
    assert f"{log_path}:3: note: the monitor restarted after an unclean stop; this restart " \
           "sealed line 2" in out


def test_a_log_cut_before_a_restart_shows_the_checkpoints_it_lost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    log_path = tmp_path / "state" / "events.jsonl"
    sink = EventLogSink(cfg)
    sink.handle([ALERT])
    sink.close()
    sink = EventLogSink(cfg)
    sink.handle([CLEAR])
    sink.close()
    # cut back to the first run's end (the second run's checkpoints 3 and 4 are gone) ...
    log_path.write_text("".join(log_path.read_text().splitlines(keepends=True)[:3]))
    sink = EventLogSink(cfg)  # ... and the monitor starts again: seq runs on from 4
    sink.handle([ALERT2])
    sink.close()
    rc, out = verify(capsys, str(log_path))
    assert (rc, out) == (1, f"{log_path}:4: checkpoints 3-4 are missing before checkpoint 5 "
                            "(line 4): lines were cut out with them")


def test_a_rotated_log_is_sealed_and_the_new_file_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_cfg(tmp_path)
    log_path = tmp_path / "state" / "events.jsonl"
    old = tmp_path / "state" / "events.jsonl.1"
    sink = EventLogSink(cfg)
    sink.handle([ALERT])
    log_path.rename(old)  # logrotate's default (create): the file moves away
    sink.handle([CLEAR])
    sink.close()
    assert json.loads(old.read_text().splitlines()[-1])["reason"] == "end"
    first = json.loads(log_path.read_text().splitlines()[0])
    assert first["prev"] == hashlib.sha256(old.read_bytes()).hexdigest()
    rc, out = verify(capsys, str(old), str(log_path))
    assert rc == 0 and out.count(": intact (") == 2


# -- the store and what leaves the box -----------------------------------------------------------
def test_the_stores_events_carry_the_event_log_chain(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    sinks = build_sinks(cfg)
    fan_out(sinks, [ALERT, Sample("ntp-a", T, 0.0, 1e-3)])
    fan_out(sinks, [CLEAR, ALERT2])
    close_all(sinks)
    digests = {}
    h = hashlib.sha256()
    for line in (tmp_path / "state" / "events.jsonl").read_bytes().splitlines(keepends=True):
        h.update(line)
        d = json.loads(line)
        if d["type"] != "checkpoint":
            digests[(d["id"], d["type"])] = h.hexdigest()
    db = sqlite3.connect(cfg.store_path)
    rows = {(i, t): c for i, t, c in db.execute("SELECT id, type, chain_sha256 FROM events")}
    assert rows == digests and len(rows) == 3


def test_consensus_lines_carry_the_latest_checkpoints(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    ev = Evidence.for_config(cfg)
    enc = Encoder("lab", {}, anchors=ev.anchors)
    snap = Snapshot(T, (), True, 1, 1, 0.0, 1e-6)
    assert "chain_" not in enc.lines([snap])[0]  # nothing sealed yet
    record(tmp_path / "t.jsonl", cfg, 3)
    head = ev.anchors()["trace"]
    line = enc.lines([snap])[0]
    assert f'chain_trace_seq={float(head.seq)!r}' in line
    assert f'chain_trace_sha256="{head.sha256}"' in line
    assert json.loads((tmp_path / "t.jsonl").read_text().splitlines()[-1])["sha256"] == head.sha256


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_webhook_format_carries_the_chain(fmt: str) -> None:
    chain = {"events": {"seq": 12, "sha256": "9f" * 32}}
    ctx = FormatContext("lab", 1_764_161_000, "routing-key", "http://lab:9470/status.json", chain)
    msg = FORMATS[fmt].render([Notice(ALERT)], ctx)
    body = msg.body.decode()
    assert "9f" * 32 in body and "12" in body, body
    plain = FORMATS[fmt].render([Notice(ALERT)], FormatContext("lab", 1_764_161_000, "k"))
    assert "9f" * 32 not in plain.body.decode()


def test_head_file_keeps_the_anchor_across_processes(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    record(tmp_path / "t.jsonl", cfg, 2)
    again = Evidence(cfg.state_dir)  # what a restarted monitor reads
    assert again.anchors() == Evidence.for_config(cfg).anchors()
    assert isinstance(again.anchors()["trace"], Head)


def test_replay_warns_about_a_broken_chain_and_replays_all_the_same(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cut.jsonl"
    rewrite(trace, bad, lambda ls: ls[:10])
    assert cli.main(["replay", str(bad), "--events", str(tmp_path / "ev.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"replay: WARNING: {bad}:9: missing tail" in err and "replaying it all the same" in err
    assert "replay " + str(bad) + ": 7 observations" in err
    assert cli.main(["replay", str(trace), "--events", str(tmp_path / "ev.jsonl")]) == 0
    assert "; evidence chain intact (checkpoints 1-4)" in capsys.readouterr().err


def test_scan_is_the_state_a_writer_continues(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    record(tmp_path / "t.jsonl", cfg, 4)
    sc = scan(tmp_path / "t.jsonl")
    judge_end(sc)
    assert sc.intact and sc.lines == 7 and sc.checkpoints == 2  # start and end
    assert sc.h.hexdigest() == hashlib.sha256((tmp_path / "t.jsonl").read_bytes()).hexdigest()
    assert sc.end == sc.h.hexdigest() and sc.last_seq == 2
    assert [o.type for o in TraceReader(tmp_path / "t.jsonl")] == ["tick"] * 4


def test_a_file_its_running_monitor_still_writes_has_an_open_end_not_a_missing_tail(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from timewatch.statedir import StateLock

    cfg = make_cfg(tmp_path)
    log_path = tmp_path / "state" / "events.jsonl"
    with StateLock(cfg.state_dir):  # the monitor runs: its lock is held
        sink = EventLogSink(cfg)
        sink.handle([ALERT])  # not sealed yet: within checkpoint_s of the start
        rc, out = verify(capsys, str(log_path))
        assert rc == 0 and f"{log_path}:2: note: still being written by timewatch PID " \
                           f"{os.getpid()}" in out
        sink.close()
    EventLogSink(cfg).handle([CLEAR])  # a monitor that died: no lock, the tail is missing
    rc, out = verify(capsys, str(log_path))
    assert rc == 1 and "missing tail" in out
