"""The `timewatch` command (README.md). Exit 0 ok, 2 usage or config error, 1 other failure.

The parser and the dispatch. Each subcommand lives in its own module of `timewatch.commands` and
is imported only when used, so `--help` and `check-config` start fast and a broken optional part
never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

from .config import ConfigError
from .errors import UsageError

# --format of replay, simulate and decode: JSON Lines (the default) or text for people.
FORMATS = ("jsonl", "text")

# command name -> "module:function"; each function takes the parsed args and returns an exit code.
COMMANDS: dict[str, str] = {
    "run": "timewatch.commands.run:cmd_run",
    "demo": "timewatch.commands.demo:cmd_demo",
    "replay": "timewatch.commands.replay:cmd_replay",
    "simulate": "timewatch.commands.simulate:cmd_simulate",
    "decode": "timewatch.commands.decode:cmd_decode",
    "status": "timewatch.commands.status:cmd_status",
    "check-config": "timewatch.commands.check_config:cmd_check_config",
    "export": "timewatch.commands.export:cmd_export",
    "webhook": "timewatch.commands.webhook:cmd_webhook",
    "doctor": "timewatch.commands.doctor:cmd_doctor",
    "verify": "timewatch.commands.verify:cmd_verify",
    "key": "timewatch.commands.key:cmd_key",
    "report": "timewatch.commands.report:cmd_report",
}


def version() -> str:
    """The installed package's version (its metadata); the source tree's when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from . import __version__

    try:
        return dist_version("timewatch")
    except PackageNotFoundError:
        return __version__


class _Version(argparse.Action):
    """`--version`: the version and which engine this installation runs (compiled with mypyc,
    the default, or pure Python), found out only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and the engine "
                         "build (compiled or pure Python), then exit")

    def __call__(self, parser: argparse.ArgumentParser, *a: object) -> None:
        from .commands.replay import engine_build

        print(f"timewatch {version()} (engine: {engine_build()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="timewatch",
                                description="Multi-source time integrity monitor (GNSS, PPS, NTP).")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("run", help="the monitor: readers, engine, sinks, until SIGTERM/SIGINT")
    s.add_argument("-c", "--config", help="TOML config (default: built-in public NTP servers)")
    s.add_argument("--record", metavar="TRACE", help="write the observation trace (.jsonl[.gz])")
    s.add_argument("--duration", type=float, help="stop after S seconds (tests, drills)")

    s = sub.add_parser("demo", help="the whole monitor against simulated receivers and servers")
    s.add_argument("--duration", type=float, default=None, help="seconds (default: the timeline)")
    s.add_argument("--scenario", default=None, help="run one threat scenario live (simulate --list names them)")
    s.add_argument("--state-dir", default=None, help="where the store goes (default ./state/demo)")
    s.add_argument("--http", default=None, metavar="HOST:PORT",
                   help="status API address (default a free port on 127.0.0.1; 'off' for none)")

    s = sub.add_parser("replay", help="feed a trace through the parsers and the engine")
    s.add_argument("trace")
    s.add_argument("-c", "--config", help="sinks to backfill (sources and thresholds come from "
                                          "the trace)")
    s.add_argument("--detect-from-config", action="store_true",
                   help="judge with the config's [detect] (this build's defaults without -c) "
                        "instead of the thresholds the trace was recorded with")
    s.add_argument("--events", metavar="OUT", help="write events here instead of stdout")
    s.add_argument("--snapshots", action="store_true", help="also print status snapshots")
    s.add_argument("--resume", action="store_true",
                   help="continue an interrupted replay into the config's sinks (no duplicates)")
    s.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl (default): one JSON object per line; text: for people, times as "
                        "ISO 8601 UTC beside the Unix ns")

    s = sub.add_parser("simulate", help="write a synthetic trace of a threat scenario (docs/threats.md)")
    s.add_argument("--scenario", help="scenario name (--list names them)")
    s.add_argument("--duration", type=float, default=None, help="seconds of trace")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("-o", "--output", metavar="TRACE",
                   help="the trace (required for jsonl; text goes to stdout without it)")
    s.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl (default): the trace, which replay reads; text: a listing for "
                        "people, times as ISO 8601 UTC beside the Unix ns")
    s.add_argument("--list", action="store_true", help="list the scenarios")

    s = sub.add_parser("decode", help="decode a raw receiver capture into one JSON object per epoch")
    s.add_argument("file")
    s.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl (default): one JSON object per epoch; text: one line per epoch, "
                        "times as ISO 8601 UTC beside the Unix ns")

    s = sub.add_parser("status", help="what the running monitor (or the store) says now")
    s.add_argument("-c", "--config")
    s.add_argument("--state-dir", metavar="DIR",
                   help="the monitor (or store) of this state directory, not another one")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("check-config", help="validate a config and print what it would run")
    s.add_argument("config")

    s = sub.add_parser("export", help="the embedded store's history as InfluxDB line protocol")
    s.add_argument("-c", "--config")
    s.add_argument("--state-dir", metavar="DIR", help="the store of this state directory "
                   "(default: the config's [monitor] state_dir)")
    s.add_argument("--since", help="ISO time or Unix seconds")
    s.add_argument("--format", default="line-protocol", choices=["line-protocol"])
    s.add_argument("-o", "--output", help="file (default stdout)")
    s.add_argument("--influxdb", action="store_true",
                   help="send to the config's [sinks.influxdb] instead (a resumable backfill)")
    s.add_argument("--resume", action="store_true",
                   help="continue an interrupted export to -o FILE or --influxdb (no duplicates)")

    s = sub.add_parser("webhook", help="webhook tools")
    wsub = s.add_subparsers(dest="webhook_command", metavar="SUBCOMMAND", required=True)
    w = wsub.add_parser("test", help="send a test event to each configured webhook")
    w.add_argument("-c", "--config")
    w.add_argument("target", nargs="?", help="index N of [[sinks.webhook]] or a URL")

    s = sub.add_parser("report", help="an HTML report of a trace or of the store: offsets, "
                       "alerts, stability (ADEV, MDEV, TDEV, MTIE) against the G.8272 masks")
    s.add_argument("trace", nargs="?", help="a trace (.jsonl[.gz]); without it, the store")
    s.add_argument("-c", "--config", help="where the store is (a trace brings its own thresholds)")
    s.add_argument("--state-dir", help="the store of this state directory (default: the config's)")
    s.add_argument("--since", help="from this time (ISO 8601 or Unix seconds)")
    s.add_argument("--until", help="to this time (ISO 8601 or Unix seconds)")
    s.add_argument("-o", "--output", default="report.html", help="default report.html")

    s = sub.add_parser("doctor", help="check the machine for everything the config needs")
    s.add_argument("-c", "--config")

    s = sub.add_parser("verify", help="check the signed hash chain of traces and event logs")
    s.add_argument("files", nargs="+", metavar="FILE",
                   help="traces or event logs; files of one stream in order, oldest first")
    s.add_argument("--pubkey", metavar="KEY",
                   help="the public key they must be signed with (as `key show` prints it, or "
                        "a file holding it); default: the key the file names")

    s = sub.add_parser("key", help="the appliance's evidence signing key")
    ksub = s.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    k = ksub.add_parser("show", help="print the public key (for verify --pubkey)")
    k.add_argument("-c", "--config")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    modname, fname = COMMANDS[args.command].split(":")
    try:
        fn: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(modname), fname)
        return int(fn(args) or 0)
    except (ConfigError, UsageError) as e:
        print(f"timewatch: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last word: a clear message, exit 1
        logging.getLogger("timewatch").debug("failure", exc_info=True)
        print(f"timewatch {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
