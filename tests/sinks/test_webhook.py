"""WebhookSink against real HTTP receivers on 127.0.0.1 (http.server in a thread).

Each receiver answers from a script (status, headers) per request and records what it got; a
delivery counts when the receiver answered 2xx to it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from timewatch.commands.webhook import cmd_webhook
from timewatch.config import describe, load, parse
from timewatch.records import Event, Sample, Snapshot
from timewatch.sinks import webhook as wh
from timewatch.sinks.webhook import WebhookSink

ROOT = Path(__file__).resolve().parents[2]
KEY = hashlib.sha256(b"test signing key").digest()
SECRET = "whsec_" + base64.b64encode(KEY).decode()
FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "group_window_s": 0.0,
        "min_severity": "info", "timeout_s": 5.0}


@dataclass
class Req:
    path: str
    headers: dict[str, str]
    body: bytes
    t: float
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


Plan = Callable[[int, Req], "tuple[int, dict[str, str], bytes]"]


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1:random; `plan(n, req)` answers the n-th request (from 0)."""

    plan: Plan = field(default=lambda n, r: (200, {}, b"ok"))
    requests: list[Req] = field(default_factory=list)

    def __post_init__(self) -> None:
        rec = self
        self.cond = threading.Condition()

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = Req(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                          time.monotonic())
                with rec.cond:
                    n = len(rec.requests)
                    rec.requests.append(req)
                status, headers, out = rec.plan(n, req)
                req.status = status
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                with rec.cond:
                    rec.cond.notify_all()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def ok(self) -> list[Req]:
        with self.cond:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait(self, pred: Callable[[Receiver], bool], timeout_s: float = 20.0) -> bool:
        end = time.monotonic() + timeout_s
        with self.cond:
            while not pred(self):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def config(tmp_path: Path, *hooks: dict[str, Any], host: str = "testhost") -> Any:
    return parse({"monitor": {"state_dir": str(tmp_path / "state"), "host": host},
                  "http": {"listen": ""},
                  "sinks": {"webhook": [{**FAST, **h} for h in hooks]}})


def events_sequence(n_pairs: int, seed: int = 7, prefix: str = "") -> list[Event]:
    """An event sequence as `timewatch replay` writes it: alerts, and later their clears,
    interleaved, every severity and several codes."""
    rnd = random.Random(seed)
    codes = ["time.drift", "source.stale", "ntp.kiss", "gnss.no_fix", "consensus.lost"]
    out, open_ = [], []
    t = 1_764_160_950_000_000_000
    for i in range(n_pairs):
        t += rnd.randint(1, 5) * 10**9
        code = rnd.choice(codes)
        ev = Event("alert", t, code, (f"src{i % 4}",), f"{prefix}{i:08x}",
                   rnd.choice(["info", "warning", "critical"]), f"{code} #{i}", {"n": i})
        out.append(ev)
        open_.append(ev)
        while open_ and rnd.random() < 0.5:
            a = open_.pop(rnd.randrange(len(open_)))
            t += 10**9
            out.append(Event("clear", t, a.code, a.sources, a.id))
    for a in open_:
        t += 10**9
        out.append(Event("clear", t, a.code, a.sources, a.id))
    return out


