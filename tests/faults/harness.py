"""`python -m tests.faults.harness ARGS...`: the real `timewatch` CLI (`timewatch.cli.main`) with
the test faults of `tests.faults.faultkind` available: the `faulty` source kind, and with
`TW_TEST_SINKS=hang,raise` those test sinks put *before* the configured ones (so a sink that
blocks the others blocks them all), built by the package's sink constructor."""

from __future__ import annotations

import os
import sys

import tests.faults.faultkind  # noqa: F401 - registers the `faulty` kind
from timewatch import cli, runner
from timewatch.config import Config
from timewatch.sinks import Sink, _make

SINKS = {"hang": "tests.faults.faultkind:HangingSink",
         "raise": "tests.faults.faultkind:RaisingSink"}


def main() -> int:
    names = [n for n in os.environ.get("TW_TEST_SINKS", "").split(",") if n]
    if names:
        built = runner.build_live_sinks

        def with_test_sinks(cfg: Config) -> list[Sink]:
            return [_make(cfg, n, SINKS[n]) for n in names] + built(cfg)

        runner.build_live_sinks = with_test_sinks
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
