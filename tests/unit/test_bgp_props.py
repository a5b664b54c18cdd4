"""Property tests (hypothesis) for check_open and for the session fed arbitrary bytes and messages.

`Harness` drives a real Session without TCP: a fake connection records what
the session writes, `feed()` hands it octets as the reader would
(Session.received). Properties: nothing raises; every NOTIFICATION sent has a
code/subcode of RFC 4271 §4.5 (0 "Unspecific" or a named subcode); after
sending one the connection is closed and nothing more is written on it; a
session that only gets what RFC 7606 handles without a reset stays
Established. Example counts add up to more than 20,000 with test_bgp_fuzz.py
(docs/bgp.md, "Tests").
"""

import asyncio
import ipaddress as ip
import logging

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vc5.bgpd import capabilities as caps
from vc5.bgpd import messages, policy
from vc5.bgpd.errors import OPEN_MESSAGE_ERROR, SUBCODE_NAMES, BgpError
from vc5.bgpd.fsm import Event, State
from vc5.bgpd.messages import header, keepalive, notification, route_refresh, update
from vc5.bgpd.messages import open as bgp_open
from vc5.bgpd.negotiation import MIN_HOLD, Local, check_open, our_capabilities
from vc5.bgpd.session import Session
from vc5.config.model import Peer

MARKER = b"\xff" * 16
LOCAL_ID = ip.IPv4Address("10.0.0.2")
PEER_ID = "10.0.0.1"
RIB = {ip.ip_network("10.255.0.1/32"), ip.ip_network("fd00::1/128")}


def examples(n):
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- harness

class FakeWriter:
    def __init__(self, peername=("127.0.0.1", 40000)):
        self.data = bytearray()
        self.closed = False
        self.after_close = 0
        self.peername = peername

    def write(self, raw):
        if self.closed:
            self.after_close += len(raw)
        self.data += raw

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    async def wait_closed(self):
        return None

    async def drain(self):
        return None

    def get_extra_info(self, name):
        return {"sockname": ("127.0.0.2", 179), "peername": self.peername}.get(name)


class FakeReader:
    async def read(self, n):
        await asyncio.Event().wait()        # never: Harness.feed() delivers the octets


class StubSpeaker:
    rib_ready = True

    def __init__(self):
        self.changes = []

    def adj_rib_out_for(self, session):
        return policy.adj_rib_out(RIB, session.peer, session.facts) if session.facts else {}

    def session_changed(self, session, old, new, reason):
        self.changes.append((old, new, reason))

    def adj_rib_out_changed(self, session):
        pass


class Harness:
    """A passive Session with one fake incoming connection; use inside a running event loop."""

    def __init__(self, hold=9, peer_as=None, multiprotocol=True):
        self.peer = Peer(address=ip.ip_address("127.0.0.1"), as_number=65001, peer_as=peer_as, hold_time=hold,
                         passive=True, multiprotocol=multiprotocol, next_hop_6=ip.ip_address("fd00::2"))
        self.speaker = StubSpeaker()
        self.session = Session(self.peer, Local(65001, LOCAL_ID), self.speaker)
        self.session.start()
        self.writers = []
        self.connect()

    def connect(self):
        self.writer = FakeWriter()
        self.writers.append(self.writer)
        self.session.incoming(FakeReader(), self.writer)

    def feed(self, raw):
        """Hand octets to the session as its reader would; False once the connection is finished."""
        conns = [c for c in (self.session.conn, self.session._candidate) if c is not None]
        conn = next((c for c in conns if c.writer is self.writer), None)
        if conn is None or self.writer.closed:
            return False
        return self.session.received(raw, conn.number) is not None

    def sent(self, writer=None):
        """The messages the session wrote on `writer` (the current one by default)."""
        msgs, rest = messages.decode_stream(bytes((writer or self.writer).data))
        assert rest == b""
        return msgs

    def handshake(self, hold=9, bgp_id=PEER_ID, asn=65000):
        c = caps.Capabilities(families=(caps.IPV4_UNICAST, caps.IPV6_UNICAST), route_refresh=True,
                              four_octet_as=asn)
        self.feed(bgp_open.encode(asn, hold, bgp_id, c) + keepalive.encode())
        assert self.session.state == State.ESTABLISHED, self.session.last_error

    def check_invariants(self):
        """Every NOTIFICATION valid and last on its connection, which is then closed."""
        for w in self.writers:
            msgs = self.sent(w)
            for i, (msg_type, msg) in enumerate(msgs):
                if msg_type == header.NOTIFICATION:
                    assert valid_error(msg.code, msg.subcode), msg
                    assert i == len(msgs) - 1, "a message after the NOTIFICATION"
                    assert w.closed
            assert w.after_close == 0
        assert self.session.state in State

    def close(self):
        self.session.cancel_all()
        if self.session.conn is not None:
            self.session.conn.close()


