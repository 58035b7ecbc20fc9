"""The golden gate: every scenario on two seeds replays to the recorded events, samples and
snapshots (tools/golden.py). A refactoring leaves them identical; a deliberate change in what the
engine says records new digests with `python tools/golden.py update` and says why in its commit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import golden  # noqa: E402


def test_every_scenario_replays_to_the_recorded_digests():
    want = json.loads(golden.GOLDEN.read_text())
    got = golden.compute()
    assert golden.diff(want, got) == []


def test_the_gate_sees_a_changed_event():
    """The gate is not blind: one changed digest is reported under its scenario."""
    want = json.loads(golden.GOLDEN.read_text())
    key = sorted(want)[0]
    changed = {**want, key: {**want[key], "events": "0:" + "0" * 32}}
    assert golden.diff(changed, want) == [f"{key}: recorded {changed[key]} now {want[key]}"]
