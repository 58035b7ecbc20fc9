"""The mypyc build of the replay/engine core, like mypy and black ship theirs: same source,
compiled. Installing timewatch builds it (setup.py's build hook calls this module: `pip install
.`, `pip install -e .`, `make`, hw/install.sh) when a C compiler, the Python headers and mypyc
are there; otherwise the package is pure Python, which is always the fallback.

    python tools/build_compiled.py          # compile MODULES in place (.so next to each .py)
    python tools/build_compiled.py auto     # rebuild if a source changed; pure Python if it cannot
    python tools/build_compiled.py check    # exit 1 if a .so is older than its .py (stale)
    python tools/build_compiled.py clean    # remove every .so, the manifest and build/mypyc

Run with the venv's python (it needs mypy, which brings mypyc, plus gcc and the Python headers).
An extension module shadows the .py next to it (the import system tries .so before .py), so an
edited .py would go on running its old compiled self. The build writes the sha256 of every
compiled source to timewatch/_compiled.json; `check` and the import-time guard in
timewatch/__init__.py compare them (the guard then runs every compiled module from its .py, and
says so). TIMEWATCH_PURE=1 in the environment makes every build pure Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The hot path of `timewatch replay` (bench/bench_replay_ntp.py): the engine and the trace reader.
# Not records.py: msgspec decodes trace lines 4x slower into mypyc's native classes (reader 4.4 ->
# 17 us/obs) and fills a missing int field with 0 instead of refusing the line.
MODULES = ["timewatch/trace.py"] + sorted(
    str(p.relative_to(ROOT)) for d in ("engine", "wire") for p in (ROOT / "timewatch" / d).rglob("*.py")
    if p.name != "__init__.py")  # every engine and codec module: a new one is compiled too
# mypyc puts the code of all modules in one shared library; naming the group inside the package
# puts that library in timewatch/ instead of the repository root (mypyc's default, a hash name).
GROUP = "timewatch._core"
MANIFEST = ROOT / "timewatch" / "_compiled.json"
BUILD_DIR = ROOT / "build" / "mypyc"  # generated C and object files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cannot_compile() -> str | None:
    """Why this Python cannot build the compiled core (None: it can)."""
    import sysconfig

    if os.environ.get("TIMEWATCH_PURE", "") not in ("", "0"):
        return "TIMEWATCH_PURE is set"
    if shutil.which(os.environ.get("CC", "gcc").split()[0]) is None and shutil.which("cc") is None:
        return "no C compiler (Debian: apt-get install gcc)"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.exists():
        return f"no Python headers ({headers}; Debian: apt-get install python3-dev)"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy)"
    return None


def write_manifest(package_dir: Path, modules: list[str]) -> Path:
    """timewatch/_compiled.json in package_dir: the sha256 of each compiled source as built."""
    manifest = package_dir / MANIFEST.name
    digests = {rel: _sha256(ROOT / rel) for rel in modules}
    manifest.write_text(json.dumps({"python": sys.version.split()[0], "sha256": digests},
                                   indent=1) + "\n")
    return manifest


def built_files() -> list[Path]:
    """Every extension module and the manifest under timewatch/ (what `clean` removes). The package
    is pure Python: any .so in it is a build's, whatever Python version made it."""
    found = sorted((ROOT / "timewatch").rglob("*.so"))
    return found + ([MANIFEST] if MANIFEST.exists() else [])


def stale() -> list[str]:
    """Sources whose text differs from what was compiled; [] when nothing is compiled."""
    if not MANIFEST.exists():
        orphans = [p for p in built_files() if p.suffix != ".json"]
        return [f"{p.relative_to(ROOT)} (no manifest)" for p in orphans]
    recorded: dict[str, str] = json.loads(MANIFEST.read_text())["sha256"]
    return [rel for rel, digest in recorded.items()
            if not (ROOT / rel).exists() or _sha256(ROOT / rel) != digest]


def clean(quiet: bool = False) -> None:
    for p in built_files():
        p.unlink()
        if not quiet:
            print(f"removed {p.relative_to(ROOT)}")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def build(modules: list[str]) -> None:
    # mypyc and setuptools are build-time only: imported here so `check`/`clean` need neither.
    from mypyc.build import mypycify
    from setuptools import Distribution

    clean()  # no .so of an earlier module list left behind to shadow its .py
    os.chdir(ROOT)  # mypy finds its configuration ([tool.mypy] in pyproject.toml) from here
    t0 = time.monotonic()
    ext_modules = mypycify(modules, group_name=GROUP, target_dir=str(BUILD_DIR))
    # A bare Distribution, not setup(): setup() would read pyproject.toml's [project] table,
    # which the venv's setuptools may be too old to accept (PEP 639 license string); the
    # extensions need none of it.
    dist = Distribution({"name": "timewatch-compiled", "ext_modules": ext_modules})
    cmd = dist.get_command_obj("build_ext")
    cmd.inplace = True
    cmd.build_temp = str(BUILD_DIR / "temp")
    cmd.parallel = os.cpu_count() or 1
    dist.run_command("build_ext")
    write_manifest(MANIFEST.parent, modules)
    print(f"compiled {len(modules)} modules in {time.monotonic() - t0:.0f} s; "
          f"manifest {MANIFEST.relative_to(ROOT)}")


def compiled_copy(dest: Path, python: str = sys.executable, compile: bool = True) -> Path:
    """A copy of this tree (package, tools, tests, bench) in `dest`, compiled there (pure Python
    with compile=False): for the bench and the tests, which compare the two builds without leaving
    .so files in the working tree. Raises CalledProcessError (with mypyc's and gcc's output) when
    the build fails."""
    import subprocess

    ignore = shutil.ignore_patterns("*.so", "_compiled.json", "__pycache__", "build")
    for part in ("timewatch", "tools", "tests", "bench"):
        shutil.copytree(ROOT / part, dest / part, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    if not compile:
        return dest
    subprocess.run([python, str(dest / "tools" / "build_compiled.py")], cwd=dest, check=True,
                   capture_output=True, text=True, timeout=1800)
    return dest


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "build"
    if action == "clean":
        clean()
        return 0
    if action == "check":
        bad = stale()
        for rel in bad:
            print(f"stale compiled module: {rel} changed since the build; "
                  f"run `python tools/build_compiled.py` or `... clean`", file=sys.stderr)
        return 1 if bad else 0
    if action == "build":
        build(argv[1:] or MODULES)
        return 0
    if action == "auto":  # `make`: up to date, rebuilt, or pure Python; never fails the make
        if MANIFEST.exists() and not stale():
            print("compiled engine: up to date")
            return 0
        why = cannot_compile()
        if why is None:
            try:
                build(MODULES)
                return 0
            except (Exception, SystemExit) as e:  # noqa: BLE001 - mypy errors exit
                why = f"the mypyc build failed: {e}"
        clean(quiet=True)
        print(f"engine: pure Python ({why})")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
