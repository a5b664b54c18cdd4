"""vc5ctl status|services|backends|bgp|drain|undrain|reload|completion: operate vc5 over D-Bus.

Reading commands use the read-only interfaces (org.vc5.Health1, org.vc5.Bgp1,
org.vc5.XdpLoader1) exactly as vc5-webd does, through the same Snapshot and
renderer (vc5.client), so `vc5ctl status --json` is the console's /status.json
(docs/observability.md, "vc5ctl"). Mutating
commands call org.vc5.Health1.Manager (Drain, Undrain, Reload) and, for
`reload --bgp`, org.vc5.Bgp1.Manager.Reload; the bus policy lets only root and the group vc5 do
that, and a refusal is reported as "permission denied" with what to do.

Exit status: 0 ok; 1 the operation failed or matched nothing; 2 usage;
3 a daemon needed is not running; 4 permission denied; 5 no system bus.
"""

from __future__ import annotations

import asyncio
import json
import sys

from vc5.client import status as render_status
from vc5.client.snapshot import BgpView, HealthView, XdpView, take
from vc5.common import bus as vbus
from vc5.common import names, wire

EXIT_FAILED, EXIT_ABSENT, EXIT_DENIED, EXIT_NOBUS = 1, 3, 4, 5
UNIT_OF = {names.HEALTH_BUS: "vc5-healthd", names.BGP_BUS: "vc5-bgpd", names.XDP_LOADER_BUS: "vc5-xdp-loader"}
POLICY_DIR = "/usr/share/dbus-1/system.d"


class OpError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- D-Bus plumbing

async def _connect():
    try:
        return await vbus.connect_system_bus()
    except Exception as e:
        raise OpError(f"cannot connect to the system bus: {e}", EXIT_NOBUS) from e


def _op_error(error: vbus.BusError, bus_name: str, interface: str, member: str, what: str = "") -> OpError:
    """What vc5ctl says (and exits with) for an error reply."""
    text = error.text if isinstance(error.text, str) else error.type
    unit = UNIT_OF.get(bus_name, bus_name)
    if error.type in names.BUS_ERRORS_ABSENT:
        return OpError(f"{unit} is not running ({bus_name} is not on the bus); "
                       f"start it with: systemctl start {unit}", EXIT_ABSENT)
    if error.type in names.BUS_ERRORS_DENIED:
        return OpError(f"permission denied: {what or member} calls {interface}.{member}, which the bus "
                       f"policy ({POLICY_DIR}/{bus_name}.conf) allows only to root and the members of "
                       f"group vc5; run it as root (e.g. sudo vc5ctl {what or member.lower()}) or join "
                       "the group (usermod -aG vc5 USER)", EXIT_DENIED)
    return OpError(f"{unit}: {interface}.{member} failed: {error.type}: {text}")


async def _call(bus, bus_name, path, interface, member, signature="", body=None, what="", reply=None):
    try:
        return await vbus.call(bus, bus_name, path, interface, member, signature, body or (), reply=reply)
    except vbus.BusError as e:
        raise _op_error(e, bus_name, interface, member, what) from e


async def _get_all(bus, bus_name, path, schema):
    """Typed properties of a read interface, or None if the daemon is not on the bus."""
    try:
        return await vbus.get_all(bus, bus_name, path, schema)
    except vbus.BusError as e:
        error = _op_error(e, bus_name, vbus.PROPERTIES_IFACE, "GetAll")
        if error.code == EXIT_ABSENT:
            return None
        raise error from e


async def read_snapshot(rates: bool = True, interval: float = 1.0):
    """One Snapshot of the three daemons (rates from two counter samples `interval` apart)."""
    bus = await _connect()
    try:
        h = await _get_all(bus, names.HEALTH_BUS, names.HEALTH_PATH, wire.HEALTH)
        b = await _get_all(bus, names.BGP_BUS, names.BGP_PATH, wire.BGP)
        x = await _get_all(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, wire.XDP_LOADER)
        health = HealthView.from_properties(h) if h is not None else None
        bgp = BgpView.from_properties(b) if b is not None else None

        async def counters():
            if x is None:
                return None
            try:
                value = await _call(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, names.XDP_LOADER_IFACE,
                                    "GetCounters", reply=wire.Counters)
            except OpError:
                value = None
            return XdpView.from_properties(value, x)

        first = await counters()
        previous = None
        if rates and first is not None:
            _, previous = take(health, bgp, first)
            await asyncio.sleep(interval)
            first = await counters()
        snap, _ = take(health, bgp, first, previous=previous)
        return snap
    finally:
        bus.disconnect()


