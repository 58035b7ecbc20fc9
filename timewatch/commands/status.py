"""`timewatch status [-c CONFIG] [--json]`: what the running monitor (or else the store) says now.

First asks the monitor's `/status.json` at the config's `[http] listen`; when nothing answers
there, reads the latest snapshot and the active alerts from the embedded store.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from ..config import Config, HttpAccess, load
from ..sinks.http import status_document
from ..sinks.store import Store, StoreError, damaged_note

# Seconds to wait for a running monitor before falling back to the store (it answers on loopback
# from memory, so a healthy one replies in milliseconds).
HTTP_TIMEOUT_S = 2.0


class StatusUnavailable(Exception):
    """Neither the monitor nor the store can say anything."""


def _client_tls(cert_file: str) -> ssl.SSLContext:
    """Trust exactly the certificate the config gives the API (partial chain: the server's own
    certificate is the anchor, whatever signed it), whatever name the listen address has."""
    ctx = ssl.create_default_context(cafile=cert_file)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.check_hostname = False
    return ctx


def from_http(listen: str, timeout_s: float = HTTP_TIMEOUT_S,
              access: HttpAccess | None = None) -> dict[str, Any] | None:
    """The running monitor's status document, or None when nothing (or not timewatch) answers.
    `access`: the config's [http] token and certificate, used as the API requires them."""
    acc = access or HttpAccess()
    url = f"{'https' if acc.tls else 'http'}://{listen}/status.json"
    req = urllib.request.Request(url)
    if acc.token is not None:
        req.add_header("Authorization", f"Bearer {acc.token.reveal()}")
    ctx = _client_tls(acc.cert_file) if acc.cert_file else None
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=ctx) as r:  # noqa: S310
            doc = json.loads(r.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if not isinstance(doc, dict) or "sources" not in doc or "active_alerts" not in doc:
        return None
    doc["origin"] = url
    return doc


def from_store(cfg: Config) -> dict[str, Any]:
    """The status document built from the store's latest snapshot and active alerts."""
    try:
        st = Store(cfg.store_path, readonly=True)
    except StoreError as e:
        raise StatusUnavailable(str(e)) from None
    try:
        snap = st.latest_snapshot()
        active = st.active_alerts()
    except StoreError as e:  # a corrupt store says so
        raise StatusUnavailable(str(e)) from None
    finally:
        st.close()
    doc = status_document(cfg.host, snap, active, None, None)
    doc["origin"] = f"store {cfg.store_path}"
    return doc


def get_status(cfg: Config) -> dict[str, Any]:
    listen = cfg.http_listen
    doc = from_http(listen, access=cfg.http_access) if listen else None
    if doc is None:
        try:
            doc = from_store(cfg)
        except StatusUnavailable as e:
            asked = f"no monitor answers at http://{listen}/status.json and " if listen else ""
            raise StatusUnavailable(f"{asked}{e}") from None
    note = damaged_note(cfg.store_path)  # a corrupt store the monitor moved aside
    if note:
        doc["warnings"] = [*doc.get("warnings", []), note]
    return doc


def fmt_s(x: float | None) -> str:
    """A time difference in a readable unit, with its sign."""
    if x is None:
        return "-"
    a = abs(x)
    if a >= 1:
        return f"{x:+.3f} s"
    if a >= 1e-3:
        return f"{x * 1e3:+.3f} ms"
    if a >= 1e-6:
        return f"{x * 1e6:+.3f} us"
    return f"{x * 1e9:+.0f} ns"


def _utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "-"
    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(doc: dict[str, Any]) -> str:
    """The table `timewatch status` prints."""
    out = [f"{doc.get('host', '')}: status at {_utc(doc.get('t_ns'))} (from {doc.get('origin')})"]
    cols = ("source", "kind", "group", "offset", "error bound", "verdict", "reason")
    rows = [cols]
    for s in doc.get("sources", []):
        bound = s.get("bound_s")
        rows.append((s["src"], s.get("kind", ""), s.get("group", ""), fmt_s(s.get("offset_s")),
                     "-" if bound is None else fmt_s(bound).lstrip("+"), s.get("verdict", ""),
                     s.get("reason", "")))
    if len(rows) == 1:
        out.append("no sources reported yet")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(len(cols) - 1)]
        for r in rows:
            out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))
                       + "  " + r[-1])
    c = doc.get("consensus")
    if c:
        q = "quorum" if c.get("quorum") else "NO QUORUM"
        bound = c.get("bound_s")
        out.append(f"consensus: {q}, {c.get('groups_agreeing')} of {c.get('groups_voting')} "
                   f"trust groups agree; host offset {fmt_s(c.get('offset_s'))}"
                   + ("" if bound is None else f" +/- {fmt_s(bound).lstrip('+')}"))
    else:
        out.append("consensus: none yet")
    for w in doc.get("warnings", []):
        out.append(f"warning: {w}")
    alerts = doc.get("active_alerts", [])
    out.append(f"active alerts: {len(alerts) or 'none'}")
    for a in alerts:
        srcs = ",".join(a.get("sources", [])) or "host"
        out.append(f"  {a.get('severity', ''):8} {a['code']:24} {srcs:16} since "
                   f"{_utc(a.get('t_ns'))}  {a.get('message', '')}")
    return "\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    try:
        doc = get_status(cfg)
    except StatusUnavailable as e:
        print(f"timewatch status: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(render(doc))
    return 0
