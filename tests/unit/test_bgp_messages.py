"""Golden bytes for every BGP message, cross-checked with scapy's BGP layer as an independent decoder."""

import ipaddress as ip

import pytest

from tests.lib.require import require
from vc5.bgpd import attributes as attr
from vc5.bgpd import capabilities as caps
from vc5.bgpd import messages
from vc5.bgpd.errors import BgpError, describe
from vc5.bgpd.messages import header, keepalive, notification, route_refresh, update
from vc5.bgpd.messages import open as bgp_open

scapy_bgp = require("scapy.contrib.bgp", "python3-scapy")

MARKER = b"\xff" * 16


def net(text):
    return ip.ip_network(text)


def body(msg):
    return msg[19:]


# --- vc5's own golden bytes (davidcoles/bgp bgp_test.go; docs/bgp.md, "What each peer is sent")

def test_as_path_ibgp_is_empty():
    assert attr.as_path((), four_octet=False) == bytes([0x40, 2, 0])


@pytest.mark.parametrize("asn,expected", [(65000, [0x40, 2, 4, 2, 1, 253, 232]),
                                          (12345, [0x40, 2, 4, 2, 1, 48, 57])])
def test_as_path_ebgp_two_octet(asn, expected):
    assert attr.as_path((asn,), four_octet=False) == bytes(expected)


def test_as_path_ebgp_four_octet():
    assert attr.as_path((65000,), four_octet=True) == bytes([0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8])
    big = (4200000000).to_bytes(4, "big")
    assert attr.as_path((4200000000,), four_octet=True) == bytes([0x40, 2, 6, 2, 1]) + big


def test_as_path_large_asn_to_old_speaker_uses_as_trans_and_as4_path():
    pa = attr.PathAttributes(as_path=(4200000000,), next_hop=ip.ip_address("10.1.2.3"))
    head, tail = attr.encode_common(pa, four_octet=False, ipv4_next_hop=True)
    assert bytes([0x40, 2, 4, 2, 1, 0x5b, 0xa0]) in head          # AS_TRANS 23456
    assert tail == bytes([0xc0, 17, 6, 2, 1]) + (4200000000).to_bytes(4, "big")


@pytest.mark.parametrize("value,expected", [(100, [0x40, 5, 4, 0, 0, 0, 100]),
                                            (123456789, [0x40, 5, 4, 7, 91, 205, 21])])
def test_local_pref(value, expected):
    assert attr.local_pref(value) == bytes(expected)


def test_nlri_bytes():
    assert attr.nlri.encode_prefixes([net("192.168.101.0/32"), net("192.168.101.1/32")]) == bytes(
        [32, 192, 168, 101, 0, 32, 192, 168, 101, 1])
    assert attr.nlri.encode_prefix(net("fd0b:2b0b:a7b8::1/128")) == bytes(
        [128, 0xfd, 0x0b, 0x2b, 0x0b, 0xa7, 0xb8] + [0] * 9 + [1])


INTERNAL = bytes([0, 5, 32, 192, 168, 101, 1, 0, 21, 0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 1, 2, 3,
                  0x40, 5, 4, 7, 91, 205, 21, 32, 192, 168, 101, 0])
EXTERNAL = bytes([0, 5, 32, 192, 168, 101, 1, 0, 18, 0x40, 1, 1, 0, 0x40, 2, 4, 2, 1, 253, 232,
                  0x40, 3, 4, 10, 1, 2, 3, 32, 192, 168, 101, 0])


@pytest.mark.parametrize("ebgp,expected", [(False, INTERNAL), (True, EXTERNAL)])
def test_update_message_golden(ebgp, expected):
    pa = attr.PathAttributes(as_path=(65000,) if ebgp else (), next_hop=ip.ip_address("10.1.2.3"),
                             local_pref=None if ebgp else 123456789)
    head, tail = attr.encode_common(pa, four_octet=False, ipv4_next_hop=True)
    msg = update.encode([net("192.168.101.1/32")], head + tail, [net("192.168.101.0/32")])
    assert msg[:16] == MARKER and int.from_bytes(msg[16:18], "big") == len(msg) and msg[18] == 2
    assert body(msg) == expected
    decoded = update.decode(body(msg), four_octet=False)
    assert decoded.withdrawn == (net("192.168.101.1/32"),)
    assert decoded.nlri == (net("192.168.101.0/32"),)
    assert decoded.attributes.next_hop == ip.ip_address("10.1.2.3")
    assert decoded.attributes.local_pref == (None if ebgp else 123456789)


# --- other messages

def test_keepalive():
    assert keepalive.encode() == MARKER + bytes([0, 19, 4])
    assert messages.decode_stream(keepalive.encode()) == ([(header.KEEPALIVE, None)], b"")


