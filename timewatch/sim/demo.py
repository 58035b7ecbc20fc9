"""`timewatch demo`: the real monitor against a simulated receiver, PPS and NTP servers, live.

What runs (no root, no network, no hardware; Linux routes all of 127/8 to lo):
- a GNSS receiver (`sim.receiver.PtyReceiver`) writing NMEA at 9600-baud timing to a
  pseudo-terminal, read by the REAL serial reader (`sources/serial.py`) through the symlink
  `<state>/gnss0.tty`, as it would read /dev/serial0;
- its PPS output (`sim.livepps.LivePps`, edges from `sim.pps.PpsSim` in real time, in phase with
  the receiver's labels: both use the same `gnss_error_ns` function);
- four NTP servers (`sim.ntpserver`) on 127.0.0.21-.24, polled by the real NTP reader, each of
  its own operator (trust group) unless a scenario groups them;
- the monitor in-process (`Runner`): engine, embedded store, event log, trace, status API.

A `Plan` is a list of `Stage`s on a timeline (seconds from start, scalable for tests): each stage
changes the simulators (an NTP server's `Behaviour`, the receiver's and the PPS's fault functions)
and is announced in the view. The default plan: clean start, a rogue NTP server, a GNSS time push,
recovery. `--scenario NAME` runs one scenario of the catalogue (`sim.scenarios`: its live action,
the sources it may accuse, its detection codes, its window) after a learning lead; one that
cannot be driven live (`host_step` would step this machine's clock) is refused with the reason
and a pointer at `timewatch simulate` + `timewatch replay`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..config import Config, parse
from ..errors import UsageError
from ..records import Event, Output, Snapshot, SourceStatus
from ..runner import Runner, build_live_sinks
from ..textfmt import fmt_evidence, fmt_s
from .livepps import LiveHostClock, LivePps
from .nmeagen import NmeaSim
from .ntpserver import start_servers
from .pps import PpsSim
from .receiver import PtyReceiver
from .scenarios import SCENARIOS
from .world import World, now_ns

log = logging.getLogger(__name__)

# Loopback addresses of the simulated servers (all of 127.0.0.0/8 is local on Linux).
SERVER_HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24")
SERVER_IDS = ("sim-a", "sim-b", "sim-c", "sim-d")
# One operator each (docs/threats.md: 4+ servers of >= 3 operators).
DEFAULT_GROUPS = {"sim-a": "op-a", "sim-b": "op-b", "sim-c": "op-c", "sim-d": "op-d"}
# Unprivileged port, so the demo needs no root.
SERVER_PORT = 12123
# Poll every 2 s so the story fits in two minutes (real servers: 16-64 s).
DEMO_POLL_S = 2.0
GNSS_ID, PPS_ID = "gnss0", "pps0"
# The simulated antenna (NmeaSim's default) is the configured one: no survey-in needed.
ANTENNA = (48.8566, 2.3522, 35.0)
# Alerts clear after 10 s released instead of 120 s, so recovery shows within the demo.
DEMO_HOLD_DOWN_S = 10.0
# Snapshot once a second for the live view (the default is 10 s).
DEMO_SNAPSHOT_S = 1.0
# The default timeline (seconds at scale 1): under two minutes in all.
DEFAULT_DURATION_S = 115.0
ROGUE_AT_S, PUSH_AT_S, RECOVER_AT_S = 25.0, 55.0, 90.0
ROGUE_OFFSET_S = 0.150  # far beyond any loopback error bound
PUSH_RATE = 10e-6  # s/s: docs/threats.md #7 (gnss_push_fast, >= 10 us/s)
# Scenario mode: the attack starts after this lead (PPS numbering and phase line, the holdover's
# 30 s minimum span, the NTP clock filters), and the run goes on for the scenario's window.
SCENARIO_LEAD_S = 40.0
# Status API: a free port chosen by the kernel (no clash with a monitor on 9470).
DEFAULT_HTTP = "127.0.0.1:0"
# The interval column spans the consensus +- this (PPS is a few us, loopback NTP a few 0.1 ms).
VIEW_RANGE_S = 1e-3
VIEW_WIDTH = 33  # characters of the interval column (odd: the consensus has the middle one)
# Narrower terminals than this get each reason on its own lines under the source, and a
# narrower interval column (none below MIN_BAR characters); MIN_REASON: the reason's least room.
MIN_REASON = 30
MIN_BAR = 9
REASON_INDENT = 4
# Piped output: a table every this many seconds (events are printed as they come).
PLAIN_TABLE_EVERY_S = 10.0


@dataclass(frozen=True)
class Stage:
    """At `at_s` from start: announce `title`, then `action(world)`. Detected when an alert
    with one of `codes` names one of `suspects` (or, with no suspects, any such alert)."""

    at_s: float
    title: str
    action: Callable[[World], None] | None = None
    suspects: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    duration_s: float
    stages: tuple[Stage, ...]
    groups: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    note: str = ""

    @property
    def expected(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.codes)


def default_plan(scale: float = 1.0) -> Plan:
    """Clean start, rogue NTP server, GNSS time push, recovery; times multiplied by `scale`."""

    def rogue(w: World) -> None:
        w.b("sim-d").offset_s = ROGUE_OFFSET_S

    def recover(w: World) -> None:
        w.honest()

    return Plan("default", DEFAULT_DURATION_S * scale, (
        Stage(0.0, "clean start: every source honest; the engine numbers the PPS edges with the "
                   "receiver's labels and learns the host oscillator"),
        Stage(ROGUE_AT_S * scale, f"rogue NTP server: sim-d now answers "
              f"{ROGUE_OFFSET_S * 1e3:+.0f} ms off (a compromised server)", rogue, ("sim-d",),
              ("source.falseticker", "time.step")),
        Stage(PUSH_AT_S * scale, f"GNSS time push: the receiver's labels and its PPS phase drift "
              f"together at {PUSH_RATE * 1e6:+.0f} us/s (a spoofer pulling the time)",
              lambda w: w.push(PUSH_RATE), (GNSS_ID, PPS_ID),
              ("time.drift", "time.step", "source.falseticker")),
        Stage(RECOVER_AT_S * scale, "recovery: sim-d answers honestly again; the spoofer is off "
              "and the receiver steps back to true time; alerts clear after their "
              f"{DEMO_HOLD_DOWN_S:.0f} s hold-down", recover),
    ))


# -- scenarios of the catalogue, live ----------------------------------------------------------


def scenario_names() -> list[str]:
    """The catalogue's scenarios that the demo knows: live, or explained why not."""
    return sorted(n for n, sc in SCENARIOS.items() if sc.live is not None or sc.not_live)


