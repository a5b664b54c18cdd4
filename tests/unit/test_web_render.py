"""webd's JSON documents: vc5's field names and shapes (spec §1.9), rates, gzip, log ring."""

import gzip
import json

from vc5.client import status as render_status
from vc5.client.snapshot import BgpView, Snapshot, XdpView, take
from vc5.common.wire import Counters, PeerState
from vc5.webd import demo, events, render_json
from vc5.webd.logring import LogRing

SUMMARY_FIELDS = [
    "uptime", "latency_ns", "current", "dropped", "dropped_per_second", "blocked", "blocked_per_second",
    "notqueued", "notqueued_per_second", "toobig", "toobig_per_second", "ingress_octets",
    "ingress_octets_per_second", "ingress_packets", "ingress_packets_per_second", "flows",
    "flows_per_second",
    "egress_octets", "egress_octets_per_second", "egress_packets", "egress_packets_per_second", "dsr", "vc5"]
SERVICE_FIELDS = ["name", "description", "address", "port", "protocol", "required", "available", "stats",
                  "destinations", "up", "for", "last", "sticky", "scheduler"]
DESTINATION_FIELDS = ["address", "port", "stats", "weight", "disabled", "up", "for", "took", "when", "last",
                      "diagnostic", "mac"]
STATS_FIELDS = ["ingress_octets", "ingress_packets", "egress_octets", "egress_packets", "flows", "current",
                "ingress_octets_per_second", "ingress_packets_per_second", "egress_octets_per_second",
                "egress_packets_per_second", "flows_per_second"]
VIP_FIELDS = ["vip", "up", "stats", "for"]
PEER_FIELDS = ["state", "when", "duration_s", "update_calculation_ms", "advertised_routes",
               "withdrawn_routes",
               "current_routes", "connection_attempts", "successful_connections", "established_sessions",
               "last_error", "hold_time", "local_asn", "remote_asn", "adj_rib_out", "local_ip"]
NOW = demo.T0 / 1e6 + 315   # 5m15s after every state change


def snapshots(**health):
    """Two samples 2 s apart so rates exist."""
    _, first = take(demo.health(**health), demo.bgp(), demo.xdp(0), now=NOW - 2, monotonic=100.0)
    snap, _ = take(demo.health(**health), demo.bgp(), demo.xdp(1), previous=first, now=NOW,
                   monotonic=102.0, started=NOW - 60)
    return snap


def test_status_has_vc5_top_level_keys_and_summary_fields():
    doc = render_status.status(snapshots())
    for key in ("summary", "services", "bgp", "vip", "rib", "logging"):
        assert key in doc
    assert list(doc["summary"]) == SUMMARY_FIELDS
    assert doc["summary"]["dsr"] is True and doc["summary"]["vc5"] is True
    assert doc["summary"]["egress_octets"] == 0 and doc["summary"]["egress_packets_per_second"] == 0
    assert doc["summary"]["latency_ns"] == 429
    assert doc["logging"] == {"elasticsearch_errors": 0, "webhook_errors": 0}


def test_services_keyed_by_vip_with_vc5_fields():
    doc = render_status.status(snapshots())
    assert sorted(doc["services"]) == ["192.168.101.1", "192.168.101.2"]
    http = doc["services"]["192.168.101.1"][0]
    assert [k for k in http if k in SERVICE_FIELDS] == SERVICE_FIELDS
    assert (http["address"], http["port"], http["protocol"]) == ("192.168.101.1", 80, "tcp")
    assert http["required"] == 1 and http["available"] == 2 and http["up"] is True
    assert http["for"] == 315
    assert list(http["stats"]) == STATS_FIELDS
    dests = http["destinations"]
    assert [d["address"] for d in dests] == ["10.1.100.120", "10.1.100.121", "10.1.100.122"]
    assert [k for k in dests[0] if k in DESTINATION_FIELDS] == DESTINATION_FIELDS
    assert dests[2]["disabled"] is True
    assert dests[0]["mac"] == "52:54:00:00:01:20"
    assert dests[0]["took"] == 2 and dests[0]["when"] == 0 and dests[0]["last"] == 0


