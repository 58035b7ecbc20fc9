"""Network Time Security (RFC 8915) on the wire: NTS-KE records and the NTP extension fields.

Pure codec, no I/O and no state (the NTS-KE client and the session with its keys and cookie jar
are `sources/nts_ke.py`):

- NTS-KE (RFC 8915 section 4): records of `C|type(15 bits)`, `body length(16)`, body. The
  client's request (`ke_request`) asks for NTPv4 (next protocol 0) and AEAD_AES_SIV_CMAC_256
  (AEAD id 15); `decode_ke_response` checks the server's answer and returns the cookies and the
  NTPv4 server and port it names.
- NTP extension fields (RFC 7822 and RFC 8915 section 5): `build_request` appends the Unique
  Identifier, the NTS Cookie, Cookie Placeholders and the NTS Authenticator (AES-SIV over the
  whole packet before it, with the client-to-server key) to a 48-byte NTP header;
  `verify_reply` accepts a reply only when it echoes our origin and unique identifier and its
  authenticator verifies with the server-to-client key, and returns the new cookies found in
  its encrypted part.

Every length and padding is checked; anything wrong raises `NtsError`, whose `reason` is one of
the short phrases below (what an alert names) and whose message adds where and what.
AES-SIV is `cryptography`'s `AESSIV` (RFC 5297): the associated data vector is
(packet up to the authenticator, nonce), the nonce last, as RFC 8915 section 5.6 specifies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from .ntp import PACKET_LEN, NtpPacket, PacketError, decode

# --- NTS-KE (RFC 8915 section 4, IANA "Network Time Security Key Establishment Record Types")
KE_END_OF_MESSAGE: Final = 0
KE_NEXT_PROTOCOL: Final = 1
KE_ERROR: Final = 2
KE_WARNING: Final = 3
KE_AEAD: Final = 4
KE_NEW_COOKIE: Final = 5
KE_NTPV4_SERVER: Final = 6
KE_NTPV4_PORT: Final = 7
KE_CRITICAL: Final = 0x8000
# Records whose critical bit RFC 8915 says MUST be set.
_MUST_BE_CRITICAL: Final = frozenset((KE_END_OF_MESSAGE, KE_NEXT_PROTOCOL, KE_ERROR, KE_WARNING))
# Next protocol id of NTPv4 and the one AEAD algorithm we speak (RFC 8915 sections 7.7, 5.1).
NEXT_PROTOCOL_NTPV4: Final = 0
AEAD_AES_SIV_CMAC_256: Final = 15
# AEAD_AES_SIV_CMAC_256 keys: two AES-128 keys (RFC 5297 section 2.2).
KEY_LEN: Final = 32
# Error codes of the Error record (RFC 8915 section 4.1.3).
KE_ERROR_NAMES: Final = {0: "unrecognized critical record", 1: "bad request",
                         2: "internal server error"}
# Longest cookie we keep (chrony's limit: NKE_MAX_COOKIE_LENGTH); real ones are ~100 bytes.
MAX_COOKIE_LEN: Final = 256
# Longest NTPv4 server name in a KE record (a DNS name or an address literal).
MAX_SERVER_NAME_LEN: Final = 255
_KE_HEADER: Final = struct.Struct("!HH")

# --- NTP extension fields (RFC 8915 section 5.7, IANA "NTP Extension Field Types")
EF_UNIQUE_ID: Final = 0x0104
EF_COOKIE: Final = 0x0204
EF_COOKIE_PLACEHOLDER: Final = 0x0304
EF_AUTHENTICATOR: Final = 0x0404
# RFC 7822 section 3: an extension field is at least 16 bytes and a multiple of 4.
EF_MIN_LEN: Final = 16
# RFC 7822 section 7.5: a last field of 24 bytes or less would read as a legacy MAC, so the
# authenticator (always the last field) is padded to at least 28.
AUTH_EF_MIN_LEN: Final = 28
# Unique identifier: at least 32 random bytes (RFC 8915 section 5.3); we send exactly 32.
UID_LEN: Final = 32
# Nonce we send; RFC 8915 section 5.6: nonce + its padding at least 16 bytes for AES-SIV.
NONCE_LEN: Final = 16
MIN_PADDED_NONCE: Final = 16
# AES-SIV's synthetic IV, the authentication tag in front of the ciphertext.
SIV_TAG_LEN: Final = 16
_EF_HEADER: Final = struct.Struct("!HH")
# NTPv4 kiss code of the NTS NAK (RFC 8915 section 5.7): stratum 0, refid "NTSN".
KISS_NTS_NAK: Final = b"NTSN"

# --- NtsError reasons: the short phrase an alert names.
MALFORMED: Final = "malformed"
KE_REFUSED: Final = "key establishment refused"
ORIGIN_MISMATCH: Final = "origin mismatch"
NOT_SERVER_REPLY: Final = "not an NTPv4 server reply"
UID_MISMATCH: Final = "unique identifier mismatch"
UID_MISSING: Final = "unique identifier missing"
DOWNGRADE: Final = "no authenticator (downgrade)"
AUTH_FAILED: Final = "authenticator failed"
NAK: Final = "NTS NAK (kiss NTSN)"
NO_COOKIE: Final = "no new cookie"


class NtsError(ValueError):
    """NTS bytes that cannot be used. `reason` is a fixed phrase (see the constants above);
    the message is `reason: detail`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class NtsNak(NtsError):
    """The server could not use our cookie (its keys changed): establish new keys."""

    def __init__(self) -> None:
        super().__init__(NAK, "the server cannot decrypt our cookie: new key establishment "
                              "needed")


