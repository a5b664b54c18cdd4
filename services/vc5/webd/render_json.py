"""vc5-compatible JSON documents, each a pure function of one Snapshot.

Field names, nesting and ordering follow vc5 (vc5:status.go, vc5:manager.go,
cue:director.go, xvs) as described in the spec §1.9, so dashboards and
scripts written for vc5 keep working. Additions are only ever new keys
(`drained` on a destination, `daemons` at the top level), never renamed ones.

DSR invariant: egress counters are always 0 and `summary.dsr` is true (the
balancer never sees return traffic).
"""

from __future__ import annotations

import datetime
import gzip
import json
import sys
from typing import Mapping

from vc5.common import names

from .snapshot import EMPTY, Snapshot

GO_ZERO_TIME = "0001-01-01T00:00:00Z"   # Go's time.Time{} marshalled: "never"
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17}
TUNNEL_NUMBERS = {"none": 0, "ipip": 1, "gre": 2, "fou": 3, "gue": 4}


def dumps(document) -> bytes:
    """vc5 pretty-prints its JSON and ends it with a newline."""
    return (json.dumps(document, indent=2) + "\n").encode()


def gzipped(body: bytes) -> bytes:
    # mtime=0: identical documents give identical bytes (cacheable, testable).
    return gzip.compress(body, compresslevel=6, mtime=0)


def go_time(us: int) -> str:
    """µs since the epoch -> RFC 3339 as Go marshals time.Time (UTC); 0 -> Go's zero time."""
    if not us:
        return GO_ZERO_TIME
    t = datetime.datetime.fromtimestamp(us / 1e6, tz=datetime.timezone.utc)
    return t.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- /status.json

def stats(counters: Mapping, rates: Mapping, mac: str = "") -> dict:
    """vc5's Stats object; egress is always 0 under DSR."""
    out = {
        "ingress_octets": int(counters.get("octets", 0)),
        "ingress_packets": int(counters.get("packets", 0)),
        "egress_octets": 0,
        "egress_packets": 0,
        "flows": int(counters.get("flows", 0)),
        "current": int(counters.get("current", 0)),
        "ingress_octets_per_second": int(rates.get("octets", 0)),
        "ingress_packets_per_second": int(rates.get("packets", 0)),
        "egress_octets_per_second": 0,
        "egress_packets_per_second": 0,
        "flows_per_second": int(rates.get("flows", 0)),
    }
    if mac:
        out["mac"] = mac
    return out


def _sum_stats(items) -> dict:
    total = stats(EMPTY, EMPTY)
    for s in items:
        for k, v in s.items():
            if k != "mac":
                total[k] += v
    return total


def summary(snap: Snapshot) -> dict:
    g = snap.xdp.globals if snap.xdp else EMPTY
    r = snap.rates.globals
    return {
        "uptime": snap.uptime,
        "latency_ns": snap.xdp.latency_ns if snap.xdp else 0,
        "current": int(g.get("current", 0)),
        "dropped": 0,
        "dropped_per_second": 0,
        "blocked": 0,
        "blocked_per_second": 0,
        "notqueued": 0,
        "notqueued_per_second": 0,
        "toobig": int(g.get("too_big", 0)),
        "toobig_per_second": 0,
        "ingress_octets": int(g.get("octets", 0)),
        "ingress_octets_per_second": int(r.get("octets", 0)),
        "ingress_packets": int(g.get("packets", 0)),
        "ingress_packets_per_second": int(r.get("packets", 0)),
        "flows": int(g.get("flows", 0)),
        "flows_per_second": int(r.get("flows", 0)),
        "egress_octets": 0,
        "egress_octets_per_second": 0,
        "egress_packets": 0,
        "egress_packets_per_second": 0,
        "dsr": True,
        "vc5": True,
    }


