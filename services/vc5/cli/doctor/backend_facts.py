"""Gather what a real server's configuration is: read-only (netlink, /proc/sys, bpffs, `ip fou show`).

Everything lives in the current network namespace, so `nsenter --net=...` runs this for another
namespace (/proc/sys/net is per namespace). Nothing here decides: backend_checks.py does.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from dataclasses import dataclass, field

from .tunnels import Tunnel

#: Where the replies to clients go is found with a route lookup to this address unless --client
#: names one (documentation prefixes: a default route carries them like any client's).
DEFAULT_CLIENT = {4: "198.51.100.1", 6: "2001:db8:ffff::1"}
SYSCTL_DIR = "/proc/sys/net/ipv4/conf"
SYSCTLS = ("arp_ignore", "arp_announce", "rp_filter")
IFF_UP, IFF_LOOPBACK, IFF_NOARP = 0x1, 0x8, 0x80
RTAX_MTU, RTAX_ADVMSS = 2, 8


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    kind: str = ""          # IFLA_INFO_KIND: dummy, ipip, gre, sit, ip6tnl, veth, ... ("" = none)
    mtu: int = 1500
    up: bool = True
    loopback: bool = False
    noarp: bool = False


@dataclass(frozen=True)
class Address:
    ifname: str
    address: str
    prefixlen: int

    @property
    def interface(self):
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}")


@dataclass(frozen=True)
class Route:
    """The route replies to clients take (family 4 or 6)."""
    family: int
    dst: str                # "default" or "PREFIX/LEN": the entry of the main table that matched
    dev: str
    gateway: str = ""
    mtu: int = 0            # RTAX_MTU; 0 = the device's
    advmss: int = 0         # RTAX_ADVMSS; 0 = derived from the MTU
    metric: int = 0         # RTA_PRIORITY: part of the route's identity for `ip route replace`
    src: str = ""           # RTA_PREFSRC


@dataclass(frozen=True)
class DecapState:
    """vc5-decap on one interface, as its pins and the interface say (vc5.decap.ops.status)."""
    ifname: str
    attached: bool
    types: tuple = ()
    fou_port: int = 0
    gue_port: int = 0
    vips: tuple = ()        # networks it decapsulates for, as strings
    problems: tuple = ()


@dataclass(frozen=True)
class FouPort:
    port: int
    gue: bool
    ipproto: int = 0        # fou: 4 or 41
    family: int = 4         # outer family (`-6` -> 6)


@dataclass
class BackendFacts:
    vips: tuple                                   # the VIPs asked about, as strings
    tunnel: Tunnel | None = None
    links: dict = field(default_factory=dict)     # name -> Link
    addresses: tuple = ()                         # Address
    sysctls: dict = field(default_factory=dict)   # (device, name) -> int, device "all" included
    routes: dict = field(default_factory=dict)    # family -> Route | None (no route to clients)
    clients: dict = field(default_factory=dict)   # family -> the address routed to
    decap: tuple = ()                             # DecapState
    fou: tuple = ()                               # FouPort (kernel FOU/GUE receive ports)
    errors: tuple = ()                            # what could not be read, in words


def read_sysctls(base: str = SYSCTL_DIR) -> dict:
    out = {}
    try:
        devices = os.listdir(base)
    except OSError:
        return out
    for dev in devices:
        for name in SYSCTLS:
            try:
                with open(os.path.join(base, dev, name)) as f:
                    out[(dev, name)] = int(f.read().strip())
            except (OSError, ValueError):
                pass
    return out


def _links(ipr) -> dict:
    out = {}
    for msg in ipr.get_links():
        info = msg.get_attr("IFLA_LINKINFO")
        kind = (info.get_attr("IFLA_INFO_KIND") if info is not None else None) or ""
        flags = msg["flags"]
        name = msg.get_attr("IFLA_IFNAME")
        out[name] = Link(name, msg["index"], kind, msg.get_attr("IFLA_MTU") or 0, bool(flags & IFF_UP),
                         bool(flags & IFF_LOOPBACK), bool(flags & IFF_NOARP))
    return out


def _addresses(ipr, names: dict) -> tuple:
    out = []
    for msg in ipr.get_addr():
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if addr:
            out.append(Address(names.get(msg["index"], str(msg["index"])), addr.split("%")[0],
                               msg["prefixlen"]))
    return tuple(out)


def _metrics(msg) -> tuple:
    metrics = msg.get_attr("RTA_METRICS")
    if metrics is None:
        return 0, 0
    return metrics.get_attr("RTAX_MTU") or 0, metrics.get_attr("RTAX_ADVMSS") or 0


def _route(ipr, family: int, client: str, names: dict) -> Route | None:
    """The main-table entry that carries replies to `client` (longest prefix, the lookup's device)."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    try:
        [got] = ipr.route("get", dst=client, family=af)[:1]
    except Exception:
        return None             # no route to clients at all
    oif = got.get_attr("RTA_OIF")
    target = ipaddress.ip_address(client)
    best = None
    for msg in ipr.get_routes(family=af, table=254):
        dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == 4 else "::")
        net = ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)
        longer = best is None or net.prefixlen > best[0].prefixlen
        if target in net and msg.get_attr("RTA_OIF") == oif and longer:
            best = (net, msg)
    gateway = got.get_attr("RTA_GATEWAY") or ""
    if best is None:            # policy routing or another table: report the lookup as is
        return Route(family, "default", names.get(oif, str(oif)), gateway)
    net, msg = best
    mtu, advmss = _metrics(msg)
    return Route(family, "default" if net.prefixlen == 0 else str(net), names.get(oif, str(oif)),
                 msg.get_attr("RTA_GATEWAY") or "", mtu, advmss, msg.get_attr("RTA_PRIORITY") or 0,
                 msg.get_attr("RTA_PREFSRC") or "")


