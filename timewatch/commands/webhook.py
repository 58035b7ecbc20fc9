"""`timewatch webhook test [-c CONFIG] [N | URL]`: a test event to each configured webhook (or the
N-th, or a URL), rendered and sent as the sink would (`sinks.webhook`), and what came back."""

from __future__ import annotations

import argparse
import re
import time

from ..config import Secret, WebhookConfig, load, parse
from ..errors import UsageError
from ..records import Event
from ..sinks.webhook import Scrubber, excerpt, generator_url, post
from ..sinks.webhook_formats import FORMATS, FormatContext, FormatError, Notice


def test_notices(host: str, fmt: str, now_ns: int) -> list[Notice]:
    """A test alert; for formats that open an incident (PagerDuty, Alertmanager), its clear."""
    aid = f"test-{now_ns // 1_000_000:x}"
    alert = Event("alert", now_ns, "webhook.test", (), aid, "info",
                  f"timewatch webhook test from {host}: no action needed", {"test": True})
    out = [Notice(alert)]
    if fmt in ("pagerduty", "alertmanager"):
        out.append(Notice(Event("clear", now_ns + 1_000_000, "webhook.test", (), aid), alert))
    return out


def cmd_webhook(args: argparse.Namespace) -> int:
    if getattr(args, "webhook_command", "test") != "test":
        raise UsageError(f"unknown webhook command {args.webhook_command!r}")
    cfg = load(args.config) if args.config else parse({}, "<defaults>")
    target: str | None = args.target
    hooks: list[tuple[int, WebhookConfig]] = list(enumerate(cfg.webhooks))
    if target is None:
        if not hooks:
            raise UsageError(f"{cfg.path}: no [[sinks.webhook]] configured (give -c CONFIG, "
                             "or a URL to test)")
    elif re.fullmatch(r"\d+", target):
        i = int(target)
        if i >= len(hooks):
            raise UsageError(f"{cfg.path}: no webhook[{i}]: {len(hooks)} configured, numbered "
                             "from 0 as check-config shows them")
        hooks = [hooks[i]]
    elif re.match(r"^https?://", target):
        hooks = [(-1, WebhookConfig(url=Secret(target, "command line"), format="standard"))]
    else:
        raise UsageError(f"webhook test: {target!r} is neither an index nor an http(s) URL")
    failed = 0
    gen = generator_url(cfg)
    for i, hc in hooks:
        label = f"webhook[{i}] {hc.format} to {hc.host}" if i >= 0 else f"{hc.host} (standard)"
        scrub = Scrubber(hc)
        spec = FORMATS[hc.format]
        for n in test_notices(cfg.host, hc.format, time.time_ns()):
            ctx = FormatContext(cfg.host, int(time.time()),
                                hc.secret.reveal() if hc.secret else None, gen)
            try:
                msg = spec.render([n], ctx)
            except FormatError as e:
                print(f"{label}: {n.event.type}: cannot build the message: {e}")
                failed += 1
                continue
            r = post(hc.url.reveal(), msg, hc.timeout_s)
            if r.status is None:
                print(f"{label}: {n.event.type}: FAILED after {r.elapsed_s:.2f} s: "
                      f"{scrub(r.reason)}")
            else:
                print(f"{label}: {n.event.type}: {r.status} {scrub(r.reason)} in "
                      f"{r.elapsed_s:.2f} s{': ' if r.body else ''}{excerpt(r.body, scrub)}"
                      + ("" if r.ok else "  FAILED"))
            failed += not r.ok
    return 1 if failed else 0
