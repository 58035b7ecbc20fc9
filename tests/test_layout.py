"""The package's layout: the commands live in `timewatch.commands`, the cli only parses and
dispatches, and the library (sources, engine, sinks, simulators, ...) never imports either, so a
sink or a simulator can be used without the command line. Checked by reading the import
statements (and "module:function" strings, as dispatch tables hold them) of every module."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from timewatch import cli

PKG = Path(cli.__file__).resolve().parent
# The command line itself: the parser, `python -m timewatch` and the commands' shells.
SHELL = {PKG / "cli.py", PKG / "__main__.py", *(PKG / "commands").rglob("*.py")}
LIBRARY = sorted(p for p in PKG.rglob("*.py") if p not in SHELL)
MODULE_NAME = re.compile(r"timewatch(\.\w+)+(:\w+)?")


def module_of(path: Path) -> tuple[str, str]:
    """(module name, package a relative import starts from) of a file under timewatch/."""
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def imports_of(source: str, package: str) -> set[str]:
    """Every module name the source imports, relative imports resolved against `package`; a
    `from X import y` counts as X and X.y (y may be a module); a string that is a module name
    (`"timewatch.x:f"`) counts as that module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and MODULE_NAME.fullmatch(node.value):
            out.add(node.value.split(":")[0])
    return out


def shell_imports(names: set[str]) -> list[str]:
    return sorted(n for n in names if n in ("timewatch.cli", "timewatch.commands")
                  or n.startswith(("timewatch.cli.", "timewatch.commands.")))


def test_the_import_analysis_sees_every_form_of_import() -> None:
    src = ("from ..cli import UsageError\nfrom .. import commands\nimport timewatch.cli\n"
           "from ..commands.export import parse_since\nT = {'x': 'timewatch.commands.run:cmd_run'}\n"
           "from ..config import load\nfrom . import noise\n")
    found = imports_of(src, "timewatch.sim")
    assert shell_imports(found) == ["timewatch.cli", "timewatch.cli.UsageError",
                                    "timewatch.commands", "timewatch.commands.export",
                                    "timewatch.commands.export.parse_since",
                                    "timewatch.commands.run"]
    assert {"timewatch.config", "timewatch.sim.noise"} <= found
    assert module_of(PKG / "sim" / "demo.py") == ("timewatch.sim.demo", "timewatch.sim")
    assert module_of(PKG / "sinks" / "__init__.py") == ("timewatch.sinks", "timewatch.sinks")


def test_sinks_and_simulators_exist_to_be_checked() -> None:
    names = {module_of(p)[0] for p in LIBRARY}
    assert {"timewatch.sinks.export", "timewatch.sinks.webhook", "timewatch.sim.demo",
            "timewatch.sim.scenarios", "timewatch.runner", "timewatch.doctor"} <= names


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PKG)))
def test_no_library_module_imports_the_cli_or_a_command(path: Path) -> None:
    _, package = module_of(path)
    assert shell_imports(imports_of(path.read_text(), package)) == []


def test_every_command_of_the_parser_is_dispatched_to_its_commands_module() -> None:
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)  # type: ignore[arg-type]
    for name, target in cli.COMMANDS.items():
        mod, _, fn = target.partition(":")
        assert mod == f"timewatch.commands.{name.replace('-', '_')}"
        assert fn == f"cmd_{name.replace('-', '_')}"
        assert callable(getattr(importlib.import_module(mod), fn))
