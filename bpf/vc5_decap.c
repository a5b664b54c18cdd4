/* vc5-decap: the backend side of vc5's layer-3 DSR tunnels (docs/real-servers.md).
 *
 * XDP on the backend's NIC. A frame that carries one of the tunnels vc5
 * sends (vc5-behaviour section 1.4 "Encapsulation (L3 DSR)"):
 *   IPIP   outer IPv4/IPv6, protocol 4 (inner IPv4) or 41 (inner IPv6)   RFC 2003, RFC 2473
 *   GRE    protocol 47, 4-byte header, flags and version 0,
 *          protocol type 0x0800 / 0x86DD                                   RFC 2784 section 2
 *   FOU    UDP to the FOU port, payload = the inner IP packet              draft-herbert-fou (Linux net/ipv4/fou*.c)
 *   GUE    UDP to the GUE port, 4-byte header variant 0 (C=0, Hlen=0,
 *          Proto = 4/41, flags 0), or variant 1 (direct IP)              draft-ietf-intarea-gue sections 3, 4
 * whose inner destination is a VIP of this host (the `vips` LPM trie, filled
 * by the vc5-decap command) has its outer headers removed with
 * bpf_xdp_adjust_head; the Ethernet header (and one 802.1Q tag, if any) is
 * moved in front of the inner packet with the EtherType of the inner family,
 * and the frame goes to the stack with XDP_PASS, which sees the client's
 * packet to the VIP exactly as if it had arrived on the wire. Everything else
 * is passed untouched, counted.
 *
 * Why XDP and not tc: the frame is stripped before the kernel builds or
 * GRO-merges an skb, so there is no GSO/tunnel state to repair and GRO then
 * merges the inner TCP flow as usual; a changed EtherType makes the stack
 * re-run eth_type_trans (native, and generic XDP in netif_receive_generic_xdp).
 * The inner packet keeps its own end-to-end checksums, which the stack checks.
 *
 * Outer UDP checksum (FOU, GUE): verified when the config flag says so and
 * the checksum is not zero, as Linux's own FOU does (udp_queue_rcv_one_skb
 * verifies before calling encap_rcv). Zero means "no checksum" (RFC 768 for
 * IPv4; RFC 6935/6936 allow it for tunnels over IPv6, and vc5 sends it with
 * tunnel-no-checksum) and is accepted.
 *
 * Not decapsulated (passed untouched, counted): outer fragments (the kernel
 * reassembles; it cannot decapsulate without tunnel modules), IPv6 outer
 * headers with extension headers before the tunnel protocol, GRE with any
 * flag (C/K/S, RFC 2890) or version != 0, GUE control messages and GUE
 * headers with extension fields or flags.
 *
 * Compiled by bcc (vc5.decap.program) with -DVC5D_MAX_VIPS; own minimal
 * headers (no linux/ headers), every name prefixed vc5d_/VC5D_.
 */

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vc5-decap: this program assumes a little-endian CPU"
#endif

#ifndef VC5D_MAX_VIPS
#define VC5D_MAX_VIPS 4096
#endif

#define VC5D_HTONS(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define VC5D_HTONL(x) ((__u32)__builtin_bswap32((__u32)(x)))

#define VC5D_ETH_P_IP    0x0800
#define VC5D_ETH_P_IPV6  0x86DD
#define VC5D_ETH_P_8021Q 0x8100

#define VC5D_IPPROTO_IPIP 4
#define VC5D_IPPROTO_UDP  17
#define VC5D_IPPROTO_IPV6 41
#define VC5D_IPPROTO_GRE  47

/* Tunnel types: bits of config.types, and the decap counter offsets. */
#define VC5D_T_IPIP 0
#define VC5D_T_GRE  1
#define VC5D_T_FOU  2
#define VC5D_T_GUE  3

#define VC5D_F_CHECK_UDP_CSUM 1     /* config.flags */

