"""`timewatch decode` against gpsd's own decoding of every capture of the gpsd corpus.

gpsd's `.chk` interleaves the sentences it accepted with the `TPV` reports they triggered. We
align each `TPV` with the sentence just before it, and that sentence with the epoch our decoder
put it in, so the comparison is per epoch, not per set of times:
- every epoch we call valid, when gpsd reported a time for it, has gpsd's UTC second (or differs
  by whole 1024-week GPS eras: gpsd "corrects" dates by its own build date, e.g. neo-m8n's
  correct 2015 date becomes 2034; such epochs are counted and shown, not hidden);
- of gpsd's fix times (mode >= 2), we report >= 99% as valid epochs with the same second, or
  flag that epoch's date as an anomaly.
The last epoch of a log is not compared: gpsd reports an epoch only when the next one starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from timewatch.commands.decode import decode_bytes
from timewatch.engine.gnss_epoch import ROLLOVER_S, Epoch, EpochAssembler, decode_line
from timewatch.wire.framer import frames_of

NS = 1_000_000_000
ROOT = Path(__file__).resolve().parent.parent


def _iso_s(t: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(t[:19] + "+00:00").timestamp())


def decode_with_index(data: bytes) -> tuple[list[str], list[int], dict[int, Epoch]]:
    """The log's text frames, the epoch index each one went into, and the epochs by index."""
    asm = EpochAssembler()
    texts: list[str] = []
    where: list[int] = []
    epochs: dict[int, Epoch] = {}
    for fr in frames_of(data):
        if fr.kind != "nmea":
            continue
        line = fr.data.decode("utf-8", "replace")
        if line.startswith("#"):
            continue
        s, bad = decode_line(line)
        if s is not None or bad:
            ep = asm.feed(s)
            if ep is not None:
                epochs[ep.index] = ep
        texts.append(line.strip())
        where.append(asm.count - 1)
    last = asm.flush()
    if last is not None:
        epochs[last.index] = last
    return texts, where, epochs


@dataclass
class Row:
    name: str
    epochs: int = 0
    valid: int = 0
    gpsd_fix: int = 0
    matched: int = 0
    flagged: int = 0  # gpsd fix times whose epoch we flag as a date anomaly
    missed: int = 0
    wrong: int = 0  # valid epochs with a different second than gpsd's
    era: int = 0  # valid epochs gpsd moved by whole 1024-week eras

    @property
    def reported(self) -> float:
        return 1.0 if not self.gpsd_fix else (self.matched + self.flagged) / self.gpsd_fix


def compare(log: Path) -> Row:
    texts, where, epochs = decode_with_index(log.read_bytes())
    row = Row(log.name, len(epochs), sum(e.valid for e in epochs.values()))
    last_index = max(epochs) if epochs else -1
    gpsd: dict[int, list[tuple[int, int]]] = {}  # epoch index -> [(second, mode)]
    pos, cur = 0, -1
    for raw in log.with_name(log.name + ".chk").read_text("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("{"):
            d = json.loads(line)
            if d.get("class") == "TPV" and "time" in d and cur >= 0:
                gpsd.setdefault(where[cur], []).append((_iso_s(d["time"]), int(d.get("mode", 0))))
        elif line.startswith(("$", "!")):
            for k in range(pos, min(pos + 60, len(texts))):  # gpsd drops sentences it rejects
                if texts[k] == line:
                    pos, cur = k + 1, k
                    break
    def same(ep: Epoch | None, sec: int) -> bool:
        """ep is valid with gpsd's second, or one gpsd moved by whole GPS eras."""
        if ep is None or not ep.valid or ep.utc_ns is None:
            return False
        return (sec - ep.utc_ns // NS) % ROLLOVER_S == 0

    for idx in sorted(gpsd):
        ep = epochs.get(idx)
        if ep is None or idx == last_index:
            continue
        # gpsd may report an epoch's time at the first sentence of the next one.
        seconds = {s for s, _ in gpsd[idx]} | {s for s, _ in gpsd.get(idx + 1, [])}
        if ep.valid and ep.utc_ns is not None:
            ours = ep.utc_ns // NS
            if ours in seconds:
                pass
            elif any(same(ep, s) for s in seconds):
                row.era += 1
            else:
                row.wrong += 1
        for sec in sorted({s for s, m in gpsd[idx] if m >= 2}):
            row.gpsd_fix += 1
            cands = [epochs.get(idx), epochs.get(idx - 1)]
            if any(same(c, sec) for c in cands):
                row.matched += 1
            elif any(c is not None and "gnss.date_anomaly" in c.anomalies for c in cands):
                row.flagged += 1
            else:
                row.missed += 1
    return row


def test_decode_matches_gpsd_on_every_corpus_log(corpus: Path) -> None:
    logs = sorted((corpus / "gpsd").glob("*.log"))
    assert len(logs) >= 80
    rows = [compare(p) for p in logs]
    print(f"\n{'log':42s} {'epochs':>6s} {'valid':>5s} {'gpsd':>5s} {'same':>5s} {'flag':>4s} "
          f"{'miss':>4s} {'wrong':>5s} {'era':>3s} {'reported':>8s}")
    for r in rows:
        print(f"{r.name:42s} {r.epochs:6d} {r.valid:5d} {r.gpsd_fix:5d} {r.matched:5d} "
              f"{r.flagged:4d} {r.missed:4d} {r.wrong:5d} {r.era:3d} {r.reported:8.1%}")
    total_fix = sum(r.gpsd_fix for r in rows)
    total_ok = sum(r.matched + r.flagged for r in rows)
    print(f"total: {total_ok}/{total_fix} of gpsd's fix times reported or flagged "
          f"({total_ok / total_fix:.2%})")
    assert [r.name for r in rows if r.wrong] == [], "valid epochs with a time gpsd disagrees with"
    assert [(r.name, f"{r.reported:.1%}") for r in rows if r.reported < 0.99] == []
    assert total_fix > 1500  # the comparison really ran over the corpus


def test_decode_flags_week_rollover_of_april6_2019(corpus: Path) -> None:
    eps = list(decode_bytes((corpus / "gpsd" / "april6_2019.log").read_bytes()))
    claimed = [e for e in eps if e.claims_valid]
    assert claimed, "the receiver claims a valid fix"
    assert all(not e.valid and "gnss.date_anomaly" in e.anomalies for e in claimed)


def test_decode_cli_prints_one_object_per_epoch(corpus: Path) -> None:
    log = corpus / "gpsd" / "neo-m8n.log"
    p = subprocess.run([sys.executable, "-m", "timewatch.cli", "decode", str(log)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    objs = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(objs) == len(list(decode_bytes(log.read_bytes())))
    first_valid = next(o for o in objs if o["valid"])
    assert set(first_valid) == {"utc", "valid", "fix", "lat", "lon", "alt_m", "sats_used",
                                "sentences", "bad_sentences", "anomalies"}
    assert first_valid["utc"].startswith("2015-03-18T17:19:") and first_valid["utc"].endswith("Z")
    assert first_valid["fix"] == 3 and abs(first_valid["lat"] - 44.0690) < 1e-3


def test_decode_cli_missing_file_exits_1(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "timewatch.cli", "decode",
                        str(tmp_path / "nope.log")], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert p.returncode == 1 and "nope.log" in p.stderr
