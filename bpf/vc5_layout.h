/* Map key/value layouts shared by the XDP program and user space.
 *
 * services/vc5/xdp_loader/layout.py mirrors every struct here with ctypes and
 * asserts the same sizes; VC5_LAYOUT_VERSION names the pin directory
 * (/sys/fs/bpf/vc5/v<N>/), so a change to ANY struct, map type or size below
 * must bump it in layout.py (LAYOUT_VERSION), never silently reuse old maps.
 *
 * Addresses are 16 bytes everywhere (vc5's addr_t): IPv6 as is, IPv4 in the
 * last 4 bytes after 12 zero bytes, network byte order.
 */
#ifndef VC5_LAYOUT_H
#define VC5_LAYOUT_H

/* Compile-time sizes; user space passes the same values with -D. */
#ifndef VC5_MAX_SERVICES
#define VC5_MAX_SERVICES 1024
#endif
#ifndef VC5_MAX_VIPS
#define VC5_MAX_VIPS 1024
#endif
#ifndef VC5_MAX_PAIRS
#define VC5_MAX_PAIRS 65536         /* (service, backend) pairs: backends[] and be_stats[] */
#endif
#ifndef VC5_FLOWS
#define VC5_FLOWS 65536             /* flows: TCP over IPv4 (layout.flow_table_sizes has the others) */
#endif
#ifndef VC5_FLOWS6
#define VC5_FLOWS6 16384            /* flows6: TCP over IPv6 */
#endif
#ifndef VC5_FLOWS_UDP
#define VC5_FLOWS_UDP 16384         /* flows_udp: UDP over IPv4 */
#endif
#ifndef VC5_FLOWS_UDP6
#define VC5_FLOWS_UDP6 16384        /* flows_udp6: UDP over IPv6 */
#endif
#ifndef VC5_REDIRECT_SLOTS
#define VC5_REDIRECT_SLOTS 4096
#endif

#define VC5_MAGLEV_SIZE 8192        /* vc5: __u8 hash[8192]; slot = hash & 0x1fff */
#define VC5_MAGLEV_MASK 0x1fff
#define VC5_BACKENDS 256            /* slots 1..255 per service; 0 = none */

/* Flow lifetime (vc5 xvs bpf/layer3.c): valid while time + 120 s >= now;
 * time refreshed by a packet when older than 60 s; a SYN on an entry older
 * than 60 s re-selects the backend. */
#define VC5_FLOW_TTL_NS     (120ULL * 1000000000ULL)
#define VC5_FLOW_REFRESH_NS (60ULL * 1000000000ULL)

struct vc5_addr {
    __u32 w[4];
};

/* services / svc key: vc5's servicekey (port in HOST order, as vc5). */
struct vc5_svc_key {
    struct vc5_addr vip;
    __u16 port;
    __u16 proto;
};
_Static_assert(sizeof(struct vc5_svc_key) == 20, "svc_key");

/* Forwarding methods (vc5 T_NONE..T_GUE numbering, vc5 v0.3 `tunnel-type`).
 * The outer header family is the backend's (addr); see bpf/README.md,
 * "Encapsulation". Any other value: err_tunnel_unsupported. */
#define VC5_METHOD_L2   0
#define VC5_METHOD_IPIP 1
#define VC5_METHOD_GRE  2
#define VC5_METHOD_FOU  3
#define VC5_METHOD_GUE  4

/* Backend flags. VALID: present in the service (pinned flows may use it even
 * when it is not in the Maglev table = drained or unhealthy). REDIRECT: leave
 * through tx_port[redirect_slot] (several untagged NICs) instead of XDP_TX. */
#define VC5_BE_VALID    0x01
#define VC5_BE_REDIRECT 0x02
#define VC5_BE_NO_CSUM  0x04     /* FOU/GUE over IPv4: UDP checksum 0 (vc5 tunnel-no-checksum);
                                  * ignored over IPv6 (always computed, see bpf/README.md) */

#define VC5_DEFAULT_MTU 1500     /* backend.mtu 0 */
#define VC5_GRE_OVERHEAD 4
#define VC5_FOU_OVERHEAD 8       /* UDP */
#define VC5_GUE_OVERHEAD 12      /* UDP + GUE variant 0 header */

/* backends[pair]: one record per (service, backend) pair, shared by the
 * Maglev path (service -> slot -> pair) and the flow-table hit path (flow ->
 * pair), which therefore needs no service lookup. Updated in place by user
 * space only when a field changes (see dataplane.py for the write order). */
