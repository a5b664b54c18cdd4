"""The whole file: top-level keys, then services and bgp; collect every problem, then raise or return."""

from __future__ import annotations

import ipaddress
import os
import re

from yaml.nodes import ScalarNode

from . import bounded, fits, grammar, secrets, service_keys
from .bgp import BgpCompiler, prefix_lists
from .errors import ConfigError, Problem
from .frozen import FrozenDict
from .model import DEFAULT_FLOWS_PER_CPU, XDP_MODES, Config, Logging, address_key
from .reader import Reader, is_null, join, kind
from .services import ServiceCompiler

VC5_KEYS = {"services", "servers", "policy", "scheduler", "bgp", "prefixes", "vlans", "vlans6", "logging",
            "defcon", "learn",
            # vc5's command-line settings, under its legacy config keys
            "address", "interfaces", "native", "untagged", "multicast", "host_id", "webserver", "webroot"}
EXTRA_KEYS = {"xdp_mode", "flows", "flows_per_cpu", "flow_rate"}   # flows_per_cpu: the old name of flows
TOP_KEYS = VC5_KEYS | EXTRA_KEYS
LOGGING_KEYS = {"alert", "syslog", "slack", "teams", "elasticsearch"}
ES_KEYS = {"index", "addresses", "username", "password"}
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")   # Linux IFNAMSIZ - 1


def load(path: str, credentials: str | None = None, require_credentials: bool = False) -> Config:
    """Read and compile a configuration file; raises ConfigError listing every problem.

    credentials: the directory of systemd credentials ({credential: NAME} secrets, secrets.py);
    default $CREDENTIALS_DIRECTORY. Without one, such secrets are unset (a warning) unless
    require_credentials, which refuses them.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(bounded.MAX_BYTES + 1)   # load_text refuses more (bounded.py)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Problem(path, 0, 0, "", f"cannot read the configuration: {e}")]) from None
    return load_text(text, source=path, credentials=credentials, require_credentials=require_credentials)


def load_text(text: str, source: str = "<string>", credentials: str | None = None,
              require_credentials: bool = False) -> Config:
    """Compile YAML text; raises ConfigError listing every problem (credentials: as load())."""
    if credentials is None:
        credentials = os.environ.get(secrets.ENV) or None
    r = Reader(source, credentials, require_credentials)
    root = r.compose(text)
    cfg = None
    if not r.problems:
        cfg = compile_root(r, root)
    if r.problems:
        raise ConfigError(_sorted(r.problems))
    return cfg


def _sorted(problems):
    seen, out = set(), []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return sorted(out, key=lambda p: (p.line, p.column))


def compile_root(r: Reader, root) -> Config:
    if root is None or is_null(root):
        return Config(source=r.source)
    m = r.mapping(root, "", TOP_KEYS, " of top-level settings (services, bgp, vlans, ...)")
    if m is None:
        return None
    val = {k: v for k, (_, v) in m.items() if not is_null(v)}
    scheduler = None
    if "scheduler" in val:   # the default of every service's scheduler
        scheduler = service_keys.SETTINGS["scheduler"].reader(r, val["scheduler"], "scheduler")
    out = {"vlans": vlans(r, val.get("vlans"), "vlans", 4),
           "vlans6": vlans(r, val.get("vlans6"), "vlans6", 6)}
    services = _services(r, m, val, scheduler, tuple(out["vlans"].values()) + tuple(out["vlans6"].values()))
    out.update(this_machine(r, m, val))
    _webserver_is_own(r, root, m)
    top_learn = None
    if "learn" in val:
        top_learn = r.integer(val["learn"], "learn", 0, 86400, "a number of seconds")
    out["logging"] = logging(r, val.get("logging"))

    prefixes = prefix_lists(r, val.get("prefixes"))
    bgp = None
    if "bgp" in val:
        bgp = BgpCompiler(r, prefixes).compile(val["bgp"], out["address"])
        if bgp is not None and not bgp.learn and top_learn:
            bgp = _replace(bgp, learn=top_learn)
    learn = bgp.learn if bgp is not None and bgp.learn else (top_learn or 0)

    vips = tuple(sorted({s.vip for s in services}, key=address_key))
    return Config(source=r.source, services=tuple(services), vips=vips, bgp=bgp, learn=learn,
                  scheduler=scheduler, prefixes=FrozenDict(sorted(prefixes.items())),
                  explicit=frozenset(val), warnings=tuple(_sorted(r.warnings)),
                  **{k: v for k, v in out.items() if v is not None})


def _services(r: Reader, m: dict, val: dict, scheduler, networks) -> list:
    """The services, sorted by (VIP, port, protocol); named policies no service uses are checked too."""
    sc = ServiceCompiler(r, val.get("servers"), val.get("policy"), scheduler, val.get("scheduler"), networks)
    services = sc.compile(val["services"]) if "services" in val else []
    sc.unused_policies()
    fits.check(r, sc.seen, services)       # the data plane's map sizes (vc5.common.capacity)
    services.sort(key=lambda s: (address_key(s.vip), s.port, s.protocol))
    if services and not networks:
        r.warn(m["services"][0], "vlans", "no vlans: are configured, so the data plane knows no local "
                                          "network and cannot reach any server (vc5 v0.3 forwards nothing "
                                          "either); map each server VLAN to its prefix")
    return services


def this_machine(r: Reader, m: dict, val: dict) -> dict:
    """vc5's command-line settings (address, interfaces, native, ...) and our data-plane extras."""
    out = {"address": None}
    if "address" in val:
        out["address"] = r.address(val["address"], "address", 4,
                                   "an IPv4 address (the router ID / primary address)")
    if "interfaces" in val:
        out["interfaces"] = interfaces(r, val["interfaces"])
    for key in ("native", "untagged"):
        if key in val:
            out[key] = bool(r.boolean(val[key], key))
    if "multicast" in val:
        out["multicast"] = multicast(r, val["multicast"])
    if "webserver" in val:
        out["webserver"] = webserver(r, m["webserver"][1])
    elif "webserver" in m:
        out["webserver"] = ""
    for key in ("webroot", "host_id"):
        if key in val:
            out[key] = r.text(val[key], key)
    if "defcon" in val:
        out["defcon"] = r.integer(val["defcon"], "defcon", 1, 5, "a DEFCON level")
    if "xdp_mode" in val:
        mode = r.text(val["xdp_mode"], "xdp_mode")
        if mode is not None and mode not in XDP_MODES:
            r.error(val["xdp_mode"], "xdp_mode", f"'{mode}' is not one of {', '.join(XDP_MODES)}")
        out["xdp_mode"] = mode
    else:
        out["xdp_mode"] = "native" if out.get("native") else "generic"
    # `flows`: TCP/IPv4 flow-table entries, shared by every CPU (the IPv6 and UDP tables get a
    # quarter each, docs/data-plane.md "Flow table"); `flows_per_cpu` is its old name, still read
    # (the table stopped being per CPU in issue #14). Model field: flows_per_cpu.
    if "flows" in val and "flows_per_cpu" in val:
        r.error(val["flows_per_cpu"], "flows_per_cpu", "is the old name of flows: give only one of them")
    if "flow_rate" in val:       # new flows stored per second per CPU (docs/data-plane.md "Flow table")
        out["flow_rate"] = r.integer(val["flow_rate"], "flow_rate", 0, 100_000_000, "new flows per second")
    for key in ("flows", "flows_per_cpu"):
        if key in val:
            n = r.integer(val[key], key, 0, 100_000_000, "a number of flows")
            out["flows_per_cpu"] = n or DEFAULT_FLOWS_PER_CPU   # vc5 -F 0 -> 1,000,000
    return out


