"""The operator documentation names only what the code has.

Walks docs/ (Markdown and the man pages) and README.md and checks, against the
code itself (never a list kept here):
  * every command line of vc5ctl and the vc5-* programs (in code spans and
    blocks, in command position) against their real argparse parsers:
    subcommands, and each option of the subcommand it is given to;
  * every option in a program's man page against that program's parser;
  * every configuration key of a YAML example (```yaml blocks, and blocks that
    start with `# /etc/vc5/vc5.yaml`) through the real compiler (its "unknown
    key" problems, with the path), and every key of a `| key |` table against
    the grammar's key sets (vc5.config);
  * every metric name `vc5_*` / `xvs_*` against what webd's /metrics exports;
  * every `systemctl reload X` against the units in units/ that have
    ExecReload= or propagate a reload (ReloadPropagatedFrom= names them).
A failure names FILE:LINE and what is wrong.

Extending: a new program -> one line in COMMANDS; a new subcommand, option,
config key, metric family or reloadable unit -> nothing (read from the code).
A name that is deliberately not ours (e.g. the Go vc5's) -> FOREIGN_METRICS,
with the reason. Run after a merge (no root, ~2 s):
  env PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONPATH=services:. \
      /usr/bin/python3 -m pytest -q tests/unit/test_docs_match_code.py
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib
import os
import re
import shlex

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS_DIR = os.path.join(REPO, "units")

#: program -> (module, the function that builds its parser, or parses its arguments)
COMMANDS = {
    "vc5ctl": ("vc5.cli.__main__", "build_parser"),
    "vc5-xdp-loader": ("vc5.xdp_loader.__main__", "parse_args"),
    "vc5-healthd": ("vc5.healthd.__main__", "parse_args"),
    "vc5-bgpd": ("vc5.bgpd.__main__", "parse_args"),
    "vc5-webd": ("vc5.webd.__main__", "build_parser"),
    "vc5-decap": ("vc5.decap.__main__", "build_parser"),
}
#: metric names the docs may quote although webd does not export them, and why
FOREIGN_METRICS = {}
#: words after which a word is in command position in a shell line
COMMAND_LEADERS = {"sudo", "exec", "then", "do", "time", "nohup", "!"}
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", "$(", "`"}


def doc_files() -> list:
    files = glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)
    files += glob.glob(os.path.join(REPO, "docs", "man", "*.[0-9]"))
    return sorted(files) + [os.path.join(REPO, "README.md")]


# ---------------------------------------------------------------- what the code offers

class _Captured(Exception):
    def __init__(self, parser):
        super().__init__("parser captured")
        self.parser = parser


@functools.lru_cache(maxsize=None)
def parser_of(program: str) -> argparse.ArgumentParser:
    """The program's real ArgumentParser: build_parser() returns it; parse_args([]) is stopped in
    ArgumentParser.parse_args, which hands it over."""
    module, func = COMMANDS[program]
    fn = getattr(importlib.import_module(module), func)
    original = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        raise _Captured(self)
    argparse.ArgumentParser.parse_args = capture
    try:
        result = fn() if func == "build_parser" else fn([])
    except _Captured as c:
        return c.parser
    finally:
        argparse.ArgumentParser.parse_args = original
    assert isinstance(result, argparse.ArgumentParser), f"{module}.{func}() gave no ArgumentParser"
    return result


def options(parser) -> set:
    return {o for a in parser._actions for o in a.option_strings}


def subcommands(parser) -> dict:
    out = {}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            out.update(a.choices)
    return out


def all_options(parser) -> set:
    out = options(parser)
    for sub in subcommands(parser).values():
        out |= all_options(sub)
    return out


@functools.lru_cache(maxsize=None)
def metric_names() -> frozenset:
    """Every family on webd's /metrics, rendered from webd's demo data (all daemons present)."""
    from vc5.client.snapshot import take
    from vc5.webd import demo, guard, metrics

    now = demo.T0 / 1e6 + 300
    _, first = take(demo.health(), demo.bgp(), demo.xdp(0), now=now - 2, monotonic=1.0)
    snap, _ = take(demo.health(), demo.bgp(), demo.xdp(1), previous=first, now=now, monotonic=3.0)
    text = metrics.render(snap) + metrics.exposition(guard.Stats(guard.Limits()).families())  # as app.py
    return frozenset(re.findall(r"^# TYPE (\S+) ", text.decode(), re.M))


@functools.lru_cache(maxsize=None)
def c_identifiers() -> frozenset:
    """vc5_* names of the XDP program's C source (structs, functions): not metrics."""
    names = set()
    for path in glob.glob(os.path.join(REPO, "bpf", "*.[ch]")):
        names |= set(re.findall(r"\b(vc5_\w+)", read(path)))
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def config_key_names() -> frozenset:
    """Every key the grammar accepts somewhere (for tables of keys, which give no path)."""
    from vc5.config import bgp, checks, compiler, grammar, secrets, service_keys, servers, services

    names = {secrets.KEY, "port"} | set(service_keys.SETTINGS) | set(service_keys.CHECK_SETTINGS)
    names |= {"http", "https", "domain"} | set(grammar.NAMED_PORTS)      # policy keys
    for module in (bgp, checks, compiler, servers, services, service_keys):
        for name, value in vars(module).items():
            if name.endswith("KEYS") and isinstance(value, (set, frozenset, tuple, list, dict)):
                names |= {k for k in value if isinstance(k, str)}
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def reloadable_units() -> frozenset:
    """Units `systemctl reload` works on: with ExecReload=, or named by a ReloadPropagatedFrom=.
    Without the `.service` suffix; a template as `name@`."""
    out = set()
    for name in sorted(os.listdir(UNITS_DIR)):
        if "." not in name:
            continue
        with open(os.path.join(UNITS_DIR, name)) as f:
            lines = [line.strip() for line in f]
        if any(line.startswith("ExecReload=") for line in lines):
            out.add(_unit(name))
        for line in lines:
            if line.startswith("ReloadPropagatedFrom="):
                out |= {_unit(u) for u in line.split("=", 1)[1].split()}
    return frozenset(out)