struct vc5_backend {
    struct vc5_addr addr;        /* backend (real server) address */
    struct vc5_addr saddr;       /* our address towards it (tunnels, health-check NAT; later) */
    __u8 h_dest[6];              /* next hop MAC: the backend's (local) or the gateway's (routed) */
    __u8 h_source[6];            /* our MAC on the egress interface */
    __u16 vlan;                  /* 802.1Q VID a tagged frame leaves with (PCP/DEI kept); 0 = keep */
    __u8 method;                 /* VC5_METHOD_* */
    __u8 flags;                  /* VC5_BE_* */
    __u32 cookie;                /* non-zero id of this pair; flows store it; 0 = free record */
    __u16 redirect_slot;         /* tx_port key when VC5_BE_REDIRECT */
    __u16 mtu;                   /* egress MTU (IP bytes) towards it; 0 = VC5_DEFAULT_MTU */
    __u32 svc_index;             /* svc_stats index of the service */
    __u16 tunnel_port;           /* FOU/GUE destination port, host order; 0 = none (dropped) */
    __u16 vip_index;             /* vip_stats index of the service's VIP */
};
_Static_assert(sizeof(struct vc5_backend) == 64, "backend");

#define VC5_SVC_STICKY 0x01      /* hash over addresses only (32 bytes) */
#define VC5_SVC_STATELESS 0x02   /* never store a flow: every packet through Maglev (config `stateless`) */

struct vc5_svc_hdr {
    struct vc5_addr vip;
    __u16 port;                  /* host order */
    __u16 proto;
    __u32 flags;                 /* VC5_SVC_* */
    __u32 svc_index;             /* svc_stats index */
    __u32 vip_index;             /* vip_stats index */
    __u32 nbackends;             /* pair[1..nbackends] are in use */
    __u32 generation;            /* bumped by user space on every update */
    __u8 pad[24];
};
_Static_assert(sizeof(struct vc5_svc_hdr) == 64, "svc_hdr");

/* services value (9280 B): only ever used through the map-value pointer. */
struct vc5_service {
    struct vc5_svc_hdr hdr;
    __u32 pair[VC5_BACKENDS];        /* slot -> backends[] index; slot 0 unused */
    __u8 maglev[VC5_MAGLEV_SIZE];    /* backend slot 1..255, 0 = no backend */
};
_Static_assert(sizeof(struct vc5_service) == 9280, "service");

/* vips value: presence = "is a VIP" (it has at least one service). */
struct vc5_vip {
    __u32 vip_index;
    __u32 flags;
};
_Static_assert(sizeof(struct vc5_vip) == 8, "vip");

/* vip_filter[0]: bit vc5_fold(address) is set for every VIP. A clear bit
 * proves "not a VIP" with one array read; a set bit is confirmed by the
 * service lookup or, failing that, by vips. */
#define VC5_FILTER_BITS 65536
struct vc5_vip_filter {
    __u64 bits[VC5_FILTER_BITS / 64];
};
_Static_assert(sizeof(struct vc5_vip_filter) == 8192, "vip_filter");

/* Flow key: vc5's 36-byte fourtuple (the Maglev hash input) + protocol. */
struct vc5_tuple {
    struct vc5_addr saddr;
    struct vc5_addr daddr;
    __u16 sport;                 /* network order */
    __u16 dport;                 /* network order */
};
_Static_assert(sizeof(struct vc5_tuple) == 36, "tuple");

/* The parsed flow (tuple + protocol) handed to vc5_select; not a map key. */
struct vc5_flow_key {
    struct vc5_tuple t;
    __u8 proto;
    __u8 pad[3];
};
_Static_assert(sizeof(struct vc5_flow_key) == 40, "flow_key");

/* Key of the IPv4 flow tables (flows, flows_udp; the protocol is the
 * table). IPv6 tables are keyed by the whole struct vc5_tuple. */
struct vc5_flow_key4 {
    __u32 saddr;                 /* network order */
    __u32 daddr;
    __u16 sport;                 /* network order */
    __u16 dport;
};
_Static_assert(sizeof(struct vc5_flow_key4) == 12, "flow_key4");

