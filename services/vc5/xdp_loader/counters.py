"""Counter names (vc5/xvs vocabulary) and summing of per-CPU counters.

METRICS: the 32 global/VIP/service metrics in xvs `struct metrics` order
(docs/observability.md, "Prometheus": xvs_global_<m>, xvs_virtual_<m>,
xvs_service_<m>); BACKEND_COUNTERS: the per-backend counters
(xvs_destination_<c>). The C enums in bpf/vc5_layout.h use the same order.

`current` (estimated concurrent connections) is user space's, as in vc5:
flowstate.fill_current sets it from the last era's counts (the program
counts each flow once per era). GLOBAL_EXTRA: global counters beyond
xvs's (the path-MTU relay), summed into the global dict after METRICS.
"""

from __future__ import annotations

from vc5.common import xvs_names

from . import layout

METRICS = xvs_names.METRICS
assert len(METRICS) == layout.METRIC_COUNT

ERRORS = tuple(m for m in METRICS if m.startswith("err_"))

# All 12 of xvs's per-backend counters (tunnel_unsupported, too_big, adjust_failed
# counted by the program; `current` is user space's, 0 here).
BACKEND_COUNTERS = xvs_names.BACKEND_COUNTERS
assert len(BACKEND_COUNTERS) == layout.BACKEND_COUNTER_COUNT

GLOBAL_EXTRA = xvs_names.GLOBAL_EXTRA


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
    for name in GLOBAL_EXTRA:
        metrics[name] = sum(getattr(g, name) for g in percpu)
    return metrics, sum(g.latency_ns for g in percpu), sum(g.latency_packets for g in percpu)


def zero_metrics() -> dict[str, int]:
    return dict.fromkeys(METRICS, 0)
