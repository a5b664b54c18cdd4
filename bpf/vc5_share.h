/* vc5 data plane: flows shared between balancers (vc5 -m, docs/data-plane.md,
 * "Flow sharing"). Included by vc5_flows.h (after the settings map). Two hooks,
 * called by vc5_select, both no-ops unless user space set VC5_SETTINGS_SHARE:
 *   vc5_share_lookup  on a local flow-table miss (never for a SYN): 1 and
 *                     *out filled when another balancer told us this flow's
 *                     backend: `shared` holds OUR pair and cookie for it
 *                     (user space mapped the backend to our pair), so the
 *                     packet leaves with our MACs / next hop / tunnel source;
 *   vc5_share_note    when a flow is stored or refreshed locally: queue it
 *                     for user space to send to the other balancers.
 * The tuple is the full 36-byte one (IPv4 in w[3]), whatever key the local
 * flow table uses.
 *
 * Cost when off: one settings read (an ARRAY lookup the verifier inlines)
 * and a flag test per local miss and per stored flow; when on, one hash
 * lookup on a local miss and one queue push per new flow (and per refresh:
 * a refreshed entry is noted once per VC5_FLOW_REFRESH_NS (one entry for every CPU), because
 * the note is made only when the refresh rewrites its time).
 * bench/flow_share.py measures it. */
#ifndef VC5_SHARE_H
#define VC5_SHARE_H

/* Noted flows, oldest first; a full queue drops its OLDEST entry (BPF_EXIST,
 * as vc5's flow_queue): user space drains it every 10 ms. */
BPF_QUEUESTACK_PINNED("queue", share_queue, struct vc5_share_entry, VC5_SHARE_QUEUE, 0,
                      VC5_PIN_DIR "/share_queue");
/* Flows other balancers told us about: written by user space only. */
BPF_TABLE_PINNED("lru_hash", struct vc5_flow_key, struct vc5_flow, shared, VC5_SHARED,
                 VC5_PIN_DIR "/shared");

struct vc5_share_hit {
    __u32 pair;
    __u32 cookie;
    __u16 hash;
};

static __always_inline int vc5_share_on(void)
{
    __u32 zero = 0;
    struct vc5_settings *st = settings.lookup(&zero);
    return st && (st->flags & VC5_SETTINGS_SHARE);
}

static __always_inline int vc5_share_lookup(const struct vc5_tuple *t, __u8 proto, __u64 now,
                                            struct vc5_share_hit *out)
{
    if (!vc5_share_on())
        return 0;
    struct vc5_flow_key k = { .t = *t, .proto = proto };
    struct vc5_flow *f = shared.lookup(&k);
    if (!f)
        return 0;
    /* user space stamps its own CLOCK_MONOTONIC when a record arrives; a stamp
     * just after this packet's `now` is fresh, one older than the TTL is not */
    if (f->time < now && now - f->time > VC5_FLOW_TTL_NS)
        return 0;
    out->pair = f->pair;
    out->cookie = f->cookie;
    out->hash = f->hash;
    return 1;
}

static __always_inline void vc5_share_note(const struct vc5_tuple *t, __u8 proto, __u64 now, __u32 pair,
                                           __u32 cookie, __u16 hash)
{
    if (!vc5_share_on())
        return;
    struct vc5_share_entry e = {
        .key = { .t = *t, .proto = proto },
        .flow = { .time = now, .cookie = cookie, .pair = pair, .hash = hash },
    };
    share_queue.push(&e, VC5_BPF_EXIST);
}

#endif /* VC5_SHARE_H */