struct vc5_flow {
    __u64 time;                  /* coarse ktime of creation / last refresh; bit 0: the parity of
                                  * the era the flow was last counted in (sessions) */
    __u32 cookie;                /* the pair's cookie at creation */
    __u16 pair;                  /* backends[] index (VC5_MAX_PAIRS <= 65536) */
    __u16 hash;                  /* sdbm of the 4-tuple at creation: FOU/GUE source port entropy */
};
_Static_assert(VC5_MAX_PAIRS <= 65536, "flow.pair is 16 bits");
_Static_assert(sizeof(struct vc5_flow) == 16, "flow");

/* settings[0]: written by user space only. */
struct vc5_settings {
    __u32 active;                /* 0: XDP_PASS everything */
    __u32 flags;
    __u64 watchdog_ns;           /* 0: no watchdog; else PASS all when now - refreshed_ns > watchdog_ns */
    __u64 refreshed_ns;          /* CLOCK_MONOTONIC of the last user-space refresh */
    __u64 pmtu_interval_ns;      /* relayed ICMP too-big: one per interval per CPU; 0 = default */
    __u64 pmtu_burst;            /* ... and up to this many at once; 0 = default */
    __u64 flow_interval_ns;      /* new flows stored: one per interval per CPU; 0 = VC5_FLOW_INTERVAL_NS */
    __u64 flow_burst;            /* ... and up to this many at once; 0 = VC5_FLOW_BURST */
    __u64 era;                   /* `current` estimate: bumped by user space every 30 s (vc5's era) */
};
_Static_assert(sizeof(struct vc5_settings) == 64, "settings");

/* vc5 metrics (xvs struct metrics order). user space: counters.METRICS */
enum {
    VC5_M_CURRENT = 0,
    VC5_M_ERR_MALFORMED,
    VC5_M_ERR_TOT_LEN,
    VC5_M_ERR_L4_UNSUPPORTED,
    VC5_M_ERR_ICMP_UNSUPPORTED,
    VC5_M_ERR_FRAGMENTED,
    VC5_M_ERR_SERVICE_NOT_FOUND,
    VC5_M_ERR_NO_BACKEND,
    VC5_M_ERR_BACKEND_INVALID,
    VC5_M_ERR_NO_TUNNEL_PORT,
    VC5_M_ERR_EXPIRED,
    VC5_M_ERR_ADJUST_FAILED,
    VC5_M_ERR_TUNNEL_UNSUPPORTED,
    VC5_M_ERR_TCP_HEADER,
    VC5_M_ERR_UDP_HEADER,
    VC5_M_ERR_ICMP_HEADER,
    VC5_M_ERR_INTERNAL,
    VC5_M_ERR_CVE_2025_37799,
    VC5_M_NOT_IP,
    VC5_M_NOT_A_VIP,
    VC5_M_PROBE_REPLY,
    VC5_M_USERSPACE,
    VC5_M_ICMP_ECHO_REQUEST,
    VC5_M_TOO_BIG,
    VC5_M_PACKETS,
    VC5_M_OCTETS,
    VC5_M_FLOWS,
    VC5_M_ERRORS,
    VC5_M_SYN,
    VC5_M_ACK,
    VC5_M_FIN,
    VC5_M_RST,
    VC5_M_COUNT
};

struct vc5_metrics {
    __u64 c[VC5_M_COUNT];
};
_Static_assert(sizeof(struct vc5_metrics) == 256, "metrics");

/* One packet in VC5_LATENCY_SAMPLE (a power of 2) is timed. */
#ifndef VC5_LATENCY_SAMPLE
#define VC5_LATENCY_SAMPLE 16
#endif

struct vc5_global {
    struct vc5_metrics m;
    __u64 latency_ns;            /* sum of (exit - entry) ns of the timed packets */
    __u64 latency_packets;       /* packets timed */
    __u64 seen;                  /* packets seen while active (picks the timed ones) */
    __u64 pmtu_relayed;          /* ICMP too-big to a VIP sent on to the quoted flow's backend */
    __u64 pmtu_rate_limited;     /* ... dropped by the per-CPU rate limit */
    __u64 too_big_no_df;         /* too big for the egress MTU, IPv4 without DF: dropped */
    __u64 pmtu_tat;              /* rate limiter state: theoretical arrival time (GCRA), ns */
    __u64 flow_rate_limited;     /* new flows balanced by Maglev but not stored (above the rate) */
};
_Static_assert(sizeof(struct vc5_global) == 320, "global");

/* New-flow rate limit defaults (settings 0): 125,000 stored per second per
 * CPU (Katran's default), bursts of 12,500 (0.1 s). */
#define VC5_FLOW_INTERVAL_NS 8000ULL
#define VC5_FLOW_BURST 12500