def _unit(name: str) -> str:
    name = name[:-len(".service")] if name.endswith(".service") else name
    return name.split("@", 1)[0] + "@" if "@" in name else name


# ---------------------------------------------------------------- reading the docs

@functools.lru_cache(maxsize=None)
def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def roff_text(text: str) -> str:
    """A man page as the words it shows: font macros joined as groff joins them."""
    out = []
    for line in text.splitlines():
        line = line.replace("\\-", "-").replace("\\(em", "--").replace("\\e", "\\")
        line = re.sub(r"\\f[BIRP]", "", line)
        m = re.match(r"\.(B|I|BR|RB|IR|RI|BI|IB)\s+(.*)$", line)
        if m:
            try:
                words = shlex.split(m.group(2), posix=True)
            except ValueError:
                words = m.group(2).split()
            line = (" " if m.group(1) in ("B", "I") else "").join(words)
        elif line.startswith("."):
            line = ""
        out.append(line)
    return "\n".join(out)


def snippets(path: str) -> list:
    """(line number, text, is a block) of every code block line and code span of a page; a man
    page is all code (its roff stripped)."""
    text = read(path)
    if not path.endswith(".md"):
        # NAME is "prog \- what it is", not a command line
        name = re.search(r"^\.SH NAME\n(.*\n)*?(?=\.SH)", text, re.M)
        skip = range(text.count("\n", 0, name.start()) + 1, text.count("\n", 0, name.end()) + 1) \
            if name else ()
        return [(i, line, True) for i, line in enumerate(roff_text(text).splitlines(), 1) if i not in skip]
    out, fence = [], None
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            continue
        if fence is not None:
            out.append((i, line, True))
        else:
            out += [(i, span, False) for span in re.findall(r"``?([^`]+)``?", line)]
    return out


