"""Tamper-evident evidence (docs/evidence.md): JSON Lines files sealed by signed checkpoints.

A chained file (a trace, the event log) keeps the running SHA-256 of every byte written to it.
Every `checkpoint_records` records or `checkpoint_s` seconds (and when the file starts and
ends) a checkpoint line is written: that SHA-256 of everything before it, its own line number
and byte offset, a sequence number that runs on across files and restarts, and an Ed25519
signature by the appliance key. The checkpoint line itself is hashed like any other line, so
each seal covers the seals before it. Only checkpoints are signed; records are only hashed.

- `Evidence`: one state directory's signing key (`evidence.key`, 0600, made on first use) and
  the head of each stream ("trace", "events": the last checkpoint, kept in `chain.json`), which
  a new file's first checkpoint names (`prev`), so the chain runs on across files.
- `ChainWriter`: the hashing and the checkpoints of one file; its owner writes the lines.
- `scan`: reads a chained file back and checks every checkpoint (`timewatch verify`, `replay`,
  and the event log when it reopens its file).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .secretfile import SecretFileError, check_private

log = logging.getLogger(__name__)

TYPE = "checkpoint"
# Every checkpoint line starts so (json.dumps of a dict whose first key is "type"): a reader
# tells one from a record without parsing the line.
PREFIX = b'{"type": "checkpoint"'
# Signed before the checkpoint's JSON, so a signature made for anything else never passes as one.
SIG_CONTEXT = b"timewatch checkpoint v1\n"
KEY_PREFIX = "ed25519:"  # a public key as `timewatch key show` prints it: ed25519:BASE64
KEY_FILENAME = "evidence.key"  # under state_dir unless [evidence] key_file says otherwise
HEADS_FILENAME = "chain.json"  # under state_dir: each stream's last checkpoint
REASONS = ("start", "interval", "end")
STREAMS = ("trace", "events")
# Defaults of [evidence] checkpoint_records / checkpoint_s: a seal per 1000 records costs one
# signature (~50 us) per 1000 records; a minute bounds what an unclean stop leaves unsealed.
CHECKPOINT_RECORDS = 1000
CHECKPOINT_S = 60.0
KEY_RETRY_S = 60.0  # a key that could not be made (read-only state dir) is tried again this often
DIGESTS_MAX = 10_000  # event digests waiting for the store (it takes them within a batch)


class EvidenceError(Exception):
    """A key or a public key that cannot be used (names the file or the text)."""


# ---------------------------------------------------------------------------------------------
# Keys


def public_text(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def fingerprint(text: str) -> str:
    """SHA256:BASE64 of the raw public key, unpadded, as ssh-keygen -l shows a key."""
    raw = base64.b64decode(text.removeprefix(KEY_PREFIX))
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key as `key show` prints it (`ed25519:BASE64`), or a file holding that line."""
    t = text.strip()
    if not t.startswith(KEY_PREFIX):
        p = Path(t)
        try:
            t = p.read_text(encoding="utf-8").strip() if p.is_file() else t
        except (OSError, UnicodeDecodeError) as e:
            raise EvidenceError(f"cannot read public key file {p}: {e}") from None
    if not t.startswith(KEY_PREFIX):
        raise EvidenceError(f"{text.strip()[:60]!r} is not a public key as `timewatch key show` "
                            f"prints it ({KEY_PREFIX}BASE64), nor a file holding one")
    try:
        raw = base64.b64decode(t[len(KEY_PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise EvidenceError(f"{t[:60]!r}: not a valid Ed25519 public key (32 bytes in base64)") \
            from None


def load_key(path: Path) -> Ed25519PrivateKey:
    """The private key in `path` (PEM, PKCS#8). A missing file raises FileNotFoundError, loose
    permissions SecretFileError (with the fix)."""
    os.stat(path)  # a missing key is FileNotFoundError, for load_or_create_key
    check_private(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise EvidenceError(f"{path}: cannot load the signing key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"{path}: not an Ed25519 private key")
    return key


def create_key(path: Path) -> Ed25519PrivateKey:
    """A new key in `path`, mode 0600 from the start (O_EXCL: never replaces a key)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    log.info("evidence: made the signing key %s (public key %s)", path,
             public_text(key.public_key()))
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    try:
        return load_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return create_key(path)
    except FileExistsError:  # made meanwhile by another process: use it
        return load_key(path)


class Signer:
    """The appliance key, loaded (or made) when first needed. A key that cannot be made (a
    read-only state dir) is logged and tried again every KEY_RETRY_S; meanwhile checkpoints are
    written unsigned, and `verify` reports them."""

    def __init__(self, path: Path):
        self.path = path
        self.public: str | None = None
        self.error: str | None = None
        self._key: Ed25519PrivateKey | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    def load(self) -> bool:
        """Load or make the key now. Loose permissions raise SecretFileError (the monitor
        refuses to start); any other failure is logged and gives False."""
        with self._lock:
            return self._load()

    def _load(self) -> bool:
        if self._key is not None:
            return True
        try:
            self._key = load_or_create_key(self.path)
        except SecretFileError:
            raise
        except (OSError, EvidenceError) as e:
            self._next_try = time.monotonic() + KEY_RETRY_S
            what = getattr(e, "strerror", None) or str(e)
            if self.error is None:
                log.error("evidence: no signing key (%s: %s); checkpoints are written unsigned "
                          "until it can be made", self.path, what)
            self.error = what
            return False
        self.public = public_text(self._key.public_key())
        if self.error is not None:
            log.warning("evidence: signing key %s ready; checkpoints are signed again", self.path)
            self.error = None
        return True

    def current(self) -> str | None:
        """The public key checkpoints are signed with now (loading or making the key when due),
        or None while there is none. Never raises."""
        with self._lock:
            if self._key is None and time.monotonic() >= self._next_try:
                try:
                    self._load()
                except SecretFileError as e:
                    self._next_try = time.monotonic() + KEY_RETRY_S
                    log.error("evidence: %s", e)
            return self.public if self._key is not None else None

    def sign(self, msg: bytes) -> str:
        """Base64 signature of msg; only after `current()` gave a key."""
        assert self._key is not None
        return base64.b64encode(self._key.sign(msg)).decode("ascii")


# ---------------------------------------------------------------------------------------------
# One state directory's evidence


@dataclass(frozen=True)
class Head:
    """A stream's last checkpoint: its number, its `sha256` (of everything before it: what
    leaves the box with InfluxDB points and webhooks) and `end`, the SHA-256 of its file up to
    and including that checkpoint line (what the stream's next file names as `prev`)."""

    seq: int = 0
    sha256: str | None = None
    end: str | None = None


class Evidence:
    """The key and the stream heads of one state directory, shared by its chained files."""

    _cache: dict[tuple[str, str, int, float], Evidence] = {}
    _cache_lock = threading.Lock()

    def __init__(self, state_dir: str | Path, *, key_path: str | Path | None = None,
                 every_records: int = CHECKPOINT_RECORDS, every_s: float = CHECKPOINT_S):
        self.state_dir = Path(state_dir)
        self.signer = Signer(Path(key_path) if key_path else self.state_dir / KEY_FILENAME)
        self.every_records = every_records
        self.every_s = every_s
        self._lock = threading.Lock()
        self._heads_path = self.state_dir / HEADS_FILENAME
        self._loaded: dict[str, Head] | None = None  # read when first needed
        self._save_failed = False
        self._digests: OrderedDict[tuple[str, str], str] = OrderedDict()

    @classmethod
    def for_config(cls, cfg: Any) -> Evidence:
        """The one Evidence of a config's state directory in this process (the trace writer,
        the event log, the store and the senders share it)."""
        ec = cfg.evidence
        key = (str(Path(cfg.state_dir).resolve()), str(cfg.key_path), ec.checkpoint_records,
               ec.checkpoint_s)
        with cls._cache_lock:
            ev = cls._cache.get(key)
            if ev is None:
                ev = cls._cache[key] = cls(cfg.state_dir, key_path=cfg.key_path,
                                           every_records=ec.checkpoint_records,
                                           every_s=ec.checkpoint_s)
            return ev

    @property
    def _heads(self) -> dict[str, Head]:
        if self._loaded is None:
            self._loaded = self._load_heads()
        return self._loaded

    def _load_heads(self) -> dict[str, Head]:
        try:
            d = json.loads(self._heads_path.read_text(encoding="utf-8"))
            return {s: Head(int(h["seq"]), h.get("sha256"), h.get("end"))
                    for s, h in d.items() if s in STREAMS}
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            log.error("evidence: %s cannot be read (%s): the chain's heads start over; verify "
                      "will show the gap", self._heads_path, e)
            return {}

    def head(self, stream: str) -> Head:
        with self._lock:
            return self._heads.get(stream, Head())

    def advance(self, stream: str, head: Head) -> None:
        """A checkpoint was written: remember it (in memory and in chain.json, atomically)."""
        with self._lock:
            self._heads[stream] = head
            data = json.dumps({s: {"seq": h.seq, "sha256": h.sha256, "end": h.end}
                               for s, h in sorted(self._heads.items())}, indent=1)
            tmp = self._heads_path.with_name(HEADS_FILENAME + ".tmp")
            try:
                self._heads_path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(data + "\n", encoding="utf-8")
                os.replace(tmp, self._heads_path)
                self._save_failed = False
            except OSError as e:
                if not self._save_failed:
                    log.error("evidence: cannot write %s (%s): a restart will not know the "
                              "last checkpoint", self._heads_path, e.strerror or e)
                self._save_failed = True

    def anchors(self) -> dict[str, Head]:
        """Each stream's latest checkpoint (those that have one): what leaves the box."""
        with self._lock:
            return {s: h for s, h in sorted(self._heads.items()) if h.seq}

    def note_event(self, key: tuple[str, str], digest: str) -> None:
        """The event log wrote event `key` ((id, type)); `digest` is its file's SHA-256 so far."""
        with self._lock:
            self._digests[key] = digest
            while len(self._digests) > DIGESTS_MAX:
                self._digests.popitem(last=False)

    def take_event(self, key: tuple[str, str]) -> str | None:
        """The digest noted for event `key` (the store's `chain_sha256`), once."""
        with self._lock:
            return self._digests.pop(key, None)


# ---------------------------------------------------------------------------------------------
# Writing


def _line_of(d: dict[str, Any]) -> str:
    return json.dumps(d) + "\n"


class ChainWriter:
    """The running SHA-256 of one chained file, and its checkpoints.

    The owner writes each record line to its file, then hands it to `add`; checkpoints go
    through the owner's `write`, in order with the records. `start` writes the file's first
    checkpoint (or, for a file reopened after a restart, the restart's), `tick` one when
    `every_s` passed with records unsealed, `close` the final one."""

    def __init__(self, ev: Evidence, stream: str, write: Callable[[str], object], *,
                 resume: Scan | None = None):
        self.ev = ev
        self.stream = stream
        self._write = write
        self._every = ev.every_records
        self._every_s = ev.every_s
        head = ev.head(stream)
        if resume is None or resume.lines == 0:
            self._h = hashlib.sha256()
            self.lines = self.nbytes = 0
            self.new_file = True
            file_seq = 0
        else:
            self._h = resume.h
            self.lines, self.nbytes = resume.lines, resume.nbytes
            self.new_file = False
            file_seq = resume.last_seq
            if head.seq > file_seq:
                log.error("evidence: %s ends at checkpoint %d but this state dir sealed up to "
                          "%d: the file was cut or replaced (verify will show the gap)",
                          resume.path, file_seq, head.seq)
        self.seq = max(head.seq, file_seq)
        self._unsealed = 0
        self._sealed_at = time.monotonic()

    def add(self, s: str) -> None:
        """A record line `s` (ending in a newline) was written."""
        b = s.encode("utf-8")
        self._h.update(b)
        self.lines += 1
        self.nbytes += len(b)
        self._unsealed += 1
        if self._unsealed >= self._every:
            self.seal("interval")

    def extend(self, s: str) -> None:
        """Bytes that end a line already counted (a line cut short by a crash, completed)."""
        b = s.encode("utf-8")
        self._h.update(b)
        self.nbytes += len(b)

    def digest(self) -> str:
        """SHA-256 of everything written so far."""
        return self._h.hexdigest()

    def due(self) -> bool:
        return self._unsealed > 0 and time.monotonic() - self._sealed_at >= self._every_s

    def tick(self) -> None:
        if self.due():
            self.seal("interval")

    def start(self) -> None:
        self.seal("start")

    def close(self) -> None:
        self.seal("end")

    def seal(self, reason: str) -> None:
        """Write a checkpoint: everything before it, hashed, numbered and signed."""
        seq = self.seq + 1
        d: dict[str, Any] = {"type": TYPE, "stream": self.stream, "seq": seq,
                             "line": self.lines + 1, "bytes": self.nbytes,
                             "sha256": self._h.hexdigest(), "reason": reason,
                             "t_ns": time.time_ns()}
        if reason == "start" and self.new_file:
            d["prev"] = self.ev.head(self.stream).end
        signer = self.ev.signer
        d["key"] = signer.current()
        d["sig"] = signer.sign(SIG_CONTEXT + json.dumps(d).encode()) if d["key"] else None
        s = _line_of(d)
        self._write(s)
        self.seq = seq
        b = s.encode("utf-8")
        self._h.update(b)
        self.lines += 1
        self.nbytes += len(b)
        self._unsealed = 0
        self._sealed_at = time.monotonic()
        self.ev.advance(self.stream, Head(seq, d["sha256"], self._h.hexdigest()))


# ---------------------------------------------------------------------------------------------
# Reading back


@dataclass
class Scan:
    """What reading a chained file found: its state (for a writer that continues it) and, up to
    the first break, the checks of its checkpoints."""

    path: Path
    lines: int = 0
    nbytes: int = 0
    h: Any = field(default_factory=hashlib.sha256)
    checkpoints: int = 0
    first: dict[str, Any] | None = None  # the first checkpoint, as read
    first_line: int = 0
    last: dict[str, Any] | None = None  # the last checkpoint, as read
    last_line: int = 0
    end: str | None = None  # SHA-256 through the last checkpoint line
    key: str | None = None  # the key the signatures were checked against
    trusted: bool = False  # that key was given (--pubkey), not taken from the file
    problems: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    cut: str | None = None  # the file could not be read to its end (a truncated .gz)
    newline_at_end: bool = True

    @property
    def last_seq(self) -> int:
        return int(self.last["seq"]) if self.last and isinstance(self.last.get("seq"), int) else 0

    @property
    def tail(self) -> int:
        """Lines after the last checkpoint."""
        return self.lines - self.last_line

    @property
    def records(self) -> int:
        return self.lines - self.checkpoints

    @property
    def intact(self) -> bool:
        return not self.problems


def open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


def _span(a: int, b: int) -> str:
    return f"lines {a}-{b}" if a < b else f"line {b if b >= 1 else a}"


def _short(h: str | None) -> str:
    return f"{h[:16]}..." if h else "none"


class _Checker:
    """The checks of one file's checkpoints, in order; the first problem stops them."""

    def __init__(self, sc: Scan, trusted: str | None):
        self.sc = sc
        self.trusted = trusted
        self.pub: dict[str, Ed25519PublicKey] = {}
        self.stream: str | None = None
        self.prev_reason: str | None = None

    def problem(self, line: int, what: str) -> None:
        self.sc.problems.append((line, what))

    def check(self, raw: bytes, n: int, nbytes: int, digest: str) -> dict[str, Any] | None:
        """Checkpoint line `raw` at line n, with nbytes bytes and SHA-256 `digest` before it.
        Returns the checkpoint when it is readable (even with a problem), else None."""
        sc = self.sc
        prev_line = sc.last_line
        seg = _span(prev_line + 1, n - 1)
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            d = None
        if not isinstance(d, dict) or d.get("type") != TYPE:
            self.problem(n, "a checkpoint line that is not valid JSON: it was changed")
            return None
        ok_types = (isinstance(d.get("seq"), int) and isinstance(d.get("line"), int)
                    and isinstance(d.get("bytes"), int) and isinstance(d.get("sha256"), str)
                    and d.get("reason") in REASONS and isinstance(d.get("stream"), str))
        if not ok_types:
            self.problem(n, "a checkpoint without its seq, line, bytes, sha256, stream or "
                            "reason: it was changed")
            return d
        seq = d["seq"]
        what = f"checkpoint {seq} (line {n})"
        if not self._signature(d, what, n):
            return d
        if self.stream is not None and d["stream"] != self.stream:
            self.problem(n, f"{what} belongs to stream {d['stream']!r}, the file's earlier "
                            f"checkpoints to {self.stream!r}")
            return d
        self.stream = d["stream"]
        if d["line"] != n:
            k = abs(n - d["line"])
            how = "deleted from" if n < d["line"] else "inserted into"
            self.problem(prev_line + 1, f"chain breaks: {k} line{'s' if k > 1 else ''} {how} "
                                        f"{_span(prev_line + 1, n - 1)} ({what} was written as "
                                        f"line {d['line']})")
            return d
        if d["bytes"] != nbytes or d["sha256"] != digest:
            detail = (f"{nbytes - d['bytes']:+d} bytes" if d["bytes"] != nbytes else
                      f"SHA-256 {_short(digest)} now, {_short(d['sha256'])} sealed")
            them = "them" if seg.startswith("lines") else "it"
            self.problem(prev_line + 1, f"chain breaks: {seg} changed after {what} sealed {them} "
                                        f"({detail})")
            return d
        last = sc.last_seq if sc.last is not None else None
        if last is not None and seq != last + 1:
            if seq > last + 1:
                self.problem(n, f"checkpoints {last + 1}-{seq - 1} are missing before {what}: "
                                "lines were cut out with them")
            else:
                self.problem(n, f"{what} repeats or goes back (after checkpoint {last})")
            return d
        if d["reason"] == "start":
            if sc.last is not None and self.prev_reason != "end":
                self.sc.notes.append((n, f"the monitor restarted after an unclean stop; this "
                                         f"restart sealed {seg}"))
            if sc.last is None and n > 1 and "prev" not in d:
                self.sc.notes.append((n, f"{seg}: written before chaining began, sealed from "
                                         "here on"))
        self.prev_reason = d["reason"]
        return d

    def _signature(self, d: dict[str, Any], what: str, n: int) -> bool:
        key, sig = d.get("key"), d.get("sig")
        if key is None or sig is None:
            self.problem(n, f"{what} is not signed (the monitor had no signing key)")
            return False
        if not isinstance(key, str) or not isinstance(sig, str):
            self.problem(n, f"{what}: key and sig must be strings: it was changed")
            return False
        sc = self.sc
        if self.trusted is not None and key != self.trusted:
            self.problem(n, f"bad signature: {what} is signed by {key} ({_fp(key)}), not by "
                            f"the trusted key {self.trusted} ({_fp(self.trusted)})")
            return False
        if sc.key is not None and key != sc.key:
            self.problem(n, f"bad signature: {what} is signed by {key} ({_fp(key)}), the "
                            f"checkpoints before it by {sc.key} ({_fp(sc.key)})")
            return False
        pub = self.pub.get(key)
        if pub is None:
            try:
                pub = self.pub[key] = parse_public(key)
            except EvidenceError:
                self.problem(n, f"bad signature: {what} names no valid key ({key[:60]!r})")
                return False
        body = {k: v for k, v in d.items() if k != "sig"}
        try:
            pub.verify(base64.b64decode(sig, validate=True),
                       SIG_CONTEXT + json.dumps(body).encode())
        except (InvalidSignature, binascii.Error, ValueError):
            self.problem(n, f"bad signature: {what} is not what {key} ({_fp(key)}) signed: it "
                            "was changed or signed by someone else")
            return False
        sc.key = key
        return True


def _fp(key: str) -> str:
    try:
        return fingerprint(key)
    except (binascii.Error, ValueError):
        return "?"


def scan(path: str | Path, trusted: str | None = None, *,
         first_within: int | None = None) -> Scan:
    """Read a chained file and check its checkpoints up to the first problem (hashing goes on to
    the end: a writer that continues the file needs the state). `trusted`: the public key the
    signatures must be made with; None: the key the file's first checkpoint names. The end of
    the file (tail, final checkpoint) is judged by `judge_end`. `first_within`: a file with no
    checkpoint in its first lines is not chained; stop reading it there (replay: a recorded
    trace has its first checkpoint on line 2)."""
    sc = Scan(Path(path))
    if trusted is not None:
        trusted = public_text(parse_public(trusted))
        sc.trusted = True
    chk = _Checker(sc, trusted)
    h = sc.h
    n = nbytes = 0
    line = b""
    try:
        f = open_binary(sc.path)
    except OSError as e:
        raise EvidenceError(f"{sc.path}: cannot read: {e.strerror or e}") from None
    try:
        for line in f:
            n += 1
            if line.startswith(PREFIX):
                if sc.problems:
                    d = _loads(line)
                else:
                    d = chk.check(line, n, nbytes, h.hexdigest())
                h.update(line)
                nbytes += len(line)
                if d is not None:
                    sc.checkpoints += 1
                    if sc.first is None:
                        sc.first, sc.first_line = d, n
                    sc.last, sc.last_line = d, n
                    sc.end = h.hexdigest()
                continue
            h.update(line)
            nbytes += len(line)
            if first_within is not None and n >= first_within and not sc.checkpoints:
                break
    except (OSError, EOFError, zlib.error) as e:
        sc.cut = str(e) or type(e).__name__
    finally:
        f.close()
    sc.lines, sc.nbytes = n, nbytes
    sc.newline_at_end = n == 0 or line.endswith(b"\n")
    return sc


def _loads(line: bytes) -> dict[str, Any] | None:
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) else None


def judge_end(sc: Scan, live_pid: int | None = None) -> None:
    """Add the problems of the file's end: read to its end, a checkpoint at all, nothing after
    the last one, and that one the final one. `live_pid`: the monitor still writing the file
    (the state dir's lock is held): an open end is then noted, not a problem."""
    if sc.problems:
        return
    if sc.cut is not None:
        sc.problems.append((sc.lines + 1, f"the file is cut off after line {sc.lines} "
                                          f"({sc.cut}): its end is missing"))
        return
    if sc.checkpoints == 0:
        sc.problems.append((1, "no checkpoint: not a chained file (written before evidence "
                               "chaining, or by `timewatch simulate`)"))
        return
    last_reason = sc.last.get("reason") if sc.last else None
    if sc.tail == 0 and last_reason == "end":
        return
    if live_pid is not None:
        sc.notes.append((sc.last_line + 1, f"still being written by timewatch PID {live_pid}: "
                                           "its next checkpoint seals what follows checkpoint "
                                           f"{sc.last_seq}"))
        return
    if sc.tail:
        sc.problems.append((sc.last_line + 1, f"missing tail: nothing seals "
                                              f"{_span(sc.last_line + 1, sc.lines)} after the "
                                              f"last checkpoint ({sc.last_seq}, line "
                                              f"{sc.last_line}): the file's final checkpoint is "
                                              "missing"))
    else:
        sc.problems.append((sc.last_line, f"missing tail: the file ends at checkpoint "
                                          f"{sc.last_seq} (line {sc.last_line}), which is not "
                                          "its final one: what followed was cut off (or the "
                                          "monitor did not stop cleanly)"))


def link(before: Scan, after: Scan) -> None:
    """Check that `after` continues `before` (the same stream's next file): its first checkpoint
    names `before`'s end and numbers on from it."""
    if after.problems or after.first is None or before.last is None:
        return
    if after.first.get("stream") != before.last.get("stream"):
        return
    prev = after.first.get("prev")
    if "prev" not in after.first:
        after.problems.append((after.first_line, f"does not start a file, so it cannot follow "
                                                 f"{before.path}"))
    elif prev is None:
        after.problems.append((after.first_line, "starts its stream's chain (no previous file), "
                                                 f"so it cannot follow {before.path}"))
    elif prev != before.end:
        after.problems.append((after.first_line, f"does not continue {before.path}: its first "
                                                 f"checkpoint names SHA-256 {_short(prev)}, "
                                                 f"{before.path} ends with {_short(before.end)}"))
    elif after.first.get("seq") != before.last_seq + 1:
        after.problems.append((after.first_line, f"checkpoints {before.last_seq + 1}-"
                                                 f"{int(after.first.get('seq', 0)) - 1} are "
                                                 f"missing between {before.path} and this file"))
