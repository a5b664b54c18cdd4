"""vc5ctl doctor [balancer] | doctor backend --vip VIP ...: find the usual misconfigurations.

Read-only: nothing is changed; every problem comes with the command that fixes it
(docs/doctor.md). Exit status: 0 nothing to fix (warnings may be printed); 1 something to
fix; 2 usage (argparse, or a bad --vip/--tunnel/--client).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from vc5.common.names import CONFIG_PATH

from .doctor import findings


def _vip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--vip {text!r} is not an IPv4 or IPv6 address") from None


def _tunnel(text: str):
    from .doctor import tunnels
    try:
        return tunnels.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _pyroute2() -> bool:
    """Netlink is read with pyroute2, which python3-vc5 does not depend on (vc5-xdp-loader and
    vc5-decap do): without it, say which package to install rather than fail with a traceback."""
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        print("vc5ctl: doctor needs python3-pyroute2 (apt install python3-pyroute2)", file=sys.stderr)
        return False
    return True


def _print(role: str, result, as_json: bool) -> int:
    print(findings.to_json(role, result) if as_json else findings.to_table(result))
    return findings.exit_status(result)


def cmd_backend(args) -> int:
    if not _pyroute2():
        return 1
    from .doctor import backend_checks, backend_facts
    clients = {}
    for c in args.client or ():
        clients[ipaddress.ip_address(c).version] = c
    facts = backend_facts.gather(args.vip, args.tunnel, clients, args.decap_pins)
    return _print("backend", backend_checks.run(facts), args.json)


def cmd_balancer(args) -> int:
    if not _pyroute2():
        return 1
    from .doctor import balancer_checks, balancer_facts
    facts = balancer_facts.gather(args.config)
    return _print("balancer", balancer_checks.run(facts), args.json)


def _client(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--client {text!r} is not an IPv4 or IPv6 address") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor", help="find misconfigurations of this balancer, or of a backend (doctor backend)",
        description="Check this machine for the usual vc5 misconfigurations and print each problem with "
                    "the command that fixes it. Nothing is changed. `doctor` (or `doctor balancer`) runs on "
                    "a balancer; `doctor backend --vip VIP` on a real server. Exit status 0: nothing to fix; "
                    "1: something to fix.")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--config", default=CONFIG_PATH, metavar="FILE",
                   help="configuration file (default %(default)s)")
    p.set_defaults(func=cmd_balancer)
    sub = p.add_subparsers(dest="doctor_role", metavar="{balancer,backend}")

    b = sub.add_parser("balancer", help="check this balancer (the default)",
                       description="Check the configuration, bpffs, the XDP attachment and mode, NIC "
                                   "offloads, RX queues, flow-table memory, and the daemons' state over "
                                   "D-Bus.")
    b.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    b.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                   help=f"configuration file (default {CONFIG_PATH})")
    b.set_defaults(func=cmd_balancer)

    r = sub.add_parser("backend", help="check a real server (run it on the backend)",
                       description="Check a real server: the VIPs on lo with a host mask, ARP suppressed "
                                   "(arp_ignore/arp_announce), rp_filter, and with --tunnel that something "
                                   "terminates the tunnel and that the advertised MSS leaves room for it.")
    r.add_argument("--vip", action="append", required=True, type=_vip, metavar="ADDR",
                   help="a VIP this backend serves (repeat for more)")
    r.add_argument("--tunnel", type=_tunnel, metavar="TYPE",
                   help="the services' tunnel-type: ipip, gre, fou:PORT or gue:PORT (default: none, L2 DSR)")
    r.add_argument("--client", action="append", type=_client, metavar="ADDR",
                   help="a client address to find the route replies take (default: the default route; "
                        "one per family)")
    r.add_argument("--decap-pins", metavar="DIR",
                   help="vc5-decap's pin base (default $VC5_DECAP_PIN_BASE or /sys/fs/bpf/vc5-decap)")
    r.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    r.set_defaults(func=cmd_backend)


__all__ = ["register"]
