"""timewatch: a multi-source time integrity monitor (GNSS, PPS, NTP)."""

import os

__version__ = "0.1.0"


def _guard_compiled() -> None:
    """The compiled build (tools/build_compiled.py; the default install) puts a .so next to each
    compiled .py, and Python imports the .so first: after an edit it would run the old code. The
    build records each source's sha256 in _compiled.json. When one differs, every compiled
    module is imported from its .py instead (they are compiled together and call each other
    directly, so all or none), and a warning says so. No manifest, no check."""
    manifest = os.path.join(os.path.dirname(__file__), "_compiled.json")
    if not os.path.exists(manifest):  # the pure-Python package: nothing else to do
        return
    import hashlib
    import json

    root = os.path.dirname(os.path.dirname(manifest))
    with open(manifest, encoding="utf-8") as f:
        recorded: dict[str, str] = json.load(f)["sha256"]
    stale = []
    for rel, digest in recorded.items():
        try:
            with open(os.path.join(root, rel), "rb") as src:
                same = hashlib.sha256(src.read()).hexdigest() == digest
        except OSError:
            same = False
        if not same:
            stale.append(rel)
    if not stale:
        return
    import importlib.util
    import sys

    sources = {rel[:-3].replace("/", "."): os.path.join(root, rel) for rel in recorded}

    class _FromSource:
        """Finds the compiled modules' .py files (before the path finder finds their .so)."""

        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            src = sources.get(name)
            return None if src is None else importlib.util.spec_from_file_location(name, src)

    sys.meta_path.insert(0, _FromSource)  # type: ignore[arg-type]
    print(f"timewatch: the compiled engine is older than {', '.join(stale)}: running pure Python "
          "(`make compiled` or `python tools/build_compiled.py` rebuilds it, `... clean` removes "
          "it)", file=sys.stderr)


_guard_compiled()
