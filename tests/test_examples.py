"""The sample configs in examples/ pass `check-config` as shipped (no warning either), and the
optional sinks timewatch.toml shows commented out are valid once uncommented (with their secret
files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.config import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def test_there_are_examples() -> None:
    assert [p.name for p in EXAMPLES] == ["lab.toml", "timewatch.toml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_passes_check_config_as_shipped(path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"config {path}: OK\n") and "\nwarning: " not in out
    cfg = load(path)
    assert len({s.group for s in cfg.sources}) >= 4  # independent votes, as docs/threats.md asks


def test_the_sinks_timewatch_toml_shows_commented_out_are_valid(tmp_path: Path) -> None:
    path = ROOT / "examples" / "timewatch.toml"
    text = path.read_text()
    secrets = {p: tmp_path / Path(p).name for p in re.findall(r'"(/etc/timewatch/[^"]+)"', text)}
    for real, fake in secrets.items():
        fake.write_text("whsec_" + "QUJD" * 8 if "webhook" in real else "token")
        fake.chmod(0o600)  # a secret file others may read is refused (as ssh does)
        text = text.replace(real, str(fake))
    opened = re.sub(r"^# (\[|[a-z_]+ = )", r"\1", text, flags=re.M)
    p = tmp_path / path.name
    p.write_text(opened)
    cfg = load(p)
    assert cfg.influxdb is not None and cfg.influxdb.token is not None
    assert len(cfg.webhooks) == 1 and cfg.webhooks[0].secret is not None
