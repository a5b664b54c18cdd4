"""One BGP session: the FSM's actions, timers and messages (RFC 4271 §8).

TCP itself (the active open, the connection object) is in transport.py; what
the two OPENs agree is in negotiation.py; docs/bgp.md, "Sessions", is the
operator's view.

All work happens on the asyncio event loop. Events (timers, TCP, received
messages, RIB changes) go through `post()`, which runs them one at a time
through fsm.step() and carries out the actions in order. Each TCP connection
has a number; events from an earlier connection are ignored, so a late timer
or reader can never touch the current one. An error on this session closes
this session only: other peers are separate Session objects.

A received UPDATE with a malformed attribute is handled as RFC 7606 says
(treat-as-withdraw, attribute discard: counted, logged, the session stays up);
a second connection from the peer while one is in OpenSent/OpenConfirm is a
collision, resolved by BGP Identifier (RFC 4271 §6.8, `_candidate`).
"""

import asyncio
import collections
import logging
import random
import time

from vc5.common import log as vlog
from vc5.common import wire

from . import messages, policy, transport
from .errors import (ADMINISTRATIVE_SHUTDOWN, CEASE, CONNECTION_COLLISION_RESOLUTION, FSM_ERROR,
                     HOLD_TIMER_EXPIRED, BgpError)
from .transport import LARGE_HOLD, Collisions
from .fsm import FSM_ERROR_SUBCODE, Event, State, step
from .messages import header, keepalive, notification, update
from .messages import open as bgp_open
from .negotiation import Local, check_open, our_capabilities

log = logging.getLogger("vc5.bgpd.session")


class Counters(collections.Counter):
    """Per-session counters, published as PeerState.counters (an a{st}: wire.PEER_COUNTERS and more).

    updates_malformed: UPDATEs with an RFC 7606 treat-as-withdraw or attribute discard;
    updates_ignored_family: UPDATEs with MP_REACH/MP_UNREACH_NLRI of a family not negotiated."""

    NAMES = wire.PEER_COUNTERS + ("updates_malformed", "updates_ignored_family")

    def as_dict(self):
        return {k: int(self[k]) for k in self.NAMES}


