"""Issue 15 "Must show": the monitor with `nts` sources against real chronyd NTS servers on
loopback (tests/integration/nts_servers.py), end to end through the runner, the engine and the
trace.

- Four NTS servers, one lying by +2.5 s (libfaketime): the liar is named, every exchange is
  authenticated, and a chronyd client with `nts` on the same servers agrees (and authenticates
  with NTS too); no key or cookie is in the trace or the log.
- A UDP proxy between timewatch and a server (chronyd's `ntsntpserver` names the proxy in its KE
  answer): a forged copy of each reply with one byte flipped -> nts.auth_failed, the forgery
  never used and the genuine reply after it used; replies stripped of their extension fields ->
  nts.downgrade, never used; replies dropped -> source.stale, not a falseticker, new keys once
  the cookies are gone.
- Wrong CA, expired certificate, wrong name, a server without NTS-KE, a TLS server without the
  ALPN `ntske/1`: each nts.ke_failed naming its cause while the other sources go on; `doctor`
  says the same and how to fix it.
- The server restarted with new keys: timewatch gets an NTS NAK, establishes new keys and goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_binary
from tests.integration.conftest import ChronyProc, _start
from tests.integration.nts_servers import (
    NTS_KE_PORT,
    NtsServer,
    UdpProxy,
    make_cert,
    nts_servers,  # noqa: F401 - fixture
)
from tests.sources.test_nts_ke import TlsServer, drain, server_ctx
from timewatch import doctor
from timewatch.config import parse
from timewatch.records import Event, Output, Sample, Snapshot
from timewatch.runner import Runner

pytestmark = pytest.mark.integration

POLL_S = 1.0  # the config minimum: every test stays well under a minute
# A reply the server's clock stamped on loopback: honest offsets stay far below this.
OFFSET_TOLERANCE_S = 0.005
# Addresses of the proxies that chronyd's KE answers name (away from the servers' .111..).
PROXY_HOSTS = ("127.0.0.150", "127.0.0.151", "127.0.0.152")
# NTP header byte 44: the first byte of the transmit timestamp's fraction; its top bit is 0.5 s,
# which moves the offset ((t2 - t1) + (t3 - t4)) / 2 by a quarter second.
T3_FRACTION_AT = 44
FORGERY_SHIFT_S = 0.25


class Collect:
    """A sink keeping every output (samples, events, snapshots), for the assertions."""

    name = "collect"

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def handle(self, outputs: list[Output]) -> None:
        self.outputs.extend(outputs)

    def close(self) -> None:
        pass

    def samples(self, src: str) -> list[Sample]:
        return [o for o in self.outputs if isinstance(o, Sample) and o.src == src]

    def snapshots(self) -> list[Snapshot]:
        return [o for o in self.outputs if isinstance(o, Snapshot)]


def source(sid: str, srv: NtsServer, **kw: object) -> dict[str, object]:
    d: dict[str, object] = {"id": sid, "kind": "nts", "server": srv.host, "port": srv.ke_port,
                            "ca_file": str(srv.cert), "poll_s": POLL_S}
    d.update(kw)
    return d


def monitor(tmp_path: Path, sources: list[dict[str, object]], *, until: Callable[[Runner], bool],
            timeout_s: float, during: Callable[[Runner], Any] | None = None,
            auth_mode: str = "mix") -> tuple[Runner, Collect, list[dict[str, Any]]]:
    """Run the monitor until `until(runner)` holds (checked every 0.2 s) or timeout_s; `during`
    is awaited alongside (a coroutine function taking the runner). Returns the runner, what
    the sinks got and the trace's records."""
    cfg = parse({"monitor": {"host": "test", "state_dir": str(tmp_path / "state")},
                 "http": {"listen": ""}, "detect": {"snapshot_interval_s": 1.0},
                 "vote": {"auth_mode": auth_mode}, "sources": sources})
    collect = Collect()
    trace = tmp_path / "trace.jsonl"

    async def main() -> Runner:
        runner = Runner(cfg, sinks=[collect], record=trace)
        task = asyncio.create_task(runner.run())
        side = asyncio.create_task(during(runner)) if during else None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not task.done():
            if runner.engine is not None and until(runner):
                break
            await asyncio.sleep(0.2)
        runner.stop()
        await task
        if side is not None:
            await side
        return runner

    runner = asyncio.run(main())
    records = [json.loads(x) for x in trace.read_text().splitlines()]
    return runner, collect, records


