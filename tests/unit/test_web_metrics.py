"""/metrics: vc5's names and label formats verbatim (spec §1.10), HELP+TYPE everywhere, parseable."""

import re

from prometheus_client.parser import text_string_to_metric_families

from vc5.client.snapshot import Snapshot, take
from vc5.webd import demo, metrics

NOW = demo.T0 / 1e6 + 315

# spec §1.10, verbatim: name -> label names in vc5's order
VC5_GOLDEN = {
    "vc5_uptime": (), "vc5_defcon": (), "vc5_latency": (), "vc5_sessions": (), "vc5_session_total": (),
    "vc5_toobig": (), "vc5_rx_packets": (), "vc5_rx_octets": (), "vc5_tx_packets": (), "vc5_tx_octets": (),
    "vc5_vip_status": ("vip",), "vc5_vip_status_duration": ("vip", "status"),
    "vc5_service_sessions": ("service", "name"), "vc5_service_sessions_total": ("service", "name"),
    "vc5_service_rx_packets": ("service", "name"), "vc5_service_rx_octets": ("service", "name"),
    "vc5_service_tx_packets": ("service", "name"), "vc5_service_tx_octets": ("service", "name"),
    "vc5_service_status": ("service", "name"),
    "vc5_service_status_duration": ("service", "name", "status"),
    "vc5_service_reserves_used": ("service", "name"),
    "vc5_backend_sessions": ("service", "name", "backend"),
    "vc5_backend_sessions_total": ("service", "name", "backend"),
    "vc5_backend_rx_packets": ("service", "name", "backend"),
    "vc5_backend_rx_octets": ("service", "name", "backend"),
    "vc5_backend_tx_packets": ("service", "name", "backend"),
    "vc5_backend_tx_octets": ("service", "name", "backend"),
    "vc5_backend_status": ("service", "name", "backend"),
    "vc5_backend_status_duration": ("service", "name", "backend", "status"),
    "vc5_backend_reserves_used": ("service", "name", "backend"),
}
XVS_M = ("current err_malformed err_tot_len err_l4_unsupported err_icmp_unsupported err_fragmented "
         "err_service_not_found err_no_backend err_backend_invalid err_no_tunnel_port err_expired "
         "err_adjust_failed err_tunnel_unsupported err_tcp_header err_udp_header "
         "err_icmp_header err_internal "
         "err_cve_2025_37799 not_ip not_a_vip probe_reply userspace icmp_echo_request too_big packets octets "
         "flows errors syn ack fin rst").split()
XVS_C = "packets octets flows errors syn ack fin rst tunnel_unsupported too_big adjust_failed current".split()
XVS_GOLDEN = {"xvs_global_latency": ()}
XVS_GOLDEN.update({f"xvs_global_{m}": () for m in XVS_M})
XVS_GOLDEN.update({f"xvs_service_{m}": ("address", "port", "protocol", "service") for m in XVS_M})
XVS_GOLDEN.update({f"xvs_virtual_{m}": ("address",) for m in XVS_M})
XVS_GOLDEN.update({f"xvs_destination_{c}": ("address", "port", "protocol", "destination", "service")
                   for c in XVS_C})

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def text(**kw):
    _, first = take(demo.health(**kw), demo.bgp(), demo.xdp(0), now=NOW - 2, monotonic=1.0)
    snap, _ = take(demo.health(**kw), demo.bgp(), demo.xdp(1), previous=first, now=NOW, monotonic=3.0)
    return metrics.render(snap).decode()


def samples(body):
    """(name, [label names in order], {labels}, value) per sample line."""
    out = []
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")
        out.append((m.group(1), [k for k, _ in labels], dict(labels), m.group(4)))
    return out


def test_every_vc5_and_xvs_name_present_with_vc5_label_order():
    found = {}
    for name, order, _, _ in samples(text()):
        found.setdefault(name, tuple(order))
    for golden in (VC5_GOLDEN, XVS_GOLDEN):
        for name, labels in golden.items():
            assert name in found, name
            assert found[name] == labels, (name, found[name])


