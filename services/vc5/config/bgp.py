"""Compile `bgp:` (and the top-level `prefixes:` map) into Bgp and its Peers.

vc5's config.pl: top-level parameters apply to `bgp.peers`; each of
`bgp.groups` overlays its own parameters on the top-level ones and adds
`accept`/`reject` filters (prefix-list names, CIDRs, addresses or `any`).
A filter sends a VIP if it matches `accept`, else drops it if it matches
`reject`, else sends it (docs/bgp.md, "What each peer is sent").
"""

from __future__ import annotations

import ipaddress
import re

from yaml.nodes import ScalarNode

from vc5.common import capacity

from . import grammar, secrets
from .errors import did_you_mean
from .grammar import GrammarError
from .model import BGP_PORT, DEFAULT_HOLD_TIME, DEFAULT_LOCAL_PREF, BfdParams, Bgp, Peer, address_key
from .reader import Reader, is_null, join, kind

PARAM_KEYS = ("as_number", "hold_time", "local_pref", "med", "communities", "source_ip", "next_hop_6",
              # our extras
              "peer_as", "large_communities", "next_hop_4", "passive", "md5", "port",
              "bfd")   # extension: BFD toward the peer (docs/bgp.md, "BFD")
TOP_KEYS = set(PARAM_KEYS) | {"peers", "groups", "learn", "listen",
                              "graceful_shutdown", "graceful_restart", "router_id"}
GROUP_KEYS = set(PARAM_KEYS) | {"name", "accept", "reject", "peers"}
BFD_KEYS = ("interval_ms", "multiplier")
BFD_INTERVAL_MS = (50, 60000)   # below 50 ms an asyncio daemon on a loaded host flaps (docs/bgp.md, "BFD")
AS_TRANS = 23456
ANY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def asn(r: Reader, node, path: str):
    """An AS number 1..4294967295 (asplain, or asdot 'X.Y'); AS_TRANS is reserved."""
    if isinstance(node, ScalarNode) and re.fullmatch(r"[0-9]+\.[0-9]+", node.value.strip()):
        hi, lo = (int(x) for x in node.value.strip().split("."))
        if hi > 65535 or lo > 65535:
            r.error(node, path, f"'{node.value}' is not a valid asdot AS number (each half 0..65535)")
            return None
        v = hi * 65536 + lo
    else:
        v = r.integer(node, path, 1, 4294967295, "an AS number")
        if v is None:
            return None
    if v == 0:
        r.error(node, path, "AS 0 is reserved (RFC 7607); use 1..4294967295")
        return None
    if v == AS_TRANS:
        r.error(node, path, "AS 23456 is AS_TRANS (RFC 6793), reserved for 2-byte speakers; "
                            "use your real ASN")
        return None
    return v


def bfd_params(r: Reader, node, path: str):
    """`bfd: true|false` or `bfd: {interval_ms: N, multiplier: M}` -> BfdParams (False when off).

    An extension over vc5. False (not None) for `bfd: false`, so that a group can turn off
    BFD that the top level turned on."""
    if isinstance(node, ScalarNode):
        if node.value.strip().lower() not in ("true", "false", "yes", "no", "on", "off"):
            r.error(node, path, f"must be true, false or a mapping of interval_ms and multiplier, "
                                f"not {node.value!r}")
            return None
        return BfdParams() if r.boolean(node, path) else False
    m = r.mapping(node, path, set(BFD_KEYS), " (true, false, or interval_ms and multiplier)")
    if m is None:
        return None
    out = {}
    if "interval_ms" in m and not is_null(m["interval_ms"][1]):
        lo, hi = BFD_INTERVAL_MS
        out["interval_ms"] = r.integer(m["interval_ms"][1], join(path, "interval_ms"), lo, hi,
                                       "milliseconds between BFD packets")
    if "multiplier" in m and not is_null(m["multiplier"][1]):
        out["multiplier"] = r.integer(m["multiplier"][1], join(path, "multiplier"), 1, 255,
                                      "the BFD Detect Mult (packets missed before down)")
    if None in out.values():
        return None
    return BfdParams(**out)


def prefix_lists(r: Reader, node) -> dict:
    """Top-level `prefixes:` name -> tuple of networks."""
    out = {}
    if node is None or is_null(node):
        return out
    m = r.mapping(node, "prefixes", what=" of name -> list of prefixes")
    for name, (_, v) in (m or {}).items():
        p = join("prefixes", name)
        items = r.sequence(v, p, scalar_ok=True)
        if items is None:
            continue
        nets = {}   # a dict keeps the first of duplicates in order: O(n), not a list's O(n^2)
        for i, item in enumerate(items):
            n = r.network(item, f"{p}[{i}]")
            if n is not None:
                nets.setdefault(n)
        out[name] = tuple(nets)
    return out


