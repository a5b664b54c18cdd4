"""The BGP speaker: one Session per configured peer, and route health injection.

The RIB is the set of VIP host routes that are up, past the hold-down and the
learn delay (rib.compute). Each session's Adj-RIB-Out is derived from it by
the peer's filters and attributes (policy.adj_rib_out); a session sends only
the difference from what it last sent, so a reload that changes one peer's MED
re-advertises to that peer alone, and a VIP going down is withdrawn from every
peer at once.

Stop (RFC 8326 + RFC 9003): routes are re-advertised with GRACEFUL_SHUTDOWN
(65535:0) for `graceful_shutdown` seconds, then withdrawn, then every session
gets NOTIFICATION Cease/Administrative Shutdown with the reason.
"""

import asyncio
import errno
import ipaddress
import logging
import socket
import time

from vc5.common import wire

from . import md5, policy, rib
from .bfd.manager import Bfd
from .bfd.packet import DOWN as BFD_DOWN_STATE
from .bfd.packet import UP as BFD_UP
from .bfd.packet import diag_name
from .capabilities import family_name
from .errors import (ADMINISTRATIVE_RESET, ADMINISTRATIVE_SHUTDOWN, OTHER_CONFIGURATION_CHANGE,
                     PEER_DECONFIGURED)
from .fsm import State
from .negotiation import Local
from .session import Session

log = logging.getLogger("vc5.bgpd.speaker")

CEASE_BFD_DOWN = 10                       # RFC 9384: Cease subcode "BFD Down"

# Peer settings that only a new connection can apply (the OPEN, the socket).
SESSION_KEYS = ("as_number", "peer_as", "hold_time", "source_ip", "passive", "md5", "port", "multiprotocol")


def _plain(address):
    addr = ipaddress.ip_address(str(address).split("%")[0])
    if addr.version == 6 and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


