"""All BFD sessions of vc5-bgpd: one per BGP peer configured with `bfd:`.

Owns the receiving sockets (created for a family when its first session is
added, closed with its last) and the Runners; a received packet is checked
(packet.decode, TTL 255) and handed to its session. Discarded packets are
counted per reason and each reason is logged once per source address.
"""

import asyncio
import logging
import socket
import time

from vc5.common import wire

from . import packet
from .packet import STATE_NAMES, diag_name
from .transport import TTL, Receiver, Runner

log = logging.getLogger("vc5.bgpd.bfd")


class Bfd:
    def __init__(self, on_change):
        self.on_change = on_change            # (address, Transition) -> None
        self.runners = {}                     # peer address -> Runner
        self.receivers = {}                   # family -> Receiver
        self.discarded = {}                   # reason (TTL, decode field, no session) -> count
        self.since = {}                       # peer address -> wall-clock time of the last state change
        self._logged = set()

    def add(self, peer):
        """Start BFD toward `peer` (a config.Peer with .bfd set). OSError if a socket cannot be made."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET if peer.address.version == 4 else socket.AF_INET6
        if family not in self.receivers:
            self.receivers[family] = Receiver(family, self._dispatch, loop)
        self.runners[peer.address] = Runner(peer.address, peer.bfd, peer.source_ip, self._changed, loop)
        self.since[peer.address] = time.time()
        log.info("BFD toward %s: interval %d ms, multiplier %d", peer.address, peer.bfd.interval_ms,
                 peer.bfd.multiplier)

    def remove(self, address, admin_down=True):
        r = self.runners.pop(address, None)
        self.since.pop(address, None)
        if r is not None:
            r.close(admin_down)
        for family in [f for f in self.receivers
                       if not any((a.version == 4) == (f == socket.AF_INET) for a in self.runners)]:
            self.receivers.pop(family).close()

    def close(self):
        for address in list(self.runners):
            self.remove(address)

    def _changed(self, address, transition):
        self.since[address] = time.time()
        self.on_change(address, transition)

    def _discard(self, reason, source, detail=""):
        self.discarded[reason] = self.discarded.get(reason, 0) + 1
        if (reason, source) not in self._logged:
            self._logged.add((reason, source))
            log.warning("BFD packet from %s discarded: %s (logged once per source and reason)", source,
                        detail or reason)

    def _dispatch(self, data, source, ttl):
        if ttl != TTL:
            # RFC 5881 §5: a single-hop packet must arrive with TTL/hop limit 255
            self._discard("TTL is not 255" if ttl is not None else "no TTL received", source)
            return
        try:
            p = packet.decode(data)
        except packet.BfdDecodeError as e:
            self._discard(e.field, source, str(e))
            return
        if p.your_discriminator:
            runner = next((r for r in self.runners.values()
                           if r.session.local_discr == p.your_discriminator), None)
        else:
            runner = self.runners.get(source)
        if runner is None or runner.address != source:
            self._discard("no session for this source and discriminator", source)
            return
        runner.receive(p)

    def diag_text(self, address):
        r = self.runners.get(address)
        return diag_name(r.session.local_diag) if r is not None else ""

    def remote_state(self, address):
        r = self.runners.get(address)
        return STATE_NAMES[r.session.remote_state] if r is not None else ""

    def status(self):
        """org.vc5.Bgp1.Bfd: one wire.BfdState per session, sorted by address."""
        out = []
        for address in sorted(self.runners, key=lambda a: (a.version, a)):
            r = self.runners[address]
            s = r.session
            out.append(wire.BfdState(
                address=str(address), state=STATE_NAMES[s.state], remote_state=STATE_NAMES[s.remote_state],
                diagnostic=diag_name(s.local_diag), local_discriminator=s.local_discr,
                remote_discriminator=s.remote_discr, tx_interval_ms=int(s.tx_interval() * 1000),
                detection_time_ms=int(s.detection_time() * 1000),
                since=int(self.since.get(address, 0) * 1e6), up_count=s.up_count, down_count=s.down_count,
                packets_in=r.counters["packets_in"], packets_out=r.counters["packets_out"]))
        return out
