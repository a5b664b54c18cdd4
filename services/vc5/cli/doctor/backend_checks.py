"""The checks of a real server (docs/doctor.md, "Backend"): pure functions of BackendFacts.

Kernel semantics relied on (Documentation/networking/ip-sysctl.rst):
  * arp_ignore, arp_announce and rp_filter: the value used for an interface is the maximum of
    conf/all and conf/<interface>; so `all` alone can make every interface right (or wrong);
  * arp_ignore >= 1: answer ARP only for addresses configured on the receiving interface, so a
    VIP on lo (or a dummy device) is never answered on the LAN; arp_announce = 2: never use a
    VIP as the source of our own ARP requests;
  * rp_filter = 1 (strict, RFC 3704 strict reverse path): drop a packet whose source is not
    routed back out of the interface it arrived on. A kernel tunnel device (tunl0, gre0) is
    never that interface for a client, so strict mode drops every decapsulated packet; with
    vc5-decap the packet arrives on the NIC and passes when replies leave by the same NIC.
"""

from __future__ import annotations

import ipaddress

from . import tunnels
from .backend_facts import BackendFacts
from .findings import fail, ok, warn

TUNNEL_KINDS = {"ipip": ("ipip", "sit", "ip6tnl"), "gre": ("gre", "ip6gre"),
                "fou": ("ipip", "sit", "ip6tnl"), "gue": ("ipip", "sit", "ip6tnl")}
KERNEL_FIX = {"ipip": "modprobe ipip && ip link set tunl0 up",
              "gre": "modprobe ip_gre && ip link set gre0 up",
              "fou": "modprobe fou ipip && ip fou add port {port} ipproto 4 && ip link set tunl0 up",
              "gue": "modprobe fou ipip && ip fou add port {port} gue && ip link set tunl0 up"}


def sysctl_key(dev: str, name: str) -> str:
    return f"net.ipv4.conf.{dev.replace('.', '/')}.{name}"


def effective(facts: BackendFacts, dev: str, name: str) -> int:
    """max(conf/all, conf/dev), as the kernel applies arp_ignore, arp_announce and rp_filter."""
    return max(facts.sysctls.get(("all", name), 0), facts.sysctls.get((dev, name), 0))


def _family(vip: str) -> int:
    return ipaddress.ip_address(vip).version


def _host(vip: str) -> int:
    return 32 if _family(vip) == 4 else 128


def _reply_dev(facts: BackendFacts, family: int = 4) -> str:
    route = facts.routes.get(family)
    return route.dev if route is not None else "IFACE"


def check_vip(facts: BackendFacts, vip: str) -> list:
    """The VIP is a local address (else the kernel drops what is sent to it), on lo or a dummy
    device (else a NIC answers ARP/ND for it), with a host mask (else a whole prefix is local)."""
    ip, host = ipaddress.ip_address(vip), _host(vip)
    add = f"ip addr add {vip}/{host} dev lo"
    for a in facts.addresses:
        if a.interface.ip != ip:
            continue
        link = facts.links.get(a.ifname)
        here = f"{vip}/{a.prefixlen} dev {a.ifname}"
        if link is None or not (link.loopback or link.kind == "dummy"):
            return [fail("vip", vip, f"configured on {a.ifname}, a network interface: it answers ARP/ND "
                         "for the VIP there, taking it from the balancer", f"ip addr del {here} && {add}")]
        if a.prefixlen != host:
            return [fail("vip", vip, f"on {a.ifname} as {a.interface}: every address of "
                         f"{a.interface.network} becomes local", f"ip addr del {here} && {add}")]
        if not link.up:
            return [fail("vip", vip, f"on {a.ifname}, which is down", f"ip link set {a.ifname} up")]
        return [ok("vip", vip, f"on {a.ifname} as {vip}/{host}")]
    for a in facts.addresses:
        link = facts.links.get(a.ifname)
        if link is not None and link.loopback and ip.version == 4 and ip in a.interface.network:
            return [warn("vip", vip, f"local only through {a.interface} on {a.ifname}; a host address "
                         "states the intent and keeps working when that prefix goes", add)]
    return [fail("vip", vip, "not configured on this host: the kernel drops every packet sent to it", add)]


def _arp_interfaces(facts: BackendFacts) -> list:
    return sorted(n for n, link in facts.links.items() if link.up and not link.loopback and not link.noarp)


