"""timewatch's own simulated NTP server: real UDP on loopback, misbehaving on demand.

The demo, the tests and the bench poll it with the real `NtpReader`. Its behaviour is a mutable
`Behaviour` that may be changed while it runs (`server.behaviour.offset_s = 0.15`):
offset, drift, asymmetric delays, leap indicator, stratum, kiss-o'-death, wrong origin, silence,
garbage replies, and a lie that starts after N seconds.

Encoding is written here with `struct` on purpose (not shared with the reader), so a codec bug
cannot hide itself by being on both ends of the wire.

The receive stamp is the kernel's (SO_TIMESTAMPNS), as chronyd's: the server shares its event
loop with the monitor in the tests and the demo, and a loop busy for milliseconds must show as the
server's processing time (which the client subtracts), not as a delayed request with a shifted
offset (which is what a man in the middle does).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (RFC 5905 figure 4).
_NTP_DELTA_S = 2_208_988_800
# li/vn/mode, stratum, poll, precision, root delay, root dispersion, refid, 4 timestamps.
_HDR = struct.Struct("!BBbbII4sQQQQ")
# Client requests are at least one NTP header long (RFC 5905 figure 8).
_MIN_REQUEST = 48
# Mode of a client request and of a server reply (RFC 5905 figure 10).
_MODE_CLIENT, _MODE_SERVER = 3, 4
# Linux SO_TIMESTAMPNS = SCM_TIMESTAMPNS; its payload is a native `struct timespec`.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
# Datagrams read per wake-up at most, before the event loop gets a turn.
_RECV_BATCH = 64
# A simulated server's precision: 2^-20 s (~1 us), about what a Linux host reports.
_PRECISION = -20


@dataclass
class Behaviour:
    """What the server does now. Change fields at any time; the next request sees them."""

    offset_s: float = 0.0  # server clock minus host realtime
    drift_ppm: float = 0.0  # the server clock runs fast by this much from start
    request_delay_s: float = 0.0  # extra delay before the receive stamp (client->server leg)
    reply_delay_s: float = 0.0  # extra delay after the transmit stamp (server->client leg)
    leap: int = 0  # 0 none, 1 insert, 2 delete, 3 unsynchronised
    stratum: int = 1
    refid: bytes = b"SIM\0"  # stratum 1: a reference code
    version: int = 4
    mode: int = _MODE_SERVER
    root_delay_s: float = 0.0
    root_dispersion_s: float = 0.0001
    kiss: str | None = None  # "RATE", "DENY", "RSTR": answer with a kiss-o'-death
    wrong_origin: bool = False  # echo a different origin (a spoofed or stale reply)
    silent: bool = False  # drop requests (the client times out)
    garbage: str | None = None  # "random": random bytes; "truncated": a cut-short reply
    copies: int = 1  # send each reply this many times (a flood of duplicates)
    lie_after_s: float | None = None  # from this many seconds after start ...
    lie_offset_s: float = 0.0  # ... add this to the offset


def _to_ntp(ns: int) -> int:
    sec, rem = divmod(ns, 1_000_000_000)
    return (((sec + _NTP_DELTA_S) % (1 << 32)) << 32) | ((rem << 32) // 1_000_000_000)


def _short(seconds: float) -> int:
    """NTP short format (16.16 seconds)."""
    return max(0, min(0xFFFF_FFFF, round(seconds * 65536)))


@dataclass
class SimNtpServer:
    """One simulated server on (host, port). `await start()`, then `close()`. Port 0 picks a
    free port (read `port` after `start`)."""

    host: str = "127.0.0.21"
    port: int = 12123
    behaviour: Behaviour = field(default_factory=Behaviour)
    seed: int | None = None
    requests: list[float] = field(default_factory=list)  # monotonic arrival time of each request
    replies: int = 0
    last_client: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_mono = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> SimNtpServer:
        family, _, _, _, sa = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            sock.bind(sa)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]  # port 0: the kernel's choice
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self._start_mono = time.monotonic()
        return self

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        anc_size = socket.CMSG_SPACE(_TIMESPEC.size)
        for _ in range(_RECV_BATCH):
            if sock is None:
                return
            try:
                data, anc, _, addr = sock.recvmsg(2048, anc_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # an ICMP error queued for an earlier reply: keep serving
                log.debug("sim NTP server %s: %s", self.host, e)
                continue
            self._on_request(data, addr, _kernel_ns(anc))

    def elapsed_s(self) -> float:
        return time.monotonic() - self._start_mono

    def clock_ns(self, realtime_ns: int | None = None) -> int:
        """The server's clock at host realtime `realtime_ns` (now when None): realtime + offset
        + drift + lie."""
        b = self.behaviour
        el = self.elapsed_s()
        off = b.offset_s + b.drift_ppm * 1e-6 * el
        if b.lie_after_s is not None and el >= b.lie_after_s:
            off += b.lie_offset_s
        return (time.time_ns() if realtime_ns is None else realtime_ns) + round(off * 1e9)

    def _on_request(self, data: bytes, addr: tuple[str, int], rx_ns: int | None = None) -> None:
        if len(data) < _MIN_REQUEST or data[0] & 7 != _MODE_CLIENT:
            return
        self.requests.append(time.monotonic())
        self.last_client = addr
        b = self.behaviour
        if b.silent:
            return
        task = asyncio.ensure_future(self._answer(data, addr, b, rx_ns))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, req: bytes, addr: tuple[str, int], b: Behaviour,
                      rx_ns: int | None = None) -> None:
        if b.request_delay_s > 0:
            await asyncio.sleep(b.request_delay_s)
            if rx_ns is not None:  # the request arrives this much later
                rx_ns += round(b.request_delay_s * 1e9)
        rec = _to_ntp(self.clock_ns(rx_ns))
        origin = req[40:48]
        if b.wrong_origin:
            origin = bytes(self._rng.getrandbits(8) for _ in range(8))
        if b.kiss:
            stratum, refid, leap = 0, b.kiss.encode("ascii")[:4].ljust(4, b"\0"), 3
        else:
            stratum, refid, leap = b.stratum, b.refid, b.leap
        ref = _to_ntp(self.clock_ns() - 16_000_000_000)  # last set 16 s ago: any plausible age
        xmt = _to_ntp(self.clock_ns())
        pkt = _HDR.pack((leap << 6) | (b.version << 3) | b.mode, stratum, req[2] if req[2] < 128
                        else 6, _PRECISION, _short(b.root_delay_s), _short(b.root_dispersion_s),
                        refid, ref, 0, rec, xmt)
        pkt = pkt[:24] + origin + pkt[32:]
        if b.garbage == "random":
            pkt = bytes(self._rng.getrandbits(8) for _ in range(self._rng.randrange(1, 120)))
        elif b.garbage == "truncated":
            pkt = pkt[: self._rng.randrange(0, _MIN_REQUEST)]
        if b.reply_delay_s > 0:
            await asyncio.sleep(b.reply_delay_s)
        for _ in range(b.copies):
            if self._sock is not None:
                try:
                    self._sock.sendto(pkt, addr)
                except OSError as e:  # a full buffer or a vanished client: a lost reply
                    log.debug("sim NTP server %s: reply to %s: %s", self.host, addr, e)
                    continue
                self.replies += 1


def _kernel_ns(anc: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time (realtime ns) from SO_TIMESTAMPNS ancillary data, or None."""
    for level, typ, payload in anc:
        if level == socket.SOL_SOCKET and typ == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            return int(sec) * 1_000_000_000 + int(nsec)
    return None


async def start_servers(hosts: list[str], port: int,
                        behaviours: list[Behaviour] | None = None) -> list[SimNtpServer]:
    """Start one server per loopback address (all on `port`)."""
    bs = behaviours or [Behaviour() for _ in hosts]
    return [await SimNtpServer(h, port, b).start() for h, b in zip(hosts, bs, strict=True)]
