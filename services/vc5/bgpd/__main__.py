"""vc5-bgpd command line: `vc5-bgpd [--config FILE] [--listen ADDR:PORT] ...` (docs/bgp.md, Command line)."""

import argparse
import ipaddress
import os
import sys

from vc5.common import lifecycle, names

from . import daemon, gate
from .maintenance import default_state_dir


def parse_listen(spec):
    """ADDR:PORT (IPv6 in brackets or not) -> (address, port); ValueError if it is not one."""
    host, _, port = spec.rpartition(":")
    host = host.strip("[]")
    ipaddress.ip_address(host)
    port = int(port)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="vc5-bgpd", description="vc5 BGP speaker: route health injection")
    p.add_argument("--config", default=names.CONFIG_PATH, help="configuration file (default %(default)s)")
    p.add_argument("--listen", action="append", default=[], type=parse_listen, metavar="ADDR:PORT",
                   help="accept passive sessions here (besides sockets from vc5-bgpd.socket); repeatable")
    p.add_argument("--hold-down", type=float, default=5.0, metavar="SECONDS",
                   help="a VIP must be up this long before it is advertised (vc5: 5)")
    p.add_argument("--learn", type=float, default=None, metavar="SECONDS",
                   help="advertise nothing until this long after start (default: config learn, at least 1)")
    p.add_argument("--retry-min", type=float, default=1.0, metavar="SECONDS",
                   help="first reconnect delay after a failure; doubles up to --retry-max")
    p.add_argument("--retry-max", type=float, default=30.0, metavar="SECONDS",
                   help="longest reconnect delay (vc5 retries every 30 s)")
    p.add_argument("--shutdown-reason", default="vc5-bgpd stopping",
                   help="RFC 9003 shutdown communication sent at stop")
    p.add_argument("--dataplane", choices=gate.MODES,
                   default=os.environ.get("VC5_BGPD_DATAPLANE") or gate.IGNORE,
                   help="required: offer a VIP only while org.vc5.XdpLoader1 reports it forwardable "
                   "(the unit sets this); ignore: healthd alone decides (another data plane). Default: "
                   "$VC5_BGPD_DATAPLANE, else %(default)s")
    p.add_argument("--loader-grace", type=float, default=gate.LOADER_GRACE_S, metavar="SECONDS",
                   help="keep the forwardable VIPs this long after the loader left the bus "
                   "(default %(default)s)")
    p.add_argument("--loader-starting-max", type=float, default=gate.STARTING_MAX_S, metavar="SECONDS",
                   help="... and while a successor starts, at most this long after the loader was "
                   "lost; keep it under the data plane's 60 s watchdog (default %(default)s)")
    p.add_argument("--state-dir", default=default_state_dir(), metavar="DIR",
                   help="where maintenance is kept across restarts (default $STATE_DIRECTORY, else "
                   "/var/lib/vc5-bgpd)")
    p.add_argument("--no-bus", action="store_true", help="do not use D-Bus (no VIPs: advertises nothing)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    if args.dataplane not in gate.MODES:
        p.error(f"--dataplane (or $VC5_BGPD_DATAPLANE) {args.dataplane!r}: "
                f"expected one of {', '.join(gate.MODES)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    return lifecycle.main("vc5-bgpd", args, daemon.run, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
