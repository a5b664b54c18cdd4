"""vc5ctl maintenance on|off|status: take this balancer out of the routers' ECMP and keep it out.

`on` calls org.vc5.Bgp1.Manager.SetMaintenance(true) (root and the group vc5, by bus
policy): vc5-bgpd re-advertises its routes with the GRACEFUL_SHUTDOWN community
(RFC 8326) for `graceful_shutdown` seconds, then withdraws them, and keeps
them withdrawn across restarts and reboots until `off` (docs/bgp.md,
"Maintenance"). `status` (everyone) prints the Maintenance and DataPlane
properties. `--wait` waits until the routes are withdrawn (on) or offered
again (off).

Exit status as the other subcommands (ops_cmd.py): 0 ok; 1 failed or timed out;
3 vc5-bgpd is not running; 4 permission denied; 5 no system bus.
"""

from __future__ import annotations

import asyncio
import time

from vc5.common import names, wire

from .ops_cmd import EXIT_ABSENT, EXIT_FAILED, OpError, _connect, _get_all, _run, manager_call


async def _bgp():
    bus = await _connect()
    try:
        props = await _get_all(bus, names.BGP_BUS, names.BGP_PATH, wire.BGP)
    finally:
        bus.disconnect()
    if props is None:
        raise OpError(f"vc5-bgpd is not running ({names.BGP_BUS} is not on the bus): nothing is advertised; "
                      "start it with: systemctl start vc5-bgpd", EXIT_ABSENT)
    return props


def format_maintenance(props) -> str:
    lines = [f"maintenance: {props.get('Maintenance', '?')}"]
    gate = props.get("DataPlane")
    if gate is not None:
        lines.append(f"data plane: {gate.state}" + (f" ({gate.detail})" if gate.detail else ""))
        for held in gate.held:
            lines.append(f"  not offered: {held.vip}: {held.reason}")
    advertised = props.get("Advertised", ())
    lines.append(f"advertised: {', '.join(advertised) if advertised else 'nothing'}")
    return "\n".join(lines)


async def cmd_status(args) -> int:
    print(format_maintenance(await _bgp()))
    return 0


def _switch(on: bool):
    async def run(args) -> int:
        word = "on" if on else "off"
        await manager_call(names.BGP_BUS, names.BGP_PATH, names.BGP_MANAGER_IFACE, "SetMaintenance", "b",
                           [on], what=f"maintenance {word}")
        props = await _bgp()
        if args.wait:
            deadline = time.monotonic() + args.timeout
            while not _settled(props, on):
                if time.monotonic() > deadline:
                    raise OpError(f"maintenance {word}: not settled after {args.timeout:.0f} s:\n"
                                  + format_maintenance(props), EXIT_FAILED)
                await asyncio.sleep(0.5)
                props = await _bgp()
        print(format_maintenance(props))
        return 0
    return run


def _settled(props, on: bool) -> bool:
    if on:
        return props.get("Maintenance") == "on" and not props.get("Advertised")
    return props.get("Maintenance") == "off"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "maintenance", help="take this balancer out of BGP and keep it out (on/off need root)",
        description="Maintenance on: vc5-bgpd re-advertises its routes with the GRACEFUL_SHUTDOWN community "
                    "(RFC 8326) for graceful_shutdown seconds, then withdraws them, and keeps them withdrawn "
                    "across restarts and reboots until `vc5ctl maintenance off`. Calls "
                    "org.vc5.Bgp1.Manager.SetMaintenance.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, on, help_text in (("on", True, "graceful shutdown, then withdraw; kept across reboots"),
                                ("off", False, "advertise the VIPs that are up and forwardable again")):
        s = sub.add_parser(name, help=help_text + " (needs root)", description=help_text)
        s.add_argument("--wait", action="store_true",
                       help="wait until the routes are withdrawn (on) or maintenance is off")
        s.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                       help="give up waiting after this long (default %(default)s)")
        s.set_defaults(func=_run(_switch(on)))
    st = sub.add_parser("status", help="maintenance, the data-plane gate and what is advertised",
                        description="Print org.vc5.Bgp1's Maintenance and DataPlane properties.")
    st.set_defaults(func=_run(cmd_status))
    p.set_defaults(func=_run(cmd_status))


__all__ = ["register", "format_maintenance"]