def test_open_golden_and_as_trans():
    c = caps.Capabilities(families=(caps.IPV4_UNICAST,), route_refresh=True, four_octet_as=4200000000)
    msg = bgp_open.encode(4200000000, 9, "10.0.0.1", c)
    expected_params = bytes([2, 14, 1, 4, 0, 1, 0, 1, 2, 0, 65, 4]) + (4200000000).to_bytes(4, "big")
    assert body(msg) == bytes([4, 0x5b, 0xa0, 0, 9, 10, 0, 0, 1, len(expected_params)]) + expected_params
    o = bgp_open.decode(body(msg))
    assert (o.my_as, o.asn, o.hold_time, str(o.bgp_id)) == (23456, 4200000000, 9, "10.0.0.1")
    assert o.capabilities == c
    s = scapy_bgp.BGPHeader(msg)
    assert s[scapy_bgp.BGPOpen].my_as == 23456 and s[scapy_bgp.BGPOpen].hold_time == 9
    assert s[scapy_bgp.BGPOpen].bgp_id == "10.0.0.1"


def test_open_small_asn_in_my_as():
    msg = bgp_open.encode(65001, 90, "1.2.3.4", caps.Capabilities(four_octet_as=65001))
    assert bgp_open.decode(body(msg)).my_as == 65001


def test_open_several_capability_params_merge():
    p1 = bytes([2, 6, 1, 4, 0, 2, 0, 1])
    p2 = bytes([2, 6, 65, 4, 0, 0, 0xfd, 0xe9])
    raw = bytes([4, 0xfd, 0xe9, 0, 9, 1, 1, 1, 1, len(p1 + p2)]) + p1 + p2
    o = bgp_open.decode(raw)
    assert o.capabilities.families == (caps.IPV6_UNICAST,) and o.asn == 65001


def test_graceful_restart_capability_roundtrip():
    c = caps.Capabilities(graceful_restart=(120, ((1, 1, True), (2, 1, False))))
    assert caps.decode(caps.encode(c)) == c


def test_notification_with_shutdown_communication():
    msg = notification.encode(6, 2, notification.shutdown_data("vc5-bgpd stopping"))
    assert body(msg) == bytes([6, 2, 17]) + b"vc5-bgpd stopping"
    n = notification.decode(body(msg))
    assert n.shutdown_communication == "vc5-bgpd stopping"
    assert n.text == 'Cease / Administrative Shutdown (6/2): "vc5-bgpd stopping"'
    s = scapy_bgp.BGPHeader(msg)
    assert s[scapy_bgp.BGPNotification].error_code == 6 and s[scapy_bgp.BGPNotification].error_subcode == 2


def test_shutdown_communication_truncated_to_255_on_char_boundary():
    data = notification.shutdown_data("é" * 200)
    assert data[0] <= 255 and len(data) == 1 + data[0]
    data[1:].decode("utf-8")


@pytest.mark.parametrize("code,sub,text", [(2, 6, "OPEN Message Error / Unacceptable Hold Time"),
                                           (4, 0, "Hold Timer Expired / Unspecific"),
                                           (6, 4, "Cease / Administrative Reset"),
                                           (3, 11, "UPDATE Message Error / Malformed AS_PATH")])
def test_error_names(code, sub, text):
    assert describe(code, sub) == text


def test_route_refresh():
    msg = route_refresh.encode(2, 1)
    assert body(msg) == bytes([0, 2, 0, 1])
    assert route_refresh.decode(body(msg)) == route_refresh.RouteRefresh(2, 1)


def test_ipv6_announce_has_mp_reach_and_scapy_agrees():
    pa = attr.PathAttributes(as_path=(65000,), next_hop=ip.ip_address("fd00::1"), med=5,
                             communities=((65000, 1), attr.GRACEFUL_SHUTDOWN), large_communities=((1, 2, 3),))
    (msg,) = update.announce([net("fd00::10/128"), net("fd00::9/128")], pa, four_octet=True)
    decoded = update.decode(body(msg), four_octet=True)
    afi, safi, nh, prefixes = decoded.attributes.mp_reach
    assert (afi, safi, ip.ip_address(nh)) == (2, 1, ip.ip_address("fd00::1"))
    assert prefixes == (net("fd00::9/128"), net("fd00::10/128"))
    assert decoded.attributes.communities == ((65000, 1), (65535, 0))
    assert decoded.attributes.large_communities == ((1, 2, 3),)
    assert decoded.attributes.as_path == ((2, (65000,)),)
    assert decoded.nlri == ()
    s = scapy_bgp.BGPHeader(msg)
    codes = [a.type_code for a in s[scapy_bgp.BGPUpdate].path_attr]
    assert codes == [1, 2, 4, 8, 14, 32]       # type-code order, no NEXT_HOP for IPv6
    mp = s[scapy_bgp.BGPPAMPReachNLRI]
    assert mp.nh_v6_addr == "fd00::1"
    assert sorted(n.prefix for n in mp.nlri) == ["fd00::10/128", "fd00::9/128"]