async def manager_call(bus_name, path, interface, member, signature="", body=None, what=""):
    bus = await _connect()
    try:
        return await _call(bus, bus_name, path, interface, member, signature, body, what)
    finally:
        bus.disconnect()


# ---------------------------------------------------------------- formatting

def dhms(seconds: int) -> str:
    s = max(0, int(seconds))
    d, h, m, x = s // 86400, s % 86400 // 3600, s % 3600 // 60, s % 60
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m}m"
    if m:
        return f"{m}m{x}s"
    return f"{x}s"


def si(n: float, unit: str) -> str:
    n = float(n or 0)
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            return (f"{n:.0f}" if prefix == "" else f"{n:.3g}") + f" {prefix}{unit}"
        n /= 1000
    return f"{n} {unit}"


def table(headers, rows) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def backend_state(d: dict) -> str:
    if d["disabled"]:
        return "disabled"
    if d.get("drained"):
        return "drained"
    return "up" if d["up"] else "down"


def absent_lines(doc) -> list:
    out = []
    for bus, present in doc.get("daemons", {}).items():
        if not present:
            out.append(f"{UNIT_OF[bus]} is not running ({bus} is not on the bus)")
    return out


def format_status(doc: dict) -> str:
    s = doc["summary"]
    parts = [
        f"traffic {si(s['ingress_octets_per_second'] * 8, 'bit/s')}, "
        f"{si(s['ingress_packets_per_second'], 'pkt/s')}, {si(s['flows_per_second'], 'flow/s')} new, "
        f"{s['current']} active, latency {s['latency_ns']} ns, uptime {dhms(s['uptime'])}",
    ]
    parts += [f"warning: {line}" for line in absent_lines(doc)]
    if doc["bgp"]:
        parts.append("")
        parts.append(format_bgp(doc))
    if doc["vip"]:
        parts.append("")
        rows = [(v["vip"], "up" if v["up"] else "down", dhms(v["for"]),
                 si(v["stats"]["ingress_octets_per_second"] * 8, "bit/s"),
                 si(v["stats"]["ingress_packets_per_second"], "pkt/s"),
                 si(v["stats"]["flows_per_second"], "flow/s"), v["stats"]["current"],
                 "yes" if v["vip"] in doc["rib"] else "no")
                for v in sorted(doc["vip"], key=lambda v: v["up"])]
        headers = ["VIP", "STATE", "FOR", "TRAFFIC", "PACKETS", "FLOWS", "ACTIVE", "ADVERTISED"]
        parts.append(table(headers, rows))
    if doc["services"]:
        parts.append("")
        parts.append(format_backends(doc, None, with_traffic=True))
    return "\n".join(parts)


def format_services(doc: dict) -> str:
    rows = []
    for vip, services in doc["services"].items():
        for s in services:
            key = f"{s['address']}:{s['port']}:{s['protocol']}"
            rows.append((key, s["name"], "up" if s["up"] else "down",
                         dhms(s["for"]), f"{s['available']}/{len(s['destinations'])}", s["required"],
                         si(s["stats"]["ingress_octets_per_second"] * 8, "bit/s"), s["stats"]["current"],
                         s["description"]))
    out = table(["SERVICE", "NAME", "STATE", "FOR", "AVAILABLE", "NEED", "TRAFFIC", "ACTIVE", "DESCRIPTION"],
                rows)
    return "\n".join([out] + [f"warning: {line}" for line in absent_lines(doc)])


