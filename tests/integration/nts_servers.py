"""Real chronyd NTS servers on loopback, their certificates, a tampering UDP proxy and a
blocking NTS exchange, for the NTS tests and the bench.

- `make_cert(dir, names, ...)`: a self-signed EC certificate (made with `cryptography`) whose
  subjectAltName holds the given IP addresses and DNS names; `expired=True` puts its validity
  in the past.
- `nts_servers` fixture: `start(n, liars=..., certs=...)` starts n chronyd, one per
  127.0.0.111, .112, ..., serving NTP and NTS-KE on ports free there (the kernel's choice) with its own
  certificate, key and `ntsdumpdir`; `NtsServer.restart(new_keys=True)` deletes the server keys
  chronyd saved and starts it again (every cookie it gave out is then unknown to it).
- `UdpProxy(upstream, mutate)`: forwards datagrams, passing each reply through `mutate`.
- `exchange(session, ...)`: one authenticated request/reply over UDP, and the clock offset.
Every process is stopped by its PID.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port, need_binary, need_root
from tests.integration.conftest import ChronyProc, _start, faketime_lib
from timewatch.sources.nts_ke import NtsSession
from timewatch.wire.ntp import ntp_to_unix_ns
from timewatch.wire.nts import NtsReply

# Ports and addresses of the NTS test servers: away from the plain NTP tests (127.0.0.11.., port
# 11123), the demo and the benches.
NTS_NTP_PORT = 11423
NTS_KE_PORT = 11460
FIRST_NTS_HOST = 111
REPLY_TIMEOUT_S = 2.0


def make_cert(d: Path, names: list[str], *, expired: bool = False,
              stem: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for `names` (IP addresses or DNS names) and its key, written
    as PEM to d/STEM.crt and d/STEM.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = ((now - dt.timedelta(days=60), now - dt.timedelta(days=2)) if expired
                  else (now - dt.timedelta(days=1), now + dt.timedelta(days=30)))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = d / f"{stem}.crt", d / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@dataclass
class NtsServer(ChronyProc):
    ke_port: int = NTS_KE_PORT
    cert: Path = Path()
    conf: Path = Path()
    chronyd: str = "chronyd"
    env: dict[str, str] | None = None

    def restart(self, new_keys: bool) -> None:
        """Stop chronyd and start it again; with `new_keys` its saved NTS server keys are
        deleted first, so it makes new ones and cannot read the cookies it gave out before."""
        self.stop()
        if new_keys:
            (self.dir / "nts" / "ntskeys").unlink()
        (self.dir / "chronyd.pid").unlink(missing_ok=True)
        self.proc = _start(self.chronyd, self.conf, self.dir, self.env or dict(os.environ))
        wait_listening(self.host, self.ke_port)


def wait_listening(host: str, port: int, timeout_s: float = 5.0) -> None:
    """Until a TCP connect to host:port succeeds (chronyd opens the NTS-KE port after its pid
    file)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def start_nts_server(chronyd: str, d: Path, host: str, *, fake: str | None = None,
                     lib: str = "", cert: tuple[Path, Path] | None = None,
                     ntp_port: int = NTS_NTP_PORT, ke_port: int = NTS_KE_PORT,
                     ntp_server: str | None = None) -> NtsServer:
    """One chronyd serving NTP and NTS-KE on `host`, files in `d`; `fake` (with libfaketime
    `lib`) makes it a liar; `cert` (certificate, key) replaces the self-signed one made for
    `host`; `ntp_server` is the NTPv4 server its KE answer names (chrony's `ntsntpserver`: a
    proxy's address). Returns once its NTS-KE port accepts connections."""
    (d / "nts").mkdir(parents=True)
    crt, key = cert or make_cert(d, [host])
    conf = d / "chronyd.conf"
    conf.write_text(
        f"port {ntp_port}\nbindaddress {host}\nallow 127.0.0.0/8\nlocal stratum 2\n"
        f"cmdport 0\npidfile {d}/chronyd.pid\ndriftfile {d}/drift\n"
        f"ntsserverkey {key}\nntsservercert {crt}\nntsport {ke_port}\n"
        f"ntsdumpdir {d}/nts\nntsprocesses 0\n"
        + (f"ntsntpserver {ntp_server}\n" if ntp_server else ""))
    env = dict(os.environ)
    if fake:
        env.update(LD_PRELOAD=lib, FAKETIME=fake)
    s = NtsServer(host, ntp_port, _start(chronyd, conf, d, env), d, fake, ke_port, crt, conf,
                  chronyd, env)
    try:
        wait_listening(host, ke_port)
    except OSError:
        s.stop()
        raise
    return s


