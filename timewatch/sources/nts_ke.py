"""NTS key establishment (RFC 8915 section 4) and the NTS session it yields.

`key_exchange(host, ...)` connects to an NTS-KE server over TLS 1.3 (ALPN `ntske/1`, port 4460
by default), verifies its certificate against the configured CA file (or the system's store)
and its name (the configured `name`, else `host`: an IP address is matched against the
certificate's IP addresses, a name against its DNS names), sends the request for NTPv4 with
AEAD_AES_SIV_CMAC_256, reads the answer and exports the two keys with the RFC 8915 exporter
label and context. Any failure raises `KeError` whose `cause` says what to fix.

Why pyOpenSSL: the key export needs TLS keying-material export (RFC 5705 / RFC 8446 section
7.5), which Python's `ssl` module does not offer (CPython issue gh-82133 and its pull request
have been open since 2019); pyOpenSSL's `Connection.export_keying_material` calls OpenSSL's
`SSL_export_keying_material`, from the same maintainers (PyCA) as `cryptography`, which we use
for AES-SIV. pyOpenSSL does not check the server's name: `service-identity` (PyCA too, RFC
6125) does that on the certificate after the handshake, before anything is sent.

`NtsSession` holds what the KE gave: the NTPv4 server and port, both keys, the cookie jar. Keys
and cookies live only in this object: no repr, log or trace shows them (the trace names the
session by `session_id`, random and unrelated to any key).
"""

from __future__ import annotations

import ipaddress
import secrets
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Final, TypeVar

from cryptography import x509
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

from ..wire.ntp import NtpPacket
from ..wire.nts import (
    KE_REFUSED,
    KEY_LEN,
    NONCE_LEN,
    UID_LEN,
    NtsError,
    NtsNak,
    NtsReply,
    build_request,
    decode_ke_response,
    exporter_context,
    ke_records,
    ke_request,
    verify_reply,
)

NTS_KE_PORT: Final = 4460
NTP_PORT: Final = 123
ALPN: Final = b"ntske/1"
EXPORTER_LABEL: Final = b"EXPORTER-network-time-security"
# Whole key establishment (connect, handshake, answer); chrony's client allows 16 s.
KE_TIMEOUT_S: Final = 10.0
# Largest NTS-KE answer we read (chrony's server sends ~1 kB; its limit is 16 kB).
MAX_KE_RESPONSE: Final = 65536
# Cookies kept: one per request, placeholders in each request ask for the missing ones (RFC 8915
# section 5.7 and chrony: 8).
MAX_COOKIES: Final = 8
# Cookie bytes asked for per request, so that the reply stays under the common 1280-byte path
# MTU without IP fragmentation (chrony's MAX_TOTAL_COOKIE_LENGTH).
MAX_TOTAL_COOKIE_BYTES: Final = 8 * 108
# New keys this long after a KE even without a NAK (chrony's `ntsrefresh` default: 2 weeks).
REFRESH_S: Final = 14 * 86400.0

_V = SSL.X509VerificationCodes
_UNTRUSTED: Final = frozenset((
    _V.ERR_DEPTH_ZERO_SELF_SIGNED_CERT, _V.ERR_SELF_SIGNED_CERT_IN_CHAIN,
    _V.ERR_UNABLE_TO_GET_ISSUER_CERT, _V.ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
    _V.ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, _V.ERR_CERT_UNTRUSTED))

T = TypeVar("T")


