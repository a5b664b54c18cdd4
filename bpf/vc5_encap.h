/* Encapsulation (L3 DSR), ICMP too-big generation and the checksums they
 * need. Included by vc5_xdp.c (it uses no map). bpf/README.md,
 * "Encapsulation" and "Path MTU", says what goes on the wire.
 *
 * Checksums: sums are of 16-bit words as this little-endian CPU loads them;
 * the folded, inverted result is stored the same way. The one's complement
 * sum is byte-order independent (RFC 1071 section 2(B)), so no swapping.
 */
#ifndef VC5_ENCAP_H
#define VC5_ENCAP_H

/* Longest IPv6 quote in a Packet Too Big: the whole ICMPv6 packet must fit
 * in the minimum MTU (RFC 4443 section 3.2): 1280 - 40 - 8. */
#define VC5_PTB6_QUOTE 1232
/* IPv4 Fragmentation Needed quotes the IP header + 8 bytes (RFC 792). */
#define VC5_FRAG4_QUOTE 28
static __always_inline __u16 vc5_csum_fold(__u64 s)
{
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)s;
}

static __always_inline __u32 vc5_sum32(__u32 w)
{
    return (w & 0xffff) + (w >> 16);
}

static __always_inline __u64 vc5_addr_sum(__u32 *a)
{
    return (__u64)vc5_sum32(a[0]) + vc5_sum32(a[1]) + vc5_sum32(a[2]) + vc5_sum32(a[3]);
}

/* Pseudo-header sums (RFC 768 / RFC 9293 3.1; RFC 8200 8.1). */
static __always_inline __u64 vc5_pseudo4(__u32 saddr, __u32 daddr, __u8 proto, __u32 len)
{
    return (__u64)vc5_sum32(saddr) + vc5_sum32(daddr) + VC5_HTONS(proto) + VC5_HTONS(len);
}

static __always_inline __u64 vc5_pseudo6(__u32 *saddr, __u32 *daddr, __u8 proto, __u32 len)
{
    return vc5_addr_sum(saddr) + vc5_addr_sum(daddr) + VC5_HTONS(proto) + VC5_HTONS(len);
}

/* Sum of a whole inner IPv4 packet (header and payload, as it will be
 * encapsulated), without reading the payload (no loop: the verifier and
 * ~1 ns per packet): a valid header sums to zero, and a valid TCP/UDP
 * segment to minus its pseudo-header (an ICMP message to zero): Linux's
 * "local checksum offload" (Documentation/networking/checksum-offloads.rst).
 * A packet whose checksums were wrong gets a wrong outer checksum, so the
 * backend drops it, as it would the inner one. *ok = 0 for UDP sent without
 * a checksum (0, IPv4): its sum is unknown, the outer checksum is 0 too. */
static __always_inline __u64 vc5_inner_sum4(struct vc5_iphdr *ip, void *data_end, __u32 tot, int *ok)
{
    *ok = 1;
    if (ip->protocol == VC5_IPPROTO_ICMP)
        return 0;
    if (ip->protocol == VC5_IPPROTO_UDP) {
        struct vc5_udphdr *uh = (void *)(ip + 1);
        if ((void *)(uh + 1) > data_end || uh->check == 0) {
            *ok = 0;
            return 0;
        }
    }
    return (__u16)~vc5_csum_fold(vc5_pseudo4(ip->saddr, ip->daddr, ip->protocol, tot - sizeof(*ip)));
}

/* The same for an inner IPv6 packet: TCP, UDP and ICMPv6 all sum to minus
 * their pseudo-header, whose addresses and length cancel those of the
 * header; what is left is the first two words, the next-header/hop-limit
 * word, minus the next header as the pseudo-header carries it. */
static __always_inline __u64 vc5_inner_sum6(struct vc5_ipv6hdr *ip6)
{
    __u16 *w = (__u16 *)ip6;
    return (__u64)w[0] + w[1] + w[3] + (__u16)~(__u16)(ip6->nexthdr << 8);
}

