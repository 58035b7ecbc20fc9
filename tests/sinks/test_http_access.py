"""Who may use the status API (docs/http.md): bound elsewhere than 127.0.0.1 the API needs a bearer
token and TLS or refuses to start; with both, no token is 401 and the right one 200, over TLS that
`curl --cacert` verifies (a certificate for 127.0.0.2 made here), /metrics included (parsed by
prometheus_client); /healthz may be left open; secret files with loose permissions are refused;
systemd credentials stand in for files; check-config says which applies."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, need_binary
from timewatch import cli
from timewatch.commands.status import from_http
from timewatch.config import Config, ConfigError, describe, parse
from timewatch.records import Sample, Snapshot, SourceStatus
from timewatch.sinks.http import HttpSink

HOST = "127.0.0.2"
TOKEN = "tw-api-7c1e0f9a3b"
T = 1_764_160_950_000_000_000


@dataclass
class Pki:
    ca: Path  # what a client trusts
    cert: Path  # the API's certificate, for 127.0.0.2, signed by the CA
    key: Path  # its private key, 0600
    token: Path  # the bearer token, 0600


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("timewatch test CA"))
          .issuer_name(_name("timewatch test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(HOST)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    p = Pki(d / "ca.pem", d / "api.pem", d / "api.key", d / "api.token")
    p.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    p.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    p.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    p.token.write_text(TOKEN + "\n")
    for f in (p.key, p.token):
        f.chmod(0o600)
    return p


def http_table(pki: Pki, listen: str = f"{HOST}:0", **extra: object) -> dict[str, object]:
    return {"listen": listen, "token_file": str(pki.token), "cert_file": str(pki.cert),
            "key_file": str(pki.key), **extra}


def make_cfg(tmp: Path, http: dict[str, object]) -> Config:
    return parse({"monitor": {"state_dir": str(tmp), "host": "pi-lab-1"}, "http": http,
                  "sources": [{"id": "ntp1", "kind": "ntp", "server": "192.0.2.1",
                               "group": "g1"}]})


SNAP = Snapshot(T, (SourceStatus("ntp1", "ntp", "g1", "truechimer", "agrees", 0.001, 0.002,
                                 T),), True, 1, 1, 0.001, 0.002)


@pytest.fixture
def api(tmp_path: Path, pki: Pki) -> Iterator[HttpSink]:
    s = HttpSink(make_cfg(tmp_path, http_table(pki)), healthy_within_s=60)
    s.handle([Sample("ntp1", T, 0.001, 0.002), SNAP])
    try:
        yield s
    finally:
        s.close()


def curl(*args: str) -> tuple[int, str, str]:
    """(curl's exit code, HTTP status, body)."""
    exe = need_binary("curl")
    r = subprocess.run([exe, "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
                        *args], capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, code, body or r.stderr


# -- refusing to start -----------------------------------------------------------------------------
def test_bound_elsewhere_without_a_token_the_api_refuses_to_start(tmp_path: Path,
                                                                  pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"http.listen: 127.0.0.2:9470 is not 127.0.0.1, ::1 "
                                          r"or localhost: the API there needs a bearer token "
                                          r"\(token_file, token_env or token_credential\) and "
                                          r"TLS \(cert_file and key_file\), or insecure = true"):
        make_cfg(tmp_path, {"listen": f"{HOST}:9470"})
    with pytest.raises(ConfigError, match="needs TLS"):  # a token alone would travel in clear
        make_cfg(tmp_path, {"listen": f"{HOST}:9470", "token_file": str(pki.token)})
    with pytest.raises(ConfigError, match="needs a bearer token"):
        make_cfg(tmp_path, {"listen": f"{HOST}:9470", "cert_file": str(pki.cert),
                            "key_file": str(pki.key)})
    # `timewatch run` says so and exits 2 before it starts anything
    cfg = tmp_path / "tw.toml"
    cfg.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n[http]\n'
                   f'listen = "{HOST}:9470"\n')
    r = subprocess.run([sys.executable, "-m", "timewatch.cli", "run", "-c", str(cfg),
                        "--duration", "5"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2
    assert "tw.toml:4: http.listen: 127.0.0.2:9470 is not 127.0.0.1" in r.stderr
    assert not (tmp_path / "state").exists()  # nothing started


def test_insecure_true_serves_without_and_says_so(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, {"listen": f"{HOST}:0", "insecure": True})
    assert "insecure = true: served without a bearer token and TLS" in describe(cfg)
    s = HttpSink(cfg)
    try:
        with urllib.request.urlopen(f"http://{s.address}/status.json", timeout=5) as r:
            assert r.status == 200
    finally:
        s.close()


# -- token and TLS ---------------------------------------------------------------------------------
def test_no_token_is_401_the_right_one_200_over_tls_curl_verifies(api: HttpSink,
                                                                   pki: Pki) -> None:
    url = f"https://{api.address}/status.json"
    assert api.address.startswith(f"{HOST}:") and api.scheme == "https"
    rc, code, body = curl("--cacert", str(pki.ca), url)
    assert (rc, code) == (0, "401") and "Authorization: Bearer" in body
    rc, code, body = curl("--cacert", str(pki.ca), "-H", f"Authorization: Bearer {TOKEN}", url)
    assert (rc, code) == (0, "200")
    doc = json.loads(body)
    assert doc["host"] == "pi-lab-1" and doc["sources"][0]["verdict"] == "truechimer"
    for wrong in (TOKEN + "x", TOKEN[:-1], "", TOKEN.upper()):
        assert curl("--cacert", str(pki.ca), "-H", f"Authorization: Bearer {wrong}",
                    url)[1] == "401", wrong
    assert curl("--cacert", str(pki.ca), "-H", f"Authorization: Basic {TOKEN}", url)[1] == "401"
    # curl really verifies: without the CA it refuses the certificate (exit 60)
    rc, code, _ = curl("-H", f"Authorization: Bearer {TOKEN}", url)
    assert rc == 60 and code == "000"
    # and there is no plain HTTP on that port
    rc, code, _ = curl(f"http://{api.address}/status.json")
    assert code != "200"


def test_metrics_need_the_token_and_parse_as_prometheus_text(api: HttpSink, pki: Pki) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    url = f"https://{api.address}/metrics"
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(url, timeout=5, context=ctx)
    assert ei.value.code == 401 and ei.value.headers["WWW-Authenticate"].startswith("Bearer")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
        assert r.status == 200
        text = r.read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    verdict = [s for s in fams["timewatch_source_verdict"].samples if s.value == 1.0]
    assert [(s.labels["source"], s.labels["verdict"]) for s in verdict] == \
        [("ntp1", "truechimer")]
    assert fams["timewatch_consensus_quorum"].samples[0].value == 1.0
    assert curl("--cacert", str(pki.ca), url)[:2] == (0, "401")
    rc, code, body = curl("--cacert", str(pki.ca), "-H", f"Authorization: Bearer {TOKEN}", url)
    assert (rc, code) == (0, "200")
    assert {f.name for f in text_string_to_metric_families(body)} == set(fams)


def test_healthz_needs_the_token_unless_healthz_public(tmp_path: Path, pki: Pki) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    for public, want in ((False, 401), (True, 200)):
        s = HttpSink(make_cfg(tmp_path, http_table(pki, healthz_public=public)),
                     healthy_within_s=60)
        s.handle([SNAP])
        try:
            try:
                with urllib.request.urlopen(f"https://{s.address}/healthz", timeout=5,
                                            context=ctx) as r:
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            assert code == want, public
            # the rest stays closed either way
            with pytest.raises(urllib.error.HTTPError) as ei:
                urllib.request.urlopen(f"https://{s.address}/status.json", timeout=5,
                                       context=ctx)
            assert ei.value.code == 401
        finally:
            s.close()


def test_a_client_stalling_its_handshake_holds_no_one_up(api: HttpSink, pki: Pki) -> None:
    host, port = api.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5):  # connects, says nothing
        t0 = time.monotonic()
        rc, code, _ = curl("--cacert", str(pki.ca), "-H", f"Authorization: Bearer {TOKEN}",
                           f"https://{api.address}/healthz")
        assert (rc, code) == (0, "200") and time.monotonic() - t0 < 5


def test_status_command_uses_the_token_and_the_certificate(api: HttpSink, pki: Pki) -> None:
    cfg = make_cfg(Path(pki.ca.parent), http_table(pki, listen=api.address))
    doc = from_http(api.address, http_access=cfg.http_access)
    assert doc is not None and doc["origin"] == f"https://{api.address}/status.json"
    assert from_http(api.address) is None  # without them: nothing usable answers


# -- secrets -----------------------------------------------------------------------------------------
def test_a_token_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path,
                                                                 pki: Pki) -> None:
    loose = tmp_path / "token"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match=f"http.token_file: {loose} is accessible by group or "
                                          f"others \\(mode 0644\\).*chmod 600 {loose}"):
        make_cfg(tmp_path, http_table(pki, token_file=str(loose)))
    key = tmp_path / "api.key"
    key.write_bytes(pki.key.read_bytes())
    key.chmod(0o640)
    with pytest.raises(ConfigError, match=f"http.key_file: .*mode 0640.*chmod 600 {key}"):
        make_cfg(tmp_path, http_table(pki, key_file=str(key)))
    for table in ({"webhook": [{"url": "http://127.0.0.1:1/", "secret_file": str(loose)}]},
                  {"influxdb": {"url": "http://127.0.0.1:1", "token_file": str(loose)}}):
        with pytest.raises(ConfigError, match="chmod 600"):
            parse({"monitor": {"state_dir": str(tmp_path)}, "sinks": table})
    loose.chmod(0o600)
    assert make_cfg(tmp_path, http_table(pki, token_file=str(loose))).http_access.token


