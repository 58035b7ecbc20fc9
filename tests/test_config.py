"""Config: errors name file:line: key; secrets never show; defaults run."""

from __future__ import annotations

from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.config import ConfigError, describe, load

GOOD = """\
[monitor]
host = "pi-lab-1"
state_dir = "{state}"

[[sources]]
id = "gnss0"
kind = "gnss"
device = "/dev/serial0"
position = [47.3769, 8.5417, 408.0]

[[sources]]
id = "pps0"
kind = "pps"
device = "/dev/pps0"
label_from = "gnss0"

[[sources]]
id = "cloudflare"
kind = "ntp"
server = "time.cloudflare.com"
poll_s = 64

[sinks.influxdb]
url = "http://127.0.0.1:8086"
token = "sekrit-influx-token"

[[sinks.webhook]]
url = "https://hooks.example.net/timewatch/abc"
secret = "whsec_c2Vrcml0LXNpZ25pbmcta2V5"

[detect]
hold_down_s = 60
"""


def write(tmp: Path, text: str) -> Path:
    p = tmp / "timewatch.toml"
    p.write_text(text)
    return p


def test_good_config_loads_with_groups_and_detect(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, GOOD.format(state=tmp_path)))
    assert [s.id for s in cfg.sources] == ["gnss0", "pps0", "cloudflare"]
    assert cfg.sources[1].group == "gnss" and cfg.sources[2].group == "cloudflare"
    assert cfg.detect.hold_down_s == 60.0
    assert cfg.webhooks[0].host == "hooks.example.net"
    h = cfg.header()
    assert h.sources["pps0"].label_from == "gnss0"


@pytest.mark.parametrize("bad,line,key,what", [
    ('[[sources]]\nid = "a"\nkind = "ntp"\nserver = "x"\n\n[[sources]]\nid = "b"\nkind = "ntp"\n'
     'server = "y"\npoll_s = 0\n', 10, "sources[1].poll_s", "must be between 1 and 1024, got 0"),
    ('[monitor]\nhots = "x"\n', 2, "monitor.hots", "unknown key"),
    ('[[sources]]\nid = "a"\nkind = "radio"\n', 3, "sources[0].kind", "must be one of"),
    ('[[sources]]\nid = "a"\nkind = "ntp"\n', 1, "sources[0].server", "required"),
    ('[http]\nlisten = "nonsense"\n', 2, "http.listen", "HOST:PORT"),
    ('[detect]\nhold_down_s = "long"\n', 2, "detect.hold_down_s", "must be float"),
    ('[[sources]]\nid = "p"\nkind = "pps"\ndevice = "/dev/pps0"\nlabel_from = "nope"\n', 5,
     "sources[0].label_from", "no source with id 'nope'"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, bad: str, line: int, key: str,
                                       what: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, bad))
    assert str(e.value).startswith(f"timewatch.toml:{line}: {key}: "), str(e.value)
    assert what in str(e.value)


def test_syntax_error_has_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, "[monitor]\nhost = \n"))
    assert str(e.value).startswith("timewatch.toml:2: ")


def test_check_config_exits_2_on_error_and_never_prints_secrets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, GOOD.format(state=tmp_path))
    assert main(["check-config", str(p)]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    for secret in ("sekrit-influx-token", "whsec_c2Vrcml0LXNpZ25pbmcta2V5", "/timewatch/abc"):
        assert secret not in text
    assert "inline secret" in text and "hooks.example.net" in text
    bad = write(tmp_path, "[monitor]\nbogus = 1\n")
    assert main(["check-config", str(bad)]) == 2
    assert "timewatch.toml:2: monitor.bogus: unknown key" in capsys.readouterr().err


def test_secret_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tok").write_text("file-token\n")
    (tmp_path / "tok").chmod(0o600)
    monkeypatch.setenv("TW_TOKEN", "env-secret")
    cfg = load(write(tmp_path, f'[sinks.influxdb]\nurl = "http://127.0.0.1:1"\n'
                               f'token_file = "{tmp_path / "tok"}"\n'
                               '[[sinks.webhook]]\nurl = "http://127.0.0.1:2/x"\n'
                               'secret_env = "TW_TOKEN"\n'))
    assert cfg.influxdb and cfg.influxdb.token and cfg.influxdb.token.reveal() == "file-token"
    assert cfg.webhooks[0].secret and cfg.webhooks[0].secret.reveal() == "env-secret"
    assert "env-secret" not in repr(cfg) and "file-token" not in describe(cfg)
    with pytest.raises(ConfigError, match="TW_MISSING is not set"):
        load(write(tmp_path, '[sinks.influxdb]\nurl = "http://x:1"\ntoken_env = "TW_MISSING"\n'))


def test_default_config_without_file_has_several_ntp_groups() -> None:
    cfg = load(None)
    ntp = [s for s in cfg.sources if s.kind == "ntp"]
    assert len({s.group for s in ntp}) >= 4
