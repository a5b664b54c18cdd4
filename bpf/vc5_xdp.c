/* vc5 XDP data plane: Layer 4 Direct Server Return load balancing.
 *
 * Compiled by bcc at start-up (services/vc5/xdp_loader/program.py), which
 * passes -I<this directory>, -DVC5_PIN_DIR="<pin dir>" and the map sizes.
 *
 * Programs:
 *   xdp_main  the balancer, attached to the NICs;
 *   xdp_pass  returns XDP_PASS (for a veth peer that must run native XDP, and
 *             as the floor in benchmarks);
 *   xdp_nat   the health-check probe path (docs/probe-path.md): attached to
 *             the peer end of the loader's veth pair, it turns a probe to a
 *             probe (NAT) address into the packet a client would send to the
 *             VIP on that backend and redirects it out of the NIC.
 *
 * Packet path of xdp_main (vc5 xvs bpf/layer3.c semantics, see
 * /work/shared/reference/vc5-behaviour.md section 3.3):
 *   1. settings: inactive, or user space silent for longer than the
 *      watchdog -> XDP_PASS everything.
 *   2. Ethernet, zero or one 802.1Q tag (kept as is). Not IPv4/IPv6 -> PASS
 *      (not_ip).
 *   3. Source may be a VIP (vip_filter bit): an answer to a health-check
 *      probe (nat_reply hit, < 5 s old) is rewritten back to the probe
 *      address and PASSed to the host stack (probe_reply); anything else
 *      goes on as below.
 *      Destination not a VIP -> PASS, untouched (not_a_vip). The VIP bitmap
 *      (vip_filter) proves most non-VIP packets with one array read; a
 *      packet whose bit is set is confirmed by its service (or by vips).
 *   4. For a VIP: length/options/fragment/TTL checks, L4 header checks,
 *      ICMP echo request answered here; every other anomaly -> DROP, counted
 *      under its own err_* metric and `errors`. (An anomalous packet that is
 *      not for a VIP still passes untouched: vips decides.)
 *   5. Backend: per-CPU flow table hit -> its (service, backend) pair record,
 *      with no service lookup; else the service (VIP, port, protocol) and its
 *      Maglev slot (16-bit sdbm of the 4-tuple, & 0x1fff).
 *   6. Dispatch on the backend's method (the place where tunnels will go):
 *      L2 DSR rewrites MACs, sets TTL/hop limit to 1, XDP_TX, or
 *      XDP_REDIRECT through tx_port for a backend on another untagged NIC.
 *   7. Counters: global, VIP, service, backend; latency sum.
 */
#include "vc5_headers.h"
#include "vc5_layout.h"

#ifndef VC5_PIN_DIR
#error "VC5_PIN_DIR (a string literal: the bpffs pin directory) must be defined"
#endif

/* Every map is pinned, so a restarted loader re-uses flows and counters.
 * user space: layout.MAP_SPECS must list the same names, types and sizes. */
BPF_TABLE_PINNED("array", __u32, struct vc5_settings, settings, 1, VC5_PIN_DIR "/settings");
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_global, global_stats, 1, VC5_PIN_DIR "/global_stats");
/* presence = "is a VIP" (it has at least one service); value = its counters */
/* presence = "is a VIP" (it has at least one service) */
BPF_TABLE_PINNED("hash", struct vc5_addr, struct vc5_vip, vips, VC5_MAX_VIPS, VC5_PIN_DIR "/vips");
BPF_TABLE_PINNED("array", __u32, struct vc5_vip_filter, vip_filter, 1, VC5_PIN_DIR "/vip_filter");
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_metrics, vip_stats, VC5_MAX_VIPS,
                 VC5_PIN_DIR "/vip_stats");
/* NO_PREALLOC: an update installs a new element and frees the old one after
 * an RCU grace period, so a packet sees the whole old or the whole new table. */
BPF_TABLE_PINNED("hash", struct vc5_svc_key, struct vc5_service, services, VC5_MAX_SERVICES,
                 VC5_PIN_DIR "/services", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_metrics, svc_stats, VC5_MAX_SERVICES,
                 VC5_PIN_DIR "/svc_stats");
BPF_TABLE_PINNED("array", __u32, struct vc5_backend, backends, VC5_MAX_PAIRS, VC5_PIN_DIR "/backends");
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_counter, be_stats, VC5_MAX_PAIRS,
                 VC5_PIN_DIR "/be_stats");
/* "devmap:<path>" both pins the DEVMAP and keeps bcc's .redirect_map(). */
BPF_XDP_REDIRECT_MAP("devmap:" VC5_PIN_DIR "/tx_port", int, tx_port, VC5_REDIRECT_SLOTS);

/* Health-check probe path (vc5_layout.h, docs/probe-path.md). */
BPF_TABLE_PINNED("hash", struct vc5_addr, struct vc5_nat, nat, VC5_MAX_NAT, VC5_PIN_DIR "/nat");
BPF_TABLE_PINNED("lru_hash", struct vc5_reply_key, struct vc5_reply, nat_reply, VC5_NAT_REPLIES,
                 VC5_PIN_DIR "/nat_reply");
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_nat_stats, nat_stats, 1, VC5_PIN_DIR "/nat_stats");
/* nat_tx[slot] = ifindex of an interface probes leave through (nat.py
 * numbers the interfaces); separate from tx_port, which is keyed by VLAN. */
BPF_XDP_REDIRECT_MAP("devmap:" VC5_PIN_DIR "/nat_tx", int, nat_tx, VC5_REDIRECT_SLOTS);

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word of the
 * checksummed data; all three in the same (network) byte order. */
static __always_inline void vc5_csum_replace2(__u16 *sum, __u16 old, __u16 new)
{
    __u32 s = (__u16)~*sum;
    s += (__u16)~old;
    s += new;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    *sum = (__u16)~s;
}

/* The same for one 32-bit word (two 16-bit words, loaded as the sum is). */
static __always_inline void vc5_csum_replace4(__u16 *sum, __u32 old, __u32 new)
{
    vc5_csum_replace2(sum, (__u16)old, (__u16)new);
    vc5_csum_replace2(sum, (__u16)(old >> 16), (__u16)(new >> 16));
}

/* Drop and count err under its own name and under `errors`, at every level
 * known so far (vm: VIP, sm: service; NULL when not known yet). */
static __always_inline int vc5_err(struct vc5_global *g, struct vc5_metrics *vm,
                                   struct vc5_metrics *sm, int err)
{
    err &= VC5_M_COUNT - 1;
    g->m.c[err]++;
    g->m.c[VC5_M_ERRORS]++;
    if (vm) {
        vm->c[err]++;
        vm->c[VC5_M_ERRORS]++;
    }
    if (sm) {
        sm->c[err]++;
        sm->c[VC5_M_ERRORS]++;
    }
    return XDP_DROP;
}