/* Counters (PERCPU_ARRAY `stats`); vc5/decap/maps.py COUNTERS has the names. */
#define VC5D_S_RX             0     /* every frame the program saw */
#define VC5D_S_PASSED         1     /* not tunnel traffic: passed untouched */
#define VC5D_S_DECAP          2     /* + VC5D_T_*: decapsulated, per type */
#define VC5D_S_DECAP_OUTER4   6     /* decapsulated, outer IPv4 */
#define VC5D_S_DECAP_OUTER6   7     /* decapsulated, outer IPv6 */
#define VC5D_S_REJ_TYPE       8     /* IPIP/GRE while that type is not accepted */
#define VC5D_S_REJ_PORT       9     /* FOU/GUE-shaped UDP to a VIP, on a port not configured */
#define VC5D_S_REJ_VIP        10    /* inner destination is not a VIP */
#define VC5D_S_REJ_MALFORMED  11    /* truncated, lengths or versions disagree, unsupported flags */
#define VC5D_S_REJ_FRAGMENT   12    /* outer IPv4 fragment */
#define VC5D_S_REJ_CSUM       13    /* outer UDP checksum wrong */
#define VC5D_S_REJ_ADJUST     14    /* bpf_xdp_adjust_head/tail failed */
#define VC5D_NSTATS           16

/* GUE: up to 10240 bytes of UDP are checksummed in 64-byte chunks. */
#define VC5D_CSUM_CHUNK      64
#define VC5D_CSUM_MAX_CHUNKS 160

struct vc5d_ethhdr {
    __u8 h_dest[6];
    __u8 h_source[6];
    __u16 h_proto;
};
_Static_assert(sizeof(struct vc5d_ethhdr) == 14, "ethhdr");

struct vc5d_iphdr {
    __u8 ver_ihl;
    __u8 tos;
    __u16 tot_len;
    __u16 id;
    __u16 frag_off;
    __u8 ttl;
    __u8 protocol;
    __u16 check;
    __u32 saddr;
    __u32 daddr;
};
_Static_assert(sizeof(struct vc5d_iphdr) == 20, "iphdr");

struct vc5d_ipv6hdr {
    __u32 ver_tc_flow;
    __u16 payload_len;
    __u8 nexthdr;
    __u8 hop_limit;
    __u32 saddr[4];
    __u32 daddr[4];
};
_Static_assert(sizeof(struct vc5d_ipv6hdr) == 40, "ipv6hdr");

struct vc5d_udphdr {
    __u16 source;
    __u16 dest;
    __u16 len;
    __u16 check;
};
_Static_assert(sizeof(struct vc5d_udphdr) == 8, "udphdr");

/* RFC 2784 section 2: C, reserved0 (12 bits), version (3 bits), then the protocol type. */
struct vc5d_grehdr {
    __u16 flags_ver;
    __u16 proto;
};
_Static_assert(sizeof(struct vc5d_grehdr) == 4, "grehdr");

/* draft-ietf-intarea-gue section 3.1: Ver(2) C(1) Hlen(5) | Proto/ctype(8) | Flags(16). */
struct vc5d_guehdr {
    __u8 ver_c_hlen;
    __u8 proto;
    __u16 flags;
};
_Static_assert(sizeof(struct vc5d_guehdr) == 4, "guehdr");

/* Written by the command; vc5/decap/maps.py Config mirrors it. Ports in host order. */
struct vc5d_config {
    __u32 types;             /* 1 << VC5D_T_* */
    __u16 fou_port;          /* 0 = FOU off */
    __u16 gue_port;          /* 0 = GUE off */
    __u32 flags;             /* VC5D_F_* */
    __u32 layout;            /* vc5/decap/maps.py LAYOUT_VERSION */
    __u64 build;             /* hash of this source and its flags: re-attach reuses a matching build */
};
_Static_assert(sizeof(struct vc5d_config) == 24, "config");

/* LPM key: IPv4 as ::ffff:a.b.c.d (prefix length + 96). */
struct vc5d_vip_key {
    __u32 prefixlen;
    __u8 addr[16];
};
_Static_assert(sizeof(struct vc5d_vip_key) == 20, "vip_key");

/* Phase 1 (parse, decide) writes this; phase 2 (vc5d_run: checksum, strip)
 * reads it back. Going through a map makes every value unknown to the
 * verifier, so the many parse paths reach phase 2 in one state and it is
 * verified once instead of once per path (the checksum loop is long). */
struct vc5d_job {
    __u32 l2;                /* 14, or 18 with an 802.1Q tag */
    __u32 inner_off;         /* from data */
    __u32 inner_len;
    __u32 inner_ver;         /* 4 or 6 */
    __u32 type;              /* VC5D_T_* */
    __u32 outer6;
    __u32 udp_off;           /* FOU/GUE with a checksum to verify: from data, else 0 */
    __u32 udp_len;
};

BPF_ARRAY(config, struct vc5d_config, 1);
BPF_PERCPU_ARRAY(jobs, struct vc5d_job, 1);
BPF_PERCPU_ARRAY(stats, __u64, VC5D_NSTATS);
BPF_F_TABLE("lpm_trie", struct vc5d_vip_key, __u32, vips, VC5D_MAX_VIPS, BPF_F_NO_PREALLOC);