def scenario_plan(name: str, duration_s: float | None = None) -> Plan:
    """The live plan of a scenario of the catalogue (`sim.scenarios`): a learning lead, then its
    live action, detected by its codes. UsageError for unknown or not-live ones."""
    sc = SCENARIOS.get(name)
    if sc is not None and sc.not_live:
        raise UsageError(
            f"demo --scenario {name}: cannot be driven live: {sc.not_live}. Run it as a trace: "
            f"timewatch simulate --scenario {name} -o t.jsonl && timewatch replay t.jsonl")
    if sc is None or sc.live is None:
        live = sorted(n for n, x in SCENARIOS.items() if x.live is not None)
        traces = [n for n, x in SCENARIOS.items() if x.not_live]
        raise UsageError(f"demo --scenario: unknown {name!r} (live: {', '.join(live)}; "
                         f"as traces only: {', '.join(traces)})")
    lv = sc.live
    duration = duration_s if duration_s is not None else SCENARIO_LEAD_S + lv.window_s
    return Plan(name, duration, (
        Stage(0.0, f"scenario {name}: learning for {SCENARIO_LEAD_S:.0f} s, every source honest"),
        Stage(SCENARIO_LEAD_S, f"attack: {lv.what}", lv.action, lv.suspects, sc.codes),
    ), dict(lv.groups or DEFAULT_GROUPS), lv.note)


# -- config ----------------------------------------------------------------------------------


def demo_config(state_dir: str, tty_path: str, groups: dict[str, str],
                port: int = SERVER_PORT, http: str = DEFAULT_HTTP) -> Config:
    return parse({
        "monitor": {"host": "demo", "state_dir": state_dir},
        "http": {"listen": http},
        "detect": {"snapshot_interval_s": DEMO_SNAPSHOT_S, "hold_down_s": DEMO_HOLD_DOWN_S},
        "sources": [
            {"id": GNSS_ID, "kind": "gnss", "device": tty_path, "baud": 9600, "group": "gnss",
             "position": list(ANTENNA)},
            {"id": PPS_ID, "kind": "pps", "device": "sim:live-pps", "label_from": GNSS_ID,
             "group": "gnss"},
        ] + [{"id": sid, "kind": "ntp", "server": host, "port": port, "poll_s": DEMO_POLL_S,
              "group": groups[sid]} for sid, host in zip(SERVER_IDS, SERVER_HOSTS, strict=True)],
    }, "<demo>")


