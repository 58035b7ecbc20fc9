"""Load the IERS leap-second list for the engine (which never reads files itself)."""

from __future__ import annotations

import logging
from pathlib import Path

from .engine.leapsec import LeapList, LeapListError, parse

log = logging.getLogger(__name__)

# tzdata ships the IERS list here on Debian and Raspberry Pi OS.
DEFAULT_PATH = Path("/usr/share/zoneinfo/leap-seconds.list")


def load_leap_list(path: str | Path | None = None) -> LeapList | None:
    """The parsed list, or None (logged with the file name) when it is missing or unreadable.

    Without a list the leap detector judges announcements against the other groups only.
    """
    p = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        log.warning("%s: cannot read the leap-second list (%s); leap announcements are judged "
                    "against the other groups only", p, e.strerror or e)
        return None
    try:
        lst = parse(text, str(p))
    except LeapListError as e:
        log.warning("%s; leap announcements are judged against the other groups only", e)
        return None
    if not lst.hash_ok:
        log.warning("%s: hash does not match its data; the list is not trusted", p)
    return lst
