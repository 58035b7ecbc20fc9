"""The fast NMEA splitter (`wire/nmea._split`) against pynmea2, which it stands in for.

Over every NMEA line of the receiver corpus (gpsd's regression logs, pyubx2's captures), each
sentence the splitter takes gets exactly the talker, type and fields pynmea2 gives it, and what
it does not take goes to pynmea2 as before. Malformed lines (bad checksum, truncated, garbage)
give the errors they gave when pynmea2 framed every line.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path

import pytest

from timewatch.wire import nmea
from timewatch.wire.framer import frames_of
from timewatch.wire.nmea import NmeaError, Unsupported, decode, sentence

RMC = "GPRMC,123519.00,A,4807.038,N,01131.000,E,0.02,,261126,,,A"
GOOD = sentence(RMC)  # ...*4D


def _corpus_lines(corpus: Path) -> list[str]:
    """Every NMEA line of every capture, as decode() sees it after its strip()."""
    lines = []
    for path in sorted(corpus.rglob("*.log")):
        for fr in frames_of(path.read_bytes()):
            if fr.kind == "nmea":
                lines.append(fr.data.decode("utf-8", "replace").strip())
    return lines


def test_the_fast_path_gives_what_pynmea2_gives_over_the_corpus(corpus: Path) -> None:
    fast = by_pynmea2 = 0
    for s in _corpus_lines(corpus):
        if not s.startswith("$") or len(s) > nmea.MAX_LINE:
            continue  # refused before either path
        got = nmea._split(s)
        try:
            want: tuple[str, str, list[str]] | None = nmea._by_pynmea2(s)
        except (NmeaError, Unsupported):
            want = None
        if got is not None:
            fast += 1
            assert got == want, s  # same talker, type and every field, as str
        elif want is not None:
            by_pynmea2 += 1  # a sentence we use in a form the splitter leaves to pynmea2
            assert s[-2:] != s[-2:].upper() or not s.isascii(), s
    # The corpus has 16,323 sentences of the types we use in the usual form, 22 with a checksum
    # in lower case: the splitter must take the usual ones, or it saves nothing.
    assert fast > 16_000 and by_pynmea2 < 100, (fast, by_pynmea2)


@pytest.mark.parametrize("line, reason, what", [
    (GOOD[:-2] + "00", "checksum", "checksum does not match: 00 != 4D"),
    ("$" + RMC, "checksum", "strict checking requested but checksum missing"),
    (GOOD[:30], "checksum", "strict checking requested but checksum missing"),  # truncated
    (GOOD[:-1], "framing", "not an NMEA sentence (ParseError)"),  # truncated in the checksum
    (GOOD + "x", "framing", "not an NMEA sentence (ParseError)"),
    (GOOD.replace("A,48", "A*48"), "framing", "not an NMEA sentence (ParseError)"),
    ("$GPRMC,1*2*3F", "framing", "not an NMEA sentence (ParseError)"),
    ("$GPRMC", "framing", "not an NMEA sentence (ParseError)"),
    ("$\x00\x01garbage*00", "framing", "not an NMEA sentence (ParseError)"),
    ("garbage", "framing", "does not start with '$'"),
])
def test_malformed_lines_give_the_errors_they_gave(line: str, reason: str, what: str) -> None:
    assert nmea._split(line.strip()) is None  # none of these is the fast path's
    with pytest.raises(NmeaError) as e:
        decode(line)
    assert (e.value.reason, e.value.what) == (reason, what)


def test_unusual_forms_go_to_pynmea2_and_decode_as_before() -> None:
    # A checksum in lower case: pynmea2 takes it; the same sentence as in capitals.
    lower = GOOD[:-2] + GOOD[-2:].lower()
    assert nmea._split(lower) is None and decode(lower) == decode(GOOD)
    # Non-ASCII text: pynmea2's checksum is the XOR of the code points.
    body = "GPTXT,01,01,02,caf\u00e9 ok"
    ck = reduce(lambda a, c: a ^ ord(c), body, 0)
    assert nmea._split(f"${body}*{ck:02X}") is None
    assert decode(f"${body}*{ck:02X}").text == "caf\u00e9 ok"
    with pytest.raises(NmeaError) as e:
        decode(f"${body}*{ck ^ 1:02X}")
    assert e.value.what == f"checksum does not match: {ck ^ 1:02X} != {ck:02X}"
    # Types and talkers we do not use stay Unsupported.
    for line in (sentence("GPVTG,,T,,M,0.02,N,0.04,K,A"), sentence("PUBX,00,1"),
                 sentence("QZGSV,1,1,01,193,40,120,44")):
        assert nmea._split(line) is None
        with pytest.raises(Unsupported):
            decode(line)
