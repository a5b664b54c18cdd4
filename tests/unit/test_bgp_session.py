"""Sessions over loopback TCP against a scripted peer: negotiation, errors, isolation between peers.

The scripted peer uses vc5-bgpd's own codecs; interoperability with real
implementations is in tests/integration/bgp (BIRD, GoBGP).
"""

import asyncio
import ipaddress as ip
import time

import pytest

from vc5.bgpd import capabilities as caps
from vc5.bgpd.fsm import State
from vc5.bgpd.messages import header, keepalive, notification, route_refresh, update
from vc5.bgpd.messages import open as bgp_open
from vc5.bgpd.negotiation import Local, check_open, our_capabilities
from vc5.bgpd.speaker import Speaker
from vc5.common.wire import PEER_COUNTERS, PeerState, PeerStateChange, VipState
from vc5.config.model import Bgp, Peer

MARKER = b"\xff" * 16
VIP = "10.255.0.1"


class ScriptedPeer:
    """A TCP server standing in for a router; one connection at a time."""

    def __init__(self):
        self.connections = asyncio.Queue()

    async def start(self, host):
        self.server = await asyncio.start_server(self._accept, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader, writer):
        await self.connections.put(Conn(reader, writer))

    async def next(self, timeout=5):
        return await asyncio.wait_for(self.connections.get(), timeout)

    def close(self):
        self.server.close()


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.buf = reader, writer, b""

    async def recv(self, timeout=5):
        """(type, decoded message); None at EOF."""
        while True:
            framed = header.frame(self.buf)
            if framed is not None:
                msg_type, body, self.buf = framed
                if msg_type == header.UPDATE:
                    return msg_type, update.decode(body)
                if msg_type == header.OPEN:
                    return msg_type, bgp_open.decode(body)
                if msg_type == header.NOTIFICATION:
                    return msg_type, notification.decode(body)
                return msg_type, body
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.buf += data

    async def recv_type(self, wanted, timeout=5):
        while True:
            got = await self.recv(timeout)
            if got is None or got[0] == wanted:
                return got

    def send(self, raw):
        self.writer.write(raw)

    async def handshake(self, hold=9, asn=65000, bgp_id="10.0.0.1", four=True):
        msg_type, their_open = await self.recv()
        assert msg_type == header.OPEN
        c = caps.Capabilities(families=(caps.IPV4_UNICAST,), route_refresh=True,
                              four_octet_as=asn if four else None)
        self.send(bgp_open.encode(asn, hold, bgp_id, c) + keepalive.encode())
        assert (await self.recv_type(header.KEEPALIVE))[0] == header.KEEPALIVE
        return their_open


def peer(address, port, **kw):
    kw.setdefault("as_number", 65001)
    kw.setdefault("hold_time", 6)
    return Peer(address=ip.ip_address(address), port=port, **kw)