def _webserver_is_own(r: Reader, root, m: dict) -> None:
    """`webserver:` must be the file's own top-level key: vc5-webd-generator, which makes it the
    address of vc5-webd.socket, reads only that key (no merge keys), so one merged in (<<) would
    check fine and be ignored."""
    if "webserver" in m and all(k.value != "webserver" for k, _ in root.value):
        r.error(m["webserver"][0], "webserver",
                "comes from a merge key (<<), so vc5-webd.socket never sees it: vc5-webd-generator reads "
                "only the top-level webserver: itself; write it at the top level")


def interfaces(r: Reader, node) -> tuple:
    """Interface names, each once (Linux IFNAMSIZ)."""
    names = []
    for i, item in enumerate(r.sequence(node, "interfaces", scalar_ok=True) or []):
        s = r.text(item, f"interfaces[{i}]", "an interface name")
        if s is None:
            continue
        if not IFNAME_RE.match(s):
            r.error(item, f"interfaces[{i}]", f"'{s}' is not an interface name (1..15 characters)")
        elif s in names:
            r.error(item, f"interfaces[{i}]", f"interface {s} is listed twice")
        else:
            names.append(s)
    return tuple(names)


def vlans(r: Reader, node, key: str, version: int):
    """VLAN id (1..4094) -> interface prefix of the right family (host bits name the gateway)."""
    out = {}
    if node is None:
        return FrozenDict()
    m = r.mapping(node, key, what=" of VLAN id -> prefix")
    cls = ipaddress.IPv4Interface if version == 4 else ipaddress.IPv6Interface
    for k, (knode, vnode) in (m or {}).items():
        p = join(key, k)
        vid = r.integer(knode, p, 1, 4094, "a VLAN id")
        text = r.text(vnode, p, f"an IPv{version} prefix")
        if vid is None or text is None:
            continue
        try:
            iface = ipaddress.ip_interface(text.strip())
        except ValueError:
            r.error(vnode, p, f"'{text}' is not a prefix (write 10.1.10.0/24, or 10.1.10.254/24 to name the "
                              "gateway)" if version == 4 else
                    f"'{text}' is not a prefix (write fd00:1::/64, or fd00:1::1/64 to name the gateway)")
            continue
        if "/" not in text:
            r.error(vnode, p, f"'{text}' has no prefix length; write it as a CIDR such as "
                              f"{text}/{24 if version == 4 else 64}")
            continue
        if not isinstance(iface, cls):
            other = "vlans6" if version == 4 else "vlans"
            r.error(vnode, p, f"{text} is IPv{iface.version}; {key} takes IPv{version} prefixes "
                              f"(put it under {other})")
            continue
        out[vid] = iface
    return FrozenDict(sorted(out.items()))


