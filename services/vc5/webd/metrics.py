"""Prometheus `/metrics`: a prometheus-client Collector over one Snapshot.

Names and label formats are vc5's, verbatim (docs/observability.md, "Prometheus"; vc5:prometheus.go,
vc5:cmd/balancer.go): `service` = "<vip>:<proto>:<port>" (note: not the JSON
key's order), `backend` = "<ip>:<port>", `name` = the service name, `status` =
"up"|"down"; xvs families carry `address`, `port`, `protocol`, `destination`
and `service` = "<vip>:<port>:<proto>". What we fix: every family has HELP and
TYPE right above its samples (vc5 omits them for `vc5_toobig` and
`vc5_backend_reserves_used` and prints xvs TYPE lines far from the samples).

Exposition: prometheus-client 0.16's generate_latest() renames a counter
family `x` to `x_total`, which would break vc5's names (`vc5_rx_packets`,
`xvs_global_packets` are counters without the suffix, valid in the 0.0.4 text
format). So the families come from this Collector (prometheus-client Metric
objects, so a registry could serve them too) and `exposition()` prints them
with their exact names, in text format 0.0.4. Label values are escaped as the
format requires (backslash, double quote, newline).

Our additions: `vc5_bgp_*` (per peer: state, uptime, routes, updates),
`vc5_healthcheck_*` (per backend: last probe duration, up, drained,
disabled), `vc5_daemon_up`.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from vc5.client import status as render_status
from vc5.client.snapshot import EMPTY, XVS_BACKEND_COUNTERS, XVS_GAUGES, XVS_METRICS, Snapshot
from vc5.common import names, xvs_names

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# vc5's own HELP strings (vc5:prometheus.go); the rest get a sentence of ours.
VC5_HELP = {
    "uptime": "Uptime in seconds",
    "defcon": "Readiness level",
    "latency": "Average packet processing latency in nanoseconds",
    "sessions": "Estimated number of current active sessions",
    "session_total": "Total number of new sessions written to state tracking table",
    "toobig": "Total number of packets too big to forward",
    "rx_packets": "Total number of incoming packets",
    "rx_octets": "Total number incoming bytes",
    "tx_packets": "Total number of outgoing packets",
    "tx_octets": "Total number outgoing bytes",
}
RESERVES = 666   # vc5's constant *_reserves_used value, kept so vc5 dashboards keep working

XVS_HELP = {
    "latency": "Average packet processing latency in nanoseconds",
    "current": "Estimated number of current active connections",
    "packets": "Packets processed",
    "octets": "Octets processed",
    "flows": "New flows written to the flow table",
    "errors": "Packets dropped on an error",
    "syn": "TCP SYN packets", "ack": "TCP ACK packets", "fin": "TCP FIN packets", "rst": "TCP RST packets",
    "not_ip": "Packets that were not IP", "not_a_vip": "Packets not addressed to a VIP",
    "probe_reply": "Health-check probe replies reverse-translated",
    "userspace": "Packets passed to the host stack", "icmp_echo_request": "ICMP echo requests answered",
    "too_big": "Packets too big to forward after encapsulation",
    "tunnel_unsupported": "Packets dropped: tunnel type unsupported",
    "adjust_failed": "Packets dropped: headroom adjustment failed",
}


class Family:
    """A metric family with label names fixed up front and samples added in order."""

    def __init__(self, name: str, help_text: str, typ: str, labels: Iterable[str] = ()):
        self.metric = Metric(name, help_text, typ)
        self.labels = tuple(labels)

    def add(self, values, value) -> None:
        # ints stay ints: u64 counters above 2**53 would lose precision as floats.
        value = int(value) if isinstance(value, bool) else value
        labels = dict(zip(self.labels, [v if isinstance(v, str) else str(v) for v in values]))
        self.metric.add_sample(self.metric.name, labels, value)


def _updown(up: bool) -> str:
    return "up" if up else "down"


class SnapshotCollector:
    """prometheus-client Collector: `collect()` yields the families of `source()`'s Snapshot."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        snap = self.source()
        if snap is None:
            return
        yield from vc5_families(snap)
        yield from xvs_families(snap)
        yield from dataplane_families(snap)
        yield from bgp_families(snap)
        yield from healthcheck_families(snap)
        yield from daemon_families(snap)


