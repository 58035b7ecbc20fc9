"""hw/install.sh against fake roots of each OS layout: it installs, and a second run changes nothing."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_binary

INSTALL = ROOT / "hw" / "install.sh"
UNINSTALL = ROOT / "hw" / "uninstall.sh"
UNIT = ROOT / "hw" / "systemd" / "timewatch.service"

# (codename, where config.txt lives, board model)
LAYOUTS = [
    ("bookworm", "boot/firmware", "Raspberry Pi 4 Model B Rev 1.4"),
    ("trixie", "boot/firmware", "Raspberry Pi 5 Model B Rev 1.0"),
    ("bullseye", "boot", "Raspberry Pi 3 Model B Plus Rev 1.3"),
]


def make_root(tmp: Path, codename: str, boot: str, model: str,
              config_txt: str = "[all]\narm_64bit=1\n", packages: tuple[str, ...] = ()) -> Path:
    """A fake root of Raspberry Pi OS: the operator `pi`, config.txt, cmdline.txt, the board
    model, and the Debian packages `packages` installed (dpkg's status file)."""
    r = tmp / f"root-{codename}"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                  "pi:x:1000:1000::/home/pi:/bin/bash\n")
    (r / "etc/group").write_text("root:x:0:\ndialout:x:20:\npi:x:1000:\n")
    (r / "etc/shadow").write_text("root:*:19000:0:99999:7:::\npi:*:19000:0:99999:7:::\n")
    (r / "etc/gshadow").write_text("root:*::\ndialout:!::\npi:!::\n")
    (r / "etc/os-release").write_text(f'PRETTY_NAME="Debian ({codename})"\n'
                                      f"VERSION_CODENAME={codename}\n")
    (r / "var/lib/dpkg").mkdir(parents=True)
    (r / "var/lib/dpkg/status").write_text("".join(
        f"Package: {p}\nStatus: install ok installed\nVersion: 1\nArchitecture: arm64\n"
        f"Maintainer: x\nDescription: x\n\n" for p in packages))
    (r / boot).mkdir(parents=True, exist_ok=True)
    (r / boot / "config.txt").write_text(config_txt)
    (r / boot / "cmdline.txt").write_text(
        "console=serial0,115200 console=tty1 root=PARTUUID=abc rootwait\n")
    (r / "proc/device-tree").mkdir(parents=True)
    (r / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
    return r


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(root))] = (
                hashlib.sha256(p.read_bytes()).hexdigest() + f" {oct(st.st_mode)}")
    return out


