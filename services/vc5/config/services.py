"""Compile `services:` (with the top-level `servers:` and `policy:` maps) into Service objects.

The cascade (docs/configuration.md, "Services", "Policy" and "Health checks"):
service-level keys are defaults for each policy entry, which may override
them; the resulting host/path/method/expect (and our timeout) are defaults
for each explicit check, which may override them. The keys and their
readers are the table in service_keys.py.

Each VIP x each (port, protocol) of each policy entry is one Service.
"""

from __future__ import annotations

import re
from dataclasses import replace

from yaml.nodes import MappingNode, ScalarNode

from . import grammar, service_keys
from .checks import check_timing, explicit_checks, implicit_checks
from .errors import did_you_mean
from .grammar import GrammarError
from .model import Backend, Service
from .reader import Reader, is_null, join, kind
from .servers import Reachability, ServerGroups, vips
from .service_keys import MAX_BACKENDS

# The keys of a service and of a policy entry besides the settings in service_keys.SETTINGS.
SERVICE_OWN_KEYS = ("virtual", "servers", "policy")
ENTRY_OWN_KEYS = ("bind", "checks")
FOU_GUE = ("fou", "gue")

_A_SERVICE = " (a service: virtual, servers, policy, ...)"
_REQUIRED = {
    "virtual": "one or more VIPs (virtual: 192.0.2.1, or a list)",
    "servers": "a list of servers, or the name of a top-level servers: group",
    "policy": "a policy map (http:, https:, 443:, domain:, ...) or the name of a top-level policy",
}


