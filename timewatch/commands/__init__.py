"""The `timewatch` commands, one module each: the shell around the library that reads the parsed
arguments, calls the library and prints. `timewatch.cli` holds the parser and imports a command's
module only when it runs (`cli.COMMANDS`).

Each module has `cmd_NAME(args: argparse.Namespace) -> int`, the exit code: 0 ok, 1 failure;
`UsageError` (timewatch.errors) and `ConfigError` exit 2. The library (sources/, engine/, sinks/,
sim/) never imports this package or the cli.
"""
