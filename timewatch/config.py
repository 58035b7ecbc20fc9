"""TOML config (docs/config.md) -> typed config. Every error names file:line: key.

tomllib reports positions only for syntax errors, so `_KeyLines` finds a key's line itself.
Secrets (tokens, signing keys, secret URLs) are `Secret`s: their repr never shows the value.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import kinds
from .engine.params import AT_MOST, Detect, detect_keys, range_problem
from .engine.vote import AUTH_MODES
from .records import Header, SourceInfo
from .secretfile import (
    SecretFileError,
    check_private,
    credential_path,
    read_credential,
    read_private,
)

WEBHOOK_FORMATS = ("standard", "alertmanager", "slack", "teams", "pagerduty", "ntfy")
SEVERITIES = ("info", "warning", "critical")


class ConfigError(Exception):
    """A config that cannot run. str() is `file:line: key: what` (cli exits 2 with it)."""

    def __init__(self, file: str, line: int | None, key: str, what: str):
        self.file, self.line, self.key, self.what = file, line, key, what
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {what}" if key else f"{where}: {what}")


class Secret:
    """A secret value that never shows in logs, reprs or check-config output."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str):
        self._value = value
        self.origin = origin  # "file /etc/...", "env X", "inline"

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<{self.origin}>)"

    __str__ = __repr__


@dataclass(frozen=True)
class SourceConfig:
    """One `[[sources]]` entry. Which keys a kind takes, their defaults and checks are its
    `timewatch.kinds` registration's; the keys several kinds share are fields here, a kind's own
    other keys are in `options`."""

    id: str
    kind: str
    group: str
    device: str | None = None  # gnss, pps
    baud: int = 9600  # gnss
    position: tuple[float, float, float] | None = None  # gnss, gpsd
    label_from: str | None = None  # pps
    server: str | None = None  # ntp; gpsd: host
    port: int | None = None  # ntp (123), gpsd (2947)
    poll_s: float = 64.0  # ntp; chrony: how often to ask chronyc
    socket: str | None = None  # chrony: chronyd's command socket
    options: dict[str, Any] = field(default_factory=dict, hash=False)  # a kind's own other keys

    def info(self) -> SourceInfo:
        """This source in a trace header: kind, group, and those of its keys a header carries."""
        return SourceInfo(self.kind, self.group,
                          **{k: getattr(self, k) for k in kinds.get(self.kind).header_keys()})

    def infos(self) -> dict[str, SourceInfo]:
        """The trace-header sources this config source produces (its kind's `infos`: itself,
        or e.g. a gpsd source's receiver and PPS)."""
        return kinds.get(self.kind).infos(self)


@dataclass(frozen=True)
class StoreConfig:
    path: str = "timewatch.db"
    retention_days: float = 30.0


@dataclass(frozen=True)
class InfluxConfig:
    url: str
    org: str = "timewatch"
    bucket: str = "timewatch"
    token: Secret | None = None
    batch_size: int = 500
    flush_interval_s: float = 5.0
    timeout_s: float = 10.0
    spool_max_mb: float = 512.0
    api: str = "v2"  # "v1": InfluxDB 1.x's /write (1.0-1.7 have no /api/v2/write)


@dataclass(frozen=True)
class WebhookConfig:
    url: Secret  # a Slack/Teams URL is itself a secret
    format: str = "standard"
    secret: Secret | None = None
    min_severity: str = "warning"
    timeout_s: float = 10.0
    group_window_s: float = 5.0  # slack/teams/ntfy: a burst within this window is one message
    resend_s: float = 60.0  # alertmanager: re-send active alerts this often (docs: 30 s..3 min)
    retry_initial_s: float = 1.0  # first retry delay; doubles per failure (with jitter)
    retry_max_s: float = 300.0  # longest delay between retries

    @property
    def host(self) -> str:
        """What logs may show: the host only."""
        m = re.match(r"^[a-z]+://([^/@]*@)?(\[[^\]]+\]|[^/:?#]+)", self.url.reveal())
        return m.group(2) if m else "?"