/* What the outer headers told us about the inner packet. */
struct vc5d_tunnel {
    __u32 type;              /* VC5D_T_* */
    __u32 outer6;            /* outer family is IPv6 */
    __u32 inner_off;         /* from data: start of the inner IP header */
    __u32 end_off;           /* from data: end of the outer payload (UDP length for FOU/GUE) */
    __u32 inner_ver;         /* 4 or 6; 0 = take it from the inner header (FOU, GUE variant 1) */
    __u32 udp_off;           /* outer UDP checksum to verify (FOU/GUE): offset, else 0 */
    __u32 udp_len;
};

static __always_inline void vc5d_count(__u32 idx)
{
    __u64 *c = stats.lookup(&idx);
    if (c)
        *c += 1;
}

static __always_inline int vc5d_pass(__u32 idx)
{
    vc5d_count(idx);
    return XDP_PASS;
}

/* Inner destination -> is it one of our VIPs? Also checks the inner header
 * against the space the outer headers gave it. Returns the inner length, 0
 * for "not a VIP" (*why set), or -1 for malformed. */
static __always_inline int vc5d_inner(void *data, void *data_end, struct vc5d_tunnel *t, __u32 *why)
{
    struct vc5d_vip_key key = {};
    void *in = data + t->inner_off;
    __u32 room = t->end_off - t->inner_off;
    __u32 len;

    if (in + 1 > data_end)
        return -1;
    __u8 ver = *(__u8 *)in >> 4;
    if (t->inner_ver && ver != t->inner_ver)
        return -1;
    if (ver == 4) {
        struct vc5d_iphdr *ip = in;
        if ((void *)(ip + 1) > data_end || (ip->ver_ihl & 0xf) < 5)
            return -1;
        len = VC5D_HTONS(ip->tot_len);
        if (len < (__u32)(ip->ver_ihl & 0xf) * 4 || len > room)
            return -1;
        key.prefixlen = 128;
        key.addr[10] = 0xff;
        key.addr[11] = 0xff;
        __builtin_memcpy(&key.addr[12], &ip->daddr, 4);
    } else if (ver == 6) {
        struct vc5d_ipv6hdr *ip6 = in;
        if ((void *)(ip6 + 1) > data_end)
            return -1;
        len = VC5D_HTONS(ip6->payload_len) + sizeof(*ip6);
        if (len > room)
            return -1;
        key.prefixlen = 128;
        __builtin_memcpy(key.addr, ip6->daddr, 16);
    } else {
        return -1;
    }
    t->inner_ver = ver;
    if (!vips.lookup(&key)) {
        *why = VC5D_S_REJ_VIP;
        return 0;
    }
    return len;
}

/* One's-complement sum of the UDP datagram plus the pseudo-header (RFC 768;
 * RFC 8200 section 8.1 for IPv6). Returns 1 if it checks, 0 if not, -1 if
 * the datagram is longer than the program is willing to sum.
 *
 * Shaped for the verifier: the chunk loop runs on its own counter (hidden
 * from LLVM, so udp_len is never refined by it), and each later stage takes
 * fresh packet pointers from ctx at offsets computed from udp_len, so every
 * exit of a loop reaches the next stage in the same state and is pruned. */