def yaml_blocks(path: str) -> list:
    """(first line, text) of the configuration examples of a Markdown page."""
    if not path.endswith(".md"):
        return []
    out, block, start = [], None, 0
    for i, line in enumerate(read(path).splitlines(), 1):
        if line.strip().startswith("```"):
            if block is None:
                block, start, lang = [], i + 1, line.strip()[3:].strip()
            else:
                if lang == "yaml" or (block and block[0].strip().startswith("# /etc/vc5/vc5.yaml")):
                    out.append((start, "\n".join(block)))
                block = None
            continue
        if block is not None:
            block.append(line)
    return out


def shell_commands(text: str) -> list:
    """The word lists of the commands in a shell line, split at | && ; $( and the like."""
    text = text.split(" #", 1)[0] if not text.lstrip().startswith("#") else ""
    text = text.replace('"$(', " $( ").replace(')"', " ) ").replace("$(", " $( ").replace(")", " ) ")
    try:
        lex = shlex.shlex(text, posix=True, punctuation_chars="|&;()")
        lex.whitespace_split = True
        words = list(lex)
    except ValueError:
        words = text.split()
    commands, current = [], []
    for w in words:
        if w in SEPARATORS:
            if current:
                commands.append(current)
            current = []
            continue
        if not current and "=" in w:      # ENV=value, or a unit's ExecStart=/usr/bin/vc5ctl ...
            w = w.split("=", 1)[1]
            if os.path.basename(w) not in COMMANDS:
                continue
        if not current and w in COMMAND_LEADERS:
            continue
        current.append(w)
    if current:
        commands.append(current)
    return commands


# ---------------------------------------------------------------- checks (each returns problems)

PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_:.,/=-]*(\.\.\.)?$")


def check_command(words: list) -> list:
    """Problems of one command line (`vc5ctl backends --json`) against the program's parser."""
    program = os.path.basename(words[0])
    parser, path, problems = parser_of(program), [program], []
    for raw in words[1:]:
        word = raw.strip("[]{}\"'").rstrip(",.;:")
        if word in ("", "...", "-", "\\") or word.startswith(("<", "$", "/", ">")):
            continue
        alternatives = word.split("|") if "|" in word else [word]
        if word.startswith("-"):
            opt = word.split("=", 1)[0]
            if opt not in options(parser) and not (opt.startswith("--") and any(
                    o.startswith(opt) and opt.endswith("-") for o in options(parser))):
                problems.append(f"`{' '.join(path)}` has no option {opt}")
            continue
        subs = subcommands(parser)
        if subs and not PLACEHOLDER.match(word):
            unknown = [a for a in alternatives if a not in subs]
            if unknown:
                problems.append(f"`{' '.join(path)}` has no subcommand {'|'.join(unknown)} "
                                f"(it has {', '.join(sorted(subs))})")
                return problems
            if len(alternatives) == 1:
                parser = subs[word]
                path.append(word)
    return problems


def command_problems(text: str, page_program: str | None = None) -> list:
    """Problems of every vc5 command line in a snippet; on the man page of `page_program`, also
    every option (the page describes that program's options without repeating its name)."""
    problems = []
    for words in shell_commands(text):
        name = os.path.basename(words[0])
        if name in COMMANDS:
            problems += check_command(words)
        elif page_program and words[0].startswith("--") and len(words) <= 3:
            opt = words[0].split("=", 1)[0].rstrip(",.;:")
            if opt not in all_options(parser_of(page_program)):
                problems.append(f"{page_program} has no option {opt}")
    return problems


