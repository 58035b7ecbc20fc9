"""The status API: `GET /status.json`, `GET /metrics` (Prometheus text), `GET /healthz`.

A `ThreadingHTTPServer` in a daemon thread serves a view that `handle` keeps up to date: the
latest snapshot, the active alerts, counters. Metric names follow chrony_exporter's style
(`namespace_subsystem_name_unit`, gauges for state, `_total` counters). docs/http.md documents
every field and metric. `GET /` is the status page (sinks/statuspage.py).

Access ([http], `config.HttpAccess`): with a token every request needs `Authorization: Bearer
TOKEN` (compared with `hmac.compare_digest`; 401 otherwise), `/healthz` too unless
`healthz_public`; with `cert_file`/`key_file` the server speaks only TLS (the handshake runs in
the request's thread, so a client that stalls it holds no one else up). The config refuses an
address other than 127.0.0.1/::1/localhost without both, unless `insecure = true`.
"""

from __future__ import annotations

import errno
import hmac
import logging
import math
import platform
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .. import __version__
from ..config import Config
from ..engine.vote import Verdict
from ..records import Event, Output, Sample, Snapshot, SourceStatus
from . import monitorfile, statuspage, to_json

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9470"  # docs/config.md
CONTENT_METRICS = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format 0.0.4
# Seconds the server thread waits between checks for shutdown (and for overdue clients).
POLL_S = 0.5
# Clients served at once; a connection beyond this is closed as soon as it is accepted. Each
# takes a thread and a descriptor: the bound keeps the readers' sockets available.
MAX_CONNECTIONS = 32
# A client has this long, in total, to send its request and read the answer (a deadline per
# connection, not per read: a client trickling one byte a second is cut off at it too). With TLS
# the handshake counts too: it runs in the connection's own thread, within this deadline.
REQUEST_TIMEOUT_S = 5.0


class HttpListenError(Exception):
    """The listen address cannot be bound (in use, not local, bad host)."""


