"""Framing of mixed NMEA/UBX serial streams: bytes in, frames out (pure).

It survives what real serial lines deliver (gpsd's packet sniffer is the model): garbage and
binary noise between sentences, sentences cut short, overlong lines (cut at `MAX_LINE` and
reported as such), UBX frames interleaved with NMEA. A text line starts at '$' or '!' and ends at
LF; a '$' inside a line starts a new one (the cut prefix is reported as a bad line). A UBX frame is
recognised by its sync, a known class, a sane length and a correct checksum; anything else is
text. Garbage is handed on as a line too, so the engine counts it. Shared by the serial reader
and `timewatch decode`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from .nmea import MAX_LINE
from .ubx import MAX_FRAME, Fletcher

# UBX classes a receiver sends (u-blox interface descriptions): NAV RXM INF ACK CFG UPD MON AID
# TIM ESF MGA LOG SEC HNR NAV2. A sync pair followed by anything else is noise.
UBX_CLASSES = frozenset({0x01, 0x02, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0B, 0x0D, 0x10, 0x13,
                         0x21, 0x27, 0x28, 0x29})
# Bytes the framer must look at: LF, '$', '!' and the first UBX sync byte.
_SPECIAL = re.compile(rb"[\n$!\xb5]")
# A line of only these bytes is line noise (break conditions, idle fill), not a sentence.
_NOISE = b"\x00\xff\r\n\t "


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Literal["nmea", "ubx"]
    data: bytes  # NMEA: the line without CR LF; UBX: the whole frame


class Framer:
    """Bytes in arrival order -> frames. Never raises; keeps at most ~MAX_FRAME bytes pending."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._line = bytearray()  # text being accumulated (a sentence, or garbage)
        self._overlong = False  # the current line passed MAX_LINE: drop until its end
        self._final = False  # flushing: no more bytes will come, a partial UBX frame is text
        self._ck = Fletcher()  # checksums of UBX candidates in _buf, O(1) each
        self.stats = {"nmea": 0, "ubx": 0, "overlong": 0, "bad_ubx": 0}

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n:
            # Plain text up to the next byte that matters, in one slice (not byte by byte).
            m = _SPECIAL.search(buf, i)
            j = m.start() if m is not None else n
            if j > i:
                self._text(buf[i:j])
                i = j
                if i >= n:
                    break
            c = buf[i]
            if c == 0xB5:
                r = self._try_ubx(buf, i, n)
                if r == -1:  # need more bytes to decide
                    break
                if r > 0:
                    self._end_line(out)
                    out.append(Frame("ubx", bytes(buf[i:i + r])))
                    self.stats["ubx"] += 1
                    i += r
                    continue
                self._text(buf[i:i + 1])  # a lone 0xB5: noise, part of the text
            elif c == 0x0A:  # LF ends a line
                self._end_line(out)
            else:  # '$' or '!' starts a sentence: what came before it on the line is cut off
                if self._line:
                    self._end_line(out)
                self._text(buf[i:i + 1])
            i += 1
        del buf[:i]
        self._ck.drop(i)
        return out

    def _text(self, chunk: bytes | bytearray) -> None:
        if self._overlong:
            return
        self._line += chunk
        if len(self._line) > MAX_LINE:
            # Hand on the first MAX_LINE + 1 bytes (the decoder reports it as overlong).
            del self._line[MAX_LINE + 1:]
            self._overlong = True
            self.stats["overlong"] += 1

    def flush(self) -> list[Frame]:
        """End of input: whatever is pending becomes a (probably bad) line."""
        self._final = True
        out = self.feed(b"")
        self._end_line(out)
        self._final = False
        return out

    def _end_line(self, out: list[Frame]) -> None:
        line = bytes(self._line).rstrip(b"\r")
        self._line.clear()
        self._overlong = False
        if line.translate(None, _NOISE):  # something else is left
            out.append(Frame("nmea", line))
            self.stats["nmea"] += 1

    def _try_ubx(self, buf: bytearray, i: int, n: int) -> int:
        """Length of a valid UBX frame at i; 0 if there is none; -1 if more bytes are needed."""
        more = 0 if self._final else -1
        if i + 1 >= n:
            return more
        if buf[i + 1] != 0x62:
            return 0
        if i + 2 >= n:
            return more
        if buf[i + 2] not in UBX_CLASSES:
            return 0
        if i + 6 > n:
            return more
        length = buf[i + 4] | (buf[i + 5] << 8)
        total = length + 8
        if total > MAX_FRAME:
            return 0
        if i + total > n:
            return more
        if self._ck.span(buf, i + 2, i + total - 2) != (buf[i + total - 2], buf[i + total - 1]):
            self.stats["bad_ubx"] += 1
            return 0
        return total


def frames_of(data: bytes, chunk: int = 4096) -> Iterator[Frame]:
    """All frames of a capture held in memory (for `decode` and tests)."""
    f = Framer()
    for k in range(0, len(data), chunk):
        yield from f.feed(data[k:k + chunk])
    yield from f.flush()
