"""PPS reader: pps_fdata decoding, PPS_FETCH numbers checked against the C header, sysfs polling."""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import await_until, need_binary, wait_until
from timewatch.config import SourceConfig
from timewatch.records import Observation, Pps
from timewatch.sources import pps as P


def pack_fdata(aseq: int, asec: int, ansec: int, cseq: int, csec: int, cnsec: int, mode: int,
               tsec: int = 0, tnsec: int = 0, tflags: int = 0) -> bytes:
    # struct pps_fdata as x86-64 and ARM EABI lay it out (s64 8-aligned): pps_kinfo is
    # u32 u32 ktime ktime int + 4 bytes padding = 48 bytes, then the timeout ktime (16): 64.
    return struct.pack("=IIqiIqiIi4xqiI", aseq, cseq, asec, ansec, 0, csec, cnsec, 0, mode,
                       tsec, tnsec, tflags)


def test_pps_fdata_is_64_bytes_and_decodes_packed_bytes() -> None:
    assert P.PPS_FDATA_SIZE == 64
    buf = pack_fdata(81234, 1764160001, 1234, 81233, 1764160000, 500_000_123, 0x1133)
    assert len(buf) == 64
    f = P.decode_fdata(buf)
    assert f == P.Fetched(81234, 1764160001_000001234, 81233, 1764160000_500000123, 0x1133)


def test_decode_rejects_a_short_buffer_naming_the_struct() -> None:
    with pytest.raises(P.PpsError, match="pps_fdata: 60 bytes, expected 64"):
        P.decode_fdata(bytes(60))


def test_fetch_request_carries_the_timeout() -> None:
    b = P.fetch_request(1.5)
    assert struct.unpack_from("=qiI", b, 48) == (1, 500_000_000, 0)
    b = P.fetch_request(None)
    assert struct.unpack_from("=qiI", b, 48) == (0, 0, P.PPS_TIME_INVALID)


def test_pps_fetch_number_for_64_and_32_bit_pointers() -> None:
    assert P.pps_fetch_number(8) == 0xC00870A4
    assert P.pps_fetch_number(4) == 0xC00470A4
    assert P.PPS_FETCH == P.pps_fetch_number(ctypes.sizeof(ctypes.c_void_p))


