"""Addresses of a service: its VIPs, its server list (or a top-level `servers:` group), their reachability.

docs/configuration.md, "Services", "Servers" and "Networks". A server tuple
is (address, disabled, weight, node, path); server lists are sorted by address.
"""

from __future__ import annotations

import ipaddress

from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import grammar
from .errors import did_you_mean
from .model import address_key
from .reader import Reader, is_null, join, kind

SERVER_KEYS = {"address", "weight", "disabled"}
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def usable_address(r: Reader, node, path: str, role: str):
    """An address fit to be a VIP or a backend: not unspecified, multicast, loopback or broadcast."""
    a = r.address(node, path)
    if a is None:
        return None
    bad = None
    if a.is_unspecified:
        bad = "unspecified"
    elif a.is_multicast:
        bad = "multicast"
    elif a.is_loopback:
        bad = "loopback"
    elif a == BROADCAST:
        bad = "the broadcast address"
    if bad:
        r.error(node, path, f"{a} is {bad}; a {role} must be a unicast address")
        return None
    return a


def _starred_address(r: Reader, node, path: str, text: str, role: str):
    """usable_address of text (a trailing '*' already taken off), reported at node."""
    fake = ScalarNode("tag:yaml.org,2002:str", text, node.start_mark, node.end_mark)
    return usable_address(r, fake, path, role)


def vips(r: Reader, node, path):
    """[(address, starred, node)] of `virtual:` (one address or a list), or None when there are none."""
    items = r.sequence(node, path, scalar_ok=True)
    if items is None:
        return None
    out, seen = [], {}
    for i, item in enumerate(items):
        p = f"{path}[{i}]" if isinstance(node, SequenceNode) else path
        if not isinstance(item, ScalarNode) or is_null(item):
            r.error(item, p, f"a VIP must be an address, not {kind(item)}")
            continue
        text, star = grammar.server(item.value)
        a = _starred_address(r, item, p, text, "VIP")
        if a is None:
            continue
        if a in seen:
            r.error(item, p, f"VIP {a} is listed twice in this service")
            continue
        seen[a] = item
        out.append((a, star, item))
    return out if out or not items else None


def _server_mapping(r: Reader, item, p):
    """(address text, disabled, weight, address node, address path) of {address:, weight:, disabled:}."""
    m = r.mapping(item, p, SERVER_KEYS)
    if m is None:
        return None
    if "address" not in m:
        r.error(item, p, "a server given as a mapping needs 'address' "
                         "(and optionally weight: 1..255, disabled: true)")
        return None
    anode, apath = m["address"][1], join(p, "address")
    text = r.text(anode, apath, "an IP address")
    if text is None:
        return None
    text, disabled = grammar.server(text)
    if "disabled" in m:
        d = r.boolean(m["disabled"][1], join(p, "disabled"))
        disabled = bool(d) or disabled
    weight = 1
    if "weight" in m:
        w = r.integer(m["weight"][1], join(p, "weight"), 1, 255, "a weight")
        weight = w if w is not None else 1
    return text, disabled, weight, anode, apath


def _server_item(r: Reader, item, p):
    """(address text, disabled, weight, address node, address path) of one item of a server list."""
    if isinstance(item, MappingNode):
        return _server_mapping(r, item, p)
    if isinstance(item, ScalarNode) and not is_null(item):
        text, disabled = grammar.server(item.value)
        return text, disabled, 1, item, p
    r.error(item, p, f"a server must be an address (10.1.2.3, 10.1.2.3* to disable) or a mapping "
                     f"{{address:, weight:, disabled:}}, not {kind(item)}")
    return None


def server_list(r: Reader, node, path):
    """The server tuples of a list of servers, sorted by address; None when it is not a list."""
    items = r.sequence(node, path)
    if items is None:
        return None
    out, seen = [], {}
    for i, item in enumerate(items):
        got = _server_item(r, item, f"{path}[{i}]")
        if got is None:
            continue
        text, disabled, weight, anode, apath = got
        a = _starred_address(r, anode, apath, text, "server")
        if a is None:
            continue
        if a in seen:
            r.error(anode, apath, f"server {a} is listed twice (first at line {r.where(seen[a])[0]}); "
                                  "list each server once")
            continue
        seen[a] = anode
        out.append((a, disabled, weight, anode, apath))
    out.sort(key=_by_address)
    return out


def _by_address(server):
    return address_key(server[0])


class ServerGroups:
    """The top-level `servers:` map: group name -> server tuples (None when the group is broken)."""

    def __init__(self, r: Reader, node):
        self.r = r
        self.groups = {}
        if node is not None and not is_null(node):
            m = r.mapping(node, "servers", what=" of group name -> list of servers")
            for name, (_, v) in (m or {}).items():
                self.groups[name] = server_list(r, v, join("servers", name))

    def of(self, node, path):
        """The server tuples of a service (a list, or the name of a top-level group)."""
        r = self.r
        if not isinstance(node, ScalarNode) or is_null(node):
            return server_list(r, node, path)
        name = node.value
        if name not in self.groups and grammar.server(name)[0].count(".") + name.count(":") >= 2:
            r.error(node, path, f"'{name}' looks like a server address: servers must be a list, even of "
                                f"one (servers: [{name}]), or the name of a top-level servers: group")
            return None
        if name not in self.groups:
            known = sorted(self.groups)
            defined = ', '.join(known) or 'none (add a top-level servers: map)'
            r.error(node, path, f"server group '{name}' does not exist{did_you_mean(name, known)}; "
                                f"defined groups: {defined}")
            return None
        return self.groups[name]


class Reachability:
    """Warns about servers the data plane cannot reach, once per (server, tunnel type).

    The data plane's rules (docs/configuration.md, "Networks"; docs/data-plane.md):
    a layer-2 service reaches only servers in a vlans/vlans6 prefix; a
    tunnelled one also those behind a gateway named by a prefix.
    """

    def __init__(self, r: Reader, vlans=()):
        self.r = r
        self.vlans = tuple(vlans)   # IPv4Interface/IPv6Interface of vlans and vlans6
        self.seen = set()           # (address, tunnel type) already looked at

    def check(self, servers, tunnel):
        if not self.vlans:
            return
        for a, _, _, node, path in servers:
            if (a, tunnel) in self.seen:
                continue
            self.seen.add((a, tunnel))
            same = [i for i in self.vlans if i.version == a.version]
            if any(a in i.network for i in same):
                continue
            gateways = [i for i in same if i.ip != i.network.network_address]
            why = None
            if tunnel == "none":
                why = ("is in no vlans/vlans6 prefix and the service uses no tunnel: layer-2 DSR only "
                       "reaches servers on a local VLAN (set tunnel-type, or add the VLAN)")
            elif not gateways:
                why = (f"is in no {'vlans' if a.version == 4 else 'vlans6'} prefix and no prefix names a "
                       "gateway (write the router's address with the prefix length, e.g. 10.1.10.254/24)")
            if why:
                self.r.warn(node, path, f"server {a} {why}; it will not receive traffic")
