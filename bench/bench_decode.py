"""Decode throughput over the whole gpsd corpus, every check on (target >= 50,000 sentences/s).

Three figures: pynmea2 alone with checksums (what the library costs), our `decode` (its own
splitter for the sentences it uses, pynmea2 for the rest, + own type check of every field used),
and the whole `timewatch decode` path (framing,
decoding, epoch assembly). Then the framer alone in MB per CPU-second, on the corpus and on
adversarial bytes (repeated UBX sync bytes), against the 0.09 MB/s of a 921,600-baud line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pynmea2

from timewatch.commands.decode import decode_bytes
from timewatch.wire.framer import frames_of
from timewatch.wire.nmea import NmeaError, Unsupported, decode

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "gpsd"
UBX_CORPUS = CORPUS.parent / "pyubx2"
# Bytes where every position (or every sixth) looks like the start of a UBX frame.
ADVERSARIAL = {
    "sync, class, 2816-byte length": b"\xb5\x62\x01\x07\x00\x0b" * 50_000,
    "sync, unknown class": b"\xb5\x62\xff\x07\x00\x0b" * 50_000,
    "sync pairs": b"\xb5\x62" * 150_000,
    "first sync byte only": b"\xb5" * 300_000,
    "'$' only": b"$" * 300_000,
}
LINE_RATE = 921_600 / 10 / 1e6  # MB/s of a 921,600-baud line (10 bits a byte)
ROUNDS = 5  # best of: the machine's noise, not the code's
# CPU time of this process: on a shared machine (CI, other tests running) wall time measures the
# neighbours; the figure is sentences per CPU-second of one core.
CLOCK = time.process_time


def _lines() -> tuple[list[bytes], list[str]]:
    blobs = [p.read_bytes() for p in sorted(CORPUS.glob("*.log"))]
    lines = [fr.data.decode("utf-8", "replace") for b in blobs for fr in frames_of(b)
             if fr.kind == "nmea" and not fr.data.startswith(b"#")]
    return blobs, [x for x in lines if x.startswith("$")]


def _best(fn: object, n: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = CLOCK()
        fn()  # type: ignore[operator]
        best = min(best, CLOCK() - t0)
    return n / best


def main() -> None:
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}: skipped")
        return
    blobs, lines = _lines()

    def lib() -> None:
        for x in lines:
            try:
                pynmea2.parse(x, check=True)
            except (pynmea2.ParseError, ValueError):
                pass

    def ours() -> None:
        for x in lines:
            try:
                decode(x)
            except (NmeaError, Unsupported):
                pass

    def full() -> None:
        for b in blobs:
            for _ in decode_bytes(b):
                pass

    n = len(lines)
    print(f"{n} sentences from {len(blobs)} logs (per CPU-second, best of {ROUNDS})")
    print(f"pynmea2.parse(check=True) alone:        {_best(lib, n):10,.0f} sentences/s")
    print(f"wire.nmea.decode (all field checks):  {_best(ours, n):10,.0f} sentences/s  "
          "(target >= 50,000)")
    print(f"timewatch decode (frame+decode+epochs): {_best(full, n):10,.0f} sentences/s")

    print(f"framer, MB per CPU-second (a 921,600-baud line: {LINE_RATE:.3f} MB/s):")
    ubx = b"".join(p.read_bytes() for p in sorted(UBX_CORPUS.glob("*.log")))
    for name, data in [("gpsd corpus (NMEA)", b"".join(blobs)), ("pyubx2 corpus (UBX+NMEA)", ubx),
                       *ADVERSARIAL.items()]:
        def frame_all(data: bytes = data) -> None:
            for _ in frames_of(data):
                pass
        print(f"  {name:34s} {_best(frame_all, len(data)) / 1e6:7.2f} MB/s")


if __name__ == "__main__":
    main()
