"""vc5-compatible JSON documents served by vc5-webd, each a pure function of one Snapshot.

/status.json is vc5.client.status (vc5ctl prints it too); this module adds
/cue.json, /lb.json, /config.json and /build.json (/prefixes.json: prefixes.py). Field
names, nesting and ordering follow vc5 (vc5:manager.go, cue:director.go, xvs)
as docs/observability.md ("HTTP endpoints") describes, so dashboards and
scripts written for vc5 keep working.
"""

from __future__ import annotations

import gzip
import json
import sys
from typing import Mapping

from vc5.client.redact import mask_urls
from vc5.client.snapshot import Snapshot
from vc5.client.status import GO_ZERO_TIME, by_address, go_time

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17}
TUNNEL_NUMBERS = {"none": 0, "ipip": 1, "gre": 2, "fou": 3, "gue": 4}


def dumps(document) -> bytes:
    """vc5 pretty-prints its JSON and ends it with a newline."""
    return (json.dumps(document, indent=2) + "\n").encode()


def gzipped(body: bytes) -> bytes:
    # mtime=0: identical documents give identical bytes (cacheable, testable).
    return gzip.compress(body, compresslevel=6, mtime=0)


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
        for b in by_address(s.backends):
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
        for b in by_address(s.backends):
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


# ---------------------------------------------------------------- /config.json, /build.json

def config(snap: Snapshot):
    """vc5's expanded config with secrets masked, inside URLs too (vc5.client.redact); None without one."""
    if snap.config is None:
        return None
    from vc5.config import masked
    return mask_urls(masked(snap.config))


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
