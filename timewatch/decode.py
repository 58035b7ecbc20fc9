"""`timewatch decode FILE`: a raw receiver capture -> one JSON object per epoch (spec/cli.md).

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

from .engine.gnss_epoch import GPS_EPOCH, Epoch, EpochAssembler, decode_line
from .engine.ubx import UbxError, UbxUnsupported, decode_ubx
from .sources.serial import frames_of


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
    for ep in decode_bytes(data):
        out.write(json.dumps(ep.to_json(), separators=(", ", ": ")) + "\n")
    out.flush()
    return 0
