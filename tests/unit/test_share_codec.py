"""vc5 v0.3's flow-sharing records (services/vc5/xdp_loader/share/codec.py).

The fixtures are built byte by byte from xvs v0.2.10's C layout (bpf/layer3.c
struct fourtuple + struct flow, FLOW_VERSION 2 in bpf/imports.h), not with the
codec's own struct formats, so a wrong offset in the codec fails here."""

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from vc5.xdp_loader.share import codec


def go_record(client=bytes(12) + bytes([198, 51, 100, 7]), vip=bytes(12) + bytes([192, 0, 2, 1]),
              sport=40000, dport=80, time=123456789, daddr=bytes(12) + bytes([10, 1, 0, 10]),
              saddr=bytes(12) + bytes([10, 1, 0, 2]), tport=0, tsport=0x8123, vlanid=10, method=0, flags=0,
              h_dest=bytes.fromhex("020000000010"), h_source=bytes.fromhex("020000000001"), hints=0,
              pad114=0, version=2):
    """A record as xvs's kernel side writes it (x86: host order = little-endian)."""
    le = lambda v, n: v.to_bytes(n, "little")    # noqa: E731
    be = lambda v, n: v.to_bytes(n, "big")       # noqa: E731
    tunnel = (daddr + saddr + le(tport, 2) + le(tsport, 2) + le(vlanid, 2) + bytes([method, flags])
              + h_dest + h_source + bytes([hints]) + bytes(5) + le(1500, 2) + le(7, 4))
    assert len(tunnel) == 64
    flow = le(time, 8) + tunnel + le(0xdeadbeef, 4) + bytes([3, 1, pad114, version])
    assert len(flow) == 80
    rec = client + vip + be(sport, 2) + be(dport, 2) + flow
    assert len(rec) == 116
    return rec


def test_a_vc5_record_decodes():
    f = codec.decode_record(go_record(tport=6080, method=4, flags=1, hints=0x80))
    assert f == codec.SharedFlow(
        ipaddress.ip_address("198.51.100.7"), ipaddress.ip_address("192.0.2.1"), 40000, 80, codec.TCP,
        ipaddress.ip_address("10.1.0.10"), 123456789, ipaddress.ip_address("10.1.0.2"), 6080, 0x8123, 10, 4,
        1, bytes.fromhex("020000000010"), bytes.fromhex("020000000001"), 0x80)


def test_ipv4_is_ipv4_compatible_not_mapped():
    assert codec.addr16("192.0.2.1") == bytes(12) + bytes([192, 0, 2, 1])
    assert codec.from16(bytes(12) + bytes([192, 0, 2, 1])) == ipaddress.ip_address("192.0.2.1")
    mapped = bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1])     # ::ffff:192.0.2.1 is IPv6 to vc5
    assert codec.from16(mapped).version == 6


def test_ipv6_record():
    c, v, b = (ipaddress.ip_address(a) for a in ("2001:db8:c::7", "2001:db8::1", "fd00::10"))
    f = codec.decode_record(go_record(client=c.packed, vip=v.packed, daddr=b.packed, saddr=bytes(16)))
    assert (f.client, f.vip, f.backend, f.source) == (c, v, b, None)


def test_our_encoding_is_vc5s_byte_for_byte():
    f = codec.decode_record(go_record())
    ours = codec.encode_record(f)
    theirs = go_record(pad114=6)
    # vc5's scratch fields (tot_len, _interface, syn_seqn_reserved, finrst, era) are not
    # meaningful to a peer: we send zeros; everything else is identical.
    scratch = set(range(102, 108)) | set(range(108, 114))
    assert len(ours) == 116
    assert [i for i in range(116) if i not in scratch and ours[i] != theirs[i]] == []


def test_udp_is_marked_in_byte_114_and_tcp_is_0_or_6():
    assert codec.decode_record(go_record(pad114=17)).protocol == codec.UDP
    assert codec.decode_record(go_record(pad114=0)).protocol == codec.TCP
    assert codec.decode_record(go_record(pad114=6)).protocol == codec.TCP
    assert codec.encode_record(codec.decode_record(go_record(pad114=17)))[114] == 17


