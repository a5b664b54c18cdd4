"""The tie between BFD and BGP in the speaker (RFC 5882): which BFD changes close the BGP session,
and which reloads restart BFD. The BFD sessions themselves are a recording fake here."""

import asyncio
import dataclasses
import ipaddress

from vc5.bgpd import speaker as speaker_mod
from vc5.bgpd.bfd.packet import ADMIN_DOWN, DIAG_NEIGHBOR_DOWN, DIAG_TIME_EXPIRED, DOWN, INIT, UP
from vc5.bgpd.bfd.session import Transition
from vc5.config.model import BfdParams, Bgp, Peer

ADDR = ipaddress.ip_address("10.0.0.1")


class FakeBfd:
    def __init__(self):
        self.calls = []

    def add(self, peer):
        self.calls.append(("add", peer.address, peer.bfd))

    def remove(self, address, admin_down=True):
        self.calls.append(("remove", address))

    def close(self):
        self.calls.append(("close",))

    def status(self):
        return []


class StubSession:
    def __init__(self, connected=True):
        self.conn = object() if connected else None
        self.stops = []

    def stop(self, subcode, reason="", restart=False):
        self.stops.append((subcode, reason, restart))


def bgp(**peer):
    p = Peer(address=ADDR, as_number=65001, passive=True, **peer)
    return Bgp(as_number=65001, router_id=ipaddress.IPv4Address("10.0.0.2"), peers=(p,))


def speaker_with(session):
    sp = speaker_mod.Speaker(bgp(bfd=BfdParams()))
    sp.bfd = FakeBfd()
    sp.sessions[ADDR] = session
    return sp


def test_bfd_failure_closes_the_bgp_session_with_cease_bfd_down():
    s = StubSession()
    speaker_with(s)._bfd_changed(ADDR, Transition(UP, DOWN, DIAG_TIME_EXPIRED), "Down")
    assert s.stops == [(10, "", True)]          # RFC 9384 Cease/BFD Down, then reconnect


def test_router_says_down_closes_it_too():
    s = StubSession()
    speaker_with(s)._bfd_changed(ADDR, Transition(UP, DOWN, DIAG_NEIGHBOR_DOWN), "Down")
    assert len(s.stops) == 1


def test_what_is_not_a_failure_closes_nothing():
    s = StubSession()
    sp = speaker_with(s)
    sp._bfd_changed(ADDR, Transition(UP, DOWN, DIAG_NEIGHBOR_DOWN), "AdminDown")   # RFC 5882 §3.2
    sp._bfd_changed(ADDR, Transition(DOWN, INIT, 0), "Down")
    sp._bfd_changed(ADDR, Transition(INIT, UP, 0), "Up")
    sp._bfd_changed(ADDR, Transition(UP, ADMIN_DOWN, 7), "Up")                    # our own stop
    sp._bfd_changed(ADDR, Transition(INIT, DOWN, DIAG_TIME_EXPIRED), "Down")      # never was Up
    assert s.stops == []


def test_no_connection_or_shutting_down_closes_nothing():
    s = StubSession(connected=False)
    speaker_with(s)._bfd_changed(ADDR, Transition(UP, DOWN, DIAG_TIME_EXPIRED), "Down")
    assert s.stops == []
    s = StubSession()
    sp = speaker_with(s)
    sp.shutting_down = True
    sp._bfd_changed(ADDR, Transition(UP, DOWN, DIAG_TIME_EXPIRED), "Down")
    assert s.stops == []


def test_reload_restarts_bfd_only_when_its_settings_change():
    async def run():
        first = bgp(bfd=BfdParams())
        sp = speaker_mod.Speaker(first)
        sp.bfd = fake = FakeBfd()
        sp.start()
        assert fake.calls == [("add", ADDR, BfdParams())]
        sp.reconfigure(dataclasses.replace(first, peers=(dataclasses.replace(first.peers[0], med=5),)))
        assert len(fake.calls) == 1                        # an attribute change: BFD untouched
        sp.reconfigure(bgp(bfd=BfdParams(100, 4)))
        assert fake.calls[1:] == [("remove", ADDR), ("add", ADDR, BfdParams(100, 4))]
        sp.reconfigure(bgp())                              # bfd removed
        assert fake.calls[3:] == [("remove", ADDR)]
        sp.reconfigure(Bgp(as_number=65001, router_id=ipaddress.IPv4Address("10.0.0.2")))
        assert fake.calls[4:] == [("remove", ADDR)]        # peer removed
        for s in sp.sessions.values():
            s.cancel_all()
    asyncio.run(run())


def test_bfd_sessions_are_shown_with_their_peers():
    """vc5ctl bgp and /status.json (our extension key `bfd`, only for peers with BFD)."""
    from vc5.client import status as render_status
    from vc5.client.snapshot import BgpView, bfd_words
    from vc5.common import wire

    up = wire.BfdState("10.0.0.1", state="Up", remote_state="Up", detection_time_ms=600)
    down = wire.BfdState("10.0.0.2", state="Down", diagnostic="Control Detection Time Expired")
    assert bfd_words(up) == "Up, detects failure in 600 ms"
    assert bfd_words(down) == "Down (Control Detection Time Expired)"
    peers = [wire.PeerState(a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")]
    view = BgpView.from_wire(peers, (), [up, down])
    assert [p.bfd for p in view.peers] == [bfd_words(up), bfd_words(down), ""]

    class Snap:
        bgp = view

        @staticmethod
        def seconds_since(_):
            return 0
    docs = [render_status.peer(Snap, p) for p in view.peers]
    assert docs[0]["bfd"] == bfd_words(up) and "bfd" not in docs[2]
