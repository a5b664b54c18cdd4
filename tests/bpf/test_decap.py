"""bpf/vc5_decap.c under BPF_PROG_TEST_RUN, with frames built by scapy.

For every tunnel type (IPIP, GRE, FOU, GUE) and every outer/inner family
mix, the frame the program hands to the stack must be exactly the inner
packet behind the original Ethernet header (EtherType of the inner family);
everything the program must not decapsulate comes back byte for byte, with
the right counter moved.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
import os

import pytest

from tests.lib.require import require

scapy_all = require("scapy.all", "python3-scapy")
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import GRE, Dot1Q, Ether  # noqa: E402

from vc5.decap import maps, options, program  # noqa: E402

XDP_PASS = 2
LB_MAC, BE_MAC = "02:00:00:00:00:1b", "02:00:00:00:00:be"
LB4, BE4, LB6, BE6 = "10.1.0.1", "10.2.0.5", "fd00:1::1", "fd00:2::5"
CLIENT4, CLIENT6 = "198.51.100.7", "2001:db8:c::7"
VIP4, VIP6, OTHER4, OTHER6 = "192.0.2.10", "2001:db8:f::10", "192.0.2.11", "2001:db8:f::11"
VIP_RANGE4 = "203.0.113.0/24"          # an IPv4 prefix on lo: every address in it is local
FOU_PORT, GUE_PORT = 5555, 6080
TYPES = ("ipip", "gre", "fou", "gue")


class RunOpts(ct.Structure):       # struct bpf_test_run_opts, libbpf 1.1: 80 bytes
    _fields_ = [("sz", ct.c_size_t), ("data_in", ct.c_void_p), ("data_out", ct.c_void_p),
                ("data_size_in", ct.c_uint32), ("data_size_out", ct.c_uint32),
                ("ctx_in", ct.c_void_p), ("ctx_out", ct.c_void_p),
                ("ctx_size_in", ct.c_uint32), ("ctx_size_out", ct.c_uint32),
                ("retval", ct.c_uint32), ("repeat", ct.c_int), ("duration", ct.c_uint32),
                ("flags", ct.c_uint32), ("cpu", ct.c_uint32), ("batch_size", ct.c_uint32)]


_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_prog_test_run_opts.argtypes = [ct.c_int, ct.POINTER(RunOpts)]


class Decap:
    """The compiled program and its maps (not pinned, not attached)."""

    def __init__(self):
        self.built = program.build()
        self.fds = self.built.map_fds

    def configure(self, types=TYPES, fou=FOU_PORT, gue=GUE_PORT, csum=True, vips=None):
        acc = options.accept(",".join(types), fou if "fou" in types else None,
                             gue if "gue" in types else None, csum)
        maps.write_config(self.fds["config"], acc.config(self.built.build))
        vips = vips if vips is not None else [VIP4 + "/32", VIP6 + "/128", VIP_RANGE4]
        maps.set_vips(self.fds["vips"], [ipaddress.ip_network(v) for v in vips])

    def counters(self):
        return maps.read_counters(self.fds["stats"])

    def run(self, frame: bytes) -> tuple[int, bytes]:
        inb = ct.create_string_buffer(frame, len(frame))
        outb = ct.create_string_buffer(len(frame) + 512)
        o = RunOpts(sz=ct.sizeof(RunOpts), data_in=ct.addressof(inb), data_size_in=len(frame),
                    data_out=ct.addressof(outb), data_size_out=len(outb), repeat=1)
        rc = _libbpf.bpf_prog_test_run_opts(self.built.prog_fd, ct.byref(o))
        assert rc == 0, os.strerror(-rc)
        return o.retval, outb.raw[:o.data_size_out]

    def delta(self, frame: bytes) -> tuple[int, bytes, dict]:
        before = self.counters()
        verdict, out = self.run(frame)
        after = self.counters()
        return verdict, out, {k: after[k] - before[k] for k in after if after[k] != before[k]}


@pytest.fixture(scope="module")
def decap():
    if os.geteuid() != 0:
        pytest.skip("needs root (bcc, BPF_PROG_TEST_RUN)")
    require("bcc", "python3-bpfcc")
    d = Decap()
    d.configure()
    yield d


@pytest.fixture
def dc(decap):
    decap.configure()
    yield decap
    decap.configure()


def inner_packet(family: int, dst: str | None = None, payload: bytes = b"GET / HTTP/1.0\r\n\r\n"):
    if family == 4:
        return IP(src=CLIENT4, dst=dst or VIP4, ttl=63) / TCP(sport=40000, dport=80, flags="S") / payload
    return IPv6(src=CLIENT6, dst=dst or VIP6, hlim=63) / TCP(sport=40000, dport=80, flags="S") / payload


def outer(family: int, proto: int):
    if family == 4:
        return IP(src=LB4, dst=BE4, ttl=64, flags="DF", proto=proto)
    return IPv6(src=LB6, dst=BE6, hlim=64, nh=proto)


def encap(kind: str, outer_family: int, inner, port: int | None = None, csum: bool = True, l2=None):
    """What vc5 sends (vc5-behaviour 1.4), as wire bytes with every checksum computed by scapy."""
    inner_b = bytes(inner)
    inner4 = inner_b[0] >> 4 == 4
    l2 = l2 if l2 is not None else Ether(src=LB_MAC, dst=BE_MAC)
    if kind == "ipip":                                   # RFC 2003 / RFC 2473
        pkt = outer(outer_family, 4 if inner4 else 41) / inner_b
    elif kind == "gre":                                  # RFC 2784, 4-byte header
        pkt = outer(outer_family, 47) / GRE(proto=0x0800 if inner4 else 0x86DD) / inner_b
    elif kind == "fou":
        pkt = outer(outer_family, 17) / UDP(sport=0x8123, dport=port or FOU_PORT) / inner_b
    else:                                                # GUE variant 0, draft-ietf-intarea-gue 3.1
        gue = bytes([0, 4 if inner4 else 41, 0, 0])
        pkt = outer(outer_family, 17) / UDP(sport=0x8123, dport=port or GUE_PORT) / (gue + inner_b)
    frame = bytearray(bytes(l2 / pkt))
    if kind in ("fou", "gue") and not csum:
        off = len(bytes(l2)) + (20 if outer_family == 4 else 40) + 6
        frame[off:off + 2] = b"\0\0"
    return bytes(frame)


def expected(inner, l2=None) -> bytes:
    inner_b = bytes(inner)
    etype = 0x0800 if inner_b[0] >> 4 == 4 else 0x86DD
    if l2 is not None:
        return bytes(l2)[:16] + etype.to_bytes(2, "big") + inner_b
    return bytes(Ether(src=LB_MAC, dst=BE_MAC, type=etype)) + inner_b


MIXES = [(k, o, i) for k in TYPES for o in (4, 6) for i in (4, 6)]


@pytest.mark.parametrize("kind,outer_family,inner_family", MIXES,
                         ids=[f"{k}-{i}in{o}" for k, o, i in MIXES])
def test_decapsulates_every_type_and_mix(dc, kind, outer_family, inner_family):
    inner = inner_packet(inner_family)
    verdict, out, moved = dc.delta(encap(kind, outer_family, inner))
    assert verdict == XDP_PASS
    assert out == expected(inner)
    assert moved == {"rx": 1, f"decap_{kind}": 1, f"decap_outer_ipv{outer_family}": 1}


def test_vlan_tag_is_kept(dc):
    l2 = Ether(src=LB_MAC, dst=BE_MAC) / Dot1Q(vlan=20, prio=3)
    inner = inner_packet(6)
    verdict, out, moved = dc.delta(encap("gue", 4, inner, l2=l2))
    assert out == expected(inner, l2=l2)
    assert Ether(out)[Dot1Q].vlan == 20 and Ether(out)[Dot1Q].prio == 3
    assert moved["decap_gue"] == 1


def test_ipv4_prefix_on_lo_is_a_vip_range(dc):
    inner = inner_packet(4, dst="203.0.113.77")
    assert dc.delta(encap("ipip", 6, inner))[1] == expected(inner)


def test_ethernet_padding_is_trimmed(dc):
    inner = IP(src=CLIENT4, dst=VIP4, proto=253)          # 20 bytes: the frame is padded to 60
    frame = encap("ipip", 4, inner)
    frame += b"\0" * (60 - len(frame))
    verdict, out, moved = dc.delta(frame)
    assert out == expected(inner) and moved["decap_ipip"] == 1


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("family", (4, 6))
def test_unknown_vip_passes_untouched(dc, kind, family):
    frame = encap(kind, family, inner_packet(family, dst=OTHER4 if family == 4 else OTHER6))
    verdict, out, moved = dc.delta(frame)
    assert (verdict, out) == (XDP_PASS, frame)
    assert moved == {"rx": 1, "rejected_unknown_vip": 1}


@pytest.mark.parametrize("kind", ("fou", "gue"))
def test_wrong_port_passes_untouched(dc, kind):
    frame = encap(kind, 4, inner_packet(4), port=7777)
    verdict, out, moved = dc.delta(frame)
    assert out == frame and moved == {"rx": 1, "rejected_port": 1}


def test_disabled_types_pass_untouched(dc):
    dc.configure(types=("fou",))
    for kind, counter in (("ipip", "rejected_type"), ("gre", "rejected_type"), ("gue", "rejected_port")):
        frame = encap(kind, 6, inner_packet(4))
        verdict, out, moved = dc.delta(frame)
        assert out == frame and moved == {"rx": 1, counter: 1}, kind


def _malformed_frames():
    e = Ether(src=LB_MAC, dst=BE_MAC)
    inner4 = bytes(inner_packet(4))
    truncated = outer(4, 4) / inner4[:-5]                                  # inner tot_len too long
    wrong_ver = outer(4, 4) / bytes(inner_packet(6))                       # proto 4 carrying IPv6
    gre_key = outer(4, 47) / GRE(key_present=1, key=7, proto=0x0800) / inner4     # RFC 2890 key
    gue_ctl = outer(4, 17) / UDP(dport=GUE_PORT) / (bytes([0x20, 4, 0, 0]) + inner4)  # C=1
    gue_hlen = outer(4, 17) / UDP(dport=GUE_PORT) / (bytes([0x01, 4, 0, 0, 0, 0, 0, 0]) + inner4)
    fou_junk = outer(6, 17) / UDP(dport=FOU_PORT) / (b"\x99" + inner4[1:])
    return {"truncated": e / truncated, "version": e / wrong_ver, "gre-key": e / gre_key,
            "gue-control": e / gue_ctl, "gue-hlen": e / gue_hlen, "fou-not-ip": e / fou_junk}


@pytest.mark.parametrize("name", list(_malformed_frames()))
def test_malformed_passes_untouched(dc, name):
    frame = bytes(_malformed_frames()[name])
    verdict, out, moved = dc.delta(frame)
    assert (verdict, out) == (XDP_PASS, frame)
    assert moved == {"rx": 1, "rejected_malformed": 1}


def test_outer_fragment_passes_untouched(dc):
    frame = bytes(Ether(src=LB_MAC, dst=BE_MAC) / IP(src=LB4, dst=BE4, flags="MF", proto=4)
                  / bytes(inner_packet(4)))
    verdict, out, moved = dc.delta(frame)
    assert out == frame and moved == {"rx": 1, "rejected_fragment": 1}


@pytest.mark.parametrize("frame", [
    bytes(Ether(src=LB_MAC, dst=BE_MAC, type=0x0806) / (b"\0" * 28)),               # ARP
    bytes(Ether(src=LB_MAC, dst=BE_MAC) / inner_packet(4)),                        # DSR on L2
    bytes(Ether(src=LB_MAC, dst=BE_MAC) / inner_packet(6)),
    bytes(Ether(src=LB_MAC, dst=BE_MAC) / IP(src=LB4, dst=BE4) / UDP(dport=53) / b"query"),
    bytes(Ether(src=LB_MAC, dst=BE_MAC) / IP(src=LB4, dst=BE4) / GRE(proto=0x6558) / (b"\0" * 60)),
    bytes(Ether(src=LB_MAC, dst=BE_MAC, type=0x0800)) + b"\x45\0\0\x40",          # truncated IPv4
], ids=["arp", "tcp4", "tcp6", "udp", "gre-teb", "truncated"])
def test_other_traffic_passes_untouched(dc, frame):
    verdict, out, moved = dc.delta(frame)
    assert (verdict, out) == (XDP_PASS, frame)
    assert moved == {"rx": 1, "passed": 1}


# BPF_PROG_TEST_RUN keeps at most ~3.5 KB linear (the rest goes to fragments the
# program does not see), as native XDP does: sizes stop below that.
@pytest.mark.parametrize("size", (0, 1, 2, 3, 45, 63, 64, 65, 1200, 1401, 3000))
@pytest.mark.parametrize("kind,family", [("fou", 4), ("gue", 6)])
def test_outer_udp_checksum_verified_at_every_length(dc, size, kind, family):
    inner = inner_packet(4, payload=bytes(range(256)) * (size // 256) + bytes(size % 256))
    good = encap(kind, family, inner)
    assert dc.delta(good)[1] == expected(inner)
    bad = bytearray(good)
    bad[-1] ^= 0x5a                      # one payload byte: the outer UDP checksum no longer holds
    bad = bytes(bad)
    verdict, out, moved = dc.delta(bad)
    assert out == bad and moved == {"rx": 1, "rejected_checksum": 1}


def test_zero_checksum_is_accepted(dc):
    inner = inner_packet(6)
    for family in (4, 6):
        assert dc.delta(encap("gue", family, inner, csum=False))[1] == expected(inner)


def test_checksum_not_verified_when_told(dc):
    dc.configure(csum=False)
    inner = inner_packet(4)
    bad = bytearray(encap("fou", 4, inner))
    bad[-1] ^= 1
    verdict, out, moved = dc.delta(bytes(bad))
    assert moved["decap_fou"] == 1 and out[-1] == bytes(inner)[-1] ^ 1


def test_gue_variant_1_is_direct_ip(dc):
    """draft-ietf-intarea-gue section 4: first two bits 01 -> the payload is IPv4/IPv6."""
    inner = inner_packet(6)
    frame = bytes(Ether(src=LB_MAC, dst=BE_MAC) / outer(4, 17) / UDP(dport=GUE_PORT) / bytes(inner))
    verdict, out, moved = dc.delta(frame)
    assert out == expected(inner) and moved["decap_gue"] == 1