@dataclass(frozen=True)
class HttpAccess:
    """Who may use the status API ([http]; docs/http.md): a bearer token, TLS, and the
    exceptions. Elsewhere than 127.0.0.1, ::1 and localhost the token and TLS are required
    unless `insecure`."""

    token: Secret | None = None
    cert_file: str | None = None  # PEM certificate (chain) the API presents
    key_file: str | None = None  # its private key: a secret file (or a systemd credential)
    insecure: bool = False  # serve off loopback without token and TLS all the same
    healthz_public: bool = False  # /healthz answers without the token

    @property
    def tls(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True)
class EvidenceConfig:
    """[evidence]: how often the trace and the event log are sealed (docs/evidence.md)."""

    checkpoint_records: int = 1000
    checkpoint_s: float = 60.0
    key_file: str | None = None  # default: state_dir/evidence.key


@dataclass(frozen=True)
class Config:
    path: str
    host: str
    state_dir: Path
    sources: tuple[SourceConfig, ...]
    store: StoreConfig = field(default_factory=StoreConfig)
    influxdb: InfluxConfig | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    http_listen: str | None = "127.0.0.1:9470"
    detect: Detect = field(default_factory=Detect)
    warnings: tuple[str, ...] = ()
    auth_mode: str = "mix"  # [vote] auth_mode: how authenticated (NTS) sources weigh (docs/nts.md)
    http_access: HttpAccess = field(default_factory=HttpAccess)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)

    def header(self, created_ns: int = 0) -> Header:
        infos: dict[str, SourceInfo] = {}
        for s in self.sources:
            infos.update(s.infos())
        return Header(self.host, created_ns, infos, detect_keys(self.detect))

    @property
    def key_path(self) -> Path:
        """The appliance's Ed25519 signing key (docs/evidence.md)."""
        return Path(self.evidence.key_file) if self.evidence.key_file else \
            self.state_dir / "evidence.key"

    @property
    def store_path(self) -> Path:
        p = Path(self.store.path)
        return p if p.is_absolute() else self.state_dir / p


# ---------------------------------------------------------------------------------------------


class _KeyLines:
    """Finds the line of `table[i].key` in TOML text (tomllib gives positions for syntax only)."""

    _HDR = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"]+)\s*=")

    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        table, counts = "", {}  # type: str, dict[str, int]
        for n, line in enumerate(text.splitlines(), 1):
            m = self._HDR.match(line)
            if m:
                name = m.group(2).replace('"', "").replace(" ", "")
                if m.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = f"{name}[{counts[name]}]"
                else:
                    table = name
                self.lines.setdefault(table, n)
                continue
            m = self._KEY.match(line)
            if m:
                k = m.group(1).replace('"', "")
                self.lines.setdefault(f"{table}.{k}" if table else k, n)

    def line(self, key: str) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None


