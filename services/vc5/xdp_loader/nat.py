"""The health-check probe path: probe (NAT) addresses for every (VIP, backend)
pair, the veth pair they are routed into, and the maps xdp_nat / xdp_main use.

vc5 probes the VIP *on* each backend (docs/probe-path.md, docs/health-checks.md): the prober
on this host connects to a probe address; the data plane turns that packet
into the one a client would send (IP destination = VIP, at the backend's MAC,
IP source = our address on the backend's subnet) and the answer back into one
from the probe address. See docs/probe-path.md for the packet walk.

Address scheme (vc5 xvs natmap, kept so operators recognise it):
  * one index 1..16,777,209 per unique (VIP, backend) pair, shared by all
    services (ports, protocols) of that VIP;
  * IPv4 VIP: 255.a.b.c with a.b.c = the 24-bit index; IPv6 VIP:
    fefe::ffxx:xxxx (fefe::/96, then 0xff and the index). The family of the
    probe address is the VIP's; the top indices are the veth's own /30, /126.

Plumbing (simpler than vc5's, same effect): a veth pair `vc5nat` (host side,
255.255.255.253/30 and fefe::ffff:fffd/126) <-> `vc5nat_` (peer, no address,
IPv6 off), both in the loader's namespace; routes 255.0.0.0/8 and fefe::/96
via the peer's addresses (255.255.255.254 / fefe::ffff:fffe) with permanent
neighbour entries for them. xdp_nat runs (generic mode) on the PEER end,
where the routed probe arrives, and redirects it straight out of the NIC:
vc5 attaches its request program to the host end and needs a second
namespace plus a mirror program (XDP_TX) on the peer to bring the frame back
to it; ingress on the peer makes both unnecessary. TX checksum offload is
off on the host end, so the host computes full TCP/UDP checksums that XDP
can patch incrementally (a CHECKSUM_PARTIAL one cannot be).

Invariants:
  * an index is never reused while its pair exists; a restarted loader reads
    the allocation back from the pinned `nat` map (addresses stay stable);
  * write order on update: interface slots (nat_tx), then new or changed
    entries (one map update each), then removed entries, then unused slots;
  * a pair gets an entry only when its backend is forwardable (MAC known) and
    we have an address of the VIP's family on the backend's subnet; other
    pairs have no probe address (healthd then says so instead of probing).
"""

from __future__ import annotations

import ctypes as ct
import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass

from . import attach, layout

log = logging.getLogger("vc5.xdp_loader.nat")

HOST_IFNAME = "vc5nat"
PEER_IFNAME = "vc5nat_"
NET4 = ipaddress.ip_network("255.0.0.0/8")
NET6 = ipaddress.ip_network("fefe::/96")
HOST4, PEER4, PLEN4 = "255.255.255.253", "255.255.255.254", 30
HOST6, PEER6, PLEN6 = "fefe::ffff:fffd", "fefe::ffff:fffe", 126
MAX_INDEX = 16_777_209          # vc5's limit; 255.255.255.250.. are the veth's own /30


def probe_address(index: int, version: int) -> str:
    """The probe address of `index` for a VIP of IP `version` (4 or 6)."""
    if not 1 <= index <= MAX_INDEX:
        raise ValueError(f"probe address index {index} not in 1..{MAX_INDEX}")
    if version == 4:
        return str(ipaddress.IPv4Address((255 << 24) | index))
    return str(ipaddress.IPv6Address((0xfefe << 112) | (0xff << 24) | index))