def destination(snap: Snapshot, key: str, b) -> dict:
    mac = snap.xdp.macs.get(b.address, "") if snap.xdp else ""
    return {
        "address": b.address,
        "port": b.port,
        "stats": stats(snap.backend_counters(key, b.address),
                       snap.rates.backends.get((key, b.address), EMPTY)),
        "weight": b.weight,
        "disabled": b.disabled,
        "up": b.up,
        "for": snap.seconds_since(b.since),
        "took": b.took_ms,
        "when": 0,
        "last": 0,
        "diagnostic": b.diagnostic,
        "mac": mac,
        "drained": b.drained,       # ours: operator drain (vc5 has none)
    }


def service(snap: Snapshot, s) -> dict:
    conf = snap.config_service(s.key)
    return {
        "name": s.name,
        "description": s.description,
        "address": s.vip,
        "port": s.port,
        "protocol": s.protocol,
        "required": s.need,
        "available": s.available,
        "stats": stats(snap.service_counters(s.key), snap.rates.services.get(s.key, EMPTY)),
        "destinations": [destination(snap, s.key, b)
                         for b in sorted(s.backends, key=lambda b: (_ip_key(b.address), b.port))],
        "up": s.up,
        "for": snap.seconds_since(s.since),
        "last": 0,
        "sticky": s.sticky,
        "scheduler": str(getattr(conf, "scheduler", "") or ""),
    }


def status(snap: Snapshot) -> dict:
    services: dict = {}
    vips = []
    if snap.health is not None:
        for s in snap.health.services:
            services.setdefault(s.vip, []).append(service(snap, s))
        for v in snap.health.vips:
            vips.append({
                "vip": v.vip,
                "up": v.up,
                "stats": _sum_stats(x["stats"] for x in services.get(v.vip, ())),
                "for": snap.seconds_since(v.since),
            })
    bgp = {p.address: peer(snap, p) for p in snap.bgp.peers} if snap.bgp else {}
    return {
        "summary": summary(snap),
        "services": services,
        "bgp": bgp,
        "vip": vips,
        "rib": list(snap.bgp.advertised) if snap.bgp else [],
        "logging": {"elasticsearch_errors": 0, "webhook_errors": 0},
        "daemons": daemons(snap),
    }


def peer(snap: Snapshot, p) -> dict:
    duration = p.duration_s or (snap.seconds_since(p.when) if p.when else 0)
    return {
        "state": p.state,
        "when": go_time(p.when),
        "duration_s": duration,
        "update_calculation_ms": p.update_calculation_ms,
        "advertised_routes": p.advertised_routes,
        "withdrawn_routes": p.withdrawn_routes,
        "current_routes": p.current_routes,
        "connection_attempts": p.connection_attempts,
        "successful_connections": p.successful_connections,
        "established_sessions": p.established_sessions,
        "last_error": p.last_error,
        "hold_time": p.hold_time,
        "local_asn": p.local_asn,
        "remote_asn": p.remote_asn,
        "adj_rib_out": list(p.adj_rib_out),
        "local_ip": p.local_ip,
    }


def daemons(snap: Snapshot) -> dict:
    """Ours: which daemons webd could read (absent ones are shown as such, never guessed)."""
    absent = set(snap.absent)
    return {bus: bus not in absent for bus in (names.HEALTH_BUS, names.BGP_BUS, names.XDP_LOADER_BUS)}


# ---------------------------------------------------------------- /cue.json

def _check(c) -> dict:
    return {
        "type": c.type,
        "port": c.port,
        "method": c.method or "",
        "host": c.host or "",
        "path": c.path or "",
        "expect": list(c.expect),
    }