class ServiceCompiler:
    """Compiles the services of one file; named server groups and policies are read once, at the start."""

    def __init__(self, r: Reader, servers_node, policy_node, scheduler, scheduler_node, vlans=()):
        self.r = r
        self.keys = service_keys.table()
        self.reach = Reachability(r, vlans)   # vlans: IPv4Interface/IPv6Interface of vlans and vlans6
        self.scheduler = scheduler
        self.scheduler_node = scheduler_node
        self.servers = ServerGroups(r, servers_node)
        self.policies = self._named_policies(policy_node)    # name -> (mapping node, path) or None
        self.used_policies = set()
        self.seen = {}        # (vip, port, proto) -> (path, origin)
        self.disabled_vips = set()   # VIPs written with a trailing '*'

    def _named_policies(self, node) -> dict:
        r = self.r
        out = {}
        if node is None or is_null(node):
            return out
        m = r.mapping(node, "policy", what=" of policy name -> policy")
        for name, (_, v) in (m or {}).items():
            if isinstance(v, MappingNode):
                out[name] = (v, join("policy", name))
            else:
                r.error(v, join("policy", name), f"a named policy must be a mapping of policy entries "
                                                 f"(http:, 443:, ...), not {kind(v)}")
                out[name] = None
        return out

    # -- services ---------------------------------------------------------------

    def compile(self, node) -> list:
        r = self.r
        items = r.sequence(node, "services")
        if items is None:
            return []
        out = []
        for i, item in enumerate(items):
            out.extend(self.service(item, f"services[{i}]"))
        # vc5: a '*' on a VIP marks every service on that VIP disabled.
        return [replace(s, disabled=True) if s.vip in self.disabled_vips else s for s in out]

    def service(self, node, path) -> list:
        r = self.r
        m = r.mapping(node, path, self.keys.allowed(*SERVICE_OWN_KEYS), _A_SERVICE)
        if m is None:
            return []
        base = {}
        if self.scheduler is not None:
            base["scheduler"] = (self.scheduler, self.scheduler_node, "scheduler")
        svc = self.keys.read(r, m, path, base)
        missing = self._missing(m, node, path)
        given = {k: (m[k][1], join(path, k)) for k in SERVICE_OWN_KEYS if k not in missing}
        addresses = vips(r, *given["virtual"]) if "virtual" in given else None
        servers = self.servers.of(*given["servers"]) if "servers" in given else None
        policy = self.policy_of(*given["policy"]) if "policy" in given else None
        if servers is not None:
            self._count_servers(servers, *given["servers"])
        if addresses is None or policy is None or servers is None:
            if policy is not None:
                # Report the policy's own problems now, not after the VIP or servers are fixed.
                self.validate_unused(*policy)
            return []
        return self._entries(policy, svc, addresses, servers)

    def _entries(self, policy, svc, addresses, servers) -> list:
        """The Services of each entry of a service's policy."""
        r = self.r
        pnode, ppath = policy
        pm = r.mapping(pnode, ppath, what=" of policy entries (http:, 443:, domain:, ...)")
        if not pm:
            if pm is not None:
                r.error(pnode, ppath, "has no entries: add at least one (http:, https:, 443:, ...)")
            return []
        out = []
        for key, (knode, vnode) in pm.items():
            out.extend(self.entry(key, knode, vnode, join(ppath, key), svc, addresses, servers))
        return out

    def _missing(self, m, node, path) -> list:
        """The required keys the service lacks (each reported)."""
        missing = [k for k in SERVICE_OWN_KEYS if k not in m or is_null(m[k][1])]
        for k in missing:
            where = m[k][1] if k in m else node
            self.r.error(where, join(path, k), f"is required: a service needs {_REQUIRED[k]}")
        return missing

    def _count_servers(self, servers, node, path):
        """A service has 1..MAX_BACKENDS servers."""
        if not servers:
            self.r.error(node, path, "is empty: a service needs at least one server")
        elif len(servers) > MAX_BACKENDS:
            self.r.error(node, path, f"has {len(servers)} servers; at most {MAX_BACKENDS} per service")

    # -- policies ---------------------------------------------------------------

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
                overrides = r.mapping(vnode, p, self.keys.allowed(*ENTRY_OWN_KEYS)) or {}
                st = self.keys.read(r, overrides, p, {})
                check_timing(r, st, p, knode)
                checks = overrides.get("checks", (None, None))[1]
                if not is_null(checks):
                    explicit_checks(r, checks, join(p, "checks"), self.keys.values(st), ports[0])

    # -- policy entries -----------------------------------------------------------

    def entry(self, key, knode, vnode, path, svc, addresses, servers) -> list:
        """One policy entry (e.g. `https: {path: /x}`) -> its Services on every VIP."""
        r = self.r
        try:
            ports, checks_on = grammar.policy_key(key)
        except GrammarError as e:
            r.error(knode, path, str(e))
            return []
        parsed = self._entry_value(vnode, path)
        if parsed is None:
            return []
        overrides, bind, bind_path = parsed
        st = self.keys.read(r, overrides, path, svc)
        check_timing(r, st, path, knode)
        checks_node = overrides.get("checks", (None, None))[1]
        if not self._bind_fits(bind, bind_path, ports):
            return []
        if not self._checks_allowed(key, checks_node, checks_on, path):
            return []
        g = self.keys.values(st)
        made = self.keys.service_fields(g), self.keys.explicit_keys(st)   # for each Service(...)
        out = []
        for pp in ports:
            checks = self._entry_checks(checks_node, path, g, pp)
            if checks is None:
                continue
            if not self._tunnel_fits(st, g) or not self._need_fits(st, g["need"], servers, knode, path):
                return []
            backends = tuple(Backend(a, pp.port, disabled, weight, checks)   # servers are sorted by address
                             for a, disabled, weight, *_ in servers)
            self.reach.check(servers, g["tunnel-type"])
            out.extend(self._place(addresses, pp, backends, made, knode, path))
        return out

    def _entry_value(self, vnode, path):
        """(overrides, bind, (bind node, bind path)) of a policy entry's value, or None when refused.

        The value is empty, a port (the servers' port, which must be the service's), or a mapping.
        """
        r = self.r
        if is_null(vnode):
            return {}, None, None
        if isinstance(vnode, ScalarNode) and re.fullmatch(r"[0-9]+", vnode.value.strip()):
            return {}, service_keys.port(r, vnode, path), (vnode, path)
        if not isinstance(vnode, MappingNode):
            r.error(vnode, path, f"a policy entry's value must be empty, a port, or a mapping of overrides, "
                                 f"not {kind(vnode)}")
            return None
        overrides = r.mapping(vnode, path, self.keys.allowed(*ENTRY_OWN_KEYS, "port")) or {}
        if "port" in overrides:
            r.error(overrides.pop("port")[0], join(path, "port"),
                    "unknown key 'port': the service port comes from the policy key (use '8080/http:' "
                    "for a web service on 8080); to check another port list checks: "
                    "[{type: http, port: 8080}]")
        if "bind" not in overrides:
            return overrides, None, None
        bind_node = overrides["bind"][1]
        bind_path = join(path, "bind")
        return overrides, service_keys.port(r, bind_node, bind_path), (bind_node, bind_path)

    def _bind_fits(self, bind, where, ports) -> bool:
        """Direct Server Return: the servers listen on the service port (docs/configuration.md, "Policy")."""
        if bind is None:
            return True
        for pp in ports:
            if bind != pp.port:
                self.r.error(where[0], where[1],
                             f"the servers' port {bind} differs from the service port {pp.port}: with Direct "
                             f"Server Return the backend receives the client's packet unchanged, so it must "
                             f"listen on port {pp.port} (vc5's config.pl allowed port mapping only in its -n "
                             f"NAT mode, which this load balancer does not have); remove the port or use "
                             f"'{pp.port}' as the service")
                return False
        return True

    def _checks_allowed(self, key, checks_node, checks_on, path) -> bool:
        if checks_node is not None and not checks_on:
            self.r.error(checks_node, join(path, "checks"),
                         f"policy key '{key}' ends with '*', which turns checks off, yet checks are listed; "
                         "drop one of the two")
            return False
        return True

    def _entry_checks(self, checks_node, path, g, pp):
        """The checks of one (port, protocol) of the entry; None when they are refused."""
        if checks_node is None:
            return implicit_checks(g, pp)
        if is_null(checks_node):
            return ()   # `checks:` left empty = no checks
        return explicit_checks(self.r, checks_node, join(path, "checks"), g, pp)

    def _tunnel_fits(self, st, g) -> bool:
        """fou and gue need tunnel-port; the other tunnel types refuse it."""
        t, tport = g["tunnel-type"], g["tunnel-port"]
        if t in FOU_GUE and not tport:
            _, node, path = st["tunnel-type"]
            self.r.error(node, path, f"tunnel type {t} needs tunnel-port (the UDP port the backends' "
                                     f"{t.upper()} receiver listens on)")
            return False
        if tport and t not in FOU_GUE:
            _, node, path = st["tunnel-port"]
            self.r.error(node, path, f"tunnel-port applies only to tunnel-type fou or gue (this service's "
                                     f"tunnel type is {t})")
            return False
        return True

    def _need_fits(self, st, need, servers, knode, path) -> bool:
        """need at most the servers (refused), at most the enabled ones (warned)."""
        node, where = (st["need"][1], st["need"][2]) if "need" in st else (knode, path)
        if need > len(servers):
            self.r.error(node, where, f"need {need} can never be met: the service has only {len(servers)} "
                                      "server(s); need is the number of healthy servers required for the VIP "
                                      "to be advertised")
            return False
        usable = sum(1 for s in servers if not s[1])
        if need > usable:
            self.r.warn(node, where, f"need {need} but only {usable} of {len(servers)} servers are enabled; "
                                     "the service stays down until more are enabled")
        return True

    def _place(self, addresses, pp, backends, made, knode, path) -> list:
        """The entry's Service on each VIP, refusing a VIP that is its own server or already defined."""
        r = self.r
        out = []
        own = {b.address for b in backends}
        origin = r.origin(knode)
        fields, keys = made
        for vip, star, vnode in addresses:
            if star:
                self.disabled_vips.add(vip)
            ident = (vip, pp.port, pp.protocol)
            if vip in own:
                r.error(vnode, path, f"VIP {vip} is also one of its own servers")
                continue
            if ident in self.seen:
                first_path, first_origin = self.seen[ident]
                r.error(knode, path, f"service {vip}:{pp.port}:{pp.protocol} is already defined at "
                                     f"{first_origin} ({first_path}); vc5 silently kept only the last "
                                     "definition, this load balancer refuses duplicates: define each "
                                     "VIP:port:protocol once")
                continue
            self.seen[ident] = (path, origin)
            out.append(Service(vip=vip, port=pp.port, protocol=pp.protocol, disabled=star, backends=backends,
                               explicit=keys, origin=origin, **fields))
        return out