C_PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/pps.h>
int main(void) {
    printf("%lx %zu %zu %zu %zu %zu %zu\n", (unsigned long)PPS_FETCH, sizeof(struct pps_fdata),
           offsetof(struct pps_fdata, info.assert_tu), offsetof(struct pps_fdata, info.clear_tu),
           offsetof(struct pps_fdata, info.current_mode), offsetof(struct pps_fdata, timeout),
           sizeof(void *));
    return 0;
}
"""


def test_numbers_equal_what_c_compiled_against_linux_pps_h_prints(tmp_path: Path) -> None:
    gcc = need_binary("gcc")
    if not Path("/usr/include/linux/pps.h").exists():
        pytest.skip("/usr/include/linux/pps.h is missing (linux-libc-dev)")
    src = tmp_path / "pps.c"
    src.write_text(C_PROGRAM)
    exe = tmp_path / "pps"
    subprocess.run([gcc, "-o", str(exe), str(src)], check=True, capture_output=True, timeout=60)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=10)
    fetch, size, a_off, c_off, m_off, t_off, ptr = out.stdout.split()
    assert int(fetch, 16) == P.PPS_FETCH
    assert int(size) == P.PPS_FDATA_SIZE
    assert int(ptr) == ctypes.sizeof(ctypes.c_void_p)
    assert int(a_off) == P.PpsFdata.info.offset + P.PpsKinfo.assert_tu.offset
    assert int(c_off) == P.PpsFdata.info.offset + P.PpsKinfo.clear_tu.offset
    assert int(m_off) == P.PpsFdata.info.offset + P.PpsKinfo.current_mode.offset
    assert int(t_off) == P.PpsFdata.timeout.offset


def test_parse_sysfs_assert() -> None:
    assert P.parse_sysfs_assert("1764160001.000001234#81234\n") == (1764160001_000001234, 81234)
    assert P.parse_sysfs_assert("0.000000000#0\n") is None  # no edge yet
    with pytest.raises(P.PpsError, match=r"/sys/x/assert: expected 'seconds\.nanoseconds#seq"):
        P.parse_sysfs_assert("garbage", "/sys/x/assert")


def test_raw_ns_is_derived_from_the_paired_reading() -> None:
    # Fetched 150 us after the edge: raw at the edge is raw_now - 150 us.
    assert P.raw_of(1_000_000_000, 1_000_150_000, 5_000_000_000) == 4_999_850_000


def _run_reader(reader: P.PpsReader, during) -> None:  # type: ignore[no-untyped-def]
    t = threading.Thread(target=reader.run_blocking, daemon=True)
    t.start()
    try:
        during()
    finally:
        reader.stop.set()
        t.join(5)
    assert not t.is_alive()


def _edges_in_fake_sysfs(tmp_path: Path, device: str, sysfs_root: str) -> list[Observation]:
    out: list[Observation] = []
    d = tmp_path / "class" / "pps" / "pps0"
    (d / "assert").write_text("1764160000.000000500#10\n")  # there before we start: old
    r = P.PpsReader(SourceConfig("pps0", "pps", "gnss", device=device), out.append,
                    sysfs_root=sysfs_root, poll_s=0.005)
    reads = [0]
    now_pair = P.now_pair

    def counted() -> tuple[int, int]:  # the reader takes the time after each read of `assert`
        reads[0] += 1
        return now_pair()

    def pulses() -> None:
        wait_until(lambda: reads[0] >= 1, what="the reader's first read")  # the old edge seen
        for k in range(1, 4):
            now = time.clock_gettime_ns(time.CLOCK_REALTIME)
            # sysfs swaps the whole value at once: so does the test (write, then rename).
            (d / "assert.new").write_text(f"{now // 10**9}.{now % 10**9:09d}#{10 + k}\n")
            os.replace(d / "assert.new", d / "assert")
            wait_until(lambda k=k: len(out) >= k, what=f"edge {k}")  # type: ignore[misc]

    P.now_pair = counted
    try:
        _run_reader(r, pulses)
    finally:
        P.now_pair = now_pair
    assert r.mode == "sysfs"
    return out


@pytest.fixture()
def fake_sysfs(tmp_path: Path) -> Path:
    d = tmp_path / "class" / "pps" / "pps0"
    d.mkdir(parents=True)
    for name, text in (("name", "pps@12.-1\n"), ("mode", "4353\n"), ("echo", "0\n"),
                       ("clear", "0.000000000#0\n")):
        (d / name).write_text(text)
    return d


def test_sysfs_reader_emits_each_new_edge_with_raw_ns(tmp_path: Path, fake_sysfs: Path) -> None:
    out = _edges_in_fake_sysfs(tmp_path, str(fake_sysfs), str(tmp_path / "class" / "pps"))
    assert [o.seq for o in out if isinstance(o, Pps)] == [11, 12, 13]
    raw_now = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
    real_now = time.clock_gettime_ns(time.CLOCK_REALTIME)
    for o in out:
        assert isinstance(o, Pps) and o.src == "pps0" and o.raw_ns is not None
        # raw_ns is the raw clock at the assert instant: the same distance back as rx_ns.
        assert abs((raw_now - o.raw_ns) - (real_now - o.rx_ns)) < 5_000_000


def test_dev_pps_that_is_not_a_pps_device_falls_back_to_sysfs(tmp_path: Path,
                                                              fake_sysfs: Path) -> None:
    # /dev/null answers PPS_FETCH with ENOTTY, as a device without the PPS ioctl would.
    dev = tmp_path / "pps0"
    os.symlink("/dev/null", dev)
    out = _edges_in_fake_sysfs(tmp_path, str(dev), str(tmp_path / "class" / "pps"))
    assert [o.seq for o in out if isinstance(o, Pps)] == [11, 12, 13]


def test_fetch_on_a_non_pps_device_names_it() -> None:
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(P.PpsError, match=rf"/dev/null: PPS_FETCH \(0x{P.PPS_FETCH:08x}\) "
                                              r"failed: ENOTTY"):
            P.fetch(fd, 0.0, "/dev/null")
    finally:
        os.close(fd)


def test_missing_device_is_retried_not_fatal(tmp_path: Path) -> None:
    r = P.PpsReader(SourceConfig("pps0", "pps", "gnss", device=str(tmp_path / "pps9")),
                    lambda o: None, sysfs_root=str(tmp_path))
    _run_reader(r, lambda: wait_until(lambda: r.errors >= 1, what="a device error"))
    assert r.errors >= 1 and r.edges == 0


def test_gpio_without_gpiod_says_what_to_install(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether or not gpiod is installed here: an import of it fails as on a host without it.
    monkeypatch.setitem(sys.modules, "gpiod", None)
    r = P.PpsReader(SourceConfig("pps0", "pps", "gnss", device="gpiochip0:18"), lambda o: None)
    with pytest.raises(P.PpsError, match=r"gpiochip0:18: libgpiod v2 .*timewatch\[gpio\]"):
        r._read_once()


def test_run_stops_when_cancelled(tmp_path: Path, fake_sysfs: Path) -> None:
    r = P.PpsReader(SourceConfig("pps0", "pps", "gnss", device=str(fake_sysfs)), lambda o: None,
                    poll_s=0.01)

    async def go() -> None:
        task = asyncio.create_task(r.run())
        await await_until(lambda: r.mode == "sysfs", what="the reader polling")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert r.stop.is_set()
