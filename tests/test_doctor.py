"""`timewatch doctor` on this machine: a pty held by another process, fake PPS sysfs, store, port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from timewatch.config import parse
from timewatch.doctor import check_http, check_pps, check_serial, check_store, holders, run_checks


def _cfg(tmp: Path, **src: object) -> object:
    return parse({"monitor": {"state_dir": str(tmp / "state")}, "sources": [src]})


def test_serial_device_missing_says_how_to_fix(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, id="gnss0", kind="gnss", device=str(tmp_path / "ttyNOPE"))
    (c,) = list(check_serial(cfg.sources[0]))  # type: ignore[attr-defined]
    assert not c.ok and "missing" in c.detail and "enable_uart=1" in c.fix


def test_serial_device_held_by_another_process_is_named(tmp_path: Path) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    # A second process holds the pty open, as gpsd or a getty would.
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import time; f = open({path!r}, 'rb'); time.sleep(30)"])
    try:
        for _ in range(100):
            if any(pid == holder.pid for pid, _ in holders(path)):
                break
            threading.Event().wait(0.05)
        cfg = _cfg(tmp_path, id="gnss0", kind="gnss", device=path)
        checks = list(check_serial(cfg.sources[0]))  # type: ignore[attr-defined]
        assert checks[0].ok, checks[0]
        held = [c for c in checks if not c.ok]
        assert held and f"pid {holder.pid}" in held[0].what
    finally:
        holder.kill()
        holder.wait()
        os.close(master)
        os.close(slave)


def test_pps_fake_sysfs_pulsing_and_overlay(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "pps0").mkdir(parents=True)
    assert_file = sysfs / "pps0" / "assert"
    assert_file.write_text("1764160001.000000123#81234\n")
    boot = tmp_path / "config.txt"
    boot.write_text("enable_uart=1\n")
    cfg = _cfg(tmp_path, id="pps0", kind="pps", device="/sys/class/pps/pps0")

    def pulse() -> None:
        threading.Event().wait(0.1)
        assert_file.write_text("1764160002.000000456#81235\n")

    t = threading.Thread(target=pulse)
    t.start()
    checks = list(check_pps(cfg.sources[0], sysfs, (boot,), wait_s=0.5))  # type: ignore[attr-defined]
    t.join()
    by_what = {c.what.split(": ")[-1]: c for c in checks}
    assert by_what["PPS pulses"].ok
    overlay = next(c for c in checks if c.what == "pps-gpio overlay")
    assert not overlay.ok and overlay.warn and "gpiopin" in overlay.fix
    # no new edge: a failure with its fix
    checks = list(check_pps(cfg.sources[0], sysfs, (boot,), wait_s=0.2))  # type: ignore[attr-defined]
    stuck = next(c for c in checks if c.what.endswith("PPS pulses"))
    assert not stuck.ok and "antenna" in stuck.fix


def test_store_unwritable_is_a_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = parse({"monitor": {"state_dir": str(blocker / "sub")}})
    c = check_store(cfg)
    assert not c.ok and "chown" in c.fix
    assert check_store(parse({"monitor": {"state_dir": str(tmp_path / "ok")}})).ok


def test_http_port_in_use_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        c = check_http(f"127.0.0.1:{port}")
        assert not c.ok and "ss -ltnp" in c.fix
    assert check_http(f"127.0.0.1:{port}").ok


def test_run_checks_with_an_unanswering_ntp_server(tmp_path: Path) -> None:
    cfg = parse({"monitor": {"state_dir": str(tmp_path)},
                 "sources": [{"id": "dead", "kind": "ntp", "server": "127.0.0.1", "port": 9}],
                 "http": {"listen": ""}})
    checks = run_checks(cfg)
    ntp = next(c for c in checks if c.what.startswith("dead"))
    assert not ntp.ok and "UDP port 123" in ntp.fix


def test_ntp_server_that_answers_is_ok_with_its_numbers() -> None:
    import asyncio

    from timewatch.doctor import check_ntp
    from timewatch.sim.ntpserver import Behaviour, SimNtpServer

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, SimNtpServer] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def go() -> None:
            holder["srv"] = await SimNtpServer("127.0.0.1", 0, Behaviour(offset_s=0.25)).start()
            started.set()

        loop.run_until_complete(go())
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(5)
    srv = holder["srv"]
    try:
        cfg = parse({"sources": [{"id": "sim", "kind": "ntp", "server": "127.0.0.1",
                                  "port": srv.port}]})
        (c,) = check_ntp(cfg.sources[0])
        assert c.ok, c
        import re

        m = re.search(r"stratum 1, offset ([+-][0-9.]+) s", c.detail)
        assert m, c.detail
        assert abs(float(m.group(1)) - 0.25) < 0.02  # the server's offset, within the path noise
    finally:
        loop.call_soon_threadsafe(srv.close)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
