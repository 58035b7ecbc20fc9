"""NTP client reader: polls one server on its own `poll_s` and records every exchange.

One `NtpReader` per configured server (the runner starts one per `[[sources]]` entry, so many
servers are polled concurrently on one event loop). Each exchange:
- resolves the server name (getaddrinfo in a thread; IPv4 or IPv6) when it has no address yet or
  the previous exchange failed, and sends exactly to that address and the configured `port`;
- uses a fresh UDP socket (random source port, as chrony's default `acquisitionport 0`),
  connected to the server so the kernel drops datagrams from anyone else;
- puts 64 random bits in the transmit timestamp and accepts a reply only when its origin field
  echoes them; anything else is recorded (`bad_origin`, `malformed`) and the wait goes on, so a
  spoofed packet cannot shadow the genuine reply;
- survives a flood (a server answering with thousands of garbage and wrong-origin datagrams):
  a large receive buffer, every pending datagram read at each wake-up and matched by origin,
  the first few of an exchange recorded and the rest counted, and one summary log line per
  `GARBAGE_LOG_S` instead of a line per datagram;
- takes the reply's arrival time from the kernel (`SO_TIMESTAMPNS`) where the kernel gives it.

The reader decodes a reply only to validate it and records its fields and raw bytes; it never
decides whether a server is good (the engine does, and checks the fields again).

`NtsReader` (kind `nts`, docs/nts.md) is the same reader with Network Time Security: it
establishes keys with the NTS-KE server (TLS, in a thread), sends authenticated requests to the
NTPv4 server the KE named, and uses a reply only when its authenticator verifies; a reply that
fails is recorded (`nts_auth_failed`, `nts_downgrade`: counted, traced, never used) and the wait
for the genuine reply goes on. New keys after an NTS NAK, when the cookies run out, and when the
session is old. Keys and cookies stay in the `NtsSession`: no log line or trace record has them.

The packet codec is `wire/ntp.py`: one codec for the reader and the engine. Why not
ntplib's `NTPPacket` codec (the requested dependency): it holds timestamps as Python
floats (53-bit mantissa), so it can neither send a random 64-bit transmit timestamp nor compare
the echoed origin bit for bit, and NTP-era seconds as a float keep only ~0.5 us resolution. The
48-byte header is a single `struct` format, so the codec below is a few lines of integer code.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
import sys

from ..config import SourceConfig
from ..records import AUTH_NTS, Ntp, NtsKe
from ..wire.ntp import PACKET_LEN, NtpPacket, decode, ntp_to_unix_ns
from ..wire.ntp import PacketError as MalformedReply
from . import Emit, now_pair

log = logging.getLogger(__name__)

# Version we speak (RFC 5905).
NTP_VERSION = 4
# Client and server association modes (RFC 5905 figure 10).
MODE_CLIENT, MODE_SERVER = 3, 4
# Standard NTP port (RFC 5905 section 7.2).
NTP_PORT = 123
# Wait this long for a reply: covers any sane Internet round trip (ntpdate and sntp use 1-5 s).
REPLY_TIMEOUT_S = 2.0
# ...but never longer than this share of the poll interval, so polls do not overlap.
TIMEOUT_POLL_SHARE = 0.8
# Longest poll after RATE back-offs: 2^17 s (RFC 5905 MAXPOLL 17).
MAX_POLL_S = float(1 << 17)
# A name that does not resolve within this long counts as unreachable for this poll.
RESOLVE_TIMEOUT_S = 5.0
# Bogus replies recorded per exchange; more are counted only (a flood must not flood the trace).
MAX_RECORDS_PER_EXCHANGE = 8
# Receive buffer: larger than any NTP packet with extensions, so oversize garbage is still seen.
RECV_BUF = 2048
# The socket's receive buffer (SO_RCVBUF; SO_RCVBUFFORCE where allowed): room for thousands of
# small datagrams (each takes ~1 KiB of kernel memory), so a flood queued before the genuine
# reply does not make the kernel drop it. Without privileges the kernel caps it (rmem_max).
SOCK_RCVBUF = 4 << 20
SO_RCVBUFFORCE = 33  # Linux (include/uapi/asm-generic/socket.h); needs CAP_NET_ADMIN
# Datagrams read per wake-up at most, before the event loop gets a turn.
RECV_BATCH = 1024
# Garbage (malformed or wrong-origin datagrams) is logged as one summary line per this long.
GARBAGE_LOG_S = 60.0
# Linux SO_TIMESTAMPNS(_OLD) = SCM_TIMESTAMPNS (include/uapi/asm-generic/socket.h); Python has
# no name for it. Its payload is a native `struct timespec`.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
# Kiss codes that end polling of a server (RFC 5905 section 7.4: access denied / restricted).
KISS_STOP = ("DENY", "RSTR")
# Kiss code asking the client to reduce its rate (RFC 5905 section 7.4).
KISS_RATE = "RATE"
# NTS: the NTS-KE port (RFC 8915 section 4) and the longest wait between key establishments
# that keep failing (the wait doubles from one poll; chrony's client also backs off).
NTS_KE_PORT = 4460
MAX_KE_BACKOFF_S = 1024.0


def request(xmt_ts: int) -> bytes:
    """A client request whose only non-zero timestamp is our random transmit value."""
    return NtpPacket(0, NTP_VERSION, MODE_CLIENT, 0, 0, 0, 0, 0, b"\0\0\0\0", 0, 0, 0,
                     xmt_ts).encode()


class NtpReader:
    """Polls one NTP server; see the module docstring for what it records and why."""

    def __init__(self, cfg: SourceConfig, emit: Emit, *, timeout_s: float | None = None):
        if not cfg.server:
            raise ValueError(f"source {cfg.id}: an ntp source needs a server")
        self.cfg = cfg
        self.emit = emit
        self.src = cfg.id
        self.host = cfg.server
        self.port = cfg.port or NTP_PORT
        self.poll_s = cfg.poll_s
        self.timeout_s = timeout_s if timeout_s is not None else min(
            REPLY_TIMEOUT_S, cfg.poll_s * TIMEOUT_POLL_SHARE)
        self.addr: tuple[int, tuple[object, ...]] | None = None  # (family, sockaddr)
        self.stopped_by: str | None = None  # kiss code that ended polling
        # What happened, for logs, tests and the bench: exchange outcomes and kernel stamps.
        self.counters: dict[str, int] = {}
        self._garbage: dict[str, int] = {}  # garbage since the last summary line, per kind
        self._garbage_logged = -GARBAGE_LOG_S  # monotonic time of the last summary line
        self._rcvbuf_told = False  # a capped receive buffer is logged once

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while self.stopped_by is None:
            await self.poll_once()
            next_t = max(next_t + self.poll_s, loop.time())
            if self.stopped_by is None:
                await asyncio.sleep(next_t - loop.time())
        log.warning("%s: server %s sent kiss-o'-death %s: not polling it any more", self.src,
                    self.host, self.stopped_by)
        await asyncio.Event().wait()  # idle until cancelled: the engine sees the source go stale

    def _target(self) -> tuple[str, int]:
        """The NTP server's name and UDP port."""
        return self.host, self.port

    async def _prepare(self) -> str | None:
        """Before an exchange: None to go on, else the outcome that ends this poll."""
        return None

    def _request(self, xmt: int) -> bytes:
        """The request to send, with transmit timestamp `xmt`."""
        return request(xmt)

    async def _resolve(self) -> tuple[int, tuple[object, ...]]:
        host, port = self._target()
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):  # not wait_for: see _recv
            infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0,
                                            socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        fam, _, _, _, sa = infos[0]
        self._count("resolved")
        return int(fam), tuple(sa)

    async def poll_once(self) -> str:
        """One exchange; returns its outcome ("ok", "timeout", "kiss", ...), already emitted."""
        xmt = int.from_bytes(secrets.token_bytes(8), "big")
        xmt_hex = f"{xmt:016x}"
        stop = await self._prepare()
        if stop is not None:
            return stop
        if self.addr is None:
            try:
                self.addr = await self._resolve()
            except (OSError, TimeoutError, IndexError) as e:
                log.info("%s: cannot resolve %s: %s", self.src, self._target()[0], e)
                return self._fail(now_pair(), xmt_hex, "unreachable")
        fam, sa = self.addr
        try:
            sock = socket.socket(fam, socket.SOCK_DGRAM)
        except OSError as e:
            log.warning("%s: cannot open a UDP socket: %s", self.src, e)
            return self._fail(now_pair(), xmt_hex, "unreachable")
        try:
            return await self._exchange(sock, sa, xmt, xmt_hex)
        finally:
            sock.close()

    def _fail(self, t1: tuple[int, int], xmt_hex: str, error: str,
              rx: tuple[int, int] | None = None) -> str:
        rx_ns, raw_ns = rx or now_pair()
        self._count(error)
        self.addr = None  # re-resolve after a failure: the name may point elsewhere now
        self.emit(Ntp(src=self.src, rx_ns=rx_ns, t1_ns=t1[0], xmt_hex=xmt_hex, error=error,
                      raw_ns=raw_ns))
        return error

    async def _exchange(self, sock: socket.socket, sa: tuple[object, ...], xmt: int,
                        xmt_hex: str) -> str:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        kernel_ts = False
        if sys.platform == "linux":
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                kernel_ts = True
            except OSError:
                pass
        self._set_rcvbuf(sock)
        try:
            sock.connect(sa)
            data = self._request(xmt)
            t1 = now_pair()
            sock.send(data)
        except OSError as e:
            log.info("%s: cannot send to %s: %s", self.src, sa[0], e)
            return self._fail(now_pair(), xmt_hex, "unreachable")
        deadline = loop.time() + self.timeout_s
        recorded = 0
        try:
            while True:
                try:
                    batch = await self._recv(sock, deadline, kernel_ts)
                except TimeoutError:
                    return self._fail(t1, xmt_hex, "timeout")
                except OSError as e:  # ICMP port/host unreachable on the connected socket
                    log.info("%s: %s unreachable: %s", self.src, sa[0], e)
                    return self._fail(t1, xmt_hex, "unreachable")
                for data, rx in batch:
                    outcome = self._reply(data, rx, t1, xmt, xmt_hex,
                                          recorded < MAX_RECORDS_PER_EXCHANGE)
                    if outcome in ("ok", "kiss", "bogus_mode"):
                        return outcome
                    recorded += 1  # malformed, bad_origin, NTS failures: keep waiting
        finally:
            self._log_garbage()

    def _set_rcvbuf(self, sock: socket.socket) -> None:
        for opt in ((SO_RCVBUFFORCE,) if sys.platform == "linux" else ()) + (socket.SO_RCVBUF,):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCK_RCVBUF)
                break
            except OSError:
                continue
        if not self._rcvbuf_told:
            self._rcvbuf_told = True
            got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # Linux: doubled
            if got < SOCK_RCVBUF:
                log.info("%s: UDP receive buffer is %d bytes, not %d (the kernel caps it at "
                         "net.core.rmem_max): a flood of replies can push the genuine one out",
                         self.src, got, SOCK_RCVBUF)

    def _garbage_seen(self, kind: str) -> None:
        self._garbage[kind] = self._garbage.get(kind, 0) + 1

    def _log_garbage(self) -> None:
        """One line for the garbage since the last one, at most every GARBAGE_LOG_S."""
        now = asyncio.get_running_loop().time()
        if self._garbage and now - self._garbage_logged >= GARBAGE_LOG_S:
            what = ", ".join(f"{n} {k}" for k, n in sorted(self._garbage.items()))
            log.info("%s: ignored datagrams that are not the reply to our request from %s "
                     "(%s) since %s", self.src, self.host, what,
                     "the start" if self._garbage_logged < 0 else
                     f"{now - self._garbage_logged:.0f} s ago")
            self._garbage.clear()
            self._garbage_logged = now

    async def _recv(self, sock: socket.socket, deadline: float,
                    kernel_ts: bool) -> list[tuple[bytes, tuple[int, int]]]:
        """Every datagram pending (at least one, at most RECV_BATCH), each with its
        (rx_ns, raw_ns): the kernel's realtime stamp when it gave one, with raw_ns moved back
        by the same queueing time. Reading all at once keeps a flood from filling the buffer."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = sock.fileno()

        def readable() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, readable)
        try:
            # Not asyncio.wait_for: on 3.11 it swallows a cancellation that arrives as the
            # socket turns readable, and a flooded socket is always readable (the runner then
            # waited forever for this reader at shutdown).
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                await fut
        finally:
            loop.remove_reader(fd)
        out: list[tuple[bytes, tuple[int, int]]] = []
        anc_size = socket.CMSG_SPACE(_TIMESPEC.size)
        while len(out) < RECV_BATCH:
            try:
                data, anc, _, _ = sock.recvmsg(RECV_BUF, anc_size)
            except BlockingIOError:
                break
            except OSError:
                if out:
                    break  # report the error at the next read, after these
                raise
            out.append((data, self._stamp(anc, kernel_ts)))
        return out

    def _stamp(self, anc: list[tuple[int, int, bytes]], kernel_ts: bool) -> tuple[int, int]:
        rt, raw = now_pair()
        for level, typ, payload in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and \
                    len(payload) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(payload)
                k_ns = sec * 1_000_000_000 + nsec
                if 0 <= rt - k_ns < 1_000_000_000:  # sane: not in the future, under 1 s queued
                    self._count("kernel_rx_ts")
                    return k_ns, raw - (rt - k_ns)
        if kernel_ts:
            self._count("user_rx_ts")
        return rt, raw

    def _reply(self, data: bytes, rx: tuple[int, int], t1: tuple[int, int], xmt: int,
               xmt_hex: str, record: bool) -> str:
        rx_ns, raw_ns = rx
        pkt_hex = data.hex()
        try:
            p = decode(data)
        except MalformedReply:
            self._count("malformed")
            self._garbage_seen("malformed")
            if record:
                self.emit(Ntp(src=self.src, rx_ns=rx_ns, t1_ns=t1[0], xmt_hex=xmt_hex,
                              t4_ns=rx_ns, pkt_hex=pkt_hex, error="malformed", raw_ns=raw_ns))
            return "malformed"
        error: str | None = None
        outcome = "ok"
        if p.org_ts != xmt:
            error, outcome = "bad_origin", "bad_origin"
        elif p.stratum == 0 and p.mode == MODE_SERVER:
            error, outcome = "kiss", "kiss"
        elif p.mode != MODE_SERVER:
            outcome = "bogus_mode"  # recorded as it came; the engine calls it ntp.bogus
        self._count(outcome)
        if outcome != "bad_origin" or record:
            self._record(p, pkt_hex, rx, t1, xmt_hex, error)
        if outcome == "bad_origin":
            self._garbage_seen("with a wrong origin")
        elif outcome == "kiss":
            self._kiss(p.refid)
        return outcome

    def _record(self, p: NtpPacket, pkt_hex: str, rx: tuple[int, int], t1: tuple[int, int],
                xmt_hex: str, error: str | None, **nts: str | None) -> None:
        """Emit the record of a decoded reply `p` (`nts`: the record's NTS fields)."""
        rx_ns, raw_ns = rx
        self.emit(Ntp(
            src=self.src, rx_ns=rx_ns, t1_ns=t1[0], xmt_hex=xmt_hex,
            t2_ns=ntp_to_unix_ns(p.rec_ts, t1[0]), t3_ns=ntp_to_unix_ns(p.xmt_ts, t1[0]),
            t4_ns=rx_ns, org_hex=f"{p.org_ts:016x}", leap=p.leap, version=p.version,
            mode=p.mode, stratum=p.stratum, poll=p.poll, precision=p.precision,
            root_delay=p.root_delay_s, root_dispersion=p.root_dispersion_s,
            refid=p.refid, pkt_hex=pkt_hex, error=error, raw_ns=raw_ns, **nts))

    def _kiss(self, code: str) -> None:
        if code == KISS_RATE:
            self.poll_s = min(self.poll_s * 2, MAX_POLL_S)
            log.warning("%s: server %s asks for a lower rate (RATE): polling every %g s",
                        self.src, self.host, self.poll_s)
        elif code in KISS_STOP:
            self.stopped_by = code
        else:
            log.info("%s: kiss-o'-death %r from %s", self.src, code, self.host)


class NtsReader(NtpReader):
    """An NTP reader with Network Time Security (kind `nts`; the module docstring and
    docs/nts.md say what it does). `port` is the NTS-KE port; `ntp_port` the NTPv4 port when
    the KE names none; `server_name` the name the certificate must carry; `ca_file` the CAs
    trusted (default: the system's)."""

    def __init__(self, cfg: SourceConfig, emit: Emit, *, timeout_s: float | None = None,
                 ke_timeout_s: float | None = None):
        super().__init__(cfg, emit, timeout_s=timeout_s)
        from ..wire import nts
        from . import nts_ke

        self._nts, self._nts_ke = nts, nts_ke  # imported here: plain NTP needs no cryptography
        self.ke_port = cfg.port or NTS_KE_PORT
        self.ntp_port = int(cfg.options.get("ntp_port") or NTP_PORT)
        self.server_name: str = cfg.options.get("server_name") or cfg.server or ""
        self.ca_file: str | None = cfg.options.get("ca_file")
        self.ke_timeout_s = ke_timeout_s if ke_timeout_s is not None else nts_ke.KE_TIMEOUT_S
        self.session: nts_ke.NtsSession | None = None
        self._pending: nts_ke.Pending | None = None
        self._ke_failures = 0  # key establishments failed in a row
        self._ke_not_before = 0.0  # loop time before which no new one is tried

    def _target(self) -> tuple[str, int]:
        s = self.session
        return (s.ntp_host, s.ntp_port) if s is not None else (self.host, self.ntp_port)

    async def _prepare(self) -> str | None:
        s = self.session
        why = "first key establishment" if s is None else s.rekey_reason()
        if why is None:
            return None
        loop = asyncio.get_running_loop()
        if loop.time() < self._ke_not_before:
            self._count("ke_backoff")
            return "ke_backoff"
        if s is not None:
            log.info("%s: new NTS keys from %s:%d: %s", self.src, self.host, self.ke_port, why)
        self.session = None
        try:
            s = await asyncio.to_thread(
                self._nts_ke.key_exchange, self.host, self.ke_port, name=self.server_name,
                ca_file=self.ca_file, ntp_port=self.ntp_port, timeout_s=self.ke_timeout_s)
        except self._nts_ke.KeError as e:
            self._ke_failures += 1
            self._ke_not_before = loop.time() + min(
                self.poll_s * 2 ** (self._ke_failures - 1), MAX_KE_BACKOFF_S) - self.poll_s / 2
            self._count("ke_failed")
            log.warning("%s: NTS key establishment failed (%s): %s", self.src, e.cause, e)
            rx_ns, raw_ns = now_pair()
            self.emit(NtsKe(self.src, rx_ns, reason=why, cause=e.cause, message=str(e),
                            raw_ns=raw_ns))
            return "ke_failed"
        self._ke_failures = 0
        self._count("ke")
        self.session = s
        self.addr = None  # the KE names the NTPv4 server: resolve it again
        rx_ns, raw_ns = now_pair()
        log.info("%s: NTS session %s: NTPv4 server %s:%d, %d cookies", self.src, s.session_id,
                 s.ntp_host, s.ntp_port, s.cookies_left)
        self.emit(NtsKe(self.src, rx_ns, session=s.session_id, ntp_server=s.ntp_host,
                        ntp_port=s.ntp_port, cookies=s.cookies_left, reason=why, raw_ns=raw_ns))
        return None

    def _request(self, xmt: int) -> bytes:
        assert self.session is not None  # _prepare made one
        pkt, self._pending = self.session.request(xmt)
        return pkt

    def _reply(self, data: bytes, rx: tuple[int, int], t1: tuple[int, int], xmt: int,
               xmt_hex: str, record: bool) -> str:
        """A datagram on the exchange's socket: one that is no NTP header or does not echo our
        transmit timestamp is handled as the plain reader does (`malformed`, `bad_origin`);
        any other is used only when its authenticator verifies."""
        try:
            p = decode(data)
        except MalformedReply:
            p = None
        session, pending = self.session, self._pending
        if p is None or p.org_ts != xmt or session is None or pending is None:
            return super()._reply(data, rx, t1, xmt, xmt_hex, record)
        header = data[:PACKET_LEN].hex()  # the extension fields hold cookies: never recorded
        sid = session.session_id
        nts = self._nts
        try:
            reply = session.accept(data, pending)
        except nts.NtsNak as e:
            self._count("nts_nak")
            log.info("%s: %s", self.src, e)
            self._record(p, header, rx, t1, xmt_hex, "kiss", ke_session=sid)
            return "kiss"  # the session is marked: new keys before the next exchange
        except nts.NtsError as e:
            error = "nts_downgrade" if e.reason == nts.DOWNGRADE else "nts_auth_failed"
            self._count(error)
            self._garbage_seen(f"refused by NTS ({e.reason})")  # the alert says it once
            if record:
                self._record(p, header, rx, t1, xmt_hex, error, ke_session=sid,
                             auth_error=str(e))
            return error  # keep waiting: a forged packet must not shadow the genuine reply
        p = reply.packet
        kiss = p.stratum == 0
        self._count("kiss" if kiss else "ok")
        self._record(p, header, rx, t1, xmt_hex, "kiss" if kiss else None, auth=AUTH_NTS,
                     ke_session=sid)
        if kiss:
            self._kiss(p.refid)
            return "kiss"
        return "ok"