def index_of(address) -> int | None:
    """The index of a probe address, None if it is not one."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        if ip not in NET4:
            return None
        i = int(ip) & 0xffffff
    else:
        if ip not in NET6 or (int(ip) >> 24) & 0xff != 0xff:
            return None
        i = int(ip) & 0xffffff
    return i if 1 <= i <= MAX_INDEX else None


@dataclass(frozen=True)
class NatTarget:
    """Where the probes of one (VIP, backend) pair go."""
    vip: str
    backend: str
    saddr: str          # our address on the backend's subnet, VIP's family
    mac: str            # the next hop's MAC: the backend's, or the gateway's when routed
    src_mac: str        # ours on the interface towards it
    ifindex: int        # that interface
    service: str = ""   # a tunnelled service ("vip:port:proto") whose backend record the probe follows
    method: str = "none"   # that service's tunnel-type ("none": L2 DSR)

    @property
    def tunnel(self) -> bool:
        return self.method not in ("", "none", "l2")


def targets_from_plan(planned, view=None) -> tuple[dict, dict]:
    """({(vip, backend): NatTarget}, {(vip, backend): reason}) from planner.PlannedService's.

    A backend appears once per VIP (the first forwardable service wins: MAC,
    interface and our address depend on the backend only). The probe's source
    is our address on the backend's subnet; for a backend of the other family
    than the VIP (L2 DSR allows it: only MACs change), our address of the
    VIP's family on the same interface, from `view` (netinfo.NetView)."""
    targets, reasons = {}, {}
    for p in planned:
        vip = str(ipaddress.ip_address(p.vip))
        version = ipaddress.ip_address(vip).version
        for b in p.backends:
            key = (vip, str(ipaddress.ip_address(b.address)) if _is_ip(b.address) else b.address)
            if key in targets:
                continue
            if not b.valid or not b.mac or not b.ifindex:
                reasons.setdefault(key, f"backend not forwardable: {b.reason or 'unknown'}")
                continue
            source = _source_address(b, version, view)
            if source is None:
                where = b.ifname or "the backend subnet"
                reasons.setdefault(key, f"no IPv{version} address of ours on {where} to probe VIP {vip} from")
                continue
            tunnel = getattr(b, "method", "none")
            targets[key] = NatTarget(vip, key[1], source, b.mac, b.lb_mac, b.ifindex,
                                     p.key if tunnel not in ("none", "l2") else "", tunnel)
            reasons.pop(key, None)
    return targets, reasons


def _source_address(b, version: int, view) -> str | None:
    if b.lb_ip and ipaddress.ip_address(b.lb_ip).version == version:
        return str(ipaddress.ip_address(b.lb_ip))
    candidates = [v for v in getattr(view, "vlans", ()) if v.usable and v.ifindex == b.ifindex
                  and v.lb_ip is not None and v.prefix.version == version]
    if not candidates:
        return None
    same_vlan = [v for v in candidates if v.vlan == b.egress_vlan]
    return str((same_vlan or candidates)[0].lb_ip)


def _is_ip(text) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def allocate(current: dict, wanted) -> dict:
    """{(vip, backend): index}: pairs in `current` and still wanted keep their
    index; new pairs get the lowest free one; the others are dropped."""
    out = {k: i for k, i in current.items() if k in set(wanted)}
    used = set(out.values())
    nxt = 1
    for k in sorted(set(wanted) - set(out)):
        while nxt in used:
            nxt += 1
        if nxt > MAX_INDEX:
            raise ValueError(f"more than {MAX_INDEX} (VIP, backend) pairs to probe")
        out[k] = nxt
        used.add(nxt)
    return out


NAT_TUNNEL = 0x01       # bpf/vc5_layout.h VC5_NAT_TUNNEL


def nat_entry(t: NatTarget, slot: int, pair: int | None = None) -> layout.Nat:
    """The nat value; `pair` (a tunnel): the backends[] record xdp_nat encapsulates with. The
    field sits where layout.Nat has its padding (bpf/vc5_layout.h: flags, pair, pad[8])."""
    n = layout.Nat()
    if pair is not None:
        n.flags = NAT_TUNNEL
        struct.pack_into("<I", n.pad, 0, pair)
    n.vip = layout.addr16(t.vip)
    n.backend = layout.addr16(t.backend)
    n.saddr = layout.addr16(t.saddr)
    ct.memmove(n.h_dest, layout.mac_bytes(t.mac), 6)
    ct.memmove(n.h_source, layout.mac_bytes(t.src_mac), 6)
    n.tx_slot = slot
    return n


