"""vc5-notifyd: ship vc5's journal events to Slack, Teams and Elasticsearch (logging: in vc5.yaml)."""

from __future__ import annotations

import argparse
import os
import sys

from vc5.common import lifecycle

from . import daemon
from .follower import default_matches, parse_match


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be positive")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def _match(text: str) -> str:
    try:
        return parse_match(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def build_parser() -> argparse.ArgumentParser:
    state = os.environ.get("STATE_DIRECTORY", "/var/lib/vc5-notifyd").split(":")[0]
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    p = argparse.ArgumentParser(prog="vc5-notifyd", description=__doc__)
    p.add_argument("--config", default="/etc/vc5/vc5.yaml", metavar="FILE",
                   help="configuration file (default /etc/vc5/vc5.yaml)")
    p.add_argument("--state-directory", default=state, metavar="DIR",
                   help="where the cursor files live (default $STATE_DIRECTORY, else /var/lib/vc5-notifyd)")
    p.add_argument("--metrics-file", default=os.path.join(runtime, "metrics.prom") if runtime else None,
                   metavar="FILE", help="Prometheus textfile of vc5_notify_* (default "
                                        "$RUNTIME_DIRECTORY/metrics.prom; none without RUNTIME_DIRECTORY)")
    p.add_argument("--match", action="append", type=_match, metavar="FIELD=VALUE",
                   help="ship the journal entries with FIELD=VALUE (repeatable, OR-ed) instead of vc5's "
                        "(SYSLOG_IDENTIFIER of vc5's daemons, or a vc5 MESSAGE_ID)")
    p.add_argument("--journal-directory", metavar="DIR",
                   help="read journal files from DIR (default: the local journal)")
    p.add_argument("--batch", type=_count, default=500, metavar="N",
                   help="events per Elasticsearch _bulk request (default 500)")
    p.add_argument("--max-backlog", type=_count, default=100_000, metavar="N",
                   help="while an endpoint fails, skip the oldest events past N waiting (default 100000)")
    p.add_argument("--backlog-interval", type=_positive, default=5.0, metavar="SECONDS",
                   help="how often vc5_notify_backlog is counted (default 5)")
    p.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS",
                   help="one HTTP request's deadline (default 10)")
    p.add_argument("--backoff-initial", type=_positive, default=1.0, metavar="SECONDS",
                   help="first retry delay, doubled per failure (default 1)")
    p.add_argument("--backoff-max", type=_positive, default=60.0, metavar="SECONDS",
                   help="longest retry delay (default 60)")
    p.add_argument("--backoff-jitter", type=float, default=0.1, metavar="FRACTION",
                   help="spread each delay by +-FRACTION (default 0.1)")
    p.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backoff_initial > args.backoff_max:
        parser.exit(2, "vc5-notifyd: --backoff-initial must not exceed --backoff-max\n")
    if not 0 <= args.backoff_jitter < 1:
        parser.exit(2, "vc5-notifyd: --backoff-jitter must be in [0, 1)\n")
    args.match = [[m] for m in args.match] if args.match else default_matches()
    # one group per --match: Follower ORs the groups with add_disjunction()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return lifecycle.main("vc5-notifyd", args, daemon.main, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
