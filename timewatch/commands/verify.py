"""`timewatch verify FILE... [--pubkey KEY]`: is the chain of each trace or event log intact?

Prints `FILE: intact (...)` per file, or `FILE:LINE: what` for the first line where the chain
breaks, a missing tail or a bad signature (docs/evidence.md); exit 1 on any. Files of one stream
given in order (`events.jsonl.1 events.jsonl`) must also continue each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..evidence import (
    EvidenceError,
    Scan,
    fingerprint,
    judge_end,
    link,
    parse_public,
    public_text,
    scan,
)
from ..statedir import holder


def verify_files(paths: list[str], pubkey: str | None = None) -> list[Scan]:
    """Scan, link and judge each file; a file that cannot be read is a problem of its own."""
    scans = []
    for p in paths:
        try:
            scans.append(scan(p, pubkey))
        except EvidenceError as e:
            sc = Scan(Path(p))
            sc.problems.append((0, str(e).removeprefix(f"{p}: ")))
            scans.append(sc)
    for before, after in zip(scans, scans[1:], strict=False):
        link(before, after)
    for sc in scans:
        pid = holder(sc.path.parent)
        judge_end(sc, live_pid=pid if pid is not None and pid > 0 else None)
    return scans


def summary(sc: Scan) -> str:
    first = sc.first.get("seq") if sc.first else None
    key = sc.key or "?"
    whose = "the trusted key" if sc.trusted else \
        "the key the file names: check it against `timewatch key show`, or pass --pubkey"
    fp = f" ({fingerprint(key)})" if sc.key else ""
    return (f"{sc.path}: intact ({sc.records} lines sealed by checkpoints {first}-{sc.last_seq}, "
            f"signed by {key}{fp}, {whose})")


def cmd_verify(args: argparse.Namespace) -> int:
    pubkey = None
    if args.pubkey:
        try:
            pubkey = public_text(parse_public(args.pubkey))
        except EvidenceError as e:
            raise UsageError(f"--pubkey: {e}") from None
    rc = 0
    for sc in verify_files(args.files, pubkey):
        for line, what in sc.notes:
            print(f"{sc.path}:{line}: note: {what}")
        if sc.intact:
            print(summary(sc))
        else:
            line, what = sc.problems[0]
            print(f"{sc.path}:{line}: {what}" if line else f"{sc.path}: {what}")
            rc = 1
    return rc
