"""RFC 7606: a malformed attribute in a received UPDATE never resets the session unless RFC 7606 says so.

Each case is checked three ways: the decoder (approach and attribute named),
the session object fed the bytes (stays Established, no NOTIFICATION,
counted), and one session over loopback TCP that gets every case and keeps
exchanging KEEPALIVEs and UPDATEs. The cases that still reset are in
test_bgp_messages.py (test_malformed_messages_map_to_rfc_errors).
"""

import asyncio
import ipaddress as ip
import logging

import pytest

from vc5.bgpd import attributes as attr
from vc5.bgpd.fsm import State
from vc5.bgpd.messages import header, keepalive, update
from vc5.common.wire import VipState

from .test_bgp_props import Harness, in_loop
from .test_bgp_session import ScriptedPeer, peer, run, speaker_for, wait_for

TAW, DISCARD, IGNORED = attr.TREAT_AS_WITHDRAW, attr.ATTRIBUTE_DISCARD, "ignored"


def a(flags, code, value):
    return bytes([flags, code, len(value)]) + value


ORIGIN = a(0x40, 1, b"\x00")
AS_PATH = a(0x40, 2, b"")
NEXT_HOP = a(0x40, 3, bytes([10, 0, 0, 1]))
MANDATORY = ORIGIN + AS_PATH + NEXT_HOP
NLRI = bytes([24, 10, 9, 0])
V6_REACH = (b"\x00\x02\x01\x10" + ip.IPv6Address("fd00::2").packed + b"\x00"
            + bytes([128]) + ip.IPv6Address("fd00::1").packed)
V4_ONLY = ((1, 1),)

# (id, path attributes, NLRI, families negotiated (None: IPv4 and IPv6), approach, attribute named)
CASES = [
    ("origin-value", a(0x40, 1, b"\x07") + AS_PATH + NEXT_HOP, NLRI, None, TAW, "ORIGIN"),          # §7.1
    ("origin-flags", a(0x80, 1, b"\x00") + AS_PATH + NEXT_HOP, NLRI, None, TAW, "ORIGIN"),          # §3(c)
    ("origin-length", a(0x40, 1, b"\x00\x00") + AS_PATH + NEXT_HOP, NLRI, None, TAW, "ORIGIN"),     # §7.1
    ("missing-mandatory", b"", NLRI, None, TAW, "ORIGIN, AS_PATH, NEXT_HOP"),                       # §3(d)
    ("as-path-segment-type", ORIGIN + a(0x40, 2, bytes([5, 1, 0, 0, 0, 1])) + NEXT_HOP, NLRI, None, TAW,
     "AS_PATH"),                                                                                     # §7.2
    ("as-path-zero-segment", ORIGIN + a(0x40, 2, bytes([2, 0])) + NEXT_HOP, NLRI, None, TAW, "AS_PATH"),
    ("as-path-overrun", ORIGIN + a(0x40, 2, bytes([2, 3, 0, 0, 0, 1])) + NEXT_HOP, NLRI, None, TAW,
     "AS_PATH"),
    ("next-hop-length", ORIGIN + AS_PATH + a(0x40, 3, b"\x01\x02\x03"), NLRI, None, TAW, "NEXT_HOP"),  # §7.3
    ("next-hop-zero", ORIGIN + AS_PATH + a(0x40, 3, bytes(4)), NLRI, None, TAW, "NEXT_HOP"),   # RFC 4271 §6.3
    ("med-length", MANDATORY + a(0x80, 4, b"\x00\x00\x01"), NLRI, None, TAW, "MULTI_EXIT_DISC"),     # §7.4
    ("local-pref-length", MANDATORY + a(0x40, 5, bytes(5)), NLRI, None, TAW, "LOCAL_PREF"),          # §7.5
    ("atomic-aggregate-length", MANDATORY + a(0x40, 6, b"\x01"), NLRI, None, DISCARD, "ATOMIC_AGGREGATE"),
    ("aggregator-length", MANDATORY + a(0xc0, 7, bytes(7)), NLRI, None, DISCARD, "AGGREGATOR"),      # §7.7
    ("communities-length", MANDATORY + a(0xc0, 8, bytes(5)), NLRI, None, TAW, "COMMUNITIES"),        # §7.8
    ("communities-empty", MANDATORY + a(0xc0, 8, b""), NLRI, None, TAW, "COMMUNITIES"),
    ("communities-flags", MANDATORY + a(0x40, 8, bytes(4)), NLRI, None, TAW, "COMMUNITIES"),         # §3(c)
    ("originator-id-length", MANDATORY + a(0x80, 9, bytes(3)), NLRI, None, TAW, "ORIGINATOR_ID"),    # §7.9
    ("cluster-list-length", MANDATORY + a(0x80, 10, bytes(5)), NLRI, None, TAW, "CLUSTER_LIST"),     # §7.10
    ("ext-communities-length", MANDATORY + a(0xc0, 16, bytes(7)), NLRI, None, TAW, "EXTENDED_COMMUNITIES"),
    ("as4-path-malformed", MANDATORY + a(0xc0, 17, bytes([2, 2, 0, 0, 0, 1])), NLRI, None, DISCARD,
     "AS4_PATH"),                                                                                # RFC 6793 §6
    ("as4-aggregator-length", MANDATORY + a(0xc0, 18, bytes(6)), NLRI, None, DISCARD, "AS4_AGGREGATOR"),
    ("large-community-length", MANDATORY + a(0xc0, 32, bytes(13)), NLRI, None, TAW, "LARGE_COMMUNITY"),
    ("repeated-attribute", MANDATORY + a(0xc0, 8, bytes(4)) * 2, NLRI, None, DISCARD, "COMMUNITIES"),  # §3(g)
    ("attribute-overruns-list", MANDATORY + bytes([0xc0, 8, 9, 0, 0]), NLRI, None, TAW, "COMMUNITIES"),  # §4
    ("octets-after-last-attribute", MANDATORY + b"\xc0\x08", NLRI, None, TAW, "attribute list"),     # §4
    ("mp-reach-unknown-family", a(0x80, 14, b"\x00\x19\x46\x04\x01\x02\x03\x04\x00\x20\x01"), b"", None,
     IGNORED, "MP_REACH_NLRI"),                                                                  # RFC 4760 §7
    ("mp-unreach-unknown-safi", a(0x80, 15, b"\x00\x01\x80\x99\x98"), b"", None, IGNORED, "MP_UNREACH_NLRI"),
    ("mp-reach-ipv6-not-negotiated", ORIGIN + AS_PATH + a(0x80, 14, V6_REACH), b"", V4_ONLY, IGNORED,
     "MP_REACH_NLRI"),
    ("mp-reach-without-origin", a(0x80, 14, V6_REACH), b"", None, TAW, "ORIGIN, AS_PATH"),         # §3(d)
]
IDS = [c[0] for c in CASES]


