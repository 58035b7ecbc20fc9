"""Webhook payloads: one pure function per format, notices -> (headers, body).

A function reads no clock and no config file: the send time, the monitor's host and the secret
come in a `FormatContext`, so a test can check a payload byte for byte. Formats that take one
event per request (`standard`, `pagerduty`) get exactly one notice; `alertmanager` takes a list
of alerts per POST; the chat formats (`slack`, `teams`, `ntfy`) turn a burst into one message.

Payload shapes follow each service's documentation:
- standard: Standard Webhooks 1.0 (headers webhook-id / webhook-timestamp / webhook-signature).
- alertmanager: Alertmanager API v2, POST /api/v2/alerts (a list of postable alerts).
- slack: incoming webhook with Block Kit blocks and a `text` fallback for notifications.
- teams: Teams Workflows "post to a channel when a webhook request is received": a message
  with one Adaptive Card attachment.
- pagerduty: Events API v2, POST /v2/enqueue (routing_key, event_action, dedup_key, payload).
- ntfy: publish by POST to the topic URL, message in the body, Title/Priority/Tags headers.

Every format carries `FormatContext.chain` when it is given: the monitor's latest evidence
checkpoint per stream (docs/evidence.md), so what the receiver keeps pins the local files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..records import SEVERITY_RANK, Event

JSON = "application/json"
WHSEC_PREFIX = "whsec_"  # Standard Webhooks: a signing secret is "whsec_" + base64 of the key
SLACK_HEADER_MAX = 150  # Slack Block Kit: a header block's plain_text is at most 150 characters
SLACK_SECTION_MAX = 3000  # Slack Block Kit: a section's text is at most 3000 characters
PAGERDUTY_SUMMARY_MAX = 1024  # PagerDuty Events API v2: payload.summary is at most 1024 chars
# ntfy priorities: 1 min, 2 low, 3 default, 4 high, 5 max/urgent (docs.ntfy.sh/publish)
NTFY_PRIORITY = {"info": 3, "warning": 4, "critical": 5}
NTFY_CLEAR_PRIORITY = 3
# ntfy tags that render as emojis in the apps (docs.ntfy.sh emoji list)
NTFY_TAG = {"info": "information_source", "warning": "warning", "critical": "rotating_light"}
NTFY_CLEAR_TAG = "white_check_mark"
# PagerDuty accepts critical, error, warning, info; timewatch's severities map one to one
PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
# Adaptive Card TextBlock colours (adaptivecards.io schema)
TEAMS_COLOR = {"critical": "attention", "warning": "warning", "info": "default"}
SLACK_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
               "info": ":large_blue_circle:"}


class FormatError(ValueError):
    """A payload cannot be built (e.g. a signing secret that is not whsec_ + base64)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One event to deliver. For a clear, `alert` is the alert it ends (its severity, message,
    start time), remembered by the sink when the alert was delivered; None if unknown."""

    event: Event
    alert: Event | None = None

    @property
    def msg_id(self) -> str:
        """Standard Webhooks message id and outbox key: `<event id>.<alert|clear>`."""
        return f"{self.event.id}.{self.event.type}"

    @property
    def severity(self) -> str:
        src = self.alert if self.event.type == "clear" and self.alert else self.event
        return src.severity

    @property
    def message(self) -> str:
        if self.event.type == "alert":
            return self.event.message
        return self.alert.message if self.alert else ""


@dataclass(frozen=True, slots=True)
class FormatContext:
    host: str  # the monitor's host name ([monitor] host): tags every message
    now_s: int  # send time, Unix seconds (webhook-timestamp)
    secret: str | None = None  # signing key, routing key or token, revealed
    generator_url: str = ""  # back-link to the monitor (Alertmanager generatorURL)
    # The latest evidence checkpoint per stream: {"events": {"seq": 12, "sha256": "9f86..."}}
    chain: dict[str, dict[str, Any]] | None = None


def chain_text(chain: dict[str, dict[str, Any]]) -> str:
    """One line naming each stream's latest checkpoint, for the formats that carry text."""
    return "evidence: " + "; ".join(f"{s} checkpoint {h['seq']} sha256 {h['sha256']}"
                                    for s, h in chain.items())


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, str]
    body: bytes