class _Loader:
    def __init__(self, path: str, text: str):
        self.path = path
        self.kl = _KeyLines(text)
        self.warnings: list[str] = []

    def err(self, key: str, what: str) -> ConfigError:
        return ConfigError(Path(self.path).name if self.path else "<config>", self.kl.line(key),
                           key, what)

    def table(self, d: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        for k in d:
            if k not in allowed:
                near = difflib.get_close_matches(k, sorted(allowed), n=1, cutoff=0.6)
                raise self.err(f"{key}.{k}" if key else k,
                               f"unknown key (expected one of: {', '.join(sorted(allowed))})"
                               + (f"; did you mean {near[0]}?" if near else ""))
        return d

    def get(self, d: dict[str, Any], key: str, name: str, typ: type | tuple[type, ...],
            default: Any = None, lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] | None = None) -> Any:
        if name not in d:
            return default
        v = d[name]
        full = f"{key}.{name}" if key else name
        types = typ if isinstance(typ, tuple) else (typ,)
        if float in types and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            want = " or ".join(t.__name__ for t in types)
            raise self.err(full, f"must be {want}, got {v!r}")
        num = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
        if num is not None and lo is not None and hi is not None and not (lo <= num <= hi):
            raise self.err(full, f"must be between {lo:g} and {hi:g}, got {v!r}")
        if num is not None and lo is not None and hi is None and num < lo:
            raise self.err(full, f"must be at least {lo:g}, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(full, f"must be one of {', '.join(choices)}, got {v!r}")
        return v

    def secret(self, d: dict[str, Any], key: str, name: str) -> Secret | None:
        """`name` inline, `name_file`, `name_env` or `name_credential`: at most one of them. A
        file accessible by group or others is refused (as ssh refuses such a private key)."""
        given = [k for k in (name, f"{name}_file", f"{name}_env", f"{name}_credential")
                 if k in d]
        if len(given) > 1:
            raise self.err(f"{key}.{given[1]}", f"give only one of {', '.join(given)}")
        if not given:
            return None
        k = given[0]
        v = self.get(d, key, k, str)
        if k == name:
            self.warnings.append(f"{key}.{name}: an inline secret belongs in {name}_file or "
                                 f"{name}_env")
            return Secret(v, "inline")
        try:
            if k.endswith("_file"):
                return Secret(read_private(v), f"file {v}")
            if k.endswith("_credential"):
                return Secret(*read_credential(v))
        except SecretFileError as e:
            raise self.err(f"{key}.{k}", str(e)) from None
        if v not in os.environ:
            raise self.err(f"{key}.{k}", f"environment variable {v} is not set")
        return Secret(os.environ[v], f"env {v}")


    def secret_path(self, d: dict[str, Any], key: str, name: str) -> str | None:
        """A secret handed on by path (a TLS key): `name_file` or `name_credential`, checked
        as `secret` checks a file."""
        given = [k for k in (f"{name}_file", f"{name}_credential") if k in d]
        if len(given) > 1:
            raise self.err(f"{key}.{given[1]}", f"give only one of {', '.join(given)}")
        if not given:
            return None
        k = given[0]
        v = self.get(d, key, k, str)
        try:
            if k.endswith("_credential"):
                p, systemd = credential_path(v)
                if not systemd:
                    check_private(p)
                return str(p)
            check_private(v)
        except SecretFileError as e:
            raise self.err(f"{key}.{k}", str(e)) from None
        return str(v)


# Where the API may serve without a token: the default address and its IPv6 and name forms.
# Not the rest of 127.0.0.0/8: with net.ipv4.conf.*.route_localnet=1 (set by some container and
# NAT set-ups) those addresses are reachable from outside, so they count as elsewhere.
LOCAL_ONLY = ("127.0.0.1", "::1", "localhost")


def is_local_only(host: str) -> bool:
    """True for the addresses only this machine reaches (LOCAL_ONLY)."""
    return host.strip("[]").lower() in LOCAL_ONLY


def _http_access(L: _Loader, http: dict[str, Any], listen: str) -> HttpAccess:
    """[http]'s token, TLS and exceptions; elsewhere than LOCAL_ONLY the token and TLS, or
    insecure."""
    k = "http"
    token = L.secret(http, k, "token")
    cert = L.get(http, k, "cert_file", str)
    keyf = L.secret_path(http, k, "key")
    if (cert is None) != (keyf is None):
        raise L.err(f"{k}.{'key_file' if keyf is None else 'cert_file'}",
                    "cert_file and key_file (or key_credential) go together")
    if cert is not None and not os.access(cert, os.R_OK):
        raise L.err(f"{k}.cert_file", f"cannot read {cert}")
    acc = HttpAccess(token=token, cert_file=cert, key_file=keyf,
                     insecure=L.get(http, k, "insecure", bool, False),
                     healthz_public=L.get(http, k, "healthz_public", bool, False))
    if not listen:
        return acc
    host = listen.rpartition(":")[0].strip("[]")
    if host in ("0.0.0.0", "::"):
        L.warnings.append(f"http.listen {listen}: listens on every interface of this machine; "
                          "give the one address the API is for")
    if is_local_only(host):
        return acc
    missing = [w for w, ok in (("a bearer token (token_file, token_env or token_credential)",
                                token is not None),
                               ("TLS (cert_file and key_file)", acc.tls)) if not ok]
    if missing and not acc.insecure:
        raise L.err(f"{k}.listen", f"{listen} is not 127.0.0.1, ::1 or localhost: the API there "
                                   f"needs {' and '.join(missing)}, or insecure = true to serve "
                                   "it without")
    if missing:
        L.warnings.append(f"http.listen {listen}: insecure = true: served without "
                          f"{' and '.join(m.split(' (')[0] for m in missing)}")
    return acc


def _default_sources() -> list[dict[str, Any]]:
    """`run` without -c: public NTP servers from different operators, and local GNSS/PPS."""
    srcs: list[dict[str, Any]] = [
        {"id": n.split(".")[-2] if n.count(".") > 1 else n, "kind": "ntp", "server": n}
        for n in ("time.cloudflare.com", "time.google.com", "ptbtime1.ptb.de", "ntp.nict.jp",
                  "time.nist.gov")
    ]
    srcs[0]["id"], srcs[1]["id"], srcs[2]["id"] = "cloudflare", "google", "ptb"
    srcs[3]["id"], srcs[4]["id"] = "nict", "nist"
    if Path("/dev/serial0").exists():
        srcs.append({"id": "gnss0", "kind": "gnss", "device": "/dev/serial0", "group": "gnss"})
        if Path("/dev/pps0").exists():
            srcs.append({"id": "pps0", "kind": "pps", "device": "/dev/pps0",
                         "label_from": "gnss0", "group": "gnss"})
    return srcs


def load(path: str | Path | None) -> Config:
    """Load and validate a config file (None: the built-in default). Raises ConfigError."""
    if path is None:
        return parse({"sources": _default_sources()}, "<default>", "")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except PermissionError:
        from .access import fix

        raise ConfigError(str(p), None, "", f"cannot read: permission denied: {fix(p)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), None, "", f"cannot read: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(p.name, int(m.group(1)) if m else None, "",
                          f"TOML syntax error: {e}") from None
    return parse(data, str(p), text)


_SOURCE_FIELDS = {f.name for f in fields(SourceConfig)}


def _source(L: _Loader, key: str, s: dict[str, Any], seen: set[str]) -> SourceConfig:
    """One `[[sources]]` entry, checked against its kind's registration."""
    sid = L.get(s, key, "id", str)
    if not sid:
        raise L.err(f"{key}.id", "required")
    if sid in seen:
        raise L.err(f"{key}.id", f"duplicate source id {sid!r}")
    seen.add(sid)
    name = L.get(s, key, "kind", str, choices=tuple(kinds.KINDS))
    if name is None:
        raise L.err(f"{key}.kind", f"required (one of {', '.join(kinds.KINDS)})")
    kind = kinds.KINDS[name]
    L.table(s, key, {"id", "kind", "group", *kind.keys})
    group = L.get(s, key, "group", str, kind.default_group or sid)
    values: dict[str, Any] = {}
    for k, spec in kind.keys.items():
        v = L.get(s, key, k, spec.type, spec.default, lo=spec.lo, hi=spec.hi, choices=spec.choices)
        if v is not None and spec.parse is not None:
            try:
                v = spec.parse(v)
            except ValueError as e:
                raise L.err(f"{key}.{k}", str(e)) from None
        values[k] = v
    for k, spec in kind.keys.items():
        if spec.required and values[k] in (None, ""):
            raise L.err(f"{key}.{k}", f"required for a source of kind {name}")
    given = {k: v for k, v in values.items() if k in _SOURCE_FIELDS and v is not None}
    options = {k: v for k, v in values.items() if k not in _SOURCE_FIELDS}
    return SourceConfig(id=sid, kind=name, group=group, options=options, **given)


def parse(data: dict[str, Any], path: str = "<config>", text: str = "") -> Config:
    L = _Loader(path, text)
    L.table(data, "", {"monitor", "store", "sources", "sinks", "http", "detect", "vote",
                       "evidence"})

    mon = L.table(L.get(data, "", "monitor", dict, {}), "monitor", {"host", "state_dir"})
    host = L.get(mon, "monitor", "host", str, socket.gethostname())
    state_dir = Path(L.get(mon, "monitor", "state_dir", str, "./state"))

    st = L.table(L.get(data, "", "store", dict, {}), "store", {"path", "retention_days"})
    store = StoreConfig(L.get(st, "store", "path", str, "timewatch.db"),
                        L.get(st, "store", "retention_days", float, 30.0, lo=0.01, hi=36500))

    raw_sources = L.get(data, "", "sources", list, [])
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for i, s in enumerate(raw_sources):
        key = f"sources[{i}]"
        if not isinstance(s, dict):
            raise L.err(key, "must be a table ([[sources]])")
        sources.append(_source(L, key, s, seen))
    for i, sc in enumerate(sources):
        if sc.label_from is not None and sc.label_from not in seen:
            raise L.err(f"sources[{i}].label_from", f"no source with id {sc.label_from!r}")
    # A source may add derived sources (gpsd `ID` adds `ID-pps`): no id may be taken twice.
    owner: dict[str, int] = {}
    for i, sc in enumerate(sources):
        for sid in sc.infos():
            j = owner.setdefault(sid, i)
            if j != i:
                def who(x: SourceConfig, sid: str = sid) -> str:
                    return f"{x.kind} source {x.id!r}" + (
                        f" (it adds {sid!r})" if sid != x.id else "")
                raise L.err(f"sources[{i}].id", f"source id {sid!r} is taken twice: by "
                                                f"{who(sc)} and by {who(sources[j])} "
                                                f"(sources[{j}])")

    sinks = L.table(L.get(data, "", "sinks", dict, {}), "sinks", {"influxdb", "webhook"})
    influx = None
    if "influxdb" in sinks:
        k = "sinks.influxdb"
        ix = L.table(L.get(sinks, "sinks", "influxdb", dict), k,
                     {"url", "org", "bucket", "token", "token_file", "token_env", "token_credential",
                      "batch_size", "flush_interval_s", "timeout_s", "spool_max_mb", "api"})
        url = L.get(ix, k, "url", str)
        if not url or not re.match(r"^https?://", url):
            raise L.err(f"{k}.url", f"must be an http(s) URL, got {url!r}")
        api = L.get(ix, k, "api", str, "v2")
        if api not in ("v1", "v2"):
            raise L.err(f"{k}.api", f'must be "v2" (/api/v2/write: InfluxDB 1.8+, 2.x, 3.x, '
                                    f'VictoriaMetrics) or "v1" (/write: InfluxDB 1.x), got {api!r}')
        influx = InfluxConfig(
            url=url, org=L.get(ix, k, "org", str, "timewatch"),
            bucket=L.get(ix, k, "bucket", str, "timewatch"), token=L.secret(ix, k, "token"),
            batch_size=L.get(ix, k, "batch_size", int, 500, lo=1, hi=100_000),
            flush_interval_s=L.get(ix, k, "flush_interval_s", float, 5.0, lo=0.1, hi=3600),
            timeout_s=L.get(ix, k, "timeout_s", float, 10.0, lo=0.1, hi=600),
            spool_max_mb=L.get(ix, k, "spool_max_mb", float, 512.0, lo=1, hi=1_000_000),
            api=api)

    hooks = []
    for i, h in enumerate(L.get(sinks, "sinks", "webhook", list, [])):
        k = f"sinks.webhook[{i}]"
        if not isinstance(h, dict):
            raise L.err(k, "must be a table ([[sinks.webhook]])")
        L.table(h, k, {"url", "url_file", "url_env", "url_credential", "format", "secret",
                       "secret_file", "secret_env", "secret_credential", "min_severity", "timeout_s", "group_window_s", "resend_s",
                       "retry_initial_s", "retry_max_s"})
        url = L.secret(h, k, "url")
        if "url" in h:
            L.warnings.pop()  # a plain URL is not a secret by itself: no warning for it
        if url is None:
            raise L.err(f"{k}.url", "required (or url_file / url_env)")
        if not re.match(r"^https?://", url.reveal()):
            raise L.err(f"{k}.url", "must be an http(s) URL")
        hooks.append(WebhookConfig(
            url=url, format=L.get(h, k, "format", str, "standard", choices=WEBHOOK_FORMATS),
            secret=L.secret(h, k, "secret"),
            min_severity=L.get(h, k, "min_severity", str, "warning", choices=SEVERITIES),
            timeout_s=L.get(h, k, "timeout_s", float, 10.0, lo=0.1, hi=600),
            group_window_s=L.get(h, k, "group_window_s", float, 5.0, lo=0, hi=600),
            resend_s=L.get(h, k, "resend_s", float, 60.0, lo=1, hi=3600),
            retry_initial_s=L.get(h, k, "retry_initial_s", float, 1.0, lo=0.01, hi=3600),
            retry_max_s=L.get(h, k, "retry_max_s", float, 300.0, lo=0.01, hi=86400)))
        wh = hooks[-1]
        if wh.format == "pagerduty" and wh.secret is None:
            raise L.err(f"{k}.secret", "required for format pagerduty (the routing key): "
                                       "secret_file or secret_env")
        sec = wh.secret.reveal() if wh.secret else ""
        if wh.format == "standard" and wh.secret and sec.startswith("whsec_") and \
                not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", sec.removeprefix("whsec_")):
            raise L.err(f"{k}.secret", "a Standard Webhooks secret is whsec_ followed by base64 "
                                       f"(value from {wh.secret.origin} not shown)")

    http = L.table(L.get(data, "", "http", dict, {}), "http",
                   {"listen", "token", "token_file", "token_env", "token_credential",
                    "cert_file", "key_file", "key_credential", "insecure", "healthz_public"})
    listen = L.get(http, "http", "listen", str, "127.0.0.1:9470")
    if listen and not re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\[\]]+):\d{1,5}$", listen):
        raise L.err("http.listen", f"must be HOST:PORT (or \"\" to disable), got {listen!r}")
    access = _http_access(L, http, listen)

    ev = L.table(L.get(data, "", "evidence", dict, {}), "evidence",
                 {"checkpoint_records", "checkpoint_s", "key_file"})
    evidence = EvidenceConfig(
        checkpoint_records=L.get(ev, "evidence", "checkpoint_records", int, 1000, lo=1,
                                 hi=10_000_000),
        checkpoint_s=L.get(ev, "evidence", "checkpoint_s", float, 60.0, lo=0.01, hi=86400),
        key_file=L.get(ev, "evidence", "key_file", str))

    det_raw = L.get(data, "", "detect", dict, {})
    keys = Detect.keys()
    L.table(det_raw, "detect", set(keys))
    det_kw = {}
    for name, typ in keys.items():
        if name in det_raw:
            v = L.get(det_raw, "detect", name, (float,) if typ is float else typ)
            problem = range_problem(name, v)
            if problem is not None:
                raise L.err(f"detect.{name}", problem)
            det_kw[name] = v
    detect = Detect(**det_kw)
    for name, limit in AT_MOST.items():
        if getattr(detect, name) > getattr(detect, limit):
            raise L.err(f"detect.{name}" if name in det_raw else f"detect.{limit}",
                        f"{name} ({getattr(detect, name)}) must not exceed {limit} "
                        f"({getattr(detect, limit)})")

    vote = L.table(L.get(data, "", "vote", dict, {}), "vote", {"auth_mode"})
    auth_mode = L.get(vote, "vote", "auth_mode", str, "mix", choices=AUTH_MODES)
    if auth_mode == "require" and not any(kinds.get(s.kind).authenticated for s in sources):
        L.warnings.append("vote.auth_mode: require with no authenticated (nts) source: no NTP "
                          "server votes")

    return Config(path=path, host=host, state_dir=state_dir, sources=tuple(sources), store=store,
                  influxdb=influx, webhooks=tuple(hooks), http_listen=listen or None,
                  detect=detect, warnings=tuple(L.warnings), auth_mode=auth_mode,
                  http_access=access, evidence=evidence)