def _pad4(n: int) -> int:
    return -n % 4


# ---------------------------------------------------------------- NTS-KE records


def encode_record(rtype: int, body: bytes = b"", critical: bool = False) -> bytes:
    """One NTS-KE record."""
    if not 0 <= rtype < KE_CRITICAL:
        raise ValueError(f"NTS-KE record type {rtype} out of range")
    if len(body) > 0xFFFF:
        raise ValueError(f"NTS-KE record body of {len(body)} bytes (at most 65535)")
    return _KE_HEADER.pack(rtype | (KE_CRITICAL if critical else 0), len(body)) + body


def ke_request() -> bytes:
    """The client's NTS-KE request: NTPv4, AES-SIV-CMAC-256, End of Message (all critical, as
    chrony sends them)."""
    return (encode_record(KE_NEXT_PROTOCOL, struct.pack("!H", NEXT_PROTOCOL_NTPV4), True)
            + encode_record(KE_AEAD, struct.pack("!H", AEAD_AES_SIV_CMAC_256), True)
            + encode_record(KE_END_OF_MESSAGE, b"", True))


@dataclass(frozen=True, slots=True)
class KeRecord:
    rtype: int
    critical: bool
    body: bytes = field(repr=False)  # may be a cookie: never shown


def ke_records(data: bytes) -> tuple[list[KeRecord], int | None]:
    """The complete records at the start of `data` and the length of the message through its
    End of Message record (None while it has not arrived). Bytes after the End of Message are an
    error: the server sends one message and closes."""
    out: list[KeRecord] = []
    pos = 0
    while len(data) - pos >= _KE_HEADER.size:
        word, blen = _KE_HEADER.unpack_from(data, pos)
        end = pos + _KE_HEADER.size + blen
        if end > len(data):
            break
        rec = KeRecord(word & ~KE_CRITICAL, bool(word & KE_CRITICAL),
                       bytes(data[pos + _KE_HEADER.size:end]))
        out.append(rec)
        if rec.rtype == KE_END_OF_MESSAGE:
            if end != len(data):
                raise NtsError(MALFORMED, f"{len(data) - end} bytes after the NTS-KE End of "
                                          f"Message record")
            return out, end
        pos = end
    return out, None


@dataclass(frozen=True, slots=True)
class KeAnswer:
    """What an NTS-KE server answered: cookies, and the NTPv4 server and port when it named
    them (None: the KE server's address, the configured NTP port)."""

    cookies: tuple[bytes, ...] = field(repr=False)
    server: str | None
    port: int | None


def _u16s(rec: KeRecord, what: str) -> list[int]:
    if len(rec.body) % 2:
        raise NtsError(MALFORMED, f"{what} record of {len(rec.body)} bytes (a list of 16-bit "
                                  f"ids)")
    return [v for (v,) in struct.iter_unpack("!H", rec.body)]


