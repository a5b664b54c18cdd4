/* vc5 data plane: the flow tables (which backend an established flow keeps).
 * Included by vc5_xdp.c after struct vc5_fwd, the maps and vc5_sdbm.
 * user space: layout.map_specs lists the same maps; docs/data-plane.md,
 * "Flow table", has the choice (bench/flow_tables.py) and the memory.
 *
 * Four LRU_HASH tables, one value per flow shared by every CPU (a flow that
 * moves CPU, RSS or a NAPI move, finds its entry), common LRU (a CPU may
 * evict any entry, so the whole table serves whichever CPUs are busy):
 *   flows       TCP over IPv4, compact 12-byte key   (VC5_FLOWS entries)
 *   flows6      TCP over IPv6, the 36-byte tuple      (VC5_FLOWS6)
 *   flows_udp   UDP over IPv4, 12-byte key            (VC5_FLOWS_UDP)
 *   flows_udp6  UDP over IPv6, 36-byte tuple          (VC5_FLOWS_UDP6)
 * The protocol is the table, not part of the key. UDP has its own tables, so
 * a flood of new UDP 4-tuples (DNS, spoofed sources) evicts UDP entries only,
 * never an established TCP flow. */
#ifndef VC5_FLOWS_H
#define VC5_FLOWS_H

BPF_TABLE_PINNED("lru_hash", struct vc5_flow_key4, struct vc5_flow, flows, VC5_FLOWS, VC5_PIN_DIR "/flows");
BPF_TABLE_PINNED("lru_hash", struct vc5_tuple, struct vc5_flow, flows6, VC5_FLOWS6, VC5_PIN_DIR "/flows6");
BPF_TABLE_PINNED("lru_hash", struct vc5_flow_key4, struct vc5_flow, flows_udp, VC5_FLOWS_UDP,
                 VC5_PIN_DIR "/flows_udp");
BPF_TABLE_PINNED("lru_hash", struct vc5_tuple, struct vc5_flow, flows_udp6, VC5_FLOWS_UDP6,
                 VC5_PIN_DIR "/flows_udp6");
/* sessions[2 * pair + (era & 1)]: flows of that (service, backend) pair seen
 * in the era of that parity (vc5's `current` estimate: user space bumps
 * settings.era every 30 s, then reads and zeroes the previous era's half).
 * Shared by every CPU, added to atomically: once per flow per era. */
BPF_TABLE_PINNED("array", __u32, __u64, sessions, 2 * VC5_MAX_PAIRS, VC5_PIN_DIR "/sessions");
/* flow_limit[0] (per CPU): the new-flow rate limiter's state. */
BPF_TABLE_PINNED("percpu_array", __u32, struct vc5_flow_limit, flow_limit, 1, VC5_PIN_DIR "/flow_limit");

#include "vc5_share.h"

/* The table key of an IPv4 flow: IPv4 addresses are w[3] of vc5_addr. */
static __always_inline void vc5_key4(struct vc5_flow_key *fk, struct vc5_flow_key4 *k4)
{
    k4->saddr = fk->t.saddr.w[3];
    k4->daddr = fk->t.daddr.w[3];
    k4->sport = fk->t.sport;
    k4->dport = fk->t.dport;
}

/* The flow's entry in its table (by family v6 and fk->proto), or NULL. */
static __always_inline struct vc5_flow *vc5_flow_get(struct vc5_flow_key *fk, struct vc5_flow_key4 *k4, int v6)
{
    if (fk->proto == VC5_IPPROTO_TCP)
        return v6 ? flows6.lookup(&fk->t) : flows.lookup(k4);
    return v6 ? flows_udp6.lookup(&fk->t) : flows_udp.lookup(k4);
}

static __always_inline void vc5_flow_put(struct vc5_flow_key *fk, struct vc5_flow_key4 *k4, int v6,
                                         struct vc5_flow *nf)
{
    if (fk->proto == VC5_IPPROTO_TCP) {
        if (v6)
            flows6.update(&fk->t, nf);
        else
            flows.update(k4, nf);
    } else {
        if (v6)
            flows_udp6.update(&fk->t, nf);
        else
            flows_udp.update(k4, nf);
    }
}

