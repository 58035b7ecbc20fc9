"""timewatch: a multi-source time integrity monitor (GNSS, PPS, NTP)."""

import os

__version__ = "0.1.0"


def _refuse_stale_compiled() -> None:
    """An optional mypyc build (tools/build_compiled.py) puts a .so next to each compiled .py, and
    Python imports the .so first: after an edit it would run the old code. The build records each
    source's sha256 in _compiled.json; a mismatch stops the import. No manifest, no check."""
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
        with open(os.path.join(root, rel), "rb") as src:
            if hashlib.sha256(src.read()).hexdigest() != digest:
                stale.append(rel)
    if stale:
        raise ImportError(f"{manifest}: compiled from another version of {', '.join(stale)}; "
                          "run `python tools/build_compiled.py` to rebuild, or "
                          "`python tools/build_compiled.py clean` to run the .py files")


_refuse_stale_compiled()