def decode_ke_response(data: bytes) -> KeAnswer:
    """Check a whole NTS-KE response (RFC 8915 section 4) and return its cookies and NTPv4
    server/port. Raises NtsError: KE_REFUSED for an Error or Warning record, an unrecognized
    critical record or a negotiation the server declined; MALFORMED for anything else wrong."""
    records, end = ke_records(data)
    if end is None:
        raise NtsError(MALFORMED, "NTS-KE response without End of Message record")
    seen: set[int] = set()
    cookies: list[bytes] = []
    server: str | None = None
    port: int | None = None
    protocol = aead = None
    for i, rec in enumerate(records):
        t = rec.rtype
        if t in _MUST_BE_CRITICAL and not rec.critical:
            raise NtsError(MALFORMED, f"record {i} (type {t}) must have its critical bit set")
        if t in (KE_NEXT_PROTOCOL, KE_AEAD, KE_NTPV4_SERVER, KE_NTPV4_PORT) and t in seen:
            raise NtsError(MALFORMED, f"record {i}: a second record of type {t}")
        seen.add(t)
        if t == KE_END_OF_MESSAGE:
            if rec.body:
                raise NtsError(MALFORMED, f"End of Message record with a {len(rec.body)}-byte "
                                          f"body")
        elif t == KE_NEXT_PROTOCOL:
            ids = _u16s(rec, "Next Protocol")
            if ids != [NEXT_PROTOCOL_NTPV4]:
                raise NtsError(KE_REFUSED, f"next protocol {ids}, we asked for NTPv4 "
                                           f"({NEXT_PROTOCOL_NTPV4}) only")
            protocol = ids[0]
        elif t in (KE_ERROR, KE_WARNING):
            if len(rec.body) != 2:
                raise NtsError(MALFORMED, f"{'Error' if t == KE_ERROR else 'Warning'} record "
                                          f"of {len(rec.body)} bytes (2)")
            (code,) = struct.unpack("!H", rec.body)
            if t == KE_ERROR:
                raise NtsError(KE_REFUSED, f"server error {code} "
                                           f"({KE_ERROR_NAMES.get(code, 'unknown code')})")
            # RFC 8915 section 4.1.4 lets a client abort on a warning; chrony does, so do we.
            raise NtsError(KE_REFUSED, f"server warning {code}")
        elif t == KE_AEAD:
            ids = _u16s(rec, "AEAD Algorithm Negotiation")
            if ids != [AEAD_AES_SIV_CMAC_256]:
                raise NtsError(KE_REFUSED, f"AEAD algorithm {ids}, we asked for "
                                           f"AEAD_AES_SIV_CMAC_256 ({AEAD_AES_SIV_CMAC_256}) "
                                           f"only")
            aead = ids[0]
        elif t == KE_NEW_COOKIE:
            n = len(rec.body)
            if not 0 < n <= MAX_COOKIE_LEN or n % 4:
                raise NtsError(MALFORMED, f"record {i}: cookie of {n} bytes (a multiple of 4, "
                                          f"4..{MAX_COOKIE_LEN})")
            cookies.append(rec.body)
        elif t == KE_NTPV4_SERVER:
            b = rec.body
            if not 0 < len(b) <= MAX_SERVER_NAME_LEN or not all(33 <= c < 127 for c in b):
                raise NtsError(MALFORMED, f"record {i}: NTPv4 server name of {len(b)} bytes is "
                                          f"not printable ASCII without spaces")
            server = b.decode("ascii")
        elif t == KE_NTPV4_PORT:
            if len(rec.body) != 2:
                raise NtsError(MALFORMED, f"record {i}: NTPv4 port record of {len(rec.body)} "
                                          f"bytes (2)")
            (port,) = struct.unpack("!H", rec.body)
            if port == 0:
                raise NtsError(MALFORMED, f"record {i}: NTPv4 port 0")
        elif rec.critical:
            raise NtsError(KE_REFUSED, f"record {i}: unrecognized critical record type {t}")
        # Unknown non-critical records are ignored (RFC 8915 section 4).
    if protocol is None:
        raise NtsError(MALFORMED, "no Next Protocol Negotiation record")
    if aead is None:
        raise NtsError(MALFORMED, "no AEAD Algorithm Negotiation record")
    if not cookies:
        raise NtsError(MALFORMED, "no New Cookie record")
    return KeAnswer(tuple(cookies), server, port)


