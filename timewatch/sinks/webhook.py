"""Alert webhooks: every alert and clear to each `[[sinks.webhook]]`, signed, in order, once.

Per endpoint:
- an **outbox** (`Spool`, SQLite, fsync'd) under `state_dir/webhooks/`: `handle` only appends
  to it, so the engine never waits for a network;
- a **ledger** (SQLite beside it) written only by the delivery thread: which event keys
  (`<id>.<alert|clear>`) were delivered, and which delivered alerts are still open (their clear
  needs their severity, message and start; Alertmanager needs them re-sent while active);
- one **delivery thread** (`spool.SpoolSender`, shared with InfluxDB): takes the oldest items, filters them (`min_severity`; a clear goes
  out when its alert went out), renders them (`webhook_formats`), POSTs, and on any 2xx records
  them in the ledger and then acks them from the outbox. A crash between the two re-reads the
  items on restart and the ledger skips them: each event is delivered once.

Failures: 410 disables the endpoint; 400/413/422 reject that message (logged, dropped, the
queue goes on); anything else (5xx, 429, timeouts, refused connections, 401/403/404) is retried
with exponential back-off and jitter (`backoff.Backoff`, from `retry_initial_s` to
`retry_max_s`), `Retry-After` honoured. Order is kept: nothing overtakes a
message being retried. Logs name an endpoint by its host only.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import sqlite3
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..backoff import Backoff
from ..config import Config, WebhookConfig
from ..evidence import Evidence
from ..records import SEVERITY_RANK, Event, Output, Snapshot
from . import to_json
from .spool import Row, Sent, Spool, SpoolSender
from .webhook_formats import FORMATS, FormatContext, FormatError, Message, Notice

log = logging.getLogger(__name__)

PEEK_MIN = 8  # outbox items examined per pass: twice a message's worth, at least this many
CLOSE_GRACE_S = 5.0  # close(): time left to drain outboxes before what remains waits on disk
RESPONSE_MAX_BYTES = 64 * 1024  # read no more of a receiver's answer than this
EXCERPT_CHARS = 200  # what `webhook test` and the logs show of an answer
RETRY_AFTER_MAX_S = 3600.0  # a Retry-After longer than an hour is taken as an hour
DELIVERED_KEEP_S = 30 * 86400.0  # delivered keys remembered this long (a re-replayed trace)
OPEN_KEEP_S = 90 * 86400.0  # an alert whose clear never came is forgotten after this
IDLE_WAKE_S = 60.0  # an idle delivery thread looks at its outbox at least this often
PRUNE_EVERY_S = 86400.0  # the ledger forgets old keys once a day (and at start)
LEDGER_RETRY_S = 5.0  # a ledger that cannot be written tries its file again this often
REJECTED = (400, 413, 422)  # the receiver refuses this message itself: drop it, go on
USER_AGENT = "timewatch-webhook/1"


# ---------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None  # None: no HTTP answer (connection refused, timeout, TLS error)
    reason: str
    body: bytes = b""
    retry_after_s: float | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(max(when.timestamp() - now_s, 0.0), RETRY_AFTER_MAX_S)


def _cut(conn: http.client.HTTPConnection, fired: threading.Event) -> None:
    """The request's deadline passed: shut its socket down (the blocked read returns)."""
    fired.set()
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def post(url: str, msg: Message, timeout_s: float) -> Response:
    """POST one message within timeout_s in total (connect, send, the whole answer: a receiver
    trickling its answer a byte at a time is cut off too). Never raises for network trouble:
    that is a Response without status."""
    u = urllib.parse.urlsplit(url)
    t0 = time.monotonic()
    conn: http.client.HTTPConnection | None = None
    fired = threading.Event()
    timer: threading.Timer | None = None
    try:
        # the port always given: http.client would read "[::1]"'s last group as one
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.hostname or "", u.port or 443,
                                               timeout=timeout_s,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=timeout_s)
        timer = threading.Timer(timeout_s, _cut, (conn, fired))
        timer.daemon = True
        timer.start()
        headers = {"User-Agent": USER_AGENT, **msg.headers}
        if u.username is not None and "Authorization" not in headers:  # a token wins
            cred = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        try:
            conn.request("POST", (u.path or "/") + (f"?{u.query}" if u.query else ""),
                         body=msg.body, headers=headers)
            r = conn.getresponse()
            body = r.read(RESPONSE_MAX_BYTES)
        finally:
            timer.cancel()
            conn.close()
    except (OSError, http.client.HTTPException, ValueError) as e:
        if timer is not None:
            timer.cancel()
        why = (f"no complete answer within timeout_s = {timeout_s:g} s" if fired.is_set()
               else f"{type(e).__name__}: {e}")
        return Response(None, why, elapsed_s=time.monotonic() - t0)
    return Response(r.status, r.reason, body, parse_retry_after(r.getheader("Retry-After"),
                                                                time.time()),
                    time.monotonic() - t0)


