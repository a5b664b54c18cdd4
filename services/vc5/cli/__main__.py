"""vc5ctl entry point: `vc5ctl SUBCOMMAND ...` (`python3 -m vc5.cli` from a checkout).

Subcommands are discovered: every module `vc5.cli.*_cmd` is imported and its
`register(subparsers)` called, in name order. A module that cannot be imported
(e.g. a missing optional dependency) does not take the others down: it is
listed as unavailable in --help and its error is shown if it is asked for.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import vc5
import vc5.cli


def subcommand_modules() -> list:
    """Names of the subcommand modules, sorted."""
    return sorted(f"vc5.cli.{m.name}" for m in pkgutil.iter_modules(vc5.cli.__path__)
                  if m.name.endswith("_cmd"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vc5ctl", description="Operate the vc5 load balancer.")
    parser.add_argument("--version", action="version", version=f"vc5ctl {vc5.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    broken = []
    for name in subcommand_modules():
        try:
            importlib.import_module(name).register(subparsers)
        except Exception as e:  # one broken subcommand must not break the tool
            short = name.rsplit(".", 1)[1][:-4]
            broken.append(short)
            p = subparsers.add_parser(short, help=f"(unavailable: {type(e).__name__}: {e})")
            p.set_defaults(func=_unavailable(short, e))
    if broken:
        parser.epilog = f"unavailable subcommands: {', '.join(broken)}"
    return parser


def _unavailable(name, error):
    def run(args) -> int:
        print(f"vc5ctl: {name} is unavailable: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return run


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # e.g. `vc5ctl config json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