class ProbeNat:
    """The maps of the probe path, over a DataPlane (`dp.maps`).

        nat = ProbeNat(dp)                  # allocation read back from the pinned maps
        nat.update(targets)                 # {(vip, backend): NatTarget}
        nat.addresses()                     # [(vip, backend, probe address)], sorted
        nat.clear()                         # every entry and slot removed
    """

    def __init__(self, dp):
        self.dp = dp
        self._index: dict = {}          # (vip, backend) -> index
        self._written: dict = {}        # index -> bytes of the entry as written
        self._slots: dict = {}          # ifindex -> nat_tx slot
        self._recover()

    def _recover(self) -> None:
        nat, tx = self.dp.maps["nat"], self.dp.maps["nat_tx"]
        for k in nat.keys():
            v = nat.lookup(k)
            i = index_of(layout.addr_from16(k))
            if v is None or i is None:
                nat.delete(k)
                continue
            pair = (str(layout.addr_from16(v.vip)), str(layout.addr_from16(v.backend)))
            self._index[pair] = i
            self._written[i] = bytes(v)
            try:
                ifindex = tx.lookup(layout.U32(v.tx_slot))
            except OSError:
                ifindex = None
            if ifindex is not None and ifindex.value:
                self._slots[ifindex.value] = v.tx_slot

    def update(self, targets: dict) -> None:
        """Make the maps hold exactly `targets` (see the module's write order)."""
        nat, tx = self.dp.maps["nat"], self.dp.maps["nat_tx"]
        index = allocate(self._index, targets)
        slots = dict(self._slots)
        for t in targets.values():
            if t.ifindex not in slots:
                used = set(slots.values())
                slots[t.ifindex] = next(s for s in range(layout.REDIRECT_SLOTS) if s not in used)
        for ifindex, slot in slots.items():
            if self._slots.get(ifindex) != slot:
                tx.update(layout.U32(slot), layout.IfIndex(ifindex))
        written = {}
        for pair, t in targets.items():
            i = index[pair]
            entry = nat_entry(t, slots[t.ifindex], self._pair_of(t) if t.tunnel else None)
            raw = bytes(entry)
            if self._written.get(i) != raw:
                nat.update(layout.addr16(probe_address(i, ipaddress.ip_address(t.vip).version)), entry)
            written[i] = raw
        for pair, i in self._index.items():
            if pair not in index or index[pair] != i:
                nat.delete(layout.addr16(probe_address(i, ipaddress.ip_address(pair[0]).version)))
        in_use = {t.ifindex for t in targets.values()}
        for ifindex in [x for x in slots if x not in in_use]:
            tx.delete(layout.U32(slots.pop(ifindex)))
        self._index, self._written, self._slots = index, written, slots

    def _pair_of(self, t: NatTarget) -> int:
        """The backends[] index of (t.service, t.backend) in the data plane: its tunnel is the
        probe's. NO_PAIR (0, no record: xdp_nat drops the probe) if the service is not programmed."""
        from .specs import service_key
        vip, port, proto = t.service.rsplit(":", 2)
        return self.dp.pair_of(service_key(vip, int(port), proto), t.backend)

    def addresses(self) -> list:
        return sorted((v, b, probe_address(i, ipaddress.ip_address(v).version))
                      for (v, b), i in self._index.items())

    def clear(self) -> None:
        self.update({})

    def counters(self) -> dict:
        """nat_stats summed over CPUs (names: NAT_COUNTERS)."""
        raw = self.dp.maps["nat_stats"].lookup(layout.U32(0))
        return {name: sum(cpu.c[i] for cpu in raw) for i, name in enumerate(NAT_COUNTERS)}


#: nat_stats slots (bpf/vc5_layout.h VC5_N_*)
NAT_COUNTERS = ("requests", "replies", "no_entry", "dropped", "no_interface", "expired", "passed", "reserved")


# -- plumbing ---------------------------------------------------------------

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17