def spec_verify(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    """Standard Webhooks 1.0 verification written from the spec (not from our sender)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if abs(int(headers["webhook-timestamp"]) - time.time()) > 300:  # spec: reject old ones
        return False
    return any(s == f"v1,{want}" for s in headers["webhook-signature"].split())


def keys(reqs: list[Req]) -> list[str]:
    return [r.headers["webhook-id"] for r in reqs]


# ---------------------------------------------------------------------------------------------


def test_standard_signatures_verify_at_the_receiver(tmp_path, receiver):
    sink = WebhookSink(config(tmp_path, {"url": receiver.url + "/hook", "secret": SECRET}))
    seq = events_sequence(5)
    sink.handle(list(seq))
    assert receiver.wait(lambda r: len(r.ok()) == len(seq))
    sink.close()
    from standardwebhooks.webhooks import Webhook  # the reference library (the test extra)

    sw = Webhook(SECRET)
    for r in receiver.requests:
        assert r.path == "/hook"
        assert spec_verify(r.headers, r.body), r.headers
        assert sw.verify(r.body, r.headers)["data"]["id"] == r.headers["webhook-id"][:8]
        assert not spec_verify(r.headers, r.body + b"x")


def test_replayed_sequence_every_alert_and_clear_delivered_exactly_once_in_order(tmp_path,
                                                                                  receiver):
    seq = events_sequence(60)
    replay_out = tmp_path / "events.jsonl"  # what `timewatch replay --events` writes
    replay_out.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in seq))
    replayed = [Event.from_dict(json.loads(line)) for line in replay_out.read_text().splitlines()]
    # ~1 in 5 answers fails: retries must neither lose nor repeat an event
    rnd = random.Random(3)
    receiver.plan = lambda n, r: (500, {}, b"busy") if rnd.random() < 0.2 else (204, {}, b"")
    cfg = config(tmp_path, {"url": receiver.url, "secret": SECRET})
    sink = WebhookSink(cfg)
    for i in range(0, len(replayed), 7):  # the engine hands over outputs a few at a time
        chunk = replayed[i:i + 7]
        sink.handle([Sample("src0", chunk[0].t_ns, 0.0, 1e-3), *chunk,
                     Snapshot(chunk[-1].t_ns, (), True, 1, 1, 0.0, 1e-3)])
    assert receiver.wait(lambda r: len(r.ok()) >= len(seq), 30)
    sink.close()
    want = [f"{e.id}.{e.type}" for e in seq]
    assert keys(receiver.ok()) == want
    assert sink.pending() == 0
    # the same sequence replayed again into the same state: nothing goes out twice
    sink2 = WebhookSink(cfg)
    sink2.handle(list(replayed))
    sink2.close()  # delivers what it queued before returning: a repeat would be there now
    assert sink2.pending() == 0 and keys(receiver.ok()) == want


def test_timewatch_replay_delivers_every_event_of_a_simulated_trace(tmp_path, receiver):
    """End to end: `timewatch simulate`, then `timewatch replay -c` with a webhook; what the
    receiver got is exactly the replay's event output, in order."""
    from timewatch.cli import main

    trace, out = tmp_path / "t.jsonl", tmp_path / "events.jsonl"
    assert main(["simulate", "--scenario", "ntp_no_majority", "-o", str(trace)]) == 0
    (tmp_path / "tw.toml").write_text(
        f'[monitor]\nstate_dir = "{tmp_path / "state"}"\nhost = "r"\n[http]\nlisten = ""\n'
        f'[[sinks.webhook]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        'min_severity = "info"\n')
    assert main(["replay", str(trace), "-c", str(tmp_path / "tw.toml"), "--events",
                 str(out)]) == 0
    events = [d for d in map(json.loads, out.read_text().splitlines())
              if d["type"] in ("alert", "clear")]
    # The scenario's story: no majority of trust groups agrees: the consensus is lost.
    assert ("alert", "consensus.lost") in {(d["type"], d["code"]) for d in events}, events
    want = [f"{d['id']}.{d['type']}" for d in events]
    assert keys(receiver.ok()) == want  # replay returns after its sinks delivered
    assert all(spec_verify(r.headers, r.body) for r in receiver.requests)


def test_500_then_429_with_retry_after_then_200_delivers_everything_in_order(tmp_path, receiver):
    def plan(n: int, r: Req) -> tuple[int, dict[str, str], bytes]:
        if n < 4:
            return 500, {}, b"internal error"
        if n == 4:
            return 429, {"Retry-After": "1"}, b"slow down"
        return 200, {}, b"ok"

    receiver.plan = plan
    sink = WebhookSink(config(tmp_path, {"url": receiver.url, "secret": SECRET}))
    seq = events_sequence(6)
    sink.handle(seq[:3])
    sink.handle(seq[3:])
    assert receiver.wait(lambda r: len(r.ok()) == len(seq), 30)
    sink.close()
    reqs = receiver.requests
    assert [r.status for r in reqs[:6]] == [500, 500, 500, 500, 429, 200]
    assert len(set(keys(reqs[:6]))) == 1  # nothing overtakes the message being retried
    assert reqs[5].t - reqs[4].t >= 0.95  # Retry-After: 1 honoured
    assert keys(receiver.ok()) == [f"{e.id}.{e.type}" for e in seq]
    # backoff grows: the 1st retry waits 0.025..0.05 s, the 3rd min(0.2, 0.05 * 4) / 2 at least
    assert reqs[3].t - reqs[2].t >= 0.095


def test_config_checks_webhook_secrets_without_showing_them(tmp_path):
    from timewatch.config import ConfigError

    with pytest.raises(ConfigError) as e:
        config(tmp_path, {"url": "http://127.0.0.1:1/", "secret": "whsec_n0t base64!!"})
    assert "whsec_ followed by base64" in str(e.value) and "n0t base64" not in str(e.value)
    with pytest.raises(ConfigError, match=r"webhook\[0\]\.secret: required for format pagerduty"):
        config(tmp_path, {"url": "http://127.0.0.1:1/", "format": "pagerduty"})
    with pytest.raises(ConfigError, match=r"webhook\[0\]\.retry_max_s"):
        config(tmp_path, {"url": "http://127.0.0.1:1/", "retry_max_s": 0})


def test_retry_after_as_http_date():
    now = 1_700_000_000.0
    assert wh.parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now) == pytest.approx(20.0)
    assert wh.parse_retry_after("120", now) == 120.0
    assert wh.parse_retry_after("999999", now) == wh.RETRY_AFTER_MAX_S
    assert wh.parse_retry_after("soon", now) is None
    assert wh.parse_retry_after(None, now) is None


def test_410_gone_disables_the_endpoint_and_says_so(tmp_path, receiver, caplog):
    receiver.plan = lambda n, r: (410, {}, b"channel_is_archived")
    sink = WebhookSink(config(tmp_path, {"url": receiver.url, "secret": SECRET}))
    with caplog.at_level(logging.ERROR, logger="timewatch.sinks.webhook"):
        sink.handle(events_sequence(3))
        assert receiver.wait(lambda r: len(r.requests) >= 1)
        ep = sink.endpoints[0]
        ep.thread.join(5)
    assert ep.disabled and not ep.thread.is_alive()
    assert any("410 Gone" in m and "disabled" in m and "127.0.0.1" in m
               for m in caplog.messages)
    later = events_sequence(2, seed=9)
    sink.handle(later)
    sink.close()  # a live endpoint would deliver them here; a disabled one keeps them
    assert len(receiver.requests) == 1 and sink.pending() >= len(later)


def test_400_rejects_one_message_and_the_queue_goes_on(tmp_path, receiver, caplog):
    receiver.plan = lambda n, r: (400, {}, b"invalid_payload") if n == 0 else (200, {}, b"ok")
    sink = WebhookSink(config(tmp_path, {"url": receiver.url, "secret": SECRET}))
    seq = events_sequence(3)
    rejected = seq[0]
    sink.handle(seq)
    assert receiver.wait(lambda r: len(r.ok()) == len(seq) - 2)
    sink.close()  # delivers anything still queued: the rejected alert's clear would show
    assert sink.pending() == 0
    # the rejected alert's clear does not go out either: the receiver never had the alert
    assert keys(receiver.ok()) == [f"{e.id}.{e.type}" for e in seq if e.id != rejected.id]
    assert any("rejected" in m and "400" in m for m in caplog.messages)


def test_min_severity_filters_and_a_clear_follows_its_alert(tmp_path, receiver):
    a_info = Event("alert", 10**18, "gnss.satellites", ("g",), "a0", "info", "m")
    a_warn = Event("alert", 10**18 + 1, "source.stale", ("s",), "a1", "warning", "m")
    a_crit = Event("alert", 10**18 + 2, "time.step", ("g",), "a2", "critical", "m")
    clears = [Event("clear", 10**18 + 10 + i, a.code, a.sources, a.id)
              for i, a in enumerate((a_crit, a_info, a_warn))]
    cfg = config(tmp_path, {"url": receiver.url, "secret": SECRET, "min_severity": "warning"})
    sink = WebhookSink(cfg)
    sink.handle([a_info, a_warn, a_crit])
    assert receiver.wait(lambda r: len(r.ok()) == 2)
    sink.close()
    # restart between the alerts and their clears: the ledger remembers what passed
    sink = WebhookSink(cfg)
    sink.handle(clears)
    assert receiver.wait(lambda r: len(r.ok()) == 4)
    sink.close()  # delivers anything still queued: the info alert's clear would show
    assert sink.pending() == 0
    assert keys(receiver.ok()) == ["a1.alert", "a2.alert", "a2.clear", "a1.clear"]


def test_handle_never_waits_for_a_hung_receiver(tmp_path, receiver):
    release = threading.Event()
    receiver.plan = lambda n, r: (release.wait(10), (200, {}, b""))[1]
    sink = WebhookSink(config(tmp_path, {"url": receiver.url}))
    sink.handle(events_sequence(2))
    assert receiver.wait(lambda r: len(r.requests) == 1)  # the first POST hangs there
    seq = events_sequence(50, seed=2, prefix="b")
    sink.handle(seq)  # returns while the receiver still holds the first request
    assert not release.is_set() and sink.pending() >= len(seq)
    release.set()
    assert receiver.wait(lambda r: len(r.ok()) == 4 + len(seq), 30)
    sink.close()


def test_chat_burst_is_grouped_into_one_message(tmp_path, receiver):
    cfg = config(tmp_path, {"url": receiver.url + "/services/T0/B0/x", "format": "slack",
                            "group_window_s": 2.0})
    sink = WebhookSink(cfg)
    burst = [Event("alert", 10**18 + i, c, ("gnss0",), f"b{i}", "critical", f"{c} fired")
             for i, c in enumerate(["gnss.simulator", "gnss.cn0_anomaly", "time.step",
                                    "gnss.position_jump", "pps.label_mismatch"])]
    t0 = time.monotonic()
    for ev in burst:
        sink.handle([ev])
        time.sleep(0.02)
    assert receiver.wait(lambda r: len(r.ok()) == 1)
    assert receiver.requests[0].t - t0 >= 1.9  # the first event waited for the rest
    sink.close()  # delivers anything still queued: a second message would show
    assert len(receiver.requests) == 1 and sink.pending() == 0
    body = receiver.requests[0].json()
    assert body["text"] == "timewatch testhost: 5 alerts"
    assert sum(b["type"] == "section" for b in body["blocks"]) == 5


def test_alertmanager_resends_active_alerts_then_resolves(tmp_path, receiver):
    cfg = config(tmp_path, {"url": receiver.url + "/api/v2/alerts", "format": "alertmanager",
                            "resend_s": 1})
    sink = WebhookSink(cfg)
    a = Event("alert", 10**18, "consensus.lost", (), "c0ffee00", "critical", "no quorum")
    b = Event("alert", 10**18 + 1, "source.stale", ("s1",), "bead0000", "warning", "s1 silent")
    snap = Snapshot(10**18, (), False, 1, 3, None, None,
                    ("consensus.lost:c0ffee00", "source.stale:bead0000"))
    sink.handle([a, b, snap])

    def sent(q: Req) -> dict[str, bool]:
        """alert id -> resolved, of one message."""
        return {x["labels"]["alert_id"]: "endsAt" in x for x in q.json()}

    # Sent, then both re-sent every second while active.
    assert receiver.wait(lambda r: any(sent(q) == {"c0ffee00": False, "bead0000": False}
                                       for q in r.ok()[1:]), 10)
    k = len(receiver.ok())
    sink.handle([Event("clear", 10**18 + 5 * 10**9, "consensus.lost", (), "c0ffee00"),
                 Snapshot(10**18 + 5 * 10**9, (), True, 3, 3, 0.0, 1e-3,
                          ("source.stale:bead0000",))])
    resolved = {"c0ffee00": True}
    assert receiver.wait(lambda r: any(sent(q) == resolved for q in r.ok()[k:]), 10)
    n = next(i for i, q in enumerate(receiver.ok()) if sent(q) == resolved) + 1
    # Two more re-sends (b is still active): the resolved alert is in none of them.
    assert receiver.wait(lambda r: len(r.ok()) >= n + 2, 10)
    sink.close()
    assert [sent(q) for q in receiver.ok()[n:n + 2]] == [{"bead0000": False}] * 2
    fired = [x for q in receiver.ok() for x in q.json() if x["labels"]["alert_id"] == "c0ffee00"]
    assert all(f["labels"] == fired[0]["labels"] for f in fired)
    assert all("endsAt" not in f for f in fired[:-1]) and "endsAt" in fired[-1]
    assert all(r.path == "/api/v2/alerts" for r in receiver.requests)


def test_pagerduty_trigger_then_resolve_with_the_routing_key(tmp_path, receiver):
    sink = WebhookSink(config(tmp_path, {"url": receiver.url + "/v2/enqueue",
                                         "format": "pagerduty", "secret": "R0UTINGKEY0000"}))
    a = Event("alert", 10**18, "time.drift", ("gnss0",), "d1", "critical", "drift")
    sink.handle([a, Event("clear", 10**18 + 1, "time.drift", ("gnss0",), "d1")])
    assert receiver.wait(lambda r: len(r.ok()) == 2)
    sink.close()
    trig, res = (r.json() for r in receiver.ok())
    assert (trig["event_action"], res["event_action"]) == ("trigger", "resolve")
    assert trig["dedup_key"] == res["dedup_key"] == "d1"
    assert trig["routing_key"] == res["routing_key"] == "R0UTINGKEY0000"


CHILD = """
import json, sys, time
from timewatch.config import load
from timewatch.records import Event
from timewatch.sinks.webhook import WebhookSink
sink = WebhookSink(load(sys.argv[1]))
sink.handle([Event.from_dict(json.loads(l)) for l in open(sys.argv[2])])
print("queued", flush=True)
time.sleep(600)
"""


def test_monitor_killed_with_undelivered_events_delivers_them_after_restart(tmp_path, receiver):
    hung = threading.Event()
    release = threading.Event()

    def plan(n: int, r: Req) -> tuple[int, dict[str, str], bytes]:
        if n < 3:
            return 200, {}, b"ok"
        if n == 3:  # the 4th request hangs: the monitor is killed while it is in flight
            hung.set()
            release.wait(20)
            return 503, {}, b"too late"
        return 200, {}, b"ok"

    receiver.plan = plan
    (tmp_path / "tw.toml").write_text(
        f'[monitor]\nstate_dir = "{tmp_path / "state"}"\nhost = "k"\n[http]\nlisten = ""\n'
        f'[[sinks.webhook]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        'min_severity = "info"\nretry_initial_s = 0.05\nretry_max_s = 0.2\n')
    seq = events_sequence(8)
    (tmp_path / "ev.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in seq))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "tw.toml"),
                              str(tmp_path / "ev.jsonl")], stdout=subprocess.PIPE, env=env,
                             cwd=tmp_path)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"queued"
        assert hung.wait(20)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert len(receiver.ok()) == 3
    sink = WebhookSink(load(tmp_path / "tw.toml"))  # the restart
    assert receiver.wait(lambda r: len(r.ok()) == len(seq), 30)
    sink.close()  # delivers anything still queued: a repeat would show
    assert sink.pending() == 0
    assert keys(receiver.ok()) == [f"{e.id}.{e.type}" for e in seq]  # each once, in order


# ---------------------------------------------------------------------------------------------
# webhook test, and secrets


def run_webhook_test(cfg_path: Path | None, target: str | None) -> int:
    return cmd_webhook(argparse.Namespace(webhook_command="test",
                                          config=str(cfg_path) if cfg_path else None,
                                          target=target))


def test_webhook_test_command_reports_each_endpoint(tmp_path, receiver, capsys):
    bad = Receiver(plan=lambda n, r: (503, {}, b"maintenance"))
    try:
        (tmp_path / "tw.toml").write_text(
            f'[monitor]\nstate_dir = "{tmp_path}"\nhost = "h1"\n'
            f'[[sinks.webhook]]\nurl = "{receiver.url}/ok"\nsecret = "{SECRET}"\n'
            f'[[sinks.webhook]]\nurl = "{bad.url}/down"\nformat = "alertmanager"\n')
        cfg = tmp_path / "tw.toml"
        assert run_webhook_test(cfg, "0") == 0
        out = capsys.readouterr().out
        assert "webhook[0] standard to 127.0.0.1: alert: 200 OK" in out and ": ok" in out
        assert spec_verify(receiver.requests[-1].headers, receiver.requests[-1].body)
        assert run_webhook_test(cfg, None) == 1
        out = capsys.readouterr().out
        assert "webhook[1] alertmanager to 127.0.0.1: alert: 503" in out and "FAILED" in out
        assert "maintenance" in out
        assert run_webhook_test(None, receiver.url + "/direct") == 0
        assert receiver.requests[-1].path == "/direct"
        assert "webhook-signature" not in receiver.requests[-1].headers
        from timewatch.cli import main

        assert main(["webhook", "test", "-c", str(cfg), "7"]) == 2
        assert "no webhook[7]" in capsys.readouterr().err
    finally:
        bad.close()


def test_no_secret_in_logs_outputs_or_state(tmp_path, monkeypatch, caplog, capsys):
    """Secrets given every way docs/config.md allows; the receivers echo back all they got."""
    def echo(n: int, r: Req) -> tuple[int, dict[str, str], bytes]:
        back = json.dumps({"path": r.path, "auth": r.headers.get("authorization", ""),
                           "body": r.body.decode()[:120], "headers": r.headers}).encode()
        return (400 if n % 3 == 0 else 500 if n % 3 == 1 else 200), {}, back

    rec = Receiver(plan=echo)
    slack_path = "/services/T0SECRET1/B0SECRET2/SlackSecretPart3xyz"
    routing_key = "PDroutingKEY0123456789abcdef"
    ntfy_token = "tk_ntfyTokenSecret98765"
    url_pw = "BasicAuthPassw0rd"
    secrets = [SECRET, SECRET.removeprefix("whsec_"), slack_path, "SlackSecretPart3xyz",
               routing_key, ntfy_token, url_pw, "B0SECRET2"]
    monkeypatch.setenv("TW_SLACK_URL", rec.url + slack_path)
    monkeypatch.setenv("TW_NTFY_TOKEN", ntfy_token)
    (tmp_path / "pd.key").write_text(routing_key + "\n")
    (tmp_path / "pd.key").chmod(0o600)
    port = rec.server.server_address[1]
    cfg_path = tmp_path / "tw.toml"
    cfg_path.write_text(
        f'[monitor]\nstate_dir = "{tmp_path / "state"}"\nhost = "h"\n[http]\nlisten = ""\n'
        f'[[sinks.webhook]]\nurl = "{rec.url}/std"\nsecret = "{SECRET}"\n'
        'retry_initial_s = 0.05\nretry_max_s = 0.1\n'
        '[[sinks.webhook]]\nurl_env = "TW_SLACK_URL"\nformat = "slack"\ngroup_window_s = 0\n'
        'retry_initial_s = 0.05\nretry_max_s = 0.1\n'
        f'[[sinks.webhook]]\nurl = "{rec.url}/v2/enqueue"\nformat = "pagerduty"\n'
        f'secret_file = "{tmp_path / "pd.key"}"\nretry_initial_s = 0.05\nretry_max_s = 0.1\n'
        f'[[sinks.webhook]]\nurl = "http://user:{url_pw}@127.0.0.1:{port}/alerts"\n'
        'format = "ntfy"\nsecret_env = "TW_NTFY_TOKEN"\ngroup_window_s = 0\n'
        'retry_initial_s = 0.05\nretry_max_s = 0.1\n'
        # a dead endpoint: connection refused, with the URL in the exception path
        f'[[sinks.webhook]]\nurl = "http://127.0.0.1:9/dead{slack_path}"\nformat = "teams"\n'
        'retry_initial_s = 0.05\nretry_max_s = 0.1\n')
    try:
        with caplog.at_level(logging.DEBUG):
            cfg = load(cfg_path)
            print(describe(cfg))
            sink = WebhookSink(cfg)
            seq = events_sequence(6)
            sink.handle(seq)
            end = time.monotonic() + 20
            while any(ep.pending() for ep in sink.endpoints[:4]) and time.monotonic() < end:
                time.sleep(0.05)
            assert not any(ep.pending() for ep in sink.endpoints[:4])
            assert sink.endpoints[4].pending() == len(seq)  # the dead one keeps them
            sink.close(grace_s=0.5)
            run_webhook_test(cfg_path, None)
            for i in range(5):
                run_webhook_test(cfg_path, str(i))
        out = capsys.readouterr()
        state = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
        text = "\n".join([out.out, out.err, caplog.text] + [str(r.args) for r in caplog.records])
        assert "warning: sinks.webhook[0].secret: an inline secret" in out.out
        assert "127.0.0.1" in text and "rejected" in text  # the logs did talk about them
        for s in secrets:
            assert s not in text, f"secret {s[:6]}... printed"
            assert s.encode() not in state, f"secret {s[:6]}... stored"
    finally:
        rec.close()