def split_listen(listen: str) -> tuple[str, int]:
    """"HOST:PORT" or "[V6]:PORT" -> (host, port)."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"http.listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def status_document(host: str, snap: Snapshot | None, active: list[Event],
                    counters: dict[str, Any] | None,
                    last_output_age_s: float | None) -> dict[str, Any]:
    """The /status.json object (docs/http.md); `timewatch status` builds the same from the store."""
    d: dict[str, Any] = {"host": host, "t_ns": None, "consensus": None, "holdover_ppm": None,
                         "sources": []}
    if snap is not None:
        sd = snap.to_dict()
        d.update(t_ns=sd["t_ns"], consensus=sd["consensus"], holdover_ppm=sd["holdover_ppm"],
                 sources=sd["sources"])
    d["active_alerts"] = [e.to_dict() for e in active]
    d["counters"] = counters
    d["last_output_age_s"] = last_output_age_s
    return d


class _View:
    """What the engine last said, kept for the request threads (all access under `lock`)."""

    def __init__(self, cfg: Config):
        self.lock = threading.Lock()
        self.host = cfg.host
        self.kinds = {s.id: (s.kind, s.group) for s in cfg.sources}
        self.snapshot: Snapshot | None = None
        self.active: dict[str, Event] = {}  # id -> the alert, in raise order
        self.events_total: Counter[tuple[str, str]] = Counter()  # (type, code)
        self.samples_total: Counter[str] = Counter()  # source
        self.last_output: float | None = None  # monotonic time of the last handle()
        self.monitor: dict[str, Any] | None = None  # pid, host, state_dir, listen (monitorfile)
        self.history = statuspage.History()  # the last hour, for the page at /
        self.refresh_s = max(2, min(statuspage.DEFAULT_REFRESH_S,
                                    round(cfg.detect.snapshot_interval_s)))
        self.configured = [(s.id, s.kind, s.group) for s in cfg.sources]

    def update(self, outputs: list[Output]) -> None:
        with self.lock:
            self.last_output = time.monotonic()
            for o in outputs:
                if isinstance(o, Sample):
                    self.samples_total[o.src] += 1
                elif isinstance(o, Event):
                    self.events_total[(o.type, o.code)] += 1
                    if o.type == "alert":
                        self.active[o.id] = o
                    else:
                        self.active.pop(o.id, None)
                elif isinstance(o, Snapshot):
                    self.snapshot = o
            self.history.add(outputs)

    def age_s(self) -> float | None:
        return None if self.last_output is None else time.monotonic() - self.last_output

    def status(self) -> dict[str, Any]:
        with self.lock:
            events: dict[str, dict[str, int]] = {}
            for (typ, code), n in sorted(self.events_total.items()):
                events.setdefault(typ, {})[code] = n
            counters = {"samples": dict(sorted(self.samples_total.items())), "events": events}
            age = self.age_s()
            doc = status_document(self.host, self.snapshot, list(self.active.values()),
                                  counters, None if age is None else round(age, 3))
            doc["monitor"] = self.monitor
            return doc

    def metrics(self) -> str:
        with self.lock:
            return _metrics_text(self)

    def page(self) -> str:
        with self.lock:
            age = self.age_s()
            return statuspage.render(statuspage.PageInput(
                self.host, self.snapshot, list(self.active.values()), self.history,
                None if age is None else round(age, 1), self.refresh_s, self.configured))


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}" if kw else ""


def _num(x: float) -> str:
    return repr(float(x))


class _Family:
    def __init__(self, out: list[str], name: str, typ: str, help_: str):
        self.out, self.name = out, name
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {typ}")

    def add(self, value: float, **labels: str) -> None:
        if math.isfinite(value):  # a non-finite number is no measurement: left out
            self.out.append(f"{self.name}{_labels(**labels)} {_num(value)}")


def _metrics_text(v: _View) -> str:
    out: list[str] = []
    snap = v.snapshot
    srcs = snap.sources if snap is not None else ()
    # Every configured source appears, even before the first snapshot (kind and group from cfg).
    ids = [s.src for s in srcs] + [sid for sid in v.kinds if sid not in {s.src for s in srcs}]
    info = {s.src: (s.kind, s.group) for s in srcs} | {k: kg for k, kg in v.kinds.items()
                                                        if k not in {s.src for s in srcs}}

    def lab(sid: str) -> dict[str, str]:
        kind, group = info.get(sid, ("", ""))
        return {"source": sid, "group": group, "kind": kind}

    f = _Family(out, "timewatch_source_offset_seconds", "gauge",
                "Source time minus host realtime, latest estimate, in seconds.")
    for s in srcs:
        if s.offset_s is not None:
            f.add(s.offset_s, **lab(s.src))
    f = _Family(out, "timewatch_source_bound_seconds", "gauge",
                "Half-width of the source's error interval, in seconds.")
    for s in srcs:
        if s.bound_s is not None:
            f.add(s.bound_s, **lab(s.src))
    f = _Family(out, "timewatch_source_verdict", "gauge",
                "1 for the source's current verdict, 0 for the others.")
    verdict = {s.src: s.verdict for s in srcs}
    for sid in ids:
        for vd in Verdict:
            f.add(1.0 if verdict.get(sid, Verdict.INIT.value) == vd.value else 0.0,
                  **lab(sid), verdict=vd.value)
    f = _Family(out, "timewatch_source_authenticated", "gauge",
                "1 when every reply the source gives is authenticated (NTS), else 0.")
    for s in srcs:
        f.add(1.0 if s.auth else 0.0, **lab(s.src))
    f = _Family(out, "timewatch_source_last_sample_age_seconds", "gauge",
                "Seconds from the source's last usable sample to the snapshot.")
    for s in srcs:
        if s.last_ns is not None and snap is not None:
            f.add(max(0, snap.t_ns - s.last_ns) / 1e9, **lab(s.src))
    f = _Family(out, "timewatch_source_samples_total", "counter",
                "Samples accepted from the source since the monitor started.")
    for sid in ids:
        f.add(v.samples_total.get(sid, 0), **lab(sid))

    if snap is not None:
        f = _Family(out, "timewatch_consensus_offset_seconds", "gauge",
                    "Consensus time minus host realtime, in seconds.")
        if snap.consensus_offset_s is not None:
            f.add(snap.consensus_offset_s)
        f = _Family(out, "timewatch_consensus_bound_seconds", "gauge",
                    "Half-width of the consensus interval, in seconds.")
        if snap.consensus_bound_s is not None:
            f.add(snap.consensus_bound_s)
        _Family(out, "timewatch_consensus_quorum", "gauge",
                "1 when a strict majority of trust groups agree, else 0.").add(float(snap.quorum))
        _Family(out, "timewatch_consensus_groups_agreeing", "gauge",
                "Trust groups inside the consensus interval.").add(snap.groups_agreeing)
        _Family(out, "timewatch_consensus_groups_voting", "gauge",
                "Trust groups with a usable estimate.").add(snap.groups_voting)
        if snap.holdover_ppm is not None:
            _Family(out, "timewatch_holdover_frequency_ppm", "gauge",
                    "Raw oscillator frequency against the consensus, in ppm.").add(
                snap.holdover_ppm)
        _Family(out, "timewatch_snapshot_timestamp_seconds", "gauge",
                "Time of the latest status snapshot (Unix seconds).").add(snap.t_ns / 1e9)

    _status_metrics(out, srcs, lab)
    wander = next((st.fields["holdover_wander_ppm"] for st in srcs
                   if _is_num(st.fields.get("holdover_wander_ppm"))), None)
    if wander is not None:
        _Family(out, "timewatch_holdover_wander_ppm", "gauge",
                "The raw oscillator's measured frequency wander (Allan deviation over 10-minute "
                "blocks), in ppm.").add(wander)

    f = _Family(out, "timewatch_alerts_active", "gauge", "Active alerts per code.")
    active: Counter[str] = Counter(e.code for e in v.active.values())
    for code in sorted(set(active) | {c for _, c in v.events_total}):
        f.add(active.get(code, 0), code=code)
    f = _Family(out, "timewatch_events_total", "counter",
                "Alert and clear events since the monitor started.")
    for (typ, code), n in sorted(v.events_total.items()):
        f.add(n, type=typ, code=code)
    age = v.age_s()
    if age is not None:
        _Family(out, "timewatch_last_output_age_seconds", "gauge",
                "Seconds since the engine last handed output to the sinks.").add(age)
    _Family(out, "timewatch_build_info", "gauge",
            "Always 1; the labels say which timewatch and Python run.").add(
        1.0, version=__version__, python=platform.python_version())
    return "\n".join(out) + "\n"


# A source's status numbers (its tracker's `status_fields`) as metrics: field -> (name, type,
# help). A source gets a metric for each field its status holds as a number (docs/http.md).
STATUS_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("fix", "timewatch_gnss_fix", "gauge",
     "Fix of the receiver's latest epoch: 0 none, 2 2D, 3 3D."),
    ("valid", "timewatch_gnss_fix_valid", "gauge",
     "1 when the receiver's latest epoch is usable (a valid fix and date), else 0."),
    ("sats_used", "timewatch_gnss_satellites_used", "gauge", "Satellites used in the fix."),
    ("sats_in_view", "timewatch_gnss_satellites_visible", "gauge", "Satellites in view."),
    ("cn0_min_db_hz", "timewatch_gnss_cn0_min_dbhz", "gauge",
     "Weakest satellite's carrier-to-noise density, in dB-Hz."),
    ("cn0_mean_db_hz", "timewatch_gnss_cn0_mean_dbhz", "gauge",
     "Mean carrier-to-noise density over the satellites, in dB-Hz."),
    ("cn0_max_db_hz", "timewatch_gnss_cn0_max_dbhz", "gauge",
     "Strongest satellite's carrier-to-noise density, in dB-Hz."),
    ("cn0_std_db_hz", "timewatch_gnss_cn0_stddev_dbhz", "gauge",
     "Spread (standard deviation) of the satellites' C/N0, in dB-Hz: a spoofer's is small."),
    ("position_error_m", "timewatch_gnss_position_error_meters", "gauge",
     "Distance of the fix from the surveyed or learned antenna position, in meters."),
    ("jitter_s", "timewatch_pps_jitter_seconds", "gauge",
     "Smoothed jitter of the pulse edges against their phase line, in seconds."),
    ("missing_total", "timewatch_pps_missing_pulses_total", "counter",
     "Pulses missing (sequence gaps, seconds without an edge) since the monitor started."),
    ("outliers", "timewatch_pps_outliers_total", "counter",
     "Pulses kept out of the estimate as off the phase line since the monitor started."),
    ("interval_faults", "timewatch_pps_interval_faults_total", "counter",
     "Pulses off the 1-s train (extra, double, shifted) since the monitor started."),
    ("delay_s", "timewatch_ntp_delay_seconds", "gauge",
     "Round-trip delay of the server's latest reply, in seconds."),
    ("stratum", "timewatch_ntp_stratum", "gauge", "Stratum of the server's latest reply."),
)


def _is_num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _status_metrics(out: list[str], srcs: tuple[SourceStatus, ...],
                    lab: Callable[[str], dict[str, str]]) -> None:
    for key, name, typ, help_ in STATUS_METRICS:
        have = [(st.src, st.fields[key]) for st in srcs
                if _is_num(st.fields.get(key)) or isinstance(st.fields.get(key), bool)]
        if not have:
            continue
        f = _Family(out, name, typ, help_)
        for sid, x in have:
            f.add(float(x), **lab(sid))


class _Server(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS clients at once, each within REQUEST_TIMEOUT_S (the serving loop
    shuts an overdue connection down); one request per connection (HTTP/1.0)."""

    daemon_threads = True
    allow_reuse_address = True  # TIME_WAIT only: a listening socket still gives EADDRINUSE
    request_queue_size = 128
    view: _View
    healthy_within_s: float
    token: bytes | None = None  # the bearer token every request must carry
    healthz_public = False  # /healthz answers without the token
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:  # the handshake waits for the request's own thread
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(REQUEST_TIMEOUT_S)
            try:
                request.do_handshake()
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                log.debug("http %s: TLS handshake failed: %s", client_address[0], e)
                return
        super().finish_request(request, client_address)

    def server_activate(self) -> None:
        super().server_activate()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.deadlines: dict[socket.socket, float] = {}
        self.deadlines_lock = threading.Lock()
        self.refused = 0  # connections closed at once: MAX_CONNECTIONS were busy
        self.timed_out = 0  # connections cut at REQUEST_TIMEOUT_S

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th...: not one line each
                log.warning("http: %d clients busy: connection from %s closed (%d so far)",
                            MAX_CONNECTIONS, client_address[0], self.refused)
            self.shutdown_request(request)
            return
        with self.deadlines_lock:
            self.deadlines[request] = time.monotonic() + REQUEST_TIMEOUT_S
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def _done(self, request: Any) -> None:
        with self.deadlines_lock:
            if self.deadlines.pop(request, None) is None:
                return
        self.slots.release()

    def service_actions(self) -> None:
        """Run by serve_forever between requests and every POLL_S: cut overdue clients."""
        now = time.monotonic()
        with self.deadlines_lock:
            overdue = [s for s, t in self.deadlines.items() if t <= now]
        for s in overdue:
            self.timed_out += 1
            try:
                s.shutdown(socket.SHUT_RDWR)  # its thread's read ends; the thread closes it
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or was cut off: one debug line, never a traceback."""
        log.debug("http %s: %s", client_address[0] if client_address else "?",
                  sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "timewatch"
    timeout = REQUEST_TIMEOUT_S  # per read; the server's deadline bounds the whole request

    def version_string(self) -> str:
        """The `Server:` header: the product only, never the Python version."""
        return self.server_version

    def _authorized(self, path: str) -> bool:
        token = self.server.token
        if token is None or (path == "/healthz" and self.server.healthz_public):
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        view = self.server.view
        if not self._authorized(path):
            self._send(401, "text/plain", b"unauthorized: send Authorization: Bearer TOKEN\n",
                       {"WWW-Authenticate": 'Bearer realm="timewatch"'})
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", view.page().encode())
        elif path == "/status.json":
            self._send(200, "application/json",
                       to_json(view.status(), indent=1).encode() + b"\n")
        elif path == "/metrics":
            self._send(200, CONTENT_METRICS, view.metrics().encode())
        elif path == "/healthz":
            with view.lock:
                age = view.age_s()
            limit = self.server.healthy_within_s
            if age is not None and age <= limit:
                self._send(200, "text/plain", f"ok: engine output {age:.1f} s ago\n".encode())
            elif age is None:
                self._send(503, "text/plain", b"no engine output yet\n")
            else:
                self._send(503, "text/plain",
                           f"no engine output for {age:.1f} s (limit {limit:g} s)\n".encode())
        else:
            self._send(404, "text/plain", b"not found: try /, /status.json, /metrics, /healthz\n")

    def _send(self, code: int, ctype: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
        log.debug("http %s: " + format, self.client_address[0], *args)


def tls_context(cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """The server's TLS context (TLS 1.2 or later) from a PEM certificate (chain) and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise HttpListenError(f"http.cert_file {cert_file} / key_file {key_file}: cannot load "
                              f"the certificate and its key: {getattr(e, 'strerror', None) or e}"
                              ) from None
    return ctx


