"""The README documents every alert code the engine can raise and every [detect] key."""

from __future__ import annotations

import re
from dataclasses import fields

from tests.conftest import ROOT
from timewatch.engine.params import Detect

README = (ROOT / "README.md").read_text()
# The first argument of an alert assertion: assert_("code", ...) or a detector's _assert("code", ...)
RAISE = re.compile(r"(?:assert_|_assert)\(\s*[\"']([a-z]+\.[a-z_0-9]+)[\"']")


def raised_codes() -> set[str]:
    codes: set[str] = set()
    for p in (ROOT / "timewatch" / "engine").rglob("*.py"):
        codes |= set(RAISE.findall(p.read_text()))
    return codes


def test_every_raised_alert_code_is_in_the_readme_table() -> None:
    codes = raised_codes()
    assert {"source.falseticker", "gnss.cn0_anomaly", "time.drift", "pps.missing"} <= codes
    missing = sorted(c for c in codes if f"| `{c}` |" not in README)
    assert not missing, f"alert codes raised but not in README's table: {missing}"


def test_every_detect_key_is_documented_in_the_readme() -> None:
    missing = [f.name for f in fields(Detect) if f"| `{f.name}` |" not in README]
    assert not missing, f"[detect] keys not in README: {missing}"
