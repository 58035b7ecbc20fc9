"""InfluxDB sink: every point goes through a durable spool, a thread sends it, the server acks it.

- `handle` encodes the outputs (`lineproto`) and appends the lines to the spool (SQLite, fsynced:
  a line in the spool survives `kill -9` and power loss). It never talks to the network. The
  lines of one call go in as items of at most a batch of lines each (one row per item, the lines
  joined by newlines: `spool.Spool` counts them as its records), not a row per line.
- A sender thread (`spool.SpoolSender`, shared with the webhooks) takes the oldest lines, whole
  items, up to `batch_size` (a partial batch after `flush_interval_s`), writes them with
  influxdb-client's
  *synchronous* write API (gzip, `/api/v2/write`, ns precision) and removes them from the spool
  only after a 2xx. The client's batching API is not used: it holds points in memory and loses
  them at exit unless closed just so; here nothing is in memory that is not also on disk.
- Server down, unreachable, slow, 5xx, 429: retry the same batch with back-off (exponential with
  jitter, 1 s to 60 s; logged at the 1st, 2nd, 4th, 8th... attempt), for as long as
  it takes (hours: the spool holds the data; its size is bounded by `spool_max_mb`, past which
  the oldest lines are dropped with a warning).
- The server rejects a batch as malformed (400, 413, 422): the batch is split in halves (items,
  then an item's lines) until the bad line is alone; that line is logged and dropped (it can
  never be delivered), the rest is delivered. An item leaves the spool when all its lines are
  delivered or dropped.
- Duplicates only from a batch the server applied without its answer reaching us: killed
  between the server's 2xx and the spool's ack (sent again at the next start), or the answer was
  lost (timeout, broken connection: retried), or the server failed in the middle of splitting a
  rejected item (its lines already taken go again with it). Points are idempotent (measurement,
  tags and timestamp identify a point; InfluxDB overwrites it with the same values).
- `close` drains the spool while the server accepts writes (for up to CLOSE_GRACE_S), then
  returns; what the server did not take stays in the spool for the next start.
- The token is handed to the client only; logs show the server's host:port, never the token.
- `api = "v1"`: InfluxDB 1.x's own `/write` endpoint (1.0-1.7 have no `/api/v2/write`), same
  lines, same delivery (`InfluxV1Writer`).
- A backfill (`replay -c`, `export --influxdb`) hands its outputs with a mark (`handle_marked`):
  lines and mark go into the spool in one transaction (one fsync per chunk of a few thousand
  outputs, not per engine step), and it waits (`behind`) while the server is more than
  `BACKFILL_AHEAD_BYTES` of lines behind, so the spool stays small and a server that is down
  pauses the backfill instead of filling the disk.
"""

from __future__ import annotations

import gzip
import logging
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..backoff import Backoff
from ..config import Config
from ..evidence import Evidence
from ..records import Output, Snapshot
from . import Mark
from .lineproto import Encoder
from .spool import Row, Sent, Spool, SpoolSender

log = logging.getLogger(__name__)

# First retry after a failed write; doubled per failure up to BACKOFF_MAX_S (`backoff.Backoff`).
BACKOFF_START_S = 1.0
# A recovered server gets its backlog within a minute, without hammering a dead one.
BACKOFF_MAX_S = 60.0
# close(): time left to deliver what the server takes; the rest waits in the spool.
CLOSE_GRACE_S = 10.0
# HTTP statuses meaning "this data is malformed", never "try later": split the batch, drop the
# bad line. 400 bad line protocol / field type conflict; 413 too large; 422 unprocessable (2.x).
REJECT_STATUSES = frozenset({400, 413, 422})
# A rejected line is logged up to this many characters.
LOG_LINE_CHARS = 300
# A backfill waits while more than this many bytes of lines wait in the spool (~30,000 lines: a
# few seconds of a healthy server).
BACKFILL_AHEAD_BYTES = 8 * 2**20
# A backfill's write requests carry at least this many lines (larger batches, fewer requests and
# fsyncs; servers take 5,000-10,000 lines per request well).
BACKFILL_BATCH = 5000