static __always_inline int vc5d_udp_csum_ok(struct xdp_md *ctx, __u32 udp_off, __u32 addr_off, int v6,
                                            __u32 udp_len)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    void *addrs = data + (addr_off & 0x3f);
    __s64 sum;

    if (udp_len > VC5D_CSUM_CHUNK * VC5D_CSUM_MAX_CHUNKS)
        return -1;
    if (v6) {
        __u32 ph6[2] = {VC5D_HTONL(udp_len), VC5D_HTONL(VC5D_IPPROTO_UDP)};
        if (addrs + 32 > data_end)
            return 0;
        sum = bpf_csum_diff(0, 0, addrs, 32, 0);
        sum = bpf_csum_diff(0, 0, ph6, sizeof(ph6), sum);
    } else {
        __u32 ph4 = (VC5D_IPPROTO_UDP << 8) | ((__u32)VC5D_HTONS(udp_len) << 16);
        if (addrs + 8 > data_end)
            return 0;
        sum = bpf_csum_diff(0, 0, addrs, 8, 0);
        sum = bpf_csum_diff(0, 0, &ph4, sizeof(ph4), sum);
    }
    __u32 chunks = udp_len / VC5D_CSUM_CHUNK;
    asm volatile("" : "+r"(chunks));
    for (__u32 i = 0; i < VC5D_CSUM_MAX_CHUNKS; i++) {
        void *p = (void *)(long)ctx->data + (udp_off & 0x7f) + i * VC5D_CSUM_CHUNK;
        if (i >= chunks)
            break;
        if (p + VC5D_CSUM_CHUNK > (void *)(long)ctx->data_end)
            return 0;
        sum = bpf_csum_diff(0, 0, p, VC5D_CSUM_CHUNK, sum);
    }
    __u32 words = udp_len & ~(__u32)(VC5D_CSUM_CHUNK - 1);
    for (__u32 j = 0; j < VC5D_CSUM_CHUNK / 4; j++) {
        __u32 o = words + j * 4;
        if (o + 4 > udp_len)
            break;
        void *p = (void *)(long)ctx->data + (udp_off & 0x7f) + (o & 0x3fff);
        if (p + 4 > (void *)(long)ctx->data_end)
            return 0;
        sum = bpf_csum_diff(0, 0, p, 4, sum);
    }
    __u32 bytes = udp_len & ~(__u32)3;
    __u8 tail[4] = {};
    for (__u32 k = 0; k < 3; k++) {
        __u8 *p = (void *)(long)ctx->data + (udp_off & 0x7f) + ((bytes + k) & 0x3fff);
        if (bytes + k >= udp_len)
            break;
        if ((void *)(p + 1) > (void *)(long)ctx->data_end)
            return 0;
        tail[k] = *p;
    }
    sum = bpf_csum_diff(0, 0, (void *)tail, 4, sum);
    __u64 s = (__u64)sum & 0xffffffff;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return s == 0xffff;
}

/* GUE header (variant 0 or 1) at `off`: sets the inner offset/version.
 * 0 on success, -1 if malformed or not a data message we take. */
static __always_inline int vc5d_gue(void *data, void *data_end, __u32 off, struct vc5d_tunnel *t)
{
    struct vc5d_guehdr *g = data + off;
    if ((void *)(g + 1) > data_end)
        return -1;
    __u8 variant = g->ver_c_hlen >> 6;
    if (variant == 1) {                         /* section 4: direct IPv4 (0100) / IPv6 (0110) */
        t->inner_off = off;
        t->inner_ver = 0;
        return 0;
    }
    if (variant != 0 || g->ver_c_hlen != 0 || g->flags != 0)
        return -1;                              /* C=1 control, Hlen > 0 or flags: not taken */
    if (g->proto == VC5D_IPPROTO_IPIP)
        t->inner_ver = 4;
    else if (g->proto == VC5D_IPPROTO_IPV6)
        t->inner_ver = 6;
    else
        return -1;
    t->inner_off = off + sizeof(*g);
    return 0;
}

/* After the outer IP header (l4 at `off`, payload ends at `end`): which
 * tunnel is it? Returns 0 = decapsulate per *t, else a counter index to
 * pass the frame with. */