static __always_inline void vc5_flow_del(struct vc5_flow_key *fk, struct vc5_flow_key4 *k4, int v6)
{
    if (fk->proto != VC5_IPPROTO_TCP)
        return;             /* only a TCP SYN/RST/FIN deletes (a stale entry) */
    if (v6)
        flows6.delete(&fk->t);
    else
        flows.delete(k4);
}

/* New-flow rate limit per CPU (Katran's LRU bypass): GCRA, one new entry per
 * interval, bursts of `burst` (settings 0: VC5_FLOW_INTERVAL_NS /
 * VC5_FLOW_BURST). Above it a new flow is still balanced by Maglev but not
 * stored (global flow_rate_limited): a flood of new flows cannot churn the
 * LRU, and an established flow that loses its entry anyway finds the same
 * backend through Maglev while the service is unchanged. */
static __always_inline int vc5_flow_allowed(__u64 now)
{
    __u32 zero = 0;
    struct vc5_flow_limit *fl = flow_limit.lookup(&zero);
    struct vc5_settings *st = settings.lookup(&zero);
    if (!fl)
        return 1;
    __u64 interval = st && st->flow_interval_ns ? st->flow_interval_ns : VC5_FLOW_INTERVAL_NS;
    __u64 burst = st && st->flow_burst ? st->flow_burst : VC5_FLOW_BURST;
    __u64 tat = fl->tat;
    if ((__s64)(tat - now) < 0)
        tat = now;                  /* idle long enough: a full bucket */
    if (tat - now > burst * interval)
        tat = now + (burst - 1) * interval;  /* set by a slower rate: an empty bucket of this one */
    if (tat - now > (burst - 1) * interval) {
        struct vc5_global *g = global_stats.lookup(&zero);
        if (g)
            g->flow_rate_limited++;
        return 0;
    }
    fl->tat = tat + interval;
    return 1;
}

/* Count the flow once in this era (its entry's time bit 0 = the parity it
 * was last counted in); returns the entry time to store for `now`. */
