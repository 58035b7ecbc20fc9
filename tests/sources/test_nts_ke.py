"""NTS-KE client against real TLS servers made here (Python's ssl module on 127.0.0.1: no
ALPN, TLS 1.2 only, not TLS, scripted NTS-KE answers), and the NtsSession's cookie jar.

The interoperability tests with chronyd (real NTS-KE and authenticated NTP) are
tests/integration/test_nts.py.
"""

from __future__ import annotations

import os
import pickle
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.nts_servers import make_cert
from timewatch.sources.nts_ke import (
    MAX_COOKIES,
    REFRESH_S,
    KeError,
    NtsSession,
    key_exchange,
)
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
    NtsError,
    NtsNak,
    encode_ef,
    encode_record,
)

HOST = "127.0.0.1"
COOKIE = bytes(range(100))


def rec(t: int, body: bytes = b"", critical: bool = False) -> bytes:
    return encode_record(t, body, critical)


def u16(v: int) -> bytes:
    return struct.pack("!H", v)


GOOD_ANSWER = (rec(KE_NEXT_PROTOCOL, u16(0), True) + rec(KE_AEAD, u16(15), True)
               + b"".join(rec(KE_NEW_COOKIE, bytes([i]) * 100) for i in range(8))
               + rec(KE_END_OF_MESSAGE, b"", True))


class TlsServer:
    """A TLS server on 127.0.0.1 (stdlib ssl) answering each connection with `handler`."""

    def __init__(self, ctx: ssl.SSLContext | None, handler: Callable[[socket.socket], None]):
        self.ctx, self.handler = ctx, handler
        self.lsock = socket.create_server((HOST, 0))
        self.lsock.settimeout(0.1)
        self.port: int = self.lsock.getsockname()[1]
        self.errors: list[Exception] = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except TimeoutError:
                continue
            c.settimeout(5)
            try:
                s = self.ctx.wrap_socket(c, server_side=True) if self.ctx else c
                self.handler(s)
                s.close()
            except (OSError, ssl.SSLError) as e:
                self.errors.append(e)
            finally:
                c.close()

    def close(self) -> None:
        self._stop = True
        self._t.join(2)
        self.lsock.close()


def server_ctx(d: Path, alpn: list[str] | None = None,
               max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    crt, key = make_cert(d, [HOST])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def answer_with(answer: bytes) -> Callable[[socket.socket], None]:
    def handler(s: socket.socket) -> None:
        buf = b""
        while nts.ke_records(buf)[1] is None:
            chunk = s.recv(4096)
            if not chunk:
                return
            buf += chunk
        assert buf == nts.ke_request()
        s.sendall(answer)
    return handler


def drain(s: socket.socket) -> None:
    s.recv(4096)


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Callable[..., TlsServer]]:
    started: list[TlsServer] = []

    def start(handler: Callable[[socket.socket], None] = drain, *, tls: bool = True,
              alpn: list[str] | None = None, max_version: ssl.TLSVersion | None = None
              ) -> TlsServer:
        ctx = server_ctx(tmp_path, alpn, max_version) if tls else None
        s = TlsServer(ctx, handler)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def ke(tmp_path: Path, port: int, **kw: object) -> NtsSession:
    return key_exchange(HOST, port, ca_file=str(tmp_path / "server.crt"), **kw)  # type: ignore


def ke_error(tmp_path: Path, port: int, **kw: object) -> KeError:
    with pytest.raises(KeError) as ei:
        ke(tmp_path, port, **kw)
    return ei.value


def test_scripted_answer_gives_session_with_named_server_and_port(tls, tmp_path):
    answer = (rec(KE_NEXT_PROTOCOL, u16(0), True) + rec(KE_AEAD, u16(15))
              + rec(KE_NTPV4_SERVER, b"127.0.0.9") + rec(KE_NTPV4_PORT, u16(4123))
              + rec(KE_NEW_COOKIE, COOKIE) + rec(KE_END_OF_MESSAGE, b"", True))
    s = tls(answer_with(answer), alpn=["ntske/1"])
    session = ke(tmp_path, s.port)
    assert (session.ntp_host, session.ntp_port, session.cookies_left) == ("127.0.0.9", 4123, 1)
    assert (session.ke_host, session.ke_port, session.name) == (HOST, s.port, HOST)
    assert s.errors == []