def test_systemd_credentials_stand_in_for_files(tmp_path: Path, pki: Pki,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"  # what systemd makes for LoadCredential=
    creds.mkdir()
    (creds / "timewatch-http-token").write_text(TOKEN + "\n")
    (creds / "timewatch-http-tls-key").write_bytes(pki.key.read_bytes())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = make_cfg(tmp_path, {"listen": f"{HOST}:0", "token_credential": "timewatch-http-token",
                              "cert_file": str(pki.cert),
                              "key_credential": "timewatch-http-tls-key"})
    assert cfg.http_access.token is not None and cfg.http_access.token.reveal() == TOKEN
    assert cfg.http_access.key_file == str(creds / "timewatch-http-tls-key")
    assert "bearer token required (credential timewatch-http-token)" in describe(cfg)
    s = HttpSink(cfg)
    try:
        assert from_http(s.address, http_access=cfg.http_access) is not None
    finally:
        s.close()
    with pytest.raises(ConfigError, match="no credential nope in \\$CREDENTIALS_DIRECTORY"):
        make_cfg(tmp_path, {"listen": f"{HOST}:0", "token_credential": "nope",
                            "cert_file": str(pki.cert), "key_file": str(pki.key)})


# -- check-config ------------------------------------------------------------------------------------
def test_check_config_says_which_rules_apply(tmp_path: Path, pki: Pki,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def check(http: str) -> str:
        p = tmp_path / "tw.toml"
        p.write_text(f'[monitor]\nstate_dir = "{tmp_path}"\n[http]\n{http}')
        assert cli.main(["check-config", str(p)]) == 0
        return capsys.readouterr().out

    out = check('listen = "127.0.0.1:9470"\n')
    assert "http: http://127.0.0.1:9470 (local only: only this machine reaches it; no token " \
           "needed)" in out
    out = check(f'listen = "{HOST}:9470"\ntoken_file = "{pki.token}"\ncert_file = "{pki.cert}"\n'
                f'key_file = "{pki.key}"\nhealthz_public = true\n')
    assert (f"http: https://{HOST}:9470 (not local only: token and TLS required; bearer token "
            f"required (file {pki.token}), TLS with {pki.cert}, /healthz without the token)") in out
    assert TOKEN not in out
    out = check('listen = "0.0.0.0:9470"\ninsecure = true\n')
    assert "warning: http.listen 0.0.0.0:9470: listens on every interface of this machine" in out
    assert "NOT local only, insecure = true" in out
