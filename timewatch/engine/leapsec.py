"""The IERS leap-second list (`leap-seconds.list` from tzdata), parsed from text. Pure: no I/O.

Format (https://hpiers.obspm.fr/iers/bul/bulc/ntp/leap-seconds.list and tzdata's copy):
- `#$ N`  last update, NTP seconds (since 1900-01-01);
- `#@ N`  expiry, NTP seconds: after it the list says nothing about leap seconds to come;
- `N DTAI # comment`  from NTP second N on, TAI - UTC = DTAI (a change of +1 is an inserted
  leap second at the end of the UTC day before N, -1 a deleted one);
- `#h h1 h2 h3 h4 h5`  SHA-1 of the digits of the update time, the expiry and every data line's
  two numbers, concatenated (how ntpd and tzdata check the file).

The caller reads the file (`timewatch.leapfile`) and hands the text to the engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

# Seconds from the NTP era origin (1900-01-01) to the Unix epoch (RFC 5905).
NTP_UNIX_OFFSET_S: Final = 2_208_988_800
NS: Final = 1_000_000_000


class LeapListError(ValueError):
    """The text is not a leap-seconds list; the message names the line."""


@dataclass(frozen=True, slots=True)
class LeapEntry:
    """From `unix_s` on, TAI - UTC = `dtai_s`; `step_s` is the change there (+1 insert, -1 delete)."""

    unix_s: int
    dtai_s: int
    step_s: int


@dataclass(frozen=True, slots=True)
class LeapList:
    updated_unix_s: int
    expires_unix_s: int
    entries: tuple[LeapEntry, ...]
    hash_ok: bool  # the `#h` line matches the data (False when it is missing or wrong)

    def valid_at(self, t_ns: int) -> bool:
        """Whether the list may be trusted at trace time t_ns: hash intact and not expired."""
        return self.hash_ok and t_ns < self.expires_unix_s * NS

    def covers(self, unix_s: int) -> bool:
        """Whether the list speaks for an instant: a leap there would be in it if one was decided."""
        return unix_s <= self.expires_unix_s

    def step_at(self, unix_s: int) -> int:
        """The leap second scheduled to end just before `unix_s` (+1, -1), or 0 for none."""
        for e in self.entries:
            if e.unix_s == unix_s:
                return e.step_s
        return 0


def parse(text: str, name: str = "leap-seconds.list") -> LeapList:
    """Parse the list; LeapListError names `name:line` for anything that is not the format."""
    updated: str | None = None
    expires: str | None = None
    hash_words: list[str] | None = None
    data: list[tuple[str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        try:
            if s.startswith("#$"):
                updated = str(int(s[2:].split()[0]))
            elif s.startswith("#@"):
                expires = str(int(s[2:].split()[0]))
            elif s.startswith("#h"):
                hash_words = s[2:].split()
            elif s.startswith("#"):
                continue
            else:
                f = s.split("#", 1)[0].split()
                data.append((str(int(f[0])), str(int(f[1]))))
        except (ValueError, IndexError) as e:
            raise LeapListError(f"{name}:{n}: not a leap-seconds line: {s[:60]!r}") from e
    if updated is None or expires is None:
        raise LeapListError(f"{name}: no '#$' (update) or '#@' (expiry) line")
    if not data:
        raise LeapListError(f"{name}: no leap-second data lines")
    digest = hashlib.sha1(
        (updated + expires + "".join(a + b for a, b in data)).encode()).hexdigest()
    # The published hash drops leading zeros of each 32-bit word.
    ok = hash_words is not None and len(hash_words) == 5 and all(
        int(w, 16) == int(digest[8 * i:8 * i + 8], 16) for i, w in enumerate(hash_words))
    entries: list[LeapEntry] = []
    prev: int | None = None
    for a, b in data:
        dtai = int(b)
        entries.append(LeapEntry(int(a) - NTP_UNIX_OFFSET_S, dtai,
                                 0 if prev is None else dtai - prev))
        prev = dtai
    return LeapList(int(updated) - NTP_UNIX_OFFSET_S, int(expires) - NTP_UNIX_OFFSET_S,
                    tuple(entries), ok)


def format_list(entries: list[tuple[int, int]], updated_unix_s: int, expires_unix_s: int) -> str:
    """A list in the IERS format with a correct hash, from (unix_s, dtai_s) pairs (simulations,
    tests)."""
    up = str(updated_unix_s + NTP_UNIX_OFFSET_S)
    ex = str(expires_unix_s + NTP_UNIX_OFFSET_S)
    rows = [(str(u + NTP_UNIX_OFFSET_S), str(d)) for u, d in entries]
    digest = hashlib.sha1((up + ex + "".join(a + b for a, b in rows)).encode()).hexdigest()
    words = " ".join(f"{int(digest[i:i + 8], 16):x}" for i in range(0, 40, 8))
    lines = [f"#$\t{up}", f"#@\t{ex}"] + [f"{a}\t{b}" for a, b in rows] + [f"#h\t{words}"]
    return "\n".join(lines) + "\n"
