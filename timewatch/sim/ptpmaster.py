"""A small PTP master for the tests: IEEE 1588-2008 over UDPv4 multicast, misbehaving on demand.

It plays what ptp4l will not: a grandmaster that announces priority1 0 to win the BMCA, one whose
timestamps lie (by a fixed offset, or a push that grows), one that announces a wrong UTC offset or
leap flags, and one whose Sync messages are held back (the delay attack: the Follow_Up still
carries the time the Sync should have left). Two-step, end-to-end: every sync interval a Sync
(port 319) and its Follow_Up (320), every announce interval an Announce (320), and a Delay_Resp
(320) for every Delay_Req (319), stamped with the kernel's receive time (SO_TIMESTAMPNS).

It runs in its own thread, which enters a network namespace first (`netns`), so a test can put it
on one end of a veth pair while the monitor's ptp4l listens on the other. Its `Behaviour` may be
changed while it runs (`master.behaviour.offset_s = 1e-3`).

Encoding is written here with `struct`, independent of linuxptp, so the two ends share no code.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

PTP_MCAST = "224.0.1.129"
EVENT_PORT, GENERAL_PORT = 319, 320
# messageType (IEEE 1588-2008 table 19) and controlField (table 23).
SYNC, DELAY_REQ, FOLLOW_UP, DELAY_RESP, ANNOUNCE = 0x0, 0x1, 0x8, 0x9, 0xB
_CONTROL = {SYNC: 0, DELAY_REQ: 1, FOLLOW_UP: 2, DELAY_RESP: 3, ANNOUNCE: 5}
# flagField octet 0: twoStepFlag; octet 1: leap61, leap59, currentUtcOffsetValid, ptpTimescale,
# timeTraceable, frequencyTraceable (table 20).
TWO_STEP = 0x02
LEAP61, LEAP59, UTC_VALID, PTP_TIMESCALE, TIME_TRACEABLE, FREQ_TRACEABLE = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20)
_HEADER = struct.Struct("!BBHBxBBq4x8sHHBb")  # 34 bytes
_TS = struct.Struct("!HIl")  # 48-bit seconds (16 + 32) and nanoseconds: 10 bytes
_ANNOUNCE_BODY = struct.Struct("!hxBBBHB8sHB")  # after the origin timestamp: 20 bytes
CLONE_NEWNET = 0x40000000
SO_TIMESTAMPNS = 35
# Transmit stamps from the kernel (linux/net_tstamp.h): the Sync's time as it left, read back
# from the socket's error queue, so Python's own latency never enters the Follow_Up.
SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
TX_STAMP_TIMEOUT_S = 0.05
_TIMESPEC = struct.Struct("@ll")


@dataclass
class Behaviour:
    """What the master does now. Change fields at any time; the next message sees them."""

    offset_s: float = 0.0  # its clock minus host realtime (PTP time as it announces it)
    push_s_per_s: float = 0.0  # ... growing by this much per second from `push_from`
    push_from: float | None = None  # monotonic time the push starts (None: not pushing)
    sync_delay_s: float = 0.0  # hold each Sync back this long; its Follow_Up says it left on time
    priority1: int = 128
    priority2: int = 128
    clock_class: int = 6
    clock_accuracy: int = 0x21  # within 100 ns
    variance: int = 0x4E5D
    time_source: int = 0x20  # GPS
    utc_offset: int = 37
    utc_valid: bool = False
    ptp_timescale: bool = False  # False: ARB (times are host realtime, as ptp4l -S sends)
    leap61: bool = False
    leap59: bool = False
    time_traceable: bool = False
    steps_removed: int = 0
    silent: bool = False  # send nothing (a master that died)


def _ts(ns: int) -> bytes:
    sec, nsec = divmod(ns, 1_000_000_000)
    return _TS.pack(sec >> 32, sec & 0xFFFFFFFF, nsec)


def identity_bytes(identity: str) -> bytes:
    """`xxxxxx.xxxx.xxxxxx` -> 8 bytes."""
    return bytes.fromhex(identity.replace(".", ""))


@dataclass
class SimPtpMaster:
    """One master on `interface` (in network namespace `netns`, if given)."""

    interface: str
    address: str  # the interface's IPv4 address (multicast goes out from it)
    identity: str = "02aabb.fffe.000001"
    netns: str | None = None
    domain: int = 0
    log_sync_interval: int = 0
    log_announce_interval: int = 1
    behaviour: Behaviour = field(default_factory=Behaviour)
    syncs: int = 0
    announces: int = 0
    delay_resps: int = 0
    first_announce_ns: int | None = None  # host realtime of its first Announce

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._seq = {SYNC: 0, ANNOUNCE: 0}
        self._port = identity_bytes(self.identity)

    # -- life ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 5.0) -> SimPtpMaster:
        self._thread = threading.Thread(target=self._run, name=f"ptpmaster-{self.identity}",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the PTP master did not start")
        if self._error is not None:
            raise RuntimeError(f"the PTP master failed to start: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def clock_ns(self) -> int:
        """The master's time now: host realtime + offset (+ the push so far)."""
        b = self.behaviour
        off = b.offset_s
        if b.push_from is not None:
            off += b.push_s_per_s * max(0.0, time.monotonic() - b.push_from)
        return time.time_ns() + round(off * 1e9)

    # -- wire --------------------------------------------------------------------------------
    def _header(self, mtype: int, length: int, seq: int, flags1: int = 0, interval: int = 0,
                flags0: int = 0) -> bytes:
        return _HEADER.pack(mtype, 2, length, self.domain, flags0, flags1, 0,
                            self._port, 1, seq, _CONTROL[mtype], interval)

    def _announce(self) -> bytes:
        b = self.behaviour
        flags1 = ((LEAP61 if b.leap61 else 0) | (LEAP59 if b.leap59 else 0)
                  | (UTC_VALID if b.utc_valid else 0) | (PTP_TIMESCALE if b.ptp_timescale else 0)
                  | (TIME_TRACEABLE if b.time_traceable else 0))
        seq = self._seq[ANNOUNCE] = (self._seq[ANNOUNCE] + 1) & 0xFFFF
        body = _ts(0) + _ANNOUNCE_BODY.pack(b.utc_offset, b.priority1, b.clock_class,
                                           b.clock_accuracy, b.variance, b.priority2,
                                           self._port, b.steps_removed, b.time_source)
        return self._header(ANNOUNCE, 34 + len(body), seq, flags1,
                            self.log_announce_interval) + body

    def _ptp_time(self, host_ns: int) -> int:
        """Host realtime -> the time this master tells (TAI when it claims the PTP timescale)."""
        b = self.behaviour
        t = host_ns + (self.clock_ns() - time.time_ns())
        return t + b.utc_offset * 1_000_000_000 if b.ptp_timescale else t

    def _run(self) -> None:
        try:
            if self.netns:
                enter_netns(self.netns)
            ev, gen = self._sockets()
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(ev, gen)
        finally:
            ev.close()
            gen.close()

    def _sockets(self) -> tuple[socket.socket, socket.socket]:
        out = []
        for port in (EVENT_PORT, GENERAL_PORT):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            s.bind(("0.0.0.0", port))
            mreq = socket.inet_aton(PTP_MCAST) + socket.inet_aton(self.address)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.address))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            out.append(s)
        out[0].setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE
                          | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY)
        return out[0], out[1]

    def _serve(self, ev: socket.socket, gen: socket.socket) -> None:
        sync_every = 2.0 ** self.log_sync_interval
        ann_every = 2.0 ** self.log_announce_interval
        now = time.monotonic()
        next_sync, next_ann = now + 0.1, now
        pending: list[tuple[float, int, int]] = []  # (send at, seq, origin ns) of held Syncs
        while not self._stop.is_set():
            now = time.monotonic()
            wake = min(next_sync, next_ann, *(p[0] for p in pending)) if pending else min(
                next_sync, next_ann)
            r, _, _ = select.select([ev], [], [], max(0.0, min(wake - now, 0.2)))
            if r:
                self._delay_req(ev, gen)
            b = self.behaviour
            now = time.monotonic()
            if now >= next_ann:
                next_ann += ann_every
                if not b.silent:
                    gen.sendto(self._announce(), (PTP_MCAST, GENERAL_PORT))
                    self.announces += 1
                    if self.first_announce_ns is None:
                        self.first_announce_ns = time.time_ns()
            if now >= next_sync:
                next_sync += sync_every
                if not b.silent:
                    seq = self._seq[SYNC] = (self._seq[SYNC] + 1) & 0xFFFF
                    pending.append((now + b.sync_delay_s, seq, 0))
            for item in [p for p in pending if p[0] <= now]:
                pending.remove(item)
                _, seq, _ = item
                sync = self._header(SYNC, 44, seq, interval=self.log_sync_interval,
                                    flags0=TWO_STEP) + _ts(0)
                while tx_stamp(ev, 0.0) is not None:  # a late stamp of an earlier Sync
                    pass
                before = time.time_ns()
                ev.sendto(sync, (PTP_MCAST, EVENT_PORT))
                sent = tx_stamp(ev) or before
                origin = self._ptp_time(sent) - round(b.sync_delay_s * 1e9)
                gen.sendto(self._header(FOLLOW_UP, 44, seq, interval=self.log_sync_interval)
                           + _ts(origin), (PTP_MCAST, GENERAL_PORT))
                self.syncs += 1

    def _delay_req(self, ev: socket.socket, gen: socket.socket) -> None:
        try:
            data, anc, _, _ = ev.recvmsg(256, socket.CMSG_SPACE(_TIMESPEC.size), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        rx_ns = time.time_ns()
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(payload[:_TIMESPEC.size])
                rx_ns = sec * 1_000_000_000 + nsec
        if len(data) < 44 or data[0] & 0x0F != DELAY_REQ or data[4] != self.domain:
            return
        if self.behaviour.silent:
            return
        requester = data[20:30]
        seq = struct.unpack("!H", data[30:32])[0]
        body = _ts(self._ptp_time(rx_ns)) + requester
        gen.sendto(self._header(DELAY_RESP, 34 + len(body), seq, interval=0) + body,
                   (PTP_MCAST, GENERAL_PORT))
        self.delay_resps += 1


def tx_stamp(sock: socket.socket, timeout_s: float = TX_STAMP_TIMEOUT_S) -> int | None:
    """The kernel's software transmit stamp of the datagram just sent (host realtime ns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, anc, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(3 * _TIMESPEC.size),
                                        socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return None
            select.select([], [], [sock], 0.005)
            continue
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                sec, nsec = _TIMESPEC.unpack(payload[:_TIMESPEC.size])
                return sec * 1_000_000_000 + nsec
    return None


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace `name` (`ip netns add name`)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)
