"""Both builds compute the same: the compiled engine (the default install, tools/build_compiled.py)
and the pure-Python fallback. Whichever build this suite runs on, the other one is built in a copy
of the tree (compiled there, or left pure), gives the same outputs on attack scenarios of every
kind, passes the engine's tests and the golden gate. Where nothing can compile (no C compiler,
no Python headers: Debian's python3-dev) and the suite runs pure Python, it is skipped with the
reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from build_compiled import cannot_compile, compiled_copy  # noqa: E402

from timewatch.commands.replay import engine_build  # noqa: E402

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


# tools/golden.py check, run so that the copy's timewatch is the one imported.
GOLDEN = """
import runpy, sys
from timewatch.commands.replay import engine_build
print(engine_build())
sys.argv = ["tools/golden.py", "check"]
runpy.run_path("tools/golden.py", run_name="__main__")
"""


def _run(cwd: Path, *args: str, timeout: float = 900) -> str:
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_the_other_build_gives_the_same_outputs_and_passes_the_engine_tests_and_golden(
        tmp_path: Path) -> None:
    mine = engine_build()  # the build this suite runs on (what `make test` installed)
    if mine == "compiled":
        other, other_build = compiled_copy(tmp_path / "pure", compile=False), "pure Python"
    else:
        why = cannot_compile()
        if why:
            pytest.skip(why)
        other, other_build = compiled_copy(tmp_path / "compiled"), "compiled"
        assert sorted(p.name for p in (other / "timewatch" / "engine").glob("core*.so"))
    # The copy's tests read the receiver corpus beside it, as the tree's own tests do.
    if (ROOT.parent / "shared").is_dir():
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")

    want = _run(ROOT, "-c", SCRIPT, *SCENARIOS).splitlines()
    got = _run(other, "-c", SCRIPT, *SCENARIOS).splitlines()
    assert want[0] == mine and got[0] == other_build  # what `replay` reports
    assert len(want) == len(SCENARIOS) + 1
    assert all(int(line.split()[1]) > 0 for line in want[1:])  # every scenario gave outputs
    assert got[1:] == want[1:]

    # The engine's tests and the golden gate against the other build (the copy comes first on
    # sys.path).
    out = _run(other, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/engine")
    assert " passed" in out and "failed" not in out, out[-2000:]
    golden = _run(other, "-c", GOLDEN)  # as a module of the copy: its timewatch, not ours
    assert golden.startswith(other_build) and "ALL IDENTICAL" in golden, golden[-2000:]
