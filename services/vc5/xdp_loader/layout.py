"""The data plane's map layout: ctypes mirrors of bpf/vc5_layout.h, the map
specifications, the check of pinned maps against them, and raw map access.

Invariants:
  * every ctypes struct here has the size `_Static_assert`ed in the C header
    (asserted again at import);
  * LAYOUT_VERSION names the pin directory (/sys/fs/bpf/vc5/v<N>/); any change
    of a struct, a map type or a compiled-in size bumps it, so a loader never
    reads maps of another layout. A pinned map that still differs (a stale
    test directory, a hand-made pin) is refused by `check_pinned_layout`:
    bcc itself never compares a pinned map with its declaration;
  * addresses are 16 bytes: IPv6 as is, IPv4 after 12 zero bytes (vc5 addr_t).

Raw map access (`MapHandle`) goes through libbpf's syscall wrappers, so that
per-CPU values are read and written as plain per-CPU arrays of these
structs, independently of bcc's table classes.
"""

from __future__ import annotations

import ctypes as ct
import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

# Map sizes live in vc5.common.capacity: `vc5ctl config check` refuses a configuration beyond them.
from vc5.common.capacity import (BACKEND_SLOTS, MAX_BACKENDS, MAX_NAT, MAX_PAIRS, MAX_SERVICES,  # noqa: F401
                                 MAX_VIPS)

from .macs import mac_bytes, mac_str  # noqa: F401  (re-exported: layout.mac_bytes, layout.mac_str)

#: Pin directory suffix: /sys/fs/bpf/vc5/v<LAYOUT_VERSION>
LAYOUT_VERSION = 3

MAGLEV_SIZE = 8192          # vc5: __u8 hash[8192], slot = hash & 0x1fff
REDIRECT_SLOTS = 4096       # tx_port keys: any number below this (vc5 keys it by VLAN id)
DEFAULT_FLOWS = 65536       # TCP/IPv4 flow-table entries (flow_table_sizes: the other tables)
MIN_SIDE_FLOWS = 1024       # smallest flows6 / flows_udp / flows_udp6

NAT_REPLIES = 65536         # nat_reply LRU entries
NAT_REPLY_TTL_NS = 5 * 10**9

FLOW_TTL_NS = 120 * 10**9
FLOW_REFRESH_NS = 60 * 10**9

METHOD_L2, METHOD_IPIP, METHOD_GRE, METHOD_FOU, METHOD_GUE = range(5)
BE_VALID = 0x01
BE_REDIRECT = 0x02
BE_NO_CSUM = 0x04           # FOU/GUE over IPv4: UDP checksum 0 (tunnel-no-checksum)
DEFAULT_MTU = 1500          # Backend.mtu 0
#: outer header bytes per method, after the outer IP header (20 or 40)
TUNNEL_OVERHEAD = {METHOD_IPIP: 0, METHOD_GRE: 4, METHOD_FOU: 8, METHOD_GUE: 12}
PMTU_INTERVAL_NS = 1_000_000  # relayed ICMP too-big: 1000/s per CPU (settings 0) ...
PMTU_BURST = 100              # ... in bursts of up to 100
FLOW_INTERVAL_NS = 8000       # new flows stored: 125,000/s per CPU (settings 0) ...
FLOW_BURST = 12500            # ... in bursts of up to 12,500
SVC_STICKY = 0x01
SVC_STATELESS = 0x02          # never store a flow (config `stateless`)

FILTER_BITS = 65536         # vip_filter bitmap

SETTINGS_SHARE = 0x0100     # settings.flags: flow sharing on (bpf/vc5_share.h)
SHARE_QUEUE = 10000         # share_queue entries (vc5: FLOW_QUEUE_SIZE)
SHARED_MAX = 262144         # `shared` entries: the flow table's size, at most this (~31 MiB)

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

# Linux enum bpf_map_type values used here.
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_QUEUE = 22
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_F_NO_PREALLOC = 1
BPF_F_RDONLY_PROG = 1 << 7

PERCPU_TYPES = {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH}


class Addr(ct.Structure):
    _fields_ = [("b", ct.c_uint8 * 16)]


class SvcKey(ct.Structure):
    _fields_ = [("vip", Addr), ("port", ct.c_uint16), ("proto", ct.c_uint16)]