static __always_inline __u32 vc5d_classify(struct xdp_md *ctx, struct vc5d_config *cfg, __u8 proto,
                                           __u32 off, __u32 end, struct vc5d_tunnel *t)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    t->end_off = end;
    if (proto == VC5D_IPPROTO_IPIP || proto == VC5D_IPPROTO_IPV6) {      /* RFC 2003, RFC 2473 */
        if (!(cfg->types & (1 << VC5D_T_IPIP)))
            return VC5D_S_REJ_TYPE;
        t->type = VC5D_T_IPIP;
        t->inner_off = off;
        t->inner_ver = proto == VC5D_IPPROTO_IPIP ? 4 : 6;
        return 0;
    }
    if (proto == VC5D_IPPROTO_GRE) {                                     /* RFC 2784 */
        struct vc5d_grehdr *gre = data + off;
        if (!(cfg->types & (1 << VC5D_T_GRE)))
            return VC5D_S_REJ_TYPE;
        if ((void *)(gre + 1) > data_end || gre->flags_ver != 0)
            return VC5D_S_REJ_MALFORMED;
        if (gre->proto == VC5D_HTONS(VC5D_ETH_P_IP))
            t->inner_ver = 4;
        else if (gre->proto == VC5D_HTONS(VC5D_ETH_P_IPV6))
            t->inner_ver = 6;
        else
            return VC5D_S_PASSED;       /* GRE carrying something else: not vc5's */
        t->type = VC5D_T_GRE;
        t->inner_off = off + sizeof(*gre);
        return 0;
    }
    if (proto != VC5D_IPPROTO_UDP)
        return VC5D_S_PASSED;
    struct vc5d_udphdr *udp = data + off;
    if ((void *)(udp + 1) > data_end)
        return VC5D_S_PASSED;
    __u16 dport = VC5D_HTONS(udp->dest);
    __u32 ulen = VC5D_HTONS(udp->len);
    __u32 payload = off + sizeof(*udp);
    int fou = (cfg->types & (1 << VC5D_T_FOU)) && cfg->fou_port && dport == cfg->fou_port;
    int gue = (cfg->types & (1 << VC5D_T_GUE)) && cfg->gue_port && dport == cfg->gue_port;
    if (!fou && !gue) {
        /* Tunnel-shaped UDP to a VIP on another port: the balancer's tunnel-port
         * and ours disagree. Counted as wrong port, passed untouched. */
        struct vc5d_tunnel probe = {.end_off = off + ulen, .inner_off = payload};
        __u32 why = 0;
        if (ulen < sizeof(*udp) || off + ulen > end)
            return VC5D_S_PASSED;
        if (vc5d_gue(data, data_end, payload, &probe) != 0)
            probe.inner_off = payload, probe.inner_ver = 0;
        int n = vc5d_inner(data, data_end, &probe, &why);
        if (n > 0 && probe.inner_off + n == probe.end_off)
            return VC5D_S_REJ_PORT;
        return VC5D_S_PASSED;
    }
    if (ulen < sizeof(*udp) || off + ulen > end)
        return VC5D_S_REJ_MALFORMED;
    t->end_off = off + ulen;
    if (fou) {                                                           /* bare IP in UDP */
        t->type = VC5D_T_FOU;
        t->inner_off = payload;
        t->inner_ver = 0;
    } else {
        t->type = VC5D_T_GUE;
        if (vc5d_gue(data, data_end, payload, t) != 0)
            return VC5D_S_REJ_MALFORMED;
    }
    if (udp->check && (cfg->flags & VC5D_F_CHECK_UDP_CSUM)) {
        t->udp_off = off;           /* verified in phase 2, once the inner packet is known good */
        t->udp_len = ulen;
    }
    return 0;
}

/* Outer header at `l3` (IPv4 or IPv6 per `eth_proto`): classify. */
static __always_inline __u32 vc5d_outer(struct xdp_md *ctx, struct vc5d_config *cfg, __u16 eth_proto,
                                        __u32 l3, struct vc5d_tunnel *t)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    if (eth_proto == VC5D_HTONS(VC5D_ETH_P_IP)) {
        struct vc5d_iphdr *ip = data + l3;
        if ((void *)(ip + 1) > data_end)
            return VC5D_S_PASSED;
        __u8 p = ip->protocol;
        if (p != VC5D_IPPROTO_IPIP && p != VC5D_IPPROTO_IPV6 && p != VC5D_IPPROTO_GRE && p != VC5D_IPPROTO_UDP)
            return VC5D_S_PASSED;
        __u32 ihl = (ip->ver_ihl & 0xf) * 4;
        __u32 tot = VC5D_HTONS(ip->tot_len);
        if ((ip->ver_ihl >> 4) != 4 || ihl < 20 || tot < ihl || data + l3 + tot > data_end)
            return VC5D_S_PASSED;         /* the kernel drops what is broken here */
        if (ip->frag_off & VC5D_HTONS(0x3fff))
            return p == VC5D_IPPROTO_UDP ? VC5D_S_PASSED : VC5D_S_REJ_FRAGMENT;
        t->outer6 = 0;
        return vc5d_classify(ctx, cfg, p, l3 + ihl, l3 + tot, t);
    }
    if (eth_proto == VC5D_HTONS(VC5D_ETH_P_IPV6)) {
        struct vc5d_ipv6hdr *ip6 = data + l3;
        if ((void *)(ip6 + 1) > data_end)
            return VC5D_S_PASSED;
        __u32 tot = VC5D_HTONS(ip6->payload_len) + sizeof(*ip6);
        if ((VC5D_HTONL(ip6->ver_tc_flow) >> 28) != 6 || data + l3 + tot > data_end)
            return VC5D_S_PASSED;
        t->outer6 = 1;
        return vc5d_classify(ctx, cfg, ip6->nexthdr, l3 + sizeof(*ip6), l3 + tot, t);
    }
    return VC5D_S_PASSED;
}

