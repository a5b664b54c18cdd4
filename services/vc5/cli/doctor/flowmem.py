"""The flow table's kernel memory, from the entry sizes in vc5.xdp_loader.layout.

Kept to this one function on purpose: the flow table's layout is being changed, and the sizes
are read from layout.FlowKey / layout.Flow (ctypes mirrors of bpf/vc5_layout.h) rather than
copied, so the estimate follows the structs. The table is BPF_MAP_TYPE_LRU_PERCPU_HASH,
preallocated (kernel/bpf/hashtab.c): per entry a struct htab_elem (48 bytes on 64-bit) + the
key rounded up to 8 + a pointer to the per-CPU value, and the value rounded up to 8 once per
*possible* CPU; plus one 16-byte bucket per entry, rounded up to a power of two. This is the
formula of docs/operations/limits.md (measured there: 1,000,000 entries, 2 CPUs -> 138 MiB).
"""

from __future__ import annotations

import ctypes as ct

from vc5.xdp_loader import layout

HTAB_ELEM_BYTES = 48
POINTER_BYTES = 8
BUCKET_BYTES = 16


def flow_table_bytes(flows: int, possible_cpus: int) -> int:
    """Kernel memory of a flow table of `flows` entries on a host with `possible_cpus` possible CPUs."""
    def round8(n: int) -> int:
        return (n + 7) // 8 * 8
    element = HTAB_ELEM_BYTES + round8(ct.sizeof(layout.FlowKey)) + POINTER_BYTES
    per_cpu = round8(ct.sizeof(layout.Flow))
    buckets = 1 << max(0, (int(flows) - 1).bit_length())
    return int(flows) * (element + per_cpu * int(possible_cpus)) + BUCKET_BYTES * buckets
