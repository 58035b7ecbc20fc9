"""A PTP network of its own for the tests and the bench: two network namespaces joined by a veth
pair (`PtpNet.create`/`remove`, names unique to the caller's tag), and an honest ptp4l master on
side A (`start_master`), software timestamps, UDPv4, E2E, clock class 6.

The monitor's PTP source runs its own ptp4l on side B (its `netns` key). Every process is stopped
by its PID; the namespaces and the veth pair go with `remove`. Nothing here touches the host's
network or clock: the master runs `free_running 1` (it never adjusts a clock) and `masterOnly 1`
(it never follows the rogue masters a test brings). Needs root, `ip` and linuxptp.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The master's announce: a GNSS-locked grandmaster (class 6), as a real one would say.
MASTER_CONFIG = """[global]
masterOnly 1
free_running 1
time_stamping software
network_transport UDPv4
delay_mechanism E2E
domainNumber {domain}
clockClass 6
clockAccuracy 0x21
timeSource 0x20
uds_address {uds}
use_syslog 0
verbose 1
logAnnounceInterval 1
logSyncInterval 0
[{iface}]
"""


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


@dataclass
class PtpNet:
    tag: str
    dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ns_a(self) -> str:
        return f"{self.tag}a"

    @property
    def ns_b(self) -> str:
        return f"{self.tag}b"

    @property
    def veth_a(self) -> str:
        return f"{self.tag}va"

    @property
    def veth_b(self) -> str:
        return f"{self.tag}vb"

    addr_a = "10.77.0.1"
    addr_b = "10.77.0.2"

    def create(self) -> None:
        _run("ip", "netns", "add", self.ns_a)
        _run("ip", "netns", "add", self.ns_b)
        _run("ip", "link", "add", self.veth_a, "type", "veth", "peer", "name", self.veth_b)
        for ns, dev, addr in ((self.ns_a, self.veth_a, self.addr_a),
                              (self.ns_b, self.veth_b, self.addr_b)):
            _run("ip", "link", "set", dev, "netns", ns)
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")

    def remove(self) -> None:
        for p in self.procs:
            stop(p)
        for ns in (self.ns_a, self.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def start_master(self, domain: int = 0) -> subprocess.Popen[bytes]:
        """The honest master: ptp4l on side A."""
        conf = self.dir / f"master-{len(self.procs)}.conf"
        conf.write_text(MASTER_CONFIG.format(domain=domain, uds=self.dir / "master.sock",
                                             iface=self.veth_a))
        log = open(self.dir / "master.log", "ab")  # noqa: SIM115 - the child holds it
        p = subprocess.Popen(["ip", "netns", "exec", self.ns_a, "ptp4l", "-f", str(conf)],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(p)
        return p

    def master_identity(self, timeout_s: float = 20.0) -> str:
        """The honest master's clock identity, once its port is MASTER (ptp4l takes its
        announce receipt timeout, 6 s, to find no better master), asked over its socket."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = subprocess.run(["pmc", "-u", "-b", "0", "-s", str(self.dir / "master.sock"),
                                "-i", str(self.dir / "pmc-master.sock"), "GET DEFAULT_DATA_SET",
                                "GET PORT_DATA_SET"], capture_output=True, text=True, timeout=5)
            fields = dict(line.split(None, 1) for line in r.stdout.splitlines()
                          if line.startswith("\t\t") and len(line.split(None, 1)) == 2)
            if fields.get("portState", "").strip() == "MASTER" and "clockIdentity" in fields:
                return fields["clockIdentity"].strip()
            time.sleep(0.2)
        raise TimeoutError(f"the honest master's ptp4l is not MASTER: {self.log()[-500:]}")

    def log(self) -> str:
        p = self.dir / "master.log"
        return p.read_text(errors="replace") if p.exists() else ""


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