def run(script: Path, *args: str, sudo_user: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    if sudo_user is not None:
        env["SUDO_USER"] = sudo_user
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def ids(root: Path, table: str) -> dict[str, tuple[int, list[str]]]:
    """name -> (id, members) of the fake root's passwd or group file."""
    out = {}
    for ln in (root / "etc" / table).read_text().splitlines():
        f = ln.split(":")
        out[f[0]] = (int(f[2]), f[3].split(",") if table == "group" and f[3] else [])
    return out


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_binary("useradd")
    if os.geteuid() != 0:
        pytest.skip("useradd --prefix needs root")


@pytest.mark.parametrize("codename,boot,model", LAYOUTS)
@pytest.mark.parametrize("profile", ["adafruit-ultimate-gps", "uputronics", "ublox-usb"])
def test_install_twice_second_run_changes_nothing(tmp_path: Path, codename: str, boot: str,
                                                  model: str, profile: str) -> None:
    r = make_root(tmp_path, codename, boot, model)
    first = run(INSTALL, "--root", str(r), "--profile", profile, "--skip-venv", sudo_user="pi")
    assert first.returncode == 0, first.stderr
    after_first = tree_digest(r)
    second = run(INSTALL, "--root", str(r), "--profile", profile, "--skip-venv", sudo_user="pi")
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout
    assert tree_digest(r) == after_first

    # `timewatch` on PATH, the service enabled (started at boot)
    assert os.readlink(r / "usr/local/bin/timewatch") == "/opt/timewatch/bin/timewatch"
    assert os.readlink(r / "etc/systemd/system/multi-user.target.wants/timewatch.service") == \
        "/etc/systemd/system/timewatch.service"
    # the operator (who ran sudo) reads the config and the state through the group timewatch
    users, groups = ids(r, "passwd"), ids(r, "group")
    assert groups["timewatch"][1] == ["pi"]
    conf, state = (r / "etc/timewatch/timewatch.toml").stat(), (r / "var/lib/timewatch").stat()
    assert (conf.st_uid, conf.st_gid, oct(conf.st_mode & 0o777)) == \
        (0, groups["timewatch"][0], "0o640")
    assert (state.st_uid, state.st_gid, oct(state.st_mode & 0o777)) == \
        (users["timewatch"][0], groups["timewatch"][0], "0o750")
    # which profiles need a reboot (the firmware config changed) and which start at once
    needs_reboot = profile != "ublox-usb"
    assert ("reboot to apply the firmware changes" in first.stdout) == needs_reboot
    assert ("no reboot needed" in first.stdout) == (not needs_reboot)
    assert "not installed in " in first.stdout and "chrony pps-tools" in first.stdout

    assert (r / "etc/systemd/system/timewatch.service").read_text() == UNIT.read_text()
    assert (r / "etc/udev/rules.d/60-timewatch.rules").exists()
    cfg = (r / "etc/timewatch/timewatch.toml").read_text()
    passwd = (r / "etc/passwd").read_text()
    group = (r / "etc/group").read_text()
    assert "timewatch:" in passwd
    for g in ("dialout", "gpio"):
        line = next(ln for ln in group.splitlines() if ln.startswith(g + ":"))
        assert "timewatch" in line.split(":")[3].split(","), line
    config_txt = (r / boot / "config.txt").read_text()
    cmdline = (r / boot / "cmdline.txt").read_text()
    if profile == "ublox-usb":
        assert "# BEGIN timewatch" not in config_txt  # USB: no overlay, UART left alone
        assert "/dev/ttyACM0" in cfg and 'kind = "pps"' not in cfg
        assert "console=serial0" in cmdline
    else:
        pin = {"adafruit-ultimate-gps": 4, "uputronics": 18}[profile]
        assert f"dtoverlay=pps-gpio,gpiopin={pin}" in config_txt
        block = config_txt[config_txt.index("# BEGIN timewatch"):].splitlines()
        assert block[1] == "[all]" and block[-1] == "# END timewatch"
        assert "enable_uart=1" in config_txt
        assert config_txt.startswith("[all]\narm_64bit=1\n")  # the user's lines are kept
        assert ("dtoverlay=disable-bt" in config_txt) == ("Pi 5" not in model)
        assert (r / boot / "config.txt.timewatch-backup").read_text() == "[all]\narm_64bit=1\n"
        assert "console=serial0" not in cmdline and "console=tty1" in cmdline
        assert 'kind = "pps"' in cfg
    # the template became a valid config
    from timewatch.config import load

    c = load(r / "etc/timewatch/timewatch.toml")
    assert {s.kind for s in c.sources} >= {"gnss", "ntp"}


def test_install_keeps_an_edited_config_and_dry_run_changes_nothing(tmp_path: Path) -> None:
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    assert run(INSTALL, "--root", str(r), "--profile", "adafruit-ultimate-gps",
               "--skip-venv").returncode == 0
    cfg = r / "etc/timewatch/timewatch.toml"
    cfg.write_text(cfg.read_text() + "\n# operator edit\n")
    before = tree_digest(r)
    dry = run(INSTALL, "--root", str(r), "--profile", "uputronics", "--skip-venv", "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert tree_digest(r) == before
    assert run(INSTALL, "--root", str(r), "--profile", "uputronics",
               "--skip-venv").returncode == 0
    assert "# operator edit" in cfg.read_text()
    assert "gpiopin=18" in (r / "boot/firmware/config.txt").read_text()
    assert "gpiopin=4" not in (r / "boot/firmware/config.txt").read_text()


def test_uninstall_removes_what_install_added(tmp_path: Path) -> None:
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    assert run(INSTALL, "--root", str(r), "--profile", "uputronics", "--skip-venv").returncode == 0
    res = run(UNINSTALL, "--root", str(r), "--purge")
    assert res.returncode == 0, res.stderr
    assert not (r / "etc/systemd/system/timewatch.service").exists()
    assert "timewatch" not in (r / "boot/firmware/config.txt").read_text()
    assert "timewatch:" not in (r / "etc/passwd").read_text()


def test_install_makes_the_evidence_key_once_0600_and_prints_its_public_key(
        tmp_path: Path) -> None:
    need_binary("openssl")
    from timewatch.evidence import load_key, public_text

    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    first = run(INSTALL, "--root", str(r), "--profile", "ublox-usb", "--skip-venv")
    assert first.returncode == 0, first.stderr
    key = r / "var/lib/timewatch/evidence.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (key.stat().st_uid, key.stat().st_gid) == (ids(r, "passwd")["timewatch"][0],
                                                      ids(r, "group")["timewatch"][0])
    pub = public_text(load_key(key).public_key())  # what timewatch signs with and key show prints
    assert "made the evidence signing key /var/lib/timewatch/evidence.key" in first.stdout
    assert f"  {pub}\n" in first.stdout
    before = key.read_bytes()
    second = run(INSTALL, "--root", str(r), "--profile", "ublox-usb", "--skip-venv")
    assert second.returncode == 0 and "nothing to change" in second.stdout
    assert key.read_bytes() == before and f"  {pub}\n" in second.stdout  # never replaced


def test_unknown_profile_is_a_clear_error(tmp_path: Path) -> None:
    res = run(INSTALL, "--root", str(tmp_path), "--profile", "nope")
    assert res.returncode == 2 and "no HAT profile 'nope'" in res.stderr


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    sa = need_binary("systemd-analyze")
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    assert run(INSTALL, "--root", str(r), "--profile", "uputronics", "--skip-venv").returncode == 0
    exe = r / "opt/timewatch/bin/timewatch"  # ExecStart must exist where the unit is verified
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    shutil.copytree("/usr/lib/systemd/system", r / "usr/lib/systemd/system", symlinks=True)
    res = subprocess.run([sa, "verify", f"--root={r}", "/etc/systemd/system/timewatch.service"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "timewatch.service" not in res.stderr, res.stderr  # no warning about our unit
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/timewatch",
                 "CapabilityBoundingSet=\n", "DevicePolicy=closed", "DeviceAllow=char-ttyS",
                 "DeviceAllow=char-ttyAMA", "DeviceAllow=char-ttyACM", "DeviceAllow=char-pps",
                 "DeviceAllow=char-gpiochip", "RestrictAddressFamilies=",
                 "SystemCallFilter=@system-service",
                 # issue 19: credentials for the secrets, by credstore name (a missing one is
                 # skipped, so the unit starts without them); the key lives in the state dir
                 "LoadCredential=timewatch-http-token\n", "LoadCredential=timewatch-http-tls-key\n",
                 "LoadCredential=timewatch-influxdb-token\n",
                 "LoadCredential=timewatch-webhook-secret\n"):
        assert line in text, line
    assert not re.search(r"^LoadCredential=[^\n]*:", text, re.M)  # no path: missing is fatal
    assert "evidence.key" in text.split("ReadWritePaths=/var/lib/timewatch")[0].rsplit("\n\n", 1)[-1]


def test_dry_run_shows_the_lines_for_config_txt_and_cmdline_txt(tmp_path: Path) -> None:
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    before = tree_digest(r)
    res = run(INSTALL, "--root", str(r), "--profile", "adafruit-ultimate-gps", "--skip-venv",
              "--dry-run")
    assert res.returncode == 0, res.stderr
    assert tree_digest(r) == before and not (r / "usr").exists()
    out = res.stdout.splitlines()
    i = out.index("install.sh: would write /boot/firmware/config.txt")
    assert out[i + 1:i + 9] == [
        "     [all]", "     arm_64bit=1", "    +# BEGIN timewatch (Adafruit Ultimate GPS HAT)",
        "    +[all]", "    +enable_uart=1", "    +dtoverlay=pps-gpio,gpiopin=4",
        "    +dtoverlay=disable-bt", "    +# END timewatch"]
    j = out.index("install.sh: would write /boot/firmware/cmdline.txt")
    assert out[j + 1:j + 3] == [
        "    -console=serial0,115200 console=tty1 root=PARTUUID=abc rootwait",
        "    +console=tty1 root=PARTUUID=abc rootwait"]
    assert "install.sh: would run: apt-get install -y --no-install-recommends chrony pps-tools" \
        in out
    assert any(ln.endswith("ln -sfn /opt/timewatch/bin/timewatch "
                           f"{r}/usr/local/bin/timewatch") for ln in out)
    assert out[-1].startswith("install.sh: dry run: nothing was changed; reboot to apply")


def test_the_block_applies_to_every_board_after_a_conditional_section(tmp_path: Path) -> None:
    original = "[all]\narm_64bit=1\n[pi4]\ndtoverlay=vc4-kms-v3d\n"
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B", original)
    assert run(INSTALL, "--root", str(r), "--profile", "uputronics",
               "--skip-venv").returncode == 0
    text = (r / "boot/firmware/config.txt").read_text()
    assert text.startswith(original)  # the [pi4] section is as it was ...
    after = text[len(original):].splitlines()  # ... and the block leaves it: [all] first
    assert after[:3] == ["# BEGIN timewatch (Uputronics GPS/RTC HAT)", "[all]", "enable_uart=1"]
    assert run(UNINSTALL, "--root", str(r)).returncode == 0
    assert (r / "boot/firmware/config.txt").read_text() == original


@pytest.mark.parametrize(("have", "missing"), [((), "chrony pps-tools"),
                                               (("chrony",), "pps-tools"),
                                               (("chrony", "pps-tools"), "")])
def test_install_pulls_chrony_and_pps_tools_when_missing(tmp_path: Path, have: tuple[str, ...],
                                                         missing: str) -> None:
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B",
                  packages=have)
    res = run(INSTALL, "--root", str(r), "--profile", "ublox-usb", "--skip-venv", "--dry-run")
    assert res.returncode == 0, res.stderr
    line = "install.sh: would run: apt-get install -y --no-install-recommends"
    if missing:
        assert f"{line} {missing}\n" in res.stdout
    else:
        assert line not in res.stdout


@pytest.mark.parametrize(("sudo_user", "args", "members", "said"), [
    ("pi", [], ["pi"], "pi joins the group timewatch"),
    ("root", [], [], ""),  # a root shell: nobody to add
    ("pi", ["--operator", ""], [], ""),
    (None, ["--operator", "pi"], ["pi"], "log in again, or run: newgrp timewatch"),
    (None, ["--operator", "alice"], [], "warning: no user 'alice'"),
])
def test_the_operator_joins_the_group_timewatch(tmp_path: Path, sudo_user: str | None,
                                                args: list[str], members: list[str],
                                                said: str) -> None:
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    res = run(INSTALL, "--root", str(r), "--profile", "ublox-usb", "--skip-venv", *args,
              sudo_user=sudo_user)
    assert res.returncode == 0, res.stderr
    assert ids(r, "group")["timewatch"][1] == members
    assert said in res.stdout


def test_uninstall_removes_the_command_and_the_enablement(tmp_path: Path) -> None:
    r = make_root(tmp_path, "bookworm", "boot/firmware", "Raspberry Pi 4 Model B")
    assert run(INSTALL, "--root", str(r), "--profile", "ublox-usb", "--skip-venv").returncode == 0
    assert run(UNINSTALL, "--root", str(r)).returncode == 0
    assert not os.path.lexists(r / "usr/local/bin/timewatch")
    assert not os.path.lexists(r / "etc/systemd/system/multi-user.target.wants/"
                                   "timewatch.service")
