"""Source prefixes and the block list (bpf/vc5_prefix.h): the maps, their
validation and the state file that makes the block list outlive the loader.

    p = Prefixes(dp.maps, state_file="/var/lib/vc5/xdp-loader/blocked-prefixes")
    p.restore()                    # at start: the maps hold exactly the file's list
    p.block(["192.0.2.0/24", "2001:db8::/32"])   # validated first, all or nothing
    p.unblock(["192.0.2.0/24"])    # exact entries only (never a covering or covered one)
    p.blocked()                    # {"2001:db8::/32": packets dropped by that entry}
    p.counters(limit=0)            # PrefixCounters: per /20, per IPv6 bucket, blocked, totals

Invariants:
  * the state file is the truth: every change is written to it (atomically:
    a temporary file in the same directory, fsync, rename, fsync of the
    directory) BEFORE the maps change, so a crash between the two leaves the
    file ahead, and the next start re-applies it; a file that cannot be read
    leaves the maps as they are (logged, naming the file and line);
  * prefixes are stored normalised (ipaddress.ip_network, strict): a prefix
    with host bits set is refused, naming it and the network it would be;
  * IPv4 counters: slot = address >> 12 (vc5's /20 index); IPv6: bucket6().
"""

from __future__ import annotations

import ctypes as ct
import errno
import ipaddress
import operator
import os
import struct
from dataclasses import dataclass

from ..common import files
from . import layout

#: block_stats[0] counter names, in VC5_K_* order (bpf/vc5_layout.h)
BLOCK_COUNTERS = ("blocked4", "blocked6", "blocked_octets")
STATE_NAME = "blocked-prefixes"

_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_map_lookup_batch.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_void_p, ct.c_void_p,
                                         ct.POINTER(ct.c_uint32), ct.c_void_p]


class PrefixError(ValueError):
    """A prefix or the state file is not acceptable; the text names which."""


def parse_prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """'192.0.2.0/24', '2001:db8::/32', or an address (/32, /128). Host bits set: PrefixError."""
    if not isinstance(text, str) or not text.strip():
        raise PrefixError(f"{text!r}: not a prefix (expected e.g. 192.0.2.0/24 or 2001:db8::/32)")
    t = text.strip()
    try:
        return ipaddress.ip_network(t, strict=True)
    except ValueError as e:
        try:
            loose = ipaddress.ip_network(t, strict=False)
        except ValueError:
            raise PrefixError(f"{t!r}: not a prefix ({e})") from None
        raise PrefixError(f"{t!r}: host bits set (the prefix is {loose})") from None


def sort_key(net):
    return (net.version, int(net.network_address), net.prefixlen)


def bucket6(address) -> int:
    """prefix6_stats bucket of an IPv6 address or prefix (its /48; bpf vc5_bucket6)."""
    net = ipaddress.ip_network(address, strict=False)
    if net.version != 6:
        raise PrefixError(f"{address}: not IPv6")
    w0, w1 = struct.unpack("<2I", net.network_address.packed[:8])
    h = ((w0 * 0x9E3779B1) ^ ((w1 & 0xFFFF) * 0x85EBCA77)) & 0xFFFFFFFF
    h ^= h >> 16
    return h & (layout.PREFIX6_BUCKETS - 1)


def slot4(address) -> int:
    """prefix4_stats slot of an IPv4 address: its /20 (vc5: address >> 12)."""
    return int(ipaddress.IPv4Address(address)) >> 12


def slot4_prefix(slot: int) -> str:
    return f"{ipaddress.IPv4Address(slot << 12)}/20"