def rfc3339(t_ns: int) -> str:
    """UTC, millisecond precision, `Z` (the form every service here parses)."""
    dt = datetime.fromtimestamp(t_ns // 1_000_000_000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t_ns // 1_000_000 % 1000:03d}Z"


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _title(n: Notice) -> str:
    ev = n.event
    where = f" on {', '.join(ev.sources)}" if ev.sources else ""
    if ev.type == "clear":
        return f"cleared: {ev.code}{where}"
    return f"{ev.severity}: {ev.code}{where}"


def _burst_title(notices: Sequence[Notice], host: str) -> str:
    if len(notices) == 1:
        return f"timewatch {host}: {_title(notices[0])}"
    n_alert = sum(n.event.type == "alert" for n in notices)
    parts = []
    if n_alert:
        parts.append(f"{n_alert} alert{'s' if n_alert > 1 else ''}")
    if len(notices) - n_alert:
        parts.append(f"{len(notices) - n_alert} cleared")
    return f"timewatch {host}: {', '.join(parts)}"


def _worst(notices: Sequence[Notice]) -> str | None:
    """The highest severity among the alerts of a burst; None when it holds only clears."""
    sev = [n.event.severity for n in notices if n.event.type == "alert"]
    return max(sev, key=lambda s: SEVERITY_RANK.get(s, 0)) if sev else None


# ---------------------------------------------------------------------------------------------
# standard


def whsec_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64-decode what follows `whsec_`. A secret
    without the prefix is taken as the key's bytes themselves (as Symfony's sender does)."""
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode("utf-8")
    b64 = secret.removeprefix(WHSEC_PREFIX)
    try:
        key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError("the signing secret is not whsec_ followed by base64") from None
    if not key:
        raise FormatError("the signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """`v1,` + base64(HMAC-SHA256(key, "msgid.timestamp.body")) (Standard Webhooks 1.0)."""
    mac = hmac.new(whsec_key(secret), f"{msg_id}.{timestamp_s}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def standard(notices: Sequence[Notice], ctx: FormatContext) -> Message:
    (n,) = notices
    ev = n.event
    doc: dict[str, Any] = {"type": f"timewatch.{ev.type}", "timestamp": rfc3339(ev.t_ns),
                           "data": ev.to_dict()}
    if ctx.chain:
        doc["chain"] = ctx.chain
    body = _json(doc)
    headers = {"Content-Type": JSON, "webhook-id": n.msg_id, "webhook-timestamp": str(ctx.now_s)}
    if ctx.secret:
        headers["webhook-signature"] = sign(ctx.secret, n.msg_id, ctx.now_s, body)
    return Message(headers, body)


# ---------------------------------------------------------------------------------------------
# alertmanager


def am_alert(n: Notice, ctx: FormatContext) -> dict[str, Any]:
    """One postable alert. The labels of a clear repeat those of its alert exactly (Alertmanager
    identifies an alert by its labels), so the clear resolves the alert it ends."""
    ev = n.event
    first = n.alert if ev.type == "clear" and n.alert is not None else ev
    labels = {"alertname": ev.code, "instance": ctx.host, "job": "timewatch", "alert_id": ev.id,
              "severity": n.severity}
    if ev.sources:
        labels["sources"] = ",".join(ev.sources)
    annotations = {"summary": n.message or ev.code}
    if first.type == "alert" and first.evidence:
        annotations["evidence"] = json.dumps(first.evidence, separators=(",", ":"),
                                             sort_keys=True)
    if ctx.chain:
        annotations["chain"] = json.dumps(ctx.chain, separators=(",", ":"), sort_keys=True)
    out: dict[str, Any] = {"labels": labels, "annotations": annotations,
                           "startsAt": rfc3339(first.t_ns)}
    if ev.type == "clear":
        out["endsAt"] = rfc3339(ev.t_ns)
    if ctx.generator_url:
        out["generatorURL"] = ctx.generator_url
    return out


def alertmanager(notices: Sequence[Notice], ctx: FormatContext) -> Message:
    return Message({"Content-Type": JSON}, _json([am_alert(n, ctx) for n in notices]))


# ---------------------------------------------------------------------------------------------
# slack


def _slack_escape(s: str) -> str:
    """Slack treats &, < and > as markup (`<!channel>` would ping everyone)."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(notices: Sequence[Notice], ctx: FormatContext) -> Message:
    title = _burst_title(notices, ctx.host)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:SLACK_HEADER_MAX]}}]
    for n in notices:
        ev = n.event
        mark = ":white_check_mark:" if ev.type == "clear" else SLACK_EMOJI.get(ev.severity, "")
        text = f"{mark} *{_slack_escape(_title(n))}*"
        if n.message:
            text += f"\n{_slack_escape(n.message)}"
        if ev.type == "alert" and ev.evidence:
            text += "\n`" + _slack_escape(json.dumps(ev.evidence, separators=(", ", ": "))) + "`"
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": text[:SLACK_SECTION_MAX]}})
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"{rfc3339(ev.t_ns)} · id {_slack_escape(ev.id)}"}]})
    if ctx.chain:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": chain_text(ctx.chain)}]})
    return Message({"Content-Type": JSON}, _json({"text": title, "blocks": blocks}))


# ---------------------------------------------------------------------------------------------
# teams


