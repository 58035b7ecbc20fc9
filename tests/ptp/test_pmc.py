"""ptpmgmt.py: pmc's answers read strictly, and the reader's ptp4l config and ethtool reading.

The pmc text below is what `pmc -u -b 0 'GET PORT_DATA_SET' ...` printed against linuxptp 3.1.1's
ptp4l following an honest master on a veth pair (tests/ptp/conftest.py).
"""

from __future__ import annotations

import pytest

from timewatch.ptpmgmt import (
    PmcError,
    Ptp,
    normalize_identity,
    parse_pmc,
    pmc_commands,
    record_fields,
)
from timewatch.records import observation_from_dict, observation_to_dict
from timewatch.sources.ptp import PROFILES, PtpSettings, parse_ethtool_hw, ptp4l_config

PMC = """sending: GET PORT_DATA_SET
sending: GET TIME_STATUS_NP
\t160d9b.fffe.d32855-1 seq 0 RESPONSE MANAGEMENT PORT_DATA_SET\x20
\t\tportIdentity            160d9b.fffe.d32855-1
\t\tportState               UNCALIBRATED
\t\tlogMinDelayReqInterval  0
\t\tpeerMeanPathDelay       0
\t\tlogAnnounceInterval     1
\t\tannounceReceiptTimeout  3
\t\tlogSyncInterval         0
\t\tdelayMechanism          1
\t\tlogMinPdelayReqInterval 0
\t\tversionNumber           2
sending: GET PARENT_DATA_SET
\t160d9b.fffe.d32855-0 seq 1 RESPONSE MANAGEMENT TIME_STATUS_NP\x20
\t\tmaster_offset              -478
\t\tingress_time               1796569248495670291
\t\tcumulativeScaledRateOffset +0.000000000
\t\tscaledLastGmPhaseChange    0
\t\tgmTimeBaseIndicator        0
\t\tlastGmPhaseChange          0x0000'0000000000000000.0000
\t\tgmPresent                  true
\t\tgmIdentity                 b6344c.fffe.b93e44
sending: GET CURRENT_DATA_SET
sending: GET TIME_PROPERTIES_DATA_SET
\t160d9b.fffe.d32855-0 seq 2 RESPONSE MANAGEMENT PARENT_DATA_SET\x20
\t\tparentPortIdentity                    b6344c.fffe.b93e44-1
\t\tparentStats                           0
\t\tobservedParentOffsetScaledLogVariance 0xffff
\t\tobservedParentClockPhaseChangeRate    0x7fffffff
\t\tgrandmasterPriority1                  128
\t\tgm.ClockClass                         248
\t\tgm.ClockAccuracy                      0xfe
\t\tgm.OffsetScaledLogVariance            0xffff
\t\tgrandmasterPriority2                  128
\t\tgrandmasterIdentity                   b6344c.fffe.b93e44
\t160d9b.fffe.d32855-0 seq 3 RESPONSE MANAGEMENT CURRENT_DATA_SET\x20
\t\tstepsRemoved     1
\t\toffsetFromMaster -478.0
\t\tmeanPathDelay    2561.0
\t160d9b.fffe.d32855-0 seq 4 RESPONSE MANAGEMENT TIME_PROPERTIES_DATA_SET\x20
\t\tcurrentUtcOffset      37
\t\tleap61                0
\t\tleap59                0
\t\tcurrentUtcOffsetValid 0
\t\tptpTimescale          0
\t\ttimeTraceable         0
\t\tfrequencyTraceable    0
\t\ttimeSource            0xa0
"""


def test_a_real_pmc_answer_becomes_the_record_fields() -> None:
    f = record_fields(parse_pmc(PMC))
    assert f["port_state"] == "UNCALIBRATED" and f["delay_mechanism"] == 1
    assert f["master_offset_ns"] == -478 and f["ingress_ns"] == 1796569248495670291
    assert f["gm_present"] is True and f["gm_identity"] == "b6344c.fffe.b93e44"
    assert f["parent_gm_identity"] == "b6344c.fffe.b93e44"
    assert f["parent_port"] == "b6344c.fffe.b93e44-1"
    assert (f["gm_priority1"], f["gm_clock_class"], f["gm_clock_accuracy"], f["gm_variance"],
            f["gm_priority2"]) == (128, 248, 0xFE, 0xFFFF, 128)
    assert (f["steps_removed"], f["offset_from_master_ns"], f["mean_path_delay_ns"]) == (
        1, -478.0, 2561.0)
    assert f["utc_offset"] == 37 and f["time_source"] == 0xA0
    assert f["leap61"] is False and f["utc_offset_valid"] is False


def test_the_record_survives_the_trace_round_trip() -> None:
    r = Ptp("ptp0", 5, timestamping="software", raw_ns=7, **record_fields(parse_pmc(PMC)))
    d = observation_to_dict(r)
    assert d["type"] == "ptp" and d["master_offset_ns"] == -478
    assert observation_from_dict(d) == r


