"""Live = replay (issue 14 item 6): a trace header records the `[detect]` keys the recording ran
with (those off their defaults, and the build-date floor of the GNSS date checks); `replay` and
`report` judge with them unless `--detect-from-config`; a key this build does not know, or a value
it refuses, is an error naming the key and the file. The live half (a real `timewatch run` with
non-default keys) is tests/test_run_record_replay.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from timewatch.cli import main
from timewatch.config import parse
from timewatch.engine.params import DATE_FLOOR_KEY, Detect, detect_keys
from timewatch.records import Header, SourceInfo
from timewatch.sim.scenarios import NS, Sim, SimTrace, Truth, write
from timewatch.trace import TraceError, TraceReader, TraceWriter

BUILD_FLOOR_S = Detect().gnss_not_before_unix_s  # 2026-11-01, this build's date
ARCHIVE_T0_NS = 1_780_272_000 * NS  # 2026-06-01: recorded before this build's floor
OLDER_FLOOR_S = 1_777_593_600.0  # 2026-05-01: the floor of the build that recorded it


def archive(created_ns: int = ARCHIVE_T0_NS) -> SimTrace:
    """Two minutes of GNSS + PPS + NTP from 2026-06-01, before this build's date floor."""
    sim = Sim("archive", 1, 120.0, t0_ns=ARCHIVE_T0_NS)
    sim.add_receiver()
    st = sim.build(Truth("archive", 1))
    return SimTrace(replace(st.header, created_ns=created_ns), st.observations, st.truth)


def replay_codes(trace: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    assert main(["replay", str(trace), *extra]) == 0
    out = capsys.readouterr().out
    return [json.loads(line)["code"] for line in out.splitlines() if line.strip()]


def with_header(tmp_path: Path, st: SimTrace, detect: dict[str, float | int]) -> Path:
    p = tmp_path / "t.jsonl"
    write(str(p), SimTrace(replace(st.header, detect=detect), st.observations, st.truth))
    return p


def test_config_header_records_non_default_keys_and_always_the_date_floor() -> None:
    cfg = parse({"detect": {"hold_down_s": 30, "falseticker_confirm": 3}}, "<t>")
    h = cfg.header(123)
    assert h.detect == {"falseticker_confirm": 3, DATE_FLOOR_KEY: BUILD_FLOOR_S,
                        "hold_down_s": 30.0}
    assert parse({}, "<t>").header(1).detect == {DATE_FLOOR_KEY: BUILD_FLOOR_S}
    assert detect_keys(Detect()) == {DATE_FLOOR_KEY: BUILD_FLOOR_S}


def test_header_detect_round_trips_and_the_reader_gives_the_recorded_thresholds(
        tmp_path: Path) -> None:
    h = Header("pi", 1_796_083_200 * NS, {"n": SourceInfo("ntp", "a")},
               {"hold_down_s": 30.0, "falseticker_confirm": 3, DATE_FLOOR_KEY: OLDER_FLOOR_S})
    p = tmp_path / "t.jsonl"
    TraceWriter(p, h).close()
    line = json.loads(p.read_text().splitlines()[0])
    assert line["detect"] == {"hold_down_s": 30.0, "falseticker_confirm": 3,
                              DATE_FLOOR_KEY: OLDER_FLOOR_S}
    r = TraceReader(p)
    assert r.header == h
    assert r.detect() == Detect(hold_down_s=30.0, falseticker_confirm=3,
                                gnss_not_before_unix_s=OLDER_FLOOR_S)


def test_a_header_without_detect_means_the_defaults(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    d = Header("pi", 1_796_083_200 * NS, {}).to_dict()
    assert "detect" not in d  # what older recordings and simulated traces have
    p.write_text(json.dumps(d) + "\n")
    assert TraceReader(p).detect() == Detect()


@pytest.mark.parametrize("detect,named", [
    ({"hold_down_sx": 30.0}, "detect.hold_down_sx: not a [detect] key of this timewatch "
                             "(did you mean hold_down_s?)"),
    ({"hold_down_s": -1.0}, "detect.hold_down_s: must be >= 0"),
    ({"falseticker_confirm": 2.5}, "detect.falseticker_confirm: must be an integer"),
    ({"pps_step_confirm": 9}, "detect.pps_step_confirm: 9 must not exceed pps_step_window"),
])
def test_a_key_this_build_refuses_is_an_error_naming_the_key_and_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], detect: dict[str, float | int],
        named: str) -> None:
    p = tmp_path / "t.jsonl"
    TraceWriter(p, Header("pi", 1, {}, detect)).close()
    with pytest.raises(TraceError) as ei:
        TraceReader(p).detect()
    assert f"{p}:1: header {named}" in str(ei.value)
    assert main(["replay", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:1: header {named}" in err and "--detect-from-config" in err
    # Told otherwise, the replay runs with this build's keys.
    assert main(["replay", str(p), "--detect-from-config"]) == 0


@pytest.mark.parametrize("value", ['"30"', "true", "[1]", "{}"])
def test_a_header_detect_value_that_is_no_number_is_no_header(tmp_path: Path,
                                                             value: str) -> None:
    p = tmp_path / "t.jsonl"
    d = json.dumps(Header("pi", 1, {}).to_dict())[:-1] + f', "detect": {{"hold_down_s": {value}}}}}'
    p.write_text(d + "\n")
    with pytest.raises(TraceError, match=r"t\.jsonl:1: not a timewatch trace header: "
                                         r"header\.detect\.hold_down_s: must be a number"):
        TraceReader(p)
    p.write_text(json.dumps(Header("pi", 1, {}).to_dict())[:-1] + ', "detect": [1]}\n')
    with pytest.raises(TraceError, match="'detect' must be an object"):
        TraceReader(p)


def test_archive_with_an_older_date_floor_replays_without_date_anomalies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = with_header(tmp_path, archive(), {DATE_FLOOR_KEY: OLDER_FLOOR_S})
    assert "gnss.date_anomaly" not in replay_codes(p, capsys)
    # This build's floor (told otherwise) finds the archive's dates before it: the floor in the
    # header is what kept them valid.
    assert "gnss.date_anomaly" in replay_codes(p, capsys, "--detect-from-config")


def test_archive_recorded_before_headers_carried_the_floor_uses_its_creation_day(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = with_header(tmp_path, archive(), {})
    assert TraceReader(p).detect().gnss_not_before_unix_s == ARCHIVE_T0_NS / NS - 86_400
    assert "gnss.date_anomaly" not in replay_codes(p, capsys)
    # Created after this build's floor: the floor stays, and dates before it are anomalies.
    late = with_header(tmp_path, archive(created_ns=1_796_083_200 * NS), {})
    assert TraceReader(late).detect() == Detect()
    assert "gnss.date_anomaly" in replay_codes(late, capsys)


def test_replay_with_a_config_keeps_the_recorded_thresholds_and_says_how_they_differ(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = with_header(tmp_path, archive(), {DATE_FLOOR_KEY: OLDER_FLOOR_S})
    cfg = tmp_path / "tw.toml"
    cfg.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n[http]\nlisten = ""\n'
                   "[detect]\nhold_down_s = 7\n")
    assert main(["replay", str(p), "-c", str(cfg)]) == 0
    out, err = capsys.readouterr()
    assert "gnss.date_anomaly" not in out
    assert "differs in hold_down_s, gnss_not_before_unix_s" in err
    assert "--detect-from-config" in err
    assert main(["replay", str(p), "-c", str(cfg), "--detect-from-config"]) == 0
    assert "gnss.date_anomaly" in capsys.readouterr().out