def test_answer_without_server_and_port_uses_ke_host_and_configured_port(tls, tmp_path):
    s = tls(answer_with(GOOD_ANSWER), alpn=["ntske/1"])
    session = ke(tmp_path, s.port, ntp_port=11999)
    assert (session.ntp_host, session.ntp_port, session.cookies_left) == (HOST, 11999, 8)


def test_tls_server_without_alpn_is_not_nts(tls, tmp_path):
    s = tls()
    e = ke_error(tmp_path, s.port)
    assert e.cause == "alpn" and "ntske/1" in str(e)


def test_tls_server_with_other_alpn_is_not_nts(tls, tmp_path):
    s = tls(alpn=["http/1.1"])
    e = ke_error(tmp_path, s.port)
    assert e.cause == "alpn" and "NTS-KE" in str(e)


def test_tls_1_2_only_server_refused(tls, tmp_path):
    s = tls(alpn=["ntske/1"], max_version=ssl.TLSVersion.TLSv1_2)
    e = ke_error(tmp_path, s.port)
    assert e.cause == "tls" and "TLS 1.3" in str(e)


def test_plain_tcp_server_is_not_tls(tls, tmp_path):
    def http(s: socket.socket) -> None:
        s.recv(4096)
        s.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
    s = tls(http, tls=False)
    make_cert(tmp_path, [HOST])
    e = ke_error(tmp_path, s.port)
    assert e.cause == "tls", e


def test_closed_port_is_connect_error(tmp_path):
    make_cert(tmp_path, [HOST])
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        e = ke_error(tmp_path, port)
    assert e.cause == "connect" and "refused" in str(e).lower()


def test_silent_server_times_out(tls, tmp_path):
    release = threading.Event()
    s = tls(lambda c: release.wait(5), alpn=["ntske/1"])
    try:
        e = ke_error(tmp_path, s.port, timeout_s=0.5)
    finally:
        release.set()
    assert e.cause == "timeout"


def test_unreadable_ca_file_is_config_error(tls, tmp_path):
    s = tls(alpn=["ntske/1"])
    with pytest.raises(KeError) as ei:
        key_exchange(HOST, s.port, ca_file=str(tmp_path / "missing.pem"))
    assert ei.value.cause == "config" and "missing.pem" in str(ei.value)


def test_system_store_does_not_trust_a_self_signed_server(tls, tmp_path):
    s = tls(answer_with(GOOD_ANSWER), alpn=["ntske/1"])
    with pytest.raises(KeError) as ei:
        key_exchange(HOST, s.port)
    assert ei.value.cause == "untrusted" and "system" in str(ei.value)


def test_dns_name_not_in_certificate(tls, tmp_path):
    s = tls(answer_with(GOOD_ANSWER), alpn=["ntske/1"])
    e = ke_error(tmp_path, s.port, name="ntp.example.net")
    assert e.cause == "name" and "ntp.example.net" in str(e) and "127.0.0.1" in str(e)


@pytest.mark.parametrize("answer,cause,words", [
    (rec(KE_ERROR, u16(1), True) + rec(KE_END_OF_MESSAGE, b"", True), "refused", "bad request"),
    (rec(KE_NEXT_PROTOCOL, u16(0), True) + rec(KE_AEAD, u16(30)) + rec(KE_NEW_COOKIE, COOKIE)
     + rec(KE_END_OF_MESSAGE, b"", True), "refused", "AEAD"),
    (rec(0x4321, b"x", True) + GOOD_ANSWER, "refused", "unrecognized critical record type"),
    (GOOD_ANSWER[:-4], "protocol", "before End of Message"),
    (rec(KE_NEXT_PROTOCOL, u16(0), True) + rec(KE_AEAD, u16(15))
     + rec(KE_END_OF_MESSAGE, b"", True), "protocol", "no New Cookie"),
])
def test_bad_answers_name_the_cause(tls, tmp_path, answer, cause, words):
    s = tls(answer_with(answer), alpn=["ntske/1"])
    e = ke_error(tmp_path, s.port)
    assert e.cause == cause and words in str(e), e


# ---------------------------------------------------------------- the session's cookie jar


