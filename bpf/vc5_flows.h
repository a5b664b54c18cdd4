/* vc5 data plane: the flow table (which backend an established flow keeps).
 * Included by vc5_xdp.c after struct vc5_fwd, the maps and vc5_sdbm.
 * user space: layout.map_specs lists the same maps. */
#ifndef VC5_FLOWS_H
#define VC5_FLOWS_H

BPF_TABLE_PINNED("lru_percpu_hash", struct vc5_flow_key, struct vc5_flow, flows, VC5_FLOWS,
                 VC5_PIN_DIR "/flows");

#include "vc5_share.h"

/* Backend record for this packet (and its index in f->pair), or NULL with
 * *err set and, when the service is known, *hdr pointing at its header.
 *
 * Flow table (per CPU): an entry is valid while time + 120 s >= now and is
 * refreshed by a packet when older than 60 s; a SYN on an entry older than
 * 60 s re-selects. TCP entries are stored on the first packet without
 * SYN/RST/FIN (a SYN flood cannot fill the table), UDP on the first packet.
 * An entry keeps its backend while the pair record is present (VALID, same
 * cookie), even when the backend is no longer in the Maglev table (drained
 * or unhealthy). When the backend was removed from the service (record
 * freed or reused with another cookie) the packet is re-selected through
 * Maglev (for TCP the new backend answers the stray segment with a RST, so
 * the client learns at once instead of timing out as with vc5's
 * err_backend_invalid). lookup_only (ICMP relay): the flow table is read,
 * never written or refreshed. */
static __always_inline struct vc5_backend *vc5_select(struct vc5_flow_key *fk, __u8 tcpflags, __u64 now,
                                                      struct vc5_fwd *fw, int *err, struct vc5_svc_hdr **hdr,
                                                      const int lookup_only)
{
    struct vc5_backend *b;
    int stale = 0;
    __u32 pair;

    struct vc5_flow *f = flows.lookup(fk);
    if (f) {
        __u64 age = now - f->time;  /* time 0 (never set on this CPU) or in the future: huge */
        stale = 1;
        /* A SYN opens a new connection: it never follows an entry, which can
         * only belong to an earlier connection on the same 4-tuple (SYNs are
         * never stored), so a re-used source port gets today's Maglev choice,
         * never a drained or failed backend (vc5 followed entries < 60 s). */
        if (age <= VC5_FLOW_TTL_NS && !(tcpflags & VC5_TCP_SYN)) {
            pair = f->pair;
            b = backends.lookup(&pair);
            if (b && f->cookie != 0 && b->cookie == f->cookie && (b->flags & VC5_BE_VALID)) {
                if (!lookup_only && age > VC5_FLOW_REFRESH_NS) {
                    f->time = now;
                    vc5_share_note(&fk->t, fk->proto, now, pair, f->cookie, f->hash);
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
                struct vc5_flow nf = { .time = now, .cookie = sh.cookie, .pair = pair, .hash = sh.hash };
                flows.update(fk, &nf);
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
        struct vc5_flow nf = { .time = now, .cookie = b->cookie, .pair = pair, .hash = h4 };
        flows.update(fk, &nf);
        vc5_share_note(&fk->t, fk->proto, now, pair, b->cookie, h4);
        fw->new_flow = 1;
    } else if (stale) {
        flows.delete(fk);
    }
    return b;
}

#endif /* VC5_FLOWS_H */
