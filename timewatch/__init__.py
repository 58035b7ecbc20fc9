"""timewatch: a multi-source time integrity monitor (GNSS, PPS, NTP)."""

__version__ = "0.1.0"
