"""vc5ctl, the operator's command-line tool.

Each subcommand lives in its own module named `<something>_cmd.py` in this
package, exposing `register(subparsers)`: it adds its parser(s) and sets
`func` (taking the parsed args, returning the exit status). __main__.py finds
the modules by name, so adding a subcommand means adding a module.
"""
