"""The fuzz targets of `make fuzz` (tools/fuzz_targets.py) and their driver (tools/fuzz.py).

Every target takes its seeds and the inputs that broke timewatch before (issue 18; each fix has
its own test beside its code, these make sure the fuzzer's targets and oracles take them too),
its oracles bite, and the driver runs bounded in time with either engine and reports its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import fuzz  # noqa: E402
import fuzz_targets  # noqa: E402

NOW_S = int(time.time())

# Inputs that crashed, hung or blinded timewatch before its fixes (issue 18), per target.
REGRESSIONS: dict[str, list[bytes]] = {
    # Repeated UBX sync bytes made the framer 450x slower (a fast receiver would outrun it).
    "framer": [b"\xb5b" * 4000, b"\xb5b\x01\x07\x00\x0b" * 1000],
    # A sentence from the integrated-navigation talker, and checksum-less garbage.
    "nmea": [b"$INRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*74",
             b"$GP" + b"," * 5000],
    "ubx": [b"\xb5b\x01\x07\xff\xff", b"\x01\x35" + b"\xff" * 600],
    # A reply with a root delay of all ones (the largest short-format value).
    "ntp": [bytes([0x24, 2, 6, 0xEC]) + b"\xff" * 8 + b"GPS\0" + bytes(32)],
    "nts": [b"\x01" + b"\x00\x04\xff\xfc", b"\x00" + b"\x80\x00\xff\xff"],
    # 1,500 nested [ ; NaN / Infinity literals; a raw_ns of 1.6e26; a tick 10,000 s off.
    "trace": [b"[" * 1500,
              b'{"type": "ntp", "src": "ntp-a", "rx_ns": 1764160000000000000, "t1_ns": 1, '
              b'"root_delay": NaN}',
              b'{"type": "pps", "src": "pps0", "rx_ns": 1764160000000000000, "seq": 1, '
              b'"raw_ns": 160000000000000000000000000}',
              b'{"type": "tick", "rx_ns": 1764160000000000000, "raw_ns": 5}\n'
              b'{"type": "tick", "rx_ns": 1764170000000000000, "raw_ns": 1000000005}'],
    # [detect] keys at 0, nan and inf; an NTP id beside gpsd's PPS id.
    "config": [b"[detect]\nsnapshot_interval_s = 0\n", b"[detect]\naging_ppm = inf\n",
               b"[detect]\ndrift_cusum_h = nan\nstale_polls = inf\n",
               b'[[sources]]\nid = "g"\nkind = "gpsd"\n[[sources]]\nid = "g-pps"\n'
               b'kind = "ntp"\nserver = "127.0.0.1"\n'],
    # gpsd: clock_sec one day ahead, Infinity, 1,500 nested [.
    "gpsd": [json.dumps({"class": "PPS", "real_sec": NOW_S, "real_nsec": 0,
                         "clock_sec": NOW_S + 86400, "clock_nsec": 0}).encode(),
             b'{"class": "PPS", "real_sec": 1, "real_nsec": 0, "clock_sec": Infinity, '
             b'"clock_nsec": 0}',
             b"{" + b"[" * 1500],
    "chronyc": [b"", b",,,,,,,,,,,,,\n^,*,", b"x" * 20 + b"\n" + b"^,*,a,b,c\n" * 50],
}


def test_every_target_has_seeds_and_a_regression_set() -> None:
    assert set(fuzz_targets.TARGETS) == set(fuzz_targets.SEEDS) == set(fuzz.NAMES)
    assert set(REGRESSIONS) == set(fuzz.NAMES)


@pytest.mark.parametrize("name", fuzz.NAMES)
def test_a_target_takes_its_seeds_and_what_broke_timewatch_before(name: str) -> None:
    seeds = fuzz_targets.SEEDS[name]()
    assert len(seeds) >= 2, "a target starts from valid inputs"
    for data in seeds + REGRESSIONS[name]:
        t0 = time.monotonic()
        fuzz_targets.TARGETS[name](data)
        assert time.monotonic() - t0 < 2.0, f"{name}: {data[:60]!r} is slow"


def test_a_target_fails_on_what_it_must_not_accept() -> None:
    """The oracles bite: a gpsd line that makes an unexpected error is a crash."""
    from timewatch.sources.gpsd import GpsdReader

    real = GpsdReader._line

    def broken(self: GpsdReader, line: bytes, rx: int, raw: int) -> None:
        raise ZeroDivisionError("a bug")

    GpsdReader._line = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(AssertionError, match="unexpected error"):
            fuzz_targets.TARGETS["gpsd"](b"{}")
    finally:
        GpsdReader._line = real  # type: ignore[method-assign]


def _engines() -> list[str]:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return ["hypothesis"]  # where atheris does not install (conftest: a skip fails in CI)
    return ["atheris", "hypothesis"]


@pytest.mark.parametrize("engine", _engines())
def test_make_fuzz_runs_bounded_and_reports_inputs_and_time(engine: str) -> None:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz.py"), "nmea", "ntp"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "FUZZ_SECONDS": "2",
                            "FUZZ_ENGINE": engine})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = {ln.split()[0]: ln.split() for ln in p.stdout.splitlines()
            if ln.split()[:1] in (["nmea"], ["ntp"])}
    assert set(rows) == {"nmea", "ntp"}, p.stdout
    for name, (_, inputs, seconds, _rate, crashes) in rows.items():
        assert int(inputs) > 10 and 2.0 <= float(seconds) < 30 and crashes == "none", name
    assert f"with {engine}" in p.stdout and p.stdout.rstrip().endswith("0 crashes")
    assert time.monotonic() - t0 < 60
