"""`timewatch key show [-c CONFIG]`: the appliance's public signing key, as `verify --pubkey`
takes it (docs/evidence.md). The key itself is made by the monitor's first start (or by
hw/install.sh); `key show` never makes one, so that it cannot leave a key its service user
cannot read."""

from __future__ import annotations

import argparse
import sys

from ..config import load
from ..evidence import fingerprint, load_key, public_text


def cmd_key(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    path = cfg.key_path
    if not path.exists():
        print(f"timewatch key show: no signing key at {path} yet: the monitor makes it when it "
              "first starts (hw/install.sh makes it at installation)", file=sys.stderr)
        return 1
    text = public_text(load_key(path).public_key())
    print(text)
    print(f"key {path}, fingerprint {fingerprint(text)}; check a file with: timewatch verify "
          f"--pubkey {text} FILE", file=sys.stderr)
    return 0
