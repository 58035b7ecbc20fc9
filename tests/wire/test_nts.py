"""The RFC 8915 codec (wire/nts.py) on packed bytes: NTS-KE records, extension fields, the
AES-SIV authenticator, and the reply checks; hypothesis: the parsers raise nothing but NtsError,
and no altered byte of a reply is accepted. The interoperability with chronyd is
tests/integration/test_nts.py."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from hypothesis import given, settings
from hypothesis import strategies as st

from timewatch.wire import nts
from timewatch.wire.ntp import NtpPacket
from timewatch.wire.nts import (
    KE_AEAD,
    KE_END_OF_MESSAGE,
    KE_ERROR,
    KE_NEW_COOKIE,
    KE_NEXT_PROTOCOL,
    KE_NTPV4_PORT,
    KE_NTPV4_SERVER,
    KE_WARNING,
    NtsError,
    NtsNak,
    decode_ke_response,
    encode_ef,
    encode_record,
    ke_records,
    parse_efs,
    verify_reply,
)

C2S, S2C = bytes(range(32)), bytes(range(32, 64))
UID = bytes(range(100, 132))
XMT = 0xE4F0_0000_1234_5678
COOKIE = bytes(range(100))


def header(mode: int = 3, stratum: int = 0, org: int = 0, xmt: int = XMT, refid: bytes = b"\0" * 4,
           version: int = 4) -> bytes:
    return NtpPacket(0, version, mode, stratum, 0, -20, 0, 0, refid, 0, org, 0, xmt).encode()


def request(placeholders: int = 0) -> bytes:
    return nts.build_request(header(), c2s=C2S, uid=UID, cookie=COOKIE,
                             placeholders=placeholders, nonce=b"N" * 16)


def reply(*, uid: bytes = UID, org: int = XMT, key: bytes = S2C, stratum: int = 2,
          cookies: tuple[bytes, ...] = (b"c" * 100,), plain: bytes | None = None,
          extra_before: bytes = b"", nonce: bytes = b"n" * 16) -> bytes:
    """A server reply as chronyd builds it: header, our identifier, the authenticator with the
    new cookies encrypted."""
    pkt = header(4, stratum, org, 0x1111) + encode_ef(nts.EF_UNIQUE_ID, uid) + extra_before
    if plain is None:
        plain = b"".join(encode_ef(nts.EF_COOKIE, c) for c in cookies)
    return pkt + nts.auth_ef(key, pkt, nonce, plain)


def reason(data: bytes) -> str:
    with pytest.raises(NtsError) as ei:
        verify_reply(data, s2c=S2C, uid=UID, xmt_ts=XMT)
    return ei.value.reason


# ---------------------------------------------------------------- NTS-KE records


def test_record_layout():
    assert encode_record(KE_NEXT_PROTOCOL, b"\0\0", True) == bytes.fromhex("8001 0002 0000")
    assert encode_record(KE_NEW_COOKIE, b"ab") == bytes.fromhex("0005 0002 6162")
    assert encode_record(KE_END_OF_MESSAGE, critical=True) == bytes.fromhex("8000 0000")
    with pytest.raises(ValueError):
        encode_record(0x8000)


def test_client_request_is_ntpv4_aes_siv_end():
    assert nts.ke_request() == bytes.fromhex("8001 0002 0000  8004 0002 000f  8000 0000")


def test_exporter_contexts():
    assert nts.exporter_context(False) == bytes.fromhex("0000 000f 00")
    assert nts.exporter_context(True) == bytes.fromhex("0000 000f 01")


def r(t: int, body: bytes = b"", critical: bool = False) -> bytes:
    return encode_record(t, body, critical)


def u16(*v: int) -> bytes:
    return struct.pack(f"!{len(v)}H", *v)


NP, AE = r(KE_NEXT_PROTOCOL, u16(0), True), r(KE_AEAD, u16(15))
EOM = r(KE_END_OF_MESSAGE, b"", True)


def test_full_answer_decoded():
    data = (NP + AE + r(KE_NTPV4_SERVER, b"ntp1.example.net") + r(KE_NTPV4_PORT, u16(123))
            + b"".join(r(KE_NEW_COOKIE, bytes([i]) * 96) for i in range(8))
            + r(0x1234, b"ignored, not critical") + EOM)
    a = decode_ke_response(data)
    assert (a.server, a.port, len(a.cookies)) == ("ntp1.example.net", 123, 8)
    assert a.cookies[3] == b"\3" * 96
    assert "\\x03" not in repr(a)  # cookies are not shown


def test_records_arrive_in_pieces():
    data = NP + AE + r(KE_NEW_COOKIE, COOKIE) + EOM
    for cut in range(len(data)):
        assert ke_records(data[:cut])[1] is None
    recs, end = ke_records(data)
    assert end == len(data) and [x.rtype for x in recs] == [1, 4, 5, 0]
    assert recs[0].critical and not recs[2].critical


@pytest.mark.parametrize("data,why,words", [
    (NP + AE + r(KE_NEW_COOKIE, COOKIE), nts.MALFORMED, "without End of Message"),
    (NP + AE + r(KE_NEW_COOKIE, COOKIE) + EOM + b"\0", nts.MALFORMED, "after the NTS-KE End"),
    (NP + AE + r(KE_NEW_COOKIE, COOKIE) + r(KE_END_OF_MESSAGE), nts.MALFORMED, "critical bit"),
    (r(KE_NEXT_PROTOCOL, u16(0)) + AE + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED,
     "critical bit"),
    (NP + AE + r(KE_NEW_COOKIE, COOKIE) + r(KE_END_OF_MESSAGE, b"x", True), nts.MALFORMED,
     "body"),
    (r(KE_NEXT_PROTOCOL, b"", True) + AE + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.KE_REFUSED,
     "next protocol []"),
    (r(KE_NEXT_PROTOCOL, u16(0, 1), True) + AE + r(KE_NEW_COOKIE, COOKIE) + EOM,
     nts.KE_REFUSED, "next protocol [0, 1]"),
    (r(KE_NEXT_PROTOCOL, b"\0", True) + AE + EOM, nts.MALFORMED, "16-bit"),
    (NP + NP + AE + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED, "second record"),
    (NP + r(KE_AEAD, u16(16)) + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.KE_REFUSED, "AEAD"),
    (NP + AE + AE + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED, "second record"),
    (r(KE_ERROR, u16(2), True) + EOM, nts.KE_REFUSED, "internal server error"),
    (r(KE_ERROR, u16(0), True) + EOM, nts.KE_REFUSED, "unrecognized critical record"),
    (r(KE_ERROR, u16(2)) + EOM, nts.MALFORMED, "critical bit"),
    (r(KE_ERROR, b"\0", True) + EOM, nts.MALFORMED, "Error record of 1 bytes"),
    (r(KE_WARNING, u16(7), True) + EOM, nts.KE_REFUSED, "warning 7"),
    (NP + AE + r(0x0042, b"", True) + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.KE_REFUSED,
     "unrecognized critical record type 66"),
    (NP + AE + r(KE_NEW_COOKIE, b"abc") + EOM, nts.MALFORMED, "cookie of 3 bytes"),
    (NP + AE + r(KE_NEW_COOKIE, b"") + EOM, nts.MALFORMED, "cookie of 0 bytes"),
    (NP + AE + r(KE_NEW_COOKIE, bytes(260)) + EOM, nts.MALFORMED, "cookie of 260 bytes"),
    (NP + AE + r(KE_NTPV4_SERVER, b"a b") + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED,
     "server name"),
    (NP + AE + r(KE_NTPV4_SERVER, b"") + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED,
     "server name"),
    (NP + AE + r(KE_NTPV4_PORT, b"\0\0\x7b") + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED,
     "port record of 3"),
    (NP + AE + r(KE_NTPV4_PORT, u16(0)) + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED,
     "port 0"),
    (AE + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED, "no Next Protocol"),
    (NP + r(KE_NEW_COOKIE, COOKIE) + EOM, nts.MALFORMED, "no AEAD"),
    (NP + AE + EOM, nts.MALFORMED, "no New Cookie"),
])
def test_bad_answers(data, why, words):
    with pytest.raises(NtsError) as ei:
        decode_ke_response(data)
    assert ei.value.reason == why and words in str(ei.value), ei.value


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_ke_parser_raises_only_nts_error(data):
    try:
        decode_ke_response(data)
    except NtsError:
        pass


@given(st.lists(st.tuples(st.integers(0, 9), st.booleans(), st.binary(max_size=12)),
                max_size=8))
@settings(max_examples=500)
def test_ke_parser_on_record_sequences(recs):
    data = b"".join(r(t, b, c) for t, c, b in recs) + EOM
    try:
        a = decode_ke_response(data)
    except NtsError:
        return
    assert a.cookies and all(len(c) % 4 == 0 for c in a.cookies)


# ---------------------------------------------------------------- extension fields


def test_ef_layout():
    assert encode_ef(nts.EF_UNIQUE_ID, UID) == bytes.fromhex("0104 0024") + UID
    assert encode_ef(nts.EF_COOKIE, b"abcde") == bytes.fromhex("0204 0010") + b"abcde" + bytes(7)
    assert encode_ef(0x1234, bytes(13)) == bytes.fromhex("1234 0014") + bytes(16)


@pytest.mark.parametrize("tail,words", [
    (bytes.fromhex("0104 000c") + bytes(8), "length 12"),
    (bytes.fromhex("0104 0012") + bytes(14), "length 18"),
    (bytes.fromhex("0104 0024") + bytes(16), "only 20 bytes left"),
    (bytes(3), "3 trailing bytes"),
])
def test_ef_parser_checks_each_field(tail, words):
    with pytest.raises(NtsError) as ei:
        parse_efs(header() + encode_ef(0x0104, UID) + tail)
    assert ei.value.reason == nts.MALFORMED and words in str(ei.value), ei.value


def test_request_structure():
    req = request(placeholders=2)
    efs = parse_efs(req)
    assert req[:48] == header()
    assert [(e.ftype, e.offset, len(e.body)) for e in efs] == [
        (0x0104, 48, 32), (0x0204, 84, 100), (0x0304, 188, 100), (0x0304, 292, 100),
        (0x0404, 396, 36)]
    assert efs[1].body == COOKIE and efs[2].body == bytes(100)
    auth = efs[-1].body
    assert auth[:4] == u16(16, 16) and auth[4:20] == b"N" * 16 and len(req) == 396 + 40
    # What the server checks: AES-SIV over the packet before the authenticator, with C2S.
    assert AESSIV(C2S).decrypt(auth[20:36], [req[:396], b"N" * 16]) == b""


def test_short_nonce_gets_additional_padding():
    ef = nts.auth_ef(C2S, header(), b"abcde")
    nlen, clen = struct.unpack_from("!HH", ef, 4)
    assert (nlen, clen) == (5, 16)
    # nonce 5 + 3 padding, ciphertext 16, additional padding 8: the nonce takes 16 bytes.
    assert len(ef) == 4 + 4 + 8 + 16 + 8


def test_request_needs_ntpv4_and_whole_word_cookie():
    with pytest.raises(ValueError):
        nts.build_request(header(version=3), c2s=C2S, uid=UID, cookie=COOKIE,
                          placeholders=0, nonce=os.urandom(16))
    with pytest.raises(ValueError):
        nts.build_request(header(), c2s=C2S, uid=UID, cookie=b"abc", placeholders=0,
                          nonce=os.urandom(16))
    with pytest.raises(ValueError):
        nts.build_request(header(), c2s=C2S, uid=UID[:16], cookie=COOKIE, placeholders=0,
                          nonce=os.urandom(16))


# ---------------------------------------------------------------- replies


def test_good_reply_accepted_with_its_cookies():
    cookies = (b"a" * 100, b"b" * 104, b"c" * 96)
    rep = verify_reply(reply(cookies=cookies), s2c=S2C, uid=UID, xmt_ts=XMT)
    assert rep.cookies == cookies and rep.packet.org_ts == XMT and rep.packet.stratum == 2
    assert "aaaa" not in repr(rep)


def test_other_encrypted_fields_are_skipped():
    plain = encode_ef(0x7777, b"xyz", 4) + encode_ef(nts.EF_COOKIE, COOKIE)
    assert verify_reply(reply(plain=plain), s2c=S2C, uid=UID, xmt_ts=XMT).cookies == (COOKIE,)


def test_unauthenticated_fields_before_the_authenticator_are_allowed_but_covered():
    extra = encode_ef(0x2005, b"hello")
    assert verify_reply(reply(extra_before=extra), s2c=S2C, uid=UID, xmt_ts=XMT).cookies
    # ...and covered: the same field changed after the server signed is caught.
    good = reply(extra_before=extra)
    i = good.index(b"hello")
    assert reason(good[:i] + b"jello" + good[i + 5:]) == nts.AUTH_FAILED


@pytest.mark.parametrize("make,why", [
    (lambda: reply(key=C2S), nts.AUTH_FAILED),
    (lambda: reply(org=XMT ^ 1), nts.ORIGIN_MISMATCH),
    (lambda: reply(uid=UID[::-1]), nts.UID_MISMATCH),
    (lambda: reply()[:48], nts.DOWNGRADE),
    (lambda: reply()[:84], nts.DOWNGRADE),
    (lambda: reply(plain=b""), nts.NO_COOKIE),
    (lambda: reply(plain=encode_ef(0x7777, b"x")), nts.NO_COOKIE),
    (lambda: reply(plain=b"\0\0"), nts.MALFORMED),  # encrypted part not whole fields
    (lambda: reply(cookies=(bytes(300),)), nts.MALFORMED),
    (lambda: reply() + encode_ef(0x2005, b"after"), nts.MALFORMED),  # auth not last
    (lambda: reply() + bytes(20), nts.MALFORMED),  # a legacy MAC
    (lambda: reply()[:-1], nts.MALFORMED),
    (lambda: reply()[:40], nts.MALFORMED),
    (lambda: reply(extra_before=encode_ef(nts.EF_UNIQUE_ID, UID)), nts.MALFORMED),  # two
    (lambda: header(3, 2, XMT) + encode_ef(nts.EF_UNIQUE_ID, UID), nts.NOT_SERVER_REPLY),
    (lambda: header(4, 2, XMT, version=3), nts.NOT_SERVER_REPLY),
])
def test_bad_replies(make, why):
    assert reason(make()) == why


def test_reply_without_our_identifier():
    pkt = header(4, 2, XMT, 0x1111)
    assert reason(pkt + nts.auth_ef(S2C, pkt, b"n" * 16, encode_ef(nts.EF_COOKIE, COOKIE))) \
        == nts.UID_MISSING


def auth_ef_raw(body: bytes) -> bytes:
    return encode_ef(nts.EF_AUTHENTICATOR, body, nts.AUTH_EF_MIN_LEN)


@pytest.mark.parametrize("body,words", [
    (u16(0, 16) + bytes(32), "nonce length 0"),
    (u16(16, 8) + bytes(32), "ciphertext length 8"),
    (u16(16, 32) + bytes(32), "cannot hold"),
    (u16(4, 16) + bytes(20), "cannot hold"),  # nonce not padded to 16
    (u16(16, 16) + bytes(32) + b"\1" + bytes(3), "non-zero padding"),  # additional
    (u16(15, 16) + bytes(15) + b"\1" + bytes(16), "non-zero padding"),
])
def test_authenticator_layout_checked(body, words):
    pkt = header(4, 2, XMT) + encode_ef(nts.EF_UNIQUE_ID, UID)
    ef = auth_ef_raw(body)
    with pytest.raises(NtsError) as ei:
        verify_reply(pkt + ef, s2c=S2C, uid=UID, xmt_ts=XMT)
    assert ei.value.reason == nts.MALFORMED and words in str(ei.value), ei.value


def test_nts_nak():
    pkt = header(4, 0, XMT, refid=b"NTSN") + encode_ef(nts.EF_UNIQUE_ID, UID)
    with pytest.raises(NtsNak) as ei:
        verify_reply(pkt, s2c=S2C, uid=UID, xmt_ts=XMT)
    assert ei.value.reason == nts.NAK and "kiss NTSN" in str(ei.value)
    # A NAK that does not echo our identifier is not ours to believe.
    other = header(4, 0, XMT, refid=b"NTSN") + encode_ef(nts.EF_UNIQUE_ID, UID[::-1])
    assert reason(other) == nts.UID_MISMATCH
    bare = header(4, 0, XMT, refid=b"NTSN")
    assert reason(bare) == nts.DOWNGRADE
    # Another kiss code without authenticator is no NAK.
    assert reason(header(4, 0, XMT, refid=b"RATE") + encode_ef(nts.EF_UNIQUE_ID, UID)) \
        == nts.DOWNGRADE


GOOD = reply(cookies=(b"c" * 100, b"d" * 100))


@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
@settings(max_examples=1000)
def test_no_altered_byte_is_accepted(i, x):
    bad = GOOD[:i] + bytes([GOOD[i] ^ x]) + GOOD[i + 1:]
    with pytest.raises(NtsError):
        verify_reply(bad, s2c=S2C, uid=UID, xmt_ts=XMT)


def test_every_single_bit_flip_is_refused():
    assert verify_reply(GOOD, s2c=S2C, uid=UID, xmt_ts=XMT)
    for i in range(len(GOOD)):
        for bit in range(8):
            bad = GOOD[:i] + bytes([GOOD[i] ^ (1 << bit)]) + GOOD[i + 1:]
            with pytest.raises(NtsError):
                verify_reply(bad, s2c=S2C, uid=UID, xmt_ts=XMT)


@given(st.binary(max_size=400))
@settings(max_examples=500)
def test_reply_parser_raises_only_nts_error_on_noise(data):
    try:
        verify_reply(data, s2c=S2C, uid=UID, xmt_ts=XMT)
    except NtsError:
        pass


@given(st.binary(max_size=200), st.integers(0, len(GOOD)), st.integers(0, 64))
@settings(max_examples=1000)
def test_reply_parser_raises_only_nts_error_on_spliced_replies(junk, at, cut):
    data = GOOD[:at] + junk + GOOD[at + cut:]
    try:
        rep = verify_reply(data, s2c=S2C, uid=UID, xmt_ts=XMT)
    except NtsError:
        return
    # Only the untouched reply verifies (or one that differs in nothing it says).
    assert rep == verify_reply(GOOD, s2c=S2C, uid=UID, xmt_ts=XMT)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_ef_parser_raises_only_nts_error(data):
    try:
        efs = parse_efs(header() + data)
    except NtsError:
        return
    assert sum(len(e.body) + 4 for e in efs) == len(data)