def teams(notices: Sequence[Notice], ctx: FormatContext) -> Message:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _burst_title(notices, ctx.host), "size": "Medium",
         "weight": "Bolder", "wrap": True}]
    for n in notices:
        ev = n.event
        color = "good" if ev.type == "clear" else TEAMS_COLOR.get(ev.severity, "default")
        body.append({"type": "TextBlock", "text": _title(n), "weight": "Bolder", "color": color,
                     "wrap": True, "separator": True})
        if n.message:
            body.append({"type": "TextBlock", "text": n.message, "wrap": True})
        facts = [{"title": "Time", "value": rfc3339(ev.t_ns)}, {"title": "Id", "value": ev.id}]
        if ev.type == "alert":
            facts += [{"title": k, "value": str(v)} for k, v in ev.evidence.items()]
        body.append({"type": "FactSet", "facts": facts})
    if ctx.chain:
        body.append({"type": "TextBlock", "text": chain_text(ctx.chain), "size": "Small",
                     "isSubtle": True, "wrap": True, "separator": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body, "msteams": {"width": "Full"}}
    payload = {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}
    return Message({"Content-Type": JSON}, _json(payload))


# ---------------------------------------------------------------------------------------------
# pagerduty


def pagerduty(notices: Sequence[Notice], ctx: FormatContext) -> Message:
    """The routing key goes in the body: never log a pagerduty body."""
    (n,) = notices
    ev = n.event
    if not ctx.secret:
        raise FormatError("pagerduty needs the routing key (secret_file or secret_env)")
    if ev.type == "clear":
        return Message({"Content-Type": JSON}, _json(
            {"routing_key": ctx.secret, "event_action": "resolve", "dedup_key": ev.id}))
    summary = f"{_title(n)}: {ev.message}" if ev.message else _title(n)
    payload: dict[str, Any] = {
        "summary": f"[{ctx.host}] {summary}"[:PAGERDUTY_SUMMARY_MAX], "source": ctx.host,
        "severity": PAGERDUTY_SEVERITY.get(ev.severity, "warning"), "timestamp": rfc3339(ev.t_ns),
        "component": ",".join(ev.sources) or ctx.host, "group": "timewatch", "class": ev.code,
        "custom_details": {"id": ev.id, "code": ev.code, "sources": list(ev.sources),
                           "evidence": ev.evidence}}
    if ctx.chain:
        payload["custom_details"]["chain"] = ctx.chain
    out: dict[str, Any] = {"routing_key": ctx.secret, "event_action": "trigger", "dedup_key": ev.id,
                           "payload": payload, "client": "timewatch"}
    if ctx.generator_url:
        out["client_url"] = ctx.generator_url
    return Message({"Content-Type": JSON}, _json(out))


# ---------------------------------------------------------------------------------------------
# ntfy


def _header_text(s: str) -> str:
    """HTTP header values travel as latin-1: keep titles to printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in s)


def ntfy(notices: Sequence[Notice], ctx: FormatContext) -> Message:
    worst = _worst(notices)
    lines = []
    for n in notices:
        line = f"{_title(n)} ({rfc3339(n.event.t_ns)}, id {n.event.id})"
        lines.append(line + (f"\n{n.message}" if n.message else ""))
    if ctx.chain:
        lines.append(chain_text(ctx.chain))
    tags = [NTFY_TAG.get(worst, "warning") if worst else NTFY_CLEAR_TAG, "timewatch"]
    tags += sorted({n.event.code for n in notices})
    headers = {"Content-Type": "text/plain; charset=utf-8",
               "Title": _header_text(_burst_title(notices, ctx.host)),
               "Priority": str(NTFY_PRIORITY.get(worst, 3) if worst else NTFY_CLEAR_PRIORITY),
               "Tags": _header_text(",".join(tags))}
    if ctx.secret:
        headers["Authorization"] = f"Bearer {ctx.secret}"
    return Message(headers, "\n\n".join(lines).encode("utf-8"))


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormatSpec:
    render: Callable[[Sequence[Notice], FormatContext], Message]
    max_batch: int  # notices per request
    groups: bool  # chat format: wait group_window_s to gather a burst into one message


# Slack allows 50 blocks per message (header + 2 per notice): 20 notices fit; a Teams card and
# an ntfy message stay readable at that size too. Alertmanager takes any list; 50 keeps a POST small.
CHAT_MAX_BATCH = 20
FORMATS: dict[str, FormatSpec] = {
    "standard": FormatSpec(standard, 1, False),
    "alertmanager": FormatSpec(alertmanager, 50, False),
    "slack": FormatSpec(slack, CHAT_MAX_BATCH, True),
    "teams": FormatSpec(teams, CHAT_MAX_BATCH, True),
    "pagerduty": FormatSpec(pagerduty, 1, False),
    "ntfy": FormatSpec(ntfy, CHAT_MAX_BATCH, True),
}
