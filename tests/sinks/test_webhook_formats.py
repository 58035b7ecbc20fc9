"""Webhook payloads, checked against each service's documented shape (pure functions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

import pytest

from timewatch.records import Event
from timewatch.sinks import webhook_formats as wf
from timewatch.sinks.webhook_formats import FormatContext, Notice

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
T0 = 1_764_160_950_123_456_789  # 2025-11-26T12:42:30.123Z

ALERT = Event("alert", T0, "time.drift", ("gnss0", "pps0"), "8f3c1c2e", "critical",
              "GNSS time drifting +1.02 us/s against holdover and 4 NTP groups",
              {"rate_s_per_s": 1.02e-6, "offset_s": 0.000412})
CLEAR = Event("clear", T0 + 1000 * 10**9, "time.drift", ("gnss0", "pps0"), "8f3c1c2e")
WARN = Event("alert", T0 + 10**9, "source.stale", ("cloudflare",), "0badcafe", "warning",
             "cloudflare: no usable data for 192 s", {"limit_s": 192.0})
CTX = FormatContext("pi-lab-1", 1_764_161_000, SECRET, "http://pi-lab-1:9470/status.json")


def spec_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks 1.0, written from the spec: key = base64-decode(secret minus whsec_);
    signed content = "{webhook-id}.{webhook-timestamp}.{body}"; HMAC-SHA256, base64; the header
    holds space-separated "v1,<sig>" entries, any one matching is enough."""
    key = base64.b64decode(secret.split("_", 1)[1])
    h = {k.lower(): v for k, v in headers.items()}
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(s.split(",", 1)[1], want)
               for s in h["webhook-signature"].split() if s.startswith("v1,"))


def test_rfc3339_is_utc_with_milliseconds():
    assert wf.rfc3339(T0) == "2025-11-26T12:42:30.123Z"
    assert wf.rfc3339(0) == "1970-01-01T00:00:00.000Z"


def test_standard_headers_body_and_signature_from_the_spec():
    m = wf.standard([Notice(ALERT)], CTX)
    assert m.headers["webhook-id"] == "8f3c1c2e.alert"
    assert m.headers["webhook-timestamp"] == "1764161000"
    assert m.headers["webhook-signature"].startswith("v1,")
    body = json.loads(m.body)
    assert body == {"type": "timewatch.alert", "timestamp": "2025-11-26T12:42:30.123Z",
                    "data": ALERT.to_dict()}
    assert spec_verify(SECRET, m.headers, m.body)
    assert not spec_verify(SECRET, m.headers, m.body.replace(b"critical", b"warning"))
    other = "whsec_" + base64.b64encode(b"another key, 32 bytes long......").decode()
    assert not spec_verify(other, m.headers, m.body)


def test_standard_clear_has_its_own_message_id_and_type():
    m = wf.standard([Notice(CLEAR, ALERT)], CTX)
    assert m.headers["webhook-id"] == "8f3c1c2e.clear"
    body = json.loads(m.body)
    assert body["type"] == "timewatch.clear" and body["data"] == CLEAR.to_dict()
    assert spec_verify(SECRET, m.headers, m.body)


def test_standard_signature_verified_by_the_standardwebhooks_package():
    sw = pytest.importorskip("standardwebhooks.webhooks")
    import time

    ctx = FormatContext("h", int(time.time()), SECRET)  # the package refuses old timestamps
    m = wf.standard([Notice(ALERT)], ctx)
    assert sw.Webhook(SECRET).verify(m.body, m.headers)["data"]["id"] == "8f3c1c2e"
    with pytest.raises(sw.WebhookVerificationError):
        sw.Webhook(SECRET).verify(m.body + b" ", m.headers)


def test_standard_without_secret_is_unsigned():
    m = wf.standard([Notice(ALERT)], FormatContext("h", 1, None))
    assert "webhook-signature" not in m.headers and m.headers["webhook-id"] == "8f3c1c2e.alert"


@pytest.mark.parametrize("bad", ["whsec_not base64!", "whsec_"])
def test_whsec_key_rejects_a_secret_that_is_not_base64(bad):
    with pytest.raises(wf.FormatError) as e:
        wf.whsec_key(bad)
    assert ("followed by base64" if bad != "whsec_" else "empty") in str(e.value)


