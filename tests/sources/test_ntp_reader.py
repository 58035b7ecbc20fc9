"""NtpReader against timewatch's simulated NTP server on loopback (real UDP, real kernel stamps)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import await_until
from timewatch.config import SourceConfig
from timewatch.records import Ntp, Observation
from timewatch.sim.ntpserver import Behaviour, SimNtpServer
from timewatch.sources.ntp import MAX_RECORDS_PER_EXCHANGE, NtpReader, request
from timewatch.wire.ntp import decode, ntp_to_unix_ns, unix_ns_to_ntp

HOST = "127.0.0.31"


def offset_s(o: Ntp) -> float:
    assert o.t2_ns is not None and o.t3_ns is not None and o.t4_ns is not None
    return ((o.t2_ns - o.t1_ns) + (o.t3_ns - o.t4_ns)) / 2e9


def delay_s(o: Ntp) -> float:
    assert o.t2_ns is not None and o.t3_ns is not None and o.t4_ns is not None
    return ((o.t4_ns - o.t1_ns) - (o.t3_ns - o.t2_ns)) / 1e9


Body = Callable[[SimNtpServer, NtpReader, list[Ntp]], Awaitable[Any]]


def with_server(b: Behaviour, body: Body, host: str = HOST, poll_s: float = 1.0,
                timeout_s: float = 0.5) -> tuple[Any, NtpReader, list[Ntp]]:
    """Run `body(server, reader, records)` against a fresh simulated server on a free port."""
    out: list[Ntp] = []

    def emit(o: Observation) -> None:
        assert isinstance(o, Ntp)
        out.append(o)

    async def main() -> tuple[Any, NtpReader]:
        srv = await SimNtpServer(host, 0, b).start()
        r = NtpReader(SourceConfig("s", "ntp", "s", server=host, port=srv.port, poll_s=poll_s),
                      emit, timeout_s=timeout_s)
        try:
            return await body(srv, r, out), r
        finally:
            srv.close()

    res, r = asyncio.run(main())
    return res, r, out


async def polls(srv: SimNtpServer, r: NtpReader, n: int) -> list[str]:
    return [await r.poll_once() for _ in range(n)]


def test_codec_round_trips_ns_and_picks_the_nearest_era() -> None:
    t = 1_764_160_002_001_100_123
    assert abs(ntp_to_unix_ns(unix_ns_to_ntp(t), t) - t) <= 1
    after_2036 = 2_200_000_000 * 10**9  # NTP era 1 (from 2036-02-07)
    assert abs(ntp_to_unix_ns(unix_ns_to_ntp(after_2036), after_2036 - 10**9) - after_2036) <= 1
    p = decode(request(0x0123456789ABCDEF))
    assert (p.version, p.mode, p.xmt_ts, p.org_ts) == (4, 3, 0x0123456789ABCDEF, 0)


def test_reply_recorded_with_fields_raw_bytes_and_kernel_stamp() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[str]:
        return await polls(srv, r, 2)

    res, r, out = with_server(Behaviour(offset_s=0.05, stratum=1, refid=b"GPS\0"), body)
    assert res == ["ok", "ok"]
    a, b = out
    assert a.error is None and a.org_hex == a.xmt_hex and a.xmt_hex != b.xmt_hex
    assert (a.mode, a.version, a.stratum, a.refid, a.leap) == (4, 4, 1, "GPS", 0)
    assert a.pkt_hex is not None and decode(bytes.fromhex(a.pkt_hex)).org_ts == int(a.xmt_hex, 16)
    assert a.rx_ns == a.t4_ns and a.raw_ns is not None
    assert offset_s(a) == pytest.approx(0.05, abs=0.005)
    if sys.platform == "linux":
        assert r.counters.get("kernel_rx_ts") == 2


def test_wrong_origin_is_recorded_as_bad_origin_and_never_as_a_reply() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[str]:
        return await polls(srv, r, 1)

    res, _, out = with_server(Behaviour(wrong_origin=True), body)
    assert res == ["timeout"]
    bad, to = out
    assert bad.error == "bad_origin" and bad.org_hex != bad.xmt_hex
    assert bad.t2_ns is not None and bad.pkt_hex  # all fields kept as evidence
    assert to.error == "timeout" and to.xmt_hex == bad.xmt_hex


@pytest.mark.parametrize("garbage", ["random", "truncated"])
def test_garbage_replies_are_counted_and_never_crash_the_reader(garbage: str) -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[str]:
        res = await polls(srv, r, 6)
        srv.behaviour.garbage = None
        return res + await polls(srv, r, 1)

    # Each garbage reply must arrive within the reply timeout to be recorded: 1.5 s, not the
    # default 0.5 s, so a loaded CI machine cannot push one past it (seen once under load).
    res, r, out = with_server(Behaviour(garbage=garbage), body, timeout_s=1.5)
    assert res == ["timeout"] * 6 + ["ok"]
    bogus = [o for o in out if o.error in ("malformed", "bad_origin")]
    assert len(bogus) == 6 and all(o.pkt_hex is not None for o in bogus)
    assert r.counters.get("malformed", 0) + r.counters.get("bad_origin", 0) == 6
    if garbage == "truncated":
        assert r.counters["malformed"] == 6


def test_a_flood_of_replies_is_counted_but_recorded_only_up_to_the_cap() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[str]:
        return await polls(srv, r, 1)

    res, r, out = with_server(Behaviour(garbage="truncated", copies=30), body)
    assert res == ["timeout"]
    assert r.counters["malformed"] == 30
    assert len(out) == MAX_RECORDS_PER_EXCHANGE + 1  # the capped malformed records + timeout


def test_datagrams_from_another_address_never_reach_the_reader() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> None:
        task = asyncio.create_task(r.poll_once())
        await await_until(lambda: srv.last_client is not None, 5, "the request at the server")
        assert srv.last_client is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.33", 0))  # an off-path sender at another address
            for _ in range(20):
                s.sendto(b"\x24" + b"\x00" * 47, srv.last_client)
        await task

    _, r, out = with_server(Behaviour(silent=True), body)
    assert [o.error for o in out] == ["timeout"] and "malformed" not in r.counters


@pytest.mark.parametrize("code", ["DENY", "RSTR"])
def test_kiss_deny_or_rstr_stops_polling_that_server(code: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> int:
        task = asyncio.create_task(r.run())
        # The reader leaves its polling loop (and says so): no request can follow.
        await await_until(lambda: "not polling it any more" in caplog.text, 5,
                          "the reader's polling loop ended")
        task.cancel()
        return len(srv.requests)

    n, r, out = with_server(Behaviour(kiss=code), body)
    assert n == 1 and r.stopped_by == code
    assert [(o.error, o.stratum, o.refid) for o in out] == [("kiss", 0, code)]


def test_kiss_rate_doubles_the_poll_interval() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[float]:
        task = asyncio.create_task(r.run())
        await await_until(lambda: len(srv.requests) == 1, 5, "the first request")
        srv.behaviour.kiss = "RATE"
        await await_until(lambda: len(srv.requests) == 4, 10, "the fourth request")
        task.cancel()
        return srv.requests

    reqs, r, _ = with_server(Behaviour(), body)
    gaps = [b - a for a, b in zip(reqs, reqs[1:], strict=False)]
    # polls at 0, 1 (RATE: now 2 s), 3 (RATE: now 4 s), 7: gaps of about 1, 2, 4 s
    assert gaps == pytest.approx([1.0, 2.0, 4.0], abs=0.25)
    assert r.poll_s == 8.0


def test_silent_server_times_out_and_the_name_is_resolved_again() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[str]:
        res = await polls(srv, r, 2)
        srv.behaviour.silent = False
        return res + await polls(srv, r, 2)

    res, r, out = with_server(Behaviour(silent=True), body)
    assert res == ["timeout", "timeout", "ok", "ok"]
    assert [o.error for o in out] == ["timeout", "timeout", None, None]
    assert r.counters["resolved"] == 3  # after each failure, not after a success


def test_unresolvable_name_and_closed_port_are_unreachable() -> None:
    async def main() -> tuple[list[Observation], list[Observation]]:
        a: list[Observation] = []
        b: list[Observation] = []
        r1 = NtpReader(SourceConfig("x", "ntp", "x", server="no-such-host.invalid", poll_s=1),
                       a.append)
        assert await r1.poll_once() == "unreachable"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.32", 0))
        closed_port = s.getsockname()[1]
        s.close()  # nobody listens there now: the kernel answers ICMP port unreachable
        r2 = NtpReader(SourceConfig("y", "ntp", "y", server="127.0.0.32", port=closed_port,
                                    poll_s=1), b.append, timeout_s=0.5)
        assert await r2.poll_once() == "unreachable"
        return a, b

    a, b = asyncio.run(main())
    assert [getattr(o, "error", None) for o in a + b] == ["unreachable", "unreachable"]


def test_ipv6_loopback_server() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not available")

    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> list[str]:
        return await polls(srv, r, 1)

    res, r, out = with_server(Behaviour(), body, host="::1")
    assert res == ["ok"] and r.addr is not None and r.addr[0] == socket.AF_INET6


def test_drift_asymmetric_delay_and_leap_show_in_the_recorded_fields() -> None:
    async def body(srv: SimNtpServer, r: NtpReader, out: list[Ntp]) -> None:
        srv.behaviour.drift_ppm = 20_000.0  # 20 ms per second
        await r.poll_once()
        await asyncio.sleep(1.0)
        await r.poll_once()
        srv.behaviour.drift_ppm = 0.0
        srv.behaviour.offset_s = -1.0
        srv.behaviour.reply_delay_s = 0.2
        srv.behaviour.leap = 1
        await r.poll_once()

    _, _, (a, b, c) = with_server(Behaviour(), body, timeout_s=1.0)
    assert offset_s(b) - offset_s(a) == pytest.approx(0.020, abs=0.004)
    # All 0.2 s on the way back: the delay grows by 0.2 s and the offset reads 0.1 s low.
    assert delay_s(c) == pytest.approx(0.2, abs=0.02)
    assert offset_s(c) == pytest.approx(-1.0 - 0.1, abs=0.02)
    assert (a.leap, c.leap) == (0, 1)


def test_a_flooded_reader_stops_when_cancelled() -> None:
    """A socket that a flood keeps readable must not swallow the runner's cancellation (with
    asyncio.wait_for on 3.11 it could, and shutdown then waited forever for the reader)."""
    from tests.livemon import FloodingNtpServer

    async def main() -> int:
        srv = await FloodingNtpServer(HOST, 0).start()
        stuck = 0
        try:
            for i in range(40):
                r = NtpReader(SourceConfig("s", "ntp", "s", server=HOST, port=srv.port,
                                           poll_s=1.0), lambda o: None, timeout_s=0.5)
                t = asyncio.create_task(r.run())
                await asyncio.sleep(0.002 * (i % 10))
                t.cancel()
                done, _ = await asyncio.wait({t}, timeout=2.0)
                stuck += not done
        finally:
            srv.close()
        return stuck

    assert asyncio.run(main()) == 0


def test_garbage_is_logged_as_one_summary_line_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    """Every exchange sees garbage: the first exchange logs one summary, the next ones within
    GARBAGE_LOG_S nothing, and the one after the interval the count since."""
    from tests.livemon import FloodingNtpServer
    from timewatch.sources import ntp as ntp_mod

    async def main() -> list[str]:
        srv = await FloodingNtpServer(HOST, 0).start()
        srv.flood = 50
        r = NtpReader(SourceConfig("s", "ntp", "s", server=HOST, port=srv.port, poll_s=1.0),
                      lambda o: None, timeout_s=1.0)
        try:
            res = [await r.poll_once() for _ in range(3)]
            r._garbage_logged -= ntp_mod.GARBAGE_LOG_S  # the interval has passed
            res.append(await r.poll_once())
        finally:
            srv.close()
        return res

    with caplog.at_level(logging.INFO, "timewatch.sources.ntp"):
        assert asyncio.run(main()) == ["ok"] * 4
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "(25 malformed, 25 with a wrong origin) since the start" in lines[0]
    assert "(75 malformed, 75 with a wrong origin) since " in lines[1]
