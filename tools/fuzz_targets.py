"""The fuzz targets of `tools/fuzz.py`: one function per decoder that takes outside input.

Each `target(data: bytes)` hands the bytes to the real code path, catches the errors that path
documents for bad input (NmeaError, PacketError, NtsError, ConfigError, ...), and lets anything
else escape: an escaping exception is a crash. Where a decoded record goes on into the engine
(NTP packet, trace line, chronyc output, gpsd), the engine must take it without raising too.
`SEEDS[name]()` gives valid inputs to start from (the receiver corpus when it is there).

Imported by the fuzzing process inside atheris' instrumentation, so that coverage guides it.
"""

from __future__ import annotations

import io
import json
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

from timewatch import trace
from timewatch.config import ConfigError, describe, parse
from timewatch.engine import Engine
from timewatch.records import (
    Chrony,
    Header,
    Observation,
    SourceInfo,
    Ubx,
    observation_to_dict,
)
from timewatch.sources.gpsd import GpsdReader
from timewatch.sources.ntp import NtpReader
from timewatch.trace import TraceReader
from timewatch.wire import nmea, ntp, nts, ubx
from timewatch.wire.framer import Framer

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
NOW_NS = 1_764_160_000_000_000_000  # engine time of the records the targets build
KEY = bytes(range(32))  # the NTS server-to-client key of the seeds
UID = bytes(range(100, 132))


def _header() -> Header:
    """Sources of every built-in kind, as the simulated scenarios name them."""
    srcs = {f"ntp-{c}": SourceInfo("ntp", f"op-{c}", server=f"ntp-{c}.sim.example", poll_s=16.0)
            for c in "abcd"}
    srcs["gnss0"] = SourceInfo("gnss", "gnss", position=(48.8566, 2.3522, 35.0))
    srcs["pps0"] = SourceInfo("pps", "gnss", label_from="gnss0")
    srcs["g-pps"] = SourceInfo("pps", "g", label_from="g")
    srcs["chrony"] = SourceInfo("chrony", "chrony", poll_s=2.0)
    return Header("fuzz", NOW_NS, srcs)


HEADER = _header()


def _engine_takes(records: list[Observation]) -> None:
    """A fresh engine takes the records (and finishes) without raising, and what it says is
    JSON (no NaN or Infinity: a non-finite input number was refused, not passed on)."""
    eng = Engine(HEADER)
    outs = []
    for r in records:
        outs += eng.feed(r)
    outs += eng.finish()
    for o in outs:
        json.dumps(o.to_dict(), allow_nan=False)


# -- the framer: receiver bytes in any chunking -------------------------------------------------

def framer(data: bytes) -> None:
    f = Framer()
    step = 1 + (data[0] % 64 if data else 0)
    frames = []
    for i in range(0, len(data), step):
        frames += f.feed(data[i:i + step])
    frames += f.flush()
    # Frames are pieces of the input: never more bytes, never a line break inside a line; a
    # UBX frame has a valid checksum.
    assert sum(len(fr.data) for fr in frames) <= len(data)
    for fr in frames:
        if fr.kind == "ubx":
            assert ubx.checksum(fr.data[2:-2]) == fr.data[-2:], fr.data.hex()
        else:
            assert b"\n" not in fr.data and fr.data in data, fr.data


# -- NMEA ---------------------------------------------------------------------------------------

def nmea_line(data: bytes) -> None:
    line = data.decode("utf-8", "replace")
    try:
        nmea.decode(line)
    except (nmea.NmeaError, nmea.Unsupported):
        pass


# -- UBX: whole frames as the framer hands them, and payloads in valid frames --------------------

def ubx_frame(data: bytes) -> None:
    if len(data) >= 2 and not data.startswith(b"\xb5b"):
        data = ubx.frame(data[0], data[1], data[2:])  # a valid checksum: the payload is parsed
    try:
        ubx.decode_ubx(data.hex())
    except (ubx.UbxError, ubx.UbxUnsupported):
        pass
    _engine_takes([Ubx("gnss0", NOW_NS, data.hex())])


# -- NTP: a reply through the reader (its origin ours) and the engine ----------------------------

_NTP_CFG = parse({"sources": [{"id": "ntp-a", "kind": "ntp", "server": "127.0.0.1"}]})


def ntp_packet(data: bytes) -> None:
    try:
        ntp.decode(data)
    except ntp.PacketError:
        pass
    try:
        ntp.decode_hex(data.hex())
    except ntp.PacketError:
        pass
    xmt = int.from_bytes(data[24:32], "big") if len(data) >= 32 else 0
    out: list[Observation] = []
    reader = NtpReader(_NTP_CFG.sources[0], out.append)
    t1 = (NOW_NS - 20_000_000, 1_000_000)
    reader._reply(data, (NOW_NS, 1_020_000_000), t1, xmt, f"{xmt:016x}", True)
    _engine_takes(out)


