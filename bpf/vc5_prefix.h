/* vc5 data plane: per-source-prefix counters and the block list
 * (vc5 v0.2 `prefixes`, docs/data-plane.md "Source prefixes and the block
 * list"). Included by vc5_xdp.c (inlined before bcc, so the map calls here
 * are rewritten). vc5_prefix4/6 run first for every IPv4/IPv6 packet with a
 * valid header; they return 1 when the packet must be dropped.
 *
 * Invariants:
 *   - every packet is counted once on its source's /20 (IPv4) or /48 bucket
 *     (IPv6), blocked or not (vc5 counted both; a block that works shows as
 *     a /20 whose traffic goes on being counted while block_stats grows);
 *   - a source matching block4/block6 (longest prefix match) is dropped
 *     before the balancer looks at the packet at all, and counted on the
 *     most specific matching entry and in block_stats;
 *   - maps are declared even with -DVC5_NO_PREFIXES (the bench's "hooks
 *     off" build), which only turns the hooks into no-ops;
 *     -DVC5_PREFIX_NO_BLOCK (bench only) keeps the counters, skips the tries.
 * user space: layout.map_specs lists the same maps; prefixes.py reads them. */
#ifndef VC5_PREFIX_H
#define VC5_PREFIX_H

BPF_TABLE_PINNED("percpu_array", __u32, __u64, prefix4_stats, VC5_PREFIX4_SLOTS,
                 VC5_PIN_DIR "/prefix4_stats");
BPF_TABLE_PINNED("percpu_array", __u32, __u64, prefix6_stats, VC5_PREFIX6_BUCKETS,
                 VC5_PIN_DIR "/prefix6_stats");
/* LPM tries require BPF_F_NO_PREALLOC. */
BPF_TABLE_PINNED("lpm_trie", struct vc5_lpm4, struct vc5_block, block4, VC5_MAX_BLOCKED,
                 VC5_PIN_DIR "/block4", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lpm_trie", struct vc5_lpm6, struct vc5_block, block6, VC5_MAX_BLOCKED,
                 VC5_PIN_DIR "/block6", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_block_stats, block_stats, 1, VC5_PIN_DIR "/block_stats");

_Static_assert((VC5_PREFIX6_BUCKETS & (VC5_PREFIX6_BUCKETS - 1)) == 0, "VC5_PREFIX6_BUCKETS: a power of 2");

/* The prefix6_stats bucket of an IPv6 source: a multiplicative hash of its
 * /48 (the first 6 bytes: w[0] and the low 16 bits of w[1] as this
 * little-endian CPU loads them). user space: prefixes.bucket6. */
static __always_inline __u32 vc5_bucket6(const struct vc5_addr *a)
{
    __u32 h = (a->w[0] * 0x9E3779B1u) ^ ((a->w[1] & 0xffff) * 0x85EBCA77u);
    h ^= h >> 16;
    return h & (VC5_PREFIX6_BUCKETS - 1);
}

/* A blocked packet: counted on its entry (atomically: the value is shared by
 * all CPUs) and per CPU in block_stats[k]. */
static __always_inline int vc5_blocked(struct vc5_block *b, int k, __u32 octets)
{
    __u32 zero = 0;
    __sync_fetch_and_add(&b->packets, 1);
    struct vc5_block_stats *s = block_stats.lookup(&zero);
    if (s) {
        s->c[k & (VC5_K_COUNT - 1)]++;
        s->c[VC5_K_BLOCKED_OCTETS] += octets;
    }
    return 1;
}

#ifdef VC5_NO_PREFIXES

static __always_inline int vc5_prefix4(struct vc5_global *g, __u32 saddr, __u32 octets)
{
    return 0;
}

static __always_inline int vc5_prefix6(struct vc5_global *g, const struct vc5_addr *saddr, __u32 octets)
{
    return 0;
}

#else

/* saddr: network order, as loaded from the header. */
static __always_inline int vc5_prefix4(struct vc5_global *g, __u32 saddr, __u32 octets)
{
    __u32 slot = __builtin_bswap32(saddr) >> 12;     /* the /20, in address order */
    __u64 *c = prefix4_stats.lookup(&slot);
    if (c)
        (*c)++;
#ifndef VC5_PREFIX_NO_BLOCK
    struct vc5_lpm4 k = { .prefixlen = 32 };
    __builtin_memcpy(k.addr, &saddr, 4);
    struct vc5_block *b = block4.lookup(&k);
    if (b)
        return vc5_blocked(b, VC5_K_BLOCKED4, octets);
#endif
    return 0;
}

static __always_inline int vc5_prefix6(struct vc5_global *g, const struct vc5_addr *saddr, __u32 octets)
{
    __u32 bucket = vc5_bucket6(saddr);
    __u64 *c = prefix6_stats.lookup(&bucket);
    if (c)
        (*c)++;
#ifndef VC5_PREFIX_NO_BLOCK
    struct vc5_lpm6 k = { .prefixlen = 128 };
    __builtin_memcpy(k.addr, saddr, 16);
    struct vc5_block *b = block6.lookup(&k);
    if (b)
        return vc5_blocked(b, VC5_K_BLOCKED6, octets);
#endif
    return 0;
}

#endif /* VC5_NO_PREFIXES */

#endif /* VC5_PREFIX_H */