static __always_inline void vc5_count(struct vc5_metrics *m, __u64 octets, __u8 tcpflags, int new_flow)
{
    m->c[VC5_M_PACKETS]++;
    m->c[VC5_M_OCTETS] += octets;
    m->c[VC5_M_FLOWS] += new_flow;
    if (tcpflags & VC5_TCP_SYN)
        m->c[VC5_M_SYN]++;
    if (tcpflags & VC5_TCP_ACK)
        m->c[VC5_M_ACK]++;
    if (tcpflags & VC5_TCP_FIN)
        m->c[VC5_M_FIN]++;
    if (tcpflags & VC5_TCP_RST)
        m->c[VC5_M_RST]++;
}

#include "vc5_hash.h"

/* Fold of a 16-byte address to the vip_filter bit (user space: layout.vip_fold).
 * Words as loaded on this little-endian CPU; an IPv4 address is w[3] alone. */
static __always_inline __u32 vc5_fold(__u32 x)
{
    return (x ^ (x >> 16)) & (VC5_FILTER_BITS - 1);
}

static __always_inline int vc5_maybe_vip(__u32 x)
{
    __u32 zero = 0;
    struct vc5_vip_filter *vf = vip_filter.lookup(&zero);
    if (!vf)
        return 1;
    __u32 bit = vc5_fold(x);
    return (vf->bits[(bit >> 6) & (VC5_FILTER_BITS / 64 - 1)] >> (bit & 63)) & 1;
}

/* Slow path for a packet that will not be balanced: not a VIP -> PASS
 * untouched; a VIP -> DROP, err counted globally and for the VIP. */
static __always_inline int vc5_refuse(struct vc5_global *g, struct vc5_addr *daddr, int err)
{
    struct vc5_vip *v = vips.lookup(daddr);
    if (!v) {
        g->m.c[VC5_M_NOT_A_VIP]++;
        return XDP_PASS;
    }
    __u32 vi = v->vip_index;
    return vc5_err(g, vip_stats.lookup(&vi), NULL, err);
}

/* What vc5_send needs to send a packet on to its backend. */
struct vc5_fwd {
    struct vc5_backend *b;
    __u32 pair;
    __u32 tot;                   /* IP length of the packet (the inner one, for tunnels) */
    __u16 hash;                  /* 36-byte sdbm of the flow (FOU/GUE source port) */
    __u16 tci;                   /* 802.1Q TCI as received (network order) */
    __u8 tagged;
    __u8 inner6;                 /* the packet is IPv6 */
    __u8 relay;                  /* an ICMP too-big relayed to the flow's backend (not data) */
    __u8 tcpflags;
    __u8 new_flow;
};

#define VC5_FORWARD (-1)         /* vc5_ipv4/6: the packet is for f->b, call vc5_send */

#include "vc5_flows.h"
#include "vc5_prefix.h"

/* Backend selection for a packet to a possible VIP: fills fw and returns
 * VC5_FORWARD, or the verdict (refused or dropped). */
static __always_inline int vc5_balance(struct vc5_global *g, struct vc5_flow_key *fk, __u8 tcpflags, __u64 now,
                                       struct vc5_fwd *fw, const int lookup_only)
{
    struct vc5_svc_hdr *hdr = NULL;
    int err = VC5_M_ERR_INTERNAL;
    struct vc5_backend *b = vc5_select(fk, tcpflags, now, fw, &err, &hdr, lookup_only);
    if (b) {
        fw->b = b;
        fw->tcpflags = tcpflags;
        return VC5_FORWARD;
    }
    if (!hdr)
        return vc5_refuse(g, &fk->t.daddr, err);   /* no such service: a VIP at all? */
    __u32 vi = hdr->vip_index, si = hdr->svc_index;
    return vc5_err(g, vip_stats.lookup(&vi), svc_stats.lookup(&si), err);
}

#include "vc5_encap.h"

/* Outer header bytes for the backend's method, or -1 (unsupported: unknown
 * method, or our source address is missing or of another family). */
static __always_inline int vc5_overhead(struct vc5_backend *b)
{
    if (b->method == VC5_METHOD_L2)
        return 0;
    int outer4 = !b->addr.w[0] && !b->addr.w[1] && !b->addr.w[2];
    int src4 = !b->saddr.w[0] && !b->saddr.w[1] && !b->saddr.w[2];
    if (outer4 != src4 || (outer4 && !b->saddr.w[3]) || (outer4 && !b->addr.w[3]))
        return -1;
    int o = outer4 ? sizeof(struct vc5_iphdr) : sizeof(struct vc5_ipv6hdr);
    switch (b->method) {
    case VC5_METHOD_IPIP:
        return o;
    case VC5_METHOD_GRE:
        return o + VC5_GRE_OVERHEAD;
    case VC5_METHOD_FOU:
        return o + VC5_FOU_OVERHEAD;
    case VC5_METHOD_GUE:
        return o + VC5_GUE_OVERHEAD;
    }
    return -1;
}

/* Count err for the packet's VIP and service, and c on its backend. */
static __always_inline int vc5_be_err(struct vc5_global *g, struct vc5_metrics *vm, struct vc5_metrics *sm,
                                      struct vc5_counter *bc, int err, int c)
{
    if (bc) {
        if (c >= 0 && c < VC5_B_COUNT)
            bc->c[c]++;
        bc->c[VC5_B_ERRORS]++;
    }
    return vc5_err(g, vm, sm, err);
}

static __always_inline void vc5_too_big_count(struct vc5_global *g, struct vc5_metrics *vm, struct vc5_metrics *sm,
                                              struct vc5_counter *bc)
{
    g->m.c[VC5_M_TOO_BIG]++;
    if (vm)
        vm->c[VC5_M_TOO_BIG]++;
    if (sm)
        sm->c[VC5_M_TOO_BIG]++;
    if (bc)
        bc->c[VC5_B_TOO_BIG]++;
}

/* Too big for the egress MTU once encapsulated: an ICMP error to the client
 * (IPv4 with DF, IPv6), XDP_TX; IPv4 without DF and relayed ICMP: dropped. */
static __always_inline int vc5_too_big(struct xdp_md *ctx, struct vc5_global *g, struct vc5_fwd *f, __u32 room,
                                       struct vc5_metrics *vm, struct vc5_metrics *sm, struct vc5_counter *bc)
{
    vc5_too_big_count(g, vm, sm, bc);
    if (f->relay)
        return XDP_DROP;            /* never an ICMP error about an ICMP error */
    int r;
    if (f->inner6) {
        r = vc5_pkt_too_big(ctx, f->tagged, f->tci, room, f->tot);
    } else {
        void *data = (void *)(long)ctx->data;
        void *data_end = (void *)(long)ctx->data_end;
        struct vc5_iphdr *ip = data + (f->tagged ? 18 : 14);
        if ((void *)(ip + 1) > data_end)
            return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_ADJUST_FAILED, VC5_B_ADJUST_FAILED);
        if (!(ip->frag_off & VC5_HTONS(VC5_IP_DF))) {
            g->too_big_no_df++;
            return XDP_DROP;
        }
        r = vc5_frag_needed(ctx, f->tagged, f->tci, room, VC5_HTONS((__u16)g->seen));
    }
    if (r)
        return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_ADJUST_FAILED, VC5_B_ADJUST_FAILED);
    return XDP_TX;
}