def test_framing_matches_vc5_and_stays_under_1400_bytes():
    recs = [go_record(sport=1000 + i) for i in range(30)]
    grams = codec.frame(recs)
    assert all(len(g) <= codec.MAX_DATAGRAM for g in grams)
    assert [len(g) for g in grams] == [11 * 117, 11 * 117, 8 * 117]
    assert grams[0][0] == 116 and grams[0][1:117] == recs[0] and grams[0][117] == 116
    stats = codec.DecodeStats()
    flows = [f for g in grams for f in codec.unframe(g, stats)]
    assert [f.client_port for f in flows] == list(range(1000, 1030))
    assert stats == {"ok": 30}


def test_malformed_records_are_counted_and_ignored():
    good = go_record(sport=1)
    data = b"".join([
        bytes([116]) + go_record(version=1),             # unknown version
        bytes([116]) + go_record(pad114=47),             # protocol not TCP/UDP
        bytes([116]) + go_record(vip=bytes(range(16))),  # IPv4 client, IPv6 VIP
        bytes([116]) + go_record(method=9),              # no such tunnel method
        bytes([10]) + bytes(10),                         # short record
        bytes([0]),                                      # empty record
        bytes([116]) + good,
        bytes([116]) + good[:50],                        # truncated: ends the datagram
    ])
    stats = codec.DecodeStats()
    flows = codec.unframe(data, stats)
    assert [f.client_port for f in flows] == [1]
    assert stats == {"ok": 1, codec.VERSION: 1, codec.PROTOCOL: 1, codec.FAMILY: 1, codec.METHOD: 1,
                     codec.LENGTH: 2, codec.SHORT: 1}
    assert stats.skipped() == 7


def test_garbage_never_raises():
    stats = codec.DecodeStats()
    assert codec.unframe(bytes(range(256)) * 7, stats) == []
    assert stats.skipped() > 0


def test_encode_refuses_other_protocols():
    f = codec.decode_record(go_record())
    import dataclasses
    try:
        codec.encode_record(dataclasses.replace(f, protocol=1))
    except ValueError as e:
        assert "protocol 1" in str(e)
    else:
        raise AssertionError("ICMP encoded")


v4 = st.builds(ipaddress.IPv4Address, st.integers(1, 2**32 - 1))
v6 = st.builds(ipaddress.IPv6Address, st.integers(2**32, 2**128 - 1))   # never IPv4-compatible
port = st.integers(0, 65535)
mac = st.binary(min_size=6, max_size=6)


@st.composite
def flows(draw):
    fam = draw(st.sampled_from((v4, v6)))
    return codec.SharedFlow(draw(fam), draw(fam), draw(port), draw(port), draw(st.sampled_from((6, 17))),
                            draw(st.one_of(v4, v6)), draw(st.integers(0, 2**64 - 1)),
                            draw(st.one_of(st.none(), v4, v6)), draw(port), draw(port), draw(port),
                            draw(st.integers(0, 4)), draw(st.integers(0, 255)), draw(mac), draw(mac),
                            draw(st.integers(0, 255)))


@given(st.lists(flows(), max_size=40))
def test_round_trip(fs):
    stats = codec.DecodeStats()
    back = [f for g in codec.frame([codec.encode_record(f) for f in fs]) for f in codec.unframe(g, stats)]
    assert back == fs
    assert stats.skipped() == 0


def test_sdbm_matches_the_data_plane_hash():
    # bpf/vc5_hash.h: h = h * 63 + c over the 36-byte tuple, modulo 2^16
    t = codec.fourtuple(codec.decode_record(go_record()))
    h = 0
    for c in t:
        h = (h * 63 + c) % 65536
    assert codec.sdbm16(t) == h and t == go_record()[:36]
