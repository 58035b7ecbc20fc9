"""InfluxDB sink: every point goes through a durable spool, a thread sends it, the server acks it.

- `handle` encodes the outputs (`lineproto`) and appends the lines to the spool (SQLite, fsynced:
  a line in the spool survives `kill -9` and power loss). It never talks to the network.
- A sender thread takes up to `batch_size` of the oldest lines, writes them with influxdb-client's
  *synchronous* write API (gzip, `/api/v2/write`, ns precision) and removes them from the spool
  only after a 2xx. The client's batching API is not used: it holds points in memory and loses
  them at exit unless closed just so; here nothing is in memory that is not also on disk.
- Server down, unreachable, slow, 5xx, 429: retry the same batch with backoff, for as long as
  it takes (hours: the spool holds the data; its size is bounded by `spool_max_mb`, past which
  the oldest lines are dropped with a warning).
- The server rejects a batch as malformed (400, 413, 422): the batch is split in halves until
  the bad line is alone; that line is logged and dropped (it can never be delivered), the rest
  is delivered.
- Duplicates only from a batch the server applied without its answer reaching us: killed
  between the server's 2xx and the spool's ack (sent again at the next start), or the answer was
  lost (timeout, broken connection: retried). Points are idempotent (measurement, tags and
  timestamp identify a point; InfluxDB overwrites it with the same values).
- `close` drains the spool while the server accepts writes, then returns; what the server did
  not take stays in the spool for the next start.
- The token is handed to the client only; logs show the server's host:port, never the token.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from ..config import Config
from ..evidence import Evidence
from ..records import Output
from .lineproto import Encoder
from .spool import Spool

log = logging.getLogger(__name__)

# First retry after a failed write; doubled per failure up to BACKOFF_MAX_S.
BACKOFF_START_S = 1.0
# A recovered server gets its backlog within a minute, without hammering a dead one.
BACKOFF_MAX_S = 60.0
# While the server stays down, repeat the warning this often (not once per retry).
WARN_EVERY_S = 600.0
# HTTP statuses meaning "this data is malformed", never "try later": split the batch, drop the
# bad line. 400 bad line protocol / field type conflict; 413 too large; 422 unprocessable (2.x).
REJECT_STATUSES = frozenset({400, 413, 422})
# A rejected line is logged up to this many characters.
LOG_LINE_CHARS = 300


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
        # retries=False: this sink does its own retrying, from the durable spool.
        self._client = InfluxDBClient(url=url, token=token or "", org=org,
                                      timeout=int(timeout_s * 1000), enable_gzip=True,
                                      retries=False)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self.bucket, org=self.org, record=lines,
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


def _short(e: Exception) -> str:
    s = str(e)
    # urllib3 wraps the cause in a long repr; its last part says what happened.
    return s.rsplit(": ", 1)[-1][:200] if len(s) > 200 else s


class InfluxSink:
    """The `[sinks.influxdb]` sink. See the module doc for the delivery guarantees."""

    name = "influxdb"

    def __init__(self, cfg: Config, writer: Any = None):
        ic = cfg.influxdb
        if ic is None:
            raise ValueError("InfluxSink needs a [sinks.influxdb] section")
        self.cfg = ic
        self.where = _where(ic.url)
        self.encoder = Encoder.from_config(cfg)
        self.encoder.anchors = Evidence.for_config(cfg).anchors
        self.spool_path = cfg.state_dir / "influxdb.spool"
        self.spool = Spool(self.spool_path, max_bytes=int(ic.spool_max_mb * 2**20),
                           name=f"influxdb spool {self.spool_path} (sinks.influxdb.spool_max_mb)")
        self.writer = writer or InfluxWriter(ic.url, ic.org, ic.bucket,
                                             ic.token.reveal() if ic.token else None, ic.timeout_s)
        # Counters (for /metrics and tests): lines delivered, rejected by the server, writes failed.
        self.sent = 0
        self.rejected = 0
        self.failures = 0
        self.last_error: str | None = None
        self._unsent_hint = len(self.spool)  # lines put since the sender last looked (approx.)
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._left = 0
        if self._unsent_hint:
            log.info("influxdb %s: %d points spooled from before; sending them first",
                     self.where, self._unsent_hint)
        self._thread = threading.Thread(target=self._run, name="influxdb-sender", daemon=True)
        self._thread.start()

    # -- engine side: never blocks on the network -------------------------------------------
    def handle(self, outputs: list[Output]) -> None:
        if self._closed:
            raise RuntimeError("influxdb sink is closed")
        lines = self.encoder.lines(outputs)
        if not lines:
            return
        self.spool.put([("", ln.encode("utf-8")) for ln in lines])
        self._unsent_hint += len(lines)
        if self._unsent_hint >= self.cfg.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Lines in the spool, not yet acknowledged by the server (after close: as it was left)."""
        return self._left if self._closed else len(self.spool)

    def close(self) -> None:
        """Send what the server takes, stop the sender, keep the rest spooled."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        left = self._left = len(self.spool)
        self._closed = True
        if left:
            log.warning("influxdb %s: %d points not delivered stay in %s; they are sent at the "
                        "next start", self.where, left, self.spool_path)
        self.spool.close()
        self.writer.close()

    # -- sender thread ---------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        down_since: float | None = None
        warned_at = 0.0
        while True:
            if backoff:  # only closing cuts a backoff short: new data must not hammer a dead server
                deadline = time.monotonic() + backoff
                while not self._closing and (left := deadline - time.monotonic()) > 0:
                    self._wake.wait(left)
                    self._wake.clear()
            elif not self._closing:
                self._wake.wait(self.cfg.flush_interval_s)
                self._wake.clear()
            self._unsent_hint = 0
            try:
                self._drain()
            except WriteFailed as e:
                self.failures += 1
                self.last_error = str(e)
                now = time.monotonic()
                if self._closing:
                    log.warning("influxdb %s: write failed while closing: %s", self.where, e)
                    return
                if down_since is None or now - warned_at >= WARN_EVERY_S:
                    since = "" if down_since is None else \
                        f" (failing for {now - down_since:.0f} s)"
                    log.warning("influxdb %s: write failed%s: %s; %d points kept in the spool, "
                                "retrying", self.where, since, e, len(self.spool))
                    warned_at = now
                    down_since = down_since if down_since is not None else now
                backoff = min(BACKOFF_MAX_S, max(BACKOFF_START_S, backoff * 2))
                continue
            except Exception:  # noqa: BLE001 - a bug must not kill the sender silently
                log.exception("influxdb %s: sender error; retrying", self.where)
                backoff = BACKOFF_MAX_S
                if self._closing:
                    return
                continue
            if down_since is not None:
                log.warning("influxdb %s: writes succeed again after %.0f s; backlog delivered",
                            self.where, time.monotonic() - down_since)
                down_since = None
            backoff = 0.0
            if self._closing:
                return

    def _drain(self) -> None:
        """Send batches until the spool is empty. Raises WriteFailed to back off."""
        while True:
            rows = self.spool.peek(self.cfg.batch_size)
            if not rows:
                return
            self._deliver(rows)

    def _deliver(self, rows: list[tuple[int, str, bytes]]) -> None:
        """Write rows and ack them; on a rejection split until the bad line is alone."""
        try:
            self.writer.write([body.decode("utf-8") for _, _, body in rows])
        except WriteRejected as e:
            if len(rows) == 1:
                self.rejected += 1
                self.last_error = str(e)
                log.error("influxdb %s: server rejected a point, dropped: %s; line: %s",
                          self.where, e, rows[0][2][:LOG_LINE_CHARS].decode("utf-8", "replace"))
                self.spool.ack([rows[0][0]])
                return
            half = len(rows) // 2
            self._deliver(rows[:half])
            self._deliver(rows[half:])
            return
        self.spool.ack([seq for seq, _, _ in rows])
        self.sent += len(rows)