# -- the view --------------------------------------------------------------------------------


def interval_bar(st: SourceStatus, centre_s: float | None, width: int = VIEW_WIDTH,
                 range_s: float = VIEW_RANGE_S) -> str:
    """The source's interval (offset +- bound) against the consensus, on +-range_s: `=` covers
    the interval, `o` is the offset, `|` the consensus; `<`/`>` where it runs off the scale."""
    if st.offset_s is None or st.bound_s is None or centre_s is None:
        return " " * width
    half = width // 2
    per = range_s / half

    def col(x: float) -> float:
        return half + (x - centre_s) / per

    lo, hi, mid = col(st.offset_s - st.bound_s), col(st.offset_s + st.bound_s), col(st.offset_s)
    cells = [" "] * width
    cells[half] = "|"
    for i in range(width):
        if lo - 0.5 <= i <= hi + 0.5:
            cells[i] = "="
    if 0 <= round(mid) < width:
        cells[round(mid)] = "o"
    if lo < -0.5:
        cells[0] = "<"
    if hi > width - 0.5:
        cells[-1] = ">"
    return "".join(cells)


def fit(lines: list[str], cols: int) -> list[str]:
    """Each line wrapped to `cols` characters, continuation lines indented 4 more than its own
    indent; nothing is cut off."""
    out: list[str] = []
    for ln in lines:
        if len(ln) <= cols:
            out.append(ln)
            continue
        indent = " " * (len(ln) - len(ln.lstrip()) + 4)
        out += textwrap.wrap(ln, max(cols, len(indent) + 10), subsequent_indent=indent,
                             break_long_words=True, drop_whitespace=True) or [""]
    return out


