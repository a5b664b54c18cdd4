/* TEST ONLY: a tc egress program (cls_bpf, direct action) that does what
 * vc5's balancer does to a packet for a tunnelled service (vc5-behaviour
 * section 1.4): packets to the VIP get an outer IPv4 (DF, TTL 64) or IPv6
 * (hop limit 64) header to the backend, then IPIP (RFC 2003/2473), GRE
 * (RFC 2784, 4 bytes), FOU (UDP) or GUE (UDP + 4-byte variant 0 header).
 * The outer UDP checksum is 0 (vc5's tunnel-no-checksum): the inner TCP
 * checksum is still partial (CHECKSUM_PARTIAL) when tc sees the packet.
 *
 * The test sets `cfg` between requests. Packets must not be GSO: the test
 * sets gso_max_segs 1 on the device.
 */

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#define E_HTONS(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define E_HTONL(x) ((__u32)__builtin_bswap32((__u32)(x)))

struct encap_cfg {
    __u32 type;              /* 0 off, 1 ipip, 2 gre, 3 fou, 4 gue */
    __u32 outer6;
    __u16 port;
    __u16 pad;
    __u32 vip4;              /* network order */
    __u8 vip6[16];
    __u32 src4, dst4;        /* outer addresses, network order */
    __u8 src6[16], dst6[16];
};

BPF_ARRAY(cfg, struct encap_cfg, 1);
BPF_ARRAY(encapsulated, __u64, 1);

struct outer_hdr {
    __u8 b[40 + 8 + 4];
};

static __always_inline __u16 fold(__u64 s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return ~s & 0xffff;
}

static __always_inline int same16(const void *a, const void *b)
{
    const __u32 *x = a, *y = b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

int encap(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u32 zero = 0;
    struct encap_cfg *c = cfg.lookup(&zero);
    int inner4;

    if (!c || !c->type || data + 14 + 40 > data_end)
        return TC_ACT_OK;
    __u16 proto = *(__u16 *)(data + 12);
    if (proto == E_HTONS(0x0800) && *(__u32 *)(data + 14 + 16) == c->vip4)
        inner4 = 1;
    else if (proto == E_HTONS(0x86DD) && same16(data + 14 + 24, c->vip6))
        inner4 = 0;
    else
        return TC_ACT_OK;
    __u32 inner_len = skb->len - 14;
    __u32 l4 = c->type == 2 ? 4 : c->type == 3 ? 8 : c->type == 4 ? 12 : 0;
    __u32 ol3 = c->outer6 ? 40 : 20;
    __u8 next = c->type == 1 ? (inner4 ? 4 : 41) : c->type == 2 ? 47 : 17;
    struct outer_hdr h = {};
    __u8 *b = h.b;

    if (c->outer6) {
        *(__u32 *)b = E_HTONL(6 << 28);
        *(__u16 *)(b + 4) = E_HTONS(inner_len + l4);
        b[6] = next;
        b[7] = 64;
        __builtin_memcpy(b + 8, c->src6, 16);
        __builtin_memcpy(b + 24, c->dst6, 16);
    } else {
        b[0] = 0x45;
        *(__u16 *)(b + 2) = E_HTONS(inner_len + l4 + 20);
        *(__u16 *)(b + 6) = E_HTONS(0x4000);            /* DF */
        b[8] = 64;
        b[9] = next;
        *(__u32 *)(b + 12) = c->src4;
        *(__u32 *)(b + 16) = c->dst4;
        *(__u16 *)(b + 10) = fold(bpf_csum_diff(0, 0, (void *)b, 20, 0));
    }
    __u8 *p = b + ol3;
    if (c->type == 2) {
        *(__u16 *)(p + 2) = E_HTONS(inner4 ? 0x0800 : 0x86DD);
    } else if (c->type >= 3) {
        *(__u16 *)p = E_HTONS(0x8000 | (skb->hash & 0x7fff));
        *(__u16 *)(p + 2) = E_HTONS(c->port);
        *(__u16 *)(p + 4) = E_HTONS(inner_len + l4);
        if (c->type == 4)
            p[9] = inner4 ? 4 : 41;                         /* GUE: 00, proto, flags 0 */
    }
    if (bpf_skb_adjust_room(skb, ol3 + l4, BPF_ADJ_ROOM_MAC, 0))
        return TC_ACT_SHOT;
    __u32 hlen = ol3 + l4;
    if (hlen > sizeof(h))
        return TC_ACT_SHOT;
    if (bpf_skb_store_bytes(skb, 14, h.b, hlen, 0))
        return TC_ACT_SHOT;
    __u16 eproto = E_HTONS(c->outer6 ? 0x86DD : 0x0800);
    bpf_skb_store_bytes(skb, 12, &eproto, 2, 0);
    __u64 *n = encapsulated.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return TC_ACT_OK;
}