# -- NTS: NTS-KE records, extension fields, a server reply's authenticator -----------------------

def nts_fields(data: bytes) -> None:
    mode, body = (data[0] % 3, data[1:]) if data else (0, b"")
    try:
        if mode == 0:
            nts.ke_records(body)
            nts.decode_ke_response(body)
        elif mode == 1:
            nts.parse_efs(body)
        else:
            xmt = int.from_bytes(body[24:32], "big") if len(body) >= 32 else 0
            nts.verify_reply(body, s2c=KEY, uid=UID, xmt_ts=xmt)
    except nts.NtsError:
        pass


# -- trace lines: the reader, then the engine ----------------------------------------------------

_TMP = Path(tempfile.mkdtemp(prefix="timewatch-fuzz-"))
_HEADER_LINE = json.dumps(HEADER.to_dict()) + "\n"


def _Lines(text: str) -> TraceReader:
    """A TraceReader over `text` after HEADER, through one scratch file (the reader is a
    compiled class in an installed build: a subclass reading from memory is not allowed)."""
    path = _TMP / "fuzz.jsonl"
    path.write_text(_HEADER_LINE + text, encoding="utf-8")
    return TraceReader(path)


def trace_lines(data: bytes) -> None:
    """The reader's records through the engine; each record, written as a trace line again,
    reads back the same (the trace is exactly what the engine was handed); a line msgspec's
    fast path takes gives the record the json path gives."""
    text = data.decode("utf-8", "replace")
    json_path = _Lines("")  # its _json_line is the reader's json path; iterated last: closed
    for line in io.StringIO(text):
        fast = trace._DECODERS.get(line[:line.find(",")])
        if fast is None or "\\" in line or line.find('"type"', 2) >= 0:
            continue  # the lines TraceReader hands to json alone
        try:
            got = fast(line)
        except trace._DecodeError:
            continue
        slow = json_path._json_line(line, 2)
        assert got == slow, (line, got, slow)
    assert list(json_path) == []
    records = list(_Lines(text))
    for r in records:
        again = list(_Lines(json.dumps(observation_to_dict(r), allow_nan=False) + "\n"))
        assert again == [r], (r, again)
    _engine_takes(records)


# -- config: TOML text as `load` takes it --------------------------------------------------------

def config_text(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        cfg = parse(tomllib.loads(text), "fuzz.toml", text)
    except (tomllib.TOMLDecodeError, ConfigError):
        return
    cfg.header(NOW_NS)
    describe(cfg)


# -- gpsd: one line from gpsd; an unexpected exception is a bad line of an unexpected kind --------

_GPSD_CFG = parse({"sources": [{"id": "g", "kind": "gpsd"}]})
GPSD_BAD_KINDS = {"json", "pps", "clock"}  # the kinds of `BadLine` gpsd.py raises


def gpsd_line(data: bytes) -> None:
    out: list[Observation] = []
    r = GpsdReader(_GPSD_CFG.sources[0], out.append)
    r.handle_line(data)
    unexpected = set(r.bad_kinds) - GPSD_BAD_KINDS
    assert not unexpected, f"gpsd line made an unexpected error: {unexpected}"
    _engine_takes(out)


# -- chronyc -c output: tracking line, then source lines, through the engine ---------------------

def chronyc_output(data: bytes) -> None:
    lines = data.decode("utf-8", "replace").split("\n")
    names = tuple((a, b) for a, _, b in (ln.partition("=") for ln in lines if "=" in ln))
    _engine_takes([Chrony("chrony", NOW_NS + i * 2_000_000_000, lines[0], tuple(lines[1:]),
                          names) for i in range(3)])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "framer": framer, "nmea": nmea_line, "ubx": ubx_frame, "ntp": ntp_packet,
    "nts": nts_fields, "trace": trace_lines, "config": config_text, "gpsd": gpsd_line,
    "chronyc": chronyc_output,
}


# -- seeds --------------------------------------------------------------------------------------

def _corpus_files(sub: str, pattern: str) -> list[Path]:
    d = CORPUS / sub
    return sorted(d.glob(pattern)) if d.is_dir() else []