/* Outer IPv4 header: no options, DF (or frag as given), TTL 64, checksum. */
static __always_inline void vc5_ip4_build(struct vc5_iphdr *ip, __u16 tot, __u8 proto, __u32 saddr,
                                          __u32 daddr, __u16 id, __u16 frag)
{
    ip->ver_ihl = 0x45;
    ip->tos = 0;
    ip->tot_len = VC5_HTONS(tot);
    ip->id = id;
    ip->frag_off = frag;
    ip->ttl = 64;
    ip->protocol = proto;
    ip->check = 0;
    ip->saddr = saddr;
    ip->daddr = daddr;
    __u16 *w = (__u16 *)ip;
    __u64 s = 0;
#pragma unroll
    for (int i = 0; i < 10; i++)
        s += w[i];
    ip->check = (__u16)~vc5_csum_fold(s);
}

/* Outer IPv6 header: traffic class and flow label 0, hop limit 64. */
static __always_inline void vc5_ip6_build(struct vc5_ipv6hdr *ip6, __u16 plen, __u8 nexthdr, __u32 *saddr,
                                          __u32 *daddr)
{
    ip6->ver_tc_flow = 0x60;        /* 6 << 28, network order */
    ip6->payload_len = VC5_HTONS(plen);
    ip6->nexthdr = nexthdr;
    ip6->hop_limit = 64;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        ip6->saddr[i] = saddr[i];
        ip6->daddr[i] = daddr[i];
    }
}

/* What the encapsulation needs to know, filled by the caller. */
struct vc5_encap_args {
    __u32 saddr[4];         /* outer source (ours) */
    __u32 daddr[4];         /* outer destination (the backend) */
    __u64 inner_sum;        /* vc5_inner_sum4/6 of the inner packet */
    __u32 tot;              /* inner IP length */
    __u32 overhead;         /* outer IP + GRE/UDP/GUE bytes */
    __u16 tci;              /* 802.1Q TCI to send with (tagged) */
    __u16 sport;            /* FOU/GUE source port, network order */
    __u16 dport;            /* FOU/GUE destination port, network order */
    __u16 id;               /* outer IPv4 id */
    __u8 method;
    __u8 outer6;
    __u8 inner6;
    __u8 tagged;
    __u8 csum;              /* compute the UDP checksum (else 0) */
    __u8 h_dest[6];
    __u8 h_source[6];
};

/* The outer headers after the L2 header at l3 (room checked by the caller:
 * outer IP + 12 bytes). Returns the bytes written, or -1. */
static __always_inline int vc5_outer(void *l3, void *data_end, struct vc5_encap_args *a)
{
    __u8 proto = a->method == VC5_METHOD_GRE ? VC5_IPPROTO_GRE
               : a->method == VC5_METHOD_IPIP ? (a->inner6 ? VC5_IPPROTO_IPV6 : VC5_IPPROTO_IPIP)
               : VC5_IPPROTO_UDP;
    __u32 hlen = a->outer6 ? sizeof(struct vc5_ipv6hdr) : sizeof(struct vc5_iphdr);
    __u32 payload = a->overhead - hlen + a->tot;        /* after the outer IP header */
    __u64 pseudo;
    void *next;
    if (a->outer6) {
        struct vc5_ipv6hdr *ip6 = l3;
        if ((void *)(ip6 + 1) + 12 > data_end)
            return -1;
        vc5_ip6_build(ip6, payload, proto, a->saddr, a->daddr);
        pseudo = vc5_pseudo6(a->saddr, a->daddr, VC5_IPPROTO_UDP, payload);
        next = ip6 + 1;
    } else {
        struct vc5_iphdr *ip = l3;
        if ((void *)(ip + 1) + 12 > data_end)
            return -1;
        vc5_ip4_build(ip, hlen + payload, proto, a->saddr[3], a->daddr[3], a->id, VC5_HTONS(VC5_IP_DF));
        pseudo = vc5_pseudo4(a->saddr[3], a->daddr[3], VC5_IPPROTO_UDP, payload);
        next = ip + 1;
    }
    if (a->method == VC5_METHOD_GRE) {
        struct vc5_grehdr *gre = next;
        if ((void *)(gre + 1) > data_end)
            return -1;
        gre->flags = 0;
        gre->proto = a->inner6 ? VC5_HTONS(VC5_ETH_P_IPV6) : VC5_HTONS(VC5_ETH_P_IP);
        return 0;
    }
    if (a->method != VC5_METHOD_FOU && a->method != VC5_METHOD_GUE)
        return 0;
    struct vc5_udphdr *uh = next;
    struct vc5_guehdr *gue = (void *)(uh + 1);
    if ((void *)(gue + 1) > data_end)
        return -1;
    uh->source = a->sport;
    uh->dest = a->dport;
    uh->len = VC5_HTONS(payload);
    uh->check = 0;
    __u64 s = pseudo + a->sport + a->dport + uh->len + a->inner_sum;
    if (a->method == VC5_METHOD_GUE) {
        gue->vchl = 0;
        gue->proto = a->inner6 ? VC5_IPPROTO_IPV6 : VC5_IPPROTO_IPIP;
        gue->flags = 0;
        s += *(__u16 *)gue;
    }
    if (a->csum) {
        __u16 c = (__u16)~vc5_csum_fold(s);
        uh->check = c ? c : 0xffff;     /* RFC 768: a computed 0 is sent as all ones */
    }
    return 0;
}