/* Remove everything between the L2 header (l2 bytes: Ethernet, maybe one
 * 802.1Q tag) and the inner packet, set the inner EtherType, trim padding. */
static __always_inline int vc5d_strip(struct xdp_md *ctx, __u32 l2, __u32 inner_off, __u32 inner_ver,
                                      __u32 inner_len)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 hdr[18];
    __u16 proto = VC5D_HTONS(inner_ver == 4 ? VC5D_ETH_P_IP : VC5D_ETH_P_IPV6);

    if (data + 18 > data_end)
        return -1;
    __builtin_memcpy(hdr, data, 18);
    if (bpf_xdp_adjust_head(ctx, (int)(inner_off - l2)))
        return -1;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (l2 == 18) {
        if (data + 18 > data_end)
            return -1;
        __builtin_memcpy(data, hdr, 16);
        *(__u16 *)(data + 16) = proto;
    } else {
        if (data + 14 > data_end)
            return -1;
        __builtin_memcpy(data, hdr, 12);
        *(__u16 *)(data + 12) = proto;
    }
    long excess = (long)(data_end - data) - (long)(l2 + inner_len);
    if (excess > 0 && excess < 4096 && bpf_xdp_adjust_tail(ctx, -(int)excess))
        return -1;
    return 0;
}

/* Phase 2: verify the outer UDP checksum if asked, strip, count. */
static __always_inline int vc5d_run(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vc5d_job *job = jobs.lookup(&zero);

    if (!job)
        return vc5d_pass(VC5D_S_REJ_ADJUST);
    __u32 l2 = job->l2 == 18 ? 18 : 14;
    __u32 inner_off = job->inner_off & 0xff;
    __u32 inner_ver = job->inner_ver;
    __u32 inner_len = job->inner_len;
    __u32 outer6 = job->outer6 ? 1 : 0;
    __u32 type = job->type & 3;
    if (job->udp_off) {
        /* the outer source and destination addresses, for the pseudo-header */
        int ok = vc5d_udp_csum_ok(ctx, job->udp_off, l2 + (outer6 ? 8 : 12), outer6, job->udp_len);
        if (ok < 0)
            return vc5d_pass(VC5D_S_REJ_MALFORMED);
        if (!ok)
            return vc5d_pass(VC5D_S_REJ_CSUM);
    }
    if (inner_off <= l2 || vc5d_strip(ctx, l2, inner_off, inner_ver, inner_len))
        return vc5d_pass(VC5D_S_REJ_ADJUST);
    vc5d_count(VC5D_S_DECAP + type);
    return vc5d_pass(outer6 ? VC5D_S_DECAP_OUTER6 : VC5D_S_DECAP_OUTER4);
}

int xdp_decap(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct vc5d_ethhdr *eth = data;
    struct vc5d_tunnel t = {};
    __u32 zero = 0, l2 = sizeof(*eth), why = VC5D_S_REJ_MALFORMED;

    vc5d_count(VC5D_S_RX);
    if ((void *)(eth + 1) > data_end)
        return vc5d_pass(VC5D_S_PASSED);
    __u16 eth_proto = eth->h_proto;
    if (eth_proto == VC5D_HTONS(VC5D_ETH_P_8021Q)) {       /* one tag, kept as it is */
        if (data + 18 > data_end)
            return vc5d_pass(VC5D_S_PASSED);
        eth_proto = *(__u16 *)(data + 16);
        l2 = 18;
    }
    struct vc5d_config *cfg = config.lookup(&zero);
    if (!cfg)
        return vc5d_pass(VC5D_S_PASSED);
    __u32 verdict = vc5d_outer(ctx, cfg, eth_proto, l2, &t);
    if (verdict)
        return vc5d_pass(verdict);
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    int inner_len = vc5d_inner(data, data_end, &t, &why);
    if (inner_len <= 0)
        return vc5d_pass(inner_len < 0 ? VC5D_S_REJ_MALFORMED : why);
    struct vc5d_job *job = jobs.lookup(&zero);
    if (!job)
        return vc5d_pass(VC5D_S_REJ_ADJUST);
    job->l2 = l2;
    job->inner_off = t.inner_off;
    job->inner_len = inner_len;
    job->inner_ver = t.inner_ver;
    job->type = t.type;
    job->outer6 = t.outer6;
    job->udp_off = t.udp_off;
    job->udp_len = t.udp_len;
    return vc5d_run(ctx);
}