/* Inner TTL / hop limit: 1 for L2 DSR (the frame must not be routed on, as
 * vc5), minus 1 for tunnels (as xvs); the caller checked it was > 1. */
static __always_inline int vc5_inner_ttl(void *l3, void *data_end, struct vc5_fwd *f, int l2)
{
    if (f->inner6) {
        struct vc5_ipv6hdr *ip6 = l3;
        if ((void *)(ip6 + 1) > data_end)
            return -1;
        ip6->hop_limit = l2 ? 1 : ip6->hop_limit - 1;
        return 0;
    }
    struct vc5_iphdr *ip = l3;
    if ((void *)(ip + 1) > data_end)
        return -1;
    __u16 old = *(__u16 *)&ip->ttl;
    ip->ttl = l2 ? 1 : ip->ttl - 1;
    vc5_csum_replace2(&ip->check, old, *(__u16 *)&ip->ttl);
    return 0;
}

/* The inner packet's sum for the outer UDP checksum (vc5_encap.h); *ok 0
 * when it cannot be had. Trims Ethernet padding first (runt frames), so the
 * outer lengths and the frame agree. */
static __always_inline __u64 vc5_inner_sum(struct xdp_md *ctx, struct vc5_fwd *f, int *ok)
{
    *ok = 0;
    __u32 l3off = f->tagged ? 18 : 14;
    vc5_trim(ctx, l3off + f->tot);
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (f->inner6) {
        struct vc5_ipv6hdr *ip6 = data + l3off;
        if ((void *)(ip6 + 1) > data_end)
            return 0;
        *ok = 1;
        return vc5_inner_sum6(ip6);
    }
    struct vc5_iphdr *ip = data + l3off;
    if ((void *)(ip + 1) > data_end)
        return 0;
    return vc5_inner_sum4(ip, data_end, f->tot, ok);
}

/* Encapsulate for a tunnel backend (overhead from vc5_overhead). */
static __always_inline int vc5_tunnel(struct xdp_md *ctx, struct vc5_global *g, struct vc5_fwd *f,
                                      struct vc5_backend *b, __u32 overhead, __u16 tci)
{
    struct vc5_encap_args a = {};
    a.outer6 = b->addr.w[0] || b->addr.w[1] || b->addr.w[2];
    a.method = b->method;
    a.inner6 = f->inner6;
    a.tagged = f->tagged;
    a.tci = tci;
    a.tot = f->tot;
    a.overhead = overhead;
    a.id = VC5_HTONS((__u16)g->seen);
    a.sport = VC5_HTONS(0x8000 | (f->hash & 0x7fff));
    a.dport = VC5_HTONS(b->tunnel_port);
    __builtin_memcpy(a.saddr, &b->saddr, 16);
    __builtin_memcpy(a.daddr, &b->addr, 16);
    __builtin_memcpy(a.h_dest, b->h_dest, 6);
    __builtin_memcpy(a.h_source, b->h_source, 6);
    /* tunnel-no-checksum applies to IPv4 only (bpf/README.md) */
    a.csum = (b->method == VC5_METHOD_FOU || b->method == VC5_METHOD_GUE) &&
             (a.outer6 || !(b->flags & VC5_BE_NO_CSUM));
    if (a.csum) {
        int ok = 0;
        a.inner_sum = vc5_inner_sum(ctx, f, &ok);
        a.csum = ok;        /* inner IPv4 UDP without checksum: outer 0 too (bpf/README.md) */
    } else {
        if (vc5_trim(ctx, (f->tagged ? 18 : 14) + f->tot))
            return -1;
    }
    return vc5_encap(ctx, &a);
}

static __always_inline void vc5_be_count(struct vc5_counter *bc, __u64 octets, __u8 tcpflags, int new_flow)
{
    bc->c[VC5_B_PACKETS]++;
    bc->c[VC5_B_OCTETS] += octets;
    bc->c[VC5_B_FLOWS] += new_flow;
    if (tcpflags & VC5_TCP_SYN)
        bc->c[VC5_B_SYN]++;
    if (tcpflags & VC5_TCP_ACK)
        bc->c[VC5_B_ACK]++;
    if (tcpflags & VC5_TCP_FIN)
        bc->c[VC5_B_FIN]++;
    if (tcpflags & VC5_TCP_RST)
        bc->c[VC5_B_RST]++;
}

/* Send the packet on to f->b: the method's checks, the egress MTU (too big:
 * an ICMP error to the client instead), TTL, the 802.1Q VID of the
 * backend's VLAN on a tagged frame (PCP/DEI kept), then L2 DSR (MACs) or
 * the tunnel's outer headers; XDP_TX, or XDP_REDIRECT through tx_port for
 * an untagged frame to a backend on another NIC. Counters last. */
