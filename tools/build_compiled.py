"""Optional mypyc build of the replay/engine core, like mypy and black ship theirs: same source, compiled.

    python tools/build_compiled.py          # compile MODULES in place (.so next to each .py)
    python tools/build_compiled.py check    # exit 1 if a .so is older than its .py (stale)
    python tools/build_compiled.py clean    # remove every .so, the manifest and build/mypyc

Run with the venv's python (it needs mypy, which brings mypyc, plus gcc and the Python headers).
An extension module shadows the .py next to it (the import system tries .so before .py), so an
edited .py would go on running its old compiled self. The build writes the sha256 of every
compiled source to timewatch/_compiled.json; `check` (and the import-time guard in
timewatch/__init__.py, if the source patch is applied) compares them. Without a compiler nothing
changes: the package is pure Python, and `clean` brings it back to that.
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


def clean() -> None:
    for p in built_files():
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def build(modules: list[str]) -> None:
    # mypyc and setuptools are build-time only: imported here so `check`/`clean` need neither.
    from mypyc.build import mypycify
    from setuptools import Distribution

    clean()  # no .so of an earlier module list left behind to shadow its .py
    os.chdir(ROOT)  # mypy finds its configuration ([tool.mypy] in pyproject.toml) from here
    digests = {rel: _sha256(ROOT / rel) for rel in modules}
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
    MANIFEST.write_text(json.dumps({"python": sys.version.split()[0], "sha256": digests},
                                   indent=1) + "\n")
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
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