class Backend(ct.Structure):
    """backends[pair]: one record per (service, backend) pair."""
    _fields_ = [("addr", Addr), ("saddr", Addr), ("h_dest", ct.c_uint8 * 6), ("h_source", ct.c_uint8 * 6),
                ("vlan", ct.c_uint16), ("method", ct.c_uint8), ("flags", ct.c_uint8),
                ("cookie", ct.c_uint32), ("redirect_slot", ct.c_uint16), ("mtu", ct.c_uint16),
                ("svc_index", ct.c_uint32), ("tunnel_port", ct.c_uint16), ("vip_index", ct.c_uint16)]


class SvcHdr(ct.Structure):
    _fields_ = [("vip", Addr), ("port", ct.c_uint16), ("proto", ct.c_uint16), ("flags", ct.c_uint32),
                ("svc_index", ct.c_uint32), ("vip_index", ct.c_uint32), ("nbackends", ct.c_uint32),
                ("generation", ct.c_uint32), ("pad", ct.c_uint8 * 24)]


class Service(ct.Structure):
    """pair[slot] -> backends[] index (slot 1..nbackends); maglev[i] -> slot, 0 = none."""
    _fields_ = [("hdr", SvcHdr), ("pair", ct.c_uint32 * BACKEND_SLOTS), ("maglev", ct.c_uint8 * MAGLEV_SIZE)]


class Vip(ct.Structure):
    _fields_ = [("vip_index", ct.c_uint32), ("flags", ct.c_uint32)]