def read_state(path: str) -> list:
    """The prefixes in the state file (one per line, '#' comments); [] when it does not exist."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise PrefixError(f"{path}: cannot read: {e.strerror}") from None
    out = []
    for n, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                out.append(parse_prefix(text))
            except PrefixError as e:
                raise PrefixError(f"{path} line {n}: {e}") from None
    return sorted(set(out), key=sort_key)


def write_state(path: str, nets) -> None:
    """Replace the state file atomically and durably (vc5.common.files)."""
    text = "# vc5 block list, written by vc5-xdp-loader (vc5ctl block add|del)\n"
    text += "".join(f"{n}\n" for n in sorted(nets, key=sort_key))
    files.replace_file(path, text, durable=True, make_directory=0o777)


def lpm_key(net):
    if net.version == 4:
        k = layout.Lpm4()
    else:
        k = layout.Lpm6()
    k.prefixlen = net.prefixlen
    ct.memmove(k.addr, net.network_address.packed, len(net.network_address.packed))
    return k


def _net_of(key, version):
    raw = bytes(key.addr)
    addr = ipaddress.IPv4Address(raw) if version == 4 else ipaddress.IPv6Address(raw)
    return ipaddress.ip_network((addr, key.prefixlen))


def percpu_u64_sums(handle: layout.MapHandle) -> list:
    """Every slot of a PERCPU_ARRAY of __u64, summed over CPUs, in one batched read."""
    n, ncpus = handle.spec.max_entries, handle.ncpus
    keys = (ct.c_uint32 * n)()
    values = (ct.c_uint64 * (n * ncpus))()
    count = ct.c_uint32(n)
    token = ct.c_uint32()
    rc = _libbpf.bpf_map_lookup_batch(handle.fd, None, ct.byref(token), keys, values, ct.byref(count), None)
    if rc < 0 and -rc != errno.ENOENT:       # ENOENT: the end of the map was reached
        err = -rc if rc < -1 else ct.get_errno()
        raise OSError(err, f"lookup_batch on map {handle.spec.name}: {os.strerror(err)}")
    if count.value != n:
        raise OSError(errno.EIO, f"lookup_batch on map {handle.spec.name}: {count.value} of {n} slots")
    flat = memoryview(values).cast("B").cast("Q")
    sums = list(flat[0::ncpus])
    for cpu in range(1, ncpus):
        sums = list(map(operator.add, sums, flat[cpu::ncpus]))
    return sums


@dataclass(frozen=True)
class PrefixCounters:
    ipv4: list            # [(slot = /20 index, packets)]
    ipv6: list            # [(bucket, packets)]
    blocked: dict         # prefix -> packets dropped by that entry (most specific match)
    totals: dict          # BLOCK_COUNTERS -> value


def _top(sums, limit):
    nz = [(i, v) for i, v in enumerate(sums) if v]
    if limit:
        nz.sort(key=lambda iv: (-iv[1], iv[0]))
        nz = nz[:limit]
    return nz


class Prefixes:
    """The block list and the prefix counters of one data plane (`maps`: DataPlane.maps)."""

    def __init__(self, maps: dict, state_file: str | None):
        self.maps = maps
        self.state_file = state_file
        self._list: set = set()

    def _trie(self, version):
        return self.maps["block4" if version == 4 else "block6"]

    # -- the block list
    def in_maps(self) -> dict:
        """{network: packets} as the tries hold them."""
        out = {}
        for version in (4, 6):
            trie = self._trie(version)
            for k in trie.keys():
                v = trie.lookup(k)
                if v is not None:
                    out[_net_of(k, version)] = int(v.packets)
        return out

    def blocked(self) -> dict:
        return {str(n): p for n, p in sorted(self.in_maps().items(), key=lambda np: sort_key(np[0]))}

    def listed(self) -> tuple:
        """The block list, sorted (IPv4 first), as CIDR strings: the Blocked property."""
        return tuple(str(n) for n in sorted(self._list, key=sort_key))

    def _check_room(self, nets) -> None:
        for version in (4, 6):
            count = sum(1 for n in nets if n.version == version)
            if count > layout.MAX_BLOCKED:
                raise PrefixError(f"{count} IPv{version} prefixes: the block list holds {layout.MAX_BLOCKED}")

    def _apply(self, wanted: set) -> None:
        """Make the tries hold exactly `wanted` (entries kept keep their counters)."""
        have = set(self.in_maps())
        for net in sorted(have - wanted, key=sort_key):
            self._trie(net.version).delete(lpm_key(net))
        for net in sorted(wanted - have, key=sort_key):
            self._trie(net.version).update(lpm_key(net), layout.Block())
        self._list = set(wanted)

    def _change(self, wanted: set) -> None:
        self._check_room(wanted)
        if self.state_file:
            write_state(self.state_file, wanted)
        self._apply(wanted)

    def block(self, texts) -> list:
        """Add prefixes (all validated first: one bad prefix changes nothing). Returns them normalised."""
        nets = [parse_prefix(t) for t in texts]
        self._change(self._list | set(nets))
        return [str(n) for n in nets]

    def unblock(self, texts) -> list:
        """Remove exact entries; a prefix that is not on the list is an error naming it."""
        nets = [parse_prefix(t) for t in texts]
        missing = [str(n) for n in nets if n not in self._list]
        if missing:
            raise PrefixError(f"not on the block list: {', '.join(missing)}")
        self._change(self._list - set(nets))
        return [str(n) for n in nets]

    def restore(self) -> int:
        """At start: the state file's list into the maps (a missing file = empty list). Returns its size;
        PrefixError (the maps untouched, the list taken from them) when the file is unreadable."""
        if not self.state_file:
            self._list = set(self.in_maps())
            return len(self._list)
        try:
            wanted = set(read_state(self.state_file))
            self._check_room(wanted)
        except PrefixError as e:
            self._list = set(self.in_maps())
            raise PrefixError(f"{self.state_file}: {e}") if self.state_file not in str(e) else e
        self._apply(wanted)
        return len(wanted)

    # -- counters
    def totals(self) -> dict:
        per_cpu = self.maps["block_stats"].lookup(ct.c_uint32(0))
        out = dict.fromkeys(BLOCK_COUNTERS, 0)
        if per_cpu is not None:
            for cpu in per_cpu:
                for i, name in enumerate(BLOCK_COUNTERS):
                    out[name] += int(cpu.c[i])
        return out

    def counters(self, limit: int = 0) -> PrefixCounters:
        """Non-zero counters: every one sorted by slot (limit 0), or the `limit` busiest of each family."""
        return PrefixCounters(_top(percpu_u64_sums(self.maps["prefix4_stats"]), limit),
                              _top(percpu_u64_sums(self.maps["prefix6_stats"]), limit),
                              self.blocked(), self.totals())
