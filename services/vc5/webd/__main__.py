"""vc5-webd: the console, vc5-compatible JSON and Prometheus /metrics (read-only, over D-Bus)."""

from __future__ import annotations

import argparse
import sys

from vc5.common import lifecycle

from . import daemon


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vc5-webd", description=__doc__)
    p.add_argument("--listen", metavar="ADDR:PORT",
                   help="open a TCP socket (development, tests); under systemd the socket comes from "
                        "vc5-webd.socket and this is not needed (default: config webserver, else :80)")
    p.add_argument("--config", metavar="FILE",
                   help="configuration file (default: the one healthd publishes, else /etc/vc5/vc5.yaml)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="counter sampling interval (default 2, as vc5)")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="connections open at once; past it the one waiting longest for a request is closed, "
                        "or the new one if every slot is busy (default: from LimitNOFILE, at most 256)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a request's line and headers must arrive within this (default 10)")
    p.add_argument("--idle-timeout", type=float, default=15.0, metavar="SECONDS",
                   help="close a kept-alive connection idle this long (default 15)")
    p.add_argument("--allowed-hosts", type=lambda s: [h for h in s.split(",") if h], metavar="NAME,...",
                   help="answer only requests whose Host is one of these names or an IP address "
                        "(421 otherwise; against DNS rebinding; default: any Host)")
    p.add_argument("--demo", action="store_true", help="serve fixed sample data instead of reading the bus")
    p.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; a malformed --listen exits 2 naming the accepted forms."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_connections is not None and args.max_connections < 1:
        parser.exit(2, "vc5-webd: --max-connections must be at least 1\n")
    for name in ("header_timeout", "idle_timeout"):
        if not getattr(args, name) > 0:
            parser.exit(2, f"vc5-webd: --{name.replace('_', '-')} must be positive\n")
    if args.listen:
        try:
            daemon.parse_listen(args.listen)
        except ValueError as e:
            parser.exit(2, f"vc5-webd: {e}\n")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return lifecycle.main("vc5-webd", args, daemon.main, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