class Session(Collisions):
    """A BGP session with one configured peer."""

    def __init__(self, peer, local: Local, speaker, retry_min=1.0, retry_max=30.0):
        self.peer = peer
        self.local = local
        self.speaker = speaker            # .adj_rib_out_for(session) and .session_changed(session, ...)
        self.retry_min, self.retry_max = retry_min, retry_max
        self.retry_delay = retry_min
        self.state = State.IDLE
        self.since = time.time()
        self.established_at = 0.0
        self.counters = Counters()
        self.last_error = ""
        self.negotiated = None
        self.facts = None
        self.adj_rib_out = {}             # prefix -> PathAttributes as sent (RFC 4271 Adj-RIB-Out)
        self.conn = None
        self._conn_number = 0
        self._connect_task = None
        self._timers = {}
        self._events = collections.deque()
        self._running = False
        self._stopped = False             # administratively stopped: no more retries
        self._stop_notification = (CEASE, ADMINISTRATIVE_SHUTDOWN, b"")
        self._ours = our_capabilities(peer, local)
        self._closed = asyncio.Event()
        self._last_writer = None
        self._eor_pending = False         # RFC 4724: End-of-RIB still to send after the initial update
        self._candidate = None            # RFC 4271 §6.8: the peer's second connection, until resolved
        self._logged = set()              # RFC 7606 errors already logged for this peer (once each)

    # ------------------------------------------------------------ public

    @property
    def address(self):
        return self.peer.address

    def start(self):
        self._stopped = False
        self.post(Event.START_PASSIVE if self.peer.passive else Event.START)

    def stop(self, subcode=ADMINISTRATIVE_SHUTDOWN, reason="", restart=False):
        """Close with NOTIFICATION Cease/`subcode` (RFC 9003 reason); restart later if `restart`."""
        self._stop_notification = (CEASE, subcode, notification.shutdown_data(reason) if reason else b"")
        self._stopped = not restart
        self.post(Event.STOP)
        if restart:
            self._start_timer("retry", self.retry_min, self._retry_expired)

    def rib_changed(self):
        self.post(Event.RIB_CHANGED)

    def reconfigure(self, peer):
        """New attributes/filters apply at once (a RIB re-sync); session parameters at the next connection."""
        self.peer = peer
        self._ours = our_capabilities(peer, self.local)
        self.post(Event.RIB_CHANGED)

    def incoming(self, reader, writer):
        """A connection accepted on the listening socket from this peer's address."""
        if self._stopped:
            writer.close()
            return
        if self._collision_incoming(reader, writer):
            return
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        if self.state == State.IDLE:
            self._cancel_timer("retry")
            self.post(Event.START_PASSIVE)
        self.post(Event.TCP_CONNECTED, self._new_connection(reader, writer))

    def abort(self, reason):
        """Close TCP without NOTIFICATION or withdrawals (RFC 4724 §4: the peer keeps our routes as stale)."""
        self._stopped = True
        self._cancel_timer("retry")
        if self.conn is not None:
            self.post(Event.TCP_FAILS, reason, self.conn.number)
        else:
            self.post(Event.STOP)

    async def wait_closed(self, timeout=5.0):
        writer = self.conn.writer if self.conn is not None else self._last_writer
        if writer is None:
            return
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout)
        except (asyncio.TimeoutError, OSError, ConnectionError):
            pass

    async def drain(self, timeout=5.0):
        if self.conn is not None:
            try:
                await asyncio.wait_for(self.conn.writer.drain(), timeout)
            except (asyncio.TimeoutError, OSError, ConnectionError):
                pass

    # ------------------------------------------------------------ events

    def post(self, event, data=None, conn=None):
        """Queue an event; run the queue unless we are already running it (no re-entrancy)."""
        self._events.append((event, data, conn))
        if self._running:
            return
        self._running = True
        try:
            while self._events:
                self._handle(*self._events.popleft())
        finally:
            self._running = False

    def _handle(self, event, data, conn):
        if conn is not None and self._candidate is not None and conn == self._candidate.number:
            self._candidate_event(event, data)
            return
        if conn is not None and (self.conn is None or conn != self.conn.number):
            return                                    # from a connection that is gone
        old = self.state
        if self._candidate and event in (Event.NOTIFICATION, Event.TCP_FAILS) and not self._stopped:
            # RFC 4271 §6.8: the peer closed this connection (it resolved the collision first)
            self._count_received(event, data)
            self._adopt_candidate(cease=False)
            return
        new, actions = step(old, event)
        if event == Event.TCP_CONNECTED and new != State.OPEN_SENT:
            data.close()                              # offered a connection we cannot use
            return
        if event == Event.TCP_CONNECTED:
            self.conn = data
        self.state = new
        for action in actions:
            getattr(self, "_do_" + action.value)(event, data, old)
        if new != old:
            reason = data.text if isinstance(data, notification.Notification) else (
                str(data) if isinstance(data, (BgpError, str)) else "")
            self._changed(old, new, reason)

    def _changed(self, old, new, reason):
        self.since = time.time()
        if not reason and new == State.IDLE:
            reason = self.last_error
        log.info("peer %s: %s -> %s%s", self.address, old.value, new.value, f" ({reason})" if reason else "")
        if new == State.IDLE and self._stopped:
            self._closed.set()
        self.speaker.session_changed(self, old, new, reason)

    # ------------------------------------------------------------ actions

    def _do_connect(self, event, data, old):
        self.counters["connection_attempts"] += 1
        self._connect_task = asyncio.ensure_future(self._connect())

    async def _connect(self):
        peer = self.peer
        try:
            reader, writer = await transport.connect(peer)
        except (OSError, asyncio.TimeoutError) as e:
            self._connect_task = None
            if self.state == State.CONNECT:
                self.post(Event.TCP_FAILS, f"connect to {peer.address}:{peer.port}: {e or 'timed out'}")
            return
        self._connect_task = None
        self.post(Event.TCP_CONNECTED, self._new_connection(reader, writer, outgoing=True))

    def _new_connection(self, reader, writer, outgoing=False):
        self._conn_number += 1
        return transport.wrap(self._conn_number, reader, writer, outgoing)

    def _start_reader(self):
        self.conn.task = asyncio.ensure_future(self._read(self.conn))

    async def _read(self, conn):
        buf = b""
        number = conn.number
        try:
            while True:
                data = await conn.reader.read(65536)
                if not data:
                    self.post(Event.TCP_FAILS, "connection closed by peer", number)
                    return
                buf = self.received(buf + data, number)
                if buf is None:
                    return
        except asyncio.CancelledError:
            raise
        except (OSError, ConnectionError) as e:
            self.post(Event.TCP_FAILS, f"read: {e}", number)

    def received(self, buf, number):
        """Handle each complete message in `buf` (from connection `number`); the octets left over, or
        None when that connection is finished (an error, a NOTIFICATION, a lost collision)."""
        while True:
            try:
                framed = header.frame(buf)
            except BgpError as e:
                self.post(Event.HEADER_ERROR, e, number)
                return None
            if framed is None:
                return buf
            msg_type, body, buf = framed
            if not self._dispatch(msg_type, body, number):
                return None

    def _dispatch(self, msg_type, body, number) -> bool:
        if self._candidate is not None and number == self._candidate.number:
            return self._candidate_message(msg_type, body)
        neg = self.negotiated
        try:
            msg = messages.decode(msg_type, body, *((neg.four_octet, neg.families) if neg else ()))
            if msg_type == header.OPEN:
                result = (msg, check_open(msg, self.peer, self.local, self._ours))
                if self._candidate is not None and self.state == State.OPEN_SENT and \
                        self._resolve_collision(msg.bgp_id):
                    return False                      # this connection lost the collision
                self.post(Event.OPEN, result, number)
            elif msg_type == header.UPDATE:
                self.post(Event.UPDATE, msg, number)
            elif msg_type == header.KEEPALIVE:
                self.post(Event.KEEPALIVE, None, number)
            elif msg_type == header.NOTIFICATION:
                self.post(Event.NOTIFICATION, msg, number)
                return False
            elif msg_type == header.ROUTE_REFRESH:
                self.post(Event.ROUTE_REFRESH, msg, number)
        except BgpError as e:
            event = {header.OPEN: Event.OPEN_ERROR, header.UPDATE: Event.UPDATE_ERROR}.get(
                msg_type, Event.HEADER_ERROR)
            self.post(event, e, number)
            return False
        return True

    def _send(self, raw: bytes):
        if self.conn is not None:
            self.conn.writer.write(raw)

    def _do_send_open(self, event, data, old):
        self._start_reader()
        self._send(self._open_message())

    def _open_message(self):
        asn = self.peer.as_number or self.local.asn
        return bgp_open.encode(asn, self.peer.hold_time, self.local.router_id, self._ours)

    def _do_send_keepalive(self, event, data, old):
        self._send(keepalive.encode())

    def _do_send_notification(self, event, data, old):
        if event == Event.STOP:
            code, subcode, payload = self._stop_notification
            reason = "sent " + notification.Notification(code, subcode, payload).text
        elif event == Event.HOLD_TIMER_EXPIRES:
            code, subcode, payload = HOLD_TIMER_EXPIRED, 0, b""
            reason = "hold timer expired"
        elif isinstance(data, BgpError):
            code, subcode, payload = data.code, data.subcode, data.data
            reason = f"sent NOTIFICATION: {data}"
        else:
            return
        self.counters["notifications_out"] += 1
        self.last_error = reason
        self._log_error(reason)
        self._send(notification.encode(code, subcode, payload))

    def _log_error(self, text):
        """A protocol error sent or received, in words, with the peer as a journald field (VC5_PEER)."""
        vlog.event(log, logging.WARNING, f"peer {self.address}: {text}", peer=str(self.address),
                   group=self.peer.group)

    def _do_send_fsm_error(self, event, data, old):
        self.counters["notifications_out"] += 1
        self.last_error = f"sent NOTIFICATION FSM error: unexpected {event.value} in {old.value}"
        self._log_error(self.last_error)
        self._send(notification.encode(FSM_ERROR, FSM_ERROR_SUBCODE.get(old, 0)))

    def _do_start_hold_large(self, event, data, old):
        self._start_timer("hold", LARGE_HOLD, self._hold_expired)

    def _do_negotiate(self, event, data, old):
        msg, neg = data
        self.negotiated = neg
        self.facts = policy.SessionFacts(local_asn=self.peer.as_number or self.local.asn,
                                         remote_asn=neg.remote_asn, four_octet=neg.four_octet,
                                         families=neg.families, local_address=self.conn.local,
                                         router_id=self.local.router_id)

    def _do_restart_hold(self, event, data, old):
        if self.negotiated and self.negotiated.hold_time:
            self._start_timer("hold", self.negotiated.hold_time, self._hold_expired)

    def _do_start_keepalive(self, event, data, old):
        if self.negotiated and self.negotiated.hold_time:
            self._start_timer("keepalive", self.negotiated.keepalive, self._keepalive_expired)

    _do_restart_keepalive = _do_start_keepalive

    def _do_established(self, event, data, old):
        if self._candidate is not None:
            # RFC 4271 §6.8: a collision with an Established connection closes the other one
            self._drop_candidate("the other connection is Established", CONNECTION_COLLISION_RESOLUTION)
        self.counters["established"] += 1
        self.established_at = time.time()
        self.retry_delay = self.retry_min
        self.last_error = ""
        self._eor_pending = self.local.graceful_restart

    def _do_sync_rib(self, event, data, old):
        desired = self.speaker.adj_rib_out_for(self)
        gone = [p for p in self.adj_rib_out if p not in desired]
        by_attrs = collections.defaultdict(list)
        for p, a in desired.items():
            if self.adj_rib_out.get(p) != a:
                by_attrs[(p.version, a)].append(p)
        out = update.withdraw(gone) if gone else []
        for (_version, attrs), prefixes in sorted(by_attrs.items(), key=lambda kv: kv[0][0]):
            out += update.announce(prefixes, attrs, self.negotiated.four_octet)
        for p in gone:
            del self.adj_rib_out[p]
        for (_version, attrs), prefixes in by_attrs.items():
            for p in prefixes:
                self.adj_rib_out[p] = attrs
        self.counters["withdrawn"] += len(gone)
        self.counters["advertised"] += sum(len(v) for v in by_attrs.values())
        self.counters["updates_out"] += len(out)
        if out:
            self._send(b"".join(out))
            self.speaker.adj_rib_out_changed(self)
        if self._eor_pending and self.speaker.rib_ready:
            # RFC 4724 §2: End-of-RIB marks the end of the initial update; only once the RIB is known
            # (healthd's VIPs received, learn delay over), or the peer would flush routes still valid.
            self._eor_pending = False
            self._send(b"".join(update.end_of_rib(afi, safi) for afi, safi in self.negotiated.families))

    def _do_resend_rib(self, event, data, old):
        """RFC 2918 §4: answer ROUTE-REFRESH by re-advertising the Adj-RIB-Out of that family."""
        family = (data.afi, data.safi)
        if family not in self.negotiated.families:
            return
        by_attrs = collections.defaultdict(list)
        for p, a in self.adj_rib_out.items():
            if policy.family_of(p) == family:
                by_attrs[a].append(p)
        out = []
        for attrs, prefixes in by_attrs.items():
            out += update.announce(prefixes, attrs, self.negotiated.four_octet)
        self.counters["updates_out"] += len(out)
        self._send(b"".join(out))

    def _do_process_update(self, event, data, old):
        # vc5-bgpd originates routes only; received routes are counted and ignored (vc5).
        self.counters["updates_in"] += 1
        attrs = data.attributes
        if attrs.errors:
            # RFC 7606 §2: treat-as-withdraw / attribute discard. No received route is installed, so
            # both come down to counting and logging it (§6: SHOULD be logged); the session stays up.
            self.counters["updates_malformed"] += 1
            for approach, what, reason in attrs.errors:
                self._log_once((approach, what), f"UPDATE with malformed {what} ({reason}): {approach} "
                               "(RFC 7606), session kept")
        if attrs.ignored:
            self.counters["updates_ignored_family"] += 1
            for what, afi, safi in attrs.ignored:
                self._log_once((what, afi, safi), f"{what} for AFI {afi} SAFI {safi}, not negotiated: "
                               "ignored (RFC 4760 §7)")

    def _log_once(self, key, text):
        if key in self._logged:
            log.debug("peer %s: %s", self.address, text)
            return
        self._logged.add(key)
        self._log_error(text + " (logged once per peer)")

    def _count_received(self, event, data):
        if isinstance(data, notification.Notification):
            self.counters["notifications_in"] += 1
            self.last_error = "received " + data.text
            self._log_error(self.last_error)
        elif isinstance(data, str) and event == Event.TCP_FAILS:
            self.last_error = data

    def _do_drop(self, event, data, old):
        self._count_received(event, data)
        for name in ("hold", "keepalive"):
            self._cancel_timer(name)
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        if self.conn is not None:
            self._last_writer = self.conn.writer
            self.conn.close()
        self.conn = None
        if self._candidate is not None:
            self._candidate.close()
            self._candidate = None
        self._eor_pending = False
        self.negotiated = None
        self.facts = None
        self.established_at = 0.0
        if self.adj_rib_out:
            self.adj_rib_out = {}
            self.speaker.adj_rib_out_changed(self)

    def _do_start_connect_retry(self, event, data, old):
        if self._stopped:
            return
        # RFC 4271 §10: jitter (0.75..1) so that two speakers retrying do not stay in step
        delay = self.retry_delay * random.uniform(0.75, 1.0)
        self.retry_delay = min(self.retry_max, self.retry_delay * 2)
        self._start_timer("retry", delay, self._retry_expired)

    def _do_stop_connect_retry(self, event, data, old):
        self._cancel_timer("retry")

    # ------------------------------------------------------------ timers

    def _start_timer(self, name, delay, callback):
        self._cancel_timer(name)
        self._timers[name] = asyncio.get_running_loop().call_later(delay, callback)

    def _cancel_timer(self, name):
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _hold_expired(self):
        self._timers.pop("hold", None)
        self.post(Event.HOLD_TIMER_EXPIRES, None, self.conn.number if self.conn else None)

    def _keepalive_expired(self):
        self._timers.pop("keepalive", None)
        self.post(Event.KEEPALIVE_TIMER_EXPIRES, None, self.conn.number if self.conn else None)

    def _retry_expired(self):
        self._timers.pop("retry", None)
        if self._stopped:
            return
        if self.peer.passive:
            self.post(Event.START_PASSIVE)
        else:
            self.post(Event.CONNECT_RETRY_EXPIRES)

    def cancel_all(self):
        for name in list(self._timers):
            self._cancel_timer(name)
        if self._connect_task is not None:
            self._connect_task.cancel()