class DemoView:
    """A sink that draws the monitor's state: a refreshing screen on a TTY, lines when piped."""

    name = "demo-view"

    def __init__(self, out: TextIO, tty: bool, plan: Plan, t0: float):
        self.out, self.tty, self.plan, self.t0 = out, tty, plan, t0
        self.story: list[str] = []
        self.stage = 0  # stages announced so far
        self.active: dict[str, Event] = {}  # alert id -> alert
        self.raised_at: dict[str, float] = {}  # alert id -> seconds from start
        self.http: str | None = None
        self.state_dir = ""
        self._last_plain = float("-inf")
        self._last: Snapshot | None = None
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        with self._lock:
            line = f"[{self.elapsed():5.1f}s] {text}"
            self.story.append(line)
            if not self.tty:
                print(line, file=self.out, flush=True)

    def announce(self, n: int, stage: Stage) -> None:
        self.stage = n
        self.say(f"== stage {n}/{len(self.plan.stages)}: {stage.title}")

    def handle(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Event):
                srcs = ",".join(o.sources) or "(host-wide)"
                if o.type == "alert":
                    self.active[o.id] = o
                    self.raised_at[o.id] = self.elapsed()
                    self.say(f"ALERT {o.code} {srcs} [{o.severity}]: {o.message}")
                    self.say(f"      evidence: {fmt_evidence(o.evidence, limit=12)}")
                else:
                    self.active.pop(o.id, None)
                    self.say(f"clear {o.code} {srcs}")
            elif isinstance(o, Snapshot):
                self._last = o
                self._draw(o)

    def table(self, s: Snapshot, cols: int | None = None) -> list[str]:
        """The sources with their intervals against the consensus, and the consensus line.

        `cols` None: one line per source, the reason last (piped output). A terminal width: the
        lines fit it; narrower than WIDE_COLUMNS the interval column shrinks (or goes) and each
        reason is wrapped on the lines under its source, so none is cut off."""
        c = s.consensus_offset_s
        srcs = s.sources
        w_src = max([6, *(len(st.src) for st in srcs)])
        w_kind = max([4, *(len(st.kind) for st in srcs)])
        w_grp = max([5, *(len(st.group) for st in srcs)])

        def left(src: str, kind: str, grp: str, verdict: str, off: str, bound: str) -> str:
            return (f"{src:{w_src}} {kind:{w_kind}} {grp:{w_grp}} {verdict:11} {off:>11} "
                    f"{bound:>10}")

        fixed = len(left("", "", "", "", "", ""))
        wide = cols is None or cols >= fixed + 2 + VIEW_WIDTH + 2 + MIN_REASON
        if wide:
            bar_w = VIEW_WIDTH
        else:
            assert cols is not None
            bar_w = min(VIEW_WIDTH, cols - fixed - 2)
            bar_w -= 1 - bar_w % 2  # odd: the consensus has the middle cell
            bar_w = bar_w if bar_w >= MIN_BAR else 0
        rng = fmt_s(VIEW_RANGE_S, False)
        scale = next((t for t in (f"interval vs consensus +-{rng}", f"vs consensus +-{rng}")
                      if len(t) <= bar_w), f"+-{rng}")
        head = left("source", "kind", "group", "verdict", "offset", "+- bound")
        if bar_w:
            head += f"  {scale:{bar_w}}"
        rows = [head + "  reason" if wide else head.rstrip()]
        for st in srcs:
            line = left(st.src, st.kind, st.group, st.verdict, fmt_s(st.offset_s),
                        fmt_s(st.bound_s, False))
            if bar_w:
                line += f"  {interval_bar(st, c, width=bar_w)}"
            if wide:
                rows.append(f"{line}  {st.reason}")
            else:
                assert cols is not None
                rows.append(line.rstrip())
                rows += textwrap.wrap(st.reason, cols, initial_indent=" " * REASON_INDENT,
                                      subsequent_indent=" " * REASON_INDENT) or []
        cons = (f"{fmt_s(c)} +- {fmt_s(s.consensus_bound_s, False)}" if c is not None
                else "none")
        ho = f"{s.holdover_ppm:+.3f} ppm" if s.holdover_ppm is not None else "learning"
        rows.append(f"consensus: {s.groups_agreeing}/{s.groups_voting} trust groups agree "
                    f"({'quorum' if s.quorum else 'NO QUORUM'}), host clock vs consensus "
                    f"{cons}; holdover oscillator {ho}")
        return rows

    def alert_lines(self) -> list[str]:
        if not self.active:
            return ["  (none)"]
        out = []
        for aid, e in self.active.items():
            out.append(f"  {e.code} {','.join(e.sources) or '(host-wide)'} [{e.severity}] "
                       f"since {self.raised_at.get(aid, 0.0):.1f} s: {e.message}")
            out.append(f"      {fmt_evidence(e.evidence)}")
        return out

    def _draw(self, s: Snapshot) -> None:
        with self._lock:
            if self.tty:
                cols, rows = shutil.get_terminal_size((120, 40))
                head = [f"timewatch demo ({self.plan.name}): {self.elapsed():5.1f} / "
                        f"{self.plan.duration_s:.0f} s, stage {self.stage}/"
                        f"{len(self.plan.stages)}",
                        f"state {self.state_dir}   status API "
                        f"{'http://' + self.http + '/status.json' if self.http else 'off'}", ""]
                body = self.table(s, cols) + ["", "active alerts (with their evidence):"]
                body += self.alert_lines() + ["", "timeline and events:"]
                top = fit(head + body, cols)
                story = fit(self.story[-rows:], cols)
                room = max(3, rows - len(top) - 1)
                lines = top + story[-room:]
                self.out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
                self.out.flush()
            elif self.elapsed() - self._last_plain >= PLAIN_TABLE_EVERY_S:
                self._last_plain = self.elapsed()
                print("\n".join(f"[{self.elapsed():5.1f}s]   {r}" for r in self.table(s)),
                      file=self.out, flush=True)

    def close(self) -> None:
        pass


# -- running it ------------------------------------------------------------------------------


@dataclass
class DemoResult:
    runner: Runner
    view: DemoView
    plan: Plan
    trace: Path
    stage_t_ns: dict[int, int]  # stage index -> realtime ns when it began
    start_ns: int
    http: str | None


