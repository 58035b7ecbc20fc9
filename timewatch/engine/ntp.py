"""NTP sources: validate every exchange, turn good ones into samples, filter them for the vote.

What a record goes through (docs/ntp.md has the operator's view):
1. `timeout` / `unreachable`: counted, no sample. Staleness is the core's job (`is_stale`).
2. Validation, the engine's own (the reader checked too): the reply must echo our transmit
   timestamp, be mode 4 (server), version 3 or 4, have possible timestamps, and match its own
   raw packet (`pkt_hex`) field for field. Anything else is `ntp.bogus`, counted, never used.
3. A kiss-o'-death (stratum 0) is `ntp.kiss`; an unsynchronised server (leap 3, stratum 16)
   is `source.unusable`. Neither gives a sample; neither is a falseticker.
4. A good reply is a sample: offset, delay and an error bound that, for an honest server,
   contains the true offset (delay/2 covers any path asymmetry, root delay/2 + root
   dispersion the server's own error, plus the precision of the timestamps).
5. The clock filter intersects the intervals of the server's samples since its time last
   changed (each aged by the host's worst-case frequency error). Honest samples all contain
   the truth, so a delay spike (a wide interval) cannot move the estimate. A new sample whose
   offset moved further than half its change in delay (plus jitter) from the lowest-delay sample
   is a real change of the server's time: the older samples are dropped at once and the new
   one alone is the estimate (no old sample is held against a real change: a liar is judged
   on its first lying sample).

`NtsTracker` (kind `nts`, docs/nts.md) takes the same exchanges, each of which must have been
authenticated: a reply that failed authentication is `nts.auth_failed`, one without NTS
(reported by the reader, or a record of a usable reply without `auth`) is `nts.downgrade`, both
critical and never used; a key establishment that failed is `nts.ke_failed`; an authenticated
reply under a session no key establishment of the trace opened is `ntp.bogus`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from ..records import AUTH_NTS, Ntp, NtsKe, Observation, SourceInfo
from ..wire.ntp import PacketError, is_ntp_zero, ntp_parts_to_unix_ns, refid_text, unpack_hex
from .core import Context, Estimate, Tracker
from .value import Value

# Server association mode of a reply (RFC 5905 figure 10).
MODE_SERVER: Final = 4
# NTP versions a server may answer with (RFC 1305 = 3, RFC 5905 = 4).
VERSIONS: Final = (3, 4)
# Stratum of an unsynchronised server; above it the values are reserved (RFC 5905 figure 11).
STRATUM_UNSYNC: Final = 16
# Leap indicator "clock unsynchronised" (RFC 5905 figure 9).
LEAP_UNSYNC: Final = 3
# Longest plausible server processing time t3 - t2 (chrony ntp_core.c MAX_SERVER_INTERVAL).
MAX_SERVER_INTERVAL_NS: Final = 4_000_000_000
# Resolution of the reader's own clock reads (t1, t4): chrony measures tens of ns on a PC, a
# loaded Pi is slower; 1 us is a generous bound. Used in the bound and the negative-delay test.
HOST_PRECISION_S: Final = 1e-6
# t2/t3 of a record may differ from its packet by rounding of the NTP fraction (0.23 ns) or by a
# reader converting through floats (ntplib: ~0.5 us in this era): 1 us tolerates both.
PKT_TS_TOLERANCE_NS: Final = 1_000
# One unit of the 16.16 root delay/dispersion fields (RFC 5905 NTP short format).
PKT_SHORT_TOLERANCE_S: Final = 1.0 / 65536
# A missed poll is known only after its reply would have come, and readers randomise their poll
# times: the stale limit is `stale_polls` whole polls plus half a poll, so 2 timeouts in a row
# (docs/threats.md noise) never make a source stale and 3 missed polls always do.
STALE_GRACE_POLLS: Final = 0.5
# The header fields a record repeats, in the order `_packet_mismatch` compares them.
_HEADER_FIELDS: Final = ("leap", "version", "mode", "stratum", "poll", "precision")
# Exchange outcomes (`NtpTracker.counts` keys) and their engine counter names, made once.
_OUTCOMES: Final = ("usable", "timeout", "unreachable", "bogus", "kiss", "unusable", "ignored",
                    "auth_failed", "downgrade", "ke", "ke_failed", "nak", "host_step")
_COUNTER_NAME: Final = {what: f"ntp.{what}" for what in _OUTCOMES}
_STATUS_NAME: Final = {what: f"{what}_count" for what in _OUTCOMES}  # status_fields keys
# Known kiss codes (RFC 5905 section 7.4), for the alert message.
KISS_MEANING: Final = {
    "RATE": "rate exceeded: the server asks us to poll less often",
    "DENY": "access denied by the server",
    "RSTR": "access denied by the server's restrictions",
    "NKEY": "no such key",
    "CRYP": "cryptographic authentication failed",
    "AUTH": "authentication failed",
}
# The kiss code of an NTS NAK, the one kiss an NTS server sends unauthenticated (RFC 8915 5.7).
KISS_NTS_NAK: Final = "NTSN"


class NtpSample(Value):
    """One usable exchange with one server (offset = server time - host realtime); one per
    exchange (see engine/value.py)."""

    _fields = ("t_ns", "offset_s", "delay_s", "bound_s", "leap", "stratum", "refid",
               "root_delay_s", "root_dispersion_s")
    __slots__ = _fields

    def __init__(self, t_ns: int, offset_s: float, delay_s: float, bound_s: float, leap: int,
                 stratum: int, refid: str, root_delay_s: float, root_dispersion_s: float) -> None:
        self.t_ns: Final = t_ns  # host realtime at the middle of the exchange: (t1 + t4) / 2
        self.offset_s: Final = offset_s
        self.delay_s: Final = delay_s
        self.bound_s: Final = bound_s  # half-width of the interval that contains the true offset
        self.leap: Final = leap
        self.stratum: Final = stratum
        self.refid: Final = refid
        self.root_delay_s: Final = root_delay_s
        self.root_dispersion_s: Final = root_dispersion_s


class _Reply:
    """An `Ntp` record's fields, each read once. Compiled, reading a field of a record (a msgspec
    Struct) is a generic attribute lookup, and validating and using a reply read them ~60 times
    (117 lookups per record, ~1/3 of the tracker's instructions); a native object's fields cost
    a load. The record itself still goes into what is kept of a rejected reply (`_bogus`)."""

    __slots__ = ("rx_ns", "t1_ns", "t2_ns", "t3_ns", "t4_ns", "xmt_hex", "org_hex", "leap",
                 "version", "mode", "stratum", "poll", "precision", "root_delay",
                 "root_dispersion", "refid", "pkt_hex", "error")

    def __init__(self, o: Ntp) -> None:
        self.rx_ns: Final = o.rx_ns
        self.t1_ns: Final = o.t1_ns
        self.t2_ns: Final = o.t2_ns
        self.t3_ns: Final = o.t3_ns
        self.t4_ns: Final = o.t4_ns
        self.xmt_hex: Final = o.xmt_hex
        self.org_hex: Final = o.org_hex
        self.leap: Final = o.leap
        self.version: Final = o.version
        self.mode: Final = o.mode
        self.stratum: Final = o.stratum
        self.poll: Final = o.poll
        self.precision: Final = o.precision
        self.root_delay: Final = o.root_delay
        self.root_dispersion: Final = o.root_dispersion
        self.refid: Final = o.refid
        self.pkt_hex: Final = o.pkt_hex
        self.error: Final = o.error


class NtpTracker(Tracker):
    """One NTP server: validation, samples, the intersection clock filter."""

    kind = "ntp"
    judged_for_steps = True
    ntp_server = True

    def __init__(self, src: str, info: SourceInfo, ctx: Context):
        super().__init__(src, info, ctx)
        size = max(1, ctx.detect.ntp_filter_size)
        self.history: deque[NtpSample] = deque(maxlen=size)  # recent usable samples, oldest first
        self.last: NtpSample | None = None
        self.min_delay_s: float | None = None  # smallest delay in `history`
        self.counts: dict[str, int] = {}  # exchange outcomes: usable, timeout, bogus, kiss...
        self.last_bogus_reason: str | None = None
        self._since_ns = 0  # the filter uses history samples from here on (a change drops older)
        self._t1s: deque[int] = deque(maxlen=size + 1)  # our recent request times: the cadence
        self._last_answer_ns: int | None = None  # last valid reply, usable or not
        # After a host step: an exchange whose request left before this (host time) may have
        # its t1 in the old host time and t4 in the new one (`on_host_step`).
        self._step_guard_ns: int | None = None
        # The last refid decoded: its bytes, its stratum class (<= 1: text) and its text.
        self._refid_raw: bytes | None = None
        self._refid_low = False
        self._refid_text = ""
        self._precision: int | None = None  # last precision field seen, and its seconds
        self._precision_s = _precision_s(None)
        self._poll_s = info.poll_s or ctx.detect.ntp_poll_default_s
        self._learns_poll = not info.poll_s  # no poll in the header: learn it from the cadence
        self._stale_ns = self._stale_limit_ns()
        self._status: dict[str, Any] | None = None  # status_fields, until the next record
        det = ctx.detect  # (frozen: its derived constants are made once)
        self._aging_per_ns = det.aging_ppm * 1e-15
        self._jitter_s = det.ntp_jitter_s

    # -- core interface ----------------------------------------------------------------------
    def feed(self, obs: Observation) -> None:
        self._status = None  # whatever comes in may change the counts, the poll, the last sample
        if not isinstance(obs, Ntp):
            self._count("ignored")
            return
        o = _Reply(obs)
        guard = self._step_guard_ns
        if guard is not None:
            if o.t1_ns < guard:
                self._count("host_step")  # spans the host step: neither time, never used
                return
            self._step_guard_ns = None
        if self._learns_poll:
            self._learn_poll(o.t1_ns)
        err = o.error
        if err is not None:
            if err == "timeout" or err == "unreachable":
                self._count(err)
                return
            if err == "bad_origin" or err == "malformed":
                self._bogus(obs, self._reader_error(obs, err))
                return
            if err != "kiss":
                self._bogus(obs, f"unknown error {err!r}")
                return
        reason = self._invalid(o)
        if reason is not None:
            self._bogus(obs, reason)
            return
        now = self.ctx.now_ns
        alerts = self.ctx.alerts
        alerts.release("ntp.bogus", now, self.src)
        self._last_answer_ns = o.rx_ns
        if o.stratum == 0:
            self._kiss(obs)
            return
        alerts.release("ntp.kiss", now, self.src)
        if o.stratum == STRATUM_UNSYNC or o.leap == LEAP_UNSYNC:
            self._unusable(obs)
            return
        self._sample(o)

    def stale_limit_s(self) -> float:
        return self._stale_ns / 1e9

    def noise_floor_s(self, bound_s: float) -> float:
        return self.ctx.detect.drift_sigma_floor_ntp_s  # chrony's filter leaves ~0.1 ms (LAN)

    def is_stale(self, now_ns: int) -> bool:
        # A server that answers but cannot be used has its own alert (ntp.kiss, source.unusable);
        # stale means silent (or only bogus replies, which a spoofer could send).
        ref = self._last_answer_ns if self._last_answer_ns is not None else self.first_ns
        return ref is not None and now_ns - ref > self._stale_ns

    def stale_due_ns(self) -> int | None:
        ref = self._last_answer_ns if self._last_answer_ns is not None else self.first_ns
        return None if ref is None else ref + self._stale_ns

    def on_host_step(self, step_s: float) -> None:
        """Host realtime jumped: re-express the kept samples (offsets and times) and request
        times in the new host time. An exchange in flight across the step cannot be: its t1
        was read in the old host time, its t4 in the new one, and which of them a request sent
        just around the step used is not known. Every exchange whose request left before the
        step's first record (in the new time; before the old time's end after a backward step)
        is set aside, counted as `ntp.host_step`: no sample, no alert."""
        super().on_host_step(step_s)
        self._status = None
        step_ns = round(step_s * 1e9)
        self.history = deque((h.replace(offset_s=h.offset_s - step_s, t_ns=h.t_ns + step_ns)
                              for h in self.history), maxlen=self.history.maxlen)
        self.last = self.history[-1] if self.history else None
        self._since_ns += step_ns
        self._t1s = deque((t + step_ns for t in self._t1s), maxlen=self._t1s.maxlen)
        if self._last_answer_ns is not None:
            self._last_answer_ns += step_ns
        after_ns = self.ctx.host_steps[-1][0]  # the first record after the step
        self._step_guard_ns = after_ns + (-step_ns if step_ns < 0 else 0)

    def poll_s(self) -> float:
        """The poll interval: the header's `poll_s`, else learned from our request cadence."""
        return self._poll_s

    def status_fields(self) -> dict[str, Any]:
        # Snapshots come every few seconds, records every poll: build once per change, hand
        # out copies (a sink may keep or change the dict it gets).
        d = self._status
        if d is None:
            last = self.last
            if last is None:
                d = {"poll_s": self._poll_s, "min_delay_s": self.min_delay_s}
            else:
                d = {"poll_s": self._poll_s, "min_delay_s": self.min_delay_s,
                     "delay_s": last.delay_s, "stratum": last.stratum,
                     "root_delay_s": last.root_delay_s,
                     "root_dispersion_s": last.root_dispersion_s}
            for k, v in self.counts.items():
                d[_STATUS_NAME[k]] = v
            self._status = d
        return d.copy()

    # -- poll interval and staleness ---------------------------------------------------------
    def _learn_poll(self, t1_ns: int) -> None:
        t1s = self._t1s
        if t1s and t1_ns <= t1s[-1]:
            return
        t1s.append(t1_ns)
        if len(t1s) < 2:
            return
        # The longest recent gap: an initial burst of quick polls must not shorten the limit.
        prev = t1s[0]
        longest = 0
        for t in t1s:
            longest = max(longest, t - prev)
            prev = t
        self._poll_s = longest / 1e9
        self._stale_ns = self._stale_limit_ns()

    def _stale_limit_ns(self) -> int:
        return int((self.ctx.detect.stale_polls + STALE_GRACE_POLLS) * self._poll_s * 1e9)

    # -- validation --------------------------------------------------------------------------
    @staticmethod
    def _reader_error(o: Ntp, err: str) -> str:
        if err == "bad_origin":
            return f"origin {o.org_hex} does not echo our transmit timestamp {o.xmt_hex}"
        return "malformed reply (the reader could not decode it)"

    def _invalid(self, o: _Reply) -> str | None:
        """Why this reply must not be used, or None when it is a valid reply (maybe a kiss)."""
        org, xmt = o.org_hex, o.xmt_hex
        if org is None or (org != xmt and org.lower() != xmt.lower()):
            return f"origin {org} does not echo our transmit timestamp {xmt}"
        try:
            xmt_ts = int(xmt, 16)  # == int(org, 16) too: hex digits are read case-blind
        except ValueError:
            return f"transmit timestamp {xmt!r} is not hexadecimal"
        if xmt_ts == 0 or len(xmt) != 16:
            return f"transmit timestamp {xmt} is not 64 random bits"
        if o.mode != MODE_SERVER:
            return f"mode {o.mode} is not {MODE_SERVER} (server)"
        if o.version not in VERSIONS:
            return f"version {o.version} is not 3 or 4"
        if o.stratum is None or o.leap is None:
            return "stratum or leap missing"
        if o.stratum > STRATUM_UNSYNC:
            return f"stratum {o.stratum} is reserved (above {STRATUM_UNSYNC})"
        if (o.error == "kiss") != (o.stratum == 0):
            return f"error {o.error!r} with stratum {o.stratum}: a kiss has stratum 0"
        if o.pkt_hex is not None:
            why = self._packet_mismatch(o, xmt_ts)
            if why is not None:
                return why
        if o.stratum == 0:
            return None  # a kiss: its timestamps are not used
        return self._impossible(o)

    def _impossible(self, o: _Reply) -> str | None:
        t1, t2, t3, t4 = o.t1_ns, o.t2_ns, o.t3_ns, o.t4_ns
        if t2 is None or t3 is None or t4 is None:
            return "t2_ns, t3_ns or t4_ns missing"
        if o.root_delay is None or o.root_dispersion is None:
            return "root_delay or root_dispersion missing"
        if o.root_delay < 0 or o.root_dispersion < 0:
            return f"negative root delay {o.root_delay} or dispersion {o.root_dispersion}"
        if is_ntp_zero(t2) or is_ntp_zero(t3):
            return "receive or transmit timestamp is zero (not set)"
        if t4 < t1:
            return f"reply arrived {(t1 - t4) / 1e9:.9f} s before the request left (t4 < t1)"
        if t3 < t2:
            return f"server transmitted {(t2 - t3) / 1e9:.9f} s before it received (t3 < t2)"
        if t3 - t2 > MAX_SERVER_INTERVAL_NS:
            return f"server held the request {(t3 - t2) / 1e9:.3f} s (t3 - t2)"
        delay_ns = (t4 - t1) - (t3 - t2)
        if delay_ns < 0 and -delay_ns / 1e9 > self._server_precision_s(o.precision) \
                + HOST_PRECISION_S:
            return f"negative round-trip delay {delay_ns / 1e9:.9f} s beyond the precision"
        return None

    def _packet_mismatch(self, o: _Reply, org_ts: int) -> str | None:
        """The record's fields against its own raw packet (`org_ts`: the record's origin, read)."""
        try:
            lvm, stratum, poll, prec, rd, rdisp, refid, org, rec_sec, rec_frac, xmt_sec, xmt_frac = (
                unpack_hex(o.pkt_hex or ""))
        except PacketError as e:
            return f"pkt_hex: {e}"
        low = stratum <= 1  # the text depends on the stratum class and the bytes
        if refid != self._refid_raw or low != self._refid_low:  # decode only a new refid
            self._refid_raw, self._refid_low = refid, low
            self._refid_text = refid_text(stratum, refid)
        # The usual case is all equal: plain comparisons, then the details (no tuples built).
        if (o.leap != lvm >> 6 or o.version != (lvm >> 3) & 7 or o.mode != lvm & 7
                or o.stratum != stratum or o.poll != poll or o.precision != prec):
            fields = (o.leap, o.version, o.mode, o.stratum, o.poll, o.precision)
            pkt = (lvm >> 6, (lvm >> 3) & 7, lvm & 7, stratum, poll, prec)
            for name, rec_v, pkt_v in zip(_HEADER_FIELDS, fields, pkt, strict=True):
                if rec_v is not None and rec_v != pkt_v:
                    return f"{name} {rec_v!r} differs from the packet's {pkt_v!r}"
        if o.refid is not None and o.refid != self._refid_text:
            return f"refid {o.refid!r} differs from the packet's {self._refid_text!r}"
        if org_ts != org:
            return f"org_hex {o.org_hex} differs from the packet's {org:016x}"
        rec_s = o.root_delay
        if rec_s is not None and abs(rec_s - rd / 65536.0) > PKT_SHORT_TOLERANCE_S:
            return f"root_delay {rec_s} s differs from the packet's {rd / 65536.0} s"
        rec_s = o.root_dispersion
        if rec_s is not None and abs(rec_s - rdisp / 65536.0) > PKT_SHORT_TOLERANCE_S:
            return f"root_dispersion {rec_s} s differs from the packet's {rdisp / 65536.0} s"
        t1 = o.t1_ns
        rec_ns = o.t2_ns
        if rec_ns is not None:
            pkt_ns = ntp_parts_to_unix_ns(rec_sec, rec_frac, t1)
            if abs(rec_ns - pkt_ns) > PKT_TS_TOLERANCE_NS:
                return f"t2_ns {rec_ns} differs from the packet's {pkt_ns}"
        rec_ns = o.t3_ns
        if rec_ns is not None:
            pkt_ns = ntp_parts_to_unix_ns(xmt_sec, xmt_frac, t1)
            if abs(rec_ns - pkt_ns) > PKT_TS_TOLERANCE_NS:
                return f"t3_ns {rec_ns} differs from the packet's {pkt_ns}"
        return None

    def _server_precision_s(self, precision: int | None) -> float:
        """`_precision_s` of the server's precision field, computed again only when it changes."""
        if precision != self._precision:
            self._precision, self._precision_s = precision, _precision_s(precision)
        return self._precision_s

    # -- outcomes ----------------------------------------------------------------------------
    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        self.ctx.count(_COUNTER_NAME[what])

    def _bogus(self, o: Ntp, reason: str) -> None:
        self._count("bogus")
        self.last_bogus_reason = reason
        ev: dict[str, Any] = {"reason": reason, "rejected_count": self.counts["bogus"]}
        for k in ("xmt_hex", "org_hex", "mode", "version", "stratum", "t1_ns", "t2_ns", "t3_ns",
                  "t4_ns", "error", "pkt_hex"):
            v = getattr(o, k)
            if v is not None:
                ev[k] = v
        self.ctx.alerts.assert_("ntp.bogus", self.ctx.now_ns, (self.src,),
                                f"{self.src}: reply rejected, never used: {reason}", ev,
                                severity="warning", hold_down_s=self.ctx.detect.hold_down_s)

    def _kiss(self, o: Ntp) -> None:
        self._count("kiss")
        code = o.refid or "?"
        meaning = KISS_MEANING.get(code, "unknown kiss code")
        self.unusable_reason = f"kiss-o'-death {code} ({meaning})"
        self.ctx.alerts.assert_(
            "ntp.kiss", self.ctx.now_ns, (self.src,),
            f"{self.src}: server sent kiss-o'-death {code}: {meaning}",
            {"kiss_code": code, "kiss_count": self.counts["kiss"], "stratum": o.stratum,
             "pkt_hex": o.pkt_hex or ""},
            severity="warning", hold_down_s=self.ctx.detect.hold_down_s)

    def _unusable(self, o: Ntp) -> None:
        self._count("unusable")
        why = (f"server unsynchronised (stratum {o.stratum})" if o.stratum == STRATUM_UNSYNC
               else "server unsynchronised (leap indicator 3)")
        self.unusable_reason = why
        self.ctx.alerts.assert_(
            "source.unusable", self.ctx.now_ns, (self.src,), f"{self.src}: {why}",
            {"stratum": o.stratum, "leap": o.leap, "refid": o.refid or ""},
            severity="warning", hold_down_s=self.ctx.detect.hold_down_s)

    def _sample(self, o: _Reply) -> None:
        t1, t4 = o.t1_ns, o.t4_ns
        t2, t3 = o.t2_ns, o.t3_ns
        assert t2 is not None and t3 is not None and t4 is not None  # checked by _impossible
        rd = o.root_delay or 0.0
        rdisp = o.root_dispersion or 0.0
        offset_s = ((t2 - t1) + (t3 - t4)) / 2e9
        delay_s = ((t4 - t1) - (t3 - t2)) / 1e9
        if not delay_s > 0.0:  # max(0.0, delay_s) without the call
            delay_s = 0.0
        bound_s = (delay_s / 2 + rd / 2 + rdisp + self._server_precision_s(o.precision)
                   + HOST_PRECISION_S)
        leap = o.leap or 0
        stratum = o.stratum or 0
        t_ns = (t1 + t4) // 2
        s = NtpSample(t_ns, offset_s, delay_s, bound_s, leap, stratum, o.refid or "", rd, rdisp)
        self._count("usable")
        hist = self.history
        evicted = hist[0] if len(hist) == hist.maxlen else None
        hist.append(s)
        self.last = s
        # The smallest delay in `history`, kept up to date: scanned again only when the sample
        # that held it leaves.
        m = self.min_delay_s
        if m is None or (evicted is not None and evicted.delay_s == m):
            m = delay_s
            for h in hist:
                if h.delay_s < m:
                    m = h.delay_s
        elif delay_s < m:
            m = delay_s
        self.min_delay_s = m
        self.last_usable_ns = o.rx_ns
        self.estimate_ = self._filter(s)
        ctx = self.ctx
        if self.unusable_reason is not None:
            self.unusable_reason = None
            ctx.alerts.release("source.unusable", ctx.now_ns, self.src)
        ctx.emit(self.src, t_ns, offset_s, bound_s, {
            "delay_s": delay_s, "root_delay_s": rd, "root_dispersion_s": rdisp,
            "stratum": float(stratum), "leap": float(leap), "poll_s": self._poll_s,
        } if ctx.keep_samples else None)  # (no dict for a sample nobody reads)

    def _filter(self, s: NtpSample) -> Estimate:
        """The estimate after sample `s`: the intersection of the intervals of the server's
        samples since its time last changed, each aged to s.t_ns.

        `s` continues the current era when its offset moved from the era's lowest-delay sample
        by no more than half the change in delay (queueing on one leg moves the offset by at most
        half the extra delay: ntpd's huff-n-puff wedge, chrony's test C) plus jitter and aging.
        Otherwise the server's time changed: the era restarts at `s`, judged on its own.
        """
        aging_per_ns = self._aging_per_ns
        since = self._since_ns
        s_t, s_off, s_bound = s.t_ns, s.offset_s, s.bound_s
        era = []
        ref = None  # the era's first lowest-delay sample: min(era, key=delay) without the call
        for h in self.history:
            if h.t_ns >= since and h is not s:
                era.append(h)
                if ref is None or h.delay_s < ref.delay_s:
                    ref = h
        if ref is not None:
            moved = abs(s_off - ref.offset_s)
            allowed = (abs(s.delay_s - ref.delay_s) / 2 + self._jitter_s
                       + (s_t - ref.t_ns) * aging_per_ns)
            if moved > allowed:
                self._since_ns = s_t
                era = []
        lo, hi = s_off - s_bound, s_off + s_bound
        for old in reversed(era):
            # Conditionals with the semantics of max(0, dt), max(lo, x), min(hi, y), minus the
            # calls (this runs for every sample).
            dt_ns = s_t - old.t_ns
            b = old.bound_s + (dt_ns if dt_ns > 0 else 0) * aging_per_ns
            olo, ohi = old.offset_s - b, old.offset_s + b
            nlo = olo if olo > lo else lo
            nhi = ohi if ohi < hi else hi
            if nlo > nhi:  # cannot happen with honest samples: restart the era after `old`
                self._since_ns = old.t_ns + 1
                break
            lo, hi = nlo, nhi
        return Estimate((lo + hi) / 2, (hi - lo) / 2, s_t)