def check_arp(facts: BackendFacts) -> list:
    """No interface answers ARP for a VIP (arp_ignore >= 1) nor uses one as ARP source (arp_announce 2)."""
    if not any(_family(v) == 4 for v in facts.vips):
        return [ok("arp", "-", "no IPv4 VIP (IPv6 needs nothing: an address on lo is not answered by ND)")]
    out = []
    for name, want, what in (("arp_ignore", 1, "answers ARP requests for the VIPs"),
                             ("arp_announce", 2, "may use a VIP as the source address of its ARP requests")):
        bad = [d for d in _arp_interfaces(facts) if effective(facts, d, name) < want]
        if bad:
            value = effective(facts, bad[0], name)
            out.append(fail("arp", ",".join(bad), f"{name} is {value} (the maximum of all and the "
                            f"interface) on {', '.join(bad)}: it {what}",
                            f"sysctl -w {sysctl_key('all', name)}={want}"))
        else:
            out.append(ok("arp", name, f"{name} >= {want} on every interface"))
    return out


def decap_for(facts: BackendFacts) -> list:
    """vc5-decap attachments that take this tunnel type (and port)."""
    t = facts.tunnel
    return [d for d in facts.decap if d.attached and t.kind in d.types
            and (t.kind != "fou" or d.fou_port == t.port) and (t.kind != "gue" or d.gue_port == t.port)]


def _kernel_devices(facts: BackendFacts) -> list:
    kinds = TUNNEL_KINDS[facts.tunnel.kind]
    return sorted(n for n, link in facts.links.items() if link.kind in kinds and link.up)


def _kernel_terminates(facts: BackendFacts) -> bool:
    t = facts.tunnel
    if not _kernel_devices(facts):
        return False
    if t.kind in ("fou", "gue"):
        return any(p.port == t.port and p.gue == (t.kind == "gue") for p in facts.fou)
    return True


def check_rp_filter(facts: BackendFacts) -> list:
    """Strict rp_filter where decapsulated IPv4 packets arrive drops them (see the module docstring)."""
    if facts.tunnel is None or not any(_family(v) == 4 for v in facts.vips):
        return []
    reply = _reply_dev(facts)
    arrivals = [(d.ifname, d.ifname != reply) for d in decap_for(facts)]
    if _kernel_terminates(facts):
        arrivals += [(dev, True) for dev in _kernel_devices(facts)]
    out = []
    for dev, elsewhere in arrivals:
        value = effective(facts, dev, "rp_filter")
        if value == 1 and elsewhere:
            fixes = [f"sysctl -w {sysctl_key(d, 'rp_filter')}=2" for d in ("all", dev)
                     if facts.sysctls.get((d, "rp_filter"), 0) == 1]
            out.append(fail("rp_filter", dev, f"strict (1) on {dev}, where decapsulated packets arrive, "
                            f"while replies to clients leave by {reply}: every packet to a VIP is dropped",
                            " && ".join(fixes)))
        else:
            mode = {0: "off", 1: "strict", 2: "loose"}.get(value, str(value))
            out.append(ok("rp_filter", dev, f"{mode} ({value}) on {dev}, where decapsulated packets arrive"))
    return out


def _decap_attach(t: tunnels.Tunnel, dev: str) -> str:
    ports = f" --{t.kind}-port {t.port}" if t.port else ""
    return f"vc5-decap attach {dev} --types {t.kind}{ports}"


def _decap_vips(facts: BackendFacts, d) -> list:
    """Findings for the VIPs a matching vc5-decap attachment does not decapsulate for."""
    nets = [ipaddress.ip_network(v, strict=False) for v in d.vips]
    missing = [v for v in facts.vips if not any(ipaddress.ip_address(v) in n for n in nets)]
    if missing:
        return [fail("tunnel", d.ifname, f"vc5-decap on {d.ifname} takes {facts.tunnel} but not for "
                     f"{', '.join(missing)} (it reads the VIPs on lo when attached)",
                     f"systemctl reload vc5-decap@{d.ifname} (or run `vc5-decap attach {d.ifname} ...` "
                     "again)")]
    return [ok("tunnel", d.ifname, f"vc5-decap on {d.ifname} terminates {facts.tunnel} for every VIP")]


