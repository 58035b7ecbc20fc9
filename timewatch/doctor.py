"""`timewatch doctor`: checks the machine for everything the config needs, each failure with its fix."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import access, kinds
from .config import Config, SourceConfig

# Where the kernel and firmware keep what we look at (tests point these at fake trees).
PROC = Path("/proc")
SYS_PPS = Path("/sys/class/pps")
BOOT_CONFIGS = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
TIME_DAEMONS = {"chronyd": "chrony", "ntpd": "ntpsec/ntp", "systemd-timesyn": "systemd-timesyncd",
                "gpsd": None}


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    what: str
    detail: str = ""
    fix: str = ""
    warn: bool = False  # shown, but not a failure

    def render(self) -> str:
        tag = "ok  " if self.ok else ("warn" if self.warn else "FAIL")
        s = f"[{tag}] {self.what}" + (f": {self.detail}" if self.detail else "")
        if not self.ok and self.fix:
            s += f"\n       fix: {self.fix}"
        return s


def holders(device: str, proc: Path = PROC) -> list[tuple[int, str]]:
    """(pid, command) of every process with `device` open (other than us)."""
    try:
        target = os.path.realpath(device)
    except OSError:
        return []
    out = []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            for fd in (d / "fd").iterdir():
                if os.path.realpath(fd) == target:
                    out.append((int(d.name), (d / "comm").read_text().strip()))
                    break
        except OSError:
            continue
    return out


def running(proc: Path = PROC) -> dict[str, int]:
    """command -> pid of the running processes (first pid per command)."""
    out: dict[str, int] = {}
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                out.setdefault((d / "comm").read_text().strip(), int(d.name))
            except OSError:
                continue
    return out


def _fix_holder(comm: str, device: str) -> str:
    if comm == "gpsd":
        return ("gpsd owns the receiver: stop it (systemctl disable --now gpsd.socket gpsd) or use "
                "a kind = \"gpsd\" source instead")
    if "getty" in comm:
        return "a login console is on the serial line: raspi-config nonint do_serial_cons 1, reboot"
    return f"stop {comm}, or point the source at another device than {device}"


def check_serial(s: SourceConfig, proc: Path = PROC) -> Iterator[Check]:
    dev = s.device or ""
    if not os.path.exists(dev):
        yield Check(False, f"{s.id}: serial device {dev}", "missing",
                    "check the receiver's cable or HAT; for a HAT: enable_uart=1 in config.txt "
                    "(hw/install.sh does it) and reboot; for USB: see dmesg")
        return
    st = os.stat(dev)
    if not stat.S_ISCHR(st.st_mode):
        yield Check(False, f"{s.id}: serial device {dev}", "not a character device",
                    "point device at the receiver's tty")
        return
    if not os.access(dev, os.R_OK | os.W_OK):
        yield Check(False, f"{s.id}: serial device {dev}", "no read/write permission",
                    "add the user to the dialout group (usermod -aG dialout timewatch)")
    else:
        yield Check(True, f"{s.id}: serial device {dev}", "present and accessible")
    for pid, comm in holders(dev, proc):
        yield Check(False, f"{s.id}: {dev} is held by {comm} (pid {pid})", "",
                    _fix_holder(comm, dev))


def _pps_name(dev: str) -> str:
    return Path(dev).name if not dev.startswith("/sys/") else Path(dev).name


def check_pps(s: SourceConfig, sys_pps: Path = SYS_PPS,
              boot_configs: tuple[Path, ...] = BOOT_CONFIGS, wait_s: float = 2.5) -> Iterator[Check]:
    dev = s.device or ""
    name = _pps_name(dev)
    assert_file = sys_pps / name / "assert"
    if not dev.startswith("/sys/") and not os.path.exists(dev):
        yield Check(False, f"{s.id}: PPS device {dev}", "missing",
                    "add dtoverlay=pps-gpio,gpiopin=N to config.txt (hw/install.sh does it) and "
                    "reboot; check that the pps_gpio module loaded (lsmod | grep pps)")
    elif not dev.startswith("/sys/") and not os.access(dev, os.R_OK):
        yield Check(False, f"{s.id}: PPS device {dev}", "not readable",
                    "the udev rule hw/udev/60-timewatch.rules gives dialout read access")
    else:
        yield Check(True, f"{s.id}: PPS device {dev}", "present")
    if assert_file.exists():
        try:
            first = assert_file.read_text().strip()
            time.sleep(wait_s)
            second = assert_file.read_text().strip()
        except OSError as e:
            yield Check(False, f"{s.id}: PPS pulses", f"cannot read {assert_file}: {e.strerror}")
        else:
            if first != second:
                yield Check(True, f"{s.id}: PPS pulses", f"pulsing (last {second})")
            else:
                yield Check(False, f"{s.id}: PPS pulses", f"no edge in {wait_s:g} s ({second})",
                            "the receiver gives PPS only with a fix: check the antenna, and that "
                            "gpiopin matches the HAT's PPS pin")
    overlays = [p for p in boot_configs if p.exists()]
    if overlays:
        text = overlays[0].read_text(errors="replace")
        if "dtoverlay=pps-gpio" in text:
            yield Check(True, "pps-gpio overlay", f"configured in {overlays[0]}")
        else:
            yield Check(False, "pps-gpio overlay", f"not in {overlays[0]}",
                        "hw/install.sh --profile ... adds it (dtoverlay=pps-gpio,gpiopin=N)",
                        warn=True)


def check_time_daemon(proc: Path = PROC) -> Iterator[Check]:
    procs = running(proc)
    found = [(c, p) for c, p in procs.items() if c in TIME_DAEMONS and TIME_DAEMONS[c]]
    if not found:
        yield Check(False, "time daemon", "none running (chronyd, ntpd, systemd-timesyncd)",
                    "install chrony (apt install chrony): timewatch monitors, it does not "
                    "discipline the clock", warn=True)
        return
    for comm, pid in found:
        state = ""
        if comm == "chronyd":
            try:
                r = subprocess.run(["chronyc", "-n", "-c", "tracking"], capture_output=True,
                                   text=True, timeout=3)
                f = r.stdout.strip().split(",")
                if r.returncode == 0 and len(f) > 4:
                    state = f"following {f[1]} (stratum {f[2]}, offset {float(f[4]):+.6f} s)"
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        yield Check(True, f"time daemon {TIME_DAEMONS[comm]}", state or f"running (pid {pid})")


def check_store(cfg: Config) -> Check:
    path = cfg.store_path
    if access.blocker(path) is not None:
        return Check(False, "store", f"{path}: permission denied", access.fix(path))
    st = path.stat() if path.is_file() else None
    if st is not None and st.st_uid != os.getuid() and not os.access(path, os.W_OK):
        # The operator, in the state's group: reads what the service user writes.
        return Check(True, "store", f"{path} readable (written by the service user "
                                    f"{access.owner(path)})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=2)
        db.execute("CREATE TABLE IF NOT EXISTS _doctor (x)")
        db.execute("DROP TABLE _doctor")
        db.close()
        return Check(True, "store", f"{path} writable")
    except (OSError, sqlite3.Error) as e:
        return Check(False, "store", f"{path}: {e}",
                     f"make {cfg.state_dir} writable by the service user "
                     "(chown timewatch: /var/lib/timewatch)")


def check_ntp(s: SourceConfig, timeout_s: float = 2.0) -> Iterator[Check]:
    import ntplib

    try:
        r = ntplib.NTPClient().request(s.server or "", version=4, port=s.port or 123,
                                       timeout=timeout_s)
    except (ntplib.NTPException, OSError) as e:
        yield Check(False, f"{s.id}: NTP server {s.server}", str(e),
                    "check DNS and that UDP port 123 is open outbound")
        return
    yield Check(True, f"{s.id}: NTP server {s.server}",
                f"answers (stratum {r.stratum}, offset {r.offset:+.6f} s, "
                f"delay {r.delay * 1e3:.1f} ms)")


def check_http(listen: str) -> Check:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            # As the status API binds (allow_reuse_address): connections of a monitor that just
            # stopped, in TIME_WAIT, do not keep the port from it, so they are no failure here.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, int(port)))
            s.listen()
        return Check(True, f"http {listen}", "port free")
    except OSError as e:
        return Check(False, f"http {listen}", f"cannot bind: {e.strerror}",
                     "another process uses the port (ss -ltnp); change [http] listen, or "
                     "stop the other timewatch")


def run_checks(cfg: Config, http_running: bool = False) -> list[Check]:
    checks: list[Check] = [Check(True, "config", f"{cfg.path} is valid")]
    for s in cfg.sources:
        checks.extend(kinds.get(s.kind).doctor_checks(s))  # each kind's own checks
    checks.extend(check_time_daemon())
    checks.append(check_store(cfg))
    if cfg.http_listen and not http_running:
        checks.append(check_http(cfg.http_listen))
    return checks
