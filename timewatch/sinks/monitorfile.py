"""`<state_dir>/monitor.json`: which monitor runs on a state directory, and where it answers.

The HTTP sink writes it once it listens (its process id, host, state directory and the address
it listens on, a free port included) and removes it when it closes; `/status.json` carries the
same object as `monitor`. `timewatch status --state-dir DIR` reads it to ask the monitor of that
state directory and no other (docs/running.md). A file left by a killed monitor names a process
that no longer exists, and is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NAME = "monitor.json"


def identity(host: str, state_dir: Path, listen: str) -> dict[str, Any]:
    """The monitor of this process: what `/status.json` says as `monitor` and the file holds."""
    from .. import __version__

    return {"pid": os.getpid(), "host": host, "state_dir": str(Path(state_dir).resolve()),
            "listen": listen, "version": __version__}


def write(state_dir: Path, ident: dict[str, Any]) -> None:
    """Write the file atomically; a state directory that cannot take it is only logged (the
    monitor runs on; `timewatch status` then finds it at the config's listen address)."""
    path = Path(state_dir) / NAME
    tmp = path.with_name(f".{NAME}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(ident, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("%s: cannot write (%s): timewatch status finds this monitor only at its "
                    "configured listen address", path, e.strerror or e)


def read(state_dir: Path) -> dict[str, Any] | None:
    """The file's monitor when the file is there, well-formed and its process is alive."""
    try:
        d = json.loads((Path(state_dir) / NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("pid"), int) or \
            not isinstance(d.get("listen"), str) or not alive(d["pid"]):
        return None
    return d


def remove(state_dir: Path, ident: dict[str, Any]) -> None:
    """Remove the file if it is still this monitor's (another may have started since)."""
    path = Path(state_dir) / NAME
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(d, dict) and d.get("pid") == ident["pid"] and \
                d.get("listen") == ident["listen"]:
            path.unlink()
    except (OSError, ValueError):
        pass


def alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
