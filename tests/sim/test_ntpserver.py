"""The simulated NTP server, checked with a bare socket client (not timewatch's reader)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from timewatch.sim.ntpserver import Behaviour, SimNtpServer

HOST = "127.0.0.41"
HDR = struct.Struct("!BBbbII4sQQQQ")
NTP_DELTA_S = 2_208_988_800  # 1900 -> 1970 (RFC 5905)


def exchange(b: Behaviour, after_s: float = 0.0, stall_s: float = 0.0
             ) -> tuple[int, bytes | None, int]:
    """Send one client request (transmit timestamp 0x1122...): (its send time, the reply if any,
    the reply's arrival time), realtime ns. `stall_s`: the event loop (the server's too) is
    kept busy that long right after the send."""

    async def main() -> tuple[int, bytes | None, int]:
        srv = await SimNtpServer(HOST, 0, b).start()
        try:
            await asyncio.sleep(after_s)
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                s.connect((HOST, srv.port))
                req = bytearray(48)
                req[0] = (4 << 3) | 3
                req[40:48] = bytes.fromhex("1122334455667788")
                t1 = time.time_ns()
                s.send(bytes(req))
                time.sleep(stall_s)  # the loop is busy: nothing reads the server's socket
                # A reply is awaited generously (a loaded machine is slow); only the silent
                # server's non-answer is bounded short, as nothing will come.
                try:
                    reply = await asyncio.wait_for(loop.sock_recv(s, 2048),
                                                   0.8 if b.silent else 10.0)
                except TimeoutError:
                    return t1, None, time.time_ns()
                return t1, reply, time.time_ns()
        finally:
            srv.close()

    return asyncio.run(main())


def ask(b: Behaviour, after_s: float = 0.0) -> bytes | None:
    """The reply to one client request, if any."""
    return exchange(b, after_s)[1]


def server_offset_s(reply: bytes) -> float:
    xmt = HDR.unpack(reply)[-1]
    return (xmt >> 32) - NTP_DELTA_S + (xmt & 0xFFFFFFFF) / 2**32 - time.time()


def test_honest_reply_echoes_origin_and_tells_the_time() -> None:
    r = ask(Behaviour())
    assert r is not None and len(r) == 48
    lvm, stratum, *_ = HDR.unpack(r)
    assert (lvm >> 6, (lvm >> 3) & 7, lvm & 7, stratum) == (0, 4, 4, 1)
    assert r[24:32].hex() == "1122334455667788"
    assert server_offset_s(r) == pytest.approx(0.0, abs=0.01)


def test_offset_leap_stratum_and_lie_after_start() -> None:
    r = ask(Behaviour(offset_s=0.5, leap=3, stratum=16, refid=b"\x7f\0\0\x01"))
    assert r is not None
    lvm, stratum, *_ = HDR.unpack(r)
    assert (lvm >> 6, stratum) == (3, 16) and server_offset_s(r) == pytest.approx(0.5, abs=0.01)
    r = ask(Behaviour(lie_after_s=0.2, lie_offset_s=0.15), after_s=0.3)
    assert r is not None and server_offset_s(r) == pytest.approx(0.15, abs=0.01)


def test_kiss_wrong_origin_silence_and_garbage() -> None:
    r = ask(Behaviour(kiss="RATE"))
    assert r is not None and r[1] == 0 and r[12:16] == b"RATE"
    r = ask(Behaviour(wrong_origin=True))
    assert r is not None and r[24:32].hex() != "1122334455667788"
    assert ask(Behaviour(silent=True)) is None
    r = ask(Behaviour(garbage="truncated"))
    assert r is not None and len(r) < 48


def _ntp_ns(ts: int) -> int:
    return ((ts >> 32) - NTP_DELTA_S) * 1_000_000_000 + ((ts & 0xFFFFFFFF) * 1_000_000_000 >> 32)


@pytest.mark.parametrize("stall_s", [0.0, 0.05])
def test_a_busy_event_loop_is_processing_time_not_a_delayed_request(stall_s: float) -> None:
    # The server shares its event loop with the monitor (tests, demo): a loop that is busy when
    # the request arrives must not move the receive stamp (that would read as a man in the
    # middle delaying the request, with the offset shifted by half the stall). The receive stamp
    # is the kernel's; the stall shows as transmit - receive, which the client subtracts.
    t1, reply, t4 = exchange(Behaviour(), stall_s=stall_s)
    assert reply is not None
    *_, rec, xmt = HDR.unpack(reply)
    t2, t3 = _ntp_ns(rec), _ntp_ns(xmt)
    assert t1 <= t2 + 1000 and t3 <= t4 + 1000
    assert t2 - t1 < 5_000_000, (t2 - t1) / 1e6  # received when it arrived, not when read
    assert t3 - t2 >= stall_s * 1e9 * 0.9  # the stall is the server's processing time
    delay_ns = (t4 - t1) - (t3 - t2)
    assert delay_ns < 5_000_000, delay_ns / 1e6
