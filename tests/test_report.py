"""`timewatch report`: the deviations against published values, MTIE against allantools and brute
force, the G.8272 masks against the standard's tables, and the report of a simulated attack
(written by the real commands) with every figure and its numbers checked independently."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from timewatch import report
from timewatch.config import parse
from timewatch.engine import Engine
from timewatch.records import Sample, Snapshot
from timewatch.trace import TraceReader

# NIST SP 1065 "Handbook of Frequency Stability Analysis" (Riley, 2008), section 12.4 (p. 108):
# the 1000-point test data set, fractional frequency y(i) = n(i)/2147483647 with
# n(i+1) = 16807 n(i) mod 2147483647, n(0) = 1234567890; published deviations at averaging
# factors 1, 10, 100 (tau0 = 1 s).
NBS14_M = [1, 10, 100]
NBS14 = {"adev": [2.922319e-01, 9.159953e-02, 3.241343e-02],  # overlapping Allan deviation
         "mdev": [2.922319e-01, 6.172376e-02, 2.170921e-02],
         "tdev": [1.687202e-01, 3.563623e-01, 1.253382e+00]}


def nbs14_phase() -> np.ndarray:
    n = [1234567890]
    for _ in range(999):
        n.append(16807 * n[-1] % 2147483647)
    assert n[1:4] == [395529916, 1209410747, 633705974]  # as the handbook lists them
    y = np.array(n, dtype=np.float64) / 2147483647
    return np.concatenate(([0.0], np.cumsum(y)))  # phase (s) from frequency, tau0 = 1 s


def test_deviations_match_nist_sp1065_1000_point_data_set() -> None:
    devs = report.deviations(nbs14_phase(), 1.0, np.array(NBS14_M))
    for name, want in NBS14.items():
        taus, got = devs[name]
        assert list(taus) == NBS14_M
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)


def brute_mtie(x: np.ndarray, m: int) -> float:
    w = np.lib.stride_tricks.sliding_window_view(x, m + 1)
    return float((w.max(axis=1) - w.min(axis=1)).max())


def test_mtie_agrees_with_brute_force_and_with_allantools() -> None:
    import allantools

    rng = np.random.default_rng(7)
    for x in (nbs14_phase(), np.cumsum(rng.normal(size=3000)) * 1e-9,
              rng.normal(size=777) * 1e-6):
        ms = report.octave_ms(len(x))
        ours = report.mtie(x, ms)
        np.testing.assert_allclose(ours, [brute_mtie(x, int(m)) for m in ms], rtol=1e-12)
        taus, theirs, _, _ = allantools.mtie(x, rate=1.0, data_type="phase", taus=ms.astype(float))
        np.testing.assert_allclose(ours[:len(theirs)], theirs, rtol=1e-12)
    # a window longer than the data has no MTIE
    assert np.isnan(report.mtie(np.arange(4.0), np.array([4]))[0])


def test_g8272_masks_are_the_tables_of_clause_6_2() -> None:
    a_mtie, b_mtie = report.PRTC_A_MTIE, report.PRTC_B_MTIE
    a_tdev, b_tdev = report.PRTC_A_TDEV, report.PRTC_B_TDEV
    lim = report.mask_limit
    assert lim(a_mtie, 1.0) == pytest.approx(25.275e-9)  # 0.275e-3 tau + 0.025 us
    # 273 s is where the slope meets 0.1 us (to 0.1%: 0.275e-3 x 273 + 0.025 = 0.100075 us)
    assert lim(a_mtie, 273.0) == pytest.approx(100e-9, rel=1e-3) and lim(a_mtie, 1e5) == 100e-9
    assert lim(b_mtie, 54.5) == pytest.approx(40e-9, rel=1e-3) and lim(b_mtie, 100.0) == 40e-9
    assert lim(a_tdev, 100.0) == 3e-9 and lim(a_tdev, 500.0) == pytest.approx(15e-9)
    assert lim(a_tdev, 1000.0) == pytest.approx(30e-9) and lim(a_tdev, 5000.0) == 30e-9
    assert lim(b_tdev, 50.0) == 1e-9 and lim(b_tdev, 300.0) == pytest.approx(3e-9)
    assert lim(b_tdev, 1e4) == 5e-9
    assert lim(a_mtie, 0.1) is None and lim(a_tdev, 2e4) is None  # outside the tables
    # continuous at every break point (to the tables' rounding of 273 s)
    for mask in (a_mtie, b_mtie, a_tdev, b_tdev):
        for (_, hi, f), (_, _, g) in zip(mask, mask[1:], strict=False):
            assert f(hi) == pytest.approx(g(hi), rel=1e-3)
    # a value just above a limit is flagged, one just under is not
    taus = np.array([1.0, 10.0])
    assert report.mask_excess(b_tdev, taus, np.array([1.01e-9, 0.99e-9])) == [1.0]


# The `timewatch` console script's entry point, with this tree first on the path.
TIMEWATCH = [sys.executable, "-c", "import sys; from timewatch.cli import main; "
             "sys.exit(main(sys.argv[1:]))"]


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*TIMEWATCH, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=check)


def figures(page: str) -> dict[str, bytes]:
    return {m[1]: base64.b64decode(m[2]) for m in re.finditer(
        r'<img id="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', page)}


def assert_not_blank(png: bytes, name: str) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 100, name
        colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 16, f"{name}: blank"


def textbook(x: np.ndarray, m: int) -> dict[str, float]:
    """NIST SP 1065 eqs. (8) overlapping ADEV, (14) MDEV, (17) TDEV from phase x (tau0 = 1 s),
    and MTIE by brute force: written from the formulas, not from allantools."""
    n, tau = len(x), float(m)
    d2 = x[2 * m:] - 2 * x[m:n - m] + x[:n - 2 * m]
    adev = np.sqrt(np.sum(d2 ** 2) / (2 * tau ** 2 * (n - 2 * m)))
    s = np.array([d2[j:j + m].sum() for j in range(n - 3 * m + 1)])
    mdev = np.sqrt(np.sum(s ** 2) / (2 * m ** 2 * tau ** 2 * (n - 3 * m + 1)))
    return {"adev": float(adev), "mdev": float(mdev), "tdev": float(tau / np.sqrt(3) * mdev),
            "mtie": brute_mtie(x, m)}


def test_report_of_a_simulated_pps_attack_has_every_figure_and_the_right_numbers(
        tmp_path: Path) -> None:
    trace = tmp_path / "pps_faults.jsonl"
    run("simulate", "--scenario", "pps_faults", "-o", str(trace), cwd=tmp_path)
    out = run("report", str(trace), "-o", "r.html", cwd=tmp_path)
    assert "figures" in out.stderr
    page = (tmp_path / "r.html").read_text()
    figs = figures(page)

    # Every figure the report promises: timeline, host, one offsets figure per source, one
    # stability figure per precise source with enough samples (GNSS and PPS here: 7 minutes are
    # too few polls of the NTP servers, and the report says so).
    header = TraceReader(trace).header
    sids = list(header.sources)
    want = {"fig-timeline", "fig-host"} | {f"fig-offsets-{i}" for i in range(len(sids))}
    want |= {f"fig-stability-{sids.index(s)}" for s in ("gnss0", "pps0")}
    assert set(figs) == want
    for name, png in figs.items():
        assert_not_blank(png, name)
    assert page.count("too few for a deviation") == 5  # the five NTP servers
    # The attack's alerts are in the timeline's table; the masks are judged for the PPS.
    assert "source.falseticker" in page and "pps.interval" in page
    assert "MTIE PRTC-A: exceeded" in page and "G.8272" in page

    # The numbers, recomputed here from the engine's own outputs with the textbook formulas.
    data = json.loads(re.search(r'id="stability-data">(.*?)</script>', page, re.S)[1])
    eng = Engine(header, parse({}, "<t>").detect, snapshots=True, samples=True)
    pps: list[tuple[int, float]] = []
    cons: list[tuple[int, float]] = []
    for o in TraceReader(trace):
        for r in eng.feed(o):
            if isinstance(r, Sample) and r.src == "pps0":
                pps.append((r.t_ns, r.offset_s))
            elif isinstance(r, Snapshot) and r.consensus_offset_s is not None:
                cons.append((r.t_ns, r.consensus_offset_s))
    ct = np.array([c[0] for c in cons])
    t = np.array([p[0] for p in pps])
    inside = (t >= ct[0]) & (t <= ct[-1])
    t0 = t.min()
    ts = (t[inside] - t0) / 1e9
    x = np.array([p[1] for p in pps])[inside] - np.interp(
        ts, (ct - t0) / 1e9, [c[1] for c in cons])
    grid = ts[0] + np.arange(int(ts[-1] - ts[0]) + 1)
    xg = np.interp(grid, ts, x)
    got = data["pps0"]["consensus"]
    assert got["tau0_s"] == 1.0 and got["n"] == len(xg)
    for name in ("adev", "mdev", "tdev", "mtie"):
        assert got[name]["tau_s"], name
        for tau, v in zip(got[name]["tau_s"], got[name]["value"], strict=True):
            assert v == pytest.approx(textbook(xg, int(tau))[name], rel=1e-6), (name, tau)


def test_pps_against_the_oscillator_shows_the_simulated_interrupt_jitter(tmp_path: Path) -> None:
    """Clean GNSS + PPS for 15 minutes: white phase noise of 1.5 us (sim/pps.py JITTER_S) read
    against the host's raw crystal (its +-100 ppm removed) gives TDEV(1 s) = sigma_x and
    ADEV(1 s) = sqrt(3) sigma_x; the realtime clock's NTP discipline never enters."""
    from timewatch.sim.pps import JITTER_S
    from timewatch.sim.scenarios import build, write

    trace = tmp_path / "clean.jsonl"
    write(str(trace), build("gnss_clean", 1, 900.0))
    data = report.from_trace(trace, parse({}, "<t>"))
    st = report.analyse(data)["pps0"].stability["oscillator"]
    tdev1 = st.devs["tdev"][1][0]
    adev1 = st.devs["adev"][1][0]
    assert 0.8 * JITTER_S < tdev1 < 1.25 * JITTER_S
    assert adev1 == pytest.approx(np.sqrt(3) * tdev1, rel=0.1)
    holdover = data.hold_ppm[-1]  # the engine's own estimate of the crystal
    assert st.freq_ppm == pytest.approx(holdover, abs=0.5)