@pytest.fixture
def nts_servers(tmp_path: Path) -> Iterator[Callable[..., list[NtsServer]]]:
    need_root()
    chronyd = need_binary("chronyd")
    started: list[NtsServer] = []

    def start(n: int, liars: dict[int, str] | None = None,
              certs: dict[int, tuple[Path, Path]] | None = None,
              ntp_servers: dict[int, str] | None = None) -> list[NtsServer]:
        liars = liars or {}
        lib = faketime_lib() if liars else ""
        out = []
        for i in range(n):
            host = f"127.0.0.{FIRST_NTS_HOST + len(started)}"
            s = start_nts_server(chronyd, tmp_path / f"nts-{host}", host, fake=liars.get(i),
                                 lib=lib, cert=(certs or {}).get(i),
                                 ntp_server=(ntp_servers or {}).get(i),
                                 ntp_port=free_port([host]),
                                 ke_port=free_port([host], socket.SOCK_STREAM))
            started.append(s)
            out.append(s)
        return out

    yield start
    for s in started:
        s.stop()


class UdpProxy:
    """A UDP relay on `listen` (default 127.0.0.1, a free port) to `upstream`; each reply goes
    through `mutate`, which returns the datagrams to send back in its place: bytes, a list of
    them, or None to drop it. One client at a time, as the tests use it."""

    def __init__(self, upstream: tuple[str, int],
                 mutate: Callable[[bytes], bytes | list[bytes] | None] = lambda b: b,
                 listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.upstream, self.mutate = upstream, mutate
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(upstream)
        self.replies: list[bytes] = []  # as the server sent them
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        self.up.settimeout(REPLY_TIMEOUT_S)
        while not self._stop:
            try:
                data, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.up.send(data)
            try:
                reply = self.up.recv(4096)
            except TimeoutError:
                continue
            self.replies.append(reply)
            out = self.mutate(reply)
            for d in [out] if isinstance(out, bytes) else out or []:
                self.sock.sendto(d, client)

    def close(self) -> None:
        self._stop = True
        self._t.join(2)
        self.sock.close()
        self.up.close()

    def __enter__(self) -> UdpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exchange(session: NtsSession, addr: tuple[str, int] | None = None,
             timeout_s: float = REPLY_TIMEOUT_S) -> tuple[NtsReply, float]:
    """One authenticated exchange with the session's NTPv4 server (or `addr`): the verified
    reply and the clock offset in seconds ((t2 - t1) + (t3 - t4)) / 2. Raises NtsError."""
    xmt = int.from_bytes(secrets.token_bytes(8), "big")
    pkt, pending = session.request(xmt)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout_s)
        u.connect(addr or (session.ntp_host, session.ntp_port))
        t1 = time.time_ns()
        u.send(pkt)
        data = u.recv(4096)
        t4 = time.time_ns()
    reply = session.accept(data, pending)
    t2 = ntp_to_unix_ns(reply.packet.rec_ts, t1)
    t3 = ntp_to_unix_ns(reply.packet.xmt_ts, t1)
    return reply, ((t2 - t1) + (t3 - t4)) / 2e9