def read_decap(base: str, links: dict) -> tuple:
    """vc5-decap's state on every interface of this namespace that has a pin directory under `base`."""
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return ()
    from vc5.decap import ops
    out = []
    for ifname in entries:
        if ifname not in links:
            continue            # pins of an interface of another namespace (same name elsewhere)
        try:
            st = ops.status(ifname, base)
        except Exception as e:
            out.append(DecapState(ifname, False, problems=(str(e),)))
            continue
        acc = st.accept
        out.append(DecapState(ifname, st.attached, tuple(acc.types) if acc else (),
                              acc.fou_port if acc else 0, acc.gue_port if acc else 0,
                              tuple(str(v) for v in st.vips), tuple(st.problems)))
    return tuple(out)


def parse_fou(text: str) -> tuple:
    """`ip fou show` lines: "port 5555 ipproto 4", "port 6080 gue", "... -6"."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if "port" not in words:
            continue
        try:
            port = int(words[words.index("port") + 1])
            ipproto = int(words[words.index("ipproto") + 1]) if "ipproto" in words else 0
        except (ValueError, IndexError):
            continue
        out.append(FouPort(port, "gue" in words, ipproto, 6 if "-6" in words else 4))
    return tuple(out)


def read_fou() -> tuple:
    """Kernel FOU/GUE ports; none when the fou module is absent (then `ip fou show` fails)."""
    try:
        p = subprocess.run(["ip", "fou", "show"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_fou(p.stdout) if p.returncode == 0 else ()


def gather(vips, tunnel: Tunnel | None, clients: dict | None = None, decap_base: str | None = None,
           sysctl_dir: str = SYSCTL_DIR) -> BackendFacts:
    from pyroute2 import IPRoute
    from vc5.decap import maps
    facts = BackendFacts(tuple(str(v) for v in vips), tunnel)
    facts.clients = dict(DEFAULT_CLIENT, **(clients or {}))
    with IPRoute() as ipr:
        facts.links = _links(ipr)
        names = {link.index: link.name for link in facts.links.values()}
        facts.addresses = _addresses(ipr, names)
        for family in (4, 6):
            facts.routes[family] = _route(ipr, family, facts.clients[family], names)
    facts.sysctls = read_sysctls(sysctl_dir)
    if tunnel is not None:
        base = decap_base or os.environ.get("VC5_DECAP_PIN_BASE", maps.PIN_BASE)
        facts.decap = read_decap(base, facts.links)
        if tunnel.kind in ("fou", "gue"):
            facts.fou = read_fou()
    return facts