static __always_inline int vc5_send(struct xdp_md *ctx, struct vc5_global *g, struct vc5_fwd *f)
{
    struct vc5_backend *b = f->b;
    __u32 pair = f->pair;
    __u32 vi = b->vip_index, si = b->svc_index;
    struct vc5_metrics *vm = vip_stats.lookup(&vi);
    struct vc5_metrics *sm = svc_stats.lookup(&si);
    struct vc5_counter *bc = be_stats.lookup(&pair);

    int overhead = vc5_overhead(b);
    if (overhead < 0)
        return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_TUNNEL_UNSUPPORTED, VC5_B_TUNNEL_UNSUPPORTED);
    if ((b->method == VC5_METHOD_FOU || b->method == VC5_METHOD_GUE) && !b->tunnel_port)
        return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_NO_TUNNEL_PORT, -1);
    __u32 mtu = b->mtu ? b->mtu : VC5_DEFAULT_MTU;
    if (f->tot + overhead > mtu)
        return vc5_too_big(ctx, g, f, mtu - overhead, vm, sm, bc);

    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u16 tci = f->tci;
    if (f->tagged && b->vlan)
        tci = (tci & VC5_HTONS(~VC5_VLAN_VID_MASK)) | VC5_HTONS(b->vlan & VC5_VLAN_VID_MASK);
    if (vc5_inner_ttl(data + (f->tagged ? 18 : 14), data_end, f, b->method == VC5_METHOD_L2))
        return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_INTERNAL, -1);

    if (b->method == VC5_METHOD_L2) {
        struct vc5_ethhdr *eth = data;
        struct vc5_vlanhdr *vh = (void *)(eth + 1);
        if ((void *)(vh + 1) > data_end)
            return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_INTERNAL, -1);
        __builtin_memcpy(eth->h_dest, b->h_dest, 6);
        __builtin_memcpy(eth->h_source, b->h_source, 6);
        if (f->tagged)
            vh->tci = tci;
    } else if (vc5_tunnel(ctx, g, f, b, overhead, tci)) {
        return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_ADJUST_FAILED, VC5_B_ADJUST_FAILED);
    }

    int action = XDP_TX;
    /* A tagged frame leaves on the trunk it came in on; untagged, several
     * NICs: redirect. */
    if (!f->tagged && (b->flags & VC5_BE_REDIRECT)) {
        action = tx_port.redirect_map(b->redirect_slot, 0);
        if (action != XDP_REDIRECT)     /* no interface in that slot */
            return vc5_be_err(g, vm, sm, bc, VC5_M_ERR_INTERNAL, -1);
    }
    if (f->relay) {
        g->pmtu_relayed++;
        return action;
    }
    __u64 octets = f->tot;
    vc5_count(&g->m, octets, f->tcpflags, f->new_flow);
    if (vm)
        vc5_count(vm, octets, f->tcpflags, f->new_flow);
    if (sm)
        vc5_count(sm, octets, f->tcpflags, f->new_flow);
    if (bc)
        vc5_be_count(bc, octets, f->tcpflags, f->new_flow);
    return action;
}

static __always_inline void vc5_swap_macs(struct vc5_ethhdr *eth)
{
    __u8 tmp[6];
    __builtin_memcpy(tmp, eth->h_dest, 6);
    __builtin_memcpy(eth->h_dest, eth->h_source, 6);
    __builtin_memcpy(eth->h_source, tmp, 6);
}

/* L4 ports and TCP flags into fk / *tcpflags; an err_* metric, or -1 if fine.
 * l4len: bytes of the IP payload (from the IP header, <= bytes in the frame). */
static __always_inline int vc5_ports(void *l4, void *data_end, __u32 l4len, __u8 proto,
                                     struct vc5_flow_key *fk, __u8 *tcpflags)
{
    if (proto == VC5_IPPROTO_TCP) {
        struct vc5_tcphdr *th = l4;
        if ((void *)(th + 1) > data_end || l4len < sizeof(*th) || (th->doff_res >> 4) < 5)
            return VC5_M_ERR_TCP_HEADER;
        fk->t.sport = th->source;
        fk->t.dport = th->dest;
        *tcpflags = th->flags;
        return -1;
    }
    struct vc5_udphdr *uh = l4;
    if ((void *)(uh + 1) > data_end || l4len < sizeof(*uh))
        return VC5_M_ERR_UDP_HEADER;
    fk->t.sport = uh->source;
    fk->t.dport = uh->dest;
    return -1;
}

/* ICMP echo request to a VIP (which has >= 1 service): the counters; the
 * caller rewrites the packet. Returns 0 when the address is not a VIP. */
static __always_inline int vc5_echo_for_vip(struct vc5_global *g, struct vc5_addr *daddr)
{
    struct vc5_vip *v = vips.lookup(daddr);
    if (!v)
        return 0;
    __u32 vi = v->vip_index;
    struct vc5_metrics *vm = vip_stats.lookup(&vi);
    g->m.c[VC5_M_ICMP_ECHO_REQUEST]++;
    if (vm)
        vm->c[VC5_M_ICMP_ECHO_REQUEST]++;
    return 1;
}

/* ---- Health-check probe path (docs/probe-path.md) ------------------- */

/* The checksum field of the TCP or UDP header at l4 (RFC 9293 3.1: byte
 * 16; RFC 768: byte 6). The caller checks it against data_end (a variable
 * offset from a packet pointer, then one bounds check: what the verifier
 * follows best). */
static __always_inline __u16 *vc5_l4_check(void *l4, __u8 proto)
{
    return l4 + (proto == VC5_IPPROTO_TCP ? 16 : 6);
}

/* New IPv4 source and destination, header and TCP/UDP checksums patched
 * (RFC 1624; the addresses are in the pseudo-header, RFC 9293 3.1 / RFC 768).
 * A UDP checksum of 0 means "none" and stays 0; a computed 0 is sent as
 * 0xffff (RFC 768). */
static __always_inline void vc5_nat_rewrite4(struct vc5_iphdr *ip, __u16 *l4sum, __u8 proto,
                                             __u32 nsrc, __u32 ndst)
{
    int l4 = proto == VC5_IPPROTO_TCP || *l4sum != 0;
    __u32 osrc = ip->saddr, odst = ip->daddr;
    vc5_csum_replace4(&ip->check, osrc, nsrc);
    vc5_csum_replace4(&ip->check, odst, ndst);
    if (l4) {
        vc5_csum_replace4(l4sum, osrc, nsrc);
        vc5_csum_replace4(l4sum, odst, ndst);
        if (proto == VC5_IPPROTO_UDP && *l4sum == 0)
            *l4sum = 0xffff;
    }
    ip->saddr = nsrc;
    ip->daddr = ndst;
}

/* The same for IPv6 (no header checksum; the UDP checksum is mandatory,
 * RFC 8200 8.1). nsrc/ndst must not point into the packet. */
static __always_inline void vc5_nat_rewrite6(struct vc5_ipv6hdr *ip6, __u16 *l4sum, __u8 proto,
                                             struct vc5_addr *nsrc, struct vc5_addr *ndst)
{
#pragma unroll
    for (int i = 0; i < 4; i++) {
        vc5_csum_replace4(l4sum, ip6->saddr[i], nsrc->w[i]);
        vc5_csum_replace4(l4sum, ip6->daddr[i], ndst->w[i]);
        ip6->saddr[i] = nsrc->w[i];
        ip6->daddr[i] = ndst->w[i];
    }
    if (proto == VC5_IPPROTO_UDP && *l4sum == 0)
        *l4sum = 0xffff;
}

/* An answer to a probe (key as it arrived): its nat_reply entry if there is
 * one younger than VC5_NAT_REPLY_TTL_NS (refreshed: the entry lives while
 * packets flow either way); an older one is deleted. */
static __always_inline struct vc5_reply *vc5_reply_lookup(struct vc5_reply_key *k, __u64 now)
{
    struct vc5_reply *r = nat_reply.lookup(k);
    if (!r)
        return NULL;
    if ((__s64)(now - r->time) > (__s64)VC5_NAT_REPLY_TTL_NS) {
        __u32 zero = 0;
        struct vc5_nat_stats *ns = nat_stats.lookup(&zero);
        nat_reply.delete(k);
        if (ns)
            ns->c[VC5_N_EXPIRED]++;
        return NULL;
    }
    r->time = now;      /* an answer keeps the entry alive too (long responses, server FIN) */
    return r;
}

