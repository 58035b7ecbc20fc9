"""`timewatch decode FILE [--format jsonl|text]`: a raw receiver capture -> one JSON object per
epoch (docs/gnss.md), or one line per epoch for people (`--format text`: the label's time as ISO
8601 UTC beside its Unix ns).

The capture goes through the serial reader's framer (NMEA, UBX or both interleaved) and the
engine's decoders and epoch assembler, so `decode` shows exactly what the monitor would see.
Lines starting with '#' are comments. A capture is history: the software-build-date floor of
the live monitor does not apply here, only dates known to be wrong (GPS epoch, cold-start and
rollover defaults, non-dates).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from ..engine.gnss_epoch import (
    DAY_MS,
    GPS_EPOCH,
    Epoch,
    EpochAssembler,
    date_problem,
    decode_line,
    utc_ns_of,
)
from ..records import Nmea, Ubx
from ..sources.serial import to_observation
from ..textfmt import epoch_text
from ..wire.framer import frames_of
from ..wire.nmea import LABELLED
from ..wire.ubx import UbxError, UbxUnsupported, decode_ubx


def decode_bytes(data: bytes, not_before: tuple[int, int, int] = GPS_EPOCH) -> Iterator[Epoch]:
    """Every epoch of a capture, in input order."""
    asm = EpochAssembler(not_before)
    for fr in frames_of(data):
        if fr.kind == "ubx":
            try:
                ep = asm.feed(decode_ubx(fr.data.hex()))
            except UbxUnsupported:
                continue
            except UbxError:
                ep = asm.feed(None)
        else:
            line = fr.data.decode("utf-8", "replace")
            if line.lstrip().startswith("#"):
                continue
            s, bad = decode_line(line)
            if s is None and not bad:
                continue  # a sentence we do not use
            ep = asm.feed(s)
        if ep is not None:
            yield ep
    last = asm.flush()
    if last is not None:
        yield last


def cmd_decode(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OSError(f"{path}: cannot read: {e.strerror}") from None
    out = sys.stdout
    text = getattr(args, "format", "jsonl") == "text"
    for ep in decode_bytes(data):
        out.write((epoch_text(ep) if text else
                   json.dumps(ep.to_json(), separators=(", ", ": "))) + "\n")
    out.flush()
    return 0


# Arrival model for captures without arrival times (docs/threats.md "Noise"): the first sentence of a
# label arrives 110 ms after the second it labels; then each byte takes 10 bits at the line's
# speed. A capture does not say its speed: 115200 baud fits even the 5 Hz captures in 1 s.
CAPTURE_LATENCY_NS = 110_000_000
CAPTURE_BAUD = 115_200
_DEFAULT_DAY = (2020, 1, 1)  # when a capture has no usable date at all


def capture_observations(data: bytes, src: str = "gnss0",
                         baud: int = CAPTURE_BAUD) -> list[Nmea | Ubx]:
    """The observations a reader would have produced from a raw capture, with arrival times
    rebuilt from the capture's own labels (so a replay sees a receiver whose labels keep time).

    Labels that go backwards or repeat keep arrival time moving forward: the engine then sees
    them as the receiver's own label errors, as it would live.
    """
    byte_ns = 10 * 1_000_000_000 // baud  # 8N1: 10 bits a byte
    frames = [f for f in frames_of(data) if f.kind == "ubx" or not f.data.startswith(b"#")]
    sentences = [decode_line(f.data.decode("utf-8", "replace"))[0] if f.kind == "nmea" else None
                 for f in frames]
    # The receiver's date, from its first valid dated sentence, and from each one after that.
    dated = [s.date for s in sentences if s is not None and s.date is not None and
             s.status_valid is not False and date_problem(s.date, None, GPS_EPOCH) is None]
    day_ns = utc_ns_of(dated[0] if dated else _DEFAULT_DAY, 0)
    out: list[Nmea | Ubx] = []
    rx = day_ns
    last_tod: int | None = None
    for f, s in zip(frames, sentences, strict=True):
        if s is not None and s.date is not None and s.status_valid and \
                date_problem(s.date, None, GPS_EPOCH) is None:
            day_ns = utc_ns_of(s.date, 0)
        tod = s.tod_ms if s is not None and s.kind in LABELLED else None
        if tod is not None and tod != last_tod:
            if last_tod is not None and last_tod - tod > DAY_MS // 2:
                day_ns += DAY_MS * 1_000_000  # past midnight
            rx = max(rx + byte_ns, day_ns + tod * 1_000_000 + CAPTURE_LATENCY_NS)
            last_tod = tod
        rx += (len(f.data) + 2) * byte_ns
        out.append(to_observation(f, src, rx, None))
    return out