/* Prepend the outer headers: L2 rebuilt in front (MACs of the next hop, the
 * tag with a->tci), outer IP, GRE/UDP/GUE. 0, or -1 (frame unchanged or
 * unusable: the caller drops it). */
static __always_inline int vc5_encap(struct xdp_md *ctx, struct vc5_encap_args *a)
{
    if (bpf_xdp_adjust_head(ctx, 0 - (int)a->overhead))
        return -1;
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct vc5_ethhdr *eth = data;
    struct vc5_vlanhdr *vh = (void *)(eth + 1);
    if ((void *)(vh + 1) > data_end)
        return -1;
    __u16 type = a->outer6 ? VC5_HTONS(VC5_ETH_P_IPV6) : VC5_HTONS(VC5_ETH_P_IP);
    __builtin_memcpy(eth->h_dest, a->h_dest, 6);
    __builtin_memcpy(eth->h_source, a->h_source, 6);
    if (a->tagged) {
        eth->h_proto = VC5_HTONS(VC5_ETH_P_8021Q);
        vh->tci = a->tci;
        vh->proto = type;
        return vc5_outer(vh + 1, data_end, a);
    }
    eth->h_proto = type;
    return vc5_outer(eth + 1, data_end, a);
}

/* ---- too big for the egress MTU: tell the client ----------------------
 *
 * The frame is turned in place into an ICMP error from the VIP to the
 * client and sent back with XDP_TX: MACs swapped, the 802.1Q tag as it
 * came. l3off: 14 or 18. */

static __always_inline void vc5_l2_reply(void *data, __u8 *mac, int tagged, __u16 tci, __u16 type)
{
    struct vc5_ethhdr *eth = data;
    __builtin_memcpy(eth->h_dest, mac + 6, 6);     /* the client side: old source */
    __builtin_memcpy(eth->h_source, mac, 6);
    if (tagged) {
        struct vc5_vlanhdr *vh = (void *)(eth + 1);
        eth->h_proto = VC5_HTONS(VC5_ETH_P_8021Q);
        vh->tci = tci;
        vh->proto = type;
    } else {
        eth->h_proto = type;
    }
}

/* Trim the frame to `want` bytes (no-op if shorter is impossible: -1). */
static __always_inline int vc5_trim(struct xdp_md *ctx, int want)
{
    int len = (void *)(long)ctx->data_end - (void *)(long)ctx->data;
    if (len < want)
        return -1;
    if (len > want && bpf_xdp_adjust_tail(ctx, want - len))
        return -1;
    return 0;
}

/* IPv4 Destination Unreachable / Fragmentation Needed (RFC 792, RFC 1191):
 * [L2][IP 20][ICMP 8][the original IP header + 8 bytes]. */
