"""`timewatch run`: readers -> one queue -> the engine (in the loop thread) -> sinks (own thread).

- Readers come from each source's kind (`timewatch.kinds`, "module:Class"); a kind whose reader
  module is missing is logged and skipped, the others run. `Runner(readers={source_id: factory})` gives
  one source another reader (`factory(SourceConfig, emit)`, e.g. the demo's simulated PPS).
- Every observation goes through one asyncio queue, so the engine and the trace see one order:
  the trace (`--record`) is exactly what the engine was handed, in the order handed.
- A `Tick` every second tells the engine that time passes even when every source is silent.
- An engine failure on one record (a bug) is logged naming the record; the record is skipped and
  monitoring goes on. A trace that cannot be written (disk full) stops the recording, not the
  monitoring.
- Each sink runs behind its own bounded queue, in its own thread (`_SinkWorker`): a sink that is
  slow, hangs or raises never blocks the engine or another sink; what overflows its queue is
  dropped for that sink alone, counted and logged.
- SIGTERM/SIGINT (or `--duration`): stop readers, drain the queue through the engine, flush the
  trace, close the sinks (in parallel, within SINK_CLOSE_S), exit 0.
- One monitor per state directory (`statedir.StateLock`): a second one exits 1 naming the PID
  of the first. The trace is chained and signed with the state directory's key (`evidence`).
- `Hooks`: one call per life-cycle event (ready, each tick, stop), for sd_notify and friends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import kinds
from .config import Config, SourceConfig
from .engine import Engine
from .evidence import Evidence
from .records import Event, Observation, Output, Snapshot, Tick, observation_to_dict
from .sinks import Sink, build_sinks
from .sources import Emit, Reader, now_pair
from .statedir import StateDirInUse, StateLock
from .trace import TraceWriter

log = logging.getLogger(__name__)

# The engine's heartbeat (docs/trace-format.md `tick`: "the runner feeds one a second").
TICK_S = 1.0
# Batches (the outputs of one engine step) a sink may have waiting; past it new batches are
# dropped for that sink alone (counted, logged). ~3 hours of a typical run's steps.
SINK_QUEUE_MAX = 10_000
# Shutdown: the time all sinks together get to take their queues and close (in parallel), inside
# systemd's TimeoutStopSec (20 s in hw/systemd); a sink still busy then is left behind, logged.
SINK_CLOSE_S = 15.0
# A failing record is logged up to this many characters of its trace line.
LOG_RECORD_CHARS = 300


@dataclass
class Hooks:
    """Life-cycle callbacks: the appliance adds sd_notify READY/WATCHDOG/STATUS/STOPPING here.

    `ready(status)` once all readers are started; `tick(snapshot)` every second with the latest
    snapshot (None before the first); `stop()` when shutdown begins. A failing hook is logged.
    """

    ready: list[Callable[[str], None]] = field(default_factory=list)
    tick: list[Callable[[Snapshot | None], None]] = field(default_factory=list)
    stop: list[Callable[[], None]] = field(default_factory=list)

    @staticmethod
    def _call(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a hook must never take the monitor down
            log.exception("hook %r failed", fn)

    def on_ready(self, status: str) -> None:
        for fn in self.ready:
            self._call(fn, status)

    def on_tick(self, snapshot: Snapshot | None) -> None:
        for fn in self.tick:
            self._call(fn, snapshot)

    def on_stop(self) -> None:
        for fn in self.stop:
            self._call(fn)


def status_line(snap: Snapshot | None) -> str:
    """One line for STATUS= and logs: quorum, consensus and alerts."""
    if snap is None:
        return "starting"
    off = (f"consensus {snap.consensus_offset_s * 1e3:+.3f} ms"
           if snap.consensus_offset_s is not None else "no consensus")
    return (f"{snap.groups_agreeing}/{snap.groups_voting} groups agree, {off}, "
            f"{len(snap.active_alerts)} active alerts")


def load_reader(sc: SourceConfig) -> type[Reader] | None:
    """The reader class for a source's kind; None (logged) when that kind is not built yet."""
    kind = kinds.KINDS.get(sc.kind)
    target = kind.reader if kind is not None else None
    if target is None:
        log.warning("source %s: no reader for kind %r: skipped", sc.id, sc.kind)
        return None
    try:
        return kinds.load(target)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as e:
        log.warning("source %s: reader %s is not available (%s): skipped", sc.id, target, e)
        return None