static __always_inline __u64 vc5_session(__u64 time, __u64 now, __u32 pair, int fresh)
{
    __u32 zero = 0;
    struct vc5_settings *st = settings.lookup(&zero);
    __u64 par = st ? st->era & 1 : 0;
    if (fresh || (time & 1) != par) {
        __u32 i = (2 * pair + par) & (2 * VC5_MAX_PAIRS - 1);
        __u64 *n = sessions.lookup(&i);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    return (now & ~1ULL) | par;
}

/* Backend record for this packet (and its index in f->pair), or NULL with
 * *err set and, when the service is known, *hdr pointing at its header.
 *
 * Flow table: an entry is valid while time + 120 s >= now and is refreshed
 * by a packet when older than 60 s; a SYN never follows an entry. TCP
 * entries are stored on the first packet without SYN/RST/FIN (a SYN flood
 * cannot fill the table), UDP on the first packet; never for a service with
 * VC5_SVC_STATELESS (every packet goes through Maglev), nor above the
 * new-flow rate (vc5_flow_allowed). An entry keeps its backend while the
 * pair record is present (VALID, same cookie), even when the backend is no
 * longer in the Maglev table (drained or unhealthy). When the backend was
 * removed from the service (record freed or reused with another cookie) the
 * packet is re-selected through Maglev (for TCP the new backend answers the
 * stray segment with a RST, so the client learns at once instead of timing
 * out as with vc5's err_backend_invalid). lookup_only (ICMP relay): the
 * flow table is read, never written or refreshed. */
static __always_inline struct vc5_backend *vc5_select(struct vc5_flow_key *fk, __u8 tcpflags, __u64 now,
                                                      struct vc5_fwd *fw, int *err, struct vc5_svc_hdr **hdr,
                                                      const int lookup_only)
{
    struct vc5_backend *b;
    int stale = 0, v6 = fw->inner6;
    __u32 pair;
    struct vc5_flow_key4 k4 = {};
    vc5_key4(fk, &k4);

    struct vc5_flow *f = vc5_flow_get(fk, &k4, v6);
    if (f) {
        /* time a tick ahead of ours (stamped by another CPU): age 0 */
        __u64 age = (__s64)(now - f->time) < 0 ? 0 : now - f->time;
        stale = 1;
        /* A SYN opens a new connection: it never follows an entry, which can
         * only belong to an earlier connection on the same 4-tuple (SYNs are
         * never stored), so a re-used source port gets today's Maglev choice,
         * never a drained or failed backend (vc5 followed entries < 60 s). */
        if (age <= VC5_FLOW_TTL_NS && !(tcpflags & VC5_TCP_SYN)) {
            pair = f->pair;
            b = backends.lookup(&pair);
            if (b && f->cookie != 0 && b->cookie == f->cookie && (b->flags & VC5_BE_VALID)) {
                if (!lookup_only) {
                    __u64 t = vc5_session(f->time, now, pair, 0);
                    if (age > VC5_FLOW_REFRESH_NS) {
                        f->time = t;    /* racing CPUs write the same kind of value */
                        vc5_share_note(&fk->t, fk->proto, now, pair, f->cookie, f->hash);
                    } else if ((t ^ f->time) & 1) {
                        f->time ^= 1;   /* counted in this era: keep the time, flip the parity */
                    }
                }
                fw->pair = pair;
                fw->hash = f->hash;
                return b;
            }
        }
    }

    struct vc5_share_hit sh;
    if (!(tcpflags & VC5_TCP_SYN) && vc5_share_lookup(&fk->t, fk->proto, now, &sh)) {
        pair = sh.pair;
        b = backends.lookup(&pair);
        if (b && sh.cookie != 0 && b->cookie == sh.cookie && (b->flags & VC5_BE_VALID)) {
            fw->pair = pair;
            fw->hash = sh.hash;
            if (!lookup_only) {
                struct vc5_flow nf = { .time = vc5_session(0, now, pair, 1), .cookie = sh.cookie,
                                       .pair = pair, .hash = sh.hash };
                vc5_flow_put(fk, &k4, v6, &nf);
            }
            return b;
        }
    }

    struct vc5_svc_key sk = { .vip = fk->t.daddr, .port = VC5_NTOHS(fk->t.dport), .proto = fk->proto };
    struct vc5_service *s = services.lookup(&sk);
    if (!s) {
        *err = VC5_M_ERR_SERVICE_NOT_FOUND;
        return NULL;
    }
    *hdr = &s->hdr;
    __u16 h4 = 0;
    __u32 h = vc5_sdbm(&fk->t, s->hdr.flags & VC5_SVC_STICKY, &h4);
    __u8 slot = s->maglev[h & VC5_MAGLEV_MASK];
    if (slot == 0) {
        *err = VC5_M_ERR_NO_BACKEND;
        return NULL;
    }
    pair = s->pair[slot];
    b = backends.lookup(&pair);
    if (!b || !(b->flags & VC5_BE_VALID) || b->cookie == 0) {
        *err = VC5_M_ERR_BACKEND_INVALID;
        return NULL;
    }
    fw->pair = pair;
    fw->hash = h4;
    if (lookup_only)
        return b;
    if (fk->proto == VC5_IPPROTO_UDP ||
        (fk->proto == VC5_IPPROTO_TCP && !(tcpflags & (VC5_TCP_SYN | VC5_TCP_RST | VC5_TCP_FIN)))) {
        if (!(s->hdr.flags & VC5_SVC_STATELESS) && vc5_flow_allowed(now)) {
            struct vc5_flow nf = { .time = vc5_session(0, now, pair, 1), .cookie = b->cookie,
                                   .pair = pair, .hash = h4 };
            vc5_flow_put(fk, &k4, v6, &nf);
            vc5_share_note(&fk->t, fk->proto, now, pair, b->cookie, h4);
            fw->new_flow = 1;
        }
    } else if (stale) {
        vc5_flow_del(fk, &k4, v6);
    }
    return b;
}

#endif /* VC5_FLOWS_H */