def test_report_from_the_store_and_a_time_range(tmp_path: Path) -> None:
    """The store of a replayed trace: no raw_ns there (no oscillator reference, said so); the
    --since/--until range cuts the data; an empty range is an error naming it."""
    trace = tmp_path / "t.jsonl"
    run("simulate", "--scenario", "gnss_step", "-o", str(trace), cwd=tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[monitor]\nstate_dir = "{tmp_path / "st"}"\n')
    run("replay", str(trace), "-c", str(cfg), "--events", str(tmp_path / "ev.jsonl"), cwd=tmp_path)
    header = TraceReader(trace).header
    t0 = header.created_ns // 10**9
    run("report", "--state-dir", str(tmp_path / "st"), "--since", str(t0 + 60),
        "--until", str(t0 + 300), "-o", "s.html", cwd=tmp_path)
    page = (tmp_path / "s.html").read_text()
    data = json.loads(re.search(r'id="stability-data">(.*?)</script>', page, re.S)[1])
    assert set(data["pps0"]) == {"consensus"} and "no raw_ns" in page
    assert data["pps0"]["consensus"]["n"] <= 241
    assert "fig-stability-" in page and "fig-timeline" in page
    bad = run("report", "--state-dir", str(tmp_path / "st"), "--since", "2001-01-01T00:00:00Z",
              "--until", "2001-01-02", "-o", "e.html", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "nothing in the requested time range" in bad.stderr
    assert not (tmp_path / "e.html").exists()
    usage = run("report", str(trace), "--since", "yesterday", cwd=tmp_path, check=False)
    assert usage.returncode == 2 and "--since: expected Unix seconds or an ISO time" in usage.stderr
    usage = run("report", str(trace), "--state-dir", "x", cwd=tmp_path, check=False)
    assert usage.returncode == 2 and "not both" in usage.stderr