def _nmea_lines() -> list[bytes]:
    out: list[bytes] = []
    for p in _corpus_files("gpsd", "*.log")[::4]:
        for ln in p.read_bytes().splitlines()[:400:20]:
            if ln.startswith((b"$", b"!")):
                out.append(ln)
    return out or [b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
                   b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"]


def _ubx_frames() -> list[bytes]:
    out: list[bytes] = []
    for p in _corpus_files("pyubx2", "*.log"):
        f = Framer()
        out += [fr.data for fr in f.feed(p.read_bytes()[:20_000]) if fr.kind == "ubx"][:8]
    return out or [ubx.frame(0x01, 0x21, bytes(20)), ubx.frame(0x0D, 0x01, bytes(16))]


def _framer_seeds() -> list[bytes]:
    out = [p.read_bytes()[:4096] for p in _corpus_files("gpsd", "*.log")[::8]]
    out += [p.read_bytes()[:4096] for p in _corpus_files("pyubx2", "*.log")]
    return out or [b"\r\n".join(_nmea_lines()) + b"".join(_ubx_frames())]


def _ntp_seeds() -> list[bytes]:
    reply = ntp.NtpPacket(0, 4, 4, 2, 6, -20, 0x100, 0x200, b"GPS\0", 1 << 62, 5 << 58,
                          6 << 58, 7 << 58).encode()
    kiss = ntp.NtpPacket(3, 4, 4, 0, 6, -20, 0, 0, b"RATE", 0, 5 << 58, 0, 0).encode()
    return [reply, kiss, reply + nts.encode_ef(nts.EF_UNIQUE_ID, UID)]


def _nts_seeds() -> list[bytes]:
    ke = nts.ke_request()
    header = ntp.NtpPacket(0, 4, 4, 2, 6, -20, 0, 0, b"GPS\0", 0, 5 << 58, 6 << 58,
                           7 << 58).encode()
    pkt = header + nts.encode_ef(nts.EF_UNIQUE_ID, UID)
    reply = pkt + nts.auth_ef(KEY, pkt, bytes(16), nts.encode_ef(nts.EF_COOKIE, bytes(64)))
    resp = (nts.encode_record(1, b"\x00\x00", True) + nts.encode_record(4, b"\x00\x0f", True)
            + nts.encode_record(5, bytes(64)) + nts.encode_record(0, b"", True))
    return [b"\x00" + ke, b"\x00" + resp, b"\x01" + reply[48:], b"\x02" + reply]


def _trace_seeds() -> list[bytes]:
    from timewatch.sim import scenarios

    lines: list[str] = []
    for name in ("gnss_push_fast", "ntp_liar", "host_step"):
        st = scenarios.build(name, 1, 120)
        lines += [json.dumps(observation_to_dict(o)) for o in st.observations]
    lines += [json.dumps(observation_to_dict(Ubx("gnss0", NOW_NS, f.hex())))
              for f in _ubx_frames()[:10]]
    return ["\n".join(lines[i:i + 12]).encode() for i in range(0, len(lines), 37)]


def _config_seeds() -> list[bytes]:
    out = []
    for p in [ROOT / "hw" / "timewatch.toml.in", *sorted((ROOT / "docs").glob("*.md")),
              ROOT / "README.md"]:
        if not p.exists():
            continue
        text = p.read_text()
        if p.suffix == ".md":  # the ```toml blocks of the docs
            out += [b.split("```", 1)[0].encode() for b in text.split("```toml\n")[1:]]
        else:
            out.append(text.encode())
    return out or [b'[monitor]\nhost = "h"\n[[sources]]\nid = "a"\nkind = "ntp"\n'
                   b'server = "127.0.0.1"\n']


def _gpsd_seeds() -> list[bytes]:
    import time

    now = time.time_ns()
    pps = {"class": "PPS", "device": "/dev/pps0", "real_sec": now // 10**9, "real_nsec": 0,
           "clock_sec": now // 10**9, "clock_nsec": now % 10**9, "precision": -20}
    out = [json.dumps(pps).encode(), b'{"class":"VERSION","release":"3.25"}']
    for p in _corpus_files("gpsd", "*.chk")[::10]:
        out += [ln for ln in p.read_bytes().splitlines()[:200:25] if ln.startswith(b"{")]
    return out + _nmea_lines()[:10]


def _chronyc_seeds() -> list[bytes]:
    tracking = ("7F00000E,127.0.0.14,3,1764159990.000000000,-0.000001,0.000002,0.000003,"
                "-1.234,0.001,0.05,0.000123,0.000456,2.0,Normal")
    srcs = [f"^,{s},127.0.0.1{i},2,6,377,1,0.000001,0.000001,0.0001"
            for i, s in enumerate("*+-?x~")]
    return ["\n".join([tracking, *srcs, "127.0.0.14=ntp-a.sim.example"]).encode(),
            tracking.encode()]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "framer": _framer_seeds, "nmea": _nmea_lines, "ubx": _ubx_frames, "ntp": _ntp_seeds,
    "nts": _nts_seeds, "trace": _trace_seeds, "config": _config_seeds, "gpsd": _gpsd_seeds,
    "chronyc": _chronyc_seeds,
}

assert set(SEEDS) == set(TARGETS)