def multicast(r: Reader, node):
    s = r.text(node, "multicast", "a multicast address:port")
    if s is None:
        return None
    host, _, port = s.strip().rpartition(":")
    try:
        a = ipaddress.ip_address(host.strip("[]"))
        ok = a.is_multicast and grammar.is_port(port)
    except ValueError:
        ok = False
    if not ok:
        r.error(node, "multicast", f"'{s}' is not a multicast address:port such as 224.0.0.1:9999")
        return None
    return s.strip()


def webserver(r: Reader, node):
    """Listen address ':80', '10.1.2.3:8080', '[::1]:80'; empty disables the web server (vc5 -w "")."""
    if is_null(node):
        return ""
    s = r.text(node, "webserver", "a listen address such as :80")
    if s is None:
        return None
    host, sep, port = s.strip().rpartition(":")
    ok = bool(sep) and grammar.is_port(port)
    if ok and host:
        try:
            ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        except ValueError:
            ok = False
    if not ok and s.strip():
        r.error(node, "webserver", f"'{s}' is not a listen address; write :80, 10.1.2.3:80 or [::1]:80")
        return None
    return s.strip()


def logging(r: Reader, node) -> Logging:
    if node is None:
        return Logging()
    m = r.mapping(node, "logging", LOGGING_KEYS)
    if m is None:
        return Logging()
    val = {k: v for k, (_, v) in m.items() if not is_null(v)}
    kw = {}
    if "alert" in val:
        kw["alert"] = r.integer(val["alert"], "logging.alert", 0, 7,
                                "a syslog level (0 EMERG, 1 ALERT, 2 CRIT, 3 ERR, 4 WARNING, 5 NOTICE, "
                                "6 INFO, 7 DEBUG)")
    if "syslog" in val:
        kw["syslog"] = r.boolean(val["syslog"], "logging.syslog")
    for key in ("slack", "teams"):
        if key in val:
            kw[key] = url(r, val[key], join("logging", key))
    if "elasticsearch" in val:
        es = r.mapping(val["elasticsearch"], "logging.elasticsearch", ES_KEYS)
        d = {}
        for k, (_, v) in (es or {}).items():
            if is_null(v):
                continue
            p = join("logging.elasticsearch", k)
            if k == "addresses":
                items = r.sequence(v, p, scalar_ok=True) or []
                urls = (url(r, item, f"{p}[{i}]") for i, item in enumerate(items))
                d[k] = tuple(u for u in urls if u is not None)
            elif k == "index":
                s = r.text(v, p)
                if s is not None:
                    d[k] = s
            else:   # username, password
                s = secrets.text(r, v, p)
                if s is not None:
                    d[k] = s
        kw["elasticsearch"] = FrozenDict(d)
    return Logging(**{k: v for k, v in kw.items() if v is not None})


def url(r: Reader, node, path):
    """An http(s) URL; a secret (it may hold a token or a password), so it may be a credential."""
    s = secrets.text(r, node, path, "a URL")
    if s is not None and not re.match(r"^https?://[^\s/]+", s.strip()):
        # The file's own text is shown; a credential's is not (docs/configuration.md, "Secrets").
        shown = "the credential" if not isinstance(node, ScalarNode) else f"'{s}'"
        r.error(node, path, f"{shown} is not an http:// or https:// URL")
        return None
    return None if s is None else s.strip()


def _replace(obj, **kw):
    from dataclasses import replace
    return replace(obj, **kw)


__all__ = ["load", "load_text", "kind"]