async def run_demo(state_dir: str, out: TextIO, tty: bool, plan: Plan,
                   port: int = SERVER_PORT, http: str = DEFAULT_HTTP,
                   seed: int = 1) -> DemoResult:
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    try:
        servers = await start_servers(list(SERVER_HOSTS), port)
    except OSError as e:
        raise UsageError(f"cannot start the simulated NTP servers on 127.0.0.21-24:{port}: {e} "
                         "(another demo running?)") from e
    tty_path = Path(state_dir).resolve() / f"{GNSS_ID}.tty"
    nmea = NmeaSim(random.Random(f"{seed}|nmea"), position=ANTENNA, src=GNSS_ID)
    pps = PpsSim(random.Random(f"{seed}|pps"), LiveHostClock(), src=PPS_ID)
    receiver = PtyReceiver(tty_path, nmea)
    world = World(dict(zip(SERVER_IDS, servers, strict=True)), nmea, pps)
    cfg = demo_config(state_dir, str(tty_path), plan.groups, port, http)
    trace = Path(state_dir) / "demo-trace.jsonl.gz"
    view = DemoView(out, tty, plan, time.monotonic())
    view.state_dir = state_dir
    sinks = build_live_sinks(cfg)
    http_addr = next((getattr(s, "address", None) for s in sinks if s.name == "http"), None)
    view.http = http_addr
    runner = Runner(cfg, record=trace, duration_s=plan.duration_s, sinks=[*sinks, view],
                    readers={PPS_ID: LivePps.factory(pps)})
    loop = asyncio.get_running_loop()
    start_ns = now_ns()
    stage_t: dict[int, int] = {}

    def begin(i: int, st: Stage) -> None:
        stage_t[i] = now_ns()
        view.announce(i + 1, st)
        if st.action is not None:
            st.action(world)

    view.say(f"receiver: NMEA at 9600 baud on {tty_path} (read by the serial reader), PPS "
             f"{PPS_ID} in phase with it; NTP: {len(servers)} servers on {SERVER_HOSTS[0]}-.24:"
             f"{port}, polled every {DEMO_POLL_S:g} s; groups: "
             + ", ".join(f"{sid} {g}" for sid, g in plan.groups.items()))
    if http_addr:
        view.say(f"status API: http://{http_addr}/status.json (and /metrics)")
    if plan.note:
        view.say(f"note: {plan.note}")
    handles = [loop.call_later(st.at_s, begin, i, st) for i, st in enumerate(plan.stages)
               if st.at_s < plan.duration_s]
    receiver.start()
    try:
        await runner.run()
    finally:
        for h in handles:
            h.cancel()
        receiver.close()
        for s in servers:
            s.close()
    return DemoResult(runner, view, plan, trace, stage_t, start_ns, http_addr)


@dataclass(frozen=True)
class Finding:
    stage: Stage
    began_s: float | None  # from start; None: the run ended before the stage
    alert: Event | None  # the first alert that detects it
    after_s: float | None  # from the stage's start to that alert


def findings(res: DemoResult) -> list[Finding]:
    alerts = [e for e in res.runner.events if e.type == "alert"]
    out = []
    for i, st in enumerate(res.plan.stages):
        if not st.codes:
            continue
        t = res.stage_t_ns.get(i)
        if t is None:
            out.append(Finding(st, None, None, None))
            continue
        hit = next((e for e in alerts if e.t_ns >= t and e.code in st.codes and
                    (not st.suspects or set(e.sources) & set(st.suspects))), None)
        out.append(Finding(st, (t - res.start_ns) / 1e9, hit,
                           (hit.t_ns - t) / 1e9 if hit is not None else None))
    return out


def alert_gaps(res: DemoResult, index: int) -> list[tuple[float, float]]:
    """Gaps (seconds from start) in the alerts that detect stage `index`, from its first
    detection to the end of the attack (the next stage, or the end of the run): an attack
    still going on must keep an alert active the whole time."""
    st = res.plan.stages[index]
    t0 = res.stage_t_ns.get(index)
    if t0 is None or not st.codes:
        return []
    nxt = res.stage_t_ns.get(index + 1)
    end = nxt if nxt is not None else max((e.t_ns for e in res.runner.events), default=t0)
    spans: list[tuple[int, int]] = []
    opened: dict[str, int] = {}
    for e in res.runner.events:
        hit = e.code in st.codes and (not st.suspects or set(e.sources) & set(st.suspects))
        if not hit:
            continue
        if e.type == "alert" and e.t_ns >= t0:
            opened.setdefault(e.id, e.t_ns)
        elif e.type == "clear" and e.id in opened:
            spans.append((opened.pop(e.id), e.t_ns))
    spans += [(t, end) for t in opened.values()]
    if not spans:
        return []
    spans.sort()
    gaps = []
    covered = spans[0][0]
    for a, b in spans:
        if a > covered and a < end:
            gaps.append((covered, a))
        covered = max(covered, b)
    if covered < end:
        gaps.append((covered, end))
    return [((a - res.start_ns) / 1e9, (b - res.start_ns) / 1e9) for a, b in gaps]