def _where(url: str) -> str:
    """What logs may show of the URL: scheme, host and port (no user info, no path)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}{':' + str(u.port) if u.port else ''}"


class WriteRejected(Exception):
    """The server refused the data itself (REJECT_STATUSES): retrying cannot help."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status


class WriteFailed(Exception):
    """The write did not succeed and may succeed later (network, 5xx, 429, auth, no bucket)."""


class InfluxWriter:
    """One synchronous write of lines through influxdb-client. Raises WriteRejected/WriteFailed."""

    def __init__(self, url: str, org: str, bucket: str, token: str | None, timeout_s: float):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.org, self.bucket = org, bucket
        # retries=False: this sink does its own retrying, from the durable spool. The body is
        # compressed here (`write`): the client's own gzip is level 9, 4-5x the CPU of level 1
        # for a body 1.3x smaller.
        self._client = InfluxDBClient(url=url, token=token or "", org=org,
                                      timeout=int(timeout_s * 1000), enable_gzip=False,
                                      retries=False)
        self._client.api_client.set_default_header("Content-Encoding", "gzip")
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[bytes]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self.bucket, org=self.org, record=_gzip(lines),
                            write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as e:
            body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else str(e.body)
            status = int(e.status or 0)
            if status in REJECT_STATUSES:
                raise WriteRejected(status, body.strip()[:LOG_LINE_CHARS]) from None
            hint = " (check the token and its write permission)" if status in (401, 403) else (
                " (does the bucket/database exist?)" if status == 404 else "")
            raise WriteFailed(f"HTTP {status} {e.reason}{hint}: {body.strip()[:200]}") from None
        except Exception as e:  # noqa: BLE001 - urllib3 connection errors, timeouts
            raise WriteFailed(f"{type(e).__name__}: {_short(e)}") from None

    def close(self) -> None:
        self._api.close()
        self._client.close()


class InfluxV1Writer:
    """One write through InfluxDB 1.x's `/write` (`api = "v1"`): bucket `database` or
    `database/retention-policy`; token `user:password` (basic auth) or a bare token (`Token`
    header, as 1.8+ and 2.x's v1 endpoint take it). Raises WriteRejected/WriteFailed."""

    def __init__(self, url: str, bucket: str, token: str | None, timeout_s: float):
        import urllib3

        db, _, rp = bucket.partition("/")
        query = {"db": db, "precision": "ns"} | ({"rp": rp} if rp else {})
        self._url = f"{url.rstrip('/')}/write?{urlencode(query)}"
        self._headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        if token and ":" in token:
            self._headers |= urllib3.make_headers(basic_auth=token)
        elif token:
            self._headers["Authorization"] = f"Token {token}"
        self._http = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False,
                                         timeout=urllib3.Timeout(total=timeout_s))

    def write(self, lines: list[bytes]) -> None:
        try:
            r = self._http.request("POST", self._url, body=_gzip(lines), headers=self._headers)
        except Exception as e:  # noqa: BLE001 - urllib3 connection errors, timeouts
            raise WriteFailed(f"{type(e).__name__}: {_short(e)}") from None
        if 200 <= r.status < 300:
            return
        text = r.data.decode("utf-8", "replace").strip()
        if r.status in REJECT_STATUSES:
            raise WriteRejected(r.status, text[:LOG_LINE_CHARS])
        hint = " (check the user:password and its write permission)" if r.status in (401, 403) \
            else (" (does the database exist?)" if r.status == 404 else "")
        raise WriteFailed(f"HTTP {r.status} {r.reason}{hint}: {text[:200]}")

    def close(self) -> None:
        self._http.clear()


def _gzip(lines: list[bytes]) -> bytes:
    """The request body: the lines (UTF-8, as spooled: one item may hold several lines), gzip
    level 1."""
    return gzip.compress(b"\n".join(lines), compresslevel=1)


def _short(e: Exception) -> str:
    s = str(e)
    # urllib3 wraps the cause in a long repr; its last part says what happened.
    return s.rsplit(": ", 1)[-1][:200] if len(s) > 200 else s