def exporter_context(s2c: bool) -> bytes:
    """TLS exporter context of RFC 8915 section 5.1: protocol id, AEAD id, 0 for the
    client-to-server key or 1 for the server-to-client key."""
    return struct.pack("!HHB", NEXT_PROTOCOL_NTPV4, AEAD_AES_SIV_CMAC_256, 1 if s2c else 0)


# ---------------------------------------------------------------- NTP extension fields


def encode_ef(ftype: int, body: bytes, min_len: int = EF_MIN_LEN) -> bytes:
    """One extension field: type, length, body zero-padded to a multiple of 4 and to
    `min_len`."""
    n = 4 + len(body)
    pad = max(_pad4(n), min_len - n)
    if n + pad > 0xFFFF:
        raise ValueError(f"extension field of {n} bytes (at most 65532)")
    return _EF_HEADER.pack(ftype, n + pad) + body + bytes(pad)


@dataclass(frozen=True, slots=True)
class ExtField:
    ftype: int
    offset: int  # of the field's header in the buffer it was parsed from
    body: bytes = field(repr=False)


def parse_efs(data: bytes, start: int = PACKET_LEN, min_len: int = EF_MIN_LEN,
              what: str = "packet") -> list[ExtField]:
    """The extension fields from `start` to the end of `data`, each checked: a whole header,
    a length of at least `min_len`, a multiple of 4, inside the buffer. Trailing bytes that are
    not a field (a legacy MAC) are an error: NTS replies carry none."""
    out = []
    pos = start
    while pos < len(data):
        left = len(data) - pos
        if left < _EF_HEADER.size:
            raise NtsError(MALFORMED, f"{left} trailing bytes at offset {pos} of the {what}")
        ftype, n = _EF_HEADER.unpack_from(data, pos)
        if n < min_len or n % 4:
            raise NtsError(MALFORMED, f"extension field {ftype:#06x} at offset {pos} of the "
                                      f"{what} has length {n} (a multiple of 4, >= {min_len})")
        if n > left:
            raise NtsError(MALFORMED, f"extension field {ftype:#06x} at offset {pos} of the "
                                      f"{what} has length {n}, only {left} bytes left")
        out.append(ExtField(ftype, pos, bytes(data[pos + 4:pos + n])))
        pos += n
    return out


def auth_ef(key: bytes, associated: bytes, nonce: bytes, plaintext: bytes = b"") -> bytes:
    """The NTS Authenticator and Encrypted Extension Fields field (RFC 8915 section 5.6):
    nonce and ciphertext lengths, the nonce and the AES-SIV output (tag + ciphertext) each
    zero-padded to 4, additional padding so that the nonce takes at least 16 bytes and the
    field at least 28. `associated` is the packet before this field."""
    ct = AESSIV(key).encrypt(plaintext, [associated, nonce])
    body = (struct.pack("!HH", len(nonce), len(ct)) + nonce + bytes(_pad4(len(nonce)))
            + ct + bytes(_pad4(len(ct))))
    extra = max(0, MIN_PADDED_NONCE - len(nonce) - _pad4(len(nonce)))
    return encode_ef(EF_AUTHENTICATOR, body + bytes(extra), AUTH_EF_MIN_LEN)


def build_request(header: bytes, *, c2s: bytes, uid: bytes, cookie: bytes, placeholders: int,
                  nonce: bytes) -> bytes:
    """An NTS client request: the 48-byte NTPv4 header, Unique Identifier, Cookie,
    `placeholders` Cookie Placeholders (each as long as the cookie: one more cookie asked for
    each), and the Authenticator over all of that with an empty encrypted part."""
    if len(header) != PACKET_LEN or (header[0] >> 3) & 7 != 4:
        raise ValueError("an NTS request needs a 48-byte NTPv4 header")
    if len(uid) < UID_LEN:
        raise ValueError(f"unique identifier of {len(uid)} bytes (at least {UID_LEN})")
    if not cookie or len(cookie) % 4:
        raise ValueError(f"cookie of {len(cookie)} bytes (a multiple of 4)")
    parts = [header, encode_ef(EF_UNIQUE_ID, uid), encode_ef(EF_COOKIE, cookie)]
    parts += [encode_ef(EF_COOKIE_PLACEHOLDER, bytes(len(cookie)))] * placeholders
    pkt = b"".join(parts)
    return pkt + auth_ef(c2s, pkt, nonce)


