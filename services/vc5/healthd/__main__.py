"""`vc5-healthd` and `python3 -m vc5.healthd`: the command line (docs/health-checks.md)."""

import argparse
import os
import sys

from vc5.common import lifecycle, names

from . import probe_path as pp
from .daemon import Daemon

DESCRIPTION = "vc5-healthd: load the configuration, run the checks, publish state on org.vc5.Health1."


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="vc5-healthd", description=DESCRIPTION)
    p.add_argument("--config", "-c", default=names.CONFIG_PATH, help="configuration file (%(default)s)")
    p.add_argument("--probe-path", choices=pp.MODES, default="auto",
                   help="where probes connect: the VIP on each backend through xdp-loader's NAT "
                        "addresses (loader), the backend's own address (direct), or loader when "
                        "xdp-loader publishes ProbeAddresses (auto, default)")
    p.add_argument("--debug", action="store_true", help="log every probe result (DEBUG)")
    p.add_argument("--state-file", default=_default_state_file(),
                   help="where state is saved for a restart (default: $RUNTIME_DIRECTORY/state.json under "
                        "systemd, else none: a restart starts every backend down, as vc5)")
    p.add_argument("--state-max-age", type=float, default=60.0, metavar="SECONDS",
                   help="restore saved state only if younger than this (%(default)s)")
    return p.parse_args(argv)


def _default_state_file():
    # systemd sets RUNTIME_DIRECTORY for RuntimeDirectory= (kept across restarts by
    # RuntimeDirectoryPreserve=restart); may list several, separated by ':'.
    d = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return os.path.join(d, "state.json") if d else None


async def run(args) -> int:
    return await Daemon(args.config, args.probe_path, args.debug, args.state_file, args.state_max_age).run()


def main(argv=None) -> int:
    return lifecycle.main("vc5-healthd", parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
