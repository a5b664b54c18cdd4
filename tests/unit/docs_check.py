"""Checking the operator documentation against the code (tests/unit/test_docs_match_code.py).

What the code offers, read from the code itself: the argparse parsers of the
commands (COMMANDS), the configuration grammar (vc5.config's key sets and its
compiler), the metric families of webd's /metrics, and the units that can be
reloaded (units/). Then readers of the pages (code spans and blocks, YAML
examples, man pages as text, headings) and one function per check, each
returning its problems as text naming what is wrong.

Extending: a new program -> one line in COMMANDS; a new subcommand, option,
config key, metric family or reloadable unit -> nothing. A metric name the
docs may quote although webd does not export it -> FOREIGN_METRICS, with why.
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib
import os
import re
import shlex


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
ALTERNATIVE = "\u00a6"    # `on|off` in a synopsis, kept as one word by shell_commands


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
    """Every family on webd's /metrics, rendered from webd's demo data (all daemons present), and
    every family declared with a literal name (`Family("vc5_...", ...)`), which the demo data may
    not exercise."""
    from vc5.client.snapshot import take
    from vc5.webd import demo, guard, metrics

    now = demo.T0 / 1e6 + 300
    _, first = take(demo.health(), demo.bgp(), demo.xdp(0), now=now - 2, monotonic=1.0)
    snap, _ = take(demo.health(), demo.bgp(), demo.xdp(1), previous=first, now=now, monotonic=3.0)
    text = metrics.render(snap) + metrics.exposition(guard.Stats(guard.Limits()).families())  # as app.py
    names = set(re.findall(r"^# TYPE (\S+) ", text.decode(), re.M))
    for path in glob.glob(os.path.join(REPO, "services", "vc5", "**", "*.py"), recursive=True):
        names |= set(re.findall(r"Family\(\s*\"((?:vc5|xvs)_[a-z0-9_]+)\"", read(path)))
    return frozenset(names)


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


@functools.lru_cache(maxsize=None)
def dbus_members() -> dict:
    """interface -> its property and method names, from the shipped introspection XML."""
    import xml.etree.ElementTree as ET

    out = {}
    for path in glob.glob(os.path.join(REPO, "services", "vc5", "dbus", "*.xml")):
        for iface in ET.parse(path).getroot().iter("interface"):
            out[iface.get("name")] = {m.get("name") for m in iface if m.tag in ("property", "method")}
    return out


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
    text = re.sub(r"(?<=[\w\]])\|(?=[\w\[-])", ALTERNATIVE, text)     # `check|json`: alternatives, not a pipe
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


def check_command(words: list, parser=None, path=None) -> list:
    """Problems of one command line (`vc5ctl backends --json`) against the program's parser.
    `a|b` names alternatives: each is checked with the words that follow it."""
    if parser is None:
        path = [os.path.basename(words[0])]
        parser, words = parser_of(path[0]), words[1:]
    for n, raw in enumerate(words):
        word = raw.strip("[]{}\"'").rstrip(",.;:")
        if word in ("", "...", "-", "\\") or word.startswith(("<", "$", "/", ">")):
            continue
        if word.startswith("-"):
            opt = word.split("=", 1)[0]
            if opt not in options(parser):
                rest = check_command(words[n + 1:], parser, path)
                return [f"`{' '.join(path)}` has no option {opt}"] + rest
            continue
        subs = subcommands(parser)
        if not subs or PLACEHOLDER.match(word):
            continue
        unknown = [a for a in word.split(ALTERNATIVE) if a not in subs]
        if unknown:
            return [f"`{' '.join(path)}` has no subcommand {'|'.join(unknown)} "
                    f"(it has {', '.join(sorted(subs))})"]
        return [p for a in word.split(ALTERNATIVE) for p in check_command(words[n + 1:], subs[a], path + [a])]
    return []


def command_problems(text: str, page_program: str | None = None) -> list:
    """Problems of every vc5 command line in a snippet; on the man page of `page_program`, also
    every option (the page describes that program's options without repeating its name)."""
    problems = []
    modules = {module.rsplit(".__main__", 1)[0]: program for program, (module, _) in COMMANDS.items()}
    for words in shell_commands(text):
        if os.path.basename(words[0]).startswith("python3") and words[1:2] == ["-m"] and \
                len(words) > 2 and words[2] in modules:               # python3 -m vc5.cli ... from a checkout
            words = [modules[words[2]]] + words[3:]
        name = os.path.basename(words[0])
        if name in COMMANDS:
            problems += check_command(words)
        elif page_program and words[0] in subcommands(parser_of(page_program)):   # vc5ctl(1)'s COMMANDS
            problems += check_command([page_program] + words)
        elif page_program and words[0].startswith("--"):                 # an OPTIONS entry
            for opt in (w.split("=", 1)[0].rstrip(",.;:") for w in words if w.startswith("--")):
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


def busctl_problems(text: str) -> list:
    """`busctl get-property|call|set-property BUS PATH IFACE MEMBER ...` of an org.vc5 interface
    against the shipped introspection XML."""
    problems = []
    for words in shell_commands(text):
        if len(words) < 6 or os.path.basename(words[0]) != "busctl":
            continue
        words = [w for w in words if not w.startswith("-")]
        if words[1] not in ("get-property", "set-property", "call") or not words[4].startswith("org.vc5."):
            continue
        members = dbus_members().get(words[4])
        if members is None:
            problems.append(f"no interface {words[4]} in services/vc5/dbus/*.xml")
            continue
        wanted = [w.rstrip(",.;:") for w in (words[5:] if words[1] == "get-property" else words[5:6])]
        problems += [f"{words[4]} has no member {m}" for m in wanted if m not in members and not m.isupper()]
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


def anchors(path: str) -> set:
    """GitHub's anchors of a Markdown page's headings (code blocks skipped, repeats numbered)."""
    out, fence = set(), False
    for line in read(path).splitlines():
        fence ^= line.strip().startswith("```")
        m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = sum(1 for a in out if a == slug or re.fullmatch(re.escape(slug) + r"-\d+", a))
            out.add(f"{slug}-{n}" if n else slug)
    return out


def link_problems(path: str) -> list:
    """(line, message) of each relative link of a Markdown page whose file or anchor is missing."""
    problems = []
    for i, line in enumerate(read(path).splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(dest):
                problems.append((i, f"link to {target}: no {os.path.relpath(dest, REPO)}"))
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                where = os.path.relpath(dest, REPO)
                problems.append((i, f"link to {target}: no heading #{anchor} in {where}"))
    return problems