def metric_problems(text: str) -> list:
    problems = []
    # a name, not a prefix (`vc5_bgp_*`), a file (`vc5_xdp.c`) or a path (`bpf/vc5_flows.h`)
    for name in re.findall(r"(?<![\w/.-])((?:vc5|xvs)_[a-z0-9_]*[a-z0-9])(?![\w*]|\.[a-z])", text):
        if name not in metric_names() and name not in FOREIGN_METRICS and name.rstrip("0123456789") \
                not in c_identifiers():
            problems.append(f"metric {name} is not exported by vc5-webd's /metrics")
    return problems


def reload_problems(text: str) -> list:
    problems = []
    for words in shell_commands(text):
        if len(words) < 3 or os.path.basename(words[0]) != "systemctl" or words[1] != "reload":
            continue
        for unit in (w.rstrip(",.;:") for w in words[2:]):
            if unit.startswith("-") or not unit.startswith("vc5"):
                continue
            if _unit(unit) not in reloadable_units():
                problems.append(f"`systemctl reload {unit}`: units/{unit.split('@')[0]}"
                                f"{'@' if '@' in unit else ''}.service has no ExecReload= and no "
                                "unit propagates a reload from it (reloadable: "
                                f"{', '.join(sorted(reloadable_units()))})")
    return problems


def config_problems(yaml_text: str) -> list:
    """(line in yaml_text, message) of every unknown key the real compiler reports; other
    problems (a fragment lacks required keys, documentation addresses) are not this check's.
    An indented block is a fragment of a service (its keys are checked as a service's)."""
    from vc5.config import ConfigError, load_text

    lines = yaml_text.splitlines()
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip() and not x.lstrip().startswith("#")),
                 default=0)
    offset = 0
    if indent:
        text = SERVICE_WRAPPER + "\n".join(" " * 4 + x[indent:] for x in lines)
        offset = SERVICE_WRAPPER.count("\n")
    else:
        text = yaml_text
    try:
        load_text(text, source="doc")
    except ConfigError as e:
        return [(p.line - offset, f"{p.path}: {p.message}") for p in e.problems if "unknown key" in p.message]
    return []


SERVICE_WRAPPER = "services:\n  - virtual: 192.0.2.1\n"


def key_table_problems(text: str) -> list:
    """(line, message) for each first-column `key` of a Markdown table headed `| key |` that the
    grammar does not have (a dotted path is checked by its last part)."""
    problems, in_table = [], False
    for i, line in enumerate(text.splitlines(), 1):
        table_row = line.lstrip().startswith("|")
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if table_row else []
        if not cells:
            in_table = False
        elif cells[0] == "key":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            for key in re.findall(r"`([^`]+)`", cells[0]):
                name = key.rstrip(":").split(".")[-1]
                if re.match(r"^[a-z][a-z0-9_-]*$", name) and name not in config_key_names():
                    problems.append((i, f"configuration key {key} is not in the grammar (vc5.config)"))
    return problems


# ---------------------------------------------------------------- the docs

def _where(path: str, line: int) -> str:
    return f"{os.path.relpath(path, REPO)}:{line}"


