"""The optional mypyc build (tools/build_compiled.py, `make compiled`) computes exactly what the
pure-Python package computes: the same outputs on attack scenarios of every kind, and the engine's
own tests pass against it. Skipped, with the reason, where nothing can compile (no C compiler, no
Python headers: Debian's python3-dev)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from build_compiled import compiled_copy  # noqa: E402

pytestmark = pytest.mark.slow

# One scenario per part of the engine: NTP vote, drift, delay and leap detectors, host steps, the
# GNSS receiver checks, PPS and the holdover (docs/threats.md numbering in timewatch/sim/scenarios.py).
SCENARIOS = ["ntp_liar", "ntp_drift", "ntp_mitm_delay", "ntp_leap", "host_step",
             "ntp_no_majority", "gnss_push_fast", "gnss_garbage", "pps_faults"]

# Run inside a copy: every output of the engine, hashed per scenario.
SCRIPT = """
import hashlib, json, sys
from timewatch.engine import Engine
from timewatch.leapfile import load_leap_list
from timewatch.commands.replay import engine_build
from timewatch.sim import scenarios
print(engine_build())
for name in sys.argv[1:]:
    st = scenarios.build(name, 4)
    eng = Engine(st.header, leap_list=load_leap_list())
    h, n = hashlib.sha256(), 0
    for o in st.observations:
        for r in eng.feed(o):
            h.update(json.dumps(r.to_dict(), sort_keys=True).encode())
            n += 1
    print(name, n, h.hexdigest())
"""


def _cannot_compile() -> str | None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        return "no C compiler"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.exists():
        return f"no Python headers ({headers}; Debian: python3-dev)"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc (from mypy) is not installed"
    return None


def _run(cwd: Path, *args: str, timeout: float = 900) -> str:
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_compiled_build_gives_the_pure_outputs_and_passes_the_engine_tests(
        tmp_path: Path) -> None:
    why = _cannot_compile()
    if why:
        pytest.skip(why)
    pure = compiled_copy(tmp_path / "pure", compile=False)
    compiled = compiled_copy(tmp_path / "compiled")
    # The copies' tests read the receiver corpus beside them, as the tree's own tests do.
    if (ROOT.parent / "shared").is_dir():
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    assert sorted(p.name for p in (compiled / "timewatch" / "engine").glob("core*.so"))

    want = _run(pure, "-c", SCRIPT, *SCENARIOS).splitlines()
    got = _run(compiled, "-c", SCRIPT, *SCENARIOS).splitlines()
    assert want[0] == "pure Python" and got[0] == "compiled"  # what `replay` reports
    assert len(want) == len(SCENARIOS) + 1
    assert all(int(line.split()[1]) > 0 for line in want[1:])  # every scenario gave outputs
    assert got[1:] == want[1:]

    # The engine's tests against the compiled modules (the copy comes first on sys.path).
    out = _run(compiled, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/engine")
    assert " passed" in out and "failed" not in out, out[-2000:]