def _tx_checksum_off(ifname: str) -> None:
    """ethtool -K IFNAME tx off (SIOCETHTOOL ETHTOOL_STXCSUM 0): the stack then
    computes full TCP/UDP checksums, which xdp_nat patches incrementally."""
    value = struct.pack("II", ETHTOOL_STXCSUM, 0)
    buf = ct.create_string_buffer(value)
    ifr = struct.pack("16sP", ifname.encode(), ct.addressof(buf)) + bytes(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


class Plumbing:
    """The veth pair, its addresses, routes and neighbours, and xdp_nat on the
    peer end. Idempotent: `setup()` on an existing pair (an in-place restart)
    re-asserts everything and replaces the program in place."""

    def __init__(self, host: str = HOST_IFNAME, peer: str = PEER_IFNAME, ipr=None):
        self.host, self.peer = host, peer
        self._ipr = ipr

    def _with_ipr(self):
        from pyroute2 import IPRoute
        return (self._ipr, False) if self._ipr is not None else (IPRoute(), True)

    def setup(self, nat_fd: int) -> attach.AttachResult:
        ipr, own = self._with_ipr()
        try:
            if not ipr.link_lookup(ifname=self.host):
                ipr.link("add", ifname=self.host, kind="veth", peer=self.peer)
            host = ipr.link_lookup(ifname=self.host)[0]
            peer = ipr.link_lookup(ifname=self.peer)[0]
            try:
                _sysctl(f"net/ipv6/conf/{self.peer}/disable_ipv6", "1")
                _sysctl(f"net/ipv6/conf/{self.host}/accept_dad", "0")
            except OSError as e:
                log.debug("sysctl on %s/%s: %s", self.host, self.peer, e)
            _tx_checksum_off(self.host)
            ipr.link("set", index=peer, state="up")
            ipr.link("set", index=host, state="up")
            peer_mac = ipr.get_links(peer)[0].get_attr("IFLA_ADDRESS")
            for addr, plen, fam in ((HOST4, PLEN4, socket.AF_INET), (HOST6, PLEN6, socket.AF_INET6)):
                try:
                    ipr.addr("add", index=host, address=addr, prefixlen=plen, family=fam,
                             **({"flags": 0x02} if fam == socket.AF_INET6 else {}))   # IFA_F_NODAD
                except Exception as e:   # NetlinkError EEXIST: already there
                    if getattr(e, "code", None) != errno.EEXIST:
                        raise
            for gw, fam in ((PEER4, socket.AF_INET), (PEER6, socket.AF_INET6)):
                ipr.neigh("replace", dst=gw, lladdr=peer_mac, ifindex=host, state="permanent", family=fam)
            for net, gw, src, fam in ((NET4, PEER4, HOST4, socket.AF_INET),
                                      (NET6, PEER6, HOST6, socket.AF_INET6)):
                ipr.route("replace", dst=str(net), gateway=gw, oif=host, prefsrc=src, family=fam)
            return attach.attach(peer, self.peer, nat_fd, "generic", ipr=ipr)
        finally:
            if own:
                ipr.close()

    def exists(self) -> bool:
        ipr, own = self._with_ipr()
        try:
            return bool(ipr.link_lookup(ifname=self.host))
        finally:
            if own:
                ipr.close()

    def teardown(self) -> bool:
        """Delete the pair (its addresses, routes and neighbours go with it)."""
        return teardown(self.host, self._ipr)


def teardown(host: str = HOST_IFNAME, ipr=None) -> bool:
    """Remove the probe path's veth pair if present; True if it was there."""
    from pyroute2 import IPRoute
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        idx = ipr.link_lookup(ifname=host)
        if not idx:
            return False
        try:
            ipr.link("del", index=idx[0])
        except Exception as e:
            if getattr(e, "code", None) != errno.ENODEV:
                raise
        return True
    finally:
        if own:
            ipr.close()


def strict_rp_filter(ifname: str) -> bool:
    """True if IPv4 reverse-path filtering on `ifname` is strict (1): the
    answers the probe path hands to the host arrive on the NIC from an address
    routed via the veth, which strict mode drops (loose, 2, and off, 0, pass)."""
    try:
        values = []
        for name in ("all", ifname):
            with open(f"/proc/sys/net/ipv4/conf/{name}/rp_filter") as f:
                values.append(int(f.read().strip()))
        return max(values) == 1
    except (OSError, ValueError):
        return False
