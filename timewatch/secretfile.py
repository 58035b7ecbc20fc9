"""Secret files: refused when others than their owner may read them (as ssh refuses a private key
with loose permissions), and systemd credentials (`LoadCredential=`) as the alternative.

A credential NAME is read from `$CREDENTIALS_DIRECTORY/NAME`, which systemd fills for the service
and makes readable by the service's user only; outside systemd (`check-config` run by hand) from
where systemd itself looks for `LoadCredential=NAME`: /etc/credstore/NAME, /run/credstore/NAME.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Where systemd looks for `LoadCredential=NAME` without a path (systemd.exec(5)), in its order.
CREDSTORE_DIRS = ("/etc/credstore", "/run/credstore", "/usr/lib/credstore")
# Permission bits a secret file must not have: any access by group or others (ssh's check).
LOOSE_BITS = 0o077


class SecretFileError(Exception):
    """A secret file that cannot be used: loose permissions (with the fix) or unreadable."""


def check_private(path: str | Path) -> None:
    """Raise SecretFileError when the file is accessible by group or others."""
    p = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode)
    except OSError as e:
        raise SecretFileError(f"cannot read {p}: {e.strerror}") from None
    if mode & LOOSE_BITS:
        raise SecretFileError(
            f"{p} is accessible by group or others (mode {mode:04o}); a secret must be "
            f"readable by its owner only: chmod 600 {p}")


def read_private(path: str | Path) -> str:
    """The stripped text of a secret file, after `check_private`."""
    check_private(path)
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SecretFileError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") \
            from None


def credential_path(name: str) -> tuple[Path, bool]:
    """Where credential `name` is: ($CREDENTIALS_DIRECTORY/name, True) under systemd, else the
    first credstore file that exists (False: its permissions must be checked). Raises
    SecretFileError naming the places looked at."""
    if not name or "/" in name or name in (".", ".."):
        raise SecretFileError(f"{name!r} is not a credential name (LoadCredential=NAME)")
    cdir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cdir:
        p = Path(cdir) / name
        if not p.is_file():
            raise SecretFileError(f"no credential {name} in $CREDENTIALS_DIRECTORY ({cdir}): "
                                  f"add LoadCredential={name} to the unit and the file "
                                  f"/etc/credstore/{name}")
        return p, True
    for d in CREDSTORE_DIRS:
        p = Path(d) / name
        try:
            if p.is_file():
                return p, False
        except OSError:
            continue
    raise SecretFileError(f"credential {name}: $CREDENTIALS_DIRECTORY is not set (not started "
                          f"by systemd) and no {' or '.join(f'{d}/{name}' for d in CREDSTORE_DIRS)}")


def read_credential(name: str) -> tuple[str, str]:
    """(value, origin) of credential `name`; see `credential_path`."""
    p, systemd = credential_path(name)
    if systemd:
        try:
            return p.read_text(encoding="utf-8").strip(), f"credential {name}"
        except (OSError, UnicodeDecodeError) as e:
            raise SecretFileError(f"cannot read credential {p}: "
                                  f"{getattr(e, 'strerror', None) or e}") from None
    return read_private(p), f"credential {name} ({p})"
