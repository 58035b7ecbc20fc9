"""The docs stand alone and say what the code does.

- every relative link in README.md and docs/*.md resolves to a file of the repository (and an
  anchor to one of its headings);
- nothing points at documentation outside the repository (the original spec files, ../shared):
  every `docs/NAME.md` named anywhere exists, and the reference docs are named by their path;
- every alert code raised in timewatch/ is in docs/events.md (and the README's table), every code
  documented there is raised; every `[detect]` key is in docs/config.md with its type and default,
  and every key the config parser accepts is documented;
- the examples of docs/events.md, docs/trace-format.md and docs/config.md are what the code
  writes and reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from tests.conftest import ROOT
from timewatch.config import ConfigError, parse
from timewatch.engine.params import Detect
from timewatch.records import Event, Header, observation_from_dict

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
EVENTS_MD = (DOCS / "events.md").read_text()
CONFIG_MD = (DOCS / "config.md").read_text()
# The first argument of an alert assertion: assert_("code", ...) or a detector's _assert("code", ...)
# An alert raised by name, or through Context.caught_moving(source, code, ...).
RAISE = re.compile(r"(?:(?:assert_|_assert)\(|caught_moving\(\s*[\w.]+,)\s*[\"']([a-z]+\.[a-z_0-9]+)[\"']")
# A table row documenting an alert code: its first cell is the code.
CODE_ROW = re.compile(r"^\| `([a-z]+\.[a-z_0-9]+)` \|", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def raised_codes() -> set[str]:
    codes: set[str] = set()
    for p in (ROOT / "timewatch").rglob("*.py"):
        codes |= set(RAISE.findall(p.read_text()))
    return codes


# -- alert codes ---------------------------------------------------------------------------------
def test_every_raised_alert_code_is_in_events_md_and_the_readme_table() -> None:
    codes = raised_codes()
    assert {"source.falseticker", "gnss.cn0_anomaly", "time.drift", "pps.missing",
            "consensus.daemon_disagrees"} <= codes
    for name, text in (("docs/events.md", EVENTS_MD), ("README.md", README)):
        missing = sorted(codes - set(CODE_ROW.findall(text)))
        assert not missing, f"alert codes raised but not in {name}'s tables: {missing}"


def test_every_code_documented_in_events_md_is_raised() -> None:
    documented = set(CODE_ROW.findall(EVENTS_MD))
    phantom = sorted(documented - raised_codes())
    assert not phantom, f"docs/events.md documents codes nothing raises: {phantom}"


def test_events_md_example_lines_are_what_the_event_log_writes() -> None:
    block = re.search(r"## Events\n.*?```json\n(.*?)```", EVENTS_MD, re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    assert [json.loads(x)["type"] for x in lines] == ["alert", "clear"]
    for line in lines:
        # the event log's encoding (sinks/eventlog.py): json.dumps of Event.to_dict()
        assert json.dumps(Event.from_dict(json.loads(line)).to_dict()) == line


# -- config keys ---------------------------------------------------------------------------------
DETECT_ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (float|integer) \| `([^`]+)` \|", re.M)


def test_every_detect_key_is_in_config_md_with_its_type_and_default() -> None:
    section = CONFIG_MD.split("## `[detect]`", 1)[1]
    rows = {k: (t, d) for k, t, d in DETECT_ROW.findall(section)}
    for f in fields(Detect):
        assert f.name in rows, f"[detect] key {f.name} not in docs/config.md"
        typ, default = rows[f.name]
        assert typ == ("integer" if isinstance(f.default, int) else "float"), f.name
        assert float(default) == f.default, f"{f.name}: docs say {default}, code {f.default}"
    extra = sorted(set(rows) - {f.name for f in fields(Detect)})
    assert not extra, f"docs/config.md documents [detect] keys that do not exist: {extra}"


# One table of each kind, each with a key nobody accepts: the parser's error lists what it does.
UNKNOWN_KEY_CONFIGS = {
    "monitor": {"monitor": {"nope": 1}},
    "store": {"store": {"nope": 1}},
    "http": {"http": {"nope": 1}},
    **{f"sources[0] ({kind})": {"sources": [{"id": "x", "kind": kind, "nope": 1}]}
       for kind in ("gnss", "pps", "ntp", "nts", "gpsd", "chrony")},
    "sinks.influxdb": {"sinks": {"influxdb": {"nope": 1}}},
    "sinks.webhook[0]": {"sinks": {"webhook": [{"nope": 1}]}},
    "detect": {"detect": {"nope": 1}},
    "evidence": {"evidence": {"nope": 1}},
    "vote": {"vote": {"nope": 1}},
}


@pytest.mark.parametrize("table", UNKNOWN_KEY_CONFIGS)
def test_every_key_the_parser_accepts_is_in_config_md(table: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse(UNKNOWN_KEY_CONFIGS[table])
    m = re.search(r"unknown key \(expected one of: ([^)]*)\)", str(ei.value))
    assert m is not None, str(ei.value)
    accepted = m.group(1).split(", ")
    assert accepted and all(re.fullmatch(r"[a-z_0-9]+", k) for k in accepted), accepted
    missing = [k for k in accepted if not re.search(rf"^\| `{k}`[ ,|]", CONFIG_MD, re.M)
               and f"`{k}`," not in CONFIG_MD and f", `{k}` |" not in CONFIG_MD]
    assert not missing, f"{table}: keys accepted but not in docs/config.md: {missing}"


def test_config_md_complete_example_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    block = re.search(r"## A complete example\n```toml\n(.*?)```", CONFIG_MD, re.S)
    assert block is not None
    monkeypatch.setenv("INFLUX_TOKEN", "t0ken")
    monkeypatch.setenv("TIMEWATCH_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    cfg = parse(tomllib.loads(block.group(1)), "example.toml", block.group(1))
    assert [s.kind for s in cfg.sources] == ["gnss", "pps", "ntp", "ntp", "ntp"]
    assert cfg.influxdb is not None and len(cfg.webhooks) == 1
    assert cfg.detect.hold_down_s == 300


# -- trace format --------------------------------------------------------------------------------
def test_trace_format_examples_are_records_the_reader_accepts() -> None:
    text = (DOCS / "trace-format.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    types = []
    for b in blocks:
        d = json.loads(b)
        types.append(d["type"])
        if d["type"] == "header":
            assert Header.from_dict(d).sources
        elif d["type"] == "checkpoint":  # an evidence seal: readers skip it (docs/evidence.md)
            assert observation_from_dict(d) is None and list(d) == CHECKPOINT_FIELDS, b
        else:
            obs = observation_from_dict(d)
            assert obs is not None and obs.type == d["type"], b
    assert set(types) == {"header", "nmea", "ubx", "pps", "ntp", "tick", "note", "chrony",
                          "nts_ke", "checkpoint", "ptp"}


# The fields of a checkpoint in the order the writer puts them (a file's first one has prev).
CHECKPOINT_FIELDS = ["type", "stream", "seq", "line", "bytes", "sha256", "reason", "t_ns", "prev",
                     "key", "sig"]


def test_evidence_md_example_is_a_checkpoint_as_the_writer_makes_it(tmp_path: Path) -> None:
    from timewatch.evidence import ChainWriter, Evidence

    text = (DOCS / "evidence.md").read_text()
    block = re.search(r"```json\n(.*?)```", text, re.S)
    assert block is not None
    doc = json.loads(block.group(1))
    written: list[str] = []
    ch = ChainWriter(Evidence(tmp_path), "trace", written.append)
    ch.start()
    ch.seal("interval")
    made = json.loads(written[1])
    assert list(doc) == list(made) == [f for f in CHECKPOINT_FIELDS if f != "prev"]
    assert doc["reason"] in ("start", "interval", "end") and doc["key"].startswith("ed25519:")


# -- links and references ------------------------------------------------------------------------
def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    text = FENCE.sub("", md.read_text())
    out: set[str] = set()
    for h in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = s = slug(h)
        n = 0
        while s in out:
            n += 1
            s = f"{base}-{n}"
        out.add(s)
    return out


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def relative_links(md: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", md.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t)]


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    broken = []
    checked = 0
    for md in doc_files():
        for target in relative_links(md):
            checked += 1
            path, _, frag = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            if not dest.is_relative_to(ROOT) or not dest.exists():
                broken.append(f"{md.relative_to(ROOT)}: {target} (no such file in the repo)")
            elif frag and dest.suffix == ".md" and frag not in anchors(dest):
                broken.append(f"{md.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 50
    assert not broken, "\n".join(broken)


def test_readme_links_every_doc() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    unlinked = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not unlinked, f"docs not linked from the README: {unlinked}"


TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".json", ".yml", ".yaml", ".cfg", ".txt", ".service",
                 ".conf", ".ini"}
SKIP_DIRS = {".git", ".venv", "state", "build", "dist", "__pycache__", ".pytest_cache",
             ".mypy_cache", ".ruff_cache", ".hypothesis"}
# Documentation outside the repository: the original spec files and the shared directory. (Tests
# and bench read the receiver corpus in place, `ROOT.parent / "shared" / "corpus"`: data, not docs.)
OUTSIDE = re.compile(r"\.\./shared|shared/spec|\"shared\" / \"spec\"|\bspec/[\w-]+\.md")
# The reference docs named without their directory: in README and code they are `docs/NAME.md`,
# inside docs/ a link `[...](NAME.md)` (links are checked by the link test, and left out here).
BARE = re.compile(r"(?<![\w/.-])(threats|events|config|trace-format|cli)\.md")
DOC_PATH = re.compile(r"\bdocs/([\w-]+\.md)")


def repo_text_files() -> list[Path]:
    out = []
    for top in ROOT.iterdir():
        if top.name in SKIP_DIRS or top.name.endswith(".egg-info"):
            continue
        if top.is_file():
            paths = [top]
        else:
            paths = [p for p in top.rglob("*") if p.is_file()
                     and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]
        out += [p for p in paths if p.suffix in TEXT_SUFFIXES or p.name in ("Makefile", "LICENSE")]
    return out


def test_nothing_points_at_documentation_outside_the_repo() -> None:
    files = repo_text_files()
    assert ROOT / "timewatch" / "records.py" in files and DOCS / "events.md" in files
    found = []
    for p in files:
        if p == Path(__file__):
            continue
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            where = f"{p.relative_to(ROOT)}:{n}"
            found += [f"{where}: {m.group(0)}" for m in OUTSIDE.finditer(line)]
            prose = LINK.sub("", line) if p.suffix == ".md" else line
            found += [f"{where}: {m.group(0)} (name it by its path, docs/...)"
                      for m in BARE.finditer(prose)]
            found += [f"{where}: docs/{name} does not exist" for name in DOC_PATH.findall(line)
                      if not (DOCS / name).is_file()]
    assert not found, "\n".join(found)


def test_the_checks_above_catch_what_they_look_for() -> None:
    assert OUTSIDE.search("see ../shared/spec/events.md")
    assert OUTSIDE.search('ROOT.parent / "shared" / "spec" / "threats.md"')
    assert OUTSIDE.search("(spec/trace-format.md)")
    assert not OUTSIDE.search('ROOT.parent / "shared" / "corpus"')
    assert BARE.search("the noise of threats.md") and BARE.search("(cli.md)")
    assert not BARE.search("docs/threats.md")
    assert not BARE.search(LINK.sub("", "[threats.md](threats.md)"))
    assert slug("`tw_event`: alerts and clears") == "tw_event-alerts-and-clears"
    assert slug("## `timewatch decode FILE`".lstrip("# ")) == "timewatch-decode-file"


def test_license_is_the_one_pyproject_names() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-2-Clause"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 2-Clause License") and "the timewatch authors" in text


def test_every_detect_range_is_documented():
    """docs/config.md's Ranges table says what check-config accepts for every [detect] key."""
    from timewatch.engine.params import AT_MOST, RANGES, Detect

    text = (DOCS / "config.md").read_text()
    defaults = Detect()
    for key, (lo, hi, lo_open) in RANGES.items():
        # An integer key's bounds as integers (the compiled params module holds them as floats).
        integer = isinstance(getattr(defaults, key), int)
        fmt = lambda v: str(int(v)) if integer else f"{v:g}"  # noqa: E731, B023
        want = f"| `{key}` | {'>' if lo_open else '>='} {fmt(lo)}, <= {fmt(hi)}"
        if key in AT_MOST:
            want += f", <= `{AT_MOST[key]}`"
        assert want + " |" in text, f"docs/config.md Ranges: {want}"
