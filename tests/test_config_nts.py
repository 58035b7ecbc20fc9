"""Config of `nts` sources and `[vote] auth_mode`: what check-config accepts and how it says
what is wrong (file:line: key: what)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.nts_servers import make_cert
from timewatch.cli import main
from timewatch.config import ConfigError, describe, load


def write(tmp: Path, text: str) -> Path:
    p = tmp / "timewatch.toml"
    p.write_text(text)
    return p


def nts(extra: str = "", ca: str | None = None) -> str:
    return ('[[sources]]\nid = "ptb"\nkind = "nts"\nserver = "ptbtime1.ptb.de"\n'
            + (f'ca_file = "{ca}"\n' if ca else "") + extra)


def test_nts_source_loads_and_check_config_says_what_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crt, _ = make_cert(tmp_path, ["ca.example"])
    p = write(tmp_path, nts('port = 4461\nntp_port = 1123\nserver_name = "ptb.example"\n'
                            'poll_s = 16\n', str(crt)) + '[vote]\nauth_mode = "prefer"\n')
    cfg = load(p)
    (s,) = cfg.sources
    assert (s.kind, s.server, s.port, s.poll_s) == ("nts", "ptbtime1.ptb.de", 4461, 16.0)
    assert s.options == {"ntp_port": 1123, "server_name": "ptb.example", "ca_file": str(crt)}
    assert cfg.auth_mode == "prefer"
    assert cfg.header().sources["ptb"].kind == "nts"
    assert main(["check-config", str(p)]) == 0
    out = capsys.readouterr().out
    assert (f"source ptb: nts, group ptb: NTS-KE ptbtime1.ptb.de:4461 (certificate for "
            f"ptb.example, trusted CAs from {crt}), poll 16 s") in out
    assert "vote: auth_mode prefer" in out


def test_defaults_port_4460_system_cas_and_auth_mode_mix(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, nts()))
    assert cfg.auth_mode == "mix" and cfg.sources[0].port is None
    assert "NTS-KE ptbtime1.ptb.de:4460 (certificate for ptbtime1.ptb.de, trusted CAs from " \
           "the system's CA store)" in describe(cfg)


@pytest.mark.parametrize("extra,line,key,what", [
    ("port = 0\n", 5, "sources[0].port", "must be between 1 and 65535, got 0"),
    ("port = 65536\n", 5, "sources[0].port", "must be between 1 and 65535"),
    ("ntp_port = 0\n", 5, "sources[0].ntp_port", "must be between 1 and 65535"),
    ('server_name = "a b"\n', 5, "sources[0].server_name", "without spaces"),
    ('server_name = ""\n', 5, "sources[0].server_name", "a host name or address"),
    ("nts_port = 4460\n", 5, "sources[0].nts_port", "unknown key"),
    ("poll_s = 0.5\n", 5, "sources[0].poll_s", "between 1 and 1024"),
])
def test_nts_key_errors_name_file_line_and_key(tmp_path: Path, extra: str, line: int, key: str,
                                               what: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, nts(extra)))
    assert str(e.value).startswith(f"timewatch.toml:{line}: {key}: "), str(e.value)
    assert what in str(e.value)


def test_ca_file_must_be_a_readable_pem_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, nts(ca=str(tmp_path / "missing.pem"))))
    assert str(e.value).startswith("timewatch.toml:5: sources[0].ca_file: cannot read CA file")
    assert "No such file" in str(e.value)
    with pytest.raises(ConfigError, match="Is a directory"):
        load(write(tmp_path, nts(ca=str(tmp_path))))
    _, key = make_cert(tmp_path, ["x"])
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        load(write(tmp_path, nts(ca=str(key))))  # a private key is not a CA
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        load(write(tmp_path, nts(ca=str(tmp_path / "empty.pem"))))


def test_ntp_source_takes_no_nts_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sources\\[0\\].ca_file: unknown key"):
        load(write(tmp_path, '[[sources]]\nid = "a"\nkind = "ntp"\nserver = "x"\n'
                             'ca_file = "/etc/ssl/certs/ca-certificates.crt"\n'))


@pytest.mark.parametrize("vote,what", [
    ('[vote]\nauth_mode = "trust"\n', "vote.auth_mode: must be one of require, prefer, mix, "
                                      "ignore, got 'trust'"),
    ('[vote]\nauth_mode = 1\n', "vote.auth_mode: must be str"),
    ('[vote]\nselect = "x"\n', "vote.select: unknown key"),
])
def test_vote_auth_mode_errors(tmp_path: Path, vote: str, what: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, nts() + vote))
    assert what in str(e.value) and str(e.value).startswith("timewatch.toml:")


def test_require_without_nts_source_warns(tmp_path: Path) -> None:
    plain = '[[sources]]\nid = "a"\nkind = "ntp"\nserver = "x"\n'
    cfg = load(write(tmp_path, plain + '[vote]\nauth_mode = "require"\n'))
    assert any("require with no authenticated (nts) source" in w for w in cfg.warnings)
    cfg = load(write(tmp_path, nts() + '[vote]\nauth_mode = "require"\n'))
    assert cfg.warnings == ()
