"""The flow tables' kernel memory: the loader's own arithmetic (vc5.common.limits), so doctor and
the loader's start-up check cannot disagree. Since layout 3 (issue #14) the four flow tables are
LRU_HASH maps with one value per flow, the same size on any number of CPUs
(docs/data-plane.md, "Flow table"); `possible_cpus` is kept for callers.
"""

from __future__ import annotations

from vc5.common import limits


def flow_table_bytes(flows: int, possible_cpus: int) -> int:
    """Kernel memory of the flow tables for the setting `flows` (TCP/IPv4 entries)."""
    return limits.flow_table_bytes(flows, possible_cpus)