class Speaker:
    def __init__(self, bgp, hold_down=5.0, retry_min=1.0, retry_max=30.0, learn=None, clock=time.time):
        if bgp.router_id is None and bgp.peers:
            raise ValueError("bgp: no router ID (set bgp.router_id or the top-level address)")
        self.bgp = bgp
        self.hold_down = hold_down
        self.retry_min, self.retry_max = retry_min, retry_max
        self.clock = clock
        self.local = self._local(bgp)
        self.started = clock()
        learn = bgp.learn if learn is None else learn
        self.learn_until = self.started + max(learn, 0)
        self.sessions = {}                # address -> Session
        self.vips = ()
        self.first_seen_up = {}
        self.rib = set()
        self.shutting_down = False
        self.graceful = False             # routes carry GRACEFUL_SHUTDOWN
        self.listeners = []               # callables(kind, *args): "peers", "rib", "peer_state" (+ event)
        self.servers = []
        self.health_seen = False          # set_vips() called at least once
        self._ready_announced = False
        self._wake = None
        self.bfd = Bfd(self._bfd_changed)  # BFD sessions of peers with `bfd:` (docs/bgp.md, "BFD")

    @staticmethod
    def _local(bgp):
        return Local(asn=bgp.as_number, router_id=ipaddress.IPv4Address(bgp.router_id or 0),
                     graceful_restart=bgp.graceful_restart)

    # ------------------------------------------------------------ lifecycle

    def start(self):
        for peer in self.bgp.peers:
            self._add(peer)
        self.recompute()

    def _add(self, peer):
        s = Session(peer, self.local, self, self.retry_min, self.retry_max)
        self.sessions[peer.address] = s
        s.start()
        self._start_bfd(peer)
        return s

    # ------------------------------------------------------------ BFD (RFC 5880/5881/5882)

    def _start_bfd(self, peer):
        if not peer.bfd:
            return
        try:
            self.bfd.add(peer)
        except OSError as e:
            log.error("peer %s: BFD not started: %s (the BGP session runs without it)", peer.address, e)
        self._notify("bfd")

    def _bfd_changed(self, address, transition, remote_state):
        """RFC 5882 §3.2/§4.3: a BFD session leaving Up (not by the peer's AdminDown: that is no
        failure) closes the BGP session at once, with Cease/BFD Down (RFC 9384); BGP reconnects as
        after any error. Our own AdminDown (stop, deconfiguration) closes nothing here."""
        s = self.sessions.get(address)
        level = logging.WARNING if transition.new == BFD_DOWN_STATE else logging.INFO
        log.log(level, "peer %s: BFD %s (%s)", address, transition, diag_name(transition.diag))
        failed = transition.old == BFD_UP and transition.new == BFD_DOWN_STATE and remote_state != "AdminDown"
        if failed and s is not None and s.conn is not None and not self.shutting_down:
            log.warning("peer %s: BFD down: closing the BGP session", address)
            s.stop(CEASE_BFD_DOWN, "", restart=True)
        self._notify("bfd")

    def bfd_status(self):
        """org.vc5.Bgp1.Bfd (wire.BfdState per peer with BFD)."""
        return self.bfd.status()

    async def serve(self, sockets):
        """Accept passive sessions on already-bound listening sockets."""
        for sock in sockets:
            sock.setblocking(False)
            self._install_md5(sock, ())
            server = await asyncio.start_server(self._accepted, sock=sock)
            self.servers.append(server)

    def _install_md5(self, sock, old_peers):
        """Make the listening socket's TCP MD5 keys (RFC 2385) those of the configured peers: keys of
        peers removed, or whose key was removed, are deleted (an empty key deletes, md5.set_key);
        changed keys are replaced; new ones added. `old_peers`: what was installed before."""
        want = {p.address: p.md5 for p in self.bgp.peers if p.md5}
        had = {p.address: p.md5 for p in old_peers if p.md5}
        changes = [(a, "") for a in had if a not in want]
        changes += [(a, k) for a, k in want.items() if had.get(a) != k]
        for address, key in changes:
            if sock.family == socket.AF_INET and address.version == 6:
                continue                          # an IPv6 peer can never reach an IPv4 socket
            try:
                md5.set_key(sock, md5.peer_for_socket(sock.family, address), key)
            except OSError as e:
                if key or e.errno != errno.ENOENT:
                    log.error("peer %s: cannot %s the TCP MD5 key on the listening socket: %s", address,
                              "set" if key else "remove", e)
            else:
                log.info("peer %s: TCP MD5 key %s on the listening socket", address,
                         "removed" if not key else "replaced" if address in had else "installed")

    def _accepted(self, reader, writer):
        peername = writer.get_extra_info("peername")
        addr = _plain(peername[0]) if peername else None
        session = self.sessions.get(addr)
        if session is None or self.shutting_down:
            log.warning("refused BGP connection from %s: %s", addr,
                        "shutting down" if session else "not a configured peer")
            writer.close()
            return
        session.incoming(reader, writer)

    @property
    def rib_ready(self) -> bool:
        """The RIB reflects healthd's view: VIPs received and the learn delay is over."""
        return self.health_seen and self.clock() >= self.learn_until

    async def shutdown(self, reason="vc5-bgpd stopping", graceful_restart=False):
        """GRACEFUL_SHUTDOWN (RFC 8326), withdraw all, then Cease/Administrative Shutdown (RFC 9003).

        With `graceful_restart` (RFC 4724) nothing is withdrawn: the TCP sessions are closed and
        peers keep our routes as stale until we are back and send End-of-RIB (or restart time ends).
        """
        self.shutting_down = True
        if self._wake is not None:
            self._wake.cancel()
        for server in self.servers:
            server.close()
        if graceful_restart:
            log.info("graceful restart: closing sessions without withdrawing")
            for s in self.sessions.values():
                await s.drain(2.0)
                s.abort("closed for graceful restart")
            for s in self.sessions.values():
                await s.wait_closed(2.0)
                s.cancel_all()
            self.bfd.close()
            return
        if self.bgp.graceful_shutdown > 0 and self.rib:
            log.info("graceful shutdown: advertising with GRACEFUL_SHUTDOWN for %.1f s",
                     self.bgp.graceful_shutdown)
            self.graceful = True
            self._all_rib_changed()
            self._notify("rib")
            await asyncio.sleep(self.bgp.graceful_shutdown)
        self.rib = set()
        self._all_rib_changed()
        self._notify("rib")
        for s in self.sessions.values():
            await s.drain(2.0)
        for s in self.sessions.values():
            s.stop(ADMINISTRATIVE_SHUTDOWN, reason)
        for s in self.sessions.values():
            await s.wait_closed(2.0)
            s.cancel_all()
        self.bfd.close()          # AdminDown: not a failure for the peers' BGP (RFC 5882 §3.2)

    # ------------------------------------------------------------ RIB

    def set_vips(self, vips):
        """VIP states from healthd (VipState-like: vip, up, since)."""
        now = self.clock()
        self.vips = tuple(vips)
        self.health_seen = True
        # when each VIP was first seen up (used only when healthd gives no `since`); VIPs that are
        # down or gone from healthd's list are forgotten
        self.first_seen_up = {v.vip: self.first_seen_up.get(v.vip, now) for v in self.vips if v.up}
        self.recompute()

    def recompute(self):
        if self.shutting_down:
            return
        now = self.clock()
        new, wake = rib.compute(self.vips, now, self.hold_down, self.learn_until, self.first_seen_up)
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if now < self.learn_until:
            wake = self.learn_until if wake is None else min(wake, self.learn_until)
        if wake is not None:
            # wake just after the deadline: advertisement needs "more than" the hold-down
            self._wake = asyncio.get_running_loop().call_later(max(0.0, wake - now) + 0.01, self.recompute)
        became_ready = self.rib_ready and not self._ready_announced
        if became_ready:
            self._ready_announced = True
        if new != self.rib or became_ready:
            added, removed = new - self.rib, self.rib - new
            self.rib = new
            self._all_rib_changed()           # send first, log after: logging 10,000 lines takes time
            self._log_changes("withdrawing", removed)
            self._log_changes("advertising", added)
            self._notify("rib")

    @staticmethod
    def _log_changes(verb, prefixes, detail=32):
        if len(prefixes) > detail:
            shown = ", ".join(str(p) for p in sorted(prefixes, key=_prefix_key)[:detail])
            log.info("%s %d prefixes: %s, ...", verb, len(prefixes), shown)
            return
        for p in sorted(prefixes, key=_prefix_key):
            log.info("%s %s", verb, p)

    def _all_rib_changed(self):
        for s in list(self.sessions.values()):
            s.rib_changed()

    def adj_rib_out_for(self, session):
        if session.facts is None:
            return {}
        return policy.adj_rib_out(self.rib, session.peer, session.facts, self.graceful)

    # ------------------------------------------------------------ reconfiguration

    def reconfigure(self, bgp, learn=None):
        """Apply a new (already validated) bgp section; only what changed is touched.

        `learn` (seconds after start) replaces the learn delay when given."""
        if bgp.router_id is None and bgp.peers:
            raise ValueError("bgp: no router ID (set bgp.router_id or the top-level address)")
        old_local, old_peers = self.local, self.bgp.peers
        self.local = self._local(bgp)
        self.bgp = bgp
        if learn is not None:
            self.learn_until = self.started + max(learn, 0)
        new = {p.address: p for p in bgp.peers}
        for addr in [a for a in self.sessions if a not in new]:
            s = self.sessions.pop(addr)
            self.bfd.remove(addr)
            log.info("peer %s removed from the configuration", addr)
            s.stop(PEER_DECONFIGURED, "peer removed from the vc5 configuration")
            s.cancel_all()
        for addr, peer in new.items():
            s = self.sessions.get(addr)
            if s is None:
                log.info("peer %s added", addr)
                self._add(peer)
                continue
            if peer == s.peer and self.local == old_local:
                continue
            if (peer.bfd, peer.source_ip) != (s.peer.bfd, s.peer.source_ip):
                self.bfd.remove(addr)
                self._start_bfd(peer)
            resets = [k for k in SESSION_KEYS if getattr(peer, k) != getattr(s.peer, k)]
            if self.local != old_local:
                resets.append("router_id/as_number")
            s.local = self.local
            s.reconfigure(peer)
            if resets:
                log.info("peer %s: %s changed; resetting the session", addr, ", ".join(resets))
                s.stop(OTHER_CONFIGURATION_CHANGE, "configuration changed: " + ", ".join(resets),
                       restart=True)
        for server in self.servers:
            for sock in server.sockets:
                self._install_md5(sock, old_peers)
        self.recompute()
        self._notify("peers")

    def reset_peer(self, address):
        """Cease/Administrative Reset (RFC 4486 §4) and reconnect. KeyError if `address` is not a
        configured peer; a configured peer whose session has not started yet (bgpd owns its bus
        name before it opens sessions) has nothing to reset."""
        key = _plain(address)
        s = self.sessions.get(key)
        if s is None:
            if any(p.address == key for p in self.bgp.peers):
                return
            raise KeyError(address)
        s.stop(ADMINISTRATIVE_RESET, "reset by operator", restart=True)

    # ------------------------------------------------------------ observers

    def session_changed(self, session, old, new, reason):
        self._notify("peer_state", wire.PeerStateChange(str(session.address), old.value, new.value, reason))
        self._notify("peers")

    def adj_rib_out_changed(self, session):
        self._notify("peers")

    def _notify(self, kind, *args):
        for cb in list(self.listeners):
            try:
                cb(kind, *args)
            except Exception:  # noqa: BLE001 - an observer must not break the speaker
                log.exception("listener failed")

    def peer_status(self):
        """Per peer, its org.vc5.Bgp1.Peers entry (wire.PeerState), sorted by address."""
        now = time.time()
        return [self._peer_state(self.sessions[addr], now)
                for addr in sorted(self.sessions, key=lambda a: (a.version, a))]

    def _peer_state(self, s, now):
        neg = s.negotiated
        established = s.established_at if s.state == State.ESTABLISHED else 0.0
        conn_local = s.conn.local if s.conn is not None else None
        return wire.PeerState(
            address=str(s.address), group=s.peer.group or "", state=s.state.value,
            since=int(s.since * 1e6), established_at=int(established * 1e6),
            uptime_s=int(now - established) if established else 0,
            hold_time=neg.hold_time if neg else 0, keepalive_s=int(neg.keepalive) if neg else 0,
            capabilities=tuple(neg.capabilities.names()) if neg else (),
            families=tuple(family_name(f) for f in neg.families) if neg else (),
            counters=s.counters.as_dict(), last_error=s.last_error,
            advertised_prefixes=tuple(str(p) for p in sorted(s.adj_rib_out, key=_prefix_key)),
            local_address=str(conn_local) if conn_local is not None else "",
            local_asn=s.peer.as_number or self.local.asn,
            remote_asn=neg.remote_asn if neg else (s.peer.peer_as or 0),
            remote_id=str(neg.remote_id) if neg else "")

    def advertised(self):
        """The RIB: what is advertised (before each peer's filters), sorted."""
        return [str(p) for p in sorted(self.rib, key=_prefix_key)]


def _prefix_key(text):
    n = text if not isinstance(text, str) else ipaddress.ip_network(text)
    return (n.version, n)


def bind_listener(address: str, port: int) -> socket.socket:
    """A listening TCP socket for --listen ADDR:PORT (tests; production gets it from vc5-bgpd.socket)."""
    addr = ipaddress.ip_address(address)
    sock = socket.socket(socket.AF_INET if addr.version == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(addr), port))
    sock.listen(64)
    return sock