/* flow_limit[0] (per CPU): the new-flow limiter's GCRA state. */
struct vc5_flow_limit {
    __u64 tat;                   /* theoretical arrival time, ns (coarse ktime) */
    __u64 pad;
};
_Static_assert(sizeof(struct vc5_flow_limit) == 16, "flow_limit");

/* Relayed ICMP too-big rate limit defaults (settings 0): 1000/s per CPU, bursts of 100. */
#define VC5_PMTU_INTERVAL_NS 1000000ULL
#define VC5_PMTU_BURST 100

/* Backend counters (xvs struct counter, in its order; `current` is user space's). */
enum {
    VC5_B_PACKETS = 0,
    VC5_B_OCTETS,
    VC5_B_FLOWS,
    VC5_B_ERRORS,
    VC5_B_SYN,
    VC5_B_ACK,
    VC5_B_FIN,
    VC5_B_RST,
    VC5_B_TUNNEL_UNSUPPORTED,
    VC5_B_TOO_BIG,
    VC5_B_ADJUST_FAILED,
    VC5_B_CURRENT,
    VC5_B_COUNT
};

struct vc5_counter {
    __u64 c[VC5_B_COUNT];
};
_Static_assert(sizeof(struct vc5_counter) == 96, "counter");

/* ---- Health-check probe path (NAT), docs/probe-path.md ----------------
 *
 * A prober on this host connects to a per-(VIP, backend) probe address
 * (255.a.b.c for IPv4 VIPs, fefe::ffxx:xxxx for IPv6 VIPs, vc5's scheme);
 * the route sends it into the veth pair owned by the loader, where
 * xdp_nat (on the peer end) rewrites it into the packet a client would
 * send to the VIP on that backend and redirects it out of the NIC towards
 * the backend; xdp_main turns the backend's answer back into one from the
 * probe address (matched in nat_reply, at most VC5_NAT_REPLY_TTL_NS old). */
#ifndef VC5_MAX_NAT
#define VC5_MAX_NAT 65536           /* (VIP, backend) pairs with a probe address */
#endif
#ifndef VC5_NAT_REPLIES
#define VC5_NAT_REPLIES 65536       /* nat_reply LRU entries (vc5: 65556) */
#endif
#define VC5_NAT_REPLY_TTL_NS (5ULL * 1000000000ULL)     /* vc5: 5 s */

/* nat[probe address]: where a probe to that address goes. Written by user
 * space (nat.py) only; the whole value in one update. */
struct vc5_nat {
    struct vc5_addr vip;         /* new IP destination */
    struct vc5_addr backend;     /* the backend (diagnostics; the frame goes to h_dest) */
    struct vc5_addr saddr;       /* new IP source: our address on the backend's subnet, VIP's family */
    __u8 h_dest[6];              /* backend MAC */
    __u8 h_source[6];            /* our MAC on the interface towards it */
    __u32 tx_slot;               /* nat_tx key: that interface */
    __u32 flags;                 /* VC5_NAT_TUNNEL */
    __u32 pair;                  /* VC5_NAT_TUNNEL: backends[pair] holds the tunnel (method, port,
                                  * outer source, checksum flag, MTU): the record client traffic
                                  * to that backend uses (docs/probe-path.md, "Tunnels") */
    __u8 pad[8];
};
_Static_assert(sizeof(struct vc5_nat) == 80, "nat");
#define VC5_NAT_TUNNEL 0x01          /* encapsulate as backends[pair] says (its addr must be `backend`) */

/* nat_reply key: the answer as it arrives from the backend. */
struct vc5_reply_key {
    struct vc5_addr vip;         /* answer's source */
    struct vc5_addr ext;         /* answer's destination: our address on that subnet */
    __u16 vport;                 /* answer's source port (the service's), network order */
    __u16 eport;                 /* answer's destination port (the prober's), network order */
    __u8 proto;
    __u8 pad[3];
};
_Static_assert(sizeof(struct vc5_reply_key) == 40, "reply_key");

struct vc5_reply {
    struct vc5_addr nat;         /* the probe address: the answer's new source */
    struct vc5_addr src;         /* the prober's address: the answer's new destination */
    __u64 time;                  /* coarse ktime of the last probe packet */
};
_Static_assert(sizeof(struct vc5_reply) == 40, "reply");

