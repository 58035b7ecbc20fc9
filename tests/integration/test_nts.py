"""NTS with real chronyd servers on loopback (issue 15): key establishment over TLS 1.3 against
each server's own self-signed certificate, authenticated NTPv4 exchanges with our codec, a UDP
proxy that alters or strips replies, bad certificates, and a server whose keys change."""

from __future__ import annotations

import pytest

from tests.integration.nts_servers import (
    UdpProxy,
    exchange,
    make_cert,
    nts_servers,  # noqa: F401 - fixture
)
from timewatch.sources.nts_ke import KeError, key_exchange
from timewatch.wire import nts
from timewatch.wire.nts import NtsError, NtsNak

pytestmark = pytest.mark.integration

# Loopback round trip and chronyd's own stamping: an honest server's offset stays far below this.
OFFSET_TOLERANCE_S = 0.005
# Where the fields of chronyd's reply start: its header, our unique identifier echoed (4 + 32
# bytes), then the authenticator: header, nonce and ciphertext lengths, the nonce.
UID_AT = 48
AUTH_AT = UID_AT + 36
NONCE_AT = AUTH_AT + 8


def ke(server, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("ca_file", str(server.cert))
    return key_exchange(server.host, server.ke_port, **kw)


def test_key_exchange_and_authenticated_exchanges(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    session = ke(srv)
    # chronyd serves NTP off port 123, so its answer names the port (record 7).
    assert (session.ntp_host, session.ntp_port) == (srv.host, srv.port)
    assert session.cookies_left == 8 and session.rekey_reason() is None
    for _ in range(3):
        reply, offset = exchange(session)
        assert abs(offset) < OFFSET_TOLERANCE_S
        assert reply.packet.stratum == 2 and len(reply.cookies) == 1
        assert session.cookies_left == 8


def test_placeholders_refill_the_jar(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    session = ke(srv)
    for i in range(5):
        session.request(i)  # sent nowhere: five replies lost
    assert session.cookies_left == 3
    reply, _ = exchange(session)
    assert len(reply.cookies) == 6 and session.cookies_left == 8


def test_liar_is_authenticated_and_off_by_its_lie(nts_servers):  # noqa: F811
    honest, liar = nts_servers(2, liars={1: "+2.5s"})
    offsets = [exchange(ke(s))[1] for s in (honest, liar)]
    assert abs(offsets[0]) < OFFSET_TOLERANCE_S
    assert abs(offsets[1] - 2.5) < 0.05  # NTS authenticates the server, not its clock


@pytest.mark.parametrize("where,reason", [
    (lambda r: 40, nts.AUTH_FAILED),  # transmit timestamp in the header
    (lambda r: 1, nts.AUTH_FAILED),  # stratum
    (lambda r: UID_AT + 4 + 7, nts.UID_MISMATCH),  # our unique identifier, echoed
    (lambda r: len(r) - 20, nts.AUTH_FAILED),  # the encrypted cookies
    (lambda r: NONCE_AT + 2, nts.AUTH_FAILED),  # the server's nonce
    (lambda r: AUTH_AT + 7, nts.MALFORMED),  # the ciphertext length
])
def test_one_flipped_byte_fails(nts_servers, where, reason):  # noqa: F811
    (srv,) = nts_servers(1)
    session = ke(srv)

    def flip(b: bytes) -> bytes:
        i = where(b)
        return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]

    with UdpProxy((srv.host, srv.port), flip) as proxy:
        with pytest.raises(NtsError) as ei:
            exchange(session, proxy.addr)
    assert ei.value.reason == reason, ei.value
    assert len(proxy.replies) == 1 and len(proxy.replies[0]) > 48
    assert exchange(session)[0].packet.stratum == 2  # the next genuine reply is used


def test_reply_stripped_of_extension_fields_is_a_downgrade(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    session = ke(srv)
    with UdpProxy((srv.host, srv.port), lambda b: b[:48]) as proxy:
        with pytest.raises(NtsError) as ei:
            exchange(session, proxy.addr)
    assert ei.value.reason == nts.DOWNGRADE


def test_reply_without_authenticator_is_a_downgrade(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    session = ke(srv)
    with UdpProxy((srv.host, srv.port), lambda b: b[:AUTH_AT]) as proxy:
        with pytest.raises(NtsError) as ei:
            exchange(session, proxy.addr)
    assert ei.value.reason == nts.DOWNGRADE


def test_wrong_ca(nts_servers, tmp_path):  # noqa: F811
    (srv,) = nts_servers(1)
    other, _ = make_cert(tmp_path, [srv.host], stem="other-ca")
    with pytest.raises(KeError) as ei:
        ke(srv, ca_file=str(other))
    assert ei.value.cause == "untrusted"
    assert f"NTS-KE {srv.host}:{srv.ke_port}" in str(ei.value) and str(other) in str(ei.value)


def test_wrong_name(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    with pytest.raises(KeError) as ei:
        ke(srv, name="127.0.0.99")
    assert ei.value.cause == "name"
    assert "127.0.0.99" in str(ei.value) and srv.host in str(ei.value)


def test_expired_certificate(nts_servers, tmp_path):  # noqa: F811
    host = "127.0.0.111"  # the first server's address
    d = tmp_path / "expired"
    d.mkdir()
    (srv,) = nts_servers(1, certs={0: make_cert(d, [host], expired=True)})
    assert srv.host == host
    with pytest.raises(KeError) as ei:
        ke(srv)
    assert ei.value.cause == "expired" and "expired on" in str(ei.value)


def test_server_without_nts(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    with pytest.raises(KeError) as ei:
        key_exchange(srv.host, srv.port, ca_file=str(srv.cert), timeout_s=2)  # the NTP port
    assert ei.value.cause == "connect" and "refused" in str(ei.value).lower()


def test_server_with_new_keys_naks_old_cookies_and_new_ke_works(nts_servers):  # noqa: F811
    (srv,) = nts_servers(1)
    old = ke(srv)
    exchange(old)
    srv.restart(new_keys=False)
    exchange(old)  # keys kept in ntsdumpdir: the old cookies still work
    srv.restart(new_keys=True)
    with pytest.raises(NtsNak) as ei:
        exchange(old)
    assert ei.value.reason == nts.NAK
    assert old.rekey_reason() is not None and "NAK" in (old.rekey_reason() or "")
    new = ke(srv)
    assert new.session_id != old.session_id
    reply, offset = exchange(new)
    assert abs(offset) < OFFSET_TOLERANCE_S