class HttpSink:
    """Serves the engine's latest state over HTTP; `handle` only updates an in-memory view."""

    name = "http"

    def __init__(self, cfg: Config, *, healthy_within_s: float | None = None):
        listen = cfg.http_listen or DEFAULT_LISTEN
        host, port = split_listen(listen)
        self.view = _View(cfg)
        # The engine emits a snapshot every snapshot_interval_s of ticks: two missed means stuck.
        self.healthy_within_s = (healthy_within_s if healthy_within_s is not None
                                 else 2 * cfg.detect.snapshot_interval_s + 1.0)
        cls = type("_Server", (_Server,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        try:
            self.server: _Server = cls((host, port), _Handler)
        except OSError as e:
            hint = (" (another timewatch running? choose another port in [http] listen)"
                    if e.errno == errno.EADDRINUSE else "")
            raise HttpListenError(
                f"http.listen {listen}: cannot listen: {e.strerror or e}{hint}") from None
        self.server.view = self.view
        self.server.healthy_within_s = self.healthy_within_s
        acc = cfg.http_access
        try:
            self.server.tls = tls_context(acc.cert_file, acc.key_file) if acc.tls else None
        except HttpListenError:
            self.server.server_close()
            raise
        self.server.token = acc.token.reveal().encode() if acc.token is not None else None
        self.server.healthz_public = acc.healthz_public
        self.address = f"{host if ':' not in host else f'[{host}]'}:{self.server.server_port}"
        self.scheme = "https" if acc.tls else "http"
        # Which monitor this is, in /status.json and in <state_dir>/monitor.json (status).
        self._state_dir = cfg.state_dir
        self.view.monitor = monitorfile.identity(cfg.host, cfg.state_dir, self.address)
        monitorfile.write(cfg.state_dir, self.view.monitor)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(POLL_S,),
                                        name="http", daemon=True)
        self._thread.start()
        auth = "bearer token required" if acc.token is not None else "no token"
        if acc.token is not None and acc.healthz_public:
            auth += " (/healthz open)"
        log.info("status API on %s://%s (/status.json, /metrics, /healthz; %s)", self.scheme,
                 self.address, auth)

    def handle(self, outputs: list[Output]) -> None:
        self.view.update(outputs)

    def close(self) -> None:
        if self.view.monitor is not None:
            monitorfile.remove(self._state_dir, self.view.monitor)
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5.0)