/* nat_stats[0] (per CPU). user space: counters.NAT_COUNTERS */
enum {
    VC5_N_REQUESTS = 0,          /* probe packets rewritten and sent towards a backend */
    VC5_N_REPLIES,               /* answers rewritten back to the prober */
    VC5_N_NO_ENTRY,              /* probe to an address in the NAT ranges with no entry: dropped */
    VC5_N_DROPPED,               /* probe packet not forwardable (fragment, TTL, not TCP/UDP, short) */
    VC5_N_NO_INTERFACE,          /* nat_tx has no interface in the entry's slot: dropped */
    VC5_N_EXPIRED,               /* answer matched an entry older than 5 s: left as it was */
    VC5_N_PASSED,                /* not a probe packet (ARP, ND, other addresses): passed */
    VC5_N_RESERVED,
    VC5_N_COUNT
};

struct vc5_nat_stats {
    __u64 c[VC5_N_COUNT];
};
_Static_assert(sizeof(struct vc5_nat_stats) == 64, "nat_stats");

/* ---- Flow sharing between balancers (vc5 -m), docs/data-plane.md ------
 * settings.flags bit: note stored/refreshed flows in share_queue and consult
 * `shared` on a local miss. Off: both hooks cost one inlined array read. */
#define VC5_SETTINGS_SHARE 0x0100
#ifndef VC5_SHARE_QUEUE
#define VC5_SHARE_QUEUE 10000       /* vc5: FLOW_QUEUE_SIZE 10,000 */
#endif
#define VC5_SHARED_MAX 262144       /* shared LRU entries: flows_per_cpu, at most this (memory) */
#ifndef VC5_SHARED
#define VC5_SHARED (VC5_FLOWS < VC5_SHARED_MAX ? VC5_FLOWS : VC5_SHARED_MAX)
#endif
#define VC5_BPF_EXIST 2             /* push: a full queue drops its oldest entry */

/* share_queue value: a flow stored or refreshed here, for user space to send. */
struct vc5_share_entry {
    struct vc5_flow_key key;
    struct vc5_flow flow;        /* time = note time; pair, cookie, hash: ours */
};
_Static_assert(sizeof(struct vc5_share_entry) == 56, "share_entry");

/* ---- Source prefixes and the block list (bpf/vc5_prefix.h, docs/data-plane.md) ----
 *
 * prefix4_stats[saddr >> 12]: packets per IPv4 /20 (vc5 v0.2 prefix_counters,
 * 2^20 slots; per CPU, one __u64 each = 8 MiB per possible CPU).
 * prefix6_stats[vc5_bucket6(saddr)]: packets per bucket of IPv6 /48s (a hash of
 * the /48 into VC5_PREFIX6_BUCKETS; user space: prefixes.bucket6).
 * block4 / block6: LPM tries of blocked source prefixes; a packet whose source
 * matches is dropped before any other work, counted on the most specific
 * entry that matched and in block_stats. */
#define VC5_PREFIX4_SLOTS (1 << 20)
#ifndef VC5_PREFIX6_BUCKETS
#define VC5_PREFIX6_BUCKETS 65536
#endif
#ifndef VC5_MAX_BLOCKED
#define VC5_MAX_BLOCKED 16384       /* entries per family */
#endif

/* LPM_TRIE keys: prefix length then the address, network order. */
struct vc5_lpm4 {
    __u32 prefixlen;
    __u8 addr[4];
};
_Static_assert(sizeof(struct vc5_lpm4) == 8, "lpm4");

struct vc5_lpm6 {
    __u32 prefixlen;
    __u8 addr[16];
};
_Static_assert(sizeof(struct vc5_lpm6) == 20, "lpm6");

/* block4/block6 value: written whole by user space (packets 0) when an entry
 * is added; the program adds to packets atomically (one line for all CPUs:
 * only dropped packets pay for it). */
struct vc5_block {
    __u64 packets;
};
_Static_assert(sizeof(struct vc5_block) == 8, "block");

/* block_stats[0] (per CPU). user space: prefixes.BLOCK_COUNTERS */
enum {
    VC5_K_BLOCKED4 = 0,          /* IPv4 packets dropped by the block list */
    VC5_K_BLOCKED6,              /* IPv6 packets dropped by the block list */
    VC5_K_BLOCKED_OCTETS,        /* their IP bytes (as the frame holds them) */
    VC5_K_RESERVED,
    VC5_K_COUNT
};

struct vc5_block_stats {
    __u64 c[VC5_K_COUNT];
};
_Static_assert(sizeof(struct vc5_block_stats) == 32, "block_stats");

#endif
