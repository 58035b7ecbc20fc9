"""The status API on a real loopback socket: /status.json, /metrics (parsed by prometheus_client's
parser), /healthz, and a port already in use."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from timewatch.config import Config, parse
from timewatch.engine.vote import Verdict
from timewatch.records import Event, Sample, Snapshot, SourceStatus
from timewatch.sinks.http import HttpListenError, HttpSink

T = 1_764_160_950_000_000_000
S = 1_000_000_000
ODD = 'lab "b"\\c'  # a source id that needs escaping in a Prometheus label


def make_cfg(tmp: Path, listen: str = "127.0.0.1:0") -> Config:
    return parse({"monitor": {"state_dir": str(tmp), "host": "pi-lab-1"},
                  "http": {"listen": listen},
                  "sources": [{"id": "ntp1", "kind": "ntp", "server": "127.0.0.1", "group": "g1"},
                              {"id": ODD, "kind": "ntp", "server": "127.0.0.2", "group": "g2"},
                              {"id": "quiet", "kind": "ntp", "server": "127.0.0.3"}]})


SNAP = Snapshot(
    t_ns=T + 10 * S,
    sources=(SourceStatus("ntp1", "ntp", "g1", "truechimer", "inside the consensus", 0.0012,
                          0.002, T + 9 * S),
             SourceStatus(ODD, "ntp", "g2", "falseticker", "2.5 s outside", 2.5, 0.003,
                          T + 8 * S)),
    quorum=True, groups_agreeing=2, groups_voting=3, consensus_offset_s=1e-4,
    consensus_bound_s=5e-4, active_alerts=("source.falseticker:a1",), holdover_ppm=-12.5)
A1 = Event("alert", T + 5 * S, "source.falseticker", (ODD,), "a1", "critical", "liar",
           {"offset_s": 2.5})
A2 = Event("alert", T + 6 * S, "source.stale", ("quiet",), "a2", "warning", "quiet", {})
C2 = Event("clear", T + 7 * S, "source.stale", ("quiet",), "a2")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[HttpSink]:
    s = HttpSink(make_cfg(tmp_path), healthy_within_s=0.5)
    try:
        yield s
    finally:
        s.close()


def get(sink: HttpSink, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://{sink.address}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def feed(sink: HttpSink) -> None:
    sink.handle([Sample("ntp1", T + S, 0.001, 0.002), Sample("ntp1", T + 2 * S, 0.001, 0.002),
                 Sample(ODD, T + 2 * S, 2.5, 0.003), A1, A2, C2, SNAP])


def test_status_json_has_the_snapshot_active_alerts_and_counters(sink: HttpSink) -> None:
    feed(sink)
    code, ctype, body = get(sink, "/status.json")
    assert code == 200 and ctype == "application/json"
    doc = json.loads(body)
    assert doc["host"] == "pi-lab-1" and doc["t_ns"] == SNAP.t_ns
    assert doc["consensus"] == SNAP.to_dict()["consensus"]
    assert doc["sources"] == [s.to_dict() for s in SNAP.sources]
    assert doc["holdover_ppm"] == -12.5
    assert doc["active_alerts"] == [A1.to_dict()]  # a2 was cleared
    assert doc["counters"] == {"samples": {"ntp1": 2, ODD: 1},
                               "events": {"alert": {"source.falseticker": 1, "source.stale": 1},
                                          "clear": {"source.stale": 1}}}
    assert 0 <= doc["last_output_age_s"] < 5


def test_metrics_parse_as_prometheus_text_with_chrony_exporter_style_names(sink: HttpSink) -> None:
    feed(sink)
    code, ctype, body = get(sink, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(body)}

    def values(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        # The parser names a counter's family without its `_total`; its samples keep it.
        fam = fams[name.removesuffix("_total")]
        return {tuple(sorted(s.labels.items())): s.value for s in fam.samples if s.name == name}

    off = values("timewatch_source_offset_seconds")
    assert off == {(("group", "g1"), ("kind", "ntp"), ("source", "ntp1")): 0.0012,
                   (("group", "g2"), ("kind", "ntp"), ("source", ODD)): 2.5}
    assert values("timewatch_source_bound_seconds")[
        (("group", "g2"), ("kind", "ntp"), ("source", ODD))] == 0.003
    verdicts = {(lab["source"], lab["verdict"]): v
                for lab, v in ((s.labels, s.value) for s in fams["timewatch_source_verdict"].samples)}
    # One-hot per source, every verdict listed; a configured source not yet in a snapshot is init.
    assert len(verdicts) == 3 * len(Verdict)
    assert {k for k, v in verdicts.items() if v == 1} == {
        ("ntp1", "truechimer"), (ODD, "falseticker"), ("quiet", "init")}
    assert fams["timewatch_source_samples"].type == "counter"
    assert fams["timewatch_events"].type == "counter"
    assert values("timewatch_source_samples_total")[
        (("group", "g1"), ("kind", "ntp"), ("source", "ntp1"))] == 2
    assert values("timewatch_source_last_sample_age_seconds")[
        (("group", "g2"), ("kind", "ntp"), ("source", ODD))] == 2.0
    assert values("timewatch_consensus_offset_seconds") == {(): 1e-4}
    assert values("timewatch_consensus_bound_seconds") == {(): 5e-4}
    assert values("timewatch_consensus_quorum") == {(): 1.0}
    assert values("timewatch_consensus_groups_agreeing") == {(): 2.0}
    assert values("timewatch_holdover_frequency_ppm") == {(): -12.5}
    assert values("timewatch_alerts_active") == {(("code", "source.falseticker"),): 1.0,
                                                 (("code", "source.stale"),): 0.0}
    assert values("timewatch_events_total") == {
        (("code", "source.falseticker"), ("type", "alert")): 1.0,
        (("code", "source.stale"), ("type", "alert")): 1.0,
        (("code", "source.stale"), ("type", "clear")): 1.0}


def test_metrics_before_any_output_list_the_configured_sources_as_init(sink: HttpSink) -> None:
    code, _, body = get(sink, "/metrics")
    assert code == 200
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    on = {s.labels["source"] for s in fams["timewatch_source_verdict"].samples
          if s.value == 1 and s.labels["verdict"] == "init"}
    assert on == {"ntp1", ODD, "quiet"}
    assert "timewatch_consensus_quorum" not in fams


def test_healthz_follows_the_engine_output(sink: HttpSink) -> None:
    assert get(sink, "/healthz")[0] == 503  # nothing yet
    t0 = time.monotonic()
    sink.handle([SNAP])
    code, _, body = get(sink, "/healthz")
    assert code == 200 and body.startswith("ok")
    # Unhealthy once no output came for healthy_within_s (0.5 s), not before.
    body = wait_until(lambda: (lambda r: r[0] == 503 and r[2])(get(sink, "/healthz")), 5,
                      "/healthz saying 503")
    assert time.monotonic() - t0 >= 0.5 and "no engine output for" in body


def test_unknown_path_is_404(sink: HttpSink) -> None:
    assert get(sink, "/nope")[0] == 404


def test_a_port_in_use_is_an_error_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(HttpListenError, match=f"http.listen {listen}: .*in use"):
            HttpSink(make_cfg(tmp_path, listen))


def test_ipv6_loopback_listen(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        s = HttpSink(make_cfg(tmp_path, "[::1]:0"))
    except HttpListenError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    try:
        assert s.address.startswith("[::1]:")
        assert get(s, "/status.json")[0] == 200
    finally:
        s.close()