def _precision_s(precision: int | None) -> float:
    """A server's precision field is log2 seconds; clamp to sane exponents (RFC 5905: int8)."""
    if precision is None:
        return 0.0
    return 2.0 ** max(-64, min(precision, 8))


class NtsTracker(NtpTracker):
    """One NTS server: the NTP tracker, every reply authenticated (see the module docstring)."""

    kind = "nts"
    auth: str | None = AUTH_NTS

    def __init__(self, src: str, info: SourceInfo, ctx: Context):
        super().__init__(src, info, ctx)
        self.sessions: set[str] = set()  # ids of the sessions the trace's KE records opened
        self.ke_cause: str | None = None  # cause of the last key establishment, while failing

    def feed(self, obs: Observation) -> None:
        if isinstance(obs, NtsKe):
            self._status = None
            self._ke(obs)
            return
        if not isinstance(obs, Ntp):
            super().feed(obs)
            return
        err = obs.error
        if err == "nts_auth_failed" or err == "nts_downgrade":
            self._status = None
            self._refused(obs, err == "nts_downgrade", obs.auth_error or "")
            return
        if err is None or err == "kiss":
            if obs.auth != AUTH_NTS:
                if err == "kiss" and obs.refid == KISS_NTS_NAK and obs.ke_session:
                    # An NTS NAK: unauthenticated by design (the server cannot read our cookie),
                    # so neither used nor alerted: counted, and the reader gets new keys.
                    self._status = None
                    self._count("nak")
                    return
                self._status = None
                self._refused(obs, True, "a usable reply without NTS authentication")
                return
            if obs.ke_session not in self.sessions:
                self._status = None
                self._bogus(obs, f"authenticated under KE session {obs.ke_session!r}, which no "
                                 f"key establishment of this trace opened")
                return
            alerts, now = self.ctx.alerts, self.ctx.now_ns
            alerts.release("nts.auth_failed", now, self.src)
            alerts.release("nts.downgrade", now, self.src)
        super().feed(obs)

    def status_fields(self) -> dict[str, Any]:
        d = super().status_fields()
        d["ke_sessions"] = len(self.sessions)
        return d

    def _ke(self, o: NtsKe) -> None:
        ctx = self.ctx
        if o.session is not None and o.cause is None:
            self._count("ke")
            self.sessions.add(o.session)
            self.ke_cause = None
            ctx.alerts.release("nts.ke_failed", ctx.now_ns, self.src)
            return
        self._count("ke_failed")
        self.ke_cause = o.cause or "?"
        ctx.alerts.assert_(
            "nts.ke_failed", ctx.now_ns, (self.src,),
            f"{self.src}: NTS key establishment failed ({self.ke_cause}): {o.message or ''}",
            {"cause": self.ke_cause, "message": o.message or "", "reason": o.reason or "",
             "ke_failed_count": self.counts["ke_failed"]},
            severity="warning", hold_down_s=ctx.detect.hold_down_s)

    def _refused(self, o: Ntp, downgrade: bool, why: str) -> None:
        """A reply that must not be used: it failed authentication, or came without it."""
        self._count("downgrade" if downgrade else "auth_failed")
        ev: dict[str, Any] = {"auth_error": why,
                              "refused_count": self.counts["downgrade" if downgrade
                                                           else "auth_failed"]}
        for k in ("ke_session", "xmt_hex", "org_hex", "stratum", "t1_ns", "t2_ns", "t3_ns",
                  "t4_ns", "pkt_hex"):
            v = getattr(o, k)
            if v is not None:
                ev[k] = v
        alerts, now, hold = self.ctx.alerts, self.ctx.now_ns, self.ctx.detect.hold_down_s
        if downgrade:
            alerts.assert_("nts.downgrade", now, (self.src,),
                           f"{self.src}: the NTS server answered without authentication "
                           f"(downgrade): {why}; never used", ev,
                           severity="critical", hold_down_s=hold)
        else:
            alerts.assert_("nts.auth_failed", now, (self.src,),
                           f"{self.src}: a reply failed NTS authentication ({why}): forged or "
                           f"altered on the way, never used", ev,
                           severity="critical", hold_down_s=hold)