static __always_inline int vc5_reply_done(struct vc5_global *g)
{
    __u32 zero = 0;
    struct vc5_nat_stats *ns = nat_stats.lookup(&zero);
    g->m.c[VC5_M_PROBE_REPLY]++;
    if (ns)
        ns->c[VC5_N_REPLIES]++;
    return XDP_PASS;
}

/* IPv4 packet whose source may be a VIP: an answer to a probe is rewritten
 * (source = probe address, destination = the prober) and PASSed to the host
 * stack, which delivers it to the prober's socket. Returns -1 for anything
 * else (the caller goes on: today's behaviour for such packets). */
static __always_inline int vc5_reply4(void *data_end, struct vc5_iphdr *ip, struct vc5_global *g, __u64 now)
{
    if (ip->ver_ihl != 0x45 || (ip->frag_off & VC5_HTONS(VC5_IP_MF_OFFSET)))
        return -1;
    if (ip->protocol != VC5_IPPROTO_TCP && ip->protocol != VC5_IPPROTO_UDP)
        return -1;
    struct vc5_udphdr *ph = (void *)(ip + 1);
    __u16 *sum = vc5_l4_check(ph, ip->protocol);
    if ((void *)(ph + 1) > data_end || (void *)(sum + 1) > data_end)
        return -1;
    struct vc5_reply_key k = {};
    k.vip.w[3] = ip->saddr;
    k.ext.w[3] = ip->daddr;
    k.vport = ph->source;
    k.eport = ph->dest;
    k.proto = ip->protocol;
    struct vc5_reply *r = vc5_reply_lookup(&k, now);
    if (!r)
        return -1;
    vc5_nat_rewrite4(ip, sum, ip->protocol, r->nat.w[3], r->src.w[3]);
    return vc5_reply_done(g);
}

static __always_inline int vc5_reply6(void *data_end, struct vc5_ipv6hdr *ip6, struct vc5_global *g, __u64 now)
{
    if (ip6->nexthdr != VC5_IPPROTO_TCP && ip6->nexthdr != VC5_IPPROTO_UDP)
        return -1;
    struct vc5_udphdr *ph = (void *)(ip6 + 1);
    __u16 *sum = vc5_l4_check(ph, ip6->nexthdr);
    if ((void *)(ph + 1) > data_end || (void *)(sum + 1) > data_end)
        return -1;
    struct vc5_reply_key k = {};
    __builtin_memcpy(&k.vip, ip6->saddr, 16);
    __builtin_memcpy(&k.ext, ip6->daddr, 16);
    k.vport = ph->source;
    k.eport = ph->dest;
    k.proto = ip6->nexthdr;
    struct vc5_reply *r = vc5_reply_lookup(&k, now);
    if (!r)
        return -1;
    struct vc5_addr nsrc = r->nat, ndst = r->src;
    vc5_nat_rewrite6(ip6, sum, ip6->nexthdr, &nsrc, &ndst);
    return vc5_reply_done(g);
}

/* Rate limit of relayed ICMP too-big messages, per CPU: GCRA (a token
 * bucket as a theoretical arrival time): one per interval, bursts of
 * `burst`; settings 0 = VC5_PMTU_INTERVAL_NS / VC5_PMTU_BURST. */
static __always_inline int vc5_pmtu_allowed(struct vc5_global *g, __u64 now)
{
    __u32 zero = 0;
    struct vc5_settings *st = settings.lookup(&zero);
    __u64 interval = st && st->pmtu_interval_ns ? st->pmtu_interval_ns : VC5_PMTU_INTERVAL_NS;
    __u64 burst = st && st->pmtu_burst ? st->pmtu_burst : VC5_PMTU_BURST;
    __u64 tat = g->pmtu_tat;
    if ((__s64)(tat - now) < 0)
        tat = now;                  /* idle long enough: a full bucket */
    if (tat - now > (burst - 1) * interval) {
        g->pmtu_rate_limited++;
        return 0;
    }
    g->pmtu_tat = tat + interval;
    return 1;
}

/* ICMP too-big to a VIP (Fragmentation Needed, Packet Too Big): a router
 * between us and a client could not forward a packet the BACKEND sent from
 * the VIP to the client. The quote is that packet (VIP:port -> client:port);
 * reversed it is the flow key (client:port -> VIP:port), whose backend (flow
 * table, else Maglev; nothing is stored) gets the ICMP as it would data.
 * fk holds the reversed tuple; returns VC5_FORWARD or the verdict. */
static __always_inline int vc5_pmtu(struct vc5_global *g, struct vc5_flow_key *fk, __u64 now, struct vc5_fwd *f)
{
    int r = vc5_balance(g, fk, 0, now, f, 1);
    if (r != VC5_FORWARD)
        return r;
    if (!vc5_pmtu_allowed(g, now))
        return XDP_DROP;
    f->relay = 1;
    return VC5_FORWARD;
}

static __always_inline int vc5_pmtu4(struct vc5_global *g, struct vc5_iphdr *ip, struct vc5_icmphdr *ic,
                                     void *data_end, __u64 now, struct vc5_fwd *f)
{
    struct vc5_flow_key fk = {};
    fk.t.daddr.w[3] = ip->daddr;
    struct vc5_iphdr *q = (void *)(ic + 1);
    struct vc5_udphdr *qp = (void *)(q + 1);
    if ((void *)(qp + 1) > data_end)
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_ICMP_HEADER);
    if (q->ver_ihl != 0x45 || q->saddr != ip->daddr ||
        (q->protocol != VC5_IPPROTO_TCP && q->protocol != VC5_IPPROTO_UDP))
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_ICMP_UNSUPPORTED);
    fk.t.saddr.w[3] = q->daddr;
    fk.t.sport = qp->dest;
    fk.t.dport = qp->source;
    fk.proto = q->protocol;
    return vc5_pmtu(g, &fk, now, f);
}

static __always_inline int vc5_pmtu6(struct vc5_global *g, struct vc5_flow_key *fk, struct vc5_icmphdr *ic,
                                     void *data_end, __u64 now, struct vc5_fwd *f)
{
    struct vc5_ipv6hdr *q = (void *)(ic + 1);
    struct vc5_udphdr *qp = (void *)(q + 1);
    if ((void *)(qp + 1) > data_end)
        return vc5_refuse(g, &fk->t.daddr, VC5_M_ERR_ICMP_HEADER);
    if (q->saddr[0] != fk->t.daddr.w[0] || q->saddr[1] != fk->t.daddr.w[1] ||
        q->saddr[2] != fk->t.daddr.w[2] || q->saddr[3] != fk->t.daddr.w[3] ||
        (q->nexthdr != VC5_IPPROTO_TCP && q->nexthdr != VC5_IPPROTO_UDP))
        return vc5_refuse(g, &fk->t.daddr, VC5_M_ERR_ICMP_UNSUPPORTED);
    __builtin_memcpy(&fk->t.saddr, q->daddr, 16);
    fk->t.sport = qp->dest;
    fk->t.dport = qp->source;
    fk->proto = q->nexthdr;
    return vc5_pmtu(g, fk, now, f);
}