def test_rates_are_deltas_between_two_samples():
    doc = render_status.status(snapshots())
    d = doc["services"]["192.168.101.1"][0]["destinations"][0]["stats"]
    # demo: packets grow by 37236*2 per 2-s sample -> 37236/s
    assert d["ingress_packets_per_second"] == 37236
    assert d["flows_per_second"] == 7449
    assert d["egress_octets_per_second"] == 0
    s = doc["summary"]
    assert s["ingress_packets_per_second"] == sum(
        x for x in (37236, 37283, 4700, 4621, 84, 63, 75, 11, 16, 13))


def test_counter_reset_gives_zero_rate_not_negative():
    _, first = take(None, None, demo.xdp(5), monotonic=1.0)
    snap, _ = take(None, None, demo.xdp(0), previous=first, monotonic=3.0)
    assert render_status.summary(snap)["ingress_packets_per_second"] == 0


def test_vip_list_and_bgp_and_rib():
    doc = render_status.status(snapshots())
    assert [v["vip"] for v in doc["vip"]] == ["192.168.101.1", "192.168.101.2"]
    assert list(doc["vip"][0]) == VIP_FIELDS
    vip1 = doc["vip"][0]["stats"]
    services = doc["services"]["192.168.101.1"]
    assert vip1["ingress_packets"] == sum(s["stats"]["ingress_packets"] for s in services)
    assert list(doc["bgp"]["10.1.100.100"]) == PEER_FIELDS
    assert doc["bgp"]["10.1.100.100"]["state"] == "ESTABLISHED"
    assert doc["bgp"]["10.1.100.100"]["duration_s"] == 315
    assert doc["rib"] == ["192.168.101.1", "192.168.101.2"]


def test_down_backend_and_absent_daemons():
    snap, _ = take(demo.health(flip_down="10.1.100.120"), None, None, now=NOW)
    doc = render_status.status(snap)
    d = doc["services"]["192.168.101.1"][0]["destinations"][0]
    assert d["up"] is False and "500" in d["diagnostic"]
    assert doc["bgp"] == {} and doc["rib"] == []
    assert doc["daemons"] == {"org.vc5.Health1": True, "org.vc5.Bgp1": False, "org.vc5.XdpLoader1": False}
    assert d["stats"]["ingress_packets"] == 0


def test_nothing_running_still_renders():
    snap = Snapshot(now=NOW, started=NOW - 5)
    doc = render_status.status(snap)
    assert doc["services"] == {} and doc["vip"] == [] and doc["summary"]["uptime"] == 5
    assert render_json.cue(snap) == [] and render_json.lb(snap) == []


def test_json_is_pretty_with_newline_and_gzip_roundtrips():
    body = render_json.dumps(render_status.status(snapshots()))
    assert body.endswith(b"\n") and b'\n  "summary": {' in body
    packed = render_json.gzipped(body)
    assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed) == body
    assert render_json.gzipped(body) == packed      # deterministic (mtime 0)


def test_cue_json_shape():
    doc = render_json.cue(snapshots())
    assert [(s["Address"], s["Port"], s["Protocol"]) for s in doc] == [
        ("192.168.101.1", 80, 6), ("192.168.101.1", 443, 6),
        ("192.168.101.2", 53, 6), ("192.168.101.2", 53, 17)]
    assert list(doc[0]) == ["Address", "Port", "Protocol", "Scheduler", "Persist", "Sticky", "Reset",
                            "Required", "Destinations", "Up", "When"]
    d = doc[0]["Destinations"][0]
    assert list(d) == ["address", "port", "disabled", "weight", "status", "checks"]
    assert list(d["status"]) == ["OK", "Diagnostic", "Took", "Last", "When", "Initialised"]
    assert d["status"]["Took"] == 2_000_000 and d["status"]["When"].endswith("Z")


