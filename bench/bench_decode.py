"""Decode throughput over the whole gpsd corpus, every check on (target >= 50,000 sentences/s).

Three figures: pynmea2 alone with checksums (the floor: what the library costs), our `decode`
(pynmea2 + own type check of every field used), and the whole `timewatch decode` path (framing,
decoding, epoch assembly).
"""

from __future__ import annotations

import time
from pathlib import Path

import pynmea2

from timewatch.commands.decode import decode_bytes
from timewatch.wire.framer import frames_of
from timewatch.wire.nmea import NmeaError, Unsupported, decode

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "gpsd"
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


if __name__ == "__main__":
    main()
