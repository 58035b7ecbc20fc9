"""The import-time guard of the compiled build (tools/build_compiled.py, the default install): a
compiled module whose .py changed since the build must never run its old compiled self; every
compiled module is then imported from its .py, and a warning names the edited source."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(where: Path, code: str) -> subprocess.CompletedProcess[str]:
    # The copy in `where` comes first on sys.path (the editable install's finder comes after it).
    return subprocess.run([sys.executable, "-c", code], cwd=where, capture_output=True,
                          text=True, timeout=30)


def test_an_edited_source_runs_from_its_py_never_from_the_old_build(tmp_path: Path) -> None:
    pkg = tmp_path / "timewatch"
    pkg.mkdir()
    shutil.copy(ROOT / "timewatch" / "__init__.py", pkg)
    (pkg / "mod.py").write_text("X = 1\n")
    assert _python(tmp_path, "import timewatch").returncode == 0  # no manifest: pure Python
    # A "build" whose extension module cannot even be loaded: importing it is an ImportError,
    # so a passing import below proves the .so was not used.
    (pkg / f"mod{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"not an ELF file")
    digest = hashlib.sha256(b"X = 1\n").hexdigest()
    (pkg / "_compiled.json").write_text(json.dumps({"sha256": {"timewatch/mod.py": digest}}))
    fresh = _python(tmp_path, "import timewatch")
    assert fresh.returncode == 0 and fresh.stderr == "", fresh.stderr
    broken = _python(tmp_path, "import timewatch.mod")
    assert broken.returncode != 0  # fresh: the build is what runs (here: a broken one)

    (pkg / "mod.py").write_text("X = 2\n")
    stale = _python(tmp_path, "import timewatch.mod; print(timewatch.mod.X, timewatch.mod.__file__)")
    assert stale.returncode == 0, stale.stderr
    assert stale.stdout.split() == ["2", str(pkg / "mod.py")]
    assert "older than timewatch/mod.py: running pure Python" in stale.stderr


def test_version_and_check_config_say_which_engine_runs(tmp_path: Path) -> None:
    from timewatch.commands.replay import engine_build

    build = engine_build()
    assert build in ("compiled", "pure Python")
    cli = [sys.executable, "-m", "timewatch.cli"]
    v = subprocess.run([*cli, "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.endswith(f" (engine: {build})\n"), v
    conf = tmp_path / "t.toml"
    conf.write_text('[monitor]\nhost = "t"\n')
    c = subprocess.run([*cli, "check-config", str(conf)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert c.returncode == 0 and c.stdout.endswith(f"\nengine: {build}\n"), c