def body(attrs, nlri):
    return b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + nlri


@pytest.mark.parametrize("name,attrs,nlri,families,approach,what", CASES, ids=IDS)
def test_decoder_names_the_approach_and_attribute(name, attrs, nlri, families, approach, what):
    u = update.decode(body(attrs, nlri), True, families)
    if approach == IGNORED:
        assert u.approach is None and [i[0] for i in u.attributes.ignored] == [what]
    else:
        assert u.approach == approach and what in [e[1] for e in u.attributes.errors], u.attributes.errors


def test_valid_update_has_no_errors_and_known_attributes_decode():
    attrs = MANDATORY + a(0x80, 4, bytes([0, 0, 0, 5])) + a(0xc0, 8, bytes([0xff, 0xff, 0, 0]))
    u = update.decode(body(attrs, NLRI), True)
    assert u.approach is None and u.attributes.errors == () and u.attributes.med == 5
    assert u.attributes.communities == ((65535, 0),) and u.nlri == (ip.ip_network("10.9.0.0/24"),)


@pytest.mark.parametrize("name,attrs,nlri,families,approach,what", CASES, ids=IDS)
def test_session_fed_the_update_stays_established(name, attrs, nlri, families, approach, what):
    def scenario():
        h = Harness(multiprotocol=families is None)
        h.handshake()
        assert h.feed(header.encode(header.UPDATE, body(attrs, nlri)))
        assert h.session.state == State.ESTABLISHED
        assert not any(t == header.NOTIFICATION for t, _ in h.sent())
        counter = "updates_ignored_family" if approach == IGNORED else "updates_malformed"
        assert h.session.counters[counter] == 1 and h.session.counters["updates_in"] == 1
        assert h.feed(keepalive.encode()) and h.session.state == State.ESTABLISHED
        h.close()
    in_loop(scenario)


def test_every_case_over_tcp_keeps_the_session_and_its_keepalives(caplog):
    """A scripted router sends every malformed UPDATE twice; the session stays up, keepalives go on,
    a withdrawal still reaches the router, and each (approach, attribute) is logged once."""
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        sp = speaker_for(peer("127.0.0.1", fake.port, multiprotocol=True,
                              next_hop_6=ip.ip_address("fd00::2")))
        sp.start()
        conn = await fake.next()
        await conn.handshake(hold=3)                # keepalive every second
        s = sp.sessions[ip.ip_address("127.0.0.1")]
        await wait_for(lambda: s.state == State.ESTABLISHED)
        sp.set_vips([VipState("10.255.0.1", True, 1)])
        await conn.recv_type(header.UPDATE)
        established_at = s.established_at
        for _ in range(2):
            for _name, attrs, nlri, families, _approach, _what in CASES:
                if families is None:
                    conn.send(header.encode(header.UPDATE, body(attrs, nlri)))
            await asyncio.sleep(0.2)
        for _ in range(3):                          # keepalives keep coming for longer than the hold time
            assert (await conn.recv_type(header.KEEPALIVE, timeout=2))[0] == header.KEEPALIVE
            conn.send(keepalive.encode())
            await asyncio.sleep(0.4)
        assert s.state == State.ESTABLISHED and s.established_at == established_at
        sp.set_vips([VipState("10.255.0.1", False, 2)])
        t, u = await conn.recv_type(header.UPDATE)
        assert u.withdrawn == (ip.ip_network("10.255.0.1/32"),)
        sent = sum(1 for c in CASES if c[3] is None)
        assert s.counters["updates_in"] == 2 * sent
        assert s.counters["updates_malformed"] + s.counters["updates_ignored_family"] == 2 * sent
        assert s.counters["notifications_out"] == 0 and s.counters["established"] == 1
        await sp.shutdown()
        fake.close()
    with caplog.at_level(logging.WARNING, logger="vc5.bgpd"):
        run(main())
    logged = [r.getMessage() for r in caplog.records if "malformed COMMUNITIES" in r.getMessage()]
    assert sum("treat-as-withdraw" in m for m in logged) == 1       # 4 cases, sent twice: logged once
    assert sum("attribute discard" in m for m in logged) == 1