def test_label_formats_match_vc5():
    s = samples(text(flip_down="10.1.100.121"))
    status = {(lab["service"], lab["backend"]): v for n, _, lab, v in s if n == "vc5_backend_status"}
    assert status[("192.168.101.1:tcp:80", "10.1.100.120:80")] == "1"
    assert status[("192.168.101.1:tcp:80", "10.1.100.121:80")] == "0"
    assert ("192.168.101.2:udp:53", "10.1.100.122:53") in status
    vip = {lab["vip"]: v for n, _, lab, v in s if n == "vc5_vip_status"}
    assert vip == {"192.168.101.1": "1", "192.168.101.2": "1"}
    reserves = {v for n, _, _, v in s if n.endswith("_reserves_used")}
    assert reserves == {"666"}
    dur = [lab for n, _, lab, _ in s if n == "vc5_backend_status_duration"]
    assert {d["status"] for d in dur} == {"up", "down"}
    xvs = [lab for n, _, lab, _ in s if n == "xvs_destination_flows"]
    assert {"address": "192.168.101.1", "port": "80", "protocol": "tcp", "destination": "10.1.100.120",
            "service": "192.168.101.1:80:tcp"} in xvs


def test_every_family_has_help_and_type_right_above_samples():
    body = text()
    typed, helped = {}, set()
    current = None
    for line in body.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
            helped.add(current)
            assert len(line.split(None, 3)) == 4, line      # non-empty help
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            assert name == current
            typed[name] = typ
        else:
            assert line.split("{")[0].split(" ")[0] == current, line
    assert typed["vc5_toobig"] == "counter" and "vc5_backend_reserves_used" in typed
    assert typed["xvs_global_latency"] == "gauge" and typed["xvs_destination_current"] == "gauge"
    assert typed["xvs_global_packets"] == "counter" and typed["vc5_uptime"] == "counter"


def test_prometheus_client_parser_reads_every_family_with_its_type():
    body = text()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    # the parser folds a counter `x` into family `x` with samples `x_total`; no family is untyped
    assert all(f.type != "unknown" and f.type != "untyped" for f in fams.values())
    assert fams["vc5_uptime"].type == "counter"
    assert fams["vc5_vip_status"].type == "gauge"
    assert len(fams["vc5_backend_status"].samples) == 12   # 4 services x 3 backends


def test_our_bgp_and_healthcheck_families():
    s = samples(text())
    names = {n for n, _, _, _ in s}
    for n in ("vc5_bgp_peer_state", "vc5_bgp_peer_established", "vc5_bgp_peer_uptime_seconds",
              "vc5_bgp_peer_updates_sent_total", "vc5_bgp_peer_updates_received_total",
              "vc5_bgp_rib_prefixes",
              "vc5_healthcheck_up", "vc5_healthcheck_duration_seconds", "vc5_daemon_up"):
        assert n in names, n
    state = [lab for n, _, lab, v in s if n == "vc5_bgp_peer_state"]
    assert {"peer": "10.1.100.100", "state": "ESTABLISHED"} in state
    took = {lab["backend"]: v for n, _, lab, v in s
            if n == "vc5_healthcheck_duration_seconds" and lab["service"] == "192.168.101.1:tcp:443"}
    assert took["10.1.100.120:443"] == "0.006"


def test_label_values_are_escaped():
    from vc5.client.snapshot import HealthView
    from vc5.common.wire import ServiceState, VipState
    svc = ServiceState("10.0.0.1", 80, "tcp", name='we"ird\\name')
    snap = Snapshot(now=NOW, started=NOW, health=HealthView.from_wire([svc], [VipState("10.0.0.1")]))
    body = metrics.render(snap).decode()
    assert 'name="we\\"ird\\\\name"' in body
    list(text_string_to_metric_families(body))


def test_absent_data_plane_has_no_xvs_and_daemon_up_zero():
    snap, _ = take(demo.health(), None, None, now=NOW)
    body = metrics.render(snap).decode()
    assert "xvs_" not in body
    assert 'vc5_daemon_up{daemon="org.vc5.XdpLoader1"} 0' in body
    assert 'vc5_daemon_up{daemon="org.vc5.Health1"} 1' in body


def test_grafana_dashboard_uses_only_exported_metrics():
    import json
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "grafana", "vc5-dashboard.json")
    with open(path) as f:
        dash = json.load(f)
    exported = {n for n, _, _, _ in samples(text())}
    used = set()
    for p in dash["panels"]:
        for t in p.get("targets", []):
            used |= set(re.findall(r"\b((?:vc5|xvs)_[a-z0-9_]+)\b", t["expr"]))
    used.discard("xvs_global_err_")        # the prefix of a regex matcher: xvs_global_err_.*
    assert len(used) > 20 and used <= exported, sorted(used - exported)
