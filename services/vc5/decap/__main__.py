"""`vc5-decap attach|detach|status IFACE`: the command line.

Exit status: 0 done; 1 the operation failed (the message names the
interface), or `status` found vc5-decap not attached/working; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import maps
from .options import UsageError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vc5-decap", description="Decapsulate vc5's IPIP/GRE/FOU/GUE tunnels to local VIPs with XDP "
        "(see docs/real-servers.md).")
    p.add_argument("--pin-base", default=os.environ.get("VC5_DECAP_PIN_BASE", maps.PIN_BASE),
                   help="bpffs directory holding one directory per interface (default %(default)s)")
    sub = p.add_subparsers(dest="command", required=True, metavar="attach|detach|status")
    a = sub.add_parser("attach", help="attach to IFACE, or refresh its types, ports and VIPs")
    a.add_argument("iface")
    a.add_argument("--types", help="comma list of ipip,gre,fou,gue (default: ipip,gre, plus fou/gue "
                   "when their port is given)")
    a.add_argument("--fou-port", type=str, help="UDP port of FOU (the service's tunnel-port)")
    a.add_argument("--gue-port", type=str, help="UDP port of GUE (the service's tunnel-port)")
    a.add_argument("--vip", nargs="+", action="extend", default=[], metavar="ADDR[/LEN]",
                   help="the VIPs (default: every address configured on lo, read now)")
    a.add_argument("--mode", choices=("auto", "native", "generic"), default="auto",
                   help="XDP mode (default auto: native, else generic)")
    a.add_argument("--no-udp-checksum", action="store_true",
                   help="do not verify non-zero outer UDP checksums of FOU/GUE")
    a.add_argument("--force", action="store_true", help="replace another XDP program on IFACE")
    d = sub.add_parser("detach", help="detach from IFACE and remove the pinned objects")
    d.add_argument("iface")
    s = sub.add_parser("status", help="counters, mode, accepted types and VIPs")
    s.add_argument("iface")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _attach(args) -> int:
    from . import ops, options

    acc = options.accept(args.types, args.fou_port, args.gue_port, not args.no_udp_checksum)
    if args.vip:
        vips = options.parse_vips(args.vip)
    else:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            vips = options.lo_networks(options.read_lo_addresses(ipr))
        if not vips:
            print(f"vc5-decap: {args.iface}: warning: no VIP on lo and none given with --vip: "
                  "nothing will be decapsulated", file=sys.stderr)
    for line in ops.attach(args.iface, acc, vips, args.mode, args.pin_base, args.force):
        print(line)
    return EXIT_OK


def _status_dict(st) -> dict:
    acc = st.accept
    return {"interface": st.ifname, "pin_dir": st.pin_dir, "attached": st.attached, "mode": st.mode,
            "prog_id": st.prog_id, "other_prog_id": st.other_prog_id,
            "types": list(acc.types) if acc else [], "fou_port": acc.fou_port if acc else 0,
            "gue_port": acc.gue_port if acc else 0,
            "check_udp_checksum": acc.check_udp_csum if acc else None,
            "vips": [str(n) for n in st.vips], "counters": st.counters, "problems": st.problems}


def _status(args) -> int:
    from . import ops

    st = ops.status(args.iface, args.pin_base)
    d = _status_dict(st)
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        state = f"attached ({st.mode}, program {st.prog_id})" if st.attached else "NOT attached"
        print(f"{st.ifname}: {state}; pins {st.pin_dir}")
        print(f"  types: {','.join(d['types']) or '-'}  fou port: {d['fou_port'] or '-'}  "
              f"gue port: {d['gue_port'] or '-'}  outer UDP checksum: "
              f"{'verified' if d['check_udp_checksum'] else 'not verified'}")
        print(f"  vips: {' '.join(d['vips']) or '(none)'}")
        for name, value in st.counters.items():
            print(f"  {name:<22} {value}")
        for problem in st.problems:
            print(f"  problem: {problem}")
    return EXIT_OK if st.attached and not st.problems else EXIT_FAIL


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .ops import DecapError

    try:
        if args.command == "attach":
            return _attach(args)
        if args.command == "detach":
            from . import ops

            for line in ops.detach(args.iface, args.pin_base):
                print(line)
            return EXIT_OK
        return _status(args)
    except UsageError as e:
        print(f"vc5-decap: {args.iface}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (DecapError, OSError) as e:
        msg = str(e)
        print(f"vc5-decap: {msg if msg.startswith(args.iface + ':') else args.iface + ': ' + msg}",
              file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
