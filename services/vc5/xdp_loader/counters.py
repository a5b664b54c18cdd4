"""Counter names (vc5/xvs vocabulary) and summing of per-CPU counters.

METRICS: the 32 global/VIP/service metrics in xvs `struct metrics` order
(vc5-behaviour.md section 1.10: xvs_global_<m>, xvs_virtual_<m>,
xvs_service_<m>); BACKEND_COUNTERS: the per-backend counters
(xvs_destination_<c>). The C enums in bpf/vc5_layout.h use the same order.

`current` (estimated concurrent sessions) is filled by user space in vc5;
this data plane leaves it 0 for now.
"""

from __future__ import annotations

from . import layout

METRICS = (
    "current", "err_malformed", "err_tot_len", "err_l4_unsupported", "err_icmp_unsupported",
    "err_fragmented", "err_service_not_found", "err_no_backend", "err_backend_invalid",
    "err_no_tunnel_port", "err_expired", "err_adjust_failed", "err_tunnel_unsupported",
    "err_tcp_header", "err_udp_header", "err_icmp_header", "err_internal", "err_cve_2025_37799",
    "not_ip", "not_a_vip", "probe_reply", "userspace", "icmp_echo_request", "too_big",
    "packets", "octets", "flows", "errors", "syn", "ack", "fin", "rst",
)
assert len(METRICS) == layout.METRIC_COUNT

ERRORS = tuple(m for m in METRICS if m.startswith("err_"))

BACKEND_COUNTERS = ("packets", "octets", "flows", "errors", "syn", "ack", "fin", "rst")
assert len(BACKEND_COUNTERS) == layout.BACKEND_COUNTER_COUNT


def sum_metrics(percpu) -> dict[str, int]:
    """{name: total} from a per-CPU array of layout.Metrics."""
    totals = [0] * layout.METRIC_COUNT
    for m in percpu:
        for i, v in enumerate(m.c):
            totals[i] += v
    return dict(zip(METRICS, totals))


def sum_counter(percpu) -> dict[str, int]:
    """{name: total} from a per-CPU array of layout.Counter."""
    totals = [0] * layout.BACKEND_COUNTER_COUNT
    for m in percpu:
        for i, v in enumerate(m.c):
            totals[i] += v
    return dict(zip(BACKEND_COUNTERS, totals))


def sum_global(percpu) -> tuple[dict[str, int], int, int]:
    """(metrics, latency_ns, latency_packets) from a per-CPU array of layout.Global."""
    metrics = sum_metrics([g.m for g in percpu])
    return metrics, sum(g.latency_ns for g in percpu), sum(g.latency_packets for g in percpu)


def zero_metrics() -> dict[str, int]:
    return dict.fromkeys(METRICS, 0)