class KeError(Exception):
    """A key establishment that failed. `cause` is one of: "config" (CA file), "connect",
    "timeout", "tls" (no TLS 1.3 handshake), "alpn" (no NTS-KE offered), "untrusted" (no path
    to a trusted CA), "expired" (certificate outside its validity), "certificate" (other
    certificate errors), "name" (certificate not for this server), "protocol" (a bad NTS-KE
    answer), "refused" (the server sent an error or declined what we asked)."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Pending:
    """What a reply must echo: our transmit timestamp and unique identifier."""

    xmt_ts: int
    uid: bytes


class NtsSession:
    """Keys, cookies and the NTPv4 address from one key establishment.

    `request(xmt_ts)` spends one cookie and returns the packet to send; `accept(data, pending)`
    verifies a reply to it and keeps the cookies it brings. `rekey_reason()` says when a new
    key establishment is due: after an NTS NAK, with the jar empty, or after REFRESH_S.
    """

    __slots__ = ("ke_host", "ke_port", "name", "ntp_host", "ntp_port", "session_id",
                 "established", "nak", "certificate", "not_after", "_c2s", "_s2c", "_cookies")

    def __init__(self, *, ke_host: str, ke_port: int, name: str, ntp_host: str, ntp_port: int,
                 c2s: bytes, s2c: bytes, cookies: tuple[bytes, ...] | list[bytes],
                 established: float | None = None, certificate: str = "",
                 not_after: datetime | None = None):
        if len(c2s) != KEY_LEN or len(s2c) != KEY_LEN:
            raise ValueError(f"NTS keys are {KEY_LEN} bytes")
        self.ke_host, self.ke_port, self.name = ke_host, ke_port, name
        self.ntp_host, self.ntp_port = ntp_host, ntp_port
        self.session_id = secrets.token_hex(4)  # names the session in traces; no key in it
        self.established = time.monotonic() if established is None else established
        self.nak = False
        # The server's certificate as verified: its subject and names, and its expiry (doctor).
        self.certificate, self.not_after = certificate, not_after
        self._c2s, self._s2c = c2s, s2c
        self._cookies: deque[bytes] = deque(cookies[:MAX_COOKIES], maxlen=MAX_COOKIES)

    def __repr__(self) -> str:
        return (f"NtsSession(id={self.session_id}, ke={self.ke_host}:{self.ke_port}, "
                f"ntp={self.ntp_host}:{self.ntp_port}, cookies={len(self._cookies)})")

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an NtsSession holds keys: it is not pickled")

    @property
    def cookies_left(self) -> int:
        return len(self._cookies)

    def rekey_reason(self, now: float | None = None) -> str | None:
        """Why new keys are needed now (None: the session is usable)."""
        if self.nak:
            return "NTS NAK: the server no longer knows our cookies' key"
        if not self._cookies:
            return "cookies exhausted"
        if (time.monotonic() if now is None else now) - self.established > REFRESH_S:
            return f"session older than {REFRESH_S / 86400:g} days"
        return None

    def request(self, xmt_ts: int, header: bytes | None = None) -> tuple[bytes, Pending]:
        """One authenticated client request with transmit timestamp `xmt_ts` (or the given
        48-byte header), spending one cookie and asking for as many as the jar misses."""
        if not self._cookies:
            raise NtsError("cookies exhausted", "new key establishment needed")
        cookie = self._cookies.popleft()
        want = min(MAX_COOKIES - len(self._cookies),
                   max(1, MAX_TOTAL_COOKIE_BYTES // (len(cookie) + 4)))
        if header is None:
            header = NtpPacket(0, 4, 3, 0, 0, 0, 0, 0, b"\0\0\0\0", 0, 0, 0, xmt_ts).encode()
        uid = secrets.token_bytes(UID_LEN)
        pkt = build_request(header, c2s=self._c2s, uid=uid, cookie=cookie,
                            placeholders=want - 1, nonce=secrets.token_bytes(NONCE_LEN))
        return pkt, Pending(xmt_ts, uid)

    def accept(self, data: bytes, pending: Pending) -> NtsReply:
        """Verify a reply to `pending` (wire.nts.verify_reply) and keep its cookies. Raises
        NtsError; an NtsNak also marks the session for new keys."""
        try:
            reply = verify_reply(data, s2c=self._s2c, uid=pending.uid, xmt_ts=pending.xmt_ts)
        except NtsNak:
            self.nak = True
            raise
        self._cookies.extend(reply.cookies[:MAX_COOKIES - len(self._cookies)])
        return reply


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _wait(sock: socket.socket, write: bool, deadline: float, what: str) -> None:
    left = deadline - time.monotonic()
    if left > 0:
        r, w, _ = select.select([] if write else [sock], [sock] if write else [], [], left)
        if r or w:
            return
    raise KeError("timeout", f"no answer within the NTS-KE time limit ({what})")


def _io(fn: Callable[[], T], sock: socket.socket, deadline: float, what: str) -> T:
    while True:
        try:
            return fn()
        except SSL.WantReadError:
            _wait(sock, False, deadline, what)
        except SSL.WantWriteError:
            _wait(sock, True, deadline, what)


def _cert_text(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return f"certificate of {cert.subject.rfc4514_string()} (names {names or 'none'})"


def _verify_failure(code: int, depth: int, cert: x509.Certificate, ca: str) -> KeError:
    what = _cert_text(cert) + (f" at chain depth {depth}" if depth else "")
    if code == _V.ERR_CERT_HAS_EXPIRED:
        return KeError("expired", f"{what} expired on "
                                  f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    if code == _V.ERR_CERT_NOT_YET_VALID:
        return KeError("expired", f"{what} is not valid before "
                                  f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    if code in _UNTRUSTED:
        return KeError("untrusted", f"{what} is not signed by a CA trusted here ({ca})")
    return KeError("certificate", f"{what} failed verification (OpenSSL X509 error {code})")


def _tls_failure(e: SSL.Error) -> KeError:
    reasons = " ".join(str(r[-1]) for r in e.args[0]) if e.args and isinstance(
        e.args[0], list) else str(e)
    if "no application protocol" in reasons:
        return KeError("alpn", "the server refused ALPN ntske/1: it offers no NTS-KE")
    if "protocol version" in reasons or "unsupported protocol" in reasons:
        return KeError("tls", "the server does not speak TLS 1.3 (NTS-KE needs it)")
    if "wrong version number" in reasons or "packet length too long" in reasons:
        return KeError("tls", "the server does not speak TLS on this port")
    return KeError("tls", f"TLS handshake failed: {reasons or e!r}")


def key_exchange(host: str, port: int = NTS_KE_PORT, *, name: str | None = None,
                 ca_file: str | None = None, ntp_port: int = NTP_PORT,
                 timeout_s: float = KE_TIMEOUT_S) -> NtsSession:
    """One NTS-KE session with `host`:`port` (blocking; run it in a thread from asyncio).
    `name`: the name the certificate must carry (default `host`); `ca_file`: PEM file of
    trusted CAs (default: the system's); `ntp_port`: the NTPv4 port when the server names
    none. A KeError's message starts with "NTS-KE HOST:PORT: "."""
    try:
        return _key_exchange(host, port, name or host, ca_file, ntp_port, timeout_s)
    except KeError as e:
        raise KeError(e.cause, f"NTS-KE {host}:{port}: {e}") from None


def _key_exchange(host: str, port: int, name: str, ca_file: str | None, ntp_port: int,
                  timeout_s: float) -> NtsSession:
    ca_text = ca_file or "the system's CA store"
    deadline = time.monotonic() + timeout_s
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_alpn_protos([ALPN])
    try:
        if ca_file:
            ctx.load_verify_locations(ca_file)
        else:
            ctx.set_default_verify_paths()
    except SSL.Error as e:
        raise KeError("config", f"cannot load CA file {ca_file}: {e}") from None
    failures: list[KeError] = []

    def check(_c: SSL.Connection, cert: crypto.X509, code: int, depth: int, ok: int) -> bool:
        if not ok and not failures:
            failures.append(_verify_failure(code, depth, cert.to_cryptography(), ca_text))
        return bool(ok)

    ctx.set_verify(SSL.VERIFY_PEER, check)
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError:
        raise KeError("timeout", f"no TCP connection within {timeout_s:g} s")\
            from None
    except OSError as e:
        raise KeError("connect", f"cannot connect: {e.strerror or e}") from None
    try:
        sock.setblocking(False)
        conn = SSL.Connection(ctx, sock)
        if not _is_ip(name):
            conn.set_tlsext_host_name(name.encode("idna"))
        conn.set_connect_state()
        try:
            _io(conn.do_handshake, sock, deadline, "TLS handshake")
        except SSL.SysCallError:
            raise KeError("tls", "the server closed the connection during the TLS handshake") \
                from None
        except SSL.Error as e:
            raise (failures[0] if failures else _tls_failure(e)) from None
        if conn.get_protocol_version_name() != "TLSv1.3":  # set_min_proto_version ensures it
            raise KeError("tls", f"negotiated {conn.get_protocol_version_name()}, not TLS 1.3")
        if conn.get_alpn_proto_negotiated() != ALPN:
            raise KeError("alpn", "the server did not agree to ALPN ntske/1: it offers no "
                                  "NTS-KE on this port")
        cert = conn.get_peer_certificate(as_cryptography=True)
        if cert is None:
            raise KeError("certificate", "the server sent no certificate")
        try:
            if _is_ip(name):
                verify_certificate_ip_address(cert, name)
            else:
                verify_certificate_hostname(cert, name)
        except (VerificationError, CertificateError):
            raise KeError("name", f"{_cert_text(cert)} is not for {name}") from None
        req = ke_request()
        sent = 0
        while sent < len(req):
            sent += _io(partial(conn.send, req[sent:]), sock, deadline, "sending the request")
        buf = b""
        while True:
            try:
                chunk = _io(partial(conn.recv, 16384), sock, deadline, "reading the answer")
            except (SSL.ZeroReturnError, SSL.SysCallError):
                chunk = b""
            if not chunk:
                raise KeError("protocol", f"the server closed the connection after "
                                          f"{len(buf)} bytes, before End of Message")
            buf += chunk
            if len(buf) > MAX_KE_RESPONSE:
                raise KeError("protocol", f"NTS-KE answer longer than {MAX_KE_RESPONSE} bytes")
            try:
                if ke_records(buf)[1] is not None:
                    break
            except NtsError as e:
                raise KeError("protocol", str(e)) from None
        try:
            answer = decode_ke_response(buf)
        except NtsError as e:
            raise KeError("refused" if e.reason == KE_REFUSED else "protocol",
                          str(e)) from None
        c2s = conn.export_keying_material(EXPORTER_LABEL, KEY_LEN, exporter_context(False))
        s2c = conn.export_keying_material(EXPORTER_LABEL, KEY_LEN, exporter_context(True))
        try:
            conn.shutdown()
        except SSL.Error:
            pass  # the server may have closed first; the answer is complete
    finally:
        sock.close()
    return NtsSession(ke_host=host, ke_port=port, name=name, ntp_host=answer.server or host,
                      ntp_port=answer.port or ntp_port, c2s=c2s, s2c=s2c,
                      cookies=answer.cookies, certificate=_cert_text(cert),
                      not_after=cert.not_valid_after_utc)