def valid_error(code, subcode) -> bool:
    """RFC 4271 §4.5: a known code; subcode 0 (Unspecific) or one defined for that code."""
    if code not in range(1, 8):
        return False
    return subcode == 0 or subcode in SUBCODE_NAMES.get(code, {})


LOOP = asyncio.new_event_loop()


@pytest.fixture(autouse=True, scope="module")
def quiet():
    """Thousands of sessions log every state change: keep them out of pytest's log capture (which
    would triple the run time); the properties are checked on what the session sends, not its log."""
    logger = logging.getLogger("vc5.bgpd")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def in_loop(fn):
    """Run fn() inside the event loop (the session schedules tasks and timers), then clean up."""
    async def main():
        return fn()
    try:
        return LOOP.run_until_complete(main())
    finally:
        pending = [t for t in asyncio.all_tasks(LOOP) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            LOOP.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


# ---------------------------------------------------------------- check_open

@st.composite
def peers(draw):
    address = ip.ip_address("fd00::1" if draw(st.booleans()) else "192.0.2.1")
    peer_as = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
    return Peer(address=address, as_number=65001, peer_as=peer_as, hold_time=draw(st.integers(3, 65535)),
                multiprotocol=draw(st.booleans()))


def open_strategy():
    families = st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 255)), max_size=4, unique=True)
    capabilities = st.builds(caps.Capabilities, families=families.map(tuple), route_refresh=st.booleans(),
                             four_octet_as=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
    return st.builds(bgp_open.Open, version=st.just(4), my_as=st.integers(0, 65535),
                     hold_time=st.integers(0, 65535), bgp_id=st.integers(0, 2**32 - 1).map(ip.IPv4Address),
                     capabilities=capabilities)


@examples(4000)
@given(open_strategy(), peers(), st.integers(1, 2**32 - 1).map(ip.IPv4Address))
def test_check_open_negotiates_or_refuses_with_an_open_error(msg, peer, router_id):
    local = Local(65001, router_id)
    ours = our_capabilities(peer, local)
    try:
        neg = check_open(msg, peer, local, ours)
    except BgpError as e:
        assert e.code == OPEN_MESSAGE_ERROR and e.subcode in (2, 3, 6), e
        if e.subcode == 2:
            assert peer.peer_as is not None and msg.asn != peer.peer_as
        elif e.subcode == 3:
            assert int(msg.bgp_id) == 0 or msg.bgp_id == router_id
        else:
            assert msg.hold_time < MIN_HOLD
        return
    assert peer.peer_as in (None, msg.asn)
    assert int(msg.bgp_id) not in (0, int(router_id)) and msg.hold_time >= MIN_HOLD
    assert neg.hold_time == min(peer.hold_time, msg.hold_time) >= MIN_HOLD
    assert neg.keepalive == neg.hold_time / 3
    assert set(neg.families) <= set(ours.families) and neg.remote_id == msg.bgp_id
    assert neg.four_octet == (msg.capabilities.four_octet_as is not None)


@examples(3000)
@given(st.binary(min_size=10, max_size=80), peers())
def test_open_bytes_then_check_open_raise_only_valid_open_errors(body, peer):
    local = Local(65001, LOCAL_ID)
    raw = bytes([4]) + body[1:]         # version 4 mostly, so that decoding goes further
    for candidate in (body, raw):
        try:
            check_open(bgp_open.decode(candidate), peer, local, our_capabilities(peer, local))
        except BgpError as e:
            assert e.code == OPEN_MESSAGE_ERROR and valid_error(e.code, e.subcode), e


# ---------------------------------------------------------------- the session fed bytes

@st.composite
def framed_messages(draw):
    """Valid header, random type and body: reaches each decoder through the session."""
    body = draw(st.binary(max_size=120))
    msg_type = draw(st.sampled_from([1, 2, 3, 4, 5]))
    return MARKER + (len(body) + 19).to_bytes(2, "big") + bytes([msg_type]) + body


@examples(2500)
@given(st.lists(st.one_of(st.binary(max_size=64), framed_messages()), max_size=6), st.booleans())
def test_session_fed_arbitrary_bytes(chunks, established):
    def scenario():
        h = Harness()
        if established:
            h.handshake()
        for chunk in chunks:
            if not h.feed(chunk):
                break
            h.check_invariants()
        h.check_invariants()
        if h.session.conn is None:
            assert h.session.state in (State.IDLE, State.ACTIVE)
        h.close()
    in_loop(scenario)


def _update(attrs, nlri=b""):
    return header.encode(header.UPDATE, b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + nlri)


GOOD = bytes([0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 0, 1])     # ORIGIN, AS_PATH, NEXT_HOP
NLRI = bytes([24, 10, 9, 0])                                             # 10.9.0.0/24
SOFT_FIXED = [keepalive.encode(), route_refresh.encode(1, 1), update.end_of_rib()]


@st.composite
def soft_updates(draw):
    """One message that RFC 7606 handles without a session reset (test_bgp_rfc7606.py has the table):
    COMMUNITIES, LARGE_COMMUNITY, AGGREGATOR or MED of any length, MP_REACH_NLRI of a family not
    negotiated, or a KEEPALIVE, ROUTE-REFRESH, End-of-RIB."""
    kind = draw(st.integers(0, 5))
    value = draw(st.binary(max_size=30))
    if kind < 4:
        flags, code = [(0xc0, 8), (0xc0, 32), (0xc0, 7), (0x80, 4)][kind]
        return _update(GOOD + bytes([flags, code, len(value)]) + value, NLRI)
    if kind == 4:
        family = draw(st.integers(3, 65535)).to_bytes(2, "big") + bytes([draw(st.integers(0, 255))])
        return _update(bytes([0x90, 14]) + (len(value) + 3).to_bytes(2, "big") + family + value)
    return draw(st.sampled_from(SOFT_FIXED))


OPEN_IDS = [PEER_ID, "0.0.0.0", str(LOCAL_ID), "10.0.0.9"]


@st.composite
def any_message(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(soft_updates())
    if kind == 1:
        c = caps.Capabilities(families=(caps.IPV4_UNICAST,), four_octet_as=65000)
        return bgp_open.encode(65000, draw(st.integers(0, 20)), draw(st.sampled_from(OPEN_IDS)), c)
    if kind == 2:
        return notification.encode(draw(st.integers(0, 255)), draw(st.integers(0, 255)))
    return draw(framed_messages())


@examples(2000)
@given(st.lists(soft_updates(), min_size=1, max_size=8))
def test_established_session_survives_what_rfc7606_does_not_reset(msgs):
    def scenario():
        h = Harness()
        h.handshake()
        for raw in msgs:
            assert h.feed(raw)
            assert h.session.state == State.ESTABLISHED, h.session.last_error
        h.check_invariants()
        assert not any(t == header.NOTIFICATION for t, _ in h.sent())
        h.close()
    in_loop(scenario)


EVENTS = [Event.HOLD_TIMER_EXPIRES, Event.KEEPALIVE_TIMER_EXPIRES, Event.RIB_CHANGED, Event.TCP_FAILS,
          Event.CONNECT_RETRY_EXPIRES]


@examples(3000)
@given(st.lists(st.one_of(any_message(), st.sampled_from(EVENTS), st.just("reconnect")), max_size=10))
def test_session_fed_message_sequences_and_events(steps):
    def scenario():
        h = Harness()
        for item in steps:
            if item == "reconnect":
                h.connect()
            elif isinstance(item, Event):
                conn = h.session.conn
                data = "closed" if item == Event.TCP_FAILS else None
                h.session.post(item, data, conn.number if conn is not None else None)
            else:
                h.feed(item)
            h.check_invariants()
        h.close()
    in_loop(scenario)
