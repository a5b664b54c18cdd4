/* vc5 data plane: flows shared between balancers (vc5 -m, docs/data-plane.md).
 * Included by vc5_flows.h. Two hooks, called by vc5_select:
 *   vc5_share_lookup  on a local flow-table miss (never for a SYN): 1 and
 *                     *out filled when another balancer told us this flow's
 *                     backend (out->pair is ours, rewritten by user space);
 *   vc5_share_note    when a flow is stored or refreshed locally: queue it
 *                     for user space to send to the other balancers.
 * The tuple is the full 36-byte one (IPv4 in w[3]), whatever key the local
 * flow table uses. These stubs share nothing. */
#ifndef VC5_SHARE_H
#define VC5_SHARE_H

struct vc5_share_hit {
    __u32 pair;
    __u32 cookie;
    __u16 hash;
};

static __always_inline int vc5_share_lookup(const struct vc5_tuple *t, __u8 proto, __u64 now,
                                            struct vc5_share_hit *out)
{
    return 0;
}

static __always_inline void vc5_share_note(const struct vc5_tuple *t, __u8 proto, __u64 now, __u32 pair,
                                           __u32 cookie, __u16 hash)
{
}

#endif /* VC5_SHARE_H */