def test_ipv4_announce_scapy_agrees():
    pa = attr.PathAttributes(as_path=(), next_hop=ip.ip_address("10.0.0.2"), local_pref=200,
                             communities=((65001, 100),))
    (msg,) = update.announce([net("10.255.0.1/32"), net("10.255.0.2/32")], pa, four_octet=True)
    s = scapy_bgp.BGPHeader(msg)
    u = s[scapy_bgp.BGPUpdate]
    assert [n.prefix for n in u.nlri] == ["10.255.0.1/32", "10.255.0.2/32"]
    attrs = {a.type_code: a for a in u.path_attr}
    assert attrs[3].attribute.next_hop == "10.0.0.2"
    assert attrs[5].attribute.local_pref == 200
    assert attrs[8].attribute.community == (65001 << 16) | 100


def test_withdraw_both_families():
    msgs = update.withdraw([net("10.0.0.1/32"), net("fd00::1/128")])
    assert len(msgs) == 2
    v4 = update.decode(body(msgs[0]))
    v6 = update.decode(body(msgs[1]))
    assert v4.withdrawn == (net("10.0.0.1/32"),)
    assert v6.attributes.mp_unreach == (2, 1, (net("fd00::1/128"),))


def test_many_prefixes_split_under_4096():
    nets = [ip.ip_network(f"10.{i >> 8}.{i & 255}.1/32") for i in range(3000)]
    pa = attr.PathAttributes(next_hop=ip.ip_address("10.0.0.2"), local_pref=100)
    msgs = update.announce(nets, pa, True)
    assert len(msgs) > 1 and all(len(m) <= 4096 for m in msgs)
    got = [p for m in msgs for p in update.decode(body(m)).nlri]
    assert sorted(got) == sorted(nets)
    nets6 = [ip.ip_network(f"fd00::{i:x}/128") for i in range(1000)]
    pa6 = attr.PathAttributes(next_hop=ip.ip_address("fd00::2"))
    msgs6 = update.announce(nets6, pa6, True) + update.withdraw(nets6)
    assert all(len(m) <= 4096 for m in msgs6)


def test_end_of_rib():
    assert update.decode(body(update.end_of_rib())).is_end_of_rib
    assert update.decode(body(update.end_of_rib(2, 1))).is_end_of_rib


# --- errors that the RFC maps to NOTIFICATION codes

def upd(attrs=b"", nlri=b"", withdrawn=b""):
    """A framed UPDATE with the given raw fields and correct lengths."""
    return header.encode(header.UPDATE, len(withdrawn).to_bytes(2, "big") + withdrawn
                         + len(attrs).to_bytes(2, "big") + attrs + nlri)


@pytest.mark.parametrize("raw,code,sub", [
    (b"\x00" * 16 + bytes([0, 19, 4]), 1, 1),                 # bad marker
    (MARKER + bytes([0, 18, 4]), 1, 2),                       # length < 19
    (MARKER + bytes([0, 20, 4, 0]), 1, 2),                    # KEEPALIVE with a body
    (MARKER + bytes([16, 1, 2]) + bytes(4077), 1, 2),         # length > 4096
    (MARKER + bytes([0, 19, 9]), 1, 3),                       # unknown type
    (MARKER + bytes([0, 29, 1, 3, 0, 1, 0, 9, 1, 1, 1, 1, 0]), 2, 1),   # version 3
    (MARKER + bytes([0, 31, 1, 4, 0, 1, 0, 9, 1, 1, 1, 1, 2, 9, 0]), 2, 4),   # param type 9
    (MARKER + bytes([0, 23, 2, 0, 9, 0, 0]), 3, 1),           # withdrawn length overruns (RFC 7606 §3(b))
    (upd(nlri=bytes([33, 10])), 3, 10),                       # prefix length 33 (RFC 7606 §5.3)
    (upd(bytes([0x40, 99, 1, 0])), 3, 2),                     # unknown well-known (RFC 4271 §6.3)
    (upd(bytes([0x80, 14, 9, 0])), 3, 5),                     # MP_REACH_NLRI overruns (RFC 7606 §3(j))
    (upd(bytes([0x80, 14, 2, 0, 2])), 3, 9),                  # MP_REACH_NLRI without SAFI (§7.11)
    (upd(bytes([0x80, 15, 3, 0, 2, 1]) * 2), 3, 1),           # MP_UNREACH_NLRI twice (§3(g))
    (upd(bytes([0x80, 14, 8, 0, 2, 1, 3, 1, 2, 3, 0])), 3, 9),   # IPv6 next hop of 3 octets (§7.11)
    (upd(bytes([0x80, 15, 5, 0, 2, 1, 129, 0])), 3, 10),      # IPv6 prefix length 129 (§5.3)
])
def test_malformed_messages_map_to_rfc_errors(raw, code, sub):
    with pytest.raises(BgpError) as e:
        messages.decode_stream(raw)
    assert (e.value.code, e.value.subcode) == (code, sub)
