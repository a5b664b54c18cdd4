"""xvs's counter vocabulary, in xvs's order (docs/observability.md; docs/data-plane.md, "D-Bus").

One list for the data plane that counts (vc5.xdp_loader.counters) and the
web service that exports them as xvs_* metrics (vc5.webd), so the names a
Grafana dashboard built for vc5 reads cannot drift between the two.
"""

# xvs `struct metrics`: global, per VIP and per service.
METRICS = (
    "current", "err_malformed", "err_tot_len", "err_l4_unsupported", "err_icmp_unsupported",
    "err_fragmented", "err_service_not_found", "err_no_backend", "err_backend_invalid",
    "err_no_tunnel_port", "err_expired", "err_adjust_failed", "err_tunnel_unsupported",
    "err_tcp_header", "err_udp_header", "err_icmp_header", "err_internal", "err_cve_2025_37799",
    "not_ip", "not_a_vip", "probe_reply", "userspace", "icmp_echo_request", "too_big",
    "packets", "octets", "flows", "errors", "syn", "ack", "fin", "rst",
)

# xvs `struct counter`: per backend of a service.
BACKEND_COUNTERS = (
    "packets", "octets", "flows", "errors", "syn", "ack", "fin", "rst",
    "tunnel_unsupported", "too_big", "adjust_failed", "current",
)

# Global counters of this data plane beyond xvs's (no vc5 name exists): the
# path-MTU relay (bpf/README.md, "Path MTU") and new flows not stored above the
# new-flow rate (docs/data-plane.md, "Flow table"). Exported with the globals.
GLOBAL_EXTRA = ("pmtu_relayed", "pmtu_rate_limited", "too_big_no_df", "flow_rate_limited")

# Counted by the loader itself (GetCounters' totals, exported as vc5_dataplane_<name>_total): packets
# the source block list dropped (docs/data-plane.md, "Source prefixes and the block list") and flow
# sharing's records ("Flow sharing": sent, learned, not for a service or backend of ours, malformed).
BLOCKED = "blocked"
SHARE_COUNTERS = ("share_sent_flows", "share_sent_datagrams", "share_send_errors", "share_stale",
                  "share_received_datagrams", "share_learned", "share_not_ours", "share_malformed")
