/* Minimal protocol headers for the vc5 XDP program.
 *
 * Our own small structs instead of <linux/ip.h> & co: bcc compiles in ~0.7 s
 * instead of ~3 s (the kernel headers are the cost), and nothing here can
 * collide with kernel macros or inlines (every name is prefixed VC5_/vc5_).
 * Multi-byte fields are in network byte order as on the wire; x86-64 (and
 * any CPU the kernel marks for efficient unaligned access) reads the 2-byte
 * aligned 32-bit fields directly.
 */
#ifndef VC5_HEADERS_H
#define VC5_HEADERS_H

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vc5: this program assumes a little-endian CPU"
#endif

/* Host <-> network order for constants and values (little-endian host). */
#define VC5_HTONS(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define VC5_NTOHS(x) VC5_HTONS(x)

#define VC5_ETH_P_IP    0x0800
#define VC5_ETH_P_IPV6  0x86DD
#define VC5_ETH_P_8021Q 0x8100

#define VC5_IPPROTO_ICMP   1
#define VC5_IPPROTO_IPIP   4
#define VC5_IPPROTO_TCP    6
#define VC5_IPPROTO_UDP    17
#define VC5_IPPROTO_IPV6   41
#define VC5_IPPROTO_FRAG6  44
#define VC5_IPPROTO_GRE    47
#define VC5_IPPROTO_ICMPV6 58

#define VC5_ICMP_ECHO_REPLY      0
#define VC5_ICMP_ECHO_REQUEST    8
#define VC5_ICMP_DEST_UNREACH    3
#define VC5_ICMP_FRAG_NEEDED     4       /* code of DEST_UNREACH (RFC 1191) */
#define VC5_ICMPV6_PKT_TOOBIG    2       /* RFC 4443 section 3.2 */
#define VC5_ICMPV6_ECHO_REQUEST  128
#define VC5_ICMPV6_ECHO_REPLY    129

/* TCP flags byte (RFC 9293 section 3.1, byte 13 of the header). */
#define VC5_TCP_FIN 0x01
#define VC5_TCP_SYN 0x02
#define VC5_TCP_RST 0x04
#define VC5_TCP_ACK 0x10

/* IPv4 frag_off field: MF flag and the 13-bit offset (RFC 791); DF. */
#define VC5_IP_MF_OFFSET 0x3fff
#define VC5_IP_DF 0x4000

/* 802.1Q TCI: PCP (3 bits), DEI (1), VID (12). */
#define VC5_VLAN_VID_MASK 0x0fff

struct vc5_ethhdr {
    __u8 h_dest[6];
    __u8 h_source[6];
    __u16 h_proto;
};
_Static_assert(sizeof(struct vc5_ethhdr) == 14, "ethhdr");

/* IEEE 802.1Q tag as it follows the MAC addresses: TCI, then the inner type. */
struct vc5_vlanhdr {
    __u16 tci;
    __u16 proto;
};
_Static_assert(sizeof(struct vc5_vlanhdr) == 4, "vlanhdr");

struct vc5_iphdr {
    __u8 ver_ihl;            /* version << 4 | ihl (32-bit words) */
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
_Static_assert(sizeof(struct vc5_iphdr) == 20, "iphdr");

struct vc5_ipv6hdr {
    __u32 ver_tc_flow;       /* version << 28 | traffic class | flow label */
    __u16 payload_len;
    __u8 nexthdr;
    __u8 hop_limit;
    __u32 saddr[4];
    __u32 daddr[4];
};
_Static_assert(sizeof(struct vc5_ipv6hdr) == 40, "ipv6hdr");

struct vc5_tcphdr {
    __u16 source;
    __u16 dest;
    __u32 seq;
    __u32 ack_seq;
    __u8 doff_res;           /* data offset << 4 (32-bit words) */
    __u8 flags;
    __u16 window;
    __u16 check;
    __u16 urg_ptr;
};
_Static_assert(sizeof(struct vc5_tcphdr) == 20, "tcphdr");

struct vc5_udphdr {
    __u16 source;
    __u16 dest;
    __u16 len;
    __u16 check;
};
_Static_assert(sizeof(struct vc5_udphdr) == 8, "udphdr");

/* GRE (RFC 2784) without checksum, key or sequence: flags/version 0, then
 * the payload's EtherType. */
struct vc5_grehdr {
    __u16 flags;
    __u16 proto;
};
_Static_assert(sizeof(struct vc5_grehdr) == 4, "grehdr");

/* GUE variant 0 (draft-ietf-intarea-gue): byte 0 = version (2 bits) 0,
 * C 0, hlen (5 bits) 0; byte 1 = the payload's IP protocol; 2 bytes of flags 0. */
struct vc5_guehdr {
    __u8 vchl;
    __u8 proto;
    __u16 flags;
};
_Static_assert(sizeof(struct vc5_guehdr) == 4, "guehdr");

/* ICMP and ICMPv6 echo share this layout (RFC 792, RFC 4443 section 4). */
struct vc5_icmphdr {
    __u8 type;
    __u8 code;
    __u16 checksum;
    __u16 id;
    __u16 seq;
};
_Static_assert(sizeof(struct vc5_icmphdr) == 8, "icmphdr");

#endif
