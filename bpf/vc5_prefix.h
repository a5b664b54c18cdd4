/* vc5 data plane: per-source-prefix counters and the block list
 * (vc5 v0.2 `prefixes`, docs/data-plane.md). Included by vc5_xdp.c.
 * vc5_prefix4/6 run first for every IPv4/IPv6 packet with a valid header:
 * they return 1 when the packet must be dropped (source blocked). These stubs
 * count and block nothing. */
#ifndef VC5_PREFIX_H
#define VC5_PREFIX_H

static __always_inline int vc5_prefix4(struct vc5_global *g, __u32 saddr, __u32 octets)
{
    return 0;
}

static __always_inline int vc5_prefix6(struct vc5_global *g, const struct vc5_addr *saddr, __u32 octets)
{
    return 0;
}

#endif /* VC5_PREFIX_H */