def build_live_sinks(cfg: Config) -> list[Sink]:
    """Every sink of a live run (`build_sinks(cfg, live=True)`). One that cannot start is an
    error at start-up (`SinkStartError`, naming the sink and the cause); the ones already
    started are closed first. Nothing is silently left out."""
    return build_sinks(cfg, live=True)


def _powers_of_two(n: int) -> bool:
    """True at 1, 2, 4, 8...: a repeated failure is logged in full that often, not every time."""
    return n & (n - 1) == 0


def record_line(obs: Observation) -> str:
    """The record as its trace line says it (shortened): what a log names a record by."""
    try:
        text = json.dumps(observation_to_dict(obs), default=repr)
    except Exception:  # noqa: BLE001 - the record may be what is broken
        text = repr(obs)
    return text if len(text) <= LOG_RECORD_CHARS else text[:LOG_RECORD_CHARS] + "..."


class _SinkWorker:
    """One sink behind its own bounded queue and thread: a sink that is slow, hangs or raises
    holds up nobody else. A full queue drops the new batch for this sink (counted, logged)."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.q: queue.SimpleQueue[list[Output] | None] = queue.SimpleQueue()
        self.dropped = 0  # outputs dropped because the queue was full
        self.failures = 0  # batches whose handle() raised
        self._drops = 0
        self.thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self.thread.start()

    def put(self, outputs: list[Output]) -> None:
        if self.q.qsize() < SINK_QUEUE_MAX:  # one producer (the loop thread): no race
            self.q.put(outputs)
            return
        self._drops += 1
        self.dropped += len(outputs)
        if _powers_of_two(self._drops):
            log.error("sink %s: %d batches waiting (it is hung or too slow): %d outputs dropped "
                      "for it so far (the other sinks have them)", self.sink.name,
                      SINK_QUEUE_MAX, self.dropped)

    def _run(self) -> None:
        name = self.sink.name
        while (batch := self.q.get()) is not None:
            try:
                self.sink.handle(batch)
            except Exception as e:  # noqa: BLE001 - a broken sink must not stop the monitor
                self.failures += 1
                if _powers_of_two(self.failures):
                    log.exception("sink %s failed on %d outputs (%d failures so far): they are "
                                  "lost for that sink (the other sinks have them)", name,
                                  len(batch), self.failures)
                else:
                    log.error("sink %s failed on %d outputs (%d failures so far): %s: %s", name,
                              len(batch), self.failures, type(e).__name__, e)
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001
            log.exception("sink %s failed to close cleanly", name)


class _InOrder:
    """Sinks that take each batch one after the other in one worker: the store reads the event
    log's chain digest of each event (evidence), so the event log must have written it first."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks
        self.name = "+".join(s.name for s in sinks)

    def handle(self, outputs: list[Output]) -> None:
        for s in self.sinks:
            s.handle(outputs)

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class _Sinks:
    """Every sink's worker; `put` never blocks the engine."""

    def __init__(self, sinks: list[Sink]):
        ordered = [s for s in sinks if s.name in ("eventlog", "store")]
        ordered.sort(key=lambda s: s.name != "eventlog")  # the event log first
        rest = [s for s in sinks if s not in ordered]
        groups: list[Sink] = [_InOrder(ordered)] if len(ordered) > 1 else ordered  # type: ignore[list-item]
        self.workers = [_SinkWorker(s) for s in groups + rest]

    def put(self, outputs: list[Output]) -> None:
        if outputs:
            for w in self.workers:
                w.put(outputs)

    def close(self) -> None:
        """Each sink takes what is queued for it and closes, all in parallel, within
        SINK_CLOSE_S; one still busy after that (hung in handle or close) is left behind, logged."""
        timeout_s = SINK_CLOSE_S
        for w in self.workers:
            w.q.put(None)
        deadline = time.monotonic() + timeout_s
        for w in self.workers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
            if w.thread.is_alive():
                log.error("sink %s did not finish within %g s of shutdown (hung): %d batches "
                          "it had not taken are lost for it", w.sink.name, timeout_s,
                          max(0, w.q.qsize() - 1))
            if w.dropped:
                log.warning("sink %s: %d outputs were dropped for it (its queue was full)",
                            w.sink.name, w.dropped)