/* IPv4: returns the verdict, or VC5_FORWARD with f filled. */
static __always_inline int vc5_ipv4(void *data, void *data_end, struct vc5_ethhdr *eth, struct vc5_iphdr *ip,
                                    struct vc5_fwd *f, struct vc5_global *g, __u64 now)
{
    if ((void *)(ip + 1) > data_end || (ip->ver_ihl >> 4) != 4)
        return vc5_err(g, NULL, NULL, VC5_M_ERR_MALFORMED);
    if (vc5_prefix4(g, ip->saddr, data_end - (void *)ip))
        return XDP_DROP;
    /* The probe path's answers come from a VIP to one of our addresses. */
    if (vc5_maybe_vip(ip->saddr)) {
        int r = vc5_reply4(data_end, ip, g, now);
        if (r >= 0)
            return r;
    }
    if (!vc5_maybe_vip(ip->daddr)) {
        g->m.c[VC5_M_NOT_A_VIP]++;
        return XDP_PASS;
    }

    struct vc5_flow_key fk = {};
    fk.t.saddr.w[3] = ip->saddr;
    fk.t.daddr.w[3] = ip->daddr;
    fk.proto = ip->protocol;

    /* IP total length against the frame: never more; less only while the
     * frame may carry Ethernet padding (<= 64 bytes), as vc5 (vmxnet3 guard). */
    __u32 avail = data_end - (void *)ip;
    __u32 tot = VC5_NTOHS(ip->tot_len);
    if (tot > avail || tot < sizeof(*ip) || (tot != avail && data_end - data > 64))
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_TOT_LEN);
    if (ip->ver_ihl != 0x45)    /* IPv4 options */
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_MALFORMED);
    if (ip->frag_off & VC5_HTONS(VC5_IP_MF_OFFSET))
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_FRAGMENTED);
    if (ip->ttl <= 1)
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_EXPIRED);

    void *l4 = ip + 1;
    __u32 l4len = tot - sizeof(*ip);
    __u8 tcpflags = 0;
    f->tot = tot;

    if (ip->protocol == VC5_IPPROTO_ICMP) {
        struct vc5_icmphdr *ic = l4;
        if ((void *)(ic + 1) > data_end || l4len < sizeof(*ic))
            return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_ICMP_HEADER);
        if (ic->type == VC5_ICMP_DEST_UNREACH && ic->code == VC5_ICMP_FRAG_NEEDED)
            return vc5_pmtu4(g, ip, ic, data_end, now, f);
        if (ic->type != VC5_ICMP_ECHO_REQUEST || ic->code != 0)
            return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_ICMP_UNSUPPORTED);
        if (!vc5_echo_for_vip(g, &fk.t.daddr)) {
            g->m.c[VC5_M_NOT_A_VIP]++;
            return XDP_PASS;
        }
        /* Echo reply from the VIP: MACs and addresses swapped (a swap keeps
         * the header sum), TTL 64, type 0, checksums patched (RFC 1624). */
        vc5_swap_macs(eth);
        __u32 a = ip->saddr;
        ip->saddr = ip->daddr;
        ip->daddr = a;
        __u16 old = *(__u16 *)&ip->ttl;
        ip->ttl = 64;
        vc5_csum_replace2(&ip->check, old, *(__u16 *)&ip->ttl);
        old = *(__u16 *)ic;
        ic->type = VC5_ICMP_ECHO_REPLY;
        vc5_csum_replace2(&ic->checksum, old, *(__u16 *)ic);
        return XDP_TX;
    }
    if (ip->protocol != VC5_IPPROTO_TCP && ip->protocol != VC5_IPPROTO_UDP)
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_L4_UNSUPPORTED);
    int e = vc5_ports(l4, data_end, l4len, ip->protocol, &fk, &tcpflags);
    if (e >= 0)
        return vc5_refuse(g, &fk.t.daddr, e);
    return vc5_balance(g, &fk, tcpflags, now, f, 0);
}

/* IPv6: returns the verdict, or VC5_FORWARD with f filled. */
static __always_inline int vc5_ipv6(void *data, void *data_end, struct vc5_ethhdr *eth, struct vc5_ipv6hdr *ip6,
                                    struct vc5_fwd *f, struct vc5_global *g, __u64 now)
{
    if ((void *)(ip6 + 1) > data_end || (ip6->ver_tc_flow & 0xf0) != 0x60)
        return vc5_err(g, NULL, NULL, VC5_M_ERR_MALFORMED);

    struct vc5_flow_key fk = {};
    __builtin_memcpy(&fk.t.saddr, ip6->saddr, 16);
    __builtin_memcpy(&fk.t.daddr, ip6->daddr, 16);
    fk.proto = ip6->nexthdr;
    if (vc5_prefix6(g, &fk.t.saddr, data_end - (void *)ip6))
        return XDP_DROP;
    if (vc5_maybe_vip(fk.t.saddr.w[0] ^ fk.t.saddr.w[1] ^ fk.t.saddr.w[2] ^ fk.t.saddr.w[3])) {
        int r = vc5_reply6(data_end, ip6, g, now);
        if (r >= 0)
            return r;
    }
    if (!vc5_maybe_vip(fk.t.daddr.w[0] ^ fk.t.daddr.w[1] ^ fk.t.daddr.w[2] ^ fk.t.daddr.w[3])) {
        g->m.c[VC5_M_NOT_A_VIP]++;
        return XDP_PASS;
    }

