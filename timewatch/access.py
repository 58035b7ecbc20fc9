"""What to do about "permission denied": which part of a path keeps this account out, and the fix.

On the appliance (hw/install.sh) the config (`/etc/timewatch/timewatch.toml`, 0640 root:timewatch)
and the state (`/var/lib/timewatch`, 0750 timewatch:timewatch) are readable by the group
`timewatch`, which the installer puts the operator's account in. An account outside it gets the
group's name and the `usermod` line that lets it in.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def blocker(path: str | Path) -> Path | None:
    """The first component of `path` this process may not pass (a directory it cannot search)
    or read (the file itself); None when nothing is in the way."""
    p = Path(os.path.abspath(path))
    for part in [*reversed(p.parents), p]:
        try:
            st = os.stat(part)
        except PermissionError:
            return part.parent
        except OSError:
            return None  # missing: not a permission problem
        need = os.X_OK if stat.S_ISDIR(st.st_mode) and part != p else os.R_OK
        if not os.access(part, need):
            return part
    return None


def _name(table: str, ident: int) -> str:
    try:
        return grp.getgrgid(ident).gr_name if table == "group" else pwd.getpwuid(ident).pw_name
    except KeyError:
        return str(ident)


def me() -> str:
    return _name("user", os.getuid())


def owner(path: str | Path) -> str:
    return _name("user", os.stat(path).st_uid)


def fix(path: str | Path) -> str:
    """The fix for a permission error on `path`: join the group that may read it."""
    b = blocker(path) or Path(path)
    try:
        st = os.stat(b)
    except OSError:
        return f"{path}: permission denied; run as a user who may read it"
    owner, group = _name("user", st.st_uid), _name("group", st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    what = f"{b} is {owner}:{group} mode {mode:04o}"
    if mode & (0o050 if stat.S_ISDIR(st.st_mode) else 0o040):
        return (f"{what}: readable by the group {group}; add your account to it (sudo usermod "
                f"-aG {group} {me()}) and log in again, or run: newgrp {group}")
    return f"{what}: not readable by its group; run as {owner}, or ask for read access"