def vc5_families(snap: Snapshot):
    summ = render_status.summary(snap)
    for key, typ, value in (
            ("uptime", "counter", summ["uptime"]),
            ("defcon", "gauge", 0),
            ("latency", "gauge", summ["latency_ns"]),
            ("sessions", "gauge", summ["current"]),
            ("session_total", "counter", summ["flows"]),
            ("toobig", "counter", summ["toobig"]),
            ("rx_packets", "counter", summ["ingress_packets"]),
            ("rx_octets", "counter", summ["ingress_octets"]),
            ("tx_packets", "counter", 0),
            ("tx_octets", "counter", 0)):
        f = Family("vc5_" + key, VC5_HELP[key], typ)
        f.add((), value)
        yield f.metric

    vip_status = Family("vc5_vip_status", "VIP status (1 up, 0 down)", "gauge", ("vip",))
    vip_dur = Family("vc5_vip_status_duration", "Seconds the VIP has been in its current status",
                     "gauge", ("vip", "status"))
    if snap.health is not None:
        for v in snap.health.vips:
            vip_status.add((v.vip,), int(v.up))
            vip_dur.add((v.vip, _updown(v.up)), snap.seconds_since(v.since))
    yield vip_status.metric
    yield vip_dur.metric

    svc_labels = ("service", "name")
    svc = {k: Family("vc5_service_" + k, h, t, svc_labels) for k, h, t in (
        ("sessions", "Estimated number of current active sessions of the service", "gauge"),
        ("sessions_total", "Total number of new sessions of the service", "counter"),
        ("rx_packets", "Total number of incoming packets of the service", "counter"),
        ("rx_octets", "Total number of incoming bytes of the service", "counter"),
        ("tx_packets", "Total number of outgoing packets of the service (0: DSR)", "counter"),
        ("tx_octets", "Total number of outgoing bytes of the service (0: DSR)", "counter"),
        ("status", "Service status (1 up, 0 down)", "gauge"),
    )}
    svc_dur = Family("vc5_service_status_duration", "Seconds the service has been in its current status",
                     "gauge", svc_labels + ("status",))
    svc_res = Family("vc5_service_reserves_used", "Constant 666, kept for vc5 compatibility", "gauge",
                     svc_labels)
    be_labels = ("service", "name", "backend")
    be = {k: Family("vc5_backend_" + k, h, t, be_labels) for k, h, t in (
        ("sessions", "Estimated number of current active sessions of the backend", "gauge"),
        ("sessions_total", "Total number of new sessions of the backend", "counter"),
        ("rx_packets", "Total number of incoming packets of the backend", "counter"),
        ("rx_octets", "Total number of incoming bytes of the backend", "counter"),
        ("tx_packets", "Total number of outgoing packets of the backend (0: DSR)", "counter"),
        ("tx_octets", "Total number of outgoing bytes of the backend (0: DSR)", "counter"),
        ("status", "Backend status (1 up, 0 down)", "gauge"),
    )}
    be_dur = Family("vc5_backend_status_duration", "Seconds the backend has been in its current status",
                    "gauge", be_labels + ("status",))
    be_res = Family("vc5_backend_reserves_used", "Constant 666, kept for vc5 compatibility", "gauge",
                    be_labels)

    if snap.health is not None:
        for s in snap.health.services:
            label = (f"{s.vip}:{s.protocol}:{s.port}", s.name)
            c = snap.service_counters(s.key)
            for k, v in (("sessions", c.get("current", 0)), ("sessions_total", c.get("flows", 0)),
                         ("rx_packets", c.get("packets", 0)), ("rx_octets", c.get("octets", 0)),
                         ("tx_packets", 0), ("tx_octets", 0), ("status", int(s.up))):
                svc[k].add(label, v)
            svc_dur.add(label + (_updown(s.up),), snap.seconds_since(s.since))
            svc_res.add(label, RESERVES)
            for b in s.backends:
                bl = label + (f"{b.address}:{b.port}",)
                c = snap.backend_counters(s.key, b.address)
                for k, v in (("sessions", c.get("current", 0)), ("sessions_total", c.get("flows", 0)),
                             ("rx_packets", c.get("packets", 0)), ("rx_octets", c.get("octets", 0)),
                             ("tx_packets", 0), ("tx_octets", 0), ("status", int(b.up))):
                    be[k].add(bl, v)
                be_dur.add(bl + (_updown(b.up),), snap.seconds_since(b.since))
                be_res.add(bl, RESERVES)
    for f in (*svc.values(), svc_dur, svc_res, *be.values(), be_dur, be_res):
        yield f.metric


