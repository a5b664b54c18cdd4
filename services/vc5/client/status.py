"""The /status.json document, a pure function of one Snapshot: what vc5-webd serves and
`vc5ctl status --json` prints (docs/observability.md, "HTTP endpoints").

Field names, nesting and ordering follow vc5 (vc5:status.go, vc5:manager.go),
so dashboards and scripts written for vc5 keep working. Additions are only
ever new keys (`drained` on a destination, `daemons` at the top level), never
renamed ones.

DSR invariant: egress counters are always 0 and `summary.dsr` is true (the
balancer never sees return traffic).
"""

from __future__ import annotations

import datetime
from typing import Mapping

from vc5.common import names

from .snapshot import EMPTY, Snapshot, addr_key

GO_ZERO_TIME = "0001-01-01T00:00:00Z"   # Go's time.Time{} marshalled: "never"


def go_time(us: int) -> str:
    """µs since the epoch -> RFC 3339 as Go marshals time.Time (UTC); 0 -> Go's zero time."""
    if not us:
        return GO_ZERO_TIME
    t = datetime.datetime.fromtimestamp(us / 1e6, tz=datetime.timezone.utc)
    return t.isoformat().replace("+00:00", "Z")


def by_address(backends) -> list:
    """Backends in the order every document lists them: by address (numeric), then port."""
    return sorted(backends, key=lambda b: (addr_key(b.address), b.port))


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
        "blocked": int(g.get("blocked", 0)),                   # source prefix block list drops
        "blocked_per_second": int(r.get("blocked", 0)),
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
                         for b in by_address(s.backends)],
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
        **({"bfd": p.bfd} if p.bfd else {}),    # ours: only for a peer with BFD (docs/bgp.md, "BFD")
    }


def daemons(snap: Snapshot) -> dict:
    """Ours: which daemons webd could read (absent ones are shown as such, never guessed)."""
    absent = set(snap.absent)
    return {bus: bus not in absent for bus in (names.HEALTH_BUS, names.BGP_BUS, names.XDP_LOADER_BUS)}
