"""vc5-webd: the console, vc5-compatible JSON and Prometheus /metrics (read-only, over D-Bus)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vc5-webd", description=__doc__)
    p.add_argument("--listen", metavar="ADDR:PORT",
                   help="open a TCP socket (development, tests); under systemd the socket comes from "
                        "vc5-webd.socket and this is not needed (default: config webserver, else :80)")
    p.add_argument("--config", metavar="FILE",
                   help="configuration file (default: the one healthd publishes, else /etc/vc5/vc5.yaml)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="counter sampling interval (default 2, as vc5)")
    p.add_argument("--demo", action="store_true", help="serve fixed sample data instead of reading the bus")
    p.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from .daemon import parse_listen, run
    if args.listen:
        try:
            parse_listen(args.listen)
        except ValueError as e:
            print(f"vc5-webd: {e}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(run(args.listen, args.config, args.demo, args.interval))
    except OSError as e:
        print(f"vc5-webd: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