def format_backends(doc: dict, service: str | None, with_traffic: bool = False) -> str:
    rows = []
    for vip, services in doc["services"].items():
        for s in services:
            key = f"{s['address']}:{s['port']}:{s['protocol']}"
            if service and service != key:
                continue
            for d in s["destinations"]:
                row = [key, f"{d['address']}:{d['port']}", backend_state(d), dhms(d["for"]), f"{d['took']}ms"]
                if with_traffic:
                    row += [si(d["stats"]["ingress_octets_per_second"] * 8, "bit/s"), d["stats"]["current"]]
                row.append(d["diagnostic"])
                rows.append(row)
    headers = ["SERVICE", "BACKEND", "STATE", "FOR", "TOOK"]
    if with_traffic:
        headers += ["TRAFFIC", "ACTIVE"]
    return table(headers + ["LAST CHECK"], rows)


def format_bgp(doc: dict) -> str:
    rows = [(addr, p["state"], dhms(p["duration_s"]), p["remote_asn"] or "-", len(p["adj_rib_out"]),
             p["advertised_routes"], p["withdrawn_routes"], p.get("bfd") or "-", p["last_error"] or "-")
            for addr, p in doc["bgp"].items()]
    out = table(["PEER", "STATE", "FOR", "AS", "ROUTES", "ADVERTISED", "WITHDRAWN", "BFD", "LAST ERROR"],
                rows)
    return out + "\nrib: " + (" ".join(doc["rib"]) or "(nothing advertised)")


# ---------------------------------------------------------------- commands

def _run(coro_fn):
    """Run a command coroutine; map OpError to its message and exit status."""
    def run(args) -> int:
        try:
            return asyncio.run(coro_fn(args)) or 0
        except OpError as e:
            print(f"vc5ctl: {e}", file=sys.stderr)
            return e.code
    return run


async def _status_doc(args):
    snap = await read_snapshot(rates=not getattr(args, "quick", False))
    return render_status.status(snap)


async def cmd_status(args) -> int:
    snap = await read_snapshot(rates=not getattr(args, "quick", False))
    doc = render_status.status(snap)
    if args.json:
        print(json.dumps(doc, indent=2))     # exactly /status.json: no flow tables there
    else:
        tables = format_flow_tables(snap.xdp.flow_tables if snap.xdp else ())
        print(format_status(doc) + (f"\n{tables}" if tables else ""))
    return 0


def format_flow_tables(tables) -> str:
    """One line: each flow table's entries and memory (org.vc5.XdpLoader1.FlowTables)."""
    if not tables:
        return ""
    each = ", ".join(f"{t.name} {t.entries:,} x {t.bytes_per_entry} B" for t in tables)
    return f"flow tables: {each}; {sum(t.bytes for t in tables) / 2**20:.0f} MiB in all"


async def cmd_services(args) -> int:
    doc = await _status_doc(args)
    if not doc["daemons"][names.HEALTH_BUS]:
        raise OpError(f"vc5-healthd is not running ({names.HEALTH_BUS} is not on the bus)", EXIT_ABSENT)
    print(json.dumps(doc["services"], indent=2) if args.json else format_services(doc))
    return 0


async def cmd_backends(args) -> int:
    doc = await _status_doc(args)
    if not doc["daemons"][names.HEALTH_BUS]:
        raise OpError(f"vc5-healthd is not running ({names.HEALTH_BUS} is not on the bus)", EXIT_ABSENT)
    if args.service and not any(f"{s['address']}:{s['port']}:{s['protocol']}" == args.service
                                for ss in doc["services"].values() for s in ss):
        raise OpError(f"no service {args.service!r} (expected VIP:PORT:PROTOCOL, e.g. 192.0.2.1:80:tcp)")
    if args.json:
        print(json.dumps({k: [s for s in v if not args.service
                              or f"{s['address']}:{s['port']}:{s['protocol']}" == args.service]
                          for k, v in doc["services"].items()}, indent=2))
    else:
        print(format_backends(doc, args.service))
    return 0


async def cmd_bgp(args) -> int:
    doc = await _status_doc(args)
    if not doc["daemons"][names.BGP_BUS]:
        raise OpError(f"vc5-bgpd is not running ({names.BGP_BUS} is not on the bus)", EXIT_ABSENT)
    print(json.dumps({"bgp": doc["bgp"], "rib": doc["rib"]}, indent=2) if args.json else format_bgp(doc))
    return 0