@pytest.mark.parametrize("bad,why", [
    (PMC.replace("\t\tmaster_offset              -478\n", ""), "TIME_STATUS_NP.master_offset: missing"),
    (PMC.replace("-478\n\t\tingress", "-4x8\n\t\tingress"), "TIME_STATUS_NP.master_offset"),
    (PMC.replace("gmPresent                  true", "gmPresent                  yes"),
     "TIME_STATUS_NP.gmPresent: 'yes' is not true or false"),
    (PMC.replace("UNCALIBRATED", "DANCING"), "PORT_DATA_SET.portState"),
    (PMC.replace("leap61                0", "leap61                2"), "leap61"),
    (PMC.replace("grandmasterIdentity                   b6344c.fffe.b93e44",
                 "grandmasterIdentity                   b6344c.fffe.b93e4"), "not a clock identity"),
    (PMC.replace("meanPathDelay    2561.0", "meanPathDelay    nan"), "not a finite number"),
])
def test_a_malformed_field_is_refused_naming_it(bad: str, why: str) -> None:
    with pytest.raises(PmcError, match=why.replace("(", r"\(").replace("'", "'")):
        record_fields(parse_pmc(bad))


def test_missing_answers_duplicates_error_statuses_and_stray_lines_are_refused() -> None:
    cut = PMC[:PMC.index("\t160d9b.fffe.d32855-0 seq 4")]
    with pytest.raises(PmcError, match="no answer for GET TIME_PROPERTIES_DATA_SET"):
        record_fields(parse_pmc(cut))
    with pytest.raises(PmcError, match="a second answer for CURRENT_DATA_SET"):
        parse_pmc(PMC + "\t160d9b.fffe.d32855-0 seq 5 RESPONSE MANAGEMENT CURRENT_DATA_SET \n")
    with pytest.raises(PmcError, match="refused GET PORT_DATA_SET"):
        parse_pmc("\t160d9b.fffe.d32855-1 seq 0 RESPONSE MANAGEMENT_ERROR_STATUS PORT_DATA_SET\n")
    with pytest.raises(PmcError, match="line 1: not an answer header or field"):
        parse_pmc("\t\tportState SLAVE\n")
    with pytest.raises(PmcError, match="line 2"):
        parse_pmc("sending: GET X\ngarbage here\n")
    assert parse_pmc("") == {} and parse_pmc("sending: GET PORT_DATA_SET\n") == {}


def test_commands_ask_every_data_set() -> None:
    assert pmc_commands() == ["GET PORT_DATA_SET", "GET TIME_STATUS_NP", "GET PARENT_DATA_SET",
                              "GET CURRENT_DATA_SET", "GET TIME_PROPERTIES_DATA_SET"]


@pytest.mark.parametrize("given,want", [
    ("001122.fffe.334455", "001122.fffe.334455"), ("00:11:22:FF:FE:33:44:55", "001122.fffe.334455"),
    ("001122FFFE334455", "001122.fffe.334455"), ("00-11-22-ff-fe-33-44-55", "001122.fffe.334455")])
def test_grandmaster_identities_are_normalised(given: str, want: str) -> None:
    assert normalize_identity(given) == want


@pytest.mark.parametrize("bad", ["", "001122.fffe.3344", "xyz", "001122.fffe.334455.66"])
def test_a_bad_identity_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a clock identity"):
        normalize_identity(bad)


ETHTOOL_SW = """Time stamping parameters for veth0:
Capabilities:
\tsoftware-transmit
\tsoftware-receive
\tsoftware-system-clock
PTP Hardware Clock: none
Hardware Transmit Timestamp Modes: none
Hardware Receive Filter Modes: none
"""
ETHTOOL_HW = """Time stamping parameters for eth0:
Capabilities:
\thardware-transmit
\tsoftware-transmit
\thardware-receive
\tsoftware-receive
\tsoftware-system-clock
\thardware-raw-clock
PTP Hardware Clock: 0
Hardware Transmit Timestamp Modes:
\toff
\ton
Hardware Receive Filter Modes:
\tnone
\tall
"""


def test_ethtool_says_which_timestamping_the_nic_has() -> None:
    assert parse_ethtool_hw(ETHTOOL_HW) is True
    assert parse_ethtool_hw(ETHTOOL_SW) is False
    assert parse_ethtool_hw(ETHTOOL_HW.replace("PTP Hardware Clock: 0", "PTP Hardware Clock: none")) is False


@pytest.mark.parametrize("profile,transport,mech,domain", [
    ("default", "UDPv4", "E2E", 0), ("power", "L2", "P2P", 0),
    ("telecom-g8275.1", "L2", "E2E", 24), ("telecom-g8275.2", "UDPv4", "E2E", 44)])
def test_each_profile_maps_to_its_transport_delay_mechanism_and_domain(
        profile: str, transport: str, mech: str, domain: int) -> None:
    conf = ptp4l_config(PtpSettings("eth1", profile), "software", "/run/x.sock")
    lines = conf.splitlines()
    for want in ("slaveOnly 1", "free_running 1", "time_stamping software",
                 f"network_transport {transport}", f"delay_mechanism {mech}",
                 f"domainNumber {domain}", "uds_address /run/x.sock", "[eth1]"):
        assert want in lines, (want, conf)
    assert ("dataset_comparison G.8275.x" in lines) == profile.startswith("telecom")
    assert set(PROFILES) == {"default", "power", "telecom-g8275.1", "telecom-g8275.2"}


def test_a_configured_domain_and_unicast_masters_are_written() -> None:
    conf = ptp4l_config(PtpSettings("eth1", "telecom-g8275.2", domain=50,
                                    unicast_masters=("192.0.2.1",)), "hardware", "/s",
                        uds_ro="/r")
    lines = conf.splitlines()
    for want in ("domainNumber 50", "time_stamping hardware", "uds_ro_address /r",
                 "[unicast_master_table]", "UDPv4 192.0.2.1", "unicast_master_table 1"):
        assert want in lines, (want, conf)
