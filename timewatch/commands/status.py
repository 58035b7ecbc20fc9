"""`timewatch status [-c CONFIG] [--state-dir DIR] [--json]`: what the running monitor (or else the
store) says now, and which monitor said it.

Asks, in order: the monitor that runs on the state directory (its `<state_dir>/monitor.json`,
written by the HTTP sink, gives its address, a free port too), then the config's `[http] listen`.
A monitor that answers there but runs on another state directory is never shown when a state
directory was named (`--state-dir`, or `-c` whose config has one): status then reads that
directory's store and says which other monitor answered. Without either, whatever answers at the
listen address is shown, with its host, state directory, process id and address.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import ssl
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Config, HttpAccess, load
from ..sinks import monitorfile
from ..sinks.http import status_document
from ..sinks.store import StoreError, damaged_note, open_readonly

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
              http_access: HttpAccess | None = None) -> dict[str, Any] | None:
    """The running monitor's status document, or None when nothing (or not timewatch) answers.
    `http_access`: the config's [http] token and certificate, used as the API requires them."""
    acc = http_access or HttpAccess()
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
        st = open_readonly(cfg.store_path)
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


def who(doc: dict[str, Any]) -> str:
    """Which monitor a status document came from: host, state directory, process, address."""
    m = doc.get("monitor")
    if not isinstance(m, dict):
        return f"a monitor at {doc.get('origin')} (it does not say its state directory)"
    return (f"monitor pid {m.get('pid')} on {m.get('host')}, state dir {m.get('state_dir')}, "
            f"at http://{m.get('listen')}")


def _same_dir(doc: dict[str, Any], state_dir: Path) -> bool:
    m = doc.get("monitor")
    return isinstance(m, dict) and m.get("state_dir") == str(state_dir.resolve())


def get_status(cfg: Config, named: bool = True) -> dict[str, Any]:
    """The status document of the monitor of `cfg.state_dir`, else of its store. `named`: the
    state directory was asked for, so a monitor of another one is not shown (only noted)."""
    doc = _find(cfg, named)
    note = damaged_note(cfg.store_path)  # a corrupt store the monitor moved aside
    if note:
        doc["warnings"] = [*doc.get("warnings", []), note]
    return doc


def _find(cfg: Config, named: bool) -> dict[str, Any]:
    notes: list[str] = []
    asked: list[str] = []
    mine = monitorfile.read(cfg.state_dir)
    listens = [mine["listen"]] if mine else []
    if cfg.http_listen and cfg.http_listen not in listens:
        listens.append(cfg.http_listen)
    for listen in listens:
        asked.append(f"http://{listen}/status.json")
        doc = from_http(listen, http_access=cfg.http_access)
        if doc is None:
            continue
        if not named or _same_dir(doc, cfg.state_dir):
            doc["answered_by"] = who(doc)
            return doc
        notes.append(f"{who(doc)} answered, but it runs on another state directory than "
                     f"{cfg.state_dir.resolve()}: not shown")
    try:
        doc = from_store(cfg)
    except StatusUnavailable as e:
        where = f"no monitor of {cfg.state_dir} answers ({', '.join(asked)}) and " if asked \
            else ""
        raise StatusUnavailable("; ".join([f"{where}{e}", *notes])) from None
    doc["answered_by"] = (f"the store {cfg.store_path} (no monitor of this state directory "
                          "is running)")
    doc["notes"] = notes
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
    out = [f"{doc.get('host', '')}: status at {_utc(doc.get('t_ns'))}",
           f"from {doc.get('answered_by') or doc.get('origin')}"]
    out += [f"note: {n}" for n in doc.get("notes") or ()]
    cols = ("source", "kind", "group", "offset", "error bound", "verdict", "auth", "reason")
    rows = [cols]
    for s in doc.get("sources", []):
        bound = s.get("bound_s")
        rows.append((s["src"], s.get("kind", ""), s.get("group", ""), fmt_s(s.get("offset_s")),
                     "-" if bound is None else fmt_s(bound).lstrip("+"), s.get("verdict", ""),
                     s.get("auth") or "-", s.get("reason", "")))
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
    state_dir = getattr(args, "state_dir", None)
    if state_dir:
        cfg = dataclasses.replace(cfg, state_dir=Path(state_dir))
    try:
        doc = get_status(cfg, named=bool(state_dir or args.config))
    except StatusUnavailable as e:
        print(f"timewatch status: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(render(doc))
    return 0
