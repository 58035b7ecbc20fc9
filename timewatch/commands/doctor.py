"""`timewatch doctor [-c CONFIG]`: every check of `timewatch.doctor` printed with its fix; exit 1
when one failed."""

from __future__ import annotations

import argparse

from ..config import ConfigError, load
from ..doctor import Check, run_checks
from .status import from_http, who


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as e:
        denied = e.what.startswith("cannot read: permission denied")  # the message has the fix
        print(Check(False, "config", str(e), "" if denied else "fix the key named above; "
                    "timewatch check-config FILE re-checks it").render())
        return 1
    # A running monitor holds the status API's port: that is no failure, say which one it is.
    doc = from_http(cfg.http_listen, timeout_s=1.0) if cfg.http_listen else None
    checks = run_checks(cfg, http_running=doc is not None)
    if doc is not None:
        checks.append(Check(True, f"http {cfg.http_listen}", f"answered by {who(doc)}"))
    for c in checks:
        print(c.render())
    failed = [c for c in checks if not c.ok and not c.warn]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed"
          + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0