class VipFilter(ct.Structure):
    _fields_ = [("bits", ct.c_uint64 * (FILTER_BITS // 64))]


class Tuple(ct.Structure):
    _fields_ = [("saddr", Addr), ("daddr", Addr), ("sport", ct.c_uint16), ("dport", ct.c_uint16)]


class FlowKey(ct.Structure):
    _fields_ = [("t", Tuple), ("proto", ct.c_uint8), ("pad", ct.c_uint8 * 3)]


class FlowKey4(ct.Structure):
    """Key of the IPv4 flow tables (flows, flows_udp): addresses and ports in network order."""
    _fields_ = [("saddr", ct.c_uint8 * 4), ("daddr", ct.c_uint8 * 4), ("sport", ct.c_uint16),
                ("dport", ct.c_uint16)]


class FlowLimit(ct.Structure):
    _fields_ = [("tat", ct.c_uint64), ("pad", ct.c_uint64)]


class Flow(ct.Structure):
    _fields_ = [("time", ct.c_uint64), ("cookie", ct.c_uint32), ("pair", ct.c_uint16), ("hash", ct.c_uint16)]


class Settings(ct.Structure):
    _fields_ = [("active", ct.c_uint32), ("flags", ct.c_uint32), ("watchdog_ns", ct.c_uint64),
                ("refreshed_ns", ct.c_uint64), ("pmtu_interval_ns", ct.c_uint64), ("pmtu_burst", ct.c_uint64),
                ("flow_interval_ns", ct.c_uint64), ("flow_burst", ct.c_uint64), ("era", ct.c_uint64)]


class Nat(ct.Structure):
    """nat[probe address]: the packet a probe to that address becomes."""
    _fields_ = [("vip", Addr), ("backend", Addr), ("saddr", Addr), ("h_dest", ct.c_uint8 * 6),
                ("h_source", ct.c_uint8 * 6), ("tx_slot", ct.c_uint32), ("flags", ct.c_uint32),
                ("pad", ct.c_uint8 * 12)]


class ReplyKey(ct.Structure):
    """nat_reply key: the backend's answer as it arrives (ports in network order)."""
    _fields_ = [("vip", Addr), ("ext", Addr), ("vport", ct.c_uint16), ("eport", ct.c_uint16),
                ("proto", ct.c_uint8), ("pad", ct.c_uint8 * 3)]


class Reply(ct.Structure):
    _fields_ = [("nat", Addr), ("src", Addr), ("time", ct.c_uint64)]


NAT_COUNTER_COUNT = 8


class NatStats(ct.Structure):
    _fields_ = [("c", ct.c_uint64 * NAT_COUNTER_COUNT)]


METRIC_COUNT = 32
BACKEND_COUNTER_COUNT = 12


class Metrics(ct.Structure):
    _fields_ = [("c", ct.c_uint64 * METRIC_COUNT)]


class Global(ct.Structure):
    _fields_ = [("m", Metrics), ("latency_ns", ct.c_uint64), ("latency_packets", ct.c_uint64),
                ("seen", ct.c_uint64), ("pmtu_relayed", ct.c_uint64), ("pmtu_rate_limited", ct.c_uint64),
                ("too_big_no_df", ct.c_uint64), ("pmtu_tat", ct.c_uint64),
                ("flow_rate_limited", ct.c_uint64)]


class Counter(ct.Structure):
    _fields_ = [("c", ct.c_uint64 * BACKEND_COUNTER_COUNT)]


U32 = ct.c_uint32
IfIndex = ct.c_int32


class ShareEntry(ct.Structure):
    """share_queue value: a flow stored or refreshed by the program (our pair and cookie)."""
    _fields_ = [("key", FlowKey), ("flow", Flow)]


NoKey = ct.c_uint8 * 0      # queue maps have no key

_SIZES = {Addr: 16, SvcKey: 20, Backend: 64, SvcHdr: 64, Service: 9280, Vip: 8, VipFilter: 8192,
          Tuple: 36, FlowKey: 40, FlowKey4: 12, FlowLimit: 16, Flow: 16, Settings: 64, Metrics: 256,
          Global: 320, Counter: 96,
          Nat: 80, ReplyKey: 40, Reply: 40, NatStats: 64}
_SIZES[ShareEntry] = 56
for _t, _n in _SIZES.items():
    assert ct.sizeof(_t) == _n, f"{_t.__name__} is {ct.sizeof(_t)} bytes, the C struct {_n}"


# ---- source prefixes and the block list (bpf/vc5_layout.h, bpf/vc5_prefix.h)
PREFIX4_SLOTS = 1 << 20     # one counter per IPv4 /20 (index = address >> 12)
PREFIX6_BUCKETS = 65536     # IPv6 /48s hashed into this many counters
MAX_BLOCKED = 16384         # block list entries per family
BLOCK_COUNTER_COUNT = 4


class Lpm4(ct.Structure):
    _fields_ = [("prefixlen", ct.c_uint32), ("addr", ct.c_uint8 * 4)]


class Lpm6(ct.Structure):
    _fields_ = [("prefixlen", ct.c_uint32), ("addr", ct.c_uint8 * 16)]


class Block(ct.Structure):
    _fields_ = [("packets", ct.c_uint64)]


class BlockStats(ct.Structure):
    _fields_ = [("c", ct.c_uint64 * BLOCK_COUNTER_COUNT)]


for _t, _n in {Lpm4: 8, Lpm6: 20, Block: 8, BlockStats: 32}.items():
    assert ct.sizeof(_t) == _n, f"{_t.__name__} is {ct.sizeof(_t)} bytes, the C struct {_n}"


@dataclass(frozen=True)
class MapSpec:
    name: str
    map_type: int
    key: type
    value: type
    max_entries: int
    flags: int = 0

    @property
    def key_size(self) -> int:
        return ct.sizeof(self.key)

    @property
    def value_size(self) -> int:
        return ct.sizeof(self.value)


#: The flow tables (bpf/vc5_flows.h): name -> (protocol, IP version, key type).
FLOW_TABLES = {"flows": (6, 4, FlowKey4), "flows6": (6, 6, Tuple),
               "flows_udp": (17, 4, FlowKey4), "flows_udp6": (17, 6, Tuple)}


def flow_table_sizes(flows: int = DEFAULT_FLOWS) -> dict[str, int]:
    """Entries of each flow table for the setting `flows` (TCP over IPv4): the IPv6 and UDP
    tables get a quarter of it each, at least MIN_SIDE_FLOWS (docs/data-plane.md)."""
    side = max(MIN_SIDE_FLOWS, int(flows) // 4)
    return {"flows": int(flows), "flows6": side, "flows_udp": side, "flows_udp6": side}


def flow_table_for(src, dst, proto: int) -> str:
    """The name of the table that holds a flow (addresses as strings)."""
    v6 = ipaddress.ip_address(src).version == 6
    for name, (p, version, _) in FLOW_TABLES.items():
        if p == proto and (version == 6) == v6:
            return name
    raise ValueError(f"no flow table for protocol {proto}")


def flow_entry_key(src, dst, sport: int, dport: int, proto: int):
    """(table name, key) of a flow as vc5_select stores it."""
    name = flow_table_for(src, dst, proto)
    if FLOW_TABLES[name][2] is FlowKey4:
        k = FlowKey4()
        ct.memmove(k.saddr, ipaddress.ip_address(src).packed, 4)
        ct.memmove(k.daddr, ipaddress.ip_address(dst).packed, 4)
    else:
        k = Tuple(saddr=addr16(src), daddr=addr16(dst))
    k.sport, k.dport = socket.htons(sport), socket.htons(dport)
    return name, k


def flow_table_memory(maps: dict) -> dict[str, dict[str, int]]:
    """Each flow table's capacity and kernel memory (fdinfo memlock: the kernel's own figure,
    bpf_map_memory_usage) from {name: MapHandle}: {name: {"entries", "bytes", "bytes_per_entry"}}."""
    out = {}
    for name in FLOW_TABLES:
        m = maps[name]
        mem = int(read_fdinfo(m.fd).get("memlock", "0"))
        n = m.spec.max_entries
        out[name] = {"entries": n, "bytes": mem, "bytes_per_entry": mem // n if n else 0}
    return out


def map_specs(flows: int = DEFAULT_FLOWS) -> dict[str, MapSpec]:
    """The maps declared in bpf/vc5_xdp.c and bpf/vc5_flows.h, by name (= pinned file name)."""
    sizes = flow_table_sizes(flows)
    specs = [
        MapSpec("settings", BPF_MAP_TYPE_ARRAY, U32, Settings, 1),
        MapSpec("global_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, Global, 1),
        MapSpec("vips", BPF_MAP_TYPE_HASH, Addr, Vip, MAX_VIPS),
        MapSpec("vip_filter", BPF_MAP_TYPE_ARRAY, U32, VipFilter, 1),
        MapSpec("vip_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, Metrics, MAX_VIPS),
        MapSpec("services", BPF_MAP_TYPE_HASH, SvcKey, Service, MAX_SERVICES, BPF_F_NO_PREALLOC),
        MapSpec("svc_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, Metrics, MAX_SERVICES),
        MapSpec("backends", BPF_MAP_TYPE_ARRAY, U32, Backend, MAX_PAIRS),
        MapSpec("be_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, Counter, MAX_PAIRS),
        *(MapSpec(name, BPF_MAP_TYPE_LRU_HASH, key, Flow, sizes[name])
          for name, (_, _, key) in FLOW_TABLES.items()),
        MapSpec("flow_limit", BPF_MAP_TYPE_PERCPU_ARRAY, U32, FlowLimit, 1),
        MapSpec("sessions", BPF_MAP_TYPE_ARRAY, U32, ct.c_uint64, 2 * MAX_PAIRS),     # `current`
        # bcc creates DEVMAPs read-only for programs (BPF_F_RDONLY_PROG)
        MapSpec("tx_port", BPF_MAP_TYPE_DEVMAP, U32, IfIndex, REDIRECT_SLOTS, BPF_F_RDONLY_PROG),
        # health-check probe path (nat.py, docs/probe-path.md)
        MapSpec("nat", BPF_MAP_TYPE_HASH, Addr, Nat, MAX_NAT),
        MapSpec("nat_reply", BPF_MAP_TYPE_LRU_HASH, ReplyKey, Reply, NAT_REPLIES),
        MapSpec("nat_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, NatStats, 1),
        MapSpec("nat_tx", BPF_MAP_TYPE_DEVMAP, U32, IfIndex, REDIRECT_SLOTS, BPF_F_RDONLY_PROG),
        # flow sharing between balancers (share/, docs/data-plane.md "Flow sharing")
        MapSpec("share_queue", BPF_MAP_TYPE_QUEUE, NoKey, ShareEntry, SHARE_QUEUE),
        MapSpec("shared", BPF_MAP_TYPE_LRU_HASH, FlowKey, Flow, min(flows, SHARED_MAX)),
        # source prefixes and the block list (bpf/vc5_prefix.h, prefixes.py)
        MapSpec("prefix4_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, ct.c_uint64, PREFIX4_SLOTS),
        MapSpec("prefix6_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, ct.c_uint64, PREFIX6_BUCKETS),
        MapSpec("block4", BPF_MAP_TYPE_LPM_TRIE, Lpm4, Block, MAX_BLOCKED, BPF_F_NO_PREALLOC),
        MapSpec("block6", BPF_MAP_TYPE_LPM_TRIE, Lpm6, Block, MAX_BLOCKED, BPF_F_NO_PREALLOC),
        MapSpec("block_stats", BPF_MAP_TYPE_PERCPU_ARRAY, U32, BlockStats, 1),
    ]
    return {s.name: s for s in specs}


class LayoutError(RuntimeError):
    """A pinned map does not have the layout this program declares."""


def read_fdinfo(fd: int) -> dict[str, str]:
    info = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    return info


def check_pinned_layout(spec: MapSpec, fd: int, path: str) -> None:
    """Raise LayoutError unless the map behind fd matches spec (type, key and
    value size, max_entries, flags), naming the map, its path and the field."""
    info = read_fdinfo(fd)
    expected = {"map_type": spec.map_type, "key_size": spec.key_size, "value_size": spec.value_size,
                "max_entries": spec.max_entries, "map_flags": spec.flags}
    wrong = []
    for field, want in expected.items():
        raw = info.get(field)
        have = int(raw, 0) if raw is not None else None
        if have != want:
            wrong.append(f"{field} is {have}, expected {want}")
    if wrong:
        raise LayoutError(
            f"pinned map {spec.name!r} at {path} does not match data plane layout v{LAYOUT_VERSION}: "
            + "; ".join(wrong)
            + " (a map left by another layout or build: remove it, or use another pin directory)")


def possible_cpus() -> int:
    """Number of possible CPUs (per-CPU map values have one slot each)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_map_lookup_elem.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
_libbpf.bpf_map_update_elem.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_uint64]
_libbpf.bpf_map_delete_elem.argtypes = [ct.c_int, ct.c_void_p]
_libbpf.bpf_map_get_next_key.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
_libbpf.bpf_map_lookup_batch.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_void_p, ct.c_void_p,
                                         ct.POINTER(ct.c_uint32), ct.c_void_p]

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


class MapHandle:
    """Typed access to one map by fd. Per-CPU maps take and return arrays of
    `ncpus` values (index = CPU); others a single value."""

    def __init__(self, spec: MapSpec, fd: int, ncpus: int):
        self.spec = spec
        self.fd = fd
        self.percpu = spec.map_type in PERCPU_TYPES
        self.ncpus = ncpus
        # The kernel rounds each per-CPU value up to 8 bytes; all ours are multiples of 8.
        self.value_type = spec.value * ncpus if self.percpu else spec.value

    def _fail(self, what: str, rc: int):
        err = -rc if rc < 0 else ct.get_errno()
        raise OSError(err, f"{what} on map {self.spec.name}: {os.strerror(err)}")

    def lookup(self, key):
        value = self.value_type()
        rc = _libbpf.bpf_map_lookup_elem(self.fd, ct.byref(key), ct.byref(value))
        if rc < 0:
            if -rc == errno.ENOENT:
                return None
            self._fail("lookup", rc)
        return value

    def update(self, key, value, flags: int = BPF_ANY) -> None:
        rc = _libbpf.bpf_map_update_elem(self.fd, ct.byref(key), ct.byref(value), flags)
        if rc < 0:
            self._fail("update", rc)

    def delete(self, key) -> bool:
        rc = _libbpf.bpf_map_delete_elem(self.fd, ct.byref(key))
        if rc < 0:
            if -rc == errno.ENOENT:
                return False
            self._fail("delete", rc)
        return True

    def keys(self) -> list:
        out = []
        prev = None
        while True:
            nxt = self.spec.key()
            rc = _libbpf.bpf_map_get_next_key(self.fd, ct.byref(prev) if prev is not None else None,
                                              ct.byref(nxt))
            if rc < 0:
                if -rc == errno.ENOENT:
                    return out
                self._fail("get_next_key", rc)
            out.append(nxt)
            prev = nxt

    def lookup_all(self) -> list:
        """Every value of an ARRAY map in index order, in one batched syscall."""
        n = self.spec.max_entries
        keys = (ct.c_uint32 * n)()
        values = (self.value_type * n)()
        count = ct.c_uint32(n)
        token = ct.c_uint32()
        rc = _libbpf.bpf_map_lookup_batch(self.fd, None, ct.byref(token), keys, values, ct.byref(count), None)
        if rc < 0 and -rc != errno.ENOENT:
            self._fail("lookup_batch", rc)
        out = [None] * n
        for i in range(count.value):
            out[keys[i]] = values[i]
        return out

    def zero(self):
        """A zeroed value of this map's value type (per-CPU: all CPUs)."""
        return self.value_type()


def addr16(address) -> Addr:
    """vc5 addr_t: IPv6 as is; IPv4 in the last 4 bytes after 12 zero bytes."""
    ip = ipaddress.ip_address(address)
    raw = ip.packed if ip.version == 6 else bytes(12) + ip.packed
    a = Addr()
    ct.memmove(a.b, raw, 16)
    return a


def vip_fold(address) -> int:
    """The vip_filter bit of an address (bpf/vc5_xdp.c vc5_fold): XOR of the
    four 32-bit words as a little-endian CPU loads them, folded to 16 bits."""
    w = struct.unpack("<4I", bytes(addr16(address).b))
    x = w[0] ^ w[1] ^ w[2] ^ w[3]
    return (x ^ (x >> 16)) & (FILTER_BITS - 1)


def addr_from16(a: Addr) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes(a.b)
    if raw[:12] == bytes(12):
        return ipaddress.IPv4Address(raw[12:])
    return ipaddress.IPv6Address(raw)
