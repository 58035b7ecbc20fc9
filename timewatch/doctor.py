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


# An NTS server certificate that expires within this many days is a warning (time to renew).
NTS_CERT_WARN_DAYS = 14
# What to do about each cause of a failed NTS key establishment (sources/nts_ke.py KeError).
NTS_KE_FIX = {
    "config": "point ca_file at a readable PEM file of the CA that signed the server's "
              "certificate",
    "connect": "check server and port (the NTS-KE port, 4460 unless the server's operator "
               "says otherwise; chrony: ntsport) and that TCP to it is open",
    "timeout": "the NTS-KE server did not answer in time: check the path and the firewall "
               "(TCP to the NTS-KE port)",
    "tls": "the server must offer TLS 1.3 on its NTS-KE port: check port (an NTS-KE port, not "
           "another TLS service)",
    "alpn": "the server offers no NTS-KE (ALPN ntske/1) on this port: point port at its NTS-KE "
            "port, or use kind = \"ntp\" for a server without NTS",
    "untrusted": "set ca_file to the CA that signed the server's certificate (or install that "
                 "CA in the system store)",
    "expired": "the server's operator must renew its certificate (chrony: ntsservercert); "
               "until then NTS with it fails",
    "certificate": "the server's certificate is invalid: ask its operator",
    "name": "set server_name to a name the certificate carries (listed above), or have the "
            "certificate reissued for the name you use",
    "protocol": "the server's NTS-KE answer is malformed: report it to its operator",
    "refused": "the server refused NTPv4 with AEAD_AES_SIV_CMAC_256: upgrade it or ask its "
               "operator",
}


def check_nts(s: SourceConfig, timeout_s: float = 5.0) -> Iterator[Check]:
    """An NTS source: its key establishment (TLS 1.3, ALPN, certificate and its expiry date, the
    NTPv4 server it names), then one authenticated exchange with that server."""
    from datetime import UTC, datetime

    from .sources import nts_ke

    host = s.server or ""
    port = s.port or nts_ke.NTS_KE_PORT
    what = f"{s.id}: NTS-KE {host}:{port}"
    try:
        session = nts_ke.key_exchange(
            host, port, name=s.options.get("server_name") or host,
            ca_file=s.options.get("ca_file"),
            ntp_port=s.options.get("ntp_port") or nts_ke.NTP_PORT, timeout_s=timeout_s)
    except nts_ke.KeError as e:
        yield Check(False, what, f"{e.cause}: {e}", NTS_KE_FIX.get(e.cause, ""))
        return
    yield Check(True, what, f"TLS 1.3, ALPN ntske/1, {session.certificate}; NTPv4 server "
                            f"{session.ntp_host}:{session.ntp_port}, {session.cookies_left} "
                            f"cookies")
    if session.not_after is not None:
        left = session.not_after - datetime.now(UTC)
        when = f"{session.not_after:%Y-%m-%d %H:%M} UTC ({left.days} days)"
        if left.days < NTS_CERT_WARN_DAYS:
            yield Check(False, f"{s.id}: NTS certificate", f"expires {when}",
                        "ask the server's operator to renew its certificate before it expires "
                        "(then every key establishment fails: nts.ke_failed)", warn=True)
        else:
            yield Check(True, f"{s.id}: NTS certificate", f"valid until {when}")
    what = f"{s.id}: authenticated NTP with {session.ntp_host}:{session.ntp_port}"
    try:
        offset_s, delay_s = _nts_exchange(session, timeout_s)
    except TimeoutError:
        yield Check(False, what, f"no reply within {timeout_s:g} s",
                    f"UDP port {session.ntp_port} to {session.ntp_host} is blocked, or the "
                    f"server does not serve NTP there")
    except (OSError, ValueError) as e:  # wire.nts.NtsError is a ValueError
        yield Check(False, what, str(e), "the reply was refused: something on the path alters "
                                         "NTP, or the server is broken")
    else:
        yield Check(True, what, f"reply verified (offset {offset_s:+.6f} s, delay "
                                f"{delay_s * 1e3:.1f} ms)")


def _nts_exchange(session: object, timeout_s: float) -> tuple[float, float]:
    """One authenticated exchange (blocking): offset and delay in seconds."""
    import secrets

    from .sources.nts_ke import NtsSession
    from .wire.ntp import ntp_to_unix_ns

    assert isinstance(session, NtsSession)
    xmt = int.from_bytes(secrets.token_bytes(8), "big")
    pkt, pending = session.request(xmt)
    info = socket.getaddrinfo(session.ntp_host, session.ntp_port, 0, socket.SOCK_DGRAM)[0]
    with socket.socket(info[0], socket.SOCK_DGRAM) as u:
        u.settimeout(timeout_s)
        u.connect(info[4])
        t1 = time.time_ns()
        u.send(pkt)
        deadline = time.monotonic() + timeout_s
        failed: ValueError | None = None  # the last datagram refused
        while True:  # a datagram refused is not the end: the genuine reply may follow
            try:
                if time.monotonic() > deadline:
                    raise TimeoutError
                data = u.recv(4096)
            except TimeoutError:
                if failed is not None:
                    raise failed from None
                raise
            t4 = time.time_ns()
            try:
                p = session.accept(data, pending).packet
                break
            except ValueError as e:
                failed = e
    t2, t3 = ntp_to_unix_ns(p.rec_ts, t1), ntp_to_unix_ns(p.xmt_ts, t1)
    return ((t2 - t1) + (t3 - t4)) / 2e9, ((t4 - t1) - (t3 - t2)) / 1e9


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