class InfluxSink:
    """The `[sinks.influxdb]` sink. See the module doc for the delivery guarantees."""

    name = "influxdb"

    def __init__(self, cfg: Config, writer: Any = None, spool_name: str = "influxdb.spool"):
        ic = cfg.influxdb
        if ic is None:
            raise ValueError("InfluxSink needs a [sinks.influxdb] section")
        self.cfg = ic
        self.where = _where(ic.url)
        self.encoder = Encoder.from_config(cfg)
        self.encoder.anchors = Evidence.for_config(cfg).anchors
        self.spool_path = cfg.state_dir / spool_name
        self.spool = Spool(self.spool_path, max_bytes=int(ic.spool_max_mb * 2**20),
                           name=f"influxdb spool {self.spool_path} (sinks.influxdb.spool_max_mb)")
        token = ic.token.reveal() if ic.token else None
        self.writer = writer or (
            InfluxV1Writer(ic.url, ic.bucket, token, ic.timeout_s) if ic.api == "v1"
            else InfluxWriter(ic.url, ic.org, ic.bucket, token, ic.timeout_s))
        # Counters (for /metrics and tests): lines delivered, rejected by the server.
        self.sent = 0
        self.rejected = 0
        self._unsent_hint = len(self.spool)  # lines put since the sender last looked (approx.)
        self._partial_since: float | None = None  # when the sender first saw a partial batch
        self._closed = False
        self._left = 0
        self._sent_at = (0, time.monotonic())  # (self.sent, when it last grew): `behind`
        self._drain = False  # a backfill's end: partial batches go at once
        if self._unsent_hint:
            log.info("influxdb %s: %d points spooled from before; sending them first",
                     self.where, self._unsent_hint)
        self.sender = SpoolSender(self.spool, self._send, name=f"influxdb {self.where}",
                                  batch=ic.batch_size,
                                  backoff=Backoff(BACKOFF_START_S, BACKOFF_MAX_S),
                                  idle_s=ic.flush_interval_s, thread_name="influxdb-sender")
        self.sender.start()

    @property
    def failures(self) -> int:
        """Writes that failed (and were retried) since start."""
        return self.sender.failures

    @property
    def last_error(self) -> str | None:
        return self.sender.last_error

    # -- engine side: never blocks on the network -------------------------------------------
    def handle(self, outputs: list[Output]) -> None:
        if self._closed:
            raise RuntimeError("influxdb sink is closed")
        lines = self.encoder.lines(outputs)
        if not lines:
            return
        self.spool.put(_items(lines, self.cfg.batch_size))
        self._unsent_hint += len(lines)
        if self._unsent_hint >= self.cfg.batch_size:
            self.sender.wake()

    # -- a backfill's side (`sinks.Resumable`) ----------------------------------------------
    def handle_marked(self, outputs: list[Output], mark: Mark) -> None:
        """The outputs' lines and the mark into the spool in one transaction."""
        if self._closed:
            raise RuntimeError("influxdb sink is closed")
        self.sender.batch = max(self.sender.batch, BACKFILL_BATCH)
        lines = self.encoder.lines(outputs)
        self.spool.put(_items(lines, self.sender.batch), mark=(mark.key, mark.n))
        self._unsent_hint += len(lines)
        if self._unsent_hint >= self.sender.batch:
            self.sender.wake()

    def resume_point(self, key: str) -> int | None:
        return self.spool.mark(key)

    def passed(self, outputs: list[Output]) -> None:
        """The tags of sources the config does not list come from snapshots: learnt from
        those a resumed backfill skips too, so its lines are tagged as the first run's."""
        for o in outputs:
            if isinstance(o, Snapshot):
                self.encoder.learn(o)

    def forget(self, key: str) -> None:
        self.spool.forget(key)

    def behind(self, final: bool = False) -> tuple[str, float] | None:
        """What a backfill waits for: (why, seconds since the server last took a batch) while
        more than BACKFILL_AHEAD_BYTES of lines wait (`final`: any), else None."""
        waiting = self.spool.size_bytes > (0 if final else BACKFILL_AHEAD_BYTES) or (
            final and len(self.spool) > 0)
        if not waiting:
            return None
        if final and not self._drain:
            self._drain = True
            self.sender.wake()
        now = time.monotonic()
        if self.sent != self._sent_at[0]:
            self._sent_at = (self.sent, now)
        err = self.sender.last_error if self.sender.failures and now - self._sent_at[1] > 1 \
            else None
        why = f"influxdb {self.where}: {len(self.spool):,} points to send" + (
            f" ({err})" if err else "")
        return why, now - self._sent_at[1]

    @property
    def pending(self) -> int:
        """Lines in the spool, not yet acknowledged by the server (after close: as it was left)."""
        return self._left if self._closed else len(self.spool)

    def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Send what the server takes within grace_s, stop the sender, keep the rest spooled."""
        if self._closed:
            return
        self.sender.begin_close()
        done = self.sender.finish_close(time.monotonic() + grace_s)
        on_disk, in_memory = self.spool.counts()
        self._left = on_disk + in_memory
        self._closed = True
        if on_disk:  # what is only in memory is reported lost by the spool
            log.warning("influxdb %s: %d points not delivered stay in %s; they are sent at the "
                        "next start", self.where, on_disk, self.spool_path)
        if done:  # a sender stuck in a request keeps its spool (the process is ending anyway)
            self.spool.close()
            self.writer.close()
        elif in_memory:
            log.error("influxdb %s: %d points only in memory (the spool could not be written) "
                      "are lost", self.where, in_memory)

    # -- sender thread ---------------------------------------------------------------------
    def _send(self, rows: list[Row]) -> Sent:
        """A full batch goes at once, a partial one after flush_interval_s (or at close)."""
        if sum(map(_count, rows)) < self.cfg.batch_size and not self.spool.more \
                and not self.sender.closing.is_set() and not self._drain:
            now = time.monotonic()
            if self._partial_since is None:
                self._partial_since = now
            wait_s = self._partial_since + self.cfg.flush_interval_s - now
            if wait_s > 0:
                return Sent(wait_s=wait_s)
        self._unsent_hint = 0
        done: list[int] = []
        try:
            self._deliver(rows, done)
        except WriteFailed as e:
            return Sent(done, error=f"write failed: {e}")  # retried after the back-off alone
        self._partial_since = None
        return Sent(done)

    def _deliver(self, rows: list[Row], done: list[int]) -> None:
        """Write rows (their seqs into `done`); on a rejection split until the bad line is
        alone, which is logged and dropped. Raises WriteFailed to back off."""
        try:
            self.writer.write([body for _, _, body in rows])
        except WriteRejected as e:
            if len(rows) == 1:
                self._split(rows[0][2].split(b"\n"), e)
                done.append(rows[0][0])
                return
            half = len(rows) // 2
            self._deliver(rows[:half], done)
            self._deliver(rows[half:], done)
            return
        done.extend(seq for seq, _, _ in rows)
        self.sent += sum(map(_count, rows))

    def _split(self, lines: list[bytes], e: WriteRejected) -> None:
        """The lines of one rejected item: halves until the bad line is alone (logged and
        dropped), the others delivered. Raises WriteFailed to back off (the item stays)."""
        if len(lines) == 1:
            self.rejected += 1
            log.error("influxdb %s: server rejected a point, dropped: %s; line: %s",
                      self.where, e, lines[0][:LOG_LINE_CHARS].decode("utf-8", "replace"))
            return
        half = len(lines) // 2
        for part in (lines[:half], lines[half:]):
            try:
                self.writer.write(part)
            except WriteRejected as e2:
                self._split(part, e2)
            else:
                self.sent += len(part)


def _items(lines: list[str], size: int) -> list[tuple[str, bytes, int]]:
    """The lines as spool items of at most `size` lines each (a row per item, not per line)."""
    return [("", "\n".join(part).encode("utf-8"), len(part))
            for part in (lines[i:i + size] for i in range(0, len(lines), size))]


def _count(row: Row) -> int:
    """The lines a spooled item holds."""
    return row[2].count(b"\n") + 1
