/* vc5 data plane: the flow hash that picks a Maglev slot (vc5 xvs sdbm).
 * Included by vc5_xdp.c; must stay bit-exact with vc5 (same backend for the
 * same flow): tests/bpf/test_xdp_forward.py and tests/unit/test_maglev*. */
#ifndef VC5_HASH_H
#define VC5_HASH_H

/* vc5's 16-bit sdbm: hash = c + (hash << 6) + (hash << 16) - hash, over the
 * 36-byte tuple, or its first 32 bytes (the addresses) for sticky services.
 * Modulo 2^16, (hash << 16) vanishes, so this is hash = hash * 63 + c.
 * Returns the selection hash; *h4 = the 36-byte hash (xvs l4_hash), which
 * seeds the FOU/GUE source port even for sticky services (as xvs). */
static __always_inline __u32 vc5_sdbm(struct vc5_tuple *t, int sticky, __u16 *h4)
{
    __u8 *p = (__u8 *)t;
    __u32 h = 0;
#pragma unroll
    for (int i = 0; i < 32; i++)
        h = h * 63 + p[i];
    __u32 h3 = h;
#pragma unroll
    for (int i = 32; i < 36; i++)
        h = h * 63 + p[i];
    *h4 = h;
    return (sticky ? h3 : h) & 0xffff;
}

#endif /* VC5_HASH_H */