def _xvs_type(counter: str) -> str:
    return "gauge" if counter in XVS_GAUGES else "counter"


def xvs_families(snap: Snapshot):
    """Raw data-plane counters; absent entirely while xdp-loader is not running."""
    x = snap.xdp
    if x is None:
        return
    f = Family("xvs_global_latency", XVS_HELP["latency"], "gauge")
    f.add((), x.latency_ns)
    yield f.metric
    for m in XVS_METRICS:
        f = Family("xvs_global_" + m, XVS_HELP.get(m, f"Data-plane counter {m} (all services)"), _xvs_type(m))
        f.add((), x.globals.get(m, 0))
        yield f.metric

    services = snap.health.services if snap.health is not None else ()
    for m in XVS_METRICS:
        f = Family("xvs_service_" + m, XVS_HELP.get(m, f"Data-plane counter {m}") + " (per service)",
                   _xvs_type(m), ("address", "port", "protocol", "service"))
        for s in services:
            f.add((s.vip, s.port, s.protocol, s.key), snap.service_counters(s.key).get(m, 0))
        yield f.metric

    vips = _virtual_counters(snap)
    for m in XVS_METRICS:
        f = Family("xvs_virtual_" + m, XVS_HELP.get(m, f"Data-plane counter {m}") + " (per VIP)",
                   _xvs_type(m), ("address",))
        for vip, c in vips.items():
            f.add((vip,), c.get(m, 0))
        yield f.metric

    for m in XVS_BACKEND_COUNTERS:
        f = Family("xvs_destination_" + m, XVS_HELP.get(m, f"Data-plane counter {m}") + " (per backend)",
                   _xvs_type(m), ("address", "port", "protocol", "destination", "service"))
        for s in services:
            for b in s.backends:
                f.add((s.vip, s.port, s.protocol, b.address, s.key),
                      snap.backend_counters(s.key, b.address).get(m, 0))
        yield f.metric


DATAPLANE_HELP = {
    "pmtu_relayed": "ICMP too-big messages relayed to the flow's backend (docs/data-plane.md, Path MTU)",
    "pmtu_rate_limited": "ICMP too-big messages not relayed: above the relay rate",
    "too_big_no_df": "IPv4 packets too big for their backend's path, without DF: dropped (not fragmented)",
    "flow_rate_limited": "New flows balanced but not stored: above the per-CPU new-flow rate (flow_rate)",
    "blocked": "Packets dropped by the source block list (vc5ctl block)",
    "share_sent_flows": "Flows sent to the other balancers (multicast flow sharing)",
    "share_sent_datagrams": "Flow-sharing datagrams sent",
    "share_send_errors": "Flow-sharing datagrams the kernel refused to send",
    "share_stale": "Noted flows not sent: older than 2 s, or their backend changed",
    "share_received_datagrams": "Flow-sharing datagrams received",
    "share_learned": "Shared flows stored in the shared table with this balancer's backend",
    "share_not_ours": "Shared flows for a service or backend this balancer does not have",
    "share_malformed": "Shared flow records that did not parse (ignored)",
}


def dataplane_families(snap: Snapshot):
    """Ours: data-plane counters with no xvs name, as vc5_dataplane_<name>_total (absent while
    xdp-loader is not running; the share_* ones only count with `multicast`)."""
    x = snap.xdp
    if x is None:
        return
    for name in xvs_names.GLOBAL_EXTRA + (xvs_names.BLOCKED,) + xvs_names.SHARE_COUNTERS:
        f = Family(f"vc5_dataplane_{name}_total", DATAPLANE_HELP[name], "counter")
        f.add((), x.globals.get(name, 0))
        yield f.metric


def _virtual_counters(snap: Snapshot) -> dict:
    """Per-VIP counters: the loader's own when it publishes them, else the sum of the VIP's services."""
    out: dict = {}
    if snap.health is None:
        return out
    for s in snap.health.services:
        own = snap.xdp.vips.get(s.vip)
        if own is not None:
            out[s.vip] = own
            continue
        acc = out.setdefault(s.vip, {})
        for k, v in snap.service_counters(s.key).items():
            acc[k] = acc.get(k, 0) + v
    return out


