"""The live monitor against a real PTP network of the tests' own (tests/ptp/conftest.py): an honest
ptp4l master on side A of a veth pair, timewatch's PTP source (its own ptp4l) on side B, four
simulated NTP servers on loopback. Attacks ptp4l cannot play come from sim/ptpmaster.py on
side A, next to the honest master.

Every run ends as soon as what it waits for has happened (or at its deadline); ptp4l has been
seen to follow a master here within about 20 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.ptp.conftest import PtpNet
from tests.ptp.live import NTP_IDS, PTP_ID, Collect, Live, wait_for
from timewatch.engine import Engine
from timewatch.leapfile import load_leap_list
from timewatch.records import Event
from timewatch.sim.ptpmaster import Behaviour, SimPtpMaster
from timewatch.trace import TraceReader

pytestmark = pytest.mark.slow

S = 1_000_000_000
ROGUE = "02aabb.fffe.000001"


def truechimer_for(col: Collect, n: int) -> bool:
    """ptp0 a truechimer in the last `n` snapshots."""
    v = [st.verdict for _, st in col.statuses(PTP_ID)]
    return len(v) >= n and all(x == "truechimer" for x in v[-n:])


def test_honest_master_offsets_near_zero_and_a_truechimer(ptpnet: PtpNet, tmp_path: Path) -> None:
    ptpnet.start_master()
    gm = ptpnet.master_identity()
    live = Live(ptpnet, tmp_path, grandmasters=[gm])
    col = live.run(lambda c: truechimer_for(c, 15), deadline_s=90)
    assert truechimer_for(col, 15), col.statuses(PTP_ID)[-5:]
    samples = col.samples(PTP_ID)
    assert len(samples) >= 10
    # Same host clock on both ends: the offset is the software stamps' asymmetry, a few us. A
    # software stamp taken late by the scheduler of a loaded host is one sample of tens of us
    # (CI saw -81 us among the last 10); the engine judges it (no alert, asserted below), so the
    # reading itself is held to its median, and every sample to well under a misread unit.
    last10 = sorted(abs(s.offset_s) for s in samples[-10:])
    assert (last10[4] + last10[5]) / 2 < 20e-6, [s.offset_s for s in samples]
    assert last10[-1] < 500e-6, [s.offset_s for s in samples]
    assert all(s.bound_s < 150e-6 for s in samples)
    last = col.statuses(PTP_ID)[-1][1]
    assert last.fields["gm_identity"] == gm and last.fields["timestamping"] == "software"
    assert last.fields["gm_clock_class"] == 6
    for sid in NTP_IDS:
        assert col.statuses(sid)[-1][1].verdict == "truechimer"
    assert col.alerts() == [], col.alerts()


def test_rogue_master_with_a_better_announce_is_caught_within_three_announce_intervals(
        ptpnet: PtpNet, tmp_path: Path) -> None:
    ptpnet.start_master()
    gm = ptpnet.master_identity()
    live = Live(ptpnet, tmp_path, grandmasters=[gm], record=tmp_path / "rogue.jsonl")
    rogue = SimPtpMaster(ptpnet.veth_a, ptpnet.addr_a, identity=ROGUE, netns=ptpnet.ns_a,
                         behaviour=Behaviour(priority1=0, clock_class=6))

    async def attack(lv: Live) -> None:
        await wait_for(lambda: truechimer_for(lv.col, 5), 60, "ptp0 a truechimer")
        await asyncio.to_thread(rogue.start)

    def done(c: Collect) -> bool:
        return bool(c.alerts("ptp.gm_changed")) and any(
            "withheld" in st.reason for _, st in c.statuses(PTP_ID)[-3:])

    try:
        col = live.run(done, deadline_s=100, during=attack)
    finally:
        rogue.stop()
    gmc = col.alerts("ptp.gm_changed")
    assert len(gmc) == 1, col.alerts()
    e = gmc[0]
    assert e.severity == "critical" and e.sources == (PTP_ID,)
    assert e.evidence["old_identity"] == gm and e.evidence["new_identity"] == ROGUE
    assert e.evidence["priority1"] == 0
    assert rogue.first_announce_ns is not None
    # Within 3 announce intervals (2 s each) of the rogue's first announce.
    assert e.t_ns - rogue.first_announce_ns <= 3 * 2 * S, (e.t_ns - rogue.first_announce_ns) / S
    withheld = [st for t, st in col.statuses(PTP_ID) if t >= e.t_ns]
    assert withheld and withheld[0].verdict == "unusable" and "withheld" in withheld[0].reason
    assert {a.code for a in col.alerts()} == {"ptp.gm_changed"}, col.alerts()
    # The recorded trace replays to the live events.
    rd = TraceReader(tmp_path / "rogue.jsonl")
    eng = Engine(rd.header, live.config().detect, leap_list=load_leap_list())
    outs = [o for obs in rd for o in eng.feed(obs)] + list(eng.finish())
    replayed = [(o.type, o.code, o.sources, o.t_ns, o.id) for o in outs
                if isinstance(o, Event)]
    lived = [(o.type, o.code, o.sources, o.t_ns, o.id) for o in col.events()]
    assert replayed[:len(lived)] == lived and lived


def test_ptp4l_killed_is_restarted_stale_meanwhile_and_nothing_else_alarms(
        ptpnet: PtpNet, tmp_path: Path) -> None:
    ptpnet.start_master()
    gm = ptpnet.master_identity()
    live = Live(ptpnet, tmp_path, grandmasters=[gm])
    killed: list[int] = []

    async def kill(lv: Live) -> None:
        await wait_for(lambda: truechimer_for(lv.col, 3), 60, "ptp0 a truechimer")
        r = lv.reader()
        killed.append(r.proc.pid)
        os.kill(r.proc.pid, signal.SIGKILL)

    def done(c: Collect) -> bool:
        cleared = [e for e in c.events() if e.type == "clear" and e.code == "source.stale"]
        return bool(cleared) and truechimer_for(c, 3)

    col = live.run(done, deadline_s=120, during=kill)
    r = live.reader()
    assert killed and r.starts == 2, (killed, r.starts)
    stale = col.alerts("source.stale")
    assert [e.sources for e in stale] == [(PTP_ID,)]
    assert {a.code for a in col.alerts()} == {"source.stale"}, col.alerts()
    assert any(e.type == "clear" and e.code == "source.stale" for e in col.events())
    assert truechimer_for(col, 3)
    # The reader stopped its ptp4l with the monitor.
    assert r.proc is None and r.dir is None


def test_a_master_lying_by_1_ms_is_named(ptpnet: PtpNet, tmp_path: Path) -> None:
    # The honest ptp4l is not started: the test master is the only one, first honest.
    liar = SimPtpMaster(ptpnet.veth_a, ptpnet.addr_a, identity=ROGUE, netns=ptpnet.ns_a)
    live = Live(ptpnet, tmp_path, grandmasters=[ROGUE])
    started: list[int] = []

    async def lie(lv: Live) -> None:
        await wait_for(lambda: truechimer_for(lv.col, 10), 60, "ptp0 a truechimer")
        started.append(time.time_ns())
        liar.behaviour.offset_s = 1e-3

    try:
        liar.start()
        col = live.run(lambda c: bool(c.alerts("time.step")), deadline_s=100, during=lie)
    finally:
        liar.stop()
    steps = col.alerts("time.step")
    assert steps and steps[0].sources == (PTP_ID,), col.alerts()
    # The step's size: the median of the samples that confirmed it, so that one software stamp
    # taken late on CI's loaded 2-core host (-81 us once; 63 us once, when the engine still took
    # the last sample alone) does not move it.
    assert steps[0].evidence["step_s"] == pytest.approx(1e-3, abs=50e-6)
    assert steps[0].t_ns - started[0] <= 12 * S
    assert {a.sources for a in col.alerts()} == {(PTP_ID,)}, col.alerts()


def test_a_master_pushed_at_1_us_per_s_is_named(ptpnet: PtpNet, tmp_path: Path) -> None:
    b = Behaviour()
    liar = SimPtpMaster(ptpnet.veth_a, ptpnet.addr_a, identity=ROGUE, netns=ptpnet.ns_a,
                        behaviour=b)
    live = Live(ptpnet, tmp_path, grandmasters=[ROGUE], record=tmp_path / "push.jsonl")
    started: list[int] = []

    async def push(lv: Live) -> None:
        await wait_for(lambda: truechimer_for(lv.col, 30), 90, "ptp0 a truechimer")
        started.append(time.time_ns())
        b.push_s_per_s, b.push_from = 1e-6, time.monotonic()

    try:
        liar.start()
        col = live.run(lambda c: bool(c.alerts("time.drift") or c.alerts("source.falseticker")),
                       deadline_s=400, during=push)
    finally:
        liar.stop()
    named = col.alerts("time.drift") + col.alerts("source.falseticker")
    assert named and named[0].sources == (PTP_ID,), col.alerts()
    # The slow-push target (docs/threats.md #8, 5 min): the holdover, taught by ptp0 itself from
    # the first minute, catches it (offline: 50-70 s); before that it took 639 s or never.
    assert named[0].t_ns - started[0] <= 300 * S
    assert {a.sources for a in col.alerts()} == {(PTP_ID,)}


def test_a_wrong_utc_offset_is_alerted_at_once(ptpnet: PtpNet, tmp_path: Path) -> None:
    # A grandmaster on the PTP timescale announcing 36 s, flagged valid and traceable.
    b = Behaviour(ptp_timescale=True, utc_valid=True, time_traceable=True)
    liar = SimPtpMaster(ptpnet.veth_a, ptpnet.addr_a, identity=ROGUE, netns=ptpnet.ns_a,
                        behaviour=b)
    live = Live(ptpnet, tmp_path, grandmasters=[ROGUE])
    started: list[int] = []

    async def lie(lv: Live) -> None:
        await wait_for(lambda: truechimer_for(lv.col, 5), 60, "ptp0 a truechimer")
        started.append(time.time_ns())
        b.utc_offset = 36

    try:
        liar.start()
        col = live.run(lambda c: bool(c.alerts("ptp.announce_mismatch")), deadline_s=100,
                       during=lie)
    finally:
        liar.stop()
    am = col.alerts("ptp.announce_mismatch")
    assert am and am[0].evidence["aspect"] == "utc_offset" and am[0].evidence["utc_offset"] == 36
    assert am[0].t_ns - started[0] <= 3 * S  # the next announce (2 s) and the next poll


def test_delayed_sync_messages_are_a_delay_attack(ptpnet: PtpNet, tmp_path: Path) -> None:
    b = Behaviour()
    liar = SimPtpMaster(ptpnet.veth_a, ptpnet.addr_a, identity=ROGUE, netns=ptpnet.ns_a,
                        behaviour=b)
    live = Live(ptpnet, tmp_path, grandmasters=[ROGUE])

    async def delay(lv: Live) -> None:
        await wait_for(lambda: truechimer_for(lv.col, 10), 60, "ptp0 a truechimer")
        b.sync_delay_s = 400e-6

    try:
        liar.start()
        col = live.run(lambda c: bool(c.alerts("ptp.delay_attack")), deadline_s=100,
                       during=delay)
    finally:
        liar.stop()
    da = col.alerts("ptp.delay_attack")
    assert da and da[0].sources == (PTP_ID,), col.alerts()
    assert da[0].evidence["delay_increase_s"] == pytest.approx(200e-6, rel=0.3)
    assert da[0].evidence["delayed_leg"].startswith("Sync")
    assert {a.sources for a in col.alerts()} == {(PTP_ID,)}
