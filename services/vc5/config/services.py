"""Compile `services:` (with the top-level `servers:` and `policy:` maps) into Service objects.

The cascade (vc5 doc/services.md): service-level keys are defaults for each
policy entry, which may override them; the resulting host/path/method/expect
(and our timeout) are defaults for each explicit check, which may override them.

Each VIP x each (port, protocol) of each policy entry is one Service.
"""

from __future__ import annotations

import ipaddress
import re

from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import grammar
from .errors import did_you_mean
from .grammar import GrammarError
from .model import (CHECK_TYPES, DEFAULT_FALL, DEFAULT_INTERVAL, DEFAULT_RISE, PRIORITIES, TUNNEL_TYPES,
                    Backend, Check, Service, address_key)
from .reader import Reader, is_null, join, kind

# Keys that cascade from a service to its policy entries.
CASCADE_KEYS = ("name", "description", "priority", "need", "sticky", "reset", "scheduler", "persist",
                "tunnel-type", "tunnel-port", "tunnel-no-checksum", "host", "path", "method", "expect",
                "interval", "timeout", "rise", "fall")
SERVICE_KEYS = set(CASCADE_KEYS) | {"virtual", "servers", "policy"}
ENTRY_KEYS = set(CASCADE_KEYS) | {"bind", "checks"}
CHECK_KEYS = {"type", "port", "host", "path", "method", "expect", "timeout"}
SERVER_KEYS = {"address", "weight", "disabled"}
# Optional vc5 keys recorded in Service.explicit (the JSON view emits them only when set).
EXPLICIT_KEYS = ("name", "description", "priority", "scheduler", "persist", "tunnel-type", "tunnel-port",
                 "tunnel-no-checksum", "interval", "timeout", "rise", "fall")
HTTP_METHODS = ("GET", "HEAD")
DNS_METHODS = ("udp", "tcp")
MAX_BACKENDS = 255  # the data plane's dest[1..255]


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
    elif a == ipaddress.IPv4Address("255.255.255.255"):
        bad = "the broadcast address"
    if bad:
        r.error(node, path, f"{a} is {bad}; a {role} must be a unicast address")
        return None
    return a


