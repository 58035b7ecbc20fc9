"""sources/ptp.py against the real ptp4l on the tests' veth pair (tests/ptp/conftest.py): every
profile's generated config starts ptp4l and answers pmc; `doctor` for a ptp source; the
reader stops its ptp4l and removes its directory; bad config keys are refused by name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.ptp.conftest import PtpNet
from timewatch.config import ConfigError, SourceConfig, parse
from timewatch.ptpmgmt import PROFILES
from timewatch.sources.ptp import PtpReader, PtpSettings, doctor_checks

pytestmark = pytest.mark.slow


def src(net: PtpNet, **opts: object) -> SourceConfig:
    options = {"interface": net.veth_b, "netns": net.ns_b, **opts}
    return SourceConfig("ptp0", "ptp", "ptp", poll_s=1.0, options=options)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_starts_ptp4l_and_answers_pmc(ptpnet: PtpNet, profile: str) -> None:
    sc = src(ptpnet, profile=profile)
    r = PtpReader(sc, lambda o: None)
    r.prepare()
    try:
        assert r.timestamping == "software"  # a veth has no hardware stamps
        r.start()
        assert r.proc is not None
        pid = r.proc.pid
        rec = None
        for _ in range(50):  # up to 5 s for its management socket
            rec = r.ask()
            if rec.error is None:
                break
            time.sleep(0.1)
        assert rec is not None and rec.error is None, rec
        assert rec.port_state in ("LISTENING", "INITIALIZING")
        assert rec.gm_present is False
        assert rec.delay_mechanism == (2 if PROFILES[profile]["delay_mechanism"] == "P2P" else 1)
    finally:
        d = r.dir
        r.cleanup()
    assert r.proc is None and not Path(str(d)).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_doctor_sees_the_grandmaster_of_the_domain(ptpnet: PtpNet) -> None:
    ptpnet.start_master()
    gm = ptpnet.master_identity()
    checks = list(doctor_checks(src(ptpnet), listen_s=25))
    assert [c.ok for c in checks] == [True, True, True, True], [c.render() for c in checks]
    assert gm in checks[-1].detail and "class 6" in checks[-1].detail
    assert "software" in checks[2].detail


def test_doctor_names_what_is_missing(ptpnet: PtpNet) -> None:
    quiet = list(doctor_checks(src(ptpnet, domain=7), listen_s=4))
    assert [c.ok for c in quiet] == [True, True, True, False]
    assert "no grandmaster announced within 4 s" in quiet[-1].detail
    assert "domain" in quiet[-1].fix
    gone = list(doctor_checks(src(ptpnet, interface="nosuch0"), listen_s=4))
    assert gone[-1].ok is False and "nosuch0" in gone[-1].what
    hw = list(doctor_checks(src(ptpnet, timestamping="hardware"), listen_s=4))
    assert hw[-1].ok is False and "hardware asked for" in hw[-1].detail


def test_config_keys_are_checked_by_name() -> None:
    base = {"id": "p", "kind": "ptp", "interface": "eth1"}
    cfg = parse({"sources": [{**base, "grandmasters": ["00:11:22:FF:FE:33:44:55"],
                              "profile": "telecom-g8275.1"}]})
    s = cfg.sources[0]
    assert s.options["grandmasters"] == ("001122.fffe.334455",)
    assert cfg.header().sources["p"].grandmasters == ("001122.fffe.334455",)
    assert PtpSettings.of(s).domain_number() == 24
    for bad, key in (({"profile": "fast"}, "profile"), ({"domain": 256}, "domain"),
                     ({"grandmasters": ["nope"]}, "grandmasters"),
                     ({"unicast_masters": ["::1"]}, "unicast_masters"),
                     ({"timestamping": "magic"}, "timestamping")):
        with pytest.raises(ConfigError, match=rf"sources\[0\]\.{key}"):
            parse({"sources": [{**base, **bad}]})
    with pytest.raises(ConfigError, match=r"sources\[0\]\.interface"):
        parse({"sources": [{"id": "p", "kind": "ptp"}]})