def session(cookies: int = 8, cookie_len: int = 100) -> NtsSession:
    return NtsSession(ke_host=HOST, ke_port=4460, name=HOST, ntp_host=HOST, ntp_port=123,
                      c2s=b"\x11" * 32, s2c=b"\x22" * 32,
                      cookies=[bytes([i]) * cookie_len for i in range(cookies)],
                      established=1000.0)


def server_reply(req: bytes, s2c: bytes, new_cookies: list[bytes], stratum: int = 2) -> bytes:
    """What an NTS server answers: origin and unique identifier echoed, cookies encrypted."""
    efs = nts.parse_efs(req)
    uid = next(e.body for e in efs if e.ftype == nts.EF_UNIQUE_ID)
    hdr = NtpPacket(0, 4, 4, stratum, 0, -20, 0, 0, b"GPS\0", 1 << 32, int.from_bytes(
        req[40:48], "big"), 5 << 32, 6 << 32).encode() + encode_ef(nts.EF_UNIQUE_ID, uid)
    plain = b"".join(encode_ef(nts.EF_COOKIE, c) for c in new_cookies)
    return hdr + nts.auth_ef(s2c, hdr, os.urandom(16), plain)


def placeholders(req: bytes) -> int:
    return sum(e.ftype == nts.EF_COOKIE_PLACEHOLDER for e in nts.parse_efs(req))


def test_each_request_spends_one_cookie_and_asks_for_the_missing_ones():
    s = session()
    req, p = s.request(0x0123456789ABCDEF)
    assert s.cookies_left == 7 and placeholders(req) == 0
    lost = [s.request(i + 1) for i in range(3)]  # replies never came
    assert s.cookies_left == 4 and [placeholders(r) for r, _ in lost] == [1, 2, 3]
    req, p = s.request(99)
    assert placeholders(req) == 4  # 3 left: asks for 5 (its own + 4 placeholders)
    reply = s.accept(server_reply(req, b"\x22" * 32, [b"n" * 100] * 5), p)
    assert len(reply.cookies) == 5 and s.cookies_left == 8
    assert s.rekey_reason(now=1000.0) is None


def test_jar_never_holds_more_than_eight():
    s = session(8)
    req, p = s.request(7)
    s.accept(server_reply(req, b"\x22" * 32, [b"n" * 100] * 4), p)
    assert s.cookies_left == MAX_COOKIES


def test_exhausted_jar_needs_rekey():
    s = session(2)
    s.request(1)
    s.request(2)
    assert s.rekey_reason(now=1000.0) == "cookies exhausted"
    with pytest.raises(NtsError, match="cookies exhausted"):
        s.request(3)


def test_old_session_needs_rekey():
    s = session()
    assert s.rekey_reason(now=1000.0 + REFRESH_S - 1) is None
    assert "older than 14 days" in (s.rekey_reason(now=1000.0 + REFRESH_S + 1) or "")


def test_nak_marks_session_for_rekey():
    s = session()
    req, p = s.request(5)
    nak = bytearray(server_reply(req, b"\x22" * 32, [b"n" * 100], stratum=0))
    nak[12:16] = b"NTSN"
    uid_end = 48 + 36
    with pytest.raises(NtsNak):
        s.accept(bytes(nak[:uid_end]), p)
    assert s.nak and "NAK" in (s.rekey_reason(now=1000.0) or "")


def test_failed_reply_keeps_the_request_open_for_the_genuine_one():
    s = session()
    req, p = s.request(5)
    genuine = server_reply(req, b"\x22" * 32, [b"n" * 100])
    forged = server_reply(req, b"\x33" * 32, [b"f" * 100])
    with pytest.raises(NtsError) as ei:
        s.accept(forged, p)
    assert ei.value.reason == nts.AUTH_FAILED and s.cookies_left == 7
    assert s.accept(genuine, p).cookies == (b"n" * 100,) and s.cookies_left == 8


def test_keys_and_cookies_never_shown():
    s = session()
    text = repr(s) + str(s)
    assert "11" * 8 not in text and "22" * 8 not in text and "\\x11" not in text
    assert "cookies=8" in text and s.session_id in text
    req, p = s.request(5)
    reply = s.accept(server_reply(req, b"\x22" * 32, [b"n" * 100]), p)
    assert "nnnn" not in repr(reply) and "6e6e6e6e" not in repr(reply)
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_session_ids_differ():
    assert len({session().session_id for _ in range(50)}) == 50
