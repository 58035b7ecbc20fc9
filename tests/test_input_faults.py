"""Faults in the monitor's inputs (issue 18), each reproduced against a real `timewatch run` or
`timewatch replay`: a clock taken from outside, bad lines, crafted traces, reply floods. Each
test also checks that what was accepted before the fault is all there after it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.livemon import FakeGpsd, Monitor, ntp_servers, ntp_sources_toml, pps_report

ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000_000
DAY = 86400 * S


def _now_report() -> bytes:
    return pps_report(time.time_ns())


def _replay(trace: Path, cfg: Path | None, events: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "timewatch.cli", "replay", str(trace), "--events", str(events)]
    if cfg is not None:
        cmd += ["-c", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _jsonl(p: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def _write_trace(p: Path, recs: list[dict[str, Any]]) -> None:
    p.write_text("".join(json.dumps(r, separators=(", ", ": ")) + "\n" for r in recs))


def _store_counts(state: Path) -> dict[str, int]:
    db = sqlite3.connect(state / "timewatch.db")
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("samples", "snapshots", "events")}
    finally:
        db.close()


# -- 1. a gpsd PPS report with clock_sec one day ahead ------------------------------------------

GOOD_BEFORE, GOOD_AFTER = 4, 4


@pytest.fixture(scope="module")
def gpsd_day_ahead(tmp_path_factory: pytest.TempPathFactory) -> Monitor:
    """A live run: three NTP servers and a gpsd whose 5th PPS report says the edge was one day
    ahead of the host clock; the other reports are honest."""
    tmp = tmp_path_factory.mktemp("gpsd_day_ahead")

    def script(n: int) -> Iterator[Any]:
        for _ in range(GOOD_BEFORE):
            yield _now_report
        yield lambda: pps_report(time.time_ns() + DAY)
        for _ in range(GOOD_AFTER):
            yield _now_report

    async def go() -> Monitor:
        servers = await ntp_servers()
        gpsd = await FakeGpsd(script).start()
        mon = Monitor(tmp, ntp_sources_toml(servers)
                      + f'[[sources]]\nid = "g"\nkind = "gpsd"\nport = {gpsd.port}\n')
        try:
            await mon.start()
            await asyncio.wait_for(gpsd.done.wait(), 60)
            # Everything the fake sent after the fault reached the trace, and NTP polled on.
            last = json.loads(gpsd.sent[-1])["real_sec"]
            await mon.wait_for("the last PPS report in the trace", lambda: any(
                r.get("type") == "pps" and r.get("seq") == last for r in mon.records()))
            t_end = time.time_ns()
            await mon.wait_for("two more NTP exchanges per server", lambda: all(
                sum(r.get("type") == "ntp" and r.get("src") == f"n{i}" and r["rx_ns"] > t_end
                    for r in mon.records()) >= 2 for i in range(3)))
            assert await mon.stop() == 0, mon.log()
        finally:
            gpsd.close()
            for s in servers:
                s.close()
        mon.sent = gpsd.sent  # type: ignore[attr-defined]
        return mon

    return asyncio.run(go())


def test_gpsd_clock_a_day_ahead_is_refused_at_the_reader_and_blinds_nothing(
        gpsd_day_ahead: Monitor) -> None:
    mon = gpsd_day_ahead
    recs = mon.records()
    end_ns = max(r["rx_ns"] for r in recs[1:] if r["type"] == "tick")
    sent = [json.loads(x) for x in mon.sent]  # type: ignore[attr-defined]
    bad = sent[GOOD_BEFORE]
    # Nothing ahead of the host clock reached the trace (and so the engine).
    assert all(r["rx_ns"] <= end_ns + 2 * S for r in recs[1:]), \
        [r for r in recs[1:] if r["rx_ns"] > end_ns + 2 * S]
    # Every honest report, before and after the fault, is there.
    seqs = [r["seq"] for r in recs if r["type"] == "pps"]
    honest = [m["real_sec"] for m in sent if m is not bad]
    assert seqs == honest
    # No NTP source went stale and the consensus held: the engine's time never jumped.
    events = mon.events()
    assert not [e for e in events if e["code"] in ("consensus.lost",)
                or (e["code"] == "source.stale" and set(e["sources"]) & {"n0", "n1", "n2"})], events
    db = sqlite3.connect(mon.state / "timewatch.db")
    newest = db.execute("SELECT MAX(t_ns) FROM snapshots").fetchone()[0]
    assert newest <= end_ns + 2 * S
    assert "PPS edge at clock" in mon.log() and "from the host clock: refused" in mon.log(), \
        mon.log()
    # The NTP samples from before the fault are all still stored after it.
    t_bad = bad["clock_sec"] * S - DAY
    assert db.execute("SELECT COUNT(*) FROM samples WHERE t_ns < ?", (t_bad,)).fetchone()[0] >= 3


def _crafted(recs: list[dict[str, Any]], ahead_ns: int, ticks: bool) -> list[dict[str, Any]]:
    """The live trace with an NTP record (a copy of one of n0's) `ahead_ns` ahead inserted half
    way (ticks=True) or at the end with every tick taken out (ticks=False)."""
    body = [r for r in recs[1:] if ticks or r["type"] != "tick"]
    ntp = next(r for r in body if r["type"] == "ntp" and r["src"] == "n0" and "t2_ns" in r)
    fake = {**ntp, **{k: ntp[k] + ahead_ns for k in ("rx_ns", "t1_ns", "t2_ns", "t3_ns",
                                                     "t4_ns", "raw_ns")}}
    at = len(body) // 2 if ticks else len(body)
    return [recs[0], *body[:at], fake, *body[at:]]


def _replay_into_store(tmp: Path, name: str, recs: list[dict[str, Any]]
                       ) -> tuple[subprocess.CompletedProcess[str], Path, list[dict[str, Any]]]:
    d = tmp / name
    d.mkdir()
    trace = d / "t.jsonl"
    _write_trace(trace, recs)
    cfg = d / "replay.toml"
    cfg.write_text(f'[monitor]\nhost = "t"\nstate_dir = "{d / "state"}"\n\n'
                   '[store]\nretention_days = 30\n\n[http]\nlisten = ""\n')
    r = _replay(trace, cfg, d / "events.jsonl", d)
    assert r.returncode == 0, r.stderr
    return r, d / "state", _jsonl(d / "events.jsonl")


def test_replay_c_of_a_crafted_trace_a_day_ahead_refuses_the_record(
        gpsd_day_ahead: Monitor, tmp_path: Path) -> None:
    recs = gpsd_day_ahead.records()
    _, st0, ev0 = _replay_into_store(tmp_path, "clean", recs)
    r, st1, ev1 = _replay_into_store(tmp_path, "crafted", _crafted(recs, DAY, ticks=True))
    assert "ntp record of n0" in r.stderr and "ahead of the host clock" in r.stderr, r.stderr
    assert ev1 == ev0  # the same story: the record changed nothing
    assert _store_counts(st1) == _store_counts(st0)


def test_replay_c_400_days_ahead_never_deletes_the_store(gpsd_day_ahead: Monitor,
                                                         tmp_path: Path) -> None:
    """Without ticks (no host clock in the trace) engine time follows the record 400 days ahead;
    retention still counts from the host clock, so the store keeps everything."""
    recs = gpsd_day_ahead.records()
    _, st0, _ = _replay_into_store(tmp_path, "clean", [r for r in recs if r["type"] != "tick"])
    _, st1, _ = _replay_into_store(tmp_path, "crafted", _crafted(recs, 400 * DAY, ticks=False))
    before, after = _store_counts(st0), _store_counts(st1)
    assert before["samples"] > 10
    assert all(after[t] >= before[t] for t in before), (before, after)
    db = sqlite3.connect(st1 / "timewatch.db")
    t_fault = max(r["rx_ns"] for r in recs[1:])
    assert db.execute("SELECT COUNT(*) FROM samples WHERE t_ns <= ?",
                      (t_fault,)).fetchone()[0] == before["samples"]


# -- 2. one bad line from gpsd killed its reader for good ---------------------------------------

BAD_GPSD_LINES = {
    "OverflowError (clock_sec Infinity)": lambda: pps_report(time.time_ns()).replace(
        b'"clock_sec": ', b'"clock_sec": Infinity, "x": '),
    "RecursionError (1,500 nested [)": lambda: b"{\"class\": \"PPS\", \"x\": " + b"[" * 1500
    + b"\n",
    "NaN clock_nsec": lambda: pps_report(time.time_ns()).replace(b'"clock_nsec": ',
                                                                 b'"clock_nsec": NaN, "y": '),
    "float clock_sec": lambda: pps_report(time.time_ns()).replace(b'"clock_sec": ',
                                                                  b'"clock_sec": 1e300, "z": '),
    "line longer than gpsd's longest": lambda: b'{"class": "SKY", "x": "' + b"a" * 70000
    + b'"}\n',
}


def test_gpsd_bad_lines_are_skipped_and_the_reader_goes_on(tmp_path: Path) -> None:
    """Each bad line between honest PPS reports: every honest report before and after all of
    them reaches the trace on the same connection; one warning per kind; nothing crashed."""
    def script(n: int) -> Iterator[Any]:
        yield _now_report
        for bad in BAD_GPSD_LINES.values():
            yield bad
            yield _now_report
        yield from [b"{\"class\": \"PPS\", \"x\": " + b"[" * 1500 + b"\n", _now_report]

    async def go() -> tuple[Monitor, FakeGpsd]:
        gpsd = await FakeGpsd(script, interval_s=0.3).start()
        mon = Monitor(tmp_path, f'[[sources]]\nid = "g"\nkind = "gpsd"\nport = {gpsd.port}\n')
        try:
            await mon.start()
            await asyncio.wait_for(gpsd.done.wait(), 60)
            last = json.loads(gpsd.sent[-1])["real_sec"]
            await mon.wait_for("the last honest report in the trace", lambda: any(
                r.get("type") == "pps" and r.get("seq") == last for r in mon.records()))
            assert await mon.stop() == 0, mon.log()
        finally:
            gpsd.close()
        return mon, gpsd

    mon, gpsd = asyncio.run(go())
    log = mon.log()
    assert "crashed" not in log and "Traceback" not in log, log
    honest = [json.loads(x)["real_sec"] for x in gpsd.sent[::2]]
    assert [r["seq"] for r in mon.records() if r["type"] == "pps"] == honest
    assert gpsd.connections == 1  # no reconnect needed: the reader skipped the lines
    # One warning per kind: json (Infinity, NaN, nesting), pps fields (1e300), a line too long.
    warnings = [ln for ln in log.splitlines() if "bad line from gpsd" in ln]
    assert len(warnings) == 3, warnings
    assert any("Infinity" in w for w in warnings) and any("clock_sec" in w for w in warnings)
    assert any("longer than" in w for w in warnings)


# -- 8. a trace that should be refused: deep nesting, out-of-range numbers, a raw_ns outlier ----

def _strict(line: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"invalid JSON constant {name}")
    return json.loads(line, parse_constant=refuse)


@pytest.fixture(scope="module")
def gnss_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[Any]]:
    """A simulated GNSS + PPS + NTP trace (5 min), its lines, and its clean replay's events
    and snapshots."""
    d = tmp_path_factory.mktemp("gnss_trace")
    trace = d / "clean.jsonl"
    r = subprocess.run([sys.executable, "-m", "timewatch.cli", "simulate", "--scenario",
                        "gnss_clean", "--duration", "300", "-o", str(trace)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    lines = trace.read_text().splitlines(keepends=True)
    out, _ = _replay_snapshots(trace, d)
    return trace, lines, out


def _replay_snapshots(trace: Path, d: Path) -> tuple[list[Any], str]:
    events = d / (trace.stem + ".out")
    r = subprocess.run([sys.executable, "-m", "timewatch.cli", "replay", str(trace), "--events",
                        str(events), "--snapshots"], capture_output=True, text=True, timeout=120,
                       cwd=d, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return [_strict(x) for x in events.read_text().splitlines()], r.stderr


def _insert(lines: list[str], at: float, extra: list[str]) -> tuple[list[str], list[int]]:
    """`extra` lines inserted `at` a fraction of the trace; their 1-based line numbers."""
    i = int(len(lines) * at)
    return lines[:i] + extra + lines[i:], list(range(i + 1, i + 1 + len(extra)))


def _line_of(lines: list[str], kind: str, after: float) -> dict[str, Any]:
    return next(json.loads(x) for x in lines[int(len(lines) * after):]
                if x.startswith(f'{{"type": "{kind}"'))


def test_replay_skips_a_deeply_nested_line_with_its_number(
        gnss_trace: tuple[Path, list[str], list[Any]], tmp_path: Path) -> None:
    _, lines, clean = gnss_trace
    crafted, nums = _insert(lines, 0.5, ['{"type": "pps", "src": "pps0", "x": ' + "[" * 1500
                                         + "\n", "[" * 1500 + "\n"])
    p = tmp_path / "nested.jsonl"
    p.write_text("".join(crafted))
    out, err = _replay_snapshots(p, tmp_path)
    for n in nums:
        assert f"nested.jsonl:{n}: invalid JSON (nested too deeply); line skipped" in err, err
    assert "2 bad lines" in err
    assert out == clean  # every record around them taken as before


def test_replay_refuses_out_of_range_and_non_finite_numbers(
        gnss_trace: tuple[Path, list[str], list[Any]], tmp_path: Path) -> None:
    """Each line is refused naming its line and field; the rest is replayed as before (no
    bogus host step from a raw_ns of 1.6e26, no crash on NaN) and every snapshot is JSON."""
    _, lines, clean = gnss_trace
    tick = _line_of(lines, "tick", 0.5)
    ntp = _line_of(lines, "ntp", 0.5)
    pps = _line_of(lines, "pps", 0.5)

    def dump(d: dict[str, Any], **kw: Any) -> str:
        return json.dumps({**d, **kw})

    bad = {
        "'raw_ns' is out of range": dump(tick, raw_ns=160_000_000_000_000_000_000_000_000),
        "non-finite number NaN": dump(ntp).replace(f'"root_delay": {json.dumps(ntp["root_delay"])}',
                                                   '"root_delay": NaN'),
        "non-finite number Infinity": dump(ntp).replace(
            f'"root_dispersion": {json.dumps(ntp["root_dispersion"])}',
            '"root_dispersion": Infinity'),
        "'root_delay' is out of range": dump(ntp).replace(
            f'"root_delay": {json.dumps(ntp["root_delay"])}', '"root_delay": 1e400'),
        "'rx_ns' is out of range": dump(pps, rx_ns=-1),
        "'t2_ns' is out of range": dump(ntp, t2_ns=2**64),
        "'stratum' is out of range": dump(ntp, stratum=256),
    }
    crafted, nums = _insert(lines, 0.5, [x + "\n" for x in bad.values()])
    p = tmp_path / "numbers.jsonl"
    p.write_text("".join(crafted))
    out, err = _replay_snapshots(p, tmp_path)
    for n, what in zip(nums, bad, strict=True):
        said = [ln for ln in err.splitlines() if f"numbers.jsonl:{n}: " in ln]
        assert len(said) == 1 and what in said[0] and said[0].endswith("line skipped"), \
            (n, what, err)
    assert f"{len(bad)} bad lines" in err
    assert out == clean


def test_one_tick_with_raw_ns_10000_s_off_is_no_host_step(
        gnss_trace: tuple[Path, list[str], list[Any]], tmp_path: Path) -> None:
    """Before: consensus.host_step of -9999 s and honest sources named critical falsetickers.
    The step is not confirmed by the record after it: the tick is refused, nothing moves."""
    _, lines, clean = gnss_trace
    i = next(k for k in range(len(lines) // 2, len(lines)) if lines[k].startswith('{"type": "tick"'))
    d = json.loads(lines[i])
    crafted = [*lines[:i], json.dumps({**d, "raw_ns": d["raw_ns"] + 10_000 * S}) + "\n",
               *lines[i + 1:]]
    p = tmp_path / "tick.jsonl"
    p.write_text("".join(crafted))
    out, err = _replay_snapshots(p, tmp_path)
    assert "tick record of tick at rx_ns" in err and "jumped by -10000.000 s and the next " \
        "record did not confirm it" in err, err
    assert [o for o in out if o["type"] == "alert"] == []
    assert out == clean


# -- 9. a server answering each request with 4,000 garbage and wrong-origin datagrams -----------

def test_ntp_reply_flood_is_drained_and_logged_as_one_summary(tmp_path: Path) -> None:
    """Before: one INFO line per datagram (1.1 MB in 30 s) and the genuine reply dropped by a
    full receive buffer in most exchanges. Now every exchange gets its reply, the garbage is
    counted and summarised in one line per minute, and the honest servers are untouched."""
    from tests.livemon import NTP_HOSTS, FloodingNtpServer

    exchanges = 6

    async def go() -> Monitor:
        servers = await ntp_servers(NTP_HOSTS[:2])
        flooder = await FloodingNtpServer(NTP_HOSTS[2], 0).start()
        mon = Monitor(tmp_path, ntp_sources_toml([*servers, flooder]))
        try:
            await mon.start()
            await mon.wait_for(f"{exchanges} exchanges with the flooding server", lambda: len(
                {r["xmt_hex"] for r in mon.records()[1:] if r["type"] == "ntp"
                 and r["src"] == "n2"}) > exchanges, timeout_s=60)
            assert await mon.stop() == 0, mon.log()
        finally:
            flooder.close()
            for s in servers:
                s.close()
        return mon

    mon = asyncio.run(go())
    ntp = [r for r in mon.records()[1:] if r["type"] == "ntp"]
    n2 = [r for r in ntp if r["src"] == "n2"]
    asked = sorted({r["xmt_hex"] for r in n2}, key=lambda x: min(
        r["t1_ns"] for r in n2 if r["xmt_hex"] == x))[:exchanges]  # the last may be cut short
    answered = {r["xmt_hex"] for r in n2 if r.get("error") is None and r.get("org_hex")
                == r["xmt_hex"]}
    assert set(asked) <= answered, [(x, [r.get("error") for r in n2 if r["xmt_hex"] == x])
                                    for x in asked if x not in answered]
    # At most 8 datagrams of an exchange recorded; the rest only counted.
    assert max(sum(r["xmt_hex"] == x for r in n2) for x in asked) <= 9
    log = mon.log()
    garbage_lines = [ln for ln in log.splitlines() if "n2:" in ln and "ignored" in ln]
    assert len(garbage_lines) == 1 and "with a wrong origin" in garbage_lines[0], log[-3000:]
    assert len(log) < 20_000, f"{len(log)} bytes of log"
    assert not [e for e in mon.events() if e["code"] in ("source.stale", "consensus.lost")]
    for sid in ("n0", "n1"):
        assert all(r.get("error") is None for r in ntp if r["src"] == sid)


# -- 13 (part). duplicate source ids in a trace header ------------------------------------------

def test_replay_refuses_a_header_with_a_source_id_twice(
        gnss_trace: tuple[Path, list[str], list[Any]], tmp_path: Path) -> None:
    """Before: the last of the two silently won (here: ntp-a would have voted in op-b)."""
    _, lines, _ = gnss_trace
    assert '"ntp-a": {"kind": "ntp", "group": "op-a"' in lines[0]
    dup = lines[0].replace('"sources": {', '"sources": {"ntp-a": {"kind": "ntp", "group": '
                                          '"op-b"}, ', 1)
    p = tmp_path / "dup.jsonl"
    p.write_text(dup + "".join(lines[1:]))
    r = subprocess.run([sys.executable, "-m", "timewatch.cli", "replay", str(p)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stderr
    assert f"{p}:1: not a timewatch trace header: 'ntp-a' is given twice" in r.stderr, r.stderr
