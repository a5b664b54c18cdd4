"""vc5's expanded JSON view of a Config (what vc5's cmd/config.pl prints), and its masked form.

Invariant: for a configuration that uses only vc5's grammar, to_vc5_json()
equals config.pl's output as data (tests/unit/test_config_vc5json.py checks it
against vc5's own regression fixtures). Optional keys appear only when the YAML
set them, as config.pl does; our extras appear only when used.
"""

from __future__ import annotations

import copy

from .model import Config, Peer, Service
from .secrets import SECRET, mask_url

_COPIED = ("multicast", "webserver", "webroot", "defcon", "host_id")


def to_vc5_json(cfg: Config) -> dict:
    out: dict = {
        "services": {s.key: _service(s) for s in cfg.services},
        "bgp": {str(p.address): _peer(p) for p in (cfg.bgp.peers if cfg.bgp else ())},
    }
    ex = cfg.explicit
    for key, attr in (("vlans", cfg.vlans), ("vlans6", cfg.vlans6)):
        if key in ex:
            out[key] = {str(vid): str(prefix) for vid, prefix in attr.items()}
    for key in _COPIED:
        if key in ex and getattr(cfg, key) is not None:
            out[key] = getattr(cfg, key)
    if "address" in ex and cfg.address is not None:
        out["address"] = str(cfg.address)
    if "interfaces" in ex:
        out["interfaces"] = list(cfg.interfaces)
    for key in ("native", "untagged"):
        if key in ex:
            out[key] = getattr(cfg, key)
    if "logging" in ex:
        out["logging"] = _logging(cfg)
    if cfg.bgp is not None and cfg.bgp.listen:
        out["listen"] = True
    if cfg.learn > 0:
        out["learn"] = cfg.learn
    for key in ("xdp_mode", "flows_per_cpu"):
        if key in ex:
            out[key] = getattr(cfg, key)
    if "flows" in ex:                   # the new name of flows_per_cpu (model field flows_per_cpu)
        out["flows"] = cfg.flows_per_cpu
    if "flow_rate" in ex:
        out["flow_rate"] = cfg.flow_rate
    if cfg.bgp is not None:   # our extras, top-level because vc5's "bgp" maps peers only
        if cfg.bgp.router_id is not None and cfg.bgp.router_id != cfg.address:
            out["router_id"] = str(cfg.bgp.router_id)
        if cfg.bgp.graceful_shutdown:
            out["graceful_shutdown"] = cfg.bgp.graceful_shutdown
        if cfg.bgp.graceful_restart:
            out["graceful_restart"] = True
    return out


def masked(cfg: Config) -> dict:
    """to_vc5_json() with every secret replaced by vc5's "************" (for /config.json).

    Secrets (docs/configuration.md, "Secrets and credentials"): MD5 passwords, the webhook
    URLs whole (as vc5: a Slack or Teams URL is its token), the Elasticsearch username and
    password, and in the Elasticsearch URLs any user:password@ and query (mask_url).
    """
    out = copy.deepcopy(to_vc5_json(cfg))
    log = out.get("logging", {})
    for key in ("slack", "teams"):
        if key in log:
            log[key] = SECRET
    es = log.get("elasticsearch", {})
    for key in ("username", "password"):
        if key in es:
            es[key] = SECRET
    if "addresses" in es:
        es["addresses"] = [mask_url(a) for a in es["addresses"]]
    for peer in out["bgp"].values():
        if "md5" in peer:
            peer["md5"] = SECRET
    return out


def _service(s: Service) -> dict:
    d: dict = {"need": s.need, "sticky": s.sticky, "reset": s.reset}
    ex = s.explicit
    if s.name is not None:
        d["name"] = s.name
    if s.description is not None:
        d["description"] = s.description
    if "priority" in ex:
        d["priority"] = s.priority
    if "tunnel-type" in ex:
        d["tunnel-type"] = s.tunnel_type
    if s.tunnel_port:
        d["tunnel-port"] = s.tunnel_port
    if s.tunnel_no_checksum:
        d["tunnel-no-checksum"] = True
    if s.scheduler is not None:
        d["scheduler"] = s.scheduler
    if s.persist is not None:
        d["persist"] = s.persist
    if s.disabled:
        d["disabled"] = True
    for key in ("interval", "timeout", "rise", "fall"):   # our extras
        if key in ex:
            d[key] = getattr(s, key)
    d["reals"] = {
        b.key: {
            "checks": [_check(c, b.port) for c in b.checks],
            "disabled": b.disabled,
            "weight": 0 if b.disabled else b.weight,   # config.pl: '*' -> weight 0
        } for b in s.backends
    }
    return d


def _check(c, port: int) -> dict:
    d: dict = {"type": c.type}
    if c.port != port:
        d["port"] = c.port
    if c.type == "dns":
        d["method"] = c.method
    elif c.type in ("http", "https"):
        if c.host is not None:
            d["host"] = c.host
        if c.path is not None:
            d["path"] = c.path
        if c.expect:
            d["expect"] = list(c.expect)
        if c.method is not None:
            d["method"] = c.method
    if c.timeout is not None:
        d["timeout"] = c.timeout
    return d


def _peer(p: Peer) -> dict:
    ex = p.explicit
    d: dict = {"as_number": p.as_number}
    for key in ("hold_time", "local_pref", "med"):
        if key in ex:
            d[key] = getattr(p, key)
    if "communities" in ex:
        d["communities"] = list(p.communities)
    if p.source_ip is not None:
        d["source_ip"] = str(p.source_ip)
    if p.next_hop_6 is not None:
        d["next_hop_6"] = str(p.next_hop_6)
        d["multiprotocol"] = True
    for key in ("accept", "reject"):
        if key in ex:
            d[key] = _filters(getattr(p, key))
    # our extras
    if p.peer_as is not None:
        d["peer_as"] = p.peer_as
    if "large_communities" in ex:
        d["large_communities"] = list(p.large_communities)
    if p.next_hop_4 is not None:
        d["next_hop_4"] = str(p.next_hop_4)
    for key in ("passive", "md5", "port"):
        if key in ex:
            d[key] = getattr(p, key)
    return d


def _filters(nets) -> list:
    """Prefixes as strings; `any` (0.0.0.0/0 with ::/0) is shown as config.pl shows it: 0.0.0.0/0."""
    strs = [str(n) for n in nets]
    if "0.0.0.0/0" in strs and "::/0" in strs:
        strs.remove("::/0")
    return strs


def _logging(cfg: Config) -> dict:
    lg = cfg.logging
    d: dict = {"alert": lg.alert, "syslog": lg.syslog}   # config.pl always emits these two
    if lg.slack is not None:
        d["slack"] = lg.slack
    if lg.teams is not None:
        d["teams"] = lg.teams
    if lg.elasticsearch:
        d["elasticsearch"] = {k: list(v) if isinstance(v, tuple) else v for k, v in lg.elasticsearch.items()}
    return d