@dataclass(frozen=True, slots=True)
class NtsReply:
    """A verified reply: its header and the new cookies from its encrypted part."""

    packet: NtpPacket
    cookies: tuple[bytes, ...] = field(repr=False)


def _open_auth_ef(data: bytes, ef: ExtField, key: bytes) -> bytes:
    """Verify and decrypt the authenticator field `ef` of `data` (parsed by parse_efs: its body
    has at least 12 bytes) with `key`; returns the plaintext (the encrypted extension fields).
    AUTH_FAILED when the tag does not verify."""
    b = ef.body
    nlen, clen = struct.unpack_from("!HH", b)
    nend = 4 + nlen + _pad4(nlen)
    cend = nend + clen + _pad4(clen)
    if nlen < 1 or clen < SIV_TAG_LEN:
        raise NtsError(MALFORMED, f"authenticator with nonce length {nlen} and ciphertext "
                                  f"length {clen} (>= 1, >= {SIV_TAG_LEN})")
    if cend > len(b) or 4 + max(MIN_PADDED_NONCE, nlen + _pad4(nlen)) + clen + _pad4(clen) \
            > len(b):
        raise NtsError(MALFORMED, f"authenticator body of {len(b)} bytes cannot hold a nonce "
                                  f"of {nlen} (padded to >= {MIN_PADDED_NONCE}) and a "
                                  f"ciphertext of {clen}")
    if any(b[4 + nlen:nend]) or any(b[nend + clen:]):
        raise NtsError(MALFORMED, "non-zero padding in the authenticator")
    nonce, ct = b[4:4 + nlen], b[nend:nend + clen]
    try:
        return AESSIV(key).decrypt(ct, [data[:ef.offset], nonce])
    except InvalidTag:
        raise NtsError(AUTH_FAILED, "the reply was altered or not made with our session's "
                                    "key") from None


def verify_reply(data: bytes, *, s2c: bytes, uid: bytes, xmt_ts: int) -> NtsReply:
    """Accept a server reply only when it is an NTPv4 server reply whose origin is our
    transmit timestamp `xmt_ts`, that echoes our unique identifier `uid`, and whose
    authenticator (the last extension field) verifies with the server-to-client key; returns
    it with the cookies of its encrypted part. A kiss NTSN that echoes our identifier raises
    NtsNak; a reply without authenticator raises DOWNGRADE."""
    try:
        p = decode(data)
    except PacketError as e:
        raise NtsError(MALFORMED, str(e)) from None
    if p.org_ts != xmt_ts:
        raise NtsError(ORIGIN_MISMATCH, f"origin {p.org_ts:016x}, we sent {xmt_ts:016x}")
    if p.mode != 4 or p.version != 4:
        raise NtsError(NOT_SERVER_REPLY, f"version {p.version} mode {p.mode}")
    if len(data) % 4:
        raise NtsError(MALFORMED, f"reply of {len(data)} bytes (extension fields are whole "
                                  f"words)")
    efs = parse_efs(data)
    uids = [ef for ef in efs if ef.ftype == EF_UNIQUE_ID]
    auth = [i for i, ef in enumerate(efs) if ef.ftype == EF_AUTHENTICATOR]
    if len(uids) > 1:
        raise NtsError(MALFORMED, f"{len(uids)} unique identifier fields")
    if uids and uids[0].body != uid:
        raise NtsError(UID_MISMATCH, "the reply answers another request")
    if not auth:
        if uids and p.stratum == 0 and p.refid_raw == KISS_NTS_NAK:
            raise NtsNak()
        raise NtsError(DOWNGRADE, f"{len(efs)} extension fields, none an NTS authenticator")
    if auth[0] != len(efs) - 1:
        raise NtsError(MALFORMED, "the authenticator is not the last extension field")
    if not uids:
        raise NtsError(UID_MISSING, "authenticated reply without our unique identifier")
    plain = _open_auth_ef(data, efs[-1], s2c)
    inner = parse_efs(plain, 0, 4, "encrypted part")
    cookies = tuple(ef.body for ef in inner if ef.ftype == EF_COOKIE)
    if not cookies:
        raise NtsError(NO_COOKIE, "the encrypted part holds no cookie")
    for c in cookies:
        if len(c) > MAX_COOKIE_LEN:
            raise NtsError(MALFORMED, f"cookie of {len(c)} bytes (at most {MAX_COOKIE_LEN})")
    return NtsReply(p, cookies)