def _man_program(path: str):
    name = os.path.basename(path).rsplit(".", 1)[0]
    return name if not path.endswith(".md") and name in COMMANDS else None


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_commands_and_options_exist(path):
    program = _man_program(path)
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in command_problems(text, program)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_metrics_exist(path):
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in metric_problems(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_reloads_are_possible(path):
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in reload_problems(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_config_keys_exist(path):
    problems = [f"{_where(path, start + line - 1)}: {p}" for start, block in yaml_blocks(path)
                for line, p in config_problems(block)]
    if path.endswith(".md"):
        problems += [f"{_where(path, line)}: {p}" for line, p in key_table_problems(read(path))]
    assert not problems, "\n".join(problems)


def test_every_checked_source_is_found():
    """The walk sees the pages and the code's vocabularies (an empty one would pass everything)."""
    assert len(doc_files()) > 10
    assert {"status", "drain", "config", "maintenance"} <= set(subcommands(parser_of("vc5ctl")))
    assert {"vc5_vip_status", "xvs_global_packets", "vc5_daemon_up"} <= metric_names()
    assert {"flows_per_cpu", "webserver", "tunnel-type", "graceful_shutdown"} <= config_key_names()
    assert {"vc5-healthd", "vc5-bgpd", "vc5.target", "vc5-decap@"} <= reloadable_units()
    assert "vc5-webd" not in reloadable_units() and "vc5-xdp-loader" not in reloadable_units()
    for program in COMMANDS:
        assert "--help" in options(parser_of(program)), program
    commands = [w[0] for p in doc_files() for _, text, _ in snippets(p) for w in shell_commands(text)]
    assert commands.count("vc5ctl") > 30 and commands.count("systemctl") > 20, "the walk lost the commands"
    assert sum(len(yaml_blocks(p)) for p in doc_files()) > 10, "the walk lost the YAML examples"


# ---------------------------------------------------------------- the checks catch what they must

def test_a_bogus_subcommand_or_option_is_caught():
    assert command_problems("vc5ctl status --json --quick") == []
    assert command_problems("sudo vc5ctl maintenance on --wait --timeout 60 && vc5ctl bgp") == []
    assert command_problems('eval "$(vc5ctl completion bash)"') == []
    assert command_problems("vc5ctl drain BACKEND [--service VIP:PORT:PROTO]") == []
    assert command_problems("vc5ctl config check|json FILE") == []
    assert command_problems("journalctl -u vc5-healthd -p warning") == []     # not in command position
    assert command_problems("vc5ctl statuz") != []
    assert "no option --jsn" in " ".join(command_problems("vc5ctl status --jsn"))
    assert "no option --wait" in " ".join(command_problems("vc5ctl maintenance status --wait"))
    assert "no option --frobnicate" in " ".join(command_problems("vc5-xdp-loader --frobnicate"))
    assert command_problems("vc5-xdp-loader --detach") == []
    assert command_problems("vc5-decap attach eth0 --types gue --gue-port 6080") == []
    assert command_problems("--pin-dir", page_program="vc5-xdp-loader") == []
    assert command_problems("--pin-dirs", page_program="vc5-xdp-loader") != []


def test_a_bogus_metric_is_caught():
    assert metric_problems("curl -s localhost/metrics | grep vc5_vip_status") == []
    assert metric_problems("rate(xvs_global_packets[1m])") == []
    assert metric_problems("vc5_vip_flaps_total") == ["metric vc5_vip_flaps_total is not exported by "
                                                      "vc5-webd's /metrics"]


def test_an_impossible_reload_is_caught():
    assert reload_problems("sudo systemctl reload vc5.target") == []
    assert reload_problems("systemctl reload vc5-healthd vc5-decap@eth0") == []
    assert reload_problems("systemctl reload vc5-xdp-loader") != []
    assert reload_problems("systemctl reload vc5-webd.service") != []


def test_a_bogus_config_key_is_caught():
    assert config_problems("flows_per_cpu: 100\nservices:\n  - virtual: 192.0.2.1\n    servers: [10.0.0.1]\n"
                           "    policy: {http: {tunnel-type: gue}}\n") == []
    found = config_problems("flows_per_cpu: 100\nflow_per_cpu: 5\n")
    assert found and found[0][0] == 2 and "flow_per_cpu" in found[0][1], found
    found = config_problems("bgp:\n  as_number: 65001\n  peer_asn: 65000\n")
    assert found and "bgp" in found[0][1] and "peer_asn" in found[0][1], found
    table = "| key | type |\n|---|---|\n| `flows_per_cpu` | int |\n| `bgp.learn` | s |\n| `xdp_mod` | s |\n"
    assert key_table_problems(table) == [(5, "configuration key xdp_mod is not in the grammar (vc5.config)")]
