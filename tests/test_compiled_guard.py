"""The import-time guard of the optional mypyc build (tools/build_compiled.py): a compiled module
whose .py changed since the build must stop `import timewatch`, not run the old code."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _import_timewatch(where: Path) -> subprocess.CompletedProcess[str]:
    # The copy in `where` comes first on sys.path (the editable install's finder comes after it).
    return subprocess.run([sys.executable, "-c", "import timewatch"], cwd=where,
                          capture_output=True, text=True, timeout=30)


def test_edited_source_after_a_build_stops_the_import(tmp_path: Path) -> None:
    pkg = tmp_path / "timewatch"
    pkg.mkdir()
    shutil.copy(ROOT / "timewatch" / "__init__.py", pkg)
    (pkg / "mod.py").write_text("X = 1\n")
    assert _import_timewatch(tmp_path).returncode == 0  # no manifest: the pure-Python package
    digest = hashlib.sha256(b"X = 1\n").hexdigest()
    (pkg / "_compiled.json").write_text(json.dumps({"sha256": {"timewatch/mod.py": digest}}))
    fresh = _import_timewatch(tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    (pkg / "mod.py").write_text("X = 2\n")
    stale = _import_timewatch(tmp_path)
    assert stale.returncode != 0
    assert "ImportError" in stale.stderr and "timewatch/mod.py" in stale.stderr