class BgpCompiler:
    def __init__(self, r: Reader, prefixes: dict):
        self.r = r
        self.prefixes = prefixes

    def params(self, m: dict, path: str, inherited: dict) -> dict:
        """{key: (value, node)} of the parameters set at this level, over the inherited ones."""
        r = self.r
        out = dict(inherited)
        for key in PARAM_KEYS:
            if key not in m or is_null(m[key][1]):
                continue
            node, kp = m[key][1], join(path, key)
            if key in ("as_number", "peer_as"):
                v = asn(r, node, kp)
            elif key == "hold_time":
                v = r.integer(node, kp, 0, 65535, "a number of seconds (0..2 mean the default, 10)")
            elif key in ("local_pref", "med"):
                v = r.integer(node, kp, 0, 4294967295)
            elif key in ("communities", "large_communities"):
                v = self.communities(node, kp, key)
            elif key == "source_ip":
                v = r.address(node, kp)
            elif key == "next_hop_4":
                v = r.address(node, kp, 4)
            elif key == "next_hop_6":
                v = r.address(node, kp, 6)
            elif key == "passive":
                v = r.boolean(node, kp)
            elif key == "md5":
                v = secrets.text(r, node, kp, "a password")
                if v is not None and not 1 <= len(v.encode()) <= 80:
                    r.error(node, kp, "a TCP MD5 password must be 1..80 bytes (Linux TCP_MD5SIG_MAXKEYLEN)")
                    v = None
            elif key == "port":
                v = r.port(node, kp, "a TCP port")
            elif key == "bfd":
                v = bfd_params(r, node, kp)
            else:  # pragma: no cover
                raise AssertionError(key)
            if v is not None:
                out[key] = (v, node, kp)
        return out

    def communities(self, node, path, key):
        r = self.r
        items = r.sequence(node, path, scalar_ok=True)
        if items is None:
            return None
        parse = grammar.community if key == "communities" else grammar.large_community
        out = []
        for i, item in enumerate(items):
            p = f"{path}[{i}]"
            if not isinstance(item, ScalarNode) or is_null(item):
                r.error(item, p, f"must be a community string, not {kind(item)}")
                continue
            # The raw text is parsed: YAML 1.1 would read an unquoted 65000:10 as base 60.
            try:
                c = parse(item.value)
            except GrammarError as e:
                r.error(item, p, str(e))
                continue
            if c not in out:
                out.append(c)
        return tuple(out)

    def filters(self, node, path):
        r = self.r
        items = r.sequence(node, path, scalar_ok=True)
        if items is None:
            return ()
        out = {}   # the networks in order, each once (a list's `in` made 20,000 prefixes O(n^2))
        for i, item in enumerate(items):
            p = f"{path}[{i}]"
            if not isinstance(item, ScalarNode) or is_null(item):
                r.error(item, p, "must be a prefix-list name, a prefix, an address or 'any', "
                                 f"not {kind(item)}")
                continue
            word = item.value.strip()
            if word == "any":
                nets = ANY
            elif word in self.prefixes:
                nets = self.prefixes[word]
            else:
                try:
                    nets = (ipaddress.ip_network(word, strict=True),)
                except ValueError:
                    if re.fullmatch(r"[0-9a-fA-F.:/]+", word) and any(ch in word for ch in ".:"):
                        r.network(item, p)   # reports the precise address problem
                    else:
                        known = sorted(self.prefixes)
                        defined = ', '.join(known) or 'none defined'
                        r.error(item, p, f"prefix list '{word}' does not exist{did_you_mean(word, known)}; "
                                         f"use a name from the top-level prefixes: map ({defined}), "
                                         "a prefix, an address or any")
                    continue
            out.update(dict.fromkeys(nets))
        return tuple(out)

    def compile(self, node, router_default):
        r = self.r
        m = r.mapping(node, "bgp", TOP_KEYS, " (as_number, peers, groups, ...)")
        if m is None:
            return None
        top = self.params(m, "bgp", {})
        g = {}
        for key, lo, hi in (("learn", 0, 86400),):
            if key in m and not is_null(m[key][1]):
                g[key] = r.integer(m[key][1], join("bgp", key), lo, hi, "a number of seconds")
        for key in ("listen", "graceful_restart"):
            if key in m and not is_null(m[key][1]):
                g[key] = r.boolean(m[key][1], join("bgp", key))
        if "graceful_shutdown" in m and not is_null(m["graceful_shutdown"][1]):
            g["graceful_shutdown"] = r.number(m["graceful_shutdown"][1], "bgp.graceful_shutdown", 0,
                                              capacity.MAX_GRACEFUL_SHUTDOWN_S,
                                              capacity.GRACEFUL_SHUTDOWN_WHAT)
        router_id = router_default
        if "router_id" in m and not is_null(m["router_id"][1]):
            router_id = r.address(m["router_id"][1], "bgp.router_id", 4, "an IPv4 address (a BGP identifier)")
        peers = {}
        if "peers" in m and not is_null(m["peers"][1]):
            self.add_peers(peers, m["peers"][1], "bgp.peers", top, None, None)
        if "groups" in m and not is_null(m["groups"][1]):
            items = r.sequence(m["groups"][1], "bgp.groups") or []
            names = {}
            for i, item in enumerate(items):
                p = f"bgp.groups[{i}]"
                gm = r.mapping(item, p, GROUP_KEYS, " (a peer group: name, peers, as_number, accept, ...)")
                if gm is None:
                    continue
                name = None
                if "name" in gm and not is_null(gm["name"][1]):
                    name = r.text(gm["name"][1], join(p, "name"))
                    if name in names:
                        r.error(gm["name"][1], join(p, "name"), f"group name '{name}' is used twice "
                                                                f"(first at line {names[name]})")
                    names[name] = r.where(gm["name"][1])[0]
                params = self.params(gm, p, top)
                filters = {k: self.filters(gm[k][1], join(p, k)) if k in gm and not is_null(gm[k][1]) else ()
                           for k in ("accept", "reject")}
                if "peers" in gm and not is_null(gm["peers"][1]):
                    self.add_peers(peers, gm["peers"][1], join(p, "peers"), params, name, filters)
                else:
                    r.warn(item, p, "group has no peers")
        if router_id is None and peers:
            r.warn(node, "bgp", "no BGP router ID: set the top-level address (vc5's first command-line "
                                "argument) or bgp.router_id; no session can open without one")
        return Bgp(as_number=top.get("as_number", (0,))[0], router_id=router_id,
                   learn=g.get("learn") or 0, listen=bool(g.get("listen")),
                   peers=tuple(sorted((p for p, _ in peers.values()), key=lambda p: address_key(p.address))),
                   graceful_shutdown=g.get("graceful_shutdown") or 0.0,
                   graceful_restart=bool(g.get("graceful_restart")))

    def add_peers(self, peers, node, path, params, group, filters):
        r = self.r
        items = r.sequence(node, path, scalar_ok=True)
        for i, item in enumerate(items or []):
            p = f"{path}[{i}]"
            a = r.address(item, p)
            if a is None:
                continue
            if a.is_unspecified or a.is_multicast:
                r.error(item, p, f"{a} cannot be a BGP peer (unspecified or multicast)")
                continue
            if a in peers:
                r.error(item, p, f"peer {a} is already configured at {peers[a][1]}; vc5 silently kept the "
                                 "last one, this load balancer refuses duplicates")
                continue
            v = {k: val[0] for k, val in params.items()}
            if "as_number" not in v:
                where = "bgp.as_number" if filters is None else "bgp.as_number or the group's as_number"
                r.error(item, p, f"no AS number for peer {a}: set {where}")
                continue
            src = v.get("source_ip")
            if src is not None and src.version != a.version:
                _, snode, spath = params["source_ip"]
                r.error(snode, spath, f"source_ip {src} is IPv{src.version} but peer {a} (at line "
                                      f"{r.where(item)[0]}) is IPv{a.version}; give that peer a group "
                                      f"with an IPv{a.version} source_ip")
                continue
            hold = v.get("hold_time", DEFAULT_HOLD_TIME)
            explicit = set(v)
            if filters is not None:
                explicit |= {"accept", "reject"}
            peers[a] = (Peer(
                address=a, group=group, as_number=v["as_number"], peer_as=v.get("peer_as"),
                hold_time=DEFAULT_HOLD_TIME if hold < 3 else hold,   # vc5: < 3 -> 10
                local_pref=v.get("local_pref", DEFAULT_LOCAL_PREF), med=v.get("med", 0),
                communities=v.get("communities", ()), large_communities=v.get("large_communities", ()),
                source_ip=src, next_hop_4=v.get("next_hop_4"), next_hop_6=v.get("next_hop_6"),
                multiprotocol="next_hop_6" in v,
                accept=(filters or {}).get("accept", ()), reject=(filters or {}).get("reject", ()),
                passive=bool(v.get("passive", False)), md5=v.get("md5"), port=v.get("port", BGP_PORT),
                explicit=frozenset(explicit), bfd=v.get("bfd") or None), r.origin(item))
