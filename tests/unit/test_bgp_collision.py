"""RFC 4271 §6.8 connection collisions, over loopback TCP, both ways.

bgpd (router ID 10.0.0.2) connects to a scripted peer at 127.0.0.1 and
listens on 127.0.0.3; the scripted peer also connects to bgpd from
127.0.0.1. Whichever connection the speaker with the higher BGP Identifier
opened is kept, the other gets NOTIFICATION Cease / Connection Collision
Resolution (6/7); an Established session wins over a new connection.
"""

import asyncio
import ipaddress as ip

import pytest

from vc5.bgpd import capabilities as caps
from vc5.bgpd.fsm import State
from vc5.bgpd.messages import header, keepalive, notification
from vc5.bgpd.messages import open as bgp_open
from vc5.bgpd.negotiation import collision_keeps_new
from vc5.bgpd.speaker import bind_listener
from vc5.common.wire import VipState

from .test_bgp_session import Conn, ScriptedPeer, peer, run, speaker_for, wait_for

LOWER, HIGHER = "10.0.0.1", "10.0.0.9"         # the peer's identifier, below / above ours (10.0.0.2)
COLLISION = (6, 7)


def test_identifiers_compare_as_unsigned_32_bit():
    # 200.0.0.1 is negative as a signed 32-bit integer; unsigned it is the higher one
    assert collision_keeps_new("200.0.0.1", "10.0.0.1", existing_outgoing=True, new_outgoing=False) is False
    assert collision_keeps_new("10.0.0.1", "200.0.0.1", existing_outgoing=True, new_outgoing=False) is True
    assert collision_keeps_new("10.0.0.1", "200.0.0.1", existing_outgoing=False, new_outgoing=True) is False
    assert collision_keeps_new("10.0.0.1", "200.0.0.1", existing_outgoing=False, new_outgoing=False) is True


def open_msg(bgp_id, hold=9):
    c = caps.Capabilities(families=(caps.IPV4_UNICAST,), route_refresh=True, four_octet_as=65000)
    return bgp_open.encode(65000, hold, bgp_id, c)


async def collide():
    """(speaker, session, scripted peer, our outgoing connection as the peer sees it, the peer's
    connection to us); both connections have bgpd's OPEN, bgpd is in OpenSent on the first."""
    fake = await ScriptedPeer().start("127.0.0.1")
    listener = bind_listener("127.0.0.3", 0)
    sp = speaker_for(peer("127.0.0.1", fake.port))
    sp.start()
    await sp.serve([listener])
    out = await fake.next()
    assert (await out.recv())[0] == header.OPEN
    s = sp.sessions[ip.ip_address("127.0.0.1")]
    assert s.state == State.OPEN_SENT
    reader, writer = await asyncio.open_connection("127.0.0.3", listener.getsockname()[1],
                                                   local_addr=("127.0.0.1", 0))
    inc = Conn(reader, writer)
    assert (await inc.recv())[0] == header.OPEN          # bgpd answers the second connection with OPEN
    return sp, s, fake, out, inc


async def closed_with_collision(conn):
    t, n = await conn.recv_type(header.NOTIFICATION)
    assert (n.code, n.subcode) == COLLISION
    assert await conn.recv() is None


async def finish(sp, s, fake, kept):
    """The kept connection comes up and carries UPDATEs."""
    await wait_for(lambda: s.state == State.ESTABLISHED)
    sp.set_vips([VipState("10.255.0.1", True, 1)])
    t, u = await kept.recv_type(header.UPDATE)
    assert u.nlri == (ip.ip_network("10.255.0.1/32"),)
    assert s.counters["established"] == 1
    await sp.shutdown()
    fake.close()


@pytest.mark.parametrize("first", ["on-new", "on-existing"])
def test_our_identifier_higher_keeps_our_connection(first):
    async def main():
        sp, s, fake, out, inc = await collide()
        if first == "on-new":
            inc.send(open_msg(LOWER))
            await closed_with_collision(inc)
            out.send(open_msg(LOWER) + keepalive.encode())
        else:
            out.send(open_msg(LOWER))
            await closed_with_collision(inc)
            out.send(keepalive.encode())
        assert s.conn.outgoing
        await finish(sp, s, fake, out)
    run(main())


@pytest.mark.parametrize("first", ["on-new", "on-existing"])
def test_our_identifier_lower_keeps_the_peers_connection(first):
    async def main():
        sp, s, fake, out, inc = await collide()
        if first == "on-new":
            inc.send(open_msg(HIGHER))
            await closed_with_collision(out)
            assert (await inc.recv_type(header.KEEPALIVE))[0] == header.KEEPALIVE   # OpenConfirm on it
            inc.send(keepalive.encode())
        else:
            out.send(open_msg(HIGHER))
            await closed_with_collision(out)
            inc.send(open_msg(HIGHER) + keepalive.encode())
        await wait_for(lambda: s.state == State.ESTABLISHED)
        assert not s.conn.outgoing
        await finish(sp, s, fake, inc)
    run(main())


def test_peer_resolves_first_and_closes_ours():
    """The peer (higher identifier) sends 6/7 on our connection before any OPEN: bgpd goes on with
    the peer's connection instead of restarting."""
    async def main():
        sp, s, fake, out, inc = await collide()
        out.send(notification.encode(*COLLISION))
        await wait_for(lambda: s._candidate is None)
        assert s.state == State.OPEN_SENT and not s.conn.outgoing
        inc.send(open_msg(HIGHER) + keepalive.encode())
        await finish(sp, s, fake, inc)
    run(main())


def test_established_session_wins_over_a_new_connection():
    async def main():
        sp, s, fake, out, inc = await collide()
        out.send(open_msg(HIGHER))
        await closed_with_collision(out)                 # lost to the peer's connection (higher id)
        inc.send(open_msg(HIGHER) + keepalive.encode())
        await wait_for(lambda: s.state == State.ESTABLISHED)
        reader, writer = await asyncio.open_connection("127.0.0.3", sp.servers[0].sockets[0].getsockname()[1],
                                                       local_addr=("127.0.0.1", 0))
        third = Conn(reader, writer)
        await closed_with_collision(third)               # RFC 4271 §6.8: Established wins
        assert s.state == State.ESTABLISHED and s.counters["established"] == 1
        await finish(sp, s, fake, inc)
    run(main())