def test_lb_json_shape():
    doc = render_json.lb(snapshots())
    s = doc[0]
    assert list(s) == ["Service", "Destinations"]
    assert list(s["Service"]) == ["Service", "Stats", "Metrics"]
    assert list(s["Service"]["Service"]) == ["Address", "Port", "Protocol", "Sticky"]
    assert list(s["Service"]["Stats"]) == ["Connections", "IncomingPackets", "IncomingBytes"]
    d = s["Destinations"][0]
    assert list(d) == ["Destination", "ActiveConnections", "Stats", "Metrics", "MAC"]
    assert list(d["Destination"]) == ["Address", "TunnelType", "TunnelPort", "TunnelEncapNoChecksum",
                                      "Disable"]
    assert d["MAC"] == [0x52, 0x54, 0, 0, 1, 0x20]
    assert s["Destinations"][2]["Destination"]["Disable"] is True   # disabled backend


def test_build_json_has_go_buildinfo_shape():
    doc = render_json.build()
    assert set(doc) >= {"GoVersion", "Path", "Main", "Deps", "Settings"}
    assert doc["Main"]["Path"] == "vc5"
    json.dumps(doc)


def test_log_ring_indexes_and_capacity():
    ring = LogRing(capacity=3)
    assert ring.add("debug line", level=7) is None
    for i in range(5):
        ring.add(f"line {i}", level=5, when=1000 + i)
    got = ring.after(0)
    assert [e["indx"] for e in got] == [3, 4, 5]
    assert got[0] == {"indx": 3, "time": 1002, "text": "NOTICE line 2"}
    assert ring.after(4) == [{"indx": 5, "time": 1004, "text": "NOTICE line 4"}]
    assert ring.after(5) == []


def test_events_narrate_transitions_in_vc5_words():
    a, _ = take(demo.health(), demo.bgp(), demo.xdp(), now=NOW)
    b, _ = take(demo.health(flip_down="10.1.100.121", drained="10.1.100.120"), demo.bgp("ACTIVE"), None,
                now=NOW)
    texts = [t for _, t in events.diff(a, b)]
    assert "Backend 10.1.100.121:80 for service 192.168.101.1:80:tcp went down (http: GET " \
           "http://192.168.101.1/alive - 500 Internal Server Error)" in texts
    assert "BGP session with 10.1.100.100: ACTIVE" in texts
    assert "vc5-xdp-loader (org.vc5.XdpLoader1) left the bus" in texts
    assert "Backend 10.1.100.120:53 for service 192.168.101.2:53:udp drained" in texts
    assert "VIP 192.168.101.2 went down" in texts   # bind needs 2 of 3: one down, one drained
    assert list(events.diff(None, a)) == []
    assert list(events.diff(a, a)) == []


def test_bgp_peer_structs_as_bgpd_publishes_them():
    ctr = {"updates_in": 1, "updates_out": 7, "advertised": 3, "withdrawn": 1, "connection_attempts": 4,
           "established": 2}
    struct = ["10.0.0.9", "", "Established", demo.T0, demo.T0 + 5_000_000, 310, 9, 3, ["4-octet-as"],
              ["ipv4-unicast"], ctr, "", ["192.0.2.1/32"], "10.0.0.1", 65000, 65001, "10.0.0.9"]
    value = PeerState.from_dbus(struct)                     # as vc5.common.bus decodes Peers
    [p] = BgpView.from_wire([value], ["192.0.2.1/32"]).peers
    assert (p.address, p.state, p.hold_time, p.remote_asn, p.local_ip) == (
        "10.0.0.9", "ESTABLISHED", 9, 65001, "10.0.0.1")
    assert (p.updates_sent, p.advertised_routes, p.connection_attempts, p.current_routes) == (7, 3, 4, 1)
    snap, _ = take(None, BgpView.from_properties({"Peers": (value,), "Advertised": ("192.0.2.1/32",)}), None,
                   now=NOW)
    assert render_status.status(snap)["bgp"]["10.0.0.9"]["duration_s"] == 315
    assert render_status.status(snap)["rib"] == ["192.0.2.1"]


def test_latency_from_the_loaders_counter_names():
    assert XdpView.from_counters(Counters({"latency_ns": 137})).latency_ns == 137  # loader: mean
    assert XdpView.from_counters(Counters({"latency_ns": 1000, "latency_packets": 8})).latency_ns == 125
    assert XdpView.from_counters(Counters({"latency": 429})).latency_ns == 429
    assert XdpView.from_counters(Counters({"latency_ns": 5, "latency_packets": 0})).latency_ns == 0