class ServiceCompiler:
    def __init__(self, r: Reader, servers_node, policy_node, scheduler, scheduler_node, vlans=()):
        self.r = r
        self.vlans = tuple(vlans)   # IPv4Interface/IPv6Interface of vlans and vlans6
        self.warned = set()
        self.scheduler = scheduler
        self.scheduler_node = scheduler_node
        self.groups = {}      # name -> list of (addr, disabled, weight, node) or None when broken
        self.group_nodes = {}
        self.policies = {}    # name -> (mapping node, path)
        self.used_policies = set()
        if servers_node is not None and not is_null(servers_node):
            m = r.mapping(servers_node, "servers", what=" of group name -> list of servers")
            for name, (_, v) in (m or {}).items():
                self.groups[name] = self.server_list(v, join("servers", name))
                self.group_nodes[name] = v
        if policy_node is not None and not is_null(policy_node):
            m = r.mapping(policy_node, "policy", what=" of policy name -> policy")
            for name, (k, v) in (m or {}).items():
                if isinstance(v, MappingNode):
                    self.policies[name] = (v, join("policy", name))
                else:
                    r.error(v, join("policy", name), f"a named policy must be a mapping of policy entries "
                                                     f"(http:, 443:, ...), not {kind(v)}")
                    self.policies[name] = None
        self.seen = {}        # (vip, port, proto) -> (path, origin, service name)

    # -- servers ----------------------------------------------------------------

    def server_list(self, node, path):
        r = self.r
        items = r.sequence(node, path)
        if items is None:
            return None
        out, seen = [], {}
        for i, item in enumerate(items):
            p = f"{path}[{i}]"
            weight, disabled = 1, False
            if isinstance(item, MappingNode):
                m = r.mapping(item, p, SERVER_KEYS)
                if m is None:
                    continue
                if "address" not in m:
                    r.error(item, p, "a server given as a mapping needs 'address' "
                                     "(and optionally weight: 1..255, disabled: true)")
                    continue
                anode = m["address"][1]
                text = r.text(anode, join(p, "address"), "an IP address")
                if text is None:
                    continue
                text, star = grammar.server(text)
                disabled = star
                if "disabled" in m:
                    d = r.boolean(m["disabled"][1], join(p, "disabled"))
                    disabled = bool(d) or star
                if "weight" in m:
                    w = r.integer(m["weight"][1], join(p, "weight"), 1, 255, "a weight")
                    weight = w if w is not None else 1
                apath = join(p, "address")
            elif isinstance(item, ScalarNode) and not is_null(item):
                anode, apath = item, p
                text, disabled = grammar.server(item.value)
            else:
                r.error(item, p, f"a server must be an address (10.1.2.3, 10.1.2.3* to disable) or a mapping "
                                 f"{{address:, weight:, disabled:}}, not {kind(item)}")
                continue
            a = self._server_address(anode, apath, text)
            if a is None:
                continue
            if a in seen:
                r.error(anode, apath, f"server {a} is listed twice (first at line {r.where(seen[a])[0]}); "
                                      "list each server once")
                continue
            seen[a] = anode
            out.append((a, disabled, weight, anode, apath))
        return out

    def _server_address(self, node, path, text):
        fake = ScalarNode("tag:yaml.org,2002:str", text, node.start_mark, node.end_mark)
        return usable_address(self.r, fake, path, "server")

    def servers_of(self, node, path):
        """The server tuples of a service (a list, or the name of a top-level group)."""
        r = self.r
        if isinstance(node, ScalarNode) and not is_null(node):
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
        return self.server_list(node, path)

    # -- cascading settings -------------------------------------------------------

    def settings(self, m: dict, path: str, inherited: dict) -> dict:
        """Parse the cascading keys of one level over the inherited ones: {key: (value, node, path)}."""
        out = dict(inherited)
        for key in CASCADE_KEYS:
            if key not in m:
                continue
            node = m[key][1]
            kp = join(path, key)
            if is_null(node):
                continue
            v = self.setting(key, node, kp)
            if v is not None:
                out[key] = (v, node, kp)
        return out

    def setting(self, key, node, path):
        r = self.r
        if key == "name":
            s = r.text(node, path)
            if s is not None and not grammar.NAME_RE.match(s):
                r.error(node, path, f"name '{s}' is not valid: letters, digits and '-', "
                                    "starting with a letter or digit (vc5's rule)")
                return None
            return s
        if key == "description":
            return r.text(node, path)
        if key == "priority":
            s = r.text(node, path)
            if s is not None and s not in PRIORITIES:
                r.error(node, path, f"priority '{s}' is not one of {', '.join(PRIORITIES)}"
                                    f"{did_you_mean(s, PRIORITIES)}")
                return None
            return s
        if key == "need":
            return r.integer(node, path, 0, MAX_BACKENDS, "a number of healthy backends")
        if key in ("sticky", "reset", "tunnel-no-checksum"):
            return r.boolean(node, path)
        if key == "scheduler":
            s = r.text(node, path)
            if s is not None and not grammar.SCHEDULER_RE.match(s):
                r.error(node, path, f"scheduler '{s}' is not a scheduler name (e.g. roundrobin, leastconn, "
                                    "maglev; the XDP data plane always uses Maglev)")
                return None
            return s
        if key == "persist":
            return r.integer(node, path, 0, 4294967295, "a number of seconds")
        if key == "tunnel-type":
            s = r.text(node, path)
            if s is not None and s not in TUNNEL_TYPES:
                r.error(node, path, f"tunnel type '{s}' is not supported; allowed: {', '.join(TUNNEL_TYPES)}"
                                    f"{did_you_mean(s, TUNNEL_TYPES)}")
                return None
            return s
        if key == "tunnel-port":
            return r.integer(node, path, 1, 65535, "a UDP port")
        if key == "host":
            s = r.text(node, path)
            if s is not None and (not s.strip() or any(c.isspace() for c in s) or "/" in s):
                r.error(node, path, f"host '{s}' is not a host name (it becomes the Host header and SNI; "
                                    "no spaces, no scheme or path)")
                return None
            return s
        if key == "path":
            s = r.text(node, path)
            if s is not None and any(c.isspace() for c in s):
                r.error(node, path, f"path '{s}' contains white space; URL-encode it (%20)")
                return None
            return s if s is None or s.startswith("/") else "/" + s
        if key == "method":
            s = r.text(node, path)
            if s is None:
                return None
            if s.upper() in HTTP_METHODS:
                return s.upper()
            if s.lower() in DNS_METHODS:
                return s.lower()
            r.error(node, path, f"method '{s}' is not valid: GET or HEAD for http/https checks, "
                                "udp or tcp for dns checks")
            return None
        if key == "expect":
            return self.expect(node, path)
        if key == "interval":
            return r.number(node, path, 0.1, 3600.0)
        if key == "timeout":
            return r.number(node, path, 0.01, 60.0)
        if key in ("rise", "fall"):
            return r.integer(node, path, 1, 64, "a number of check rounds")
        raise AssertionError(key)  # pragma: no cover

    def expect(self, node, path):
        r = self.r
        if isinstance(node, SequenceNode):
            raw = []
            for item in node.value:
                if not isinstance(item, ScalarNode) or is_null(item):
                    r.error(item, path, f"expect list items must be status codes, not {kind(item)}")
                    return None
                raw.append(item.value)
        elif isinstance(node, ScalarNode):
            raw = node.value
        else:
            r.error(node, path, f"must be status codes (200, '200 301', '200-299', any), not {kind(node)}")
            return None
        try:
            return grammar.expect(raw)
        except GrammarError as e:
            r.error(node, path, f"expect {e}")
            return None

    # -- services ---------------------------------------------------------------

    def compile(self, node) -> list:
        r = self.r
        items = r.sequence(node, "services")
        if items is None:
            return []
        out = []
        disabled_vips = set()
        for i, item in enumerate(items):
            out.extend(self.service(item, f"services[{i}]", disabled_vips))
        # vc5: a '*' on a VIP marks every service on that VIP disabled.
        return [_replace(s, disabled=True) if s.vip in disabled_vips else s for s in out]

    def service(self, node, path, disabled_vips) -> list:
        r = self.r
        m = r.mapping(node, path, SERVICE_KEYS, " (a service: virtual, servers, policy, ...)")
        if m is None:
            return []
        base = {}
        if self.scheduler is not None:
            base["scheduler"] = (self.scheduler, self.scheduler_node, "scheduler")
        svc = self.settings(m, path, base)
        missing = [k for k in ("virtual", "servers", "policy") if k not in m or is_null(m[k][1])]
        for k in missing:
            where = m[k][1] if k in m else node
            r.error(where, join(path, k), f"is required: a service needs {_REQUIRED[k]}")
        vips = self.vips(m["virtual"][1], join(path, "virtual")) if "virtual" not in missing else None
        servers = None
        if "servers" not in missing:
            servers = self.servers_of(m["servers"][1], join(path, "servers"))
        policy = self.policy_of(m["policy"][1], join(path, "policy")) if "policy" not in missing else None
        if servers is not None:
            if not servers and "servers" not in missing:
                r.error(m["servers"][1], join(path, "servers"),
                        "is empty: a service needs at least one server")
            elif len(servers) > MAX_BACKENDS:
                r.error(m["servers"][1], join(path, "servers"),
                        f"has {len(servers)} servers; at most {MAX_BACKENDS} per service")
        if vips is None or policy is None or servers is None:
            if policy is not None:
                # Report the policy's own problems now, not after the VIP or servers are fixed.
                self.validate_unused(*policy)
            return []
        pnode, ppath = policy
        pm = r.mapping(pnode, ppath, what=" of policy entries (http:, 443:, domain:, ...)")
        if not pm:
            if pm is not None:
                r.error(pnode, ppath, "has no entries: add at least one (http:, https:, 443:, ...)")
            return []
        out = []
        for key, (knode, vnode) in pm.items():
            out.extend(self.entry(key, knode, vnode, join(ppath, key), svc, vips, servers, disabled_vips))
        return out

    def unused_policies(self):
        """Warn about named policies no service uses, and validate them anyway."""
        for name, entry in self.policies.items():
            if entry is not None and name not in self.used_policies:
                self.r.warn(entry[0], entry[1], f"named policy '{name}' is not used by any service")
                self.validate_unused(*entry)

    def validate_unused(self, node, path):
        """Check what can be checked of a policy no service uses (so it is valid when first used)."""
        r = self.r
        for key, (knode, vnode) in (r.mapping(node, path) or {}).items():
            p = join(path, key)
            try:
                ports, _ = grammar.policy_key(key)
            except GrammarError as e:
                r.error(knode, p, str(e))
                continue
            if isinstance(vnode, MappingNode):
                overrides = r.mapping(vnode, p, ENTRY_KEYS) or {}
                st = self.settings(overrides, p, {})
                self.check_timing(st, p, knode)
                if "checks" in overrides and not is_null(overrides["checks"][1]):
                    self.checks(overrides["checks"][1], join(p, "checks"), st, ports[0])

    def vips(self, node, path):
        r = self.r
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
            fake = ScalarNode("tag:yaml.org,2002:str", text, item.start_mark, item.end_mark)
            a = usable_address(r, fake, p, "VIP")
            if a is None:
                continue
            if a in seen:
                r.error(item, p, f"VIP {a} is listed twice in this service")
                continue
            seen[a] = item
            out.append((a, star, item))
        return out if out or not items else None

    def policy_of(self, node, path):
        r = self.r
        if isinstance(node, ScalarNode):
            name = node.value
            if name not in self.policies:
                known = sorted(self.policies)
                r.error(node, path, f"policy '{name}' does not exist{did_you_mean(name, known)}; defined "
                                    f"policies: {', '.join(known) or 'none (add a top-level policy: map)'}")
                return None
            self.used_policies.add(name)
            return self.policies[name]
        return node, path

    def entry(self, key, knode, vnode, path, svc, vips, servers, disabled_vips) -> list:
        """One policy entry (e.g. `https: {path: /x}`) -> its Services on every VIP."""
        r = self.r
        try:
            ports, checks_on = grammar.policy_key(key)
        except GrammarError as e:
            r.error(knode, path, str(e))
            return []
        overrides, bind, bind_node = {}, None, None
        if is_null(vnode):
            pass
        elif isinstance(vnode, MappingNode):
            overrides = r.mapping(vnode, path, ENTRY_KEYS | {"port"}) or {}
            if "port" in overrides:
                r.error(overrides.pop("port")[0], join(path, "port"),
                        "unknown key 'port': the service port comes from the policy key (use '8080/http:' "
                        "for a web service on 8080); to check another port list checks: "
                        "[{type: http, port: 8080}]")
            if "bind" in overrides:
                bind_node = overrides["bind"][1]
                bind = r.integer(bind_node, join(path, "bind"), 1, 65535, "a port")
        elif isinstance(vnode, ScalarNode) and re.fullmatch(r"[0-9]+", vnode.value.strip()):
            bind_node = vnode
            bind = r.integer(vnode, path, 1, 65535, "a port")
        else:
            r.error(vnode, path, f"a policy entry's value must be empty, a port, or a mapping of overrides, "
                                 f"not {kind(vnode)}")
            return []
        st = self.settings(overrides, path, svc)
        self.check_timing(st, path, knode)
        if bind is not None:
            for pp in ports:
                if bind != pp.port:
                    r.error(bind_node, join(path, "bind") if bind_node is not vnode else path,
                            f"the servers' port {bind} differs from the service port {pp.port}: with Direct "
                            f"Server Return the backend receives the client's packet unchanged, so it must "
                            f"listen on port {pp.port} (vc5's config.pl allowed port mapping only in its -n "
                            f"NAT mode, which this load balancer does not have); remove the port or use "
                            f"'{pp.port}' as the service")
                    return []
        checks_node = overrides.get("checks", (None, None))[1]
        if checks_node is not None and not checks_on:
            r.error(checks_node, join(path, "checks"),
                    f"policy key '{key}' ends with '*', which turns checks off, yet checks are listed; "
                    "drop one of the two")
            return []
        out = []
        for pp in ports:
            if checks_node is not None and not is_null(checks_node):
                checks = self.checks(checks_node, join(path, "checks"), st, pp)
            elif checks_node is not None:
                checks = ()   # `checks:` left empty = no checks
            else:
                checks = self.implicit_check(st, pp)
            if checks is None:
                continue
            t = st.get("tunnel-type", ("none",))[0]
            tport = st.get("tunnel-port", (0,))[0]
            if t in ("fou", "gue") and not tport:
                tt = st["tunnel-type"]
                r.error(tt[1], tt[2], f"tunnel type {t} needs tunnel-port (the UDP port the backends' "
                                      f"{t.upper()} receiver listens on)")
                return []
            if tport and t not in ("fou", "gue"):
                tp = st["tunnel-port"]
                r.error(tp[1], tp[2], f"tunnel-port applies only to tunnel-type fou or gue (this service's "
                                      f"tunnel type is {t})")
                return []
            need = st.get("need", (1,))[0]
            if need > len(servers):
                nn = st.get("need")
                r.error(nn[1] if nn else knode, nn[2] if nn else path,
                        f"need {need} can never be met: the service has only {len(servers)} server(s); "
                        f"need is the number of healthy servers required for the VIP to be advertised")
                return []
            usable = sum(1 for s in servers if not s[1])
            if need > usable:
                nn = st.get("need")
                r.warn(nn[1] if nn else knode, nn[2] if nn else path,
                       f"need {need} but only {usable} of {len(servers)} servers are enabled; "
                       "the service stays down until more are enabled")
            backends = tuple(sorted((Backend(a, pp.port, disabled, weight, checks)
                                     for a, disabled, weight, *_ in servers),
                                    key=lambda b: address_key(b.address)))
            self.reachability(servers, t)
            for vip, star, vnode_ in vips:
                if star:
                    disabled_vips.add(vip)
                ident = (vip, pp.port, pp.protocol)
                if vip in {b.address for b in backends}:
                    r.error(vnode_, path, f"VIP {vip} is also one of its own servers")
                    continue
                if ident in self.seen:
                    first_path, first_origin = self.seen[ident]
                    r.error(knode, path, f"service {vip}:{pp.port}:{pp.protocol} is already defined at "
                                         f"{first_origin} ({first_path}); vc5 silently kept only the last "
                                         "definition, this load balancer refuses duplicates: define each "
                                         "VIP:port:protocol once")
                    continue
                self.seen[ident] = (path, r.origin(knode))
                explicit = frozenset(k for k in EXPLICIT_KEYS if k in st)
                out.append(Service(
                    vip=vip, port=pp.port, protocol=pp.protocol,
                    name=st.get("name", (None,))[0],
                    description=st.get("description", (None,))[0],
                    priority=st.get("priority", ("critical",))[0],
                    need=need,
                    sticky=st.get("sticky", (False,))[0],
                    reset=st.get("reset", (False,))[0],
                    scheduler=st.get("scheduler", (None,))[0],
                    persist=st.get("persist", (None,))[0],
                    tunnel_type=t, tunnel_port=tport,
                    tunnel_no_checksum=st.get("tunnel-no-checksum", (False,))[0],
                    disabled=star,
                    interval=st.get("interval", (DEFAULT_INTERVAL,))[0],
                    timeout=st.get("timeout", (None,))[0],
                    rise=st.get("rise", (DEFAULT_RISE,))[0],
                    fall=st.get("fall", (DEFAULT_FALL,))[0],
                    backends=backends, explicit=explicit, origin=r.origin(knode)))
        return out

    def reachability(self, servers, tunnel):
        """Warn about servers the data plane cannot reach (xvs netinfo.go rules), once each."""
        if not self.vlans:
            return
        for a, _, _, node, path in servers:
            if (a, tunnel) in self.warned:
                continue
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
                self.warned.add((a, tunnel))
                self.r.warn(node, path, f"server {a} {why}; it will not receive traffic")

    def check_timing(self, st, path, knode):
        r = self.r
        rise = st.get("rise", (DEFAULT_RISE, None, None))
        fall = st.get("fall", (DEFAULT_FALL, None, None))
        if fall[0] > rise[0]:
            where = fall if fall[1] is not None else rise
            r.error(where[1], where[2], f"fall {fall[0]} is more than rise {rise[0]}: fall counts failures "
                                        f"within the last 'rise' rounds, so it must be 1..{rise[0]}")
        interval = st.get("interval", (DEFAULT_INTERVAL, None, None))
        timeout = st.get("timeout")
        if timeout and timeout[0] > interval[0]:
            r.error(timeout[1], timeout[2], f"timeout {timeout[0]:g}s is longer than the interval "
                                            f"{interval[0]:g}s between check rounds; it must be at most the "
                                            "interval")

    def implicit_check(self, st, pp):
        g = {k: v[0] for k, v in st.items()}
        if pp.check in ("http", "https"):
            method = g.get("method") if g.get("method") in HTTP_METHODS else None
            return (Check(pp.check, pp.port, g.get("host"), g.get("path"), method, g.get("expect", ()),
                          g.get("timeout")),)
        if pp.check == "dns":
            method = g.get("method") if g.get("method") in DNS_METHODS else pp.protocol
            return (Check("dns", pp.port, method=method, timeout=g.get("timeout")),)
        if pp.check == "syn":
            return (Check("syn", pp.port, timeout=g.get("timeout")),)
        return ()

    def checks(self, node, path, st, pp):
        r = self.r
        items = r.sequence(node, path)
        if items is None:
            return None
        g = {k: v[0] for k, v in st.items()}
        interval = g.get("interval", DEFAULT_INTERVAL)
        out, ok = [], True
        for i, item in enumerate(items):
            p = f"{path}[{i}]"
            m = r.mapping(item, p, CHECK_KEYS, " (a check: type, port, host, path, method, expect, timeout)")
            if m is None:
                ok = False
                continue
            if "type" not in m or is_null(m["type"][1]):
                r.error(item, join(p, "type"), f"is required: one of {', '.join(CHECK_TYPES)}")
                ok = False
                continue
            t = r.text(m["type"][1], join(p, "type"))
            if t not in CHECK_TYPES:
                if t is not None:
                    r.error(m["type"][1], join(p, "type"),
                            f"check type '{t}' is not one of {', '.join(CHECK_TYPES)}"
                            f"{did_you_mean(t, CHECK_TYPES)}")
                ok = False
                continue
            c = {}
            for key in ("port", "host", "path", "method", "expect", "timeout"):
                if key in m and not is_null(m[key][1]):
                    kp = join(p, key)
                    if key in ("host", "path", "expect") and t not in ("http", "https"):
                        r.error(m[key][0], kp, f"'{key}' applies only to http and https checks, "
                                               f"not {t}")
                        ok = False
                        continue
                    v = r.integer(m[key][1], kp, 1, 65535, "a port") if key == "port" \
                        else self.setting(key, m[key][1], kp)
                    if v is None:
                        ok = False
                        continue
                    if key == "method":
                        allowed = {"http": HTTP_METHODS, "https": HTTP_METHODS, "dns": DNS_METHODS}.get(t, ())
                        if v not in allowed:
                            choices = ', '.join(allowed) or 'none (syn checks have no method)'
                            r.error(m[key][1], kp, f"method '{v}' does not apply to a {t} check; allowed: "
                                                   f"{choices}")
                            ok = False
                            continue
                    if key == "timeout" and v > interval:
                        r.error(m[key][1], kp, f"timeout {v:g}s is longer than the interval {interval:g}s "
                                               "between check rounds; it must be at most the interval")
                        ok = False
                        continue
                    c[key] = v
            port = c.get("port", pp.port)
            timeout = c.get("timeout", g.get("timeout"))
            if t in ("http", "https"):
                method = c.get("method", g.get("method") if g.get("method") in HTTP_METHODS else None)
                out.append(Check(t, port, c.get("host", g.get("host")), c.get("path", g.get("path")), method,
                                 c.get("expect", g.get("expect", ())), timeout))
            elif t == "dns":
                method = c.get("method", g.get("method") if g.get("method") in DNS_METHODS else pp.protocol)
                out.append(Check("dns", port, method=method, timeout=timeout))
            else:
                out.append(Check("syn", port, timeout=timeout))
        return tuple(out) if ok else None


_REQUIRED = {
    "virtual": "one or more VIPs (virtual: 192.0.2.1, or a list)",
    "servers": "a list of servers, or the name of a top-level servers: group",
    "policy": "a policy map (http:, https:, 443:, domain:, ...) or the name of a top-level policy",
}


def _replace(s, **kw):
    from dataclasses import replace
    return replace(s, **kw)
