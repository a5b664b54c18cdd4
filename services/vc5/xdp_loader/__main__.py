"""`vc5-xdp-loader` / `python3 -m vc5.xdp_loader`: the command line (argparse only).

    vc5-xdp-loader [--config F] [--pin-dir D] [--lock F] [--rescan S] [--flows N] [--state-dir D]
        the service (daemon.py)
    vc5-xdp-loader --stop-post | --detach [--config F] [--pin-dir D] [--lock F] [--unit U]
        the unit's ExecStopPost= / detach for good (stop_post.py)
"""

import argparse
import os
import sys

from vc5.common import lifecycle, names

from .loader import RESCAN_S
from .startup import DEFAULT_LOCK

DEFAULT_STATE_DIR = "/var/lib/vc5/xdp-loader"


def parse_args(argv):
    from .dataplane import default_pin_dir

    p = argparse.ArgumentParser(prog="vc5-xdp-loader", description="vc5 XDP data-plane loader")
    p.add_argument("--config", default=names.CONFIG_PATH, help="vc5.yaml (default %(default)s)")
    p.add_argument("--pin-dir", default=default_pin_dir(), help="bpffs directory of the pinned maps "
                   "(default %(default)s)")
    p.add_argument("--lock", default=DEFAULT_LOCK,
                   help="lock file: one loader per host (default %(default)s)")
    p.add_argument("--rescan", type=float, default=RESCAN_S, help="seconds between network rescans")
    p.add_argument("--flows", type=int, default=None,
                   help="flow table entries (default: flows_per_cpu from the configuration)")
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or DEFAULT_STATE_DIR
    p.add_argument("--state-dir", default=state_dir,
                   help="where the block list is kept (default: $STATE_DIRECTORY, from the unit's "
                   "StateDirectory=, else /var/lib/vc5/xdp-loader)")
    p.add_argument("--unit", default=names.UNITS[names.XDP_LOADER_BUS], help="systemd unit (for --stop-post)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--detach", action="store_true",
                        help="detach vc5's XDP program and remove the pinned maps, then exit")
    action.add_argument("--stop-post", action="store_true",
                        help="for ExecStopPost=: detach unless systemd is restarting the unit or it failed")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.detach or args.stop_post:
        from .stop_post import run
    else:
        from .daemon import run
    return lifecycle.main("vc5-xdp-loader", args, run)


if __name__ == "__main__":
    sys.exit(main())