def cue(snap: Snapshot) -> list:
    """cue's Director.Status(): services sorted by (address, port, protocol)."""
    out = []
    if snap.health is None:
        return out
    for s in snap.health.services:
        conf = snap.config_service(s.key)
        checks = {}
        if conf is not None:
            for cb in conf.backends:
                checks[str(cb.address)] = [_check(c) for c in cb.checks]
        dests = []
        for b in sorted(s.backends, key=lambda b: (_ip_key(b.address), b.port)):
            dests.append({
                "address": b.address,
                "port": b.port,
                "disabled": b.disabled,
                "weight": b.weight,
                "status": {
                    "OK": b.up,
                    "Diagnostic": b.diagnostic,
                    "Took": b.took_ms * 1_000_000,     # Go time.Duration: ns
                    "Last": GO_ZERO_TIME,
                    "When": go_time(b.since),
                    "Initialised": b.since != 0,
                },
                "checks": checks.get(b.address, []),
            })
        out.append({
            "Address": s.vip,
            "Port": s.port,
            "Protocol": PROTOCOL_NUMBERS.get(s.protocol, 0),
            "Scheduler": 0,
            "Persist": int(getattr(conf, "persist", 0) or 0),
            "Sticky": s.sticky,
            "Reset": bool(getattr(conf, "reset", False)),
            "Required": s.need,
            "Destinations": dests,
            "Up": s.up,
            "When": go_time(s.since),
        })
    return out


# ---------------------------------------------------------------- /lb.json

def _xvs_stats(c: Mapping) -> dict:
    return {"Connections": int(c.get("flows", 0)), "IncomingPackets": int(c.get("packets", 0)),
            "IncomingBytes": int(c.get("octets", 0))}


def _mac_bytes(mac: str) -> list:
    try:
        parts = [int(x, 16) for x in mac.split(":")]
    except ValueError:
        parts = []
    return parts if len(parts) == 6 else [0] * 6


def lb(snap: Snapshot) -> list:
    """xvs's view of what is programmed into the data plane."""
    out = []
    if snap.health is None:
        return out
    for s in snap.health.services:
        sc = snap.service_counters(s.key)
        dests = []
        for b in sorted(s.backends, key=lambda b: (_ip_key(b.address), b.port)):
            bc = snap.backend_counters(s.key, b.address)
            dests.append({
                "Destination": {
                    "Address": b.address,
                    "TunnelType": TUNNEL_NUMBERS.get(s.tunnel_type, 0),
                    "TunnelPort": s.tunnel_port,
                    "TunnelEncapNoChecksum": s.tunnel_no_checksum,
                    "Disable": not b.usable,
                },
                "ActiveConnections": int(bc.get("current", 0)),
                "Stats": _xvs_stats(bc),
                "Metrics": dict(bc),
                "MAC": _mac_bytes(snap.xdp.macs.get(b.address, "") if snap.xdp else ""),
            })
        out.append({
            "Service": {
                "Service": {"Address": s.vip, "Port": s.port,
                            "Protocol": PROTOCOL_NUMBERS.get(s.protocol, 0), "Sticky": s.sticky},
                "Stats": _xvs_stats(sc),
                "Metrics": dict(sc),
            },
            "Destinations": dests,
        })
    return out


# ---------------------------------------------------------------- /config.json, /build.json, /prefixes.json

def config(snap: Snapshot):
    """vc5's expanded config with secrets masked; None when no config could be read."""
    if snap.config is None:
        return None
    from vc5.config import masked
    return masked(snap.config)


def build() -> dict:
    """The shape of Go's debug.BuildInfo, filled with what this Python build is made of."""
    from importlib import metadata
    deps = []
    for dist in ("aiohttp", "dbus-next", "prometheus-client", "PyYAML"):
        try:
            deps.append({"Path": dist, "Version": metadata.version(dist), "Sum": ""})
        except metadata.PackageNotFoundError:
            continue
    try:
        version = metadata.version("vc5")
    except metadata.PackageNotFoundError:
        version = "(devel)"
    return {
        "GoVersion": "",
        "Path": "vc5/webd",
        "Main": {"Path": "vc5", "Version": version, "Sum": ""},
        "Deps": deps,
        "Settings": [{"Key": "python", "Value": sys.version.split()[0]},
                     {"Key": "implementation", "Value": sys.implementation.name}],
    }


PREFIXES_ABSENT = {
    "error": "per-/20 prefix counters are not collected by this data plane",
    "detail": "vc5 v0.2's /prefixes.json (1,048,576 per-source-/20 packet counts) needs the xvs v0.1 "
              "prefix_counters map; this data plane, like vc5 v0.3 (HEAD), has none.",
}


def _ip_key(text: str):
    from .snapshot import _addr_key
    return _addr_key(text)