def speaker_for(*peers):
    bgp = Bgp(as_number=65001, router_id=ip.IPv4Address("10.0.0.2"), peers=tuple(peers))
    return Speaker(bgp, hold_down=0, retry_min=0.2, retry_max=0.5, learn=0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def wait_for(predicate, timeout=5):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- pure checks

def _open(hold=9, asn=65000, bgp_id="10.0.0.1"):
    return bgp_open.Open(4, asn, hold, ip.IPv4Address(bgp_id), caps.Capabilities(four_octet_as=asn))


def test_check_open_negotiates_min_hold_and_keepalive():
    p = peer("10.0.0.1", 179, hold_time=6)
    local = Local(65001, ip.IPv4Address("10.0.0.2"))
    neg = check_open(_open(hold=9), p, local, our_capabilities(p, local))
    assert (neg.hold_time, neg.keepalive, neg.four_octet) == (6, 2, True)
    neg = check_open(_open(hold=3), p, local, our_capabilities(p, local))
    assert (neg.hold_time, neg.keepalive) == (3, 1)


@pytest.mark.parametrize("kw,code", [(dict(hold=2), (2, 6)), (dict(hold=0), (2, 6)),
                                     (dict(bgp_id="10.0.0.2"), (2, 3)), (dict(bgp_id="0.0.0.0"), (2, 3)),
                                     (dict(asn=65099), (2, 2))])
def test_check_open_refusals(kw, code):
    from vc5.bgpd.errors import BgpError
    p = peer("10.0.0.1", 179, peer_as=65000)
    local = Local(65001, ip.IPv4Address("10.0.0.2"))
    with pytest.raises(BgpError) as e:
        check_open(_open(**kw), p, local, our_capabilities(p, local))
    assert (e.value.code, e.value.subcode) == code


def test_as_trans_in_open_for_large_asn():
    p = peer("10.0.0.1", 179, as_number=4200000001)
    c = our_capabilities(p, Local(4200000001, ip.IPv4Address("10.0.0.2")))
    assert c.four_octet_as == 4200000001


# ---------------------------------------------------------------- over TCP

def test_established_advertises_and_negotiates_hold():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        sp = speaker_for(peer("127.0.0.1", fake.port))
        sp.start()
        conn = await fake.next()
        their_open = await conn.handshake(hold=9)
        assert their_open.hold_time == 6 and their_open.asn == 65001
        s = sp.sessions[ip.ip_address("127.0.0.1")]
        await wait_for(lambda: s.state == State.ESTABLISHED)
        assert s.negotiated.hold_time == 6 and s.negotiated.keepalive == 2
        sp.set_vips([VipState(VIP, True, 1)])
        t, u = await conn.recv_type(header.UPDATE)
        assert u.nlri == (ip.ip_network(VIP + "/32"),)
        assert u.attributes.as_path == ((2, (65001,)),)
        sp.set_vips([VipState(VIP, False, 2)])
        t, u = await conn.recv_type(header.UPDATE)
        assert u.withdrawn == (ip.ip_network(VIP + "/32"),)
        # ROUTE-REFRESH is answered from the Adj-RIB-Out
        sp.set_vips([VipState(VIP, True, 3)])
        await conn.recv_type(header.UPDATE)
        conn.send(route_refresh.encode(1, 1))
        t, u = await conn.recv_type(header.UPDATE)
        assert u.nlri == (ip.ip_network(VIP + "/32"),)
        await sp.shutdown("bye")
        t, n = await conn.recv_type(header.NOTIFICATION)
        assert (n.code, n.subcode, n.shutdown_communication) == (6, 2, "bye")
        fake.close()
    run(main())


def test_peer_status_is_typed_and_state_changes_are_wire_structs():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        sp = speaker_for(peer("127.0.0.1", fake.port, group="routers"))
        events = []
        sp.listeners.append(lambda kind, *args: events.append((kind, args)))
        sp.start()
        conn = await fake.next()
        await conn.handshake(hold=9, asn=65000, bgp_id="10.0.0.1")
        s = sp.sessions[ip.ip_address("127.0.0.1")]
        await wait_for(lambda: s.state == State.ESTABLISHED)
        sp.set_vips([VipState(VIP, True, 1)])
        await conn.recv_type(header.UPDATE)
        [st] = sp.peer_status()
        assert isinstance(st, PeerState)
        assert (st.address, st.group, st.state, st.hold_time, st.keepalive_s) == (
            "127.0.0.1", "routers", "Established", 6, 2)
        assert (st.local_asn, st.remote_asn, st.remote_id, st.local_address) == (
            65001, 65000, "10.0.0.1", "127.0.0.1")
        assert st.advertised_prefixes == (VIP + "/32",) and st.families == ("ipv4-unicast",)
        assert tuple(st.counters)[:len(PEER_COUNTERS)] == PEER_COUNTERS and st.counter("established") == 1
        assert st.counter("updates_malformed") == 0 and "updates_ignored_family" in st.counters
        assert st.established_at > 0 and PeerState.from_dbus(st.to_dbus()) == st
        changes = [args[0] for kind, args in events if kind == "peer_state"]
        assert all(isinstance(c, PeerStateChange) for c in changes)
        assert changes[-1] == PeerStateChange("127.0.0.1", "OpenConfirm", "Established", "")
        await sp.shutdown("bye")
        fake.close()
    run(main())


def test_hold_time_below_three_gets_notification():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        sp = speaker_for(peer("127.0.0.1", fake.port))
        sp.start()
        conn = await fake.next()
        await conn.recv()
        conn.send(bgp_open.encode(65000, 2, "10.0.0.1", caps.Capabilities()))
        t, n = await conn.recv_type(header.NOTIFICATION)
        assert (n.code, n.subcode) == (2, 6)
        s = sp.sessions[ip.ip_address("127.0.0.1")]
        assert "Unacceptable Hold Time" in s.last_error
        await sp.shutdown()
        fake.close()
    run(main())


@pytest.mark.parametrize("garbage,code", [
    (b"\x00" * 16 + bytes([0, 19, 4]), (1, 1)),
    (MARKER + bytes([0, 19, 77]), (1, 3)),
    (MARKER + bytes([0, 27, 2, 0, 0, 0, 0, 33, 10, 9, 0]), (3, 10)),      # NLRI prefix length 33
    (bgp_open.encode(65000, 9, "10.0.0.1", caps.Capabilities()), (5, 3)),     # OPEN when Established
])
def test_malformed_message_resets_only_that_peer(garbage, code):
    async def main():
        fa = await ScriptedPeer().start("127.0.0.1")
        fb = await ScriptedPeer().start("127.0.0.2")
        sp = speaker_for(peer("127.0.0.1", fa.port), peer("127.0.0.2", fb.port))
        sp.start()
        ca, cb = await fa.next(), await fb.next()
        await ca.handshake(bgp_id="10.0.0.1")
        await cb.handshake(bgp_id="10.0.0.3")
        sa, sb = sp.sessions[ip.ip_address("127.0.0.1")], sp.sessions[ip.ip_address("127.0.0.2")]
        await wait_for(lambda: sa.state == sb.state == State.ESTABLISHED)
        sp.set_vips([VipState(VIP, True, 1)])
        await ca.recv_type(header.UPDATE)
        await cb.recv_type(header.UPDATE)
        ca.send(garbage)
        t, n = await ca.recv_type(header.NOTIFICATION)
        assert (n.code, n.subcode) == code
        assert await ca.recv() is None                         # connection closed
        assert sb.state == State.ESTABLISHED
        sp.set_vips([VipState(VIP, False, 2)])
        t, u = await cb.recv_type(header.UPDATE)               # B unaffected: gets the withdrawal
        assert u.withdrawn == (ip.ip_network(VIP + "/32"),)
        ca2 = await fa.next()                                  # A reconnects after the back-off
        await ca2.handshake(bgp_id="10.0.0.1")
        await wait_for(lambda: sa.state == State.ESTABLISHED)
        assert sa.counters["connection_attempts"] == 2 and sa.counters["established"] == 2
        await sp.shutdown()
        fa.close()
        fb.close()
    run(main())


def test_keepalive_in_open_sent_is_fsm_error():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        sp = speaker_for(peer("127.0.0.1", fake.port))
        sp.start()
        conn = await fake.next()
        await conn.recv()
        conn.send(keepalive.encode())
        t, n = await conn.recv_type(header.NOTIFICATION)
        assert (n.code, n.subcode) == (5, 1)
        await sp.shutdown()
        fake.close()
    run(main())


def test_reconfigure_med_readvertises_without_reset_and_removed_peer_gets_cease():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        p = peer("127.0.0.1", fake.port, med=5)
        sp = speaker_for(p)
        sp.start()
        conn = await fake.next()
        await conn.handshake()
        sp.set_vips([VipState(VIP, True, 1)])
        t, u = await conn.recv_type(header.UPDATE)
        assert u.attributes.med == 5
        bgp = sp.bgp
        sp.reconfigure(Bgp(as_number=65001, router_id=bgp.router_id,
                           peers=(peer("127.0.0.1", fake.port, med=9),)))
        t, u = await conn.recv_type(header.UPDATE)
        assert u.attributes.med == 9 and u.nlri == (ip.ip_network(VIP + "/32"),)
        s = sp.sessions[ip.ip_address("127.0.0.1")]
        assert s.counters["established"] == 1
        sp.reconfigure(Bgp(as_number=65001, router_id=bgp.router_id, peers=()))
        t, n = await conn.recv_type(header.NOTIFICATION)
        assert (n.code, n.subcode) == (6, 3)
        await sp.shutdown()
        fake.close()
    run(main())


def test_keepalives_every_third_of_hold_and_hold_expiry_notification():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        sp = speaker_for(peer("127.0.0.1", fake.port, hold_time=3))
        sp.start()
        conn = await fake.next()
        await conn.handshake(hold=90)                   # negotiated: min(3, 90) = 3, keepalive 1 s
        loop = asyncio.get_running_loop()
        start = loop.time()
        keepalives = 0
        while True:                                     # we stay silent: our hold timer must expire
            got = await conn.recv(timeout=10)
            if got[0] == header.KEEPALIVE:
                keepalives += 1
            elif got[0] == header.NOTIFICATION:
                break
        assert (got[1].code, got[1].subcode) == (4, 0)
        assert keepalives >= 2
        assert loop.time() - start >= 2.5
        s = sp.sessions[ip.ip_address("127.0.0.1")]
        await wait_for(lambda: s.state != State.ESTABLISHED)
        assert "hold timer expired" in s.last_error
        await sp.shutdown()
        fake.close()
    run(main())


def test_hold_down_delays_advertisement_but_not_withdrawal():
    async def main():
        fake = await ScriptedPeer().start("127.0.0.1")
        bgp = Bgp(as_number=65001, router_id=ip.IPv4Address("10.0.0.2"),
                  peers=(peer("127.0.0.1", fake.port),))
        sp = Speaker(bgp, hold_down=0.8, retry_min=0.2, learn=0)
        sp.start()
        conn = await fake.next()
        await conn.handshake()
        up_at = time.time()
        sp.set_vips([VipState(VIP, True, int(up_at * 1e6))])
        assert sp.advertised() == []
        t, u = await conn.recv_type(header.UPDATE)
        assert time.time() - up_at > 0.8                     # more than the hold-down, as vc5
        assert u.nlri == (ip.ip_network(VIP + "/32"),)
        sp.set_vips([VipState(VIP, False, int(time.time() * 1e6))])
        assert sp.advertised() == []                         # out of the RIB at once, no timer involved
        t, u = await conn.recv_type(header.UPDATE)
        assert u.withdrawn == (ip.ip_network(VIP + "/32"),)
        await sp.shutdown()
        fake.close()
    run(main())


def test_reset_of_a_configured_peer_before_its_session_starts_is_not_an_error():
    sp = speaker_for(peer("127.0.0.1", 1790))
    sp.reset_peer("127.0.0.1")            # bgpd owns its bus name before start(): nothing to reset yet
    with pytest.raises(KeyError):
        sp.reset_peer("127.0.0.2")        # not configured: org.vc5.Bgp1.Error.NotFound
