"""The TCP side of a session: the connection object, the active open, collisions.

RFC 4271 §8: one TCP connection per attempt; a Connection carries a number so
that events from an earlier connection can be told apart (session.py ignores
them). TCP MD5 (RFC 2385) keys and the source address are set before connect.
When the peer opens a second connection while ours is in OpenSent/OpenConfirm,
both run until an OPEN gives the peer's BGP Identifier; then the one opened by
the higher identifier is kept (RFC 4271 §6.8, `Collisions`, mixed into Session).
"""

import asyncio
import ipaddress
import logging
import socket

from . import md5, messages
from .errors import CEASE, CONNECTION_COLLISION_RESOLUTION, CONNECTION_REJECTED, FSM_ERROR, BgpError
from .fsm import Event, State
from .messages import header, notification
from .negotiation import check_open, collision_keeps_new

log = logging.getLogger("vc5.bgpd.session")

LARGE_HOLD = 240          # RFC 4271 §8.2.2: hold timer while waiting for OPEN

CONNECT_TIMEOUT = 10.0    # vc5: connect timeout 10 s


class Connection:
    """One TCP connection of a session, numbered; `local` is our address on it; `outgoing` when
    we opened it (RFC 4271 §6.8 collisions keep the one opened by the higher BGP Identifier)."""

    def __init__(self, number, reader, writer, outgoing=False):
        self.number = number
        self.outgoing = outgoing
        self.reader = reader
        self.writer = writer
        sockname = writer.get_extra_info("sockname")
        peername = writer.get_extra_info("peername")
        self.local = ipaddress.ip_address(sockname[0].split("%")[0]) if sockname else None
        self.remote = ipaddress.ip_address(peername[0].split("%")[0]) if peername else None
        if self.local is not None and self.local.version == 6 and self.local.ipv4_mapped:
            self.local = self.local.ipv4_mapped
        self.task = None

    def close(self):
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        try:
            self.writer.close()       # the transport flushes what is buffered, then closes
        except Exception:  # noqa: BLE001 - already gone
            pass


def wrap(number, reader, writer, outgoing=False):
    """A Connection for an open stream; Nagle off (KEEPALIVEs and UPDATEs go out at once)."""
    conn = Connection(number, reader, writer, outgoing)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return conn


async def connect(peer):
    """Open TCP to `peer` (MD5 key and source address first); (reader, writer). OSError or
    asyncio.TimeoutError on failure (the socket is closed; also when cancelled)."""
    family = socket.AF_INET if peer.address.version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if peer.md5:
            md5.set_key(sock, peer.address, peer.md5)
        if peer.source_ip is not None:
            sock.bind((str(peer.source_ip), 0))
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (str(peer.address), peer.port)), CONNECT_TIMEOUT)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


class Collisions:
    """RFC 4271 §6.8 for Session: `_candidate` is the peer's second connection until resolved."""

    def _notify_on(self, conn, code, subcode, why, data=b""):
        """Send a NOTIFICATION on `conn` (not necessarily the session's connection)."""
        self.counters["notifications_out"] += 1
        self._log_error(f"sent {notification.Notification(code, subcode, data).text} ({why})")
        conn.writer.write(notification.encode(code, subcode, data))

    def _collision_incoming(self, reader, writer) -> bool:
        """A connection from the peer while we have one: True if handled here."""
        if self.state == State.ESTABLISHED or self._candidate is not None:
            # RFC 4271 §6.8: a collision with an Established connection closes the new one (a third
            # connection while a collision is being resolved is refused: Cease / Connection Rejected)
            conn = self._new_connection(reader, writer)
            self._notify_on(conn, CEASE, CONNECTION_COLLISION_RESOLUTION if self.state == State.ESTABLISHED
                            else CONNECTION_REJECTED, "new connection while one is " + self.state.value)
            conn.close()
            return True
        if self.state in (State.OPEN_SENT, State.OPEN_CONFIRM):
            self._collision_start(self._new_connection(reader, writer))
            return True
        return False

    def _collision_start(self, conn):
        """The peer opened a connection while ours is in OpenSent/OpenConfirm: send OPEN on it too and
        resolve when an OPEN tells us the peer's BGP Identifier."""
        log.info("peer %s: connection collision (ours is %s); resolving by BGP identifier",
                 self.address, self.state.value)
        self._candidate = conn
        conn.task = asyncio.ensure_future(self._read(conn))
        conn.writer.write(self._open_message())

    def _candidate_event(self, event, data):
        if event == Event.TCP_FAILS:
            self._drop_candidate(str(data))
        elif isinstance(data, BgpError):
            self._drop_candidate(str(data), data.subcode, data.code, data.data)

    def _candidate_message(self, msg_type, body) -> bool:
        """A message on the second connection: its OPEN resolves the collision; True to keep reading."""
        try:
            msg = messages.decode(msg_type, body)
            if msg_type == header.NOTIFICATION:
                self.counters["notifications_in"] += 1
                self._drop_candidate("received " + msg.text)
                return False
            if msg_type != header.OPEN:
                # RFC 6608: an unexpected message in OpenSent
                raise BgpError(FSM_ERROR, 1, f"{header.TYPE_NAMES[msg_type]} before OPEN")
            result = (msg, check_open(msg, self.peer, self.local, self._ours))
        except BgpError as e:
            self._drop_candidate(str(e), e.subcode, e.code, e.data)
            return False
        if not self._resolve_collision(msg.bgp_id):
            return False
        self.post(Event.OPEN, result, self.conn.number)
        return True

    def _resolve_collision(self, remote_id) -> bool:
        """Close the losing connection (Cease / Connection Collision Resolution); True if the new
        connection (the candidate) won and is now the session's."""
        keep_new = collision_keeps_new(self.local.router_id, remote_id, self.conn.outgoing,
                                       self._candidate.outgoing)
        kept = "from the peer" if keep_new else ("we" if self.conn.outgoing else "the peer") + " opened first"
        log.info("peer %s: collision: BGP identifiers ours %s, theirs %s: keeping the connection %s",
                 self.address, self.local.router_id, remote_id, kept)
        if keep_new:
            self._adopt_candidate(cease=True)
        else:
            self._drop_candidate("collision lost", CONNECTION_COLLISION_RESOLUTION)
        return keep_new

    def _adopt_candidate(self, cease):
        """Continue on the candidate connection (we have sent our OPEN on it: OpenSent); the current one
        is closed, with Cease / Connection Collision Resolution when `cease`."""
        old_conn, self.conn, self._candidate = self.conn, self._candidate, None
        if cease:
            self._notify_on(old_conn, CEASE, CONNECTION_COLLISION_RESOLUTION, "collision lost")
        old_conn.close()
        self._last_writer = old_conn.writer
        self.negotiated = self.facts = None
        self._cancel_timer("keepalive")
        self._start_timer("hold", LARGE_HOLD, self._hold_expired)
        old, self.state = self.state, State.OPEN_SENT
        if old != self.state:
            self._changed(old, self.state, "connection collision: continuing on the peer's connection")

    def _drop_candidate(self, why, subcode=None, code=CEASE, data=b""):
        """Close the candidate connection, with a NOTIFICATION `code`/`subcode` unless `subcode` is None."""
        conn, self._candidate = self._candidate, None
        if subcode is not None:
            self._notify_on(conn, code, subcode, why, data)
        else:
            log.info("peer %s: second connection closed: %s", self.address, why)
        conn.close()