def alerts(runner: Runner, code: str) -> list[Event]:
    return [e for e in runner.events if e.type == "alert" and e.code == code]


def accused(runner: Runner) -> set[str]:
    return {s for e in alerts(runner, "source.falseticker") for s in e.sources}


def of(records: list[dict[str, Any]], src: str, typ: str = "ntp") -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == typ and r.get("src") == src]


def counter(runner: Runner, sid: str, what: str) -> int:
    return int(getattr(runner.readers[sid], "counters", {}).get(what, 0))


# -- four servers, one liar, and a chronyd client with nts --------------------------------------

class NtsChronyClient(ChronyProc):
    def query(self, what: str) -> list[list[str]]:
        r = subprocess.run(["chronyc", "-h", str(self.dir / "c.sock"), "-n", "-c", what],
                           capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            raise RuntimeError(f"chronyc failed: {r.stderr.strip()}")
        return [line.split(",") for line in r.stdout.splitlines() if line]


def nts_chrony_client(d: Path, servers: list[NtsServer], timeout_s: int) -> NtsChronyClient:
    """A chronyd client (no clock control) with `nts` on the servers, trusting their certificates
    and nothing else."""
    need_binary("chronyc")
    d.mkdir(mode=0o750)
    d.chmod(0o750)  # chronyd refuses a command socket directory others can enter
    certs = d / "certs"
    certs.mkdir()
    for i, s in enumerate(servers):
        shutil.copy(s.cert, certs / f"server{i}.crt")
    lines = [f"server {s.host} port {s.port} nts ntsport {s.ke_port} iburst minpoll 0 maxpoll 0"
             for s in servers]
    lines += [f"ntstrustedcerts {certs}", "nosystemcert", f"ntsdumpdir {d}",
              f"bindcmdaddress {d}/c.sock", "cmdport 0", "port 0", f"pidfile {d}/chronyd.pid"]
    conf = d / "chronyd.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = _start("chronyd", conf, d, dict(os.environ), ["-t", str(timeout_s)])
    return NtsChronyClient("127.0.0.1", 0, proc, d)


def test_nts_liar_named_every_exchange_authenticated_chrony_agrees(nts_servers, tmp_path,  # noqa: F811
                                                                   caplog):
    caplog.set_level(logging.DEBUG)
    servers = nts_servers(4, liars={3: "+2.5s"})
    ids = [f"nts-{s.host.rsplit('.', 1)[1]}" for s in servers]
    liar, liar_host = ids[3], servers[3].host
    client = nts_chrony_client(tmp_path / "client", servers, 90)
    chrony: dict[str, list[str]] = {}

    def done(r: Runner) -> bool:
        rows = {}
        try:
            rows = {row[2]: row for row in client.query("sources")}
        except RuntimeError:
            pass  # not answering yet
        chrony.update(rows)
        return bool(accused(r)) and chrony.get(liar_host, ["", ""])[1] == "x" and all(
            counter(r, sid, "ok") >= 6 for sid in ids)

    try:
        runner, collect, records = monitor(
            tmp_path, [source(sid, s) for sid, s in zip(ids, servers, strict=True)],
            until=done, timeout_s=60)
        auth = {row[0]: row[1] for row in client.query("authdata")}
    finally:
        client.stop()
    assert accused(runner) == {liar}
    honest_flagged = {st.src for snap in collect.snapshots() for st in snap.sources
                      if st.verdict == "falseticker" and st.src != liar}
    assert honest_flagged == set()
    # chronyd, with NTS on the same servers, marks the same liar, and only it.
    assert {a for a, row in chrony.items() if row[1] == "x"} == {liar_host}, chrony
    assert auth == dict.fromkeys((s.host for s in servers), "NTS")
    # Every exchange authenticated, under a session the trace's KE record opened.
    sessions = {r["session"] for r in records if r["type"] == "nts_ke"}
    assert len(sessions) == 4
    for sid in ids:
        ex = of(records, sid)
        assert len(ex) >= 6 and all(r.get("auth") == "nts" and "error" not in r for r in ex)
        assert {r["ke_session"] for r in ex} <= sessions
        assert all(len(r["pkt_hex"]) == 96 for r in ex)  # the header: cookies stay out
    snap = collect.snapshots()[-1]
    assert {st.auth for st in snap.sources} == {"nts"}
    liar_offsets = [s.offset_s for s in collect.samples(liar)]
    assert liar_offsets and all(abs(o - 2.5) < 0.05 for o in liar_offsets)
    # No key and no cookie in the trace or the log.
    text = (tmp_path / "trace.jsonl").read_text() + caplog.text
    for sid in ids:
        sess = runner.readers[sid].session  # type: ignore[attr-defined]
        secrets = [sess._c2s, sess._s2c, *sess._cookies]
        assert secrets and not any(x.hex() in text or x.hex().upper() in text for x in secrets)


# -- a UDP proxy that forges, strips and drops ---------------------------------------------------

def forge_then_pass(reply: bytes) -> list[bytes]:
    """A copy with the transmit timestamp moved by half a second, then the genuine reply."""
    b = bytearray(reply)
    b[T3_FRACTION_AT] ^= 0x80
    return [bytes(b), reply]


def test_proxy_forged_stripped_and_dropped_replies(nts_servers, tmp_path):  # noqa: F811
    servers = nts_servers(6, ntp_servers={3: PROXY_HOSTS[0], 4: PROXY_HOSTS[1],
                                          5: PROXY_HOSTS[2]})
    honest = ["h1", "h2", "h3"]
    ids = honest + ["forged", "stripped", "dropped"]
    mutate: list[Callable[[bytes], bytes | list[bytes] | None]] = [
        forge_then_pass, lambda b: b[:48], lambda b: None]
    proxies = [UdpProxy((s.host, s.port), m, listen=(h, s.port))
               for s, m, h in zip(servers[3:], mutate, PROXY_HOSTS, strict=True)]

    def done(r: Runner) -> bool:
        return (counter(r, "dropped", "ke") >= 2 and counter(r, "forged", "ok") >= 8
                and bool(alerts(r, "nts.downgrade"))
                and {e.sources[0] for e in alerts(r, "source.stale")} >= {"stripped", "dropped"})

    try:
        runner, collect, records = monitor(
            tmp_path, [source(sid, s) for sid, s in zip(ids, servers, strict=True)],
            until=done, timeout_s=40)
    finally:
        for p in proxies:
            p.close()
    assert accused(runner) == set()
    # The forged copies: refused and alerted, never used; the genuine replies after them used.
    (a,) = alerts(runner, "nts.auth_failed")
    assert a.sources == ("forged",) and a.severity == "critical"
    assert a.evidence["auth_error"].startswith("authenticator failed")
    failed = [r for r in of(records, "forged") if r.get("error") == "nts_auth_failed"]
    used = [r for r in of(records, "forged") if r.get("auth") == "nts"]
    assert len(failed) >= 8 and len(used) >= 8
    # Each forgery is its genuine reply with the transmit timestamp half a second away.
    assert all(abs(abs(r["t3_ns"] - u["t3_ns"]) - 500_000_000) < 1_000
               for r, u in zip(failed, used, strict=False))
    # Used, a forgery would move the offset by 0.25 s; the proxy's own delays (a Python thread
    # on a loaded machine) stay far below that.
    offsets = [s.offset_s for s in collect.samples("forged")]
    assert len(offsets) == len(used) and all(abs(o) < FORGERY_SHIFT_S / 2 for o in offsets)
    # Stripped of its extension fields: a downgrade, never used, the source stale.
    (d,) = alerts(runner, "nts.downgrade")
    assert d.sources == ("stripped",) and d.severity == "critical"
    assert "no authenticator (downgrade)" in d.evidence["auth_error"]
    assert collect.samples("stripped") == [] and collect.samples("dropped") == []
    # Dropped: stale, not a falseticker, and new keys once the 8 cookies are spent.
    reasons = [r["reason"] for r in of(records, "dropped", "nts_ke")]
    assert reasons[0] == "first key establishment" and "cookies exhausted" in reasons[1:]
    assert {e.sources[0] for e in alerts(runner, "source.stale")} == {"stripped", "dropped"}
    assert not any(alerts(runner, c) for c in ("nts.ke_failed", "ntp.bogus"))
    snap = collect.snapshots()[-1]
    verdict = {st.src: st.verdict for st in snap.sources}
    assert verdict == {"h1": "truechimer", "h2": "truechimer", "h3": "truechimer",
                       "forged": "truechimer", "stripped": "stale", "dropped": "stale"}


# -- key establishments that fail -----------------------------------------------------------------

def test_key_establishment_failures_are_named_and_the_monitor_runs_on(
        nts_servers, chrony_servers, tmp_path):  # noqa: F811
    honest = nts_servers(3)
    d = tmp_path / "expired"
    d.mkdir()
    expired_host = f"127.0.0.{int(honest[-1].host.rsplit('.', 1)[1]) + 1}"
    (expired,) = nts_servers(1, certs={0: make_cert(d, [expired_host], expired=True)})
    assert expired.host == expired_host
    (plain,) = chrony_servers(1)  # NTP only: nothing listens on its NTS-KE port
    other_ca, _ = make_cert(tmp_path, ["ca.example"], stem="other-ca")
    (tmp_path / "tls").mkdir()
    no_alpn = TlsServer(server_ctx(tmp_path / "tls", alpn=["http/1.1"]), drain)  # TLS, no NTS
    srv = honest[0]
    bad = [
        source("wrong-ca", srv, ca_file=str(other_ca)),
        source("wrong-name", srv, server_name="time.example.net"),
        source("expired", expired),
        {"id": "no-nts", "kind": "nts", "server": plain.host, "port": NTS_KE_PORT,
         "poll_s": POLL_S},
        {"id": "no-alpn", "kind": "nts", "server": "127.0.0.1", "port": no_alpn.port,
         "ca_file": str(tmp_path / "tls" / "server.crt"), "poll_s": POLL_S},
    ]
    want = {"wrong-ca": "untrusted", "wrong-name": "name", "expired": "expired",
            "no-nts": "connect", "no-alpn": "alpn"}
    ok = ["ok1", "ok2", "ok3"]

    def done(r: Runner) -> bool:
        return (len(alerts(r, "nts.ke_failed")) == len(want)
                and all(counter(r, sid, "ok") >= 5 for sid in ok)
                and len(alerts(r, "source.stale")) == len(want))

    try:
        runner, collect, records = monitor(
            tmp_path, [source(sid, s) for sid, s in zip(ok, honest, strict=True)] + bad,
            until=done, timeout_s=30)
        checks = {s["id"]: doctor.check_nts(cfg_source(s), timeout_s=5) for s in bad}
        checked = {sid: list(c) for sid, c in checks.items()}
    finally:
        no_alpn.close()
    got = {e.sources[0]: e for e in alerts(runner, "nts.ke_failed")}
    assert {sid: e.evidence["cause"] for sid, e in got.items()} == want, \
        [(e.code, e.sources, e.message) for e in runner.events]
    assert all(e.severity == "warning" for e in got.values())
    assert "time.example.net" in got["wrong-name"].message
    assert str(other_ca) in got["wrong-ca"].message
    assert "expired on" in got["expired"].message
    assert "refused" in got["no-nts"].message.lower()
    assert "ntske/1" in got["no-alpn"].message
    # Each failure is in the trace as an nts_ke record with its cause; no exchange was tried.
    for sid, cause in want.items():
        kes = of(records, sid, "nts_ke")
        assert kes and all(r["cause"] == cause and "session" not in r for r in kes)
        assert of(records, sid) == []
    # The monitor ran on: the honest sources agree, nobody is a falseticker.
    assert accused(runner) == set()
    snap = collect.snapshots()[-1]
    verdict = {st.src: (st.verdict, st.reason) for st in snap.sources}
    assert snap.quorum and snap.groups_voting == 3, verdict
    assert all(verdict[sid][0] == "truechimer" for sid in ok), verdict
    assert all(verdict[sid][0] == "stale" for sid in want), verdict
    # doctor: the same cause, and what to do about it.
    for sid, cause in want.items():
        (c,) = checked[sid]
        assert not c.ok and c.detail.startswith(f"{cause}: "), c.render()
        assert c.fix == doctor.NTS_KE_FIX[cause]


def cfg_source(d: dict[str, object]) -> Any:
    cfg = parse({"sources": [d]})
    return cfg.sources[0]


def test_doctor_on_a_good_nts_server_reports_certificate_and_an_authenticated_exchange(
        nts_servers, tmp_path):  # noqa: F811
    (srv,) = nts_servers(1)
    checks = list(doctor.check_nts(cfg_source(source("n", srv)), timeout_s=3))
    assert [c.ok for c in checks] == [True, True, True], [c.render() for c in checks]
    ke, cert, ex = checks
    assert "ALPN ntske/1" in ke.detail and f"NTPv4 server {srv.host}:{srv.port}" in ke.detail
    assert "valid until" in cert.detail and "(29 days)" in cert.detail
    assert ex.detail.startswith("reply verified (offset")


# -- the server restarted with new keys -----------------------------------------------------------

def test_server_restarted_with_new_keys_nak_then_new_keys(nts_servers, tmp_path):  # noqa: F811
    servers = nts_servers(4)
    ids = ["a", "b", "c", "target"]
    target = servers[3]
    restarted = asyncio.Event()

    async def restart(r: Runner) -> None:
        while counter(r, "target", "ok") < 3:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(target.restart, True)
        restarted.set()

    def done(r: Runner) -> bool:
        return restarted.is_set() and counter(r, "target", "ke") >= 2 and \
            counter(r, "target", "ok") >= 8

    runner, collect, records = monitor(
        tmp_path, [source(sid, s) for sid, s in zip(ids, servers, strict=True)],
        until=done, timeout_s=40, during=restart)
    assert counter(runner, "target", "nts_nak") >= 1
    ex = of(records, "target")
    nak = next(i for i, r in enumerate(ex) if r.get("refid") == "NTSN")
    assert ex[nak]["error"] == "kiss" and "auth" not in ex[nak]
    kes = of(records, "target", "nts_ke")
    assert len(kes) >= 2 and "NAK" in kes[1]["reason"] and kes[1]["session"] != kes[0]["session"]
    after = [r for r in ex[nak + 1:] if "error" not in r]
    assert len(after) >= 3 and all(r["auth"] == "nts" and r["ke_session"] == kes[1]["session"]
                                   for r in after)
    assert accused(runner) == set()
    assert not [e for e in runner.events if e.code.startswith("nts.") or e.code == "ntp.kiss"]
    snap = collect.snapshots()[-1]
    assert {st.src: st.verdict for st in snap.sources}["target"] == "truechimer"