static __always_inline int vc5_frag_needed(struct xdp_md *ctx, int tagged, __u16 tci, __u16 mtu, __u16 id)
{
    __u32 l3off = tagged ? 18 : 14;
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 mac[12];
    if (data + 12 > data_end)
        return -1;
    __builtin_memcpy(mac, data, 12);
    if (vc5_trim(ctx, l3off + VC5_FRAG4_QUOTE) || bpf_xdp_adjust_head(ctx, -28))
        return -1;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (data + 18 > data_end)
        return -1;
    struct vc5_iphdr *ip = data + l3off;
    struct vc5_icmphdr *ic = (void *)(ip + 1);
    struct vc5_iphdr *q = (void *)(ic + 1);
    if ((void *)(q + 1) + 8 > data_end)
        return -1;
    vc5_l2_reply(data, mac, tagged, tci, VC5_HTONS(VC5_ETH_P_IP));
    vc5_ip4_build(ip, 20 + 8 + VC5_FRAG4_QUOTE, VC5_IPPROTO_ICMP, q->daddr, q->saddr, id, 0);
    ic->type = VC5_ICMP_DEST_UNREACH;
    ic->code = VC5_ICMP_FRAG_NEEDED;
    ic->checksum = 0;
    ic->id = 0;                     /* unused */
    ic->seq = VC5_HTONS(mtu);       /* next-hop MTU */
    __u16 *w = (__u16 *)ic;
    __u64 s = 0;
#pragma unroll
    for (int i = 0; i < (8 + VC5_FRAG4_QUOTE) / 2; i++)
        s += w[i];
    ic->checksum = (__u16)~vc5_csum_fold(s);
    return 0;
}

/* Sum of n bytes at p (n a multiple of 4, <= 512: bpf_csum_diff's limit). */
#define VC5_CSUM_BLOCK(p, n) ((__u64)(__u32)bpf_csum_diff(0, 0, (__be32 *)(p), (n), 0))

/* ICMPv6 Packet Too Big (RFC 4443 section 3.2): [L2][IPv6 40][ICMPv6 8]
 * [as much of the original packet as fits in 1280 bytes: 1232 bytes; a
 * packet shorter than that (an egress MTU below 1280 + overhead: a
 * misconfiguration) gets its IPv6 header + 8 bytes quoted]. Constant sizes
 * only: bpf_csum_diff sums the quote, no loop. */
static __always_inline int vc5_pkt_too_big(struct xdp_md *ctx, int tagged, __u16 tci, __u32 mtu, __u32 tot)
{
    __u32 l3off = tagged ? 18 : 14;
    int full = tot >= VC5_PTB6_QUOTE;
    __u32 q = full ? VC5_PTB6_QUOTE : 48;
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 mac[12];
    if (data + 12 > data_end)
        return -1;
    __builtin_memcpy(mac, data, 12);
    if (vc5_trim(ctx, l3off + q) || bpf_xdp_adjust_head(ctx, -48))
        return -1;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (data + 18 > data_end)
        return -1;
    struct vc5_ipv6hdr *ip6 = data + l3off;
    struct vc5_icmphdr *ic = (void *)(ip6 + 1);
    struct vc5_ipv6hdr *orig = (void *)(ic + 1);
    if ((void *)(orig + 1) > data_end)
        return -1;
    __u32 vip[4], client[4];
    __builtin_memcpy(vip, orig->daddr, 16);
    __builtin_memcpy(client, orig->saddr, 16);
    vc5_l2_reply(data, mac, tagged, tci, VC5_HTONS(VC5_ETH_P_IPV6));
    vc5_ip6_build(ip6, 8 + q, VC5_IPPROTO_ICMPV6, vip, client);
    ic->type = VC5_ICMPV6_PKT_TOOBIG;
    ic->code = 0;
    ic->checksum = 0;
    ic->id = VC5_HTONS(mtu >> 16);  /* the 32-bit MTU */
    ic->seq = VC5_HTONS(mtu & 0xffff);
    __u64 s = vc5_pseudo6(vip, client, VC5_IPPROTO_ICMPV6, 8 + q);
    if (full) {
        if ((void *)ic + 8 + VC5_PTB6_QUOTE > data_end)
            return -1;
        s += VC5_CSUM_BLOCK(ic, 512) + VC5_CSUM_BLOCK((void *)ic + 512, 512) +
             VC5_CSUM_BLOCK((void *)ic + 1024, 8 + VC5_PTB6_QUOTE - 1024);
    } else {
        if ((void *)ic + 8 + 48 > data_end)
            return -1;
        s += VC5_CSUM_BLOCK(ic, 8 + 48);
    }
    /* re-derived after the helper calls */
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    ic = data + l3off + sizeof(struct vc5_ipv6hdr);
    if ((void *)(ic + 1) > data_end)
        return -1;
    ic->checksum = (__u16)~vc5_csum_fold(s);
    return 0;
}

#endif