def check_tunnel(facts: BackendFacts) -> list:
    """Something takes the outer header off: vc5-decap attached for this type/port, or the kernel's
    tunnel device (and FOU/GUE port) up."""
    t = facts.tunnel
    if t is None:
        return []
    out = []
    for d in decap_for(facts):
        out += _decap_vips(facts, d)
    if not out and _kernel_terminates(facts):
        devices = ", ".join(_kernel_devices(facts))
        out.append(ok("tunnel", devices, f"the kernel terminates {t} ({devices} up"
                      + (f", {t.kind} port {t.port})" if t.port else ")")))
    if out:
        return out
    notes = [f"vc5-decap on {d.ifname}: {'; '.join(d.problems) or 'accepts ' + ','.join(d.types)}"
             + (f" (fou port {d.fou_port})" if d.fou_port else "")
             + (f" (gue port {d.gue_port})" if d.gue_port else "") for d in facts.decap]
    dev = _reply_dev(facts)
    return [fail("tunnel", str(t), f"nothing terminates {t} here: no vc5-decap attachment and no kernel "
                 f"tunnel device takes it" + (f" ({'; '.join(notes)})" if notes else ""),
                 f"{_decap_attach(t, dev)} (or: {KERNEL_FIX[t.kind].format(port=t.port)})")]


def _arrival(facts: BackendFacts) -> str:
    """The interface the encapsulated packets come in on: vc5-decap's, else the one replies leave by."""
    matching = decap_for(facts)
    return matching[0].ifname if matching else _reply_dev(facts)


def _outer_family(facts: BackendFacts, dev: str) -> int:
    mine = [a for a in facts.addresses if a.ifname == dev]
    return 4 if not mine or any(a.interface.version == 4 for a in mine) else 6


def _route_spec(route) -> str:
    """`ip route replace` of the same route (dst, metric: its identity), keeping its src and mtu."""
    via = f" via {route.gateway}" if route.gateway else ""
    kept = (("src", route.src), ("metric", route.metric), ("mtu", route.mtu))
    extra = "".join(f" {k} {v}" for k, v in kept if v)
    return f"ip{' -6' if route.family == 6 else ''} route replace {route.dst}{via} dev {route.dev}{extra}"


def check_mtu(facts: BackendFacts) -> list:
    """The MSS our SYN-ACKs advertise must leave room for the tunnel (docs/real-servers.md §5): the
    balancer does not fragment, so a full-size segment that no longer fits is answered with ICMP."""
    t = facts.tunnel
    if t is None:
        return []
    arrival = _arrival(facts)
    link = facts.links.get(arrival)
    path_mtu = link.mtu if link is not None else 1500
    outer = _outer_family(facts, arrival)
    out = []
    for family in sorted({_family(v) for v in facts.vips}):
        route = facts.routes.get(family)
        if route is None:
            out.append(fail("route", f"IPv{family}", f"no route to clients ({facts.clients.get(family)}): "
                            "replies from the VIPs cannot leave",
                            f"ip{' -6' if family == 6 else ''} route add default via GATEWAY dev IFACE"))
            continue
        dev = facts.links.get(route.dev)
        mss = route.advmss or ((route.mtu or (dev.mtu if dev else 1500)) - tunnels.INNER_TCPIP[family])
        limit = tunnels.max_mss(path_mtu, t.kind, outer, family)
        subject = f"IPv{family} {route.dst}"
        budget = (f"{t} over IPv{outer} adds {tunnels.overhead(t.kind, outer)} bytes; {arrival} has MTU "
                  f"{path_mtu}, so an MSS above {limit} does not fit")
        if mss > limit:
            # Raising the arrival device's MTU helps only when replies do not leave by it (they
            # would advertise a larger MSS too); otherwise the route's advmss is the fix.
            bigger = (f"; or raise the MTU of the tunnel path: ip link set {arrival} mtu "
                      f"{path_mtu + mss - limit}" if arrival != route.dev else "")
            out.append(fail("mtu", subject, f"replies advertise MSS {mss}: {budget}",
                            f"{_route_spec(route)} advmss {limit}  (or clamp with iptables TCPMSS{bigger})"))
        else:
            out.append(ok("mtu", subject, f"replies advertise MSS {mss} <= {limit} ({budget})"))
    return out


def run(facts: BackendFacts) -> list:
    out = []
    for vip in facts.vips:
        out += check_vip(facts, vip)
    return out + check_arp(facts) + check_rp_filter(facts) + check_tunnel(facts) + check_mtu(facts)
