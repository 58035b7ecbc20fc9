"""PTP reader (`kind = "ptp"`): runs its own passive ptp4l and asks it over the management
protocol every poll (docs/ptp.md).

- It writes a ptp4l config from the source's settings (interface, profile, domain, timestamping)
  into a private directory, with `slaveOnly 1` and `free_running 1`: ptp4l follows the best
  master by the BMCA and measures the offset of the host's clock to it, but never adjusts any
  clock and never becomes a master. Its management socket (`uds_address`) is its own.
- Timestamping: hardware when the source asks for it, or (`auto`) when `ethtool -T` says the
  NIC has hardware transmit and receive stamps and a PTP hardware clock; software otherwise.
  With hardware stamps ptp4l measures against the NIC's clock (PHC), which runs free: each poll
  also measures PHC - host realtime (`phc_ctl IFACE cmp`) so the engine can refer the offset to
  the host's realtime.
- Every `poll_s` it runs `pmc -u -b 0 'GET PORT_DATA_SET' 'GET TIME_STATUS_NP' ...` and emits one
  `ptp` record (timewatch/ptpmgmt.py) with the answers' fields, or with `error` when ptp4l did
  not answer (`unreachable`) or answered something the strict parser refuses (`malformed`).
- ptp4l is a child of the monitor: started at `run()`, restarted when it dies (after up to 1 s,
  doubling to 30 s while it keeps dying, timewatch/backoff.py; back to 1 s once it has run a
  minute), and stopped by
  its PID (SIGTERM, SIGKILL after 2 s) when the reader is cancelled. `setpriv --pdeathsig`
  makes the kernel stop it too if the monitor itself is killed.

The reader never judges the answers: a grandmaster change, a lying master or a stopped ptp4l
are the engine's to find (engine/ptp.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backoff import Backoff
from ..config import SourceConfig
from ..ptpmgmt import PROFILES, PmcError, Ptp, parse_pmc, pmc_commands, record_fields
from . import Emit, now_pair

log = logging.getLogger(__name__)

# pmc waits 100 ms for more answers after the last; ptp4l answers from its socket in
# microseconds. Longer than this means ptp4l is stuck.
PMC_TIMEOUT_S = 3.0
# ptp4l restarts: first after this, doubling up to the maximum while it keeps dying ...
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
# ... and back to the first once it has run this long.
RESTART_STABLE_S = 60.0
# SIGTERM, then this long, then SIGKILL.
STOP_GRACE_S = 2.0
# Lines of ptp4l's own log kept for the message when it dies.
LOG_TAIL_LINES = 8

_PHC_CMP = re.compile(r"offset from CLOCK_REALTIME is (-?\d+)ns")


@dataclass(frozen=True)
class PtpSettings:
    """A ptp source's settings (its `[[sources]]` keys, docs/config.md)."""

    interface: str
    profile: str = "default"
    domain: int | None = None  # None: the profile's
    timestamping: str = "auto"
    poll_s: float = 1.0
    netns: str | None = None  # run ptp4l in this network namespace (`ip netns exec`)
    unicast_masters: tuple[str, ...] = ()  # UDPv4 masters asked by unicast negotiation

    @classmethod
    def of(cls, cfg: SourceConfig) -> PtpSettings:
        opts: dict[str, Any] = dict(getattr(cfg, "options", None) or {})
        iface = opts.get("interface")
        if not iface:
            raise ValueError(f"source {cfg.id}: a ptp source needs an interface")
        return cls(interface=str(iface), profile=str(opts.get("profile") or "default"),
                   domain=opts.get("domain"), timestamping=str(opts.get("timestamping") or "auto"),
                   poll_s=float(cfg.poll_s), netns=opts.get("netns"),
                   unicast_masters=tuple(opts.get("unicast_masters") or ()))

    def domain_number(self) -> int:
        return self.domain if self.domain is not None else int(PROFILES[self.profile]["domain"])


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def hardware_timestamping(interface: str, netns: str | None = None) -> tuple[bool, str]:
    """Whether `ethtool -T` says the interface can stamp PTP in hardware, and its answer
    (or why it could not be asked)."""
    try:
        r = subprocess.run([*netns_prefix(netns), "ethtool", "-T", interface],
                           capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"ethtool -T {interface}: {e}"
    if r.returncode != 0:
        return False, (r.stderr or r.stdout).strip() or f"ethtool exited {r.returncode}"
    return parse_ethtool_hw(r.stdout), r.stdout


def parse_ethtool_hw(text: str) -> bool:
    """True when `ethtool -T` lists hardware transmit, receive and raw-clock stamping and a PTP
    hardware clock (what ptp4l's `time_stamping hardware` needs)."""
    caps = {ln.strip() for ln in text.splitlines()}
    phc = re.search(r"PTP Hardware Clock:\s*(\S+)", text)
    return ({"hardware-transmit", "hardware-receive", "hardware-raw-clock"} <= caps
            and phc is not None and phc.group(1) != "none")


def ptp4l_version(ptp4l: str = "ptp4l") -> tuple[int, ...]:
    try:
        r = subprocess.run([ptp4l, "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    m = re.match(r"\s*(\d+(?:\.\d+)*)", r.stdout or r.stderr)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def ptp4l_config(s: PtpSettings, timestamping: str, uds: str, uds_ro: str | None = None) -> str:
    """ptp4l's config for a passive monitor of `s` (ptp4l(8) option names)."""
    prof = PROFILES[s.profile]
    g = [
        "[global]",
        "slaveOnly 1",  # never a master: it only listens and measures
        "free_running 1",  # measures the offset, never adjusts a clock
        f"time_stamping {timestamping}",
        f"network_transport {prof['network_transport']}",
        f"delay_mechanism {prof['delay_mechanism']}",
        f"domainNumber {s.domain_number()}",
        f"uds_address {uds}",
        "use_syslog 0",
        "verbose 1",
        "summary_interval 6",  # its own log: one summary a minute
    ]
    if uds_ro is not None:
        g.append(f"uds_ro_address {uds_ro}")
    if "dataset_comparison" in prof:
        g.append(f"dataset_comparison {prof['dataset_comparison']}")
    if "ptp_dst_mac" in prof:
        g.append(f"ptp_dst_mac {prof['ptp_dst_mac']}")
    out = g
    if s.unicast_masters:
        out += ["", "[unicast_master_table]", "table_id 1", "logQueryInterval 2"]
        out += [f"UDPv4 {a}" for a in s.unicast_masters]
    out += ["", f"[{s.interface}]"]
    if s.unicast_masters:
        out.append("unicast_master_table 1")
    return "\n".join(out) + "\n"


class PtpReader:
    """One ptp source: its own ptp4l, asked every `poll_s` (see the module docstring)."""

    def __init__(self, cfg: SourceConfig, emit: Emit, *, settings: PtpSettings | None = None,
                 restart_initial_s: float = RESTART_INITIAL_S,
                 restart_max_s: float = RESTART_MAX_S, ptp4l: str = "ptp4l", pmc: str = "pmc"):
        self.cfg = cfg
        self.emit = emit
        self.s = settings or PtpSettings.of(cfg)
        if self.s.profile not in PROFILES:
            raise ValueError(f"source {cfg.id}: unknown PTP profile {self.s.profile!r}")
        self.ptp4l = shutil.which(ptp4l) or ptp4l
        self.pmc = shutil.which(pmc) or pmc
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0  # how many times ptp4l was started
        self.dir: Path | None = None
        self.timestamping = "software"
        self.backoff = Backoff(restart_initial_s, restart_max_s)
        self._restart_at: float | None = None  # monotonic time of the next start
        self._started_at = 0.0
        self._death: str | None = None  # why the last ptp4l ended
        self._pmc_n = 0

    # -- ptp4l's life ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Choose the timestamping and write ptp4l's config into a private directory."""
        mode = self.s.timestamping
        if mode == "auto":
            hw, _ = hardware_timestamping(self.s.interface, self.s.netns)
            mode = "hardware" if hw else "software"
        self.timestamping = mode
        self.dir = Path(tempfile.mkdtemp(prefix=f"timewatch-ptp-{self.cfg.id}-"))
        ro = str(self.dir / "ptp4l-ro.sock") if ptp4l_version(self.ptp4l) >= (4,) else None
        (self.dir / "ptp4l.conf").write_text(
            ptp4l_config(self.s, mode, str(self.uds), ro), encoding="utf-8")

    @property
    def uds(self) -> Path:
        assert self.dir is not None
        return self.dir / "ptp4l.sock"

    def start(self) -> None:
        assert self.dir is not None
        cmd = [*netns_prefix(self.s.netns), self.ptp4l, "-f", str(self.dir / "ptp4l.conf")]
        setpriv = shutil.which("setpriv")
        if setpriv:  # the kernel stops ptp4l if the monitor dies without stopping it
            cmd = [setpriv, "--pdeathsig", "TERM", *cmd]
        logf = open(self.dir / "ptp4l.log", "ab")  # noqa: SIM115 - the child holds it
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logf.close()
        self.starts += 1
        self._started_at = time.monotonic()
        self._restart_at = None
        log.info("%s: ptp4l started (pid %d, %s timestamping on %s, domain %d)", self.cfg.id,
                 self.proc.pid, self.timestamping, self.s.interface, self.s.domain_number())

    def stop(self) -> None:
        """Stop ptp4l by its PID: SIGTERM, SIGKILL after STOP_GRACE_S."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(STOP_GRACE_S)
        except ProcessLookupError:
            pass

    def cleanup(self) -> None:
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def log_tail(self) -> str:
        if self.dir is None:
            return ""
        try:
            lines = (self.dir / "ptp4l.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-LOG_TAIL_LINES:])

    def check_process(self) -> str | None:
        """Keep ptp4l running: notice a death, restart when its back-off is over. Returns why
        ptp4l is not running now (None when it is)."""
        now = time.monotonic()
        p = self.proc
        if p is not None:
            rc = p.poll()
            if rc is None:
                if now - self._started_at >= RESTART_STABLE_S:
                    self.backoff.reset()
                return None
            self.proc = None
            delay = self.backoff.next()
            self._restart_at = now + delay
            self._death = f"ptp4l (pid {p.pid}) exited with code {rc}"
            log.warning("%s: %s; restart in %.0f s; its last words: %s", self.cfg.id,
                        self._death, delay, self.log_tail())
        if self._restart_at is not None and now >= self._restart_at:
            try:
                self.start()
                return "ptp4l restarted, not answering yet"
            except OSError as e:
                delay = self.backoff.next()
                self._restart_at = now + delay
                self._death = f"ptp4l cannot start: {e}"
                log.warning("%s: %s; retry in %.0f s", self.cfg.id, self._death, delay)
        wait = (self._restart_at - now) if self._restart_at is not None else 0.0
        return f"{self._death or 'ptp4l not running'}; restart in {max(0.0, wait):.0f} s"

    # -- one poll ------------------------------------------------------------------------------
    def phc_offset_ns(self) -> int | None:
        """PHC - host realtime (hardware timestamping), from `phc_ctl IFACE cmp` (which prints
        realtime - PHC); None when it cannot be measured."""
        try:
            r = subprocess.run([*netns_prefix(self.s.netns), "phc_ctl", self.s.interface, "cmp"],
                               capture_output=True, text=True, timeout=PMC_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return None
        m = _PHC_CMP.search(r.stdout + r.stderr)
        return -int(m.group(1)) if m else None

    def ask(self) -> Ptp:
        """Run pmc once and build the record (blocking: called in a thread)."""
        assert self.dir is not None
        self._pmc_n += 1
        client = self.dir / f"pmc.{self._pmc_n % 2}.sock"
        cmd = [self.pmc, "-u", "-b", "0", "-d", str(self.s.domain_number()), "-s", str(self.uds),
               "-i", str(client), *pmc_commands()]
        src = self.cfg.id
        phc = self.phc_offset_ns() if self.timestamping == "hardware" else None
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=PMC_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rx, raw = now_pair()
            return Ptp(src, rx, "unreachable", f"pmc did not return within {PMC_TIMEOUT_S} s",
                       self.timestamping, raw_ns=raw)
        except OSError as e:
            rx, raw = now_pair()
            return Ptp(src, rx, "unreachable", f"pmc: {e}", self.timestamping, raw_ns=raw)
        finally:
            client.unlink(missing_ok=True)
        rx, raw = now_pair()
        try:
            answers = parse_pmc(r.stdout)
        except PmcError as e:
            return Ptp(src, rx, "malformed", str(e), self.timestamping, raw_ns=raw)
        if not answers:
            why = (r.stderr.strip().splitlines() or [f"pmc exited {r.returncode}"])[-1]
            return Ptp(src, rx, "unreachable", f"ptp4l did not answer ({why})",
                       self.timestamping, raw_ns=raw)
        try:
            fields = record_fields(answers)
        except PmcError as e:
            return Ptp(src, rx, "malformed", str(e), self.timestamping, raw_ns=raw)
        return Ptp(src, rx, timestamping=self.timestamping, phc_offset_ns=phc, raw_ns=raw,
                   **fields)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.prepare)
            try:
                self.start()
            except OSError as e:
                self._death = f"ptp4l cannot start: {e}"
                self._restart_at = time.monotonic() + self.backoff.next()
                log.warning("%s: %s", self.cfg.id, self._death)
            next_t = loop.time() + self.s.poll_s
            while True:
                await asyncio.sleep(max(0.0, next_t - loop.time()))
                next_t = max(next_t + self.s.poll_s, loop.time())
                down = self.check_process()
                if down is not None:
                    rx, raw = now_pair()
                    self.emit(Ptp(self.cfg.id, rx, "unreachable", down, self.timestamping,
                                  raw_ns=raw))
                    continue
                self.emit(await asyncio.to_thread(self.ask))
        finally:
            # In a thread: stopping ptp4l may wait STOP_GRACE_S, which the loop must not.
            await asyncio.to_thread(self.cleanup)



# -- doctor --------------------------------------------------------------------------------------
# How long `doctor` listens for a grandmaster: ptp4l's announce receipt timeout (3 x 2 s) plus
# two announces to qualify a master, with margin.
DOCTOR_LISTEN_S = 15.0


def doctor_checks(cfg: SourceConfig, listen_s: float = DOCTOR_LISTEN_S) -> Any:
    """`timewatch doctor` for a ptp source: ptp4l and pmc installed, the interface there, the
    timestamping it needs, and a grandmaster seen in its domain (its own ptp4l, briefly)."""
    from ..doctor import Check

    s = PtpSettings.of(cfg)
    name = f"{cfg.id}: PTP"
    missing = [b for b in ("ptp4l", "pmc") if shutil.which(b) is None]
    if missing:
        yield Check(False, f"{name} tools", f"{', '.join(missing)} not found",
                    "apt-get install linuxptp")
        return
    version = ".".join(map(str, ptp4l_version())) or "?"
    yield Check(True, f"{name} tools", f"ptp4l {version}")
    try:
        r = subprocess.run([*netns_prefix(s.netns), "ip", "-o", "link", "show", s.interface],
                           capture_output=True, text=True, timeout=5)
        ok, why = r.returncode == 0, (r.stderr.strip() or r.stdout.strip())
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    where = f" in network namespace {s.netns}" if s.netns else ""
    if not ok:
        yield Check(False, f"{name} interface {s.interface}{where}", why or "not found",
                    "set `interface` to the port facing the PTP network (`ip link` lists them)")
        return
    state = "up" if ",UP" in why or "<UP" in why else "down"
    yield Check(state == "up", f"{name} interface {s.interface}{where}", f"exists, {state}",
                f"ip link set {s.interface} up")
    hw, text = hardware_timestamping(s.interface, s.netns)
    sw = "software-transmit" in text and "software-receive" in text
    if s.timestamping == "hardware" and not hw:
        yield Check(False, f"{name} timestamping", "hardware asked for, but ethtool -T "
                    f"{s.interface} lists no hardware stamps and PTP clock",
                    "use a NIC with PTP hardware timestamps, or timestamping = \"software\"")
        return
    if not hw and not sw:
        yield Check(False, f"{name} timestamping", f"ethtool -T {s.interface}: "
                    f"{text.strip().splitlines()[-1] if text.strip() else 'no answer'}",
                    "the driver stamps no PTP packets: use another interface")
        return
    mode = "hardware" if (hw and s.timestamping != "software") else "software"
    yield Check(True, f"{name} timestamping", f"{mode} (ethtool -T: hardware "
                f"{'yes' if hw else 'no'}; bound floor {'1 us' if mode == 'hardware' else '100 us'})")
    yield _domain_seen(cfg, s, listen_s)


def _domain_seen(cfg: SourceConfig, s: PtpSettings, listen_s: float) -> Any:
    """Run the source's own ptp4l for up to `listen_s` and ask it for a grandmaster."""
    from ..doctor import Check

    what = f"{cfg.id}: PTP domain {s.domain_number()} on {s.interface}"
    r = PtpReader(cfg, lambda o: None, settings=s)
    try:
        r.prepare()
        r.start()
        deadline = time.monotonic() + listen_s
        last = None
        while time.monotonic() < deadline:
            if r.proc is None or r.proc.poll() is not None:
                return Check(False, what, f"ptp4l exited: {r.log_tail()}",
                             "check the interface and the profile's transport")
            last = r.ask()
            if last.gm_present and last.port_state in ("SLAVE", "UNCALIBRATED"):
                return Check(True, what, f"grandmaster {last.parent_gm_identity} (class "
                             f"{last.gm_clock_class}, priority1 {last.gm_priority1}, "
                             f"{last.steps_removed} steps away)")
            time.sleep(0.5)
        state = last.port_state if last is not None and last.error is None else "no answer"
        return Check(False, what, f"no grandmaster announced within {listen_s:.0f} s "
                     f"(ptp4l: {state})",
                     "check the domain number, the profile, and that the switch forwards PTP "
                     "(UDP 319/320 to 224.0.1.129, or Ethernet 01:1B:19:00:00:00)")
    except OSError as e:
        return Check(False, what, f"cannot run ptp4l: {e}", "apt-get install linuxptp")
    finally:
        r.cleanup()
