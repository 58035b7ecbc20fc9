"""The gpsd source: a real gpsd fed by gpsfake, and a local server speaking gpsd's JSON for PPS."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import await_until, need_binary, wait_until
from timewatch.config import parse
from timewatch.records import Nmea, Observation, Pps
from timewatch.sources.gpsd import CLOCK_TOLERANCE_S, GpsdReader


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reader(port: int, out: list[Observation]) -> GpsdReader:
    cfg = parse({"sources": [{"id": "gps", "kind": "gpsd", "server": "127.0.0.1",
                              "port": port}]})
    return GpsdReader(cfg.sources[0], out.append)


def test_config_gpsd_source_is_a_receiver_and_its_pps_in_one_group() -> None:
    cfg = parse({"sources": [{"id": "gps", "kind": "gpsd", "group": "roof"}]})
    h = cfg.header()
    assert h.sources["gps"].kind == "gnss" and h.sources["gps-pps"].kind == "pps"
    assert h.sources["gps-pps"].label_from == "gps"
    assert {s.group for s in h.sources.values()} == {"roof"}


def test_pps_report_becomes_a_pps_record_with_real_sec_as_seq() -> None:
    out: list[Observation] = []
    r = _reader(1, out)
    sec = time.time_ns() // 1_000_000_000 - 1  # the edge just before the last whole second
    r.handle_line(f'{{"class":"PPS","device":"/dev/pps0","real_sec":{sec + 1},"real_nsec":0,'
                  f'"clock_sec":{sec},"clock_nsec":999998765,"precision":-20}}\n'.encode())
    r.handle_line(b'{"class":"TPV","mode":3}\n')
    r.handle_line(b'{"class":"PPS","real_sec":"x"}\n')
    r.handle_line(b"{not json\n")
    r.handle_line(b"$GPZDA,202656.000,13,04,2015,,*53\r\n")
    assert len(out) == 2 and r.bad_lines == 2
    pps, nmea = out
    assert isinstance(pps, Pps) and pps.src == "gps-pps"
    assert pps.rx_ns == sec * 1_000_000_000 + 999998765 and pps.seq == sec + 1
    assert pps.raw_ns is not None
    assert isinstance(nmea, Nmea) and nmea.line == "$GPZDA,202656.000,13,04,2015,,*53"


def test_real_gpsd_via_gpsfake_hands_over_the_receivers_sentences(corpus: Path) -> None:
    gpsfake = need_binary("gpsfake")
    need_binary("gpsd")
    log = corpus / "gpsd" / "mt3339.log"
    port = _free_port()
    proc = subprocess.Popen([gpsfake, "-P", str(port), "-1", "-q", "-c", "0.02", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: list[Observation] = []
    try:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, 10, "gpsd listening")

        async def go() -> None:
            t = asyncio.create_task(_reader(port, out).run())
            await await_until(lambda: len(out) >= 40, 15, "40 sentences through gpsd")
            t.cancel()

        asyncio.run(go())
    finally:
        proc.kill()
        proc.wait()
    lines = [o.line for o in out if isinstance(o, Nmea)]
    assert len(lines) >= 40
    logged = {ln.strip() for ln in log.read_text(errors="replace").splitlines()
              if ln.startswith("$")}
    # An NMEA receiver's sentences pass through gpsd unchanged.
    passed = [ln for ln in lines if ln in logged]
    assert len(passed) >= 0.9 * len(lines), lines[:5]
    assert all(o.src == "gps" for o in out)


def test_reconnects_after_gpsd_goes_away() -> None:
    out: list[Observation] = []
    connections = []

    async def go() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            watch = await reader.readline()
            connections.append(watch)
            n = len(connections)
            writer.write(json.dumps({"class": "PPS", "real_sec": 100 + n, "real_nsec": 0,
                                     "clock_sec": time.time_ns() // 1_000_000_000,
                                     "clock_nsec": 0}).encode() + b"\n")
            await writer.drain()
            writer.close()  # gpsd goes away after one report

        server = await asyncio.start_server(serve, "127.0.0.1", 0)  # holds the port it gets
        port = server.sockets[0].getsockname()[1]
        t = asyncio.create_task(_reader(port, out).run())
        await await_until(lambda: len(out) >= 2, 6, "two reports over two connections")
        t.cancel()
        server.close()

    asyncio.run(go())
    assert len(connections) >= 2 and connections[0].startswith(b"?WATCH=")
    assert [o.seq for o in out][:2] == [101, 102]  # type: ignore[union-attr]


def _pps_at(r: GpsdReader, clock_ns: int) -> None:
    sec, nsec = divmod(clock_ns, 1_000_000_000)
    r.handle_line(json.dumps({"class": "PPS", "real_sec": sec, "real_nsec": 0,
                              "clock_sec": sec, "clock_nsec": nsec}).encode() + b"\n")


def test_pps_clock_is_checked_against_the_host_clock_at_the_reader(
        caplog: pytest.LogCaptureFixture) -> None:
    """gpsd's clock_sec is a clock taken from outside: just inside the tolerance it is an edge,
    just outside (ahead or behind) a refused line with a warning naming it."""
    out: list[Observation] = []
    r = _reader(1, out)
    tol_ns = int(CLOCK_TOLERANCE_S * 1e9)
    margin = 200_000_000  # the test's own latency between reading the clock and the reader's
    with caplog.at_level(logging.WARNING, "timewatch.sources.gpsd"):
        _pps_at(r, time.time_ns() - tol_ns + margin)
        _pps_at(r, time.time_ns() + tol_ns - margin)
        assert len(out) == 2 and r.bad_lines == 0
        _pps_at(r, time.time_ns() - tol_ns - margin)
        _pps_at(r, time.time_ns() + tol_ns + margin)
        _pps_at(r, time.time_ns() + 86400 * 1_000_000_000)
    assert len(out) == 2 and r.bad_lines == 3
    assert "PPS edge at clock" in caplog.text and "from the host clock: refused" in caplog.text


def test_every_per_line_error_is_a_bad_line_counted_per_kind(
        caplog: pytest.LogCaptureFixture) -> None:
    out: list[Observation] = []
    r = _reader(1, out)
    now = time.time_ns() // 1_000_000_000
    good = json.dumps({"class": "PPS", "real_sec": now, "clock_sec": now, "clock_nsec": 0})
    lines = [b'{"class":"PPS","real_sec":1,"clock_sec":Infinity,"clock_nsec":0}',
             b"[" * 1500, b"{" + b'"a":[' * 1500, good.replace('"clock_nsec": 0',
                                                              '"clock_nsec": -1').encode(),
             good.replace(f'"clock_sec": {now}', '"clock_sec": true').encode(),
             good.replace(f'"real_sec": {now}', '"real_sec": 10000000000000000000000').encode(),
             good.encode()]
    with caplog.at_level(logging.WARNING, "timewatch.sources.gpsd"):
        for ln in lines:
            r.handle_line(ln + b"\n")
    assert len(out) == 1 and r.bad_lines == 5
    assert r.bad_kinds == {"json": 2, "pps": 3}
    assert len(caplog.records) == 2


def test_reader_survives_an_error_of_its_own_and_reconnects(
        caplog: pytest.LogCaptureFixture) -> None:
    """A failure outside any line's own checks ends the session, never the reader."""
    fails = [RuntimeError("boom")]
    out: list[Observation] = []

    async def go() -> int:
        conns = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal conns
            conns += 1
            await reader.readline()
            writer.write(b"$GPZDA,202656.000,13,04,2015,,*53\r\n")
            await writer.drain()
            await reader.read()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = parse({"sources": [{"id": "gps", "kind": "gpsd", "port": port}]}).sources[0]
        rd = GpsdReader(cfg, out.append)
        # An error inside a line is that line's: make session() itself fail once.
        real = rd.handle_line

        def failing(line: bytes) -> None:
            if fails:
                raise fails.pop()
            real(line)

        rd.handle_line = failing  # type: ignore[method-assign]
        t = asyncio.create_task(rd.run())
        await await_until(lambda: out, 5, "a sentence after the reconnection")
        t.cancel()
        server.close()
        return conns

    with caplog.at_level(logging.WARNING, "timewatch.sources.gpsd"):
        conns = asyncio.run(go())
    assert conns == 2 and len(out) == 1
    assert "gps: gpsd reader failed" in caplog.text and "RuntimeError: boom" in caplog.text
    assert "reader failed (RuntimeError); retrying in" in caplog.text
