"""vc5ctl config check|json: validate the configuration, or print vc5's expanded JSON of it.

check: exit 0 and one summary line on stdout when valid (warnings, if any, go to
stderr); exit 1 and one line per problem on stderr when not.
"""

from __future__ import annotations

import json
import sys

from vc5.common.names import CONFIG_PATH
from vc5.config import ConfigError, load, load_text, masked, to_vc5_json


FILE_HELP = f"YAML file, - for stdin (default {CONFIG_PATH})"
CREDENTIALS_HELP = ("read {credential: NAME} secrets from DIR/NAME and refuse a missing one (default: "
                    "$CREDENTIALS_DIRECTORY, as systemd sets it for LoadCredential=; without either, "
                    "such secrets are left unset with a warning); e.g. /etc/vc5/credentials")


def register(subparsers) -> None:
    p = subparsers.add_parser("config", help="check the configuration, or show vc5's JSON view of it",
                              description="Check the configuration, or show vc5's expanded JSON view of it.")
    sub = p.add_subparsers(dest="config_command", metavar="{check,json}")
    c = sub.add_parser("check", help="validate a configuration file",
                       description="Validate a configuration file: every problem is printed as "
                                   "FILE:LINE:COLUMN: key.path: message. Exit status 0 = valid, 1 = not.")
    c.add_argument("file", nargs="?", default=CONFIG_PATH, help=FILE_HELP)
    c.add_argument("--credentials", metavar="DIR", help=CREDENTIALS_HELP)
    c.set_defaults(func=check)
    j = sub.add_parser("json", help="print vc5's expanded JSON (what vc5's config.pl produces)",
                       description="Print the configuration as vc5's expanded JSON (pretty, sorted keys).")
    j.add_argument("file", nargs="?", default=CONFIG_PATH, help=FILE_HELP)
    j.add_argument("--masked", action="store_true", help="replace secrets by ************ (as /config.json)")
    j.add_argument("--credentials", metavar="DIR", help=CREDENTIALS_HELP)
    j.set_defaults(func=show_json)

    def usage(args) -> int:
        p.print_help(sys.stderr)
        return 2
    p.set_defaults(func=usage)


def _load(path: str, credentials: str | None = None):
    """The Config, or None after printing every problem to stderr."""
    kw = {"credentials": credentials, "require_credentials": credentials is not None}
    try:
        if path == "-":
            return load_text(sys.stdin.read(), source="<stdin>", **kw)
        return load(path, **kw)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return None


def summary(cfg) -> str:
    backends = {b.address for s in cfg.services for b in s.backends}
    peers = len(cfg.bgp.peers) if cfg.bgp else 0
    return (f"{_n(len(cfg.services), 'service')} on {_n(len(cfg.vips), 'VIP')}, "
            f"{_n(len(backends), 'backend')}, {_n(peers, 'BGP peer')}")


def _n(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def check(args) -> int:
    cfg = _load(args.file, args.credentials)
    if cfg is None:
        return 1
    for w in cfg.warnings:
        print(f"{w.file}:{w.line}:{w.column}: {w.path}: warning: {w.message}", file=sys.stderr)
    print(f"{cfg.source}: OK: {summary(cfg)}")
    return 0


def show_json(args) -> int:
    cfg = _load(args.file, args.credentials)
    if cfg is None:
        return 1
    view = masked(cfg) if args.masked else to_vc5_json(cfg)
    print(json.dumps(view, indent=3, sort_keys=True))
    return 0