def bgp_families(snap: Snapshot):
    state = Family("vc5_bgp_peer_state", "BGP session state (1 for the current state of each peer)",
                   "gauge", ("peer", "state"))
    up = Family("vc5_bgp_peer_established", "BGP session established (1) or not (0)", "gauge", ("peer",))
    uptime = Family("vc5_bgp_peer_uptime_seconds", "Seconds the session has been established (0 if not)",
                    "gauge", ("peer",))
    fams = {k: Family("vc5_bgp_peer_" + k, h, "counter", ("peer",)) for k, h in (
        ("advertised_routes_total", "Prefixes advertised to the peer"),
        ("withdrawn_routes_total", "Prefixes withdrawn from the peer"),
        ("updates_sent_total", "UPDATE messages sent to the peer"),
        ("updates_received_total", "UPDATE messages received from the peer"),
        ("connection_attempts_total", "TCP connection attempts to the peer"),
        ("established_sessions_total", "Sessions that reached ESTABLISHED"),
    )}
    current = Family("vc5_bgp_peer_current_routes", "Prefixes currently advertised to the peer", "gauge",
                     ("peer",))
    rib = Family("vc5_bgp_rib_prefixes", "VIPs currently advertised (vc5's rib)", "gauge")
    if snap.bgp is not None:
        for p in snap.bgp.peers:
            established = p.state.upper() == "ESTABLISHED"
            state.add((p.address, p.state), 1)
            up.add((p.address,), int(established))
            peer = render_status.peer(snap, p)
            uptime.add((p.address,), peer["duration_s"] if established else 0)
            for k, v in (("advertised_routes_total", p.advertised_routes),
                         ("withdrawn_routes_total", p.withdrawn_routes),
                         ("updates_sent_total", p.updates_sent),
                         ("updates_received_total", p.updates_received),
                         ("connection_attempts_total", p.connection_attempts),
                         ("established_sessions_total", p.established_sessions)):
                fams[k].add((p.address,), v)
            current.add((p.address,), p.current_routes)
        rib.add((), len(snap.bgp.advertised))
    for f in (state, up, uptime, *fams.values(), current):
        yield f.metric
    if snap.bgp is not None:
        yield rib.metric


def healthcheck_families(snap: Snapshot):
    labels = ("service", "name", "backend")
    up = Family("vc5_healthcheck_up", "Last health-check verdict of the backend (1 pass, 0 fail)", "gauge",
                labels)
    took = Family("vc5_healthcheck_duration_seconds", "Duration of the backend's last health-check round",
                  "gauge", labels)
    drained = Family("vc5_healthcheck_drained", "Backend drained by an operator (1) or not (0)", "gauge",
                     labels)
    disabled = Family("vc5_healthcheck_disabled", "Backend disabled in the configuration (1) or not (0)",
                      "gauge", labels)
    if snap.health is not None:
        for s in snap.health.services:
            for b in s.backends:
                bl = (f"{s.vip}:{s.protocol}:{s.port}", s.name, f"{b.address}:{b.port}")
                up.add(bl, int(b.up))
                took.add(bl, b.took_ms / 1000)
                drained.add(bl, int(b.drained))
                disabled.add(bl, int(b.disabled))
    for f in (up, took, drained, disabled):
        yield f.metric


def daemon_families(snap: Snapshot):
    f = Family("vc5_daemon_up", "Whether webd can read the daemon on the bus (1) or not (0)", "gauge",
               ("daemon",))
    absent = set(snap.absent)
    for bus in (names.HEALTH_BUS, names.BGP_BUS, names.XDP_LOADER_BUS):
        f.add((bus,), int(bus not in absent))
    yield f.metric


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def exposition(metrics) -> bytes:
    """Text format 0.0.4 with exact family names; labels in the family's declared order.

    Label sets repeat across families (a backend appears in ~30), so each
    rendered `{...}` is cached for the duration of one exposition.
    """
    out = []
    rendered: dict = {}
    for m in metrics:
        out.append(f"# HELP {m.name} {_escape_help(m.documentation)}\n")
        out.append(f"# TYPE {m.name} {m.type}\n")
        for s in m.samples:
            labels = ""
            if s.labels:
                key = tuple(s.labels.items())
                labels = rendered.get(key)
                if labels is None:
                    labels = rendered[key] = "{" + ",".join(
                        f'{k}="{_escape_label(v)}"' for k, v in key) + "}"
            value = str(s.value) if isinstance(s.value, int) else floatToGoString(s.value)
            out.append(f"{s.name}{labels} {value}\n")
    return "".join(out).encode()


def render(snap: Snapshot) -> bytes:
    return exposition(SnapshotCollector(lambda: snap).collect())


__all__ = ["SnapshotCollector", "render", "exposition", "CONTENT_TYPE", "EMPTY"]
