"""Config: errors name file:line: key; secrets never show; defaults run."""

from __future__ import annotations

from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.config import ConfigError, describe, load
from timewatch.engine.params import RANGES, Detect

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


def test_influxdb_api_v1_or_v2_and_nothing_else(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, '[sinks.influxdb]\nurl = "http://127.0.0.1:1"\napi = "v1"\n'))
    assert cfg.influxdb and cfg.influxdb.api == "v1" and "(api v1: /write)" in describe(cfg)
    assert load(write(tmp_path, '[sinks.influxdb]\nurl = "http://x:1"\n')).influxdb.api == "v2"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r'sinks.influxdb.api: must be "v2" .* got \'v3\''):
        load(write(tmp_path, '[sinks.influxdb]\nurl = "http://x:1"\napi = "v3"\n'))


def test_default_config_without_file_has_several_ntp_groups() -> None:
    cfg = load(None)
    ntp = [s for s in cfg.sources if s.kind == "ntp"]
    assert len({s.group for s in ntp}) >= 4


# -- [detect] ranges and derived source ids (issue 18 #7) ----------------------------------------


def _detect_value(v: float, typ: type) -> str:
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if typ is int else repr(float(v))


def _detect_error(tmp: Path, key: str, value: str) -> str | None:
    try:
        load(write(tmp, f"[monitor]\nhost = \"h\"\n\n[detect]\n{key} = {value}\n"))
    except ConfigError as e:
        return str(e)
    return None


def test_ranges_cover_every_detect_key() -> None:
    assert set(RANGES) == set(Detect.keys())


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_detect_key_has_a_range_and_its_edges_hold(tmp_path: Path, key: str) -> None:
    """nan, inf and -inf are errors naming file:line:key; the range's edges are accepted (or the
    open lower edge refused), a step beyond either edge refused; the default is inside."""
    lo, hi, lo_open = RANGES[key]
    typ = Detect.keys()[key]
    assert (lo < getattr(Detect(), key) if lo_open else lo <= getattr(Detect(), key)) \
        and getattr(Detect(), key) <= hi
    bad = ["nan", "inf", "-inf"] if typ is float else []
    eps = 1 if typ is int else max(abs(lo), abs(hi), 1.0) * 1e-6
    bad += [_detect_value(hi + eps, typ), _detect_value(lo - eps, typ)]
    good = [_detect_value(hi, typ)]
    (bad if lo_open else good).append(_detect_value(lo, typ))
    if lo_open:
        good.append(_detect_value(lo + (1 if typ is int else min(hi, 1.0) * 1e-6), typ))
    # A confirmation count is checked against its window too.
    if key == "pps_step_confirm":
        good = [v for v in good if int(v) <= Detect().pps_step_window]
    if key == "pps_step_window":
        good = [v for v in good if int(v) >= Detect().pps_step_confirm]
    for v in bad:
        err = _detect_error(tmp_path, key, v)
        assert err is not None and err.startswith(f"timewatch.toml:5: detect.{key}: must be "), \
            (v, err)
    for v in good:
        assert _detect_error(tmp_path, key, v) is None, v


def test_confirm_may_not_exceed_its_window(tmp_path: Path) -> None:
    err = _detect_error(tmp_path, "pps_step_confirm", "6")
    assert err and "pps_step_confirm (6) must not exceed pps_step_window (5)" in err


@pytest.mark.parametrize("toml", [
    # The values: each passed check-config, then crashed on every observation (the
    # first three) or accused every honest source (nan).
    "[detect]\nsnapshot_interval_s = 0\n", "[detect]\naging_ppm = inf\n",
    "[detect]\nstale_polls = inf\n", "[detect]\ndrift_cusum_h = nan\n"])
def test_check_config_refuses_what_would_crash_the_engine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str) -> None:
    key = toml.split("\n")[1].split(" =")[0]
    assert main(["check-config", str(write(tmp_path, toml))]) == 2
    assert f"timewatch.toml:2: detect.{key}: must be " in capsys.readouterr().err


@pytest.mark.parametrize("first,second", [(0, 1), (1, 0)])
def test_an_id_taken_by_a_derived_source_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], first: int, second: int) -> None:
    """An NTP source `g-pps` beside gpsd `g` (which adds `g-pps`) was silently replaced by
    gpsd's PPS tracker; in either order it is now an error naming the later source's line."""
    srcs = ['[[sources]]\nid = "g-pps"\nkind = "ntp"\nserver = "127.0.0.1"\n',
            '[[sources]]\nid = "g"\nkind = "gpsd"\n']
    p = write(tmp_path, srcs[first] + "\n" + srcs[second])
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    line = 7 if first == 0 else 6  # the id line of the later source
    assert f"timewatch.toml:{line}: sources[1].id: source id 'g-pps' is taken twice" in err, err
    assert "gpsd source 'g' (it adds 'g-pps')" in err and "ntp source 'g-pps'" in err


def test_run_refuses_a_bad_detect_value_before_starting(tmp_path: Path) -> None:
    import subprocess
    import sys

    p = write(tmp_path, f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n[http]\nlisten = ""\n'
                        "[detect]\nsnapshot_interval_s = 0\n")
    r = subprocess.run([sys.executable, "-m", "timewatch.cli", "run", "-c", str(p),
                        "--duration", "5"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "timewatch.toml:6: detect.snapshot_interval_s: must be >= 0.1" in r.stderr
