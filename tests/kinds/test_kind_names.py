"""No module decides by a kind's name except that kind's own files: `timewatch/kinds/NAME.py`,
its reader module and its tracker module (from its registration). Everything else asks the
registry or the tracker. Checked on the syntax tree of every module under timewatch/."""

from __future__ import annotations

import ast

from tests.conftest import ROOT
from timewatch import kinds

PACKAGE = ROOT / "timewatch"


def builtin_kinds() -> dict[str, set[str]]:
    """name -> the files (relative to the repository) allowed to use that kind's name."""
    out: dict[str, set[str]] = {}
    for name, kind in kinds.KINDS.items():
        own = f"timewatch/kinds/{name}.py"
        if not (ROOT / own).exists():
            continue  # registered by a test
        out[name] = {own} | {t.partition(":")[0].replace(".", "/") + ".py"
                             for t in (kind.reader, kind.tracker) if t is not None}
    return out


def _names(node: ast.AST, names: set[str]) -> set[str]:
    """The kind names spelled as string constants anywhere in `node`."""
    return {n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names}


def _about_kind(node: ast.AST) -> bool:
    """Does this expression read a kind (`x.kind`, `kind`, `d["kind"]`, `KINDS`, ...)?"""
    return "kind" in ast.unparse(node).lower()


def kind_decisions(source: str, names: set[str]) -> list[tuple[int, str, set[str]]]:
    """(line, code, kind names) of every place that decides by or lists kinds by name:
    a comparison or `match` of a kind against a name, a dict keyed by two or more kind names,
    and a name for kinds (`SOURCE_KINDS = (...)`) bound to a collection of kind names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        used: set[str] = set()
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(operands):
                if _names(op, names) and any(_about_kind(o) for j, o in enumerate(operands)
                                             if j != i):
                    used |= _names(op, names)
        elif isinstance(node, ast.Match) and _about_kind(node.subject):
            used = set().union(*(_names(c.pattern, names) for c in node.cases))
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if isinstance(k, ast.Constant) and k.value in names]
            if len(keys) >= 2:
                used = {str(k.value) for k in keys if isinstance(k, ast.Constant)}
        elif isinstance(node, ast.Assign | ast.AnnAssign) and \
                isinstance(node.value, ast.Tuple | ast.List | ast.Set):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_about_kind(t) for t in targets):
                used = _names(node.value, names)
        if used:
            found.append((getattr(node, "lineno", 0), ast.unparse(node).splitlines()[0], used))
    return found


def test_no_module_decides_by_a_kind_name_outside_the_kinds_own_files() -> None:
    allowed = builtin_kinds()
    assert set(allowed) >= {"gnss", "pps", "ntp", "gpsd", "chrony"}
    assert allowed["ntp"] == {"timewatch/kinds/ntp.py", "timewatch/sources/ntp.py",
                              "timewatch/engine/ntp.py"}
    names = set(allowed)
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for line, code, used in kind_decisions(path.read_text(encoding="utf-8"), names):
            foreign = {n for n in used if rel not in allowed[n]}
            if foreign:
                bad.append(f"{rel}:{line}: {code}  ({', '.join(sorted(foreign))})")
    assert bad == [], "decides by a kind's name outside that kind's files:\n" + "\n".join(bad)


NAMES = {"gnss", "pps", "ntp", "gpsd", "chrony"}


def test_the_check_finds_what_the_kinds_replaced() -> None:
    # What timewatch did before the registry, one line each: every one is found.
    before = [
        'SOURCE_KINDS = ("gnss", "pps", "ntp", "gpsd", "chrony")',
        'STEP_KINDS: Final = ("ntp", "chrony")',
        'g = sid if kind in ("ntp", "chrony") else "gnss"',
        'ok = tr.kind == "gnss"',
        'x = tr.info.kind == "ntp" and tr.info.server in wanted',
        'p = self.poll_s if self.kind in ("ntp", "chrony") else None',
        'w = {"ntp": 1, "gnss": 2}.get(s.kind, "")',
        'READERS = {"ntp": "a:B", "gnss": "c:D"}',
        'if d["kind"] != "pps": pass',
        'match sc.kind:\n    case "gpsd": pass',
    ]
    for code in before:
        assert kind_decisions(code, NAMES), code


def test_the_check_leaves_other_strings_alone() -> None:
    # The same words meaning something else: a process, a record type, a config being written.
    fine = [
        'if comm == "gpsd": pass',
        'if t == "pps": x = 1',
        'TIME_DAEMONS = {"chronyd": "chrony", "gpsd": None}',
        'src = {"id": "gnss0", "kind": "gnss", "device": "/dev/serial0"}',
        'info = SourceInfo("gnss", group)',
        'kind = "ntp"',  # a tracker's own kind, in its own module
        'if tr.judged_for_steps: pass',
    ]
    for code in fine:
        assert kind_decisions(code, NAMES) == [], code
