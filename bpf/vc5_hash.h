/* vc5 data plane: the flow hash that picks a Maglev slot (vc5 xvs sdbm).
 * Included by vc5_xdp.c; must stay bit-exact with vc5 (same backend for the
 * same flow on every balancer, Go or ours): tests/unit/test_flow_hash.py
 * checks these weights against the Go formula, tests/bpf/test_xdp_forward.py
 * the program against it. */
#ifndef VC5_HASH_H
#define VC5_HASH_H

/* vc5's sdbm: hash = c + (hash << 6) + (hash << 16) - hash over the 36-byte
 * tuple (or its first 32 bytes, the addresses, for sticky services), of which
 * the low 16 bits are used. Modulo 2^16, (hash << 16) vanishes and no bit
 * moves down, so the low 16 bits are those of hash = hash * 63 + c, that is
 *     h(p[0..n-1]) = sum over i of p[i] * 63^(n-1-i)   (mod 2^16).
 * The serial loop is a 36-step dependency chain; this form is 36 independent
 * multiply-adds with constant weights 63^k mod 2^16 (k = 0..35), and
 *     h36 = h32 * 63^4 + p[32] * 63^3 + ... + p[35]   (mod 2^16).
 * Returns the selection hash; *h4 = the 36-byte hash (xvs l4_hash), which
 * seeds the FOU/GUE source port even for sticky services (as xvs). */
static __always_inline __u32 vc5_sdbm(struct vc5_tuple *t, int sticky, __u16 *h4)
{
    __u8 *p = (__u8 *)t;
    __u32 h3 = p[0] * 63423u + p[1] * 10369u + p[2] * 42815u + p[3] * 39169u +
         p[4] * 5823u + p[5] * 18817u + p[6] * 17983u + p[7] * 14849u +
         p[8] * 13759u + p[9] * 27265u + p[10] * 58687u + p[11] * 56065u +
         p[12] * 21695u + p[13] * 35713u + p[14] * 33855u + p[15] * 31745u +
         p[16] * 29631u + p[17] * 44161u + p[18] * 9023u + p[19] * 7425u +
         p[20] * 37567u + p[21] * 52609u + p[22] * 49727u + p[23] * 48641u +
         p[24] * 45503u + p[25] * 61057u + p[26] * 24895u + p[27] * 24321u +
         p[28] * 53439u + p[29] * 3969u + p[30] * 63u + p[31] * 1u;
    __u32 h = h3 * 24321u + p[32] * 53439u + p[33] * 3969u + p[34] * 63u + p[35] * 1u;
    *h4 = h;
    return (sticky ? h3 : h) & 0xffff;
}

#endif /* VC5_HASH_H */