def test_secret_without_whsec_prefix_is_the_raw_key():
    m = wf.standard([Notice(ALERT)], FormatContext("h", 5, "plain-secret"))
    mac = hmac.new(b"plain-secret", b"8f3c1c2e.alert.5." + m.body, hashlib.sha256).digest()
    assert m.headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_alertmanager_clear_repeats_the_alert_labels_and_sets_endsat():
    fire = json.loads(wf.alertmanager([Notice(ALERT)], CTX).body)
    res = json.loads(wf.alertmanager([Notice(CLEAR, ALERT)], CTX).body)
    assert isinstance(fire, list) and len(fire) == 1
    assert fire[0]["labels"] == res[0]["labels"]
    assert fire[0]["labels"]["alertname"] == "time.drift"
    assert fire[0]["labels"]["severity"] == "critical"
    assert fire[0]["labels"]["instance"] == "pi-lab-1"
    assert "endsAt" not in fire[0]
    assert res[0]["startsAt"] == fire[0]["startsAt"] == "2025-11-26T12:42:30.123Z"
    ends = datetime.fromisoformat(res[0]["endsAt"].replace("Z", "+00:00"))
    assert ends.timestamp() == pytest.approx(CLEAR.t_ns / 1e9, abs=1e-3)
    assert fire[0]["annotations"]["summary"] == ALERT.message
    assert res[0]["annotations"]["summary"] == ALERT.message
    assert json.loads(fire[0]["annotations"]["evidence"]) == ALERT.evidence
    assert fire[0]["generatorURL"] == CTX.generator_url
    assert all(isinstance(v, str) for a in fire + res for v in a["labels"].values())


def test_pagerduty_trigger_and_resolve_share_the_dedup_key():
    trig = json.loads(wf.pagerduty([Notice(ALERT)], CTX).body)
    res = json.loads(wf.pagerduty([Notice(CLEAR, ALERT)], CTX).body)
    assert trig["routing_key"] == SECRET and trig["event_action"] == "trigger"
    assert trig["dedup_key"] == res["dedup_key"] == "8f3c1c2e"
    assert res == {"routing_key": SECRET, "event_action": "resolve", "dedup_key": "8f3c1c2e"}
    p = trig["payload"]
    assert p["severity"] == "critical" and p["source"] == "pi-lab-1"
    assert p["summary"].startswith("[pi-lab-1] critical: time.drift")
    assert p["custom_details"]["evidence"] == ALERT.evidence
    long = Event("alert", T0, "x.y", (), "1", "warning", "m" * 5000)
    assert len(json.loads(wf.pagerduty([Notice(long)], CTX).body)["payload"]["summary"]) == 1024
    with pytest.raises(wf.FormatError):
        wf.pagerduty([Notice(ALERT)], FormatContext("h", 1, None))


@pytest.mark.parametrize("sev,pd", [("critical", "critical"), ("warning", "warning"),
                                    ("info", "info")])
def test_pagerduty_severity_mapped(sev, pd):
    ev = Event("alert", T0, "x.y", (), "1", sev, "m")
    assert json.loads(wf.pagerduty([Notice(ev)], CTX).body)["payload"]["severity"] == pd


def test_slack_blocks_within_limits_and_markup_escaped():
    evil = Event("alert", T0, "ntp.kiss", ("s1",), "k1", "warning", "<!channel> & <@U1>")
    burst = [Notice(evil)] + [Notice(Event("alert", T0 + i, "source.stale", (f"s{i}",), f"i{i}",
                                           "warning", "stale")) for i in range(19)]
    body = json.loads(wf.slack(burst, CTX).body)
    assert len(body["blocks"]) <= 50  # Block Kit limit per message
    assert body["blocks"][0]["type"] == "header"
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert "20 alerts" in body["text"]
    text = json.dumps(body)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_slack_single_clear_reads_as_cleared():
    body = json.loads(wf.slack([Notice(CLEAR, ALERT)], CTX).body)
    assert body["text"] == "timewatch pi-lab-1: cleared: time.drift on gnss0, pps0"
    assert ":white_check_mark:" in body["blocks"][1]["text"]["text"]


def test_teams_message_carries_one_adaptive_card():
    body = json.loads(wf.teams([Notice(ALERT), Notice(WARN)], CTX).body)
    assert body["type"] == "message" and len(body["attachments"]) == 1
    att = body["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [b.get("text", "") for b in card["body"]]
    assert "timewatch pi-lab-1: 2 alerts" in texts
    assert any(b.get("color") == "attention" for b in card["body"])


def test_ntfy_priority_tags_title_and_bearer_token():
    m = wf.ntfy([Notice(ALERT), Notice(WARN)], FormatContext("pi", 1, "tk_abc"))
    assert m.headers["Priority"] == "5"
    assert m.headers["Tags"].split(",")[0] == "rotating_light"
    assert "time.drift" in m.headers["Tags"] and "source.stale" in m.headers["Tags"]
    assert m.headers["Authorization"] == "Bearer tk_abc"
    assert m.headers["Title"] == "timewatch pi: 2 alerts"
    assert b"GNSS time drifting" in m.body
    w = wf.ntfy([Notice(WARN)], FormatContext("pi", 1, None))
    assert w.headers["Priority"] == "4" and "Authorization" not in w.headers
    c = wf.ntfy([Notice(CLEAR, ALERT)], FormatContext("p\u00e9", 1, None))
    assert c.headers["Priority"] == "3" and c.headers["Tags"].startswith("white_check_mark")
    c.headers["Title"].encode("ascii")  # header values stay ASCII


def test_every_format_renders_a_clear_without_its_alert():
    for name, spec in wf.FORMATS.items():
        m = spec.render([Notice(CLEAR)], CTX)
        assert m.body, name
