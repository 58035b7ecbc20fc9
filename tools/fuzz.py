"""Bounded fuzzing of every decoder that takes outside input (`make fuzz`).

    python tools/fuzz.py [TARGET...]        every target (tools/fuzz_targets.py) when none named
    FUZZ_SECONDS=S                          time per target (default 20)
    FUZZ_ENGINE=atheris|hypothesis          default: atheris when it is installed
    python tools/fuzz.py --replay TARGET FILE...   run saved inputs once, with the traceback

Each target runs in its own process, for FUZZ_SECONDS, starting from its seeds: with atheris
(libFuzzer, coverage-guided over the timewatch modules) when it is installed, otherwise with
hypothesis (random inputs and mutated seeds until the time is up). Per target it prints the
inputs run, the time taken and the crashes; a crashing input is saved as fuzz-crashes/TARGET-*
(or, with hypothesis, printed). Exit status 1 when a target crashed.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRASHES = ROOT / "fuzz-crashes"
NAMES = ("framer", "nmea", "ubx", "ntp", "nts", "trace", "config", "gpsd", "chronyc")
MAX_LEN = 8192  # bytes per input
INPUT_TIMEOUT_S = 10  # one input taking longer is a crash (a hang)


def _engine() -> str:
    want = os.environ.get("FUZZ_ENGINE", "")
    if want:
        return want
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


# -- in the target's own process ------------------------------------------------------------------

def _child_atheris(name: str, seconds: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["timewatch"]):
        sys.path.insert(0, str(ROOT / "tools"))
        import fuzz_targets
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    for i, seed in enumerate(fuzz_targets.SEEDS[name]()):
        (corpus / f"seed{i}").write_bytes(seed[:MAX_LEN])
    CRASHES.mkdir(exist_ok=True)
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", f"-timeout={INPUT_TIMEOUT_S}",
                   f"-max_len={MAX_LEN}", "-rss_limit_mb=2048", "-print_final_stats=1",
                   f"-artifact_prefix={CRASHES}/{name}-", str(corpus)],
                  fuzz_targets.TARGETS[name])
    atheris.Fuzz()


def _child_hypothesis(name: str, seconds: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    sys.path.insert(0, str(ROOT / "tools"))
    import fuzz_targets

    target = fuzz_targets.TARGETS[name]
    seeds = [s[:MAX_LEN] for s in fuzz_targets.SEEDS[name]()]
    end = time.monotonic() + seconds
    runs = [0]

    class TimeUp(Exception):
        pass

    spliced = st.tuples(st.sampled_from(seeds), st.integers(0, MAX_LEN),
                        st.binary(max_size=32), st.integers(0, 32)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + t[3]:])

    @settings(max_examples=10**9, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.one_of(spliced, st.binary(max_size=MAX_LEN)))
    def run(data: bytes) -> None:
        if time.monotonic() > end:
            raise TimeUp
        runs[0] += 1
        try:
            target(data)
        except Exception:
            print(f"crash input (hex): {data.hex()}", flush=True)
            raise

    t0 = time.monotonic()
    try:
        run()
    except TimeUp:
        pass
    finally:
        print(f"Done {runs[0]} runs in {time.monotonic() - t0:.0f} second(s)", flush=True)


def _replay(name: str, files: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "tools"))
    import fuzz_targets

    for f in files:
        data = bytes.fromhex(f[4:]) if f.startswith("hex:") else Path(f).read_bytes()
        print(f"{name} <- {f} ({len(data)} bytes)")
        fuzz_targets.TARGETS[name](data)
    print("no crash")
    return 0


# -- the driver ---------------------------------------------------------------------------------

def fuzz_one(name: str, seconds: int, engine: str) -> tuple[int, float, list[str], str]:
    """(inputs run, seconds, crash descriptions, output) of one target in its own process."""
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FUZZ_ENGINE": engine}
    p = subprocess.run([sys.executable, __file__, "--child", name, str(seconds)], env=env,
                       capture_output=True, text=True, errors="replace",
                       timeout=seconds + INPUT_TIMEOUT_S + 120)
    took = time.monotonic() - t0
    out = p.stdout + p.stderr
    m = re.search(r"Done (\d+) runs in", out) or re.search(
        r"stat::number_of_executed_units: (\d+)", out)
    runs = int(m.group(1)) if m else 0
    crashes: list[str] = []
    if p.returncode != 0:
        saved = re.findall(r"Test unit written to (\S+)", out)
        exc = re.findall(r"^(\w+(?:\.\w+)*(?:Error|Exception|Interrupt)\b.*)$", out, re.M)
        what = exc[-1] if exc else ("timeout" if "timeout" in out else f"exit {p.returncode}")
        crashes.append(f"{what} ({', '.join(saved) or 'input printed above'})")
    return runs, took, crashes, out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        name, seconds = argv[1], int(argv[2])
        logging.disable(logging.CRITICAL)  # bad input is logged by design; the fuzzer wants speed
        (_child_atheris if os.environ.get("FUZZ_ENGINE") == "atheris"
         else _child_hypothesis)(name, seconds)
        return 0
    if argv[:1] == ["--replay"]:
        return _replay(argv[1], argv[2:])
    names = argv or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        print(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
        return 2
    seconds = int(os.environ.get("FUZZ_SECONDS", "20"))
    engine = _engine()
    print(f"fuzzing {len(names)} targets, {seconds} s each, with {engine}")
    print(f"{'target':<9} {'inputs':>10} {'seconds':>8} {'inputs/s':>9}  crashes")
    failed = 0
    total = 0
    for name in names:
        runs, took, crashes, out = fuzz_one(name, seconds, engine)
        total += runs
        print(f"{name:<9} {runs:>10} {took:>8.1f} {runs / took:>9.0f}  "
              f"{len(crashes) or 'none'}", flush=True)
        for c in crashes:
            failed += 1
            print(f"  CRASH {name}: {c}")
            print("  " + "\n  ".join(out.strip().splitlines()[-40:]))
    print(f"{total} inputs, {failed} crashes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