class Scrubber:
    """Removes an endpoint's secrets (URL, its path and query, the key) from text we print."""

    def __init__(self, hc: WebhookConfig):
        url = hc.url.reveal()
        u = urllib.parse.urlsplit(url)
        parts = [url, u.path if len(u.path) > 1 else "", u.query, u.password or "",
                 u.username or "", hc.secret.reveal() if hc.secret else ""]
        self._parts = sorted({p for p in parts if len(p) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for p in self._parts:
            text = text.replace(p, "***")
        return text


def excerpt(body: bytes, scrub: Scrubber) -> str:
    text = re.sub(r"\s+", " ", body.decode("utf-8", "replace")).strip()
    text = scrub(text)
    return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


def generator_url(cfg: Config) -> str:
    """Where a human finds the monitor that raised an alert (its status API)."""
    port = cfg.http_listen.rsplit(":", 1)[1] if cfg.http_listen else None
    host = urllib.parse.quote(cfg.host, safe="")
    scheme = "https" if cfg.http_access.tls else "http"
    return f"{scheme}://{host}:{port}/status.json" if port else f"http://{host}/"


# ---------------------------------------------------------------------------------------------
# Ledger: what the delivery thread has done, durably


class Ledger:
    """Delivered event keys and open (delivered, not yet cleared) alerts. One writer: the
    endpoint's delivery thread.

    When its file cannot be opened or written (read-only directory, disk full), the ledger goes
    on in memory (a copy of what the file held, when it can be read) and tries every
    `retry_s` to write that memory back to the file; the error names the path."""

    def __init__(self, path: Path, retry_s: float = LEDGER_RETRY_S):
        self.path = path
        self.retry_s = retry_s
        self.failing: str | None = None
        self._ident: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._next_try = 0.0
        try:
            self._db = self._open()
        except (sqlite3.Error, OSError) as e:
            self._db = self._memory(self._read_only())
            self._fail(e)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            _ledger_schema(db)
            st = os.stat(self.path)
        except BaseException:
            db.close()
            raise
        self._ident = (st.st_dev, st.st_ino)
        return db

    def _still_there(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def _read_only(self) -> sqlite3.Connection | None:
        """The file as it is, read-only (a read-only directory still shows what it held)."""
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True,
                                 check_same_thread=False)
            db.execute("SELECT COUNT(*) FROM delivered")
            return db
        except sqlite3.Error:
            return None

    @staticmethod
    def _memory(src: sqlite3.Connection | None) -> sqlite3.Connection:
        mem = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        if src is not None:
            try:
                src.backup(mem)
            except sqlite3.Error:
                pass
            src.close()
        _ledger_schema(mem)
        return mem

    def _fail(self, e: Exception) -> None:
        first = self.failing is None
        self.failing = str(e)
        self._next_try = time.monotonic() + self.retry_s
        if first:
            log.error("webhook ledger %s cannot be written: %s; which events were delivered is "
                      "kept in memory and written to the file when it can be (until then a "
                      "restart may deliver an event twice)", self.path, e)

    def _write(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        """Run statements in one transaction: in the file, or in memory when it fails."""
        with self._lock:
            if self.failing is None and not self._still_there():
                log.error("webhook ledger %s was deleted or replaced while in use; what it held "
                          "is written to a new file at that path", self.path)
                self._restore()  # the open connection still reads the deleted file
            elif self.failing is not None and time.monotonic() >= self._next_try:
                self._restore()
            for attempt in (0, 1):
                db = self._db
                try:
                    db.execute("BEGIN IMMEDIATE")
                    for sql, args in statements:
                        db.execute(sql, args)
                    db.execute("COMMIT")
                    return
                except sqlite3.Error as e:
                    _ledger_rollback(db)
                    if attempt or self.failing is not None:
                        raise
                    self._db = self._memory(db)  # the file's content, in memory from now on
                    self._fail(e)

    def _restore(self) -> None:
        """Write what the connection in use holds (memory, or a deleted file) into the file at
        the path, and use that file from now on."""
        try:
            disk = self._open()
        except (sqlite3.Error, OSError):
            self._next_try = time.monotonic() + self.retry_s
            return
        try:
            self._db.backup(disk)
        except sqlite3.Error:
            disk.close()
            self._next_try = time.monotonic() + self.retry_s
            return
        self._db.close()
        self._db = disk
        if self.failing is not None:
            log.warning("webhook ledger %s can be written again", self.path)
        self.failing = None

    def delivered(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM delivered WHERE key = ?",
                                    (key,)).fetchone() is not None

    def open_alert(self, aid: str) -> Event | None:
        with self._lock:
            row = self._db.execute("SELECT alert FROM open WHERE id = ?", (aid,)).fetchone()
        return Event.from_dict(json.loads(row[0])) if row else None

    def open_alerts(self) -> list[Event]:
        with self._lock:
            rows = self._db.execute("SELECT alert FROM open ORDER BY t_s").fetchall()
        return [Event.from_dict(json.loads(r[0])) for r in rows]

    def record(self, notices: list[Notice], dropped: bool = False) -> None:
        """After a 2xx (or a rejection): keys delivered, alerts opened, clears closing them."""
        now = time.time()
        stmts: list[tuple[str, tuple[object, ...]]] = []
        for n in notices:
            stmts.append(("INSERT OR REPLACE INTO delivered VALUES (?, ?)", (n.msg_id, now)))
            if n.event.type == "alert" and not dropped:
                stmts.append(("INSERT OR REPLACE INTO open VALUES (?, ?, ?)",
                              (n.event.id, to_json(n.event.to_dict()), now)))
            elif n.event.type == "clear":
                stmts.append(("DELETE FROM open WHERE id = ?", (n.event.id,)))
        self._write(stmts)

    def prune(self) -> None:
        now = time.time()
        self._write([("DELETE FROM delivered WHERE t_s < ?", (now - DELIVERED_KEEP_S,)),
                     ("DELETE FROM open WHERE t_s < ?", (now - OPEN_KEEP_S,))])

    def close(self) -> None:
        with self._lock:
            if self.failing is not None:
                self._restore()
            if self.failing is not None:
                log.error("webhook ledger %s: still cannot be written (%s): which events were "
                          "delivered since is forgotten; a restart may deliver them again",
                          self.path, self.failing)
            self._db.close()


def _ledger_schema(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS delivered (key TEXT PRIMARY KEY, t_s REAL)")
    db.execute("CREATE TABLE IF NOT EXISTS open (id TEXT PRIMARY KEY, alert TEXT, t_s REAL)")


def _ledger_rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


# ---------------------------------------------------------------------------------------------
# One endpoint


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    notice: Notice | None  # None: filtered out, already delivered, or unreadable -> ack
    queued_s: float


class Endpoint:
    def __init__(self, index: int, hc: WebhookConfig, cfg: Config, tag: str):
        self.index = index
        self.hc = hc
        self.label = f"webhook[{index}] {hc.format} to {hc.host}"
        self.spec = FORMATS[hc.format]
        self.scrub = Scrubber(hc)
        self._host = cfg.host
        self._generator_url = generator_url(cfg)
        self._evidence = Evidence.for_config(cfg)
        base = cfg.state_dir / "webhooks"
        self.outbox = Spool(base / f"{tag}.outbox.db", name=self.label)
        self.ledger = Ledger(base / f"{tag}.ledger.db")
        self.disabled = False  # set on 410 Gone
        self.delivered = 0  # events delivered since start (for tests, status)
        self.active_ids: set[str] | None = None  # from the last status snapshot
        self._min_rank = SEVERITY_RANK[hc.min_severity]
        self._next_resend = time.monotonic() + hc.resend_s
        self._left: int | None = None  # set by close: what stayed in the outbox
        self.ledger.prune()
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        self.sender = SpoolSender(self.outbox, self._send_rows, name=self.label,
                                  batch=max(PEEK_MIN, 2 * self.spec.max_batch),
                                  backoff=Backoff(hc.retry_initial_s, hc.retry_max_s),
                                  idle=self._idle, thread_name=f"webhook-{index}-{hc.host}")
        self.thread = self.sender.thread
        self.sender.start()

    @property
    def failures(self) -> int:
        """Failed attempts since start."""
        return self.sender.failures

    # -- engine side -----------------------------------------------------------------------
    def enqueue(self, events: list[Event]) -> None:
        if self.disabled:
            return
        now = time.time()
        self.outbox.put([(f"{e.id}.{e.type}",
                          to_json({"event": e.to_dict(), "queued_s": now}).encode(), 1)
                         for e in events])
        self.sender.wake()

    def pending(self) -> int:
        """Events in the outbox (after close: what was left there)."""
        return len(self.outbox) if self._left is None else self._left

    # -- delivery thread (spool.SpoolSender) -----------------------------------------------
    def _send_rows(self, rows: list[Row]) -> Sent:
        """The oldest outbox rows: ack what will never be sent, else send the next message."""
        items = self._read(rows)
        skip = []
        for it in items:  # acks what will never be sent, up to the first to send
            if it.notice is not None:
                break
            skip.append(it.seq)
        if skip:
            return Sent(skip)
        batch = self._batch(items)
        if self.spec.groups and not self.sender.closing.is_set() and \
                len(batch) < self.spec.max_batch:
            wait_s = batch[0].queued_s + self.hc.group_window_s - time.time()
            if wait_s > 0:  # gather the rest of a burst into one message
                return Sent(wait_s=wait_s)
        notices = [it.notice for it in batch if it.notice is not None]
        seqs = [it.seq for it in batch]
        r = self._send(notices)
        if r is None:  # could not render: drop, as a rejection
            self.ledger.record(notices, dropped=True)
            return Sent(seqs)
        if r.ok:
            self.ledger.record(notices)
            self.delivered += len(notices)
            return Sent(seqs)
        if r.status == 410:
            self.disabled = True
            log.error("%s: the receiver answered 410 Gone: endpoint disabled until "
                      "restart; %d events stay in its outbox", self.label, self.pending())
            return Sent(stop=True)
        if r.status in REJECTED:
            log.error("%s: the receiver rejected %s with %d %s (%s): dropped",
                      self.label, ", ".join(n.msg_id for n in notices), r.status,
                      r.reason, excerpt(r.body, self.scrub))
            self.ledger.record(notices, dropped=True)
            return Sent(seqs)
        what = f"{r.status} {r.reason}" if r.status else self.scrub(r.reason)
        return Sent(error=what, retry_after_s=r.retry_after_s)

    def _read(self, rows: list[tuple[int, str, bytes]]) -> list[_Item]:
        """Outbox rows -> items, deciding what is sent: min_severity, delivered once, a clear
        only when its alert was delivered (here or earlier in the same rows)."""
        out: list[_Item] = []
        seen: dict[str, Event] = {}
        for seq, key, body in rows:
            try:
                d = json.loads(body)
                ev = Event.from_dict(d["event"])
                queued_s = float(d.get("queued_s", 0.0))
            except (ValueError, KeyError, TypeError) as e:
                log.error("%s: unreadable outbox item %d (%s): dropped", self.label, seq, e)
                out.append(_Item(seq, None, 0.0))
                continue
            notice: Notice | None = None
            if self.ledger.delivered(key):
                pass
            elif ev.type == "alert":
                if SEVERITY_RANK.get(ev.severity, 0) >= self._min_rank:
                    notice = Notice(ev)
                    seen[ev.id] = ev
            else:
                alert = seen.get(ev.id) or self.ledger.open_alert(ev.id)
                if alert is not None:
                    notice = Notice(ev, alert)
            out.append(_Item(seq, notice, queued_s))
        return out

    def _batch(self, items: list[_Item]) -> list[_Item]:
        """The next message: the first sendable item, and for batching formats the sendable
        ones after it (filtered-out items ride along and are acked with it)."""
        batch: list[_Item] = []
        n = 0
        for it in items:
            if it.notice is not None:
                if n == self.spec.max_batch:
                    break
                n += 1
            batch.append(it)
        while batch and batch[-1].notice is None:
            batch.pop()
        return batch

    def _context(self) -> FormatContext:
        chain = {s: {"seq": h.seq, "sha256": h.sha256}
                 for s, h in self._evidence.anchors().items()}
        return FormatContext(self._host, int(time.time()),
                             self.hc.secret.reveal() if self.hc.secret else None,
                             self._generator_url, chain or None)

    def _send(self, notices: list[Notice]) -> Response | None:
        try:
            msg = self.spec.render(notices, self._context())
        except FormatError as e:
            log.error("%s: cannot build the message for %s: %s: dropped", self.label,
                      ", ".join(n.msg_id for n in notices), e)
            return None
        return post(self.hc.url.reveal(), msg, self.hc.timeout_s)

    def _idle(self) -> float:
        """Nothing queued: how long to wait for work; Alertmanager gets its active alerts
        re-sent."""
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            self.ledger.prune()
        if self.hc.format == "alertmanager":
            now = time.monotonic()
            if now >= self._next_resend:
                self._next_resend = now + self.hc.resend_s
                self._resend()
            return max(0.0, self._next_resend - time.monotonic())
        return IDLE_WAKE_S

    def _resend(self) -> None:
        """Alertmanager resolves an alert not heard of for its resolve_timeout (5 min by
        default): re-send the open alerts the engine still reports active."""
        active = self.active_ids
        if active is None:
            return
        alerts = [a for a in self.ledger.open_alerts() if a.id in active]
        if not alerts:
            return
        r = self._send([Notice(a) for a in alerts])
        if r is not None and not r.ok:
            log.debug("%s: re-sending %d active alerts failed: %s %s", self.label, len(alerts),
                      r.status, self.scrub(r.reason))

    # -- shutdown --------------------------------------------------------------------------
    def begin_close(self) -> None:
        self.sender.begin_close()

    def finish_close(self, deadline: float) -> None:
        done = self.sender.finish_close(deadline)
        on_disk, in_memory = self.outbox.counts()
        self._left = on_disk + in_memory
        if on_disk:  # what is only in memory is reported lost by the outbox
            log.warning("%s: %d events not delivered yet; they stay in the outbox %s and go "
                        "out after the next start", self.label, on_disk, self.outbox.path)
        if done:  # a thread stuck in a request keeps its databases
            self.outbox.close()
            self.ledger.close()
        elif in_memory:
            log.error("%s: %d events only in memory (the outbox could not be written) are "
                      "lost", self.label, in_memory)


# ---------------------------------------------------------------------------------------------
# The sink


def _tag(hc: WebhookConfig) -> str:
    """Outbox file name: follows the endpoint (format and URL), not its place in the file; a
    hash, so a secret URL never shows in a file name."""
    return hashlib.sha256(f"{hc.format} {hc.url.reveal()}".encode()).hexdigest()[:16]


class WebhookSink:
    name = "webhook"

    def __init__(self, cfg: Config):
        self.endpoints: list[Endpoint] = []
        tags: set[str] = set()
        for i, hc in enumerate(cfg.webhooks):
            tag = _tag(hc)
            if tag in tags:  # the same endpoint twice: give each its own outbox
                tag = f"{tag}-{i}"
            tags.add(tag)
            self.endpoints.append(Endpoint(i, hc, cfg, tag))

    def handle(self, outputs: list[Output]) -> None:
        events = [o for o in outputs if isinstance(o, Event)]
        snaps = [o for o in outputs if isinstance(o, Snapshot)]
        if snaps:
            active = {a.rsplit(":", 1)[-1] for a in snaps[-1].active_alerts}
            for ep in self.endpoints:
                ep.active_ids = active
        if events:
            for ep in self.endpoints:
                ep.enqueue(events)

    def pending(self) -> int:
        return sum(ep.pending() for ep in self.endpoints)

    def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        deadline = time.monotonic() + grace_s
        for ep in self.endpoints:
            ep.begin_close()
        for ep in self.endpoints:
            ep.finish_close(deadline)