    __u32 avail = data_end - (void *)ip6;
    __u32 l4len = VC5_NTOHS(ip6->payload_len);
    __u32 tot = l4len + sizeof(*ip6);
    if (tot > avail || (tot != avail && data_end - data > 64))
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_TOT_LEN);
    if (ip6->hop_limit <= 1)
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_EXPIRED);

    void *l4 = ip6 + 1;
    __u8 tcpflags = 0;
    f->tot = tot;
    f->inner6 = 1;

    if (ip6->nexthdr == VC5_IPPROTO_ICMPV6) {
        struct vc5_icmphdr *ic = l4;
        if ((void *)(ic + 1) > data_end || l4len < sizeof(*ic))
            return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_ICMP_HEADER);
        if (ic->type == VC5_ICMPV6_PKT_TOOBIG && ic->code == 0)
            return vc5_pmtu6(g, &fk, ic, data_end, now, f);
        if (ic->type != VC5_ICMPV6_ECHO_REQUEST || ic->code != 0)
            return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_ICMP_UNSUPPORTED);
        if (!vc5_echo_for_vip(g, &fk.t.daddr)) {
            g->m.c[VC5_M_NOT_A_VIP]++;
            return XDP_PASS;
        }
        vc5_swap_macs(eth);
        /* Swapping source and destination keeps the pseudo-header sum
         * (RFC 4443 section 2.3), so only the type word needs patching. */
        __builtin_memcpy(ip6->saddr, &fk.t.daddr, 16);
        __builtin_memcpy(ip6->daddr, &fk.t.saddr, 16);
        ip6->hop_limit = 64;
        __u16 old = *(__u16 *)ic;
        ic->type = VC5_ICMPV6_ECHO_REPLY;
        vc5_csum_replace2(&ic->checksum, old, *(__u16 *)ic);
        return XDP_TX;
    }
    if (ip6->nexthdr == VC5_IPPROTO_FRAG6)
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_FRAGMENTED);
    /* Extension headers are not parsed (as vc5). */
    if (ip6->nexthdr != VC5_IPPROTO_TCP && ip6->nexthdr != VC5_IPPROTO_UDP)
        return vc5_refuse(g, &fk.t.daddr, VC5_M_ERR_L4_UNSUPPORTED);
    int e = vc5_ports(l4, data_end, l4len, ip6->nexthdr, &fk, &tcpflags);
    if (e >= 0)
        return vc5_refuse(g, &fk.t.daddr, e);
    return vc5_balance(g, &fk, tcpflags, now, f, 0);
}

static __always_inline int vc5_process(struct xdp_md *ctx, struct vc5_global *g, __u64 now)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct vc5_ethhdr *eth = data;
    struct vc5_fwd f = {};

    if ((void *)(eth + 1) > data_end)
        return vc5_err(g, NULL, NULL, VC5_M_ERR_MALFORMED);
    __u16 proto = eth->h_proto;
    void *l3 = eth + 1;
    if (proto == VC5_HTONS(VC5_ETH_P_8021Q)) {
        struct vc5_vlanhdr *vh = l3;
        if ((void *)(vh + 1) > data_end)
            return vc5_err(g, NULL, NULL, VC5_M_ERR_MALFORMED);
        proto = vh->proto;
        l3 = vh + 1;
        f.tagged = 1;
        f.tci = vh->tci;
    }
    int r;
    if (proto == VC5_HTONS(VC5_ETH_P_IP)) {
        r = vc5_ipv4(data, data_end, eth, l3, &f, g, now);
    } else if (proto == VC5_HTONS(VC5_ETH_P_IPV6)) {
        r = vc5_ipv6(data, data_end, eth, l3, &f, g, now);
    } else {
        g->m.c[VC5_M_NOT_IP]++;
        return XDP_PASS;
    }
    if (r != VC5_FORWARD)
        return r;
    if (!f.b)
        return XDP_DROP;
    /* Packet pointers end here: vc5_send may move the frame's head. */
    return vc5_send(ctx, g, &f);
}

int xdp_main(struct xdp_md *ctx)
{
    /* Timestamps for flows and the watchdog come from the coarse clock
     * (CLOCK_MONOTONIC_COARSE, tick resolution: ample for 60/120 s timers,
     * and ~5 ns instead of ~35 ns for bpf_ktime_get_ns on these VMs). */
    __u64 now = bpf_ktime_get_coarse_ns();
    __u32 zero = 0;

    struct vc5_settings *st = settings.lookup(&zero);
    if (!st || !st->active)
        return XDP_PASS;
    /* Watchdog: user space has not refreshed for too long -> hand everything
     * to the kernel (vc5: 60 s). refreshed_ns is CLOCK_MONOTONIC. */
    if (st->watchdog_ns && (__s64)(now - st->refreshed_ns) > (__s64)st->watchdog_ns)
        return XDP_PASS;
    struct vc5_global *g = global_stats.lookup(&zero);
    if (!g)
        return XDP_PASS;

    /* Processing latency, measured exactly (bpf_ktime_get_ns at entry and
     * exit) on one packet in VC5_LATENCY_SAMPLE per CPU: the mean is kept,
     * the cost of two precise clock reads is paid by few packets. */
    int sample = (g->seen++ & (VC5_LATENCY_SAMPLE - 1)) == 0;
    __u64 start = sample ? bpf_ktime_get_ns() : 0;

    int action = vc5_process(ctx, g, now);

    if (sample) {
        g->latency_ns += bpf_ktime_get_ns() - start;
        g->latency_packets++;
    }
    return action;
}

/* ---- xdp_nat: probe packets from the host to a probe (NAT) address ----
 *
 * Attached (generic mode) to the peer end of the loader's veth pair; the
 * host routes 255.0.0.0/8 and fefe::/96 into the pair. A probe packet to an
 * address with a nat entry becomes the packet a client would send to the VIP
 * on that backend: IP source = our address on the backend's subnet, IP
 * destination = the VIP, TTL / hop limit 1 (as L2 DSR forwarding), Ethernet
 * destination = the backend's MAC, source = ours on that interface, checksums
 * patched; it is redirected out of that interface (nat_tx) and the answer
 * expected back is recorded in nat_reply. */

static __always_inline int vc5_nat_redirect(struct vc5_nat *n, struct vc5_nat_stats *ns,
                                            struct vc5_reply_key *k, struct vc5_reply *r)
{
    int action = nat_tx.redirect_map(n->tx_slot, 0);
    if (action != XDP_REDIRECT) {
        ns->c[VC5_N_NO_INTERFACE]++;
        return XDP_DROP;
    }
    nat_reply.update(k, r);
    ns->c[VC5_N_REQUESTS]++;
    return action;
}

/* The tunnelled service's probe (vc5-behaviour section 3.4: the NAT path
 * applies the destination's tunnel): encapsulated exactly as client traffic
 * to that backend (vc5_tunnel with its backends[] record), to the same next
 * hop; too big for the egress MTU or a record that is not this backend's:
 * dropped. FOU/GUE source port from the prober's port (a probe connection is
 * a flow). Packet pointers end here. */