def _drain(member: str):
    async def run(args) -> int:
        what = f"{member.lower()} {args.backend}" + (f" --service {args.service}" if args.service else "")
        [matched] = await manager_call(names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_MANAGER_IFACE,
                                       member, "ss", [args.service or "", args.backend], what)
        where = f"service {args.service}" if args.service else "every service"
        if matched == 0:
            raise OpError(f"no backend {args.backend} in {where} (BACKEND is IP or IP:PORT, "
                          "as `vc5ctl backends` shows)")
        verb = "drained" if member == "Drain" else "undrained"
        print(f"{verb} {args.backend}: {matched} service/backend pair{'s' if matched != 1 else ''}")
        return 0
    return run


async def cmd_reload(args) -> int:
    [generation] = await manager_call(names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_MANAGER_IFACE,
                                      "Reload", what="reload")
    print(f"vc5-healthd: configuration generation {generation}")
    if args.bgp:
        [generation] = await manager_call(names.BGP_BUS, names.BGP_PATH, names.BGP_MANAGER_IFACE, "Reload",
                                          what="reload --bgp")
        print(f"vc5-bgpd: configuration generation {generation}")
    return 0


def cmd_completion(args) -> int:
    from vc5.cli.completion import bash_script
    print(bash_script())
    return 0


def register(subparsers) -> None:
    def reader(name, help_text, func, description):
        p = subparsers.add_parser(name, help=help_text, description=description)
        p.add_argument("--json", action="store_true", help="print JSON (vc5's /status.json shapes)")
        p.add_argument("--quick", action="store_true",
                       help="do not wait 1 s for a second counter sample (rates show as 0)")
        p.set_defaults(func=_run(func))
        return p

    reader("status", "what the console shows: traffic, BGP peers, VIPs, services and backends", cmd_status,
           "Show what the console shows, as tables (--json: exactly /status.json).")
    reader("services", "services with their state and available/needed backends", cmd_services,
           "List services (VIP:PORT:PROTOCOL) with state, available/needed backends and traffic.")
    b = reader("backends", "backends with state (up/down/disabled/drained) and last check", cmd_backends,
               "List backends with their state and the diagnostic of their last check.")
    b.add_argument("service", nargs="?", metavar="SERVICE", help="only this service (VIP:PORT:PROTOCOL)")
    reader("bgp", "BGP peers and the advertised VIPs", cmd_bgp, "Show BGP sessions and the RIB.")

    for name, member, help_text, description in (
            ("drain", "Drain", "stop new flows to a backend (needs root)",
             "Stop new flows to a backend; established flows stay pinned to it."),
            ("undrain", "Undrain", "let a drained backend take new flows again (needs root)",
             "Let a drained backend take new flows again (once it passes its checks).")):
        p = subparsers.add_parser(name, help=help_text,
                                  description=description + " Calls org.vc5.Health1.Manager." + member + ".")
        p.add_argument("backend", metavar="BACKEND", help="IP or IP:PORT")
        p.add_argument("--service", metavar="VIP:PORT:PROTOCOL", help="only in this service (default: all)")
        p.set_defaults(func=_run(_drain(member)))

    r = subparsers.add_parser("reload", help="re-read the configuration (needs root)",
                              description="Re-read the configuration file in vc5-healthd (as systemctl "
                                          "reload vc5-healthd); an invalid file changes nothing and every "
                                          "problem is printed.")
    r.add_argument("--bgp", action="store_true", help="reload vc5-bgpd too")
    r.set_defaults(func=_run(cmd_reload))

    c = subparsers.add_parser("completion", help="print a shell completion script",
                              description="Print a completion script: eval \"$(vc5ctl completion bash)\", or "
                                          "save it under /usr/share/bash-completion/completions/vc5ctl.")
    c.add_argument("shell", choices=["bash"])
    c.set_defaults(func=cmd_completion)


__all__ = ["register", "read_snapshot", "format_status", "OpError"]