def false_accusations(res: DemoResult) -> list[Event]:
    """Alerts naming a source that no stage had attacked by then."""
    out = []
    for e in res.runner.events:
        if e.type != "alert" or not e.sources:
            continue
        attacked: set[str] = set()
        for i, st in enumerate(res.plan.stages):
            t = res.stage_t_ns.get(i)
            if t is not None and t <= e.t_ns:
                attacked |= set(st.suspects)
        if not set(e.sources) <= attacked:
            out.append(e)
    return out


def summary(res: DemoResult, prog: str = "timewatch", activate: str | None = None) -> str:
    """What was detected when, every alert, and where the data went, with the commands that
    look at it: `prog` is how this timewatch was started (`.venv/bin/timewatch` from the clone),
    `activate` the script that puts `timewatch` on PATH, if there is one."""
    r, cfg = res.runner, res.runner.cfg
    alerts = [e for e in r.events if e.type == "alert"]
    lines = ["", f"=== timewatch demo ({res.plan.name}): summary",
             f"{r.handed} observations handed to the engine; {len(alerts)} alerts, "
             f"{len(r.events) - len(alerts)} clears"]
    lines.append("what was detected, when:")
    for f in findings(res):
        what = f.stage.title.split(":")[0]
        gaps = alert_gaps(res, res.plan.stages.index(f.stage))
        if f.began_s is None:
            lines.append(f"  {what}: did not start (the run ended first)")
        elif f.alert is None:
            lines.append(f"  {what} (from {f.began_s:.1f} s): NOT detected "
                         f"(expected {' or '.join(f.stage.codes)})")
        else:
            lines.append(f"  {what} (from {f.began_s:.1f} s): detected {f.after_s:.1f} s later "
                         f"by {f.alert.code} {','.join(f.alert.sources)}; "
                         + ("alert active for the whole attack" if not gaps else
                            "GAP: no alert active " + ", ".join(f"{a:.1f}-{b:.1f} s"
                                                                for a, b in gaps)
                            + " while the attack went on"))
    lines.append("every alert (seconds from start):")
    for e in r.events:
        at = (e.t_ns - res.start_ns) / 1e9
        srcs = ",".join(e.sources) or "(host-wide)"
        lines.append(f"  {at:6.1f} s {e.type:5} {e.code} {srcs}"
                     + (f" [{e.severity}]: {e.message}" if e.type == "alert" else ""))
    fa = false_accusations(res)
    lines.append("sources accused without being attacked: "
                 + (", ".join(f"{e.code} {','.join(e.sources)}" for e in fa) if fa else "none"))
    lines.append("where the data went:")
    lines.append(f"  store (SQLite): {cfg.store_path}")
    lines.append(f"  event log: {Path(cfg.state_dir) / 'events.jsonl'}")
    lines.append(f"  trace: {res.trace}")
    lines.append("  status API: " + (f"http://{res.http}/status.json (closed with the demo)"
                                     if res.http else "off"))
    lines.append("look at it (from this directory):")
    lines += [f"  {COMMAND_PROMPT}{c}" for c in next_commands(res, prog)]
    if activate:
        lines.append(f"  (or `. {activate}` once, then `timewatch ...`)")
    return "\n".join(lines)


# The summary's command lines start with this, so that a person (and a test) finds them.
COMMAND_PROMPT = "$ "


def next_commands(res: DemoResult, prog: str = "timewatch") -> list[str]:
    """Commands that look at what the demo left, as they run from the directory it ran in."""
    state = res.runner.cfg.state_dir
    return [f"{prog} status --state-dir {state}",
            f"{prog} replay {res.trace} --format text",
            f"{prog} export --state-dir {state} -o {state / 'demo.lp'}"]