static __always_inline int vc5_nat_tunnel(struct xdp_md *ctx, struct vc5_nat *n, struct vc5_nat_stats *ns,
                                          struct vc5_reply_key *k, struct vc5_reply *r, __u32 tot,
                                          __u8 inner6)
{
    __u32 zero = 0, pair = n->pair;
    struct vc5_global *g = global_stats.lookup(&zero);
    struct vc5_backend *b = backends.lookup(&pair);
    if (!g || !b || !b->cookie || b->addr.w[0] != n->backend.w[0] || b->addr.w[1] != n->backend.w[1] ||
        b->addr.w[2] != n->backend.w[2] || b->addr.w[3] != n->backend.w[3]) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    int overhead = vc5_overhead(b);
    __u32 mtu = b->mtu ? b->mtu : VC5_DEFAULT_MTU;
    long len = (long)ctx->data_end - (long)ctx->data;
    if (overhead <= 0 || len < (long)(14 + tot) || ((b->method == VC5_METHOD_FOU || b->method == VC5_METHOD_GUE) && !b->tunnel_port) ||
        tot + overhead > mtu) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    struct vc5_fwd f = { .b = b, .pair = pair, .tot = tot, .hash = VC5_NTOHS(k->eport), .inner6 = inner6 };
    if (vc5_tunnel(ctx, g, &f, b, overhead, 0)) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    return vc5_nat_redirect(n, ns, k, r);
}

static __always_inline int vc5_nat_send(struct xdp_md *ctx, struct vc5_ethhdr *eth, struct vc5_nat *n,
                                        struct vc5_nat_stats *ns, struct vc5_reply_key *k, struct vc5_reply *r,
                                        __u32 tot, __u8 inner6)
{
    if (n->flags & VC5_NAT_TUNNEL)
        return vc5_nat_tunnel(ctx, n, ns, k, r, tot, inner6);
    __builtin_memcpy(eth->h_dest, n->h_dest, 6);
    __builtin_memcpy(eth->h_source, n->h_source, 6);
    return vc5_nat_redirect(n, ns, k, r);
}

static __always_inline int vc5_nat4(struct xdp_md *ctx, void *data_end, struct vc5_ethhdr *eth,
                                    struct vc5_iphdr *ip, struct vc5_nat_stats *ns, __u64 now)
{
    if ((void *)(ip + 1) > data_end || (ip->daddr & 0xff) != 255) {     /* 255.0.0.0/8 */
        ns->c[VC5_N_PASSED]++;
        return XDP_PASS;
    }
    struct vc5_addr key = {};
    key.w[3] = ip->daddr;
    struct vc5_nat *n = nat.lookup(&key);
    if (!n) {
        ns->c[VC5_N_NO_ENTRY]++;
        return XDP_DROP;
    }
    __u8 proto = ip->protocol;
    if (ip->ver_ihl != 0x45 || (ip->frag_off & VC5_HTONS(VC5_IP_MF_OFFSET)) || ip->ttl <= 1 ||
        (proto != VC5_IPPROTO_TCP && proto != VC5_IPPROTO_UDP)) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    struct vc5_udphdr *ph = (void *)(ip + 1);
    __u16 *sum = vc5_l4_check(ph, proto);
    if ((void *)(ph + 1) > data_end || (void *)(sum + 1) > data_end) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    struct vc5_reply_key k = {};
    k.vip.w[3] = n->vip.w[3];
    k.ext.w[3] = n->saddr.w[3];
    k.vport = ph->dest;
    k.eport = ph->source;
    k.proto = proto;
    struct vc5_reply r = {};
    r.nat.w[3] = ip->daddr;
    r.src.w[3] = ip->saddr;
    r.time = now;

    /* L2 DSR: TTL 1, as client traffic; a tunnel decrements the inner TTL (vc5_inner_ttl) */
    __u16 old = *(__u16 *)&ip->ttl;
    ip->ttl = (n->flags & VC5_NAT_TUNNEL) ? ip->ttl - 1 : 1;
    vc5_csum_replace2(&ip->check, old, *(__u16 *)&ip->ttl);
    vc5_nat_rewrite4(ip, sum, proto, n->saddr.w[3], n->vip.w[3]);
    return vc5_nat_send(ctx, eth, n, ns, &k, &r, VC5_NTOHS(ip->tot_len), 0);
}

static __always_inline int vc5_nat6(struct xdp_md *ctx, void *data_end, struct vc5_ethhdr *eth,
                                    struct vc5_ipv6hdr *ip6, struct vc5_nat_stats *ns, __u64 now)
{
    /* fefe::/96: words as loaded on this little-endian CPU */
    if ((void *)(ip6 + 1) > data_end || ip6->daddr[0] != 0xfefe || ip6->daddr[1] || ip6->daddr[2]) {
        ns->c[VC5_N_PASSED]++;
        return XDP_PASS;
    }
    struct vc5_addr key;
    __builtin_memcpy(&key, ip6->daddr, 16);
    struct vc5_nat *n = nat.lookup(&key);
    if (!n) {
        ns->c[VC5_N_NO_ENTRY]++;
        return XDP_DROP;
    }
    __u8 proto = ip6->nexthdr;     /* extension headers are not followed (as the balancer) */
    if (ip6->hop_limit <= 1 || (proto != VC5_IPPROTO_TCP && proto != VC5_IPPROTO_UDP)) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    struct vc5_udphdr *ph = (void *)(ip6 + 1);
    __u16 *sum = vc5_l4_check(ph, proto);
    if ((void *)(ph + 1) > data_end || (void *)(sum + 1) > data_end) {
        ns->c[VC5_N_DROPPED]++;
        return XDP_DROP;
    }
    struct vc5_reply_key k = {};
    k.vip = n->vip;
    k.ext = n->saddr;
    k.vport = ph->dest;
    k.eport = ph->source;
    k.proto = proto;
    struct vc5_reply r = {};
    __builtin_memcpy(&r.nat, ip6->daddr, 16);
    __builtin_memcpy(&r.src, ip6->saddr, 16);
    r.time = now;

    ip6->hop_limit = (n->flags & VC5_NAT_TUNNEL) ? ip6->hop_limit - 1 : 1;
    struct vc5_addr nsrc = n->saddr, ndst = n->vip;
    vc5_nat_rewrite6(ip6, sum, proto, &nsrc, &ndst);
    return vc5_nat_send(ctx, eth, n, ns, &k, &r, sizeof(*ip6) + VC5_NTOHS(ip6->payload_len), 1);
}

int xdp_nat(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct vc5_ethhdr *eth = data;
    __u32 zero = 0;
    struct vc5_nat_stats *ns = nat_stats.lookup(&zero);

    if (!ns || (void *)(eth + 1) > data_end)
        return XDP_PASS;
    __u64 now = bpf_ktime_get_coarse_ns();      /* the clock xdp_main reads */
    if (eth->h_proto == VC5_HTONS(VC5_ETH_P_IP))
        return vc5_nat4(ctx, data_end, eth, (void *)(eth + 1), ns, now);
    if (eth->h_proto == VC5_HTONS(VC5_ETH_P_IPV6))
        return vc5_nat6(ctx, data_end, eth, (void *)(eth + 1), ns, now);
    ns->c[VC5_N_PASSED]++;
    return XDP_PASS;
}

int xdp_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}
