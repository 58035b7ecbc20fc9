"""The operator's account reads the appliance's config and state through their group, and an
account outside the group is told which group and the line that lets it in.

Real permission checks: the commands run as root without any capability (`setpriv
--bounding-set=-all`, so root's override of file modes is gone) on files that another user owns,
mode 0640/0750 as hw/install.sh leaves them, with and without the files' group."""

from __future__ import annotations

import grp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_binary, need_root
from timewatch.config import parse
from timewatch.records import Sample, Snapshot, SourceStatus
from timewatch.sinks.store import StoreSink

OWNER = 65534  # nobody: the service user stands in
T0 = 1_796_083_200 * 1_000_000_000


@pytest.fixture(scope="module")
def group() -> grp.struct_group:
    """A named group of this machine (not root's, not nobody's) to own the files."""
    return next(g for g in sorted(grp.getgrall(), key=lambda g: g.gr_gid)
                if g.gr_gid not in (0, OWNER, os.getgid()))


def as_operator(args: list[str], cwd: Path, groups: list[int]) -> subprocess.CompletedProcess[str]:
    setpriv = need_binary("setpriv")
    sup = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run([setpriv, f"--regid={OWNER}", *sup, "--bounding-set=-all",
                           "--inh-caps=-all", sys.executable, "-m", "timewatch", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def appliance(tmp_path: Path, group: grp.struct_group) -> Path:
    """A config (0640) and a state directory (0750) with a store (0640), owned by another user
    and the group, as the installer and the service's UMask=0027 leave them."""
    need_root()
    os.chmod(tmp_path, 0o755)
    old = os.umask(0o027)
    try:
        cfg = parse({"monitor": {"host": "pi-lab-1", "state_dir": str(tmp_path / "state")},
                     "http": {"listen": ""}})
        sink = StoreSink(cfg)
        sink.handle([Sample("ntp1", T0, 1e-3, 2e-3),
                     Snapshot(T0, (SourceStatus("ntp1", "ntp", "g1", "truechimer",
                                                "inside the consensus interval", 1e-3, 2e-3,
                                                T0),), True, 1, 1, 0.0, 1e-3)])
        sink.close()  # the service stopped: no -wal, no -shm (a reader cannot make them)
        (tmp_path / "timewatch.toml").write_text(
            f'[monitor]\nhost = "pi-lab-1"\nstate_dir = "{tmp_path / "state"}"\n'
            '[http]\nlisten = ""\n')
    finally:
        os.umask(old)
    for p in [tmp_path / "timewatch.toml", tmp_path / "state", *(tmp_path / "state").iterdir()]:
        os.chown(p, OWNER, group.gr_gid)
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o750"
    assert oct((tmp_path / "timewatch.toml").stat().st_mode & 0o777) == "0o640"
    return tmp_path


def fix_text(path: Path, group: str, mode: str) -> str:
    return (f"{path} is nobody:{group} mode {mode}: readable by the group {group}; add your "
            f"account to it (sudo usermod -aG {group} root) and log in again, or run: "
            f"newgrp {group}")


def test_in_the_group_the_operator_reads_config_and_state(appliance: Path,
                                                          group: grp.struct_group) -> None:
    cfg = str(appliance / "timewatch.toml")
    r = as_operator(["check-config", cfg], appliance, [group.gr_gid])
    assert r.returncode == 0 and "config " in r.stdout, r.stderr
    r = as_operator(["status", "-c", cfg], appliance, [group.gr_gid])
    assert r.returncode == 0, r.stderr
    assert "from the store " in r.stdout and "ntp1" in r.stdout and "truechimer" in r.stdout
    r = as_operator(["export", "-c", cfg], appliance, [group.gr_gid])
    assert r.returncode == 0 and r.stdout.startswith("tw_sample,"), r.stderr
    r = as_operator(["doctor", "-c", cfg], appliance, [group.gr_gid])
    assert "[ok  ] store: " in r.stdout and "readable (written by the service user nobody)" \
        in r.stdout, r.stdout


def test_outside_the_group_every_command_names_the_group_to_join(appliance: Path,
                                                                group: grp.struct_group) -> None:
    cfg = appliance / "timewatch.toml"
    r = as_operator(["check-config", str(cfg)], appliance, [])
    assert r.returncode == 2
    assert r.stderr.strip() == (f"timewatch: {cfg}: cannot read: permission denied: "
                                + fix_text(cfg, group.gr_name, "0640"))
    state = appliance / "state"
    for cmd in (["status", "--state-dir", str(state)], ["export", "--state-dir", str(state)]):
        r = as_operator(cmd, appliance, [])
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"store {state / 'timewatch.db'}: permission denied: " \
            + fix_text(state, group.gr_name, "0750") in r.stderr, r.stderr
    r = as_operator(["doctor", "-c", str(cfg)], appliance, [])
    assert r.returncode == 1 and "permission denied" in r.stdout
    assert f"newgrp {group.gr_name}" in r.stdout