class Runner:
    """The live monitor. `await Runner(cfg).run()` returns the exit code."""

    def __init__(self, cfg: Config, *, record: str | Path | None = None,
                 duration_s: float | None = None, hooks: Hooks | None = None,
                 extra_sinks: list[Sink] | None = None, sinks: list[Sink] | None = None,
                 reader_kwargs: dict[str, dict[str, object]] | None = None,
                 readers: dict[str, Callable[[SourceConfig, Emit], Reader]] | None = None):
        self.cfg = cfg
        self.record = Path(record) if record else None
        self.duration_s = duration_s
        self.hooks = hooks or Hooks()
        self._sinks_override = sinks
        self.extra_sinks = extra_sinks or []
        self.reader_kwargs = reader_kwargs or {}  # kind -> keyword arguments for its reader
        # Per source id, a reader factory used instead of the kind's registered reader (the
        # demo feeds its simulated PPS this way: no PPS device exists without hardware).
        self.reader_overrides = readers or {}
        self.readers: dict[str, object] = {}
        self.engine: Engine | None = None
        self.snapshot: Snapshot | None = None
        self.events: list[Event] = []  # every event of this run, in order
        self.handed = 0  # observations handed to the engine
        self.engine_failures = 0  # records the engine raised on (skipped, logged)
        self.sinks: _Sinks | None = None  # the sinks' workers (their drop and failure counts)
        self.writer: TraceWriter | None = None  # the trace being recorded (None once it failed)
        self.started_ns = 0  # host realtime when run() began (the trace header's created_ns)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask the runner to shut down (signal handlers and tests call this)."""
        self._stop.set()

    async def run(self) -> int:
        """The monitor until stopped; raises StateDirInUse when another holds the state dir,
        SecretFileError when the signing key is readable by others."""
        lock: StateLock | None = StateLock(self.cfg.state_dir)
        try:
            assert lock is not None
            lock.acquire()
        except StateDirInUse:
            raise
        except OSError as e:  # a read-only state dir: nothing a second monitor could write
            log.warning("state dir %s cannot be locked (%s): a second monitor on it would not "
                        "be refused", self.cfg.state_dir, e.strerror or e)
            lock = None
        try:
            evidence = Evidence.for_config(self.cfg)
            evidence.signer.load()  # made now if missing; loose permissions refuse the start
            return await self._run(evidence)
        finally:
            if lock is not None:
                lock.release()

    async def _run(self, evidence: Evidence) -> int:
        loop = asyncio.get_running_loop()
        # First: a SIGTERM while the sinks and readers start (the HTTP server may already
        # answer) is a clean stop, not the default death by signal.
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests): stop() is called directly
        created_ns, _ = now_pair()
        self.started_ns = created_ns
        header = self.cfg.header(created_ns)
        from .leapfile import load_leap_list

        # The IERS leap-second list, as replay loads it, so live and replay judge alike.
        self.engine = Engine(header, self.cfg.detect, leap_list=load_leap_list(),
                             auth_mode=self.cfg.auth_mode)
        sinks = (self._sinks_override if self._sinks_override is not None
                 else build_live_sinks(self.cfg)) + self.extra_sinks
        sink_thread = self.sinks = _Sinks(sinks)
        self.writer = (TraceWriter(self.record, header, evidence=evidence) if self.record
                       else None)
        obs_q: asyncio.Queue[Observation] = asyncio.Queue()

        def emit(obs: Observation) -> None:  # thread-safe: readers may run in threads
            loop.call_soon_threadsafe(obs_q.put_nowait, obs)

        tasks: list[asyncio.Task[None]] = []
        for sc in self.cfg.sources:
            override = self.reader_overrides.get(sc.id)
            cls = override if override is not None else load_reader(sc)
            if cls is None:
                continue
            try:
                kw = {} if override is not None else self.reader_kwargs.get(sc.kind, {})
                reader = cls(sc, emit, **kw)  # type: ignore[call-arg]
            except Exception as e:  # noqa: BLE001 - one bad source must not stop the others
                log.error("source %s: cannot start its reader: %s", sc.id, e)
                continue
            self.readers[sc.id] = reader
            tasks.append(asyncio.create_task(self._guard(sc.id, reader.run()),
                                             name=f"reader-{sc.id}"))
        tasks.append(asyncio.create_task(self._ticker(obs_q), name="ticker"))
        if self.duration_s is not None:
            loop.call_later(self.duration_s, self.stop)
        log.info("monitoring %d sources (%d readers running)%s", len(self.cfg.sources),
                 len(self.readers), f", recording to {self.record}" if self.record else "")
        self.hooks.on_ready(f"monitoring {len(self.readers)} sources")

        consumer = asyncio.create_task(self._consume(obs_q, sink_thread))
        await self._stop.wait()
        self.hooks.on_stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await obs_q.join()  # every observation emitted so far goes through the engine
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        try:
            tail = self.engine.finish()
        except Exception:  # noqa: BLE001 - the sinks and the trace must still be closed
            log.exception("engine failed to finish: the records it held are not judged")
            tail = []
        self._note_events(tail)
        sink_thread.put(list(tail))
        for sig in installed:
            loop.remove_signal_handler(sig)
        self._trace(TraceWriter.close)
        sink_thread.close()
        log.info("stopped: %d observations, %d events", self.handed, len(self.events))
        return 0

    async def _guard(self, sid: str, coro: object) -> None:
        """Run a reader; if it dies of a bug, log it (the engine sees the source go stale)."""
        try:
            await coro  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("reader %s crashed; its source will go stale", sid)

    async def _ticker(self, obs_q: asyncio.Queue[Observation]) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time() + TICK_S
        while True:
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            next_t = max(next_t + TICK_S, loop.time())
            rx, raw = now_pair()
            obs_q.put_nowait(Tick(rx, raw))

    def _trace(self, op: Callable[..., None], *args: object) -> None:
        """One operation on the trace (write, flush, close). One that fails (disk full, I/O
        error) stops the recording, said once: the trace keeps what came before, monitoring
        goes on."""
        w = self.writer
        if w is None:
            return
        try:
            op(w, *args)
        except (OSError, ValueError) as e:
            self.writer = None
            log.error("trace %s cannot be written (%s): recording stopped; monitoring goes on "
                      "(the trace holds the records before)", self.record, e)
            try:
                w.close()
            except (OSError, ValueError):
                pass

    async def _consume(self, obs_q: asyncio.Queue[Observation], sink_thread: _Sinks) -> None:
        assert self.engine is not None
        while True:
            obs = await obs_q.get()
            try:
                self._trace(TraceWriter.write, obs)
                self.handed += 1
                try:
                    out = self.engine.feed(obs)
                except Exception as e:  # noqa: BLE001 - an engine bug must not stop monitoring
                    self.engine_failures += 1
                    n = self.engine_failures
                    if _powers_of_two(n):  # the traceback at the 1st, 2nd, 4th... failure
                        log.exception("engine failed on record %s: skipped (%d so far)",
                                      record_line(obs), n)
                    else:
                        log.error("engine failed on record %s: %s: %s: skipped (%d so far)",
                                  record_line(obs), type(e).__name__, e, n)
                    out = []
                self._note_events(out)
                sink_thread.put(out)
                if isinstance(obs, Tick):
                    self._trace(TraceWriter.flush)
                    self.hooks.on_tick(self.snapshot)
            finally:
                obs_q.task_done()

    def _note_events(self, out: list[Output] | list[Event]) -> None:
        for o in out:
            if isinstance(o, Snapshot):
                self.snapshot = o
            elif isinstance(o, Event):
                self.events.append(o)
                if o.type == "alert":
                    log.warning("alert %s %s [%s]: %s", o.code, ",".join(o.sources), o.severity,
                                o.message)
                else:
                    log.info("clear %s %s", o.code, ",".join(o.sources))