def describe_http(cfg: Config) -> str:
    """check-config's line on the status API: where, and who may use it."""
    if not cfg.http_listen:
        return "http: disabled"
    a = cfg.http_access
    host = cfg.http_listen.rpartition(":")[0].strip("[]")
    url = f"{'https' if a.tls else 'http'}://{cfg.http_listen}"
    rules = []
    if a.token is not None:
        rules.append(f"bearer token required ({a.token.origin})")
    if a.tls:
        rules.append(f"TLS with {a.cert_file}")
    if a.token is not None and a.healthz_public:
        rules.append("/healthz without the token")
    if is_local_only(host):
        where = "local only: only this machine reaches it"
        if a.token is None:
            rules.append("no token needed")
    elif a.insecure:
        where = "NOT local only, insecure = true: anyone who reaches the port may use it"
    else:
        where = "not local only: token and TLS required"
    return f"http: {url} ({where}; {', '.join(rules)})"


def redact_url(url: str) -> str:
    """A URL as it may be printed: a password in it (`user:pass@`) shown as `user:***@`."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostport}{slash}{path}"


def describe(cfg: Config) -> str:
    """What `check-config` prints: what would run, never a secret."""
    out = [f"config {cfg.path}: OK", f"host {cfg.host}, state in {cfg.state_dir}",
           f"store: SQLite {cfg.store_path} (retention {cfg.store.retention_days:g} days)"]
    groups: dict[str, list[str]] = {}
    for s in cfg.sources:
        groups.setdefault(s.group, []).append(s.id)
        what = kinds.get(s.kind).describe(s)
        out.append(f"source {s.id}: {s.kind}, group {s.group}: {what}")
    out.append(f"{len(groups)} trust groups: " +
               "; ".join(f"{g} ({', '.join(m)})" for g, m in groups.items()))
    if cfg.influxdb:
        tok = cfg.influxdb.token.origin if cfg.influxdb.token else "no token"
        api = " (api v1: /write)" if cfg.influxdb.api == "v1" else ""
        out.append(f"sink influxdb: {redact_url(cfg.influxdb.url)} org {cfg.influxdb.org} bucket "
                   f"{cfg.influxdb.bucket}{api} (token: {tok})")
    for i, h in enumerate(cfg.webhooks):
        sec = h.secret.origin if h.secret else "unsigned"
        out.append(f"sink webhook[{i}]: {h.format} to {h.host} (min {h.min_severity}; "
                   f"secret: {sec})")
    out.append(describe_http(cfg))
    out.append(f"evidence: trace and event log sealed every {cfg.evidence.checkpoint_records} "
               f"records or {cfg.evidence.checkpoint_s:g} s, signed with {cfg.key_path}")
    changed = {f.name: getattr(cfg.detect, f.name) for f in fields(Detect)
               if getattr(cfg.detect, f.name) != f.default}
    out.append("detect: " + (", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"))
    out.append(f"vote: auth_mode {cfg.auth_mode}")
    for w in cfg.warnings:
        out.append(f"warning: {w}")
    return "\n".join(out)
