"""All BFD sessions of vc5-bgpd: one per BGP peer configured with `bfd:`.

The sessions run in a thread of their own with its own asyncio loop ("vc5-bfd"):
bgpd's main loop can be busy for a second at a time (10,000 VIPs changing at once
means that many UPDATEs to encode and D-Bus messages to decode, measured by
bench/bfd_jitter.py), and a BFD packet that waits for it is late. Python lets
this thread run within the interpreter's switch interval (5 ms) of its timer.

Invariants: Runners, Receivers and Sessions are touched only in the BFD thread
(add/remove/close hand their work to it and wait); state changes are handed to
the main loop (`on_change`, run there). status() reads from the main thread:
plain attribute reads, each atomic under the GIL.

Owns the receiving sockets (one for a family while a session of that family
exists) and the Runners; a received packet is checked (packet.decode, TTL 255)
and handed to its session. Discarded packets are counted per reason and each
reason is logged once per source address.
"""

import asyncio
import concurrent.futures
import logging
import socket
import threading
import time

from vc5.common import wire

from . import packet
from .packet import STATE_NAMES, diag_name
from .transport import TTL, Receiver, Runner

log = logging.getLogger("vc5.bgpd.bfd")


class Bfd:
    def __init__(self, on_change):
        self.on_change = on_change            # (address, Transition, remote state name) on the main loop
        self.runners = {}                     # peer address -> Runner
        self.receivers = {}                   # family -> Receiver
        self.discarded = {}                   # reason (TTL, decode field, no session) -> count
        self.since = {}                       # peer address -> wall-clock time of the last state change
        self._logged = set()
        self._main = None
        self._loop = None
        self._thread = None

    # ------------------------------------------------------------ called from the main loop

    def add(self, peer):
        """Start BFD toward `peer` (a config.Peer with .bfd set). OSError if a socket cannot be made."""
        if self._loop is None:
            self._main = asyncio.get_running_loop()
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="vc5-bfd", daemon=True)
            self._thread.start()
        self._in_thread(self._add, peer)
        log.info("BFD toward %s: interval %d ms, multiplier %d", peer.address, peer.bfd.interval_ms,
                 peer.bfd.multiplier)

    def remove(self, address, admin_down=True):
        if self._loop is not None and address in self.runners:
            self._in_thread(self._remove, address, admin_down)

    def close(self):
        """AdminDown to every peer, then the thread ends."""
        if self._loop is None:
            return
        for address in list(self.runners):
            self.remove(address)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = None

    def _in_thread(self, fn, *args):
        """Run fn(*args) in the BFD thread and return its result (or raise its exception)."""
        done = concurrent.futures.Future()

        def call():
            try:
                done.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                done.set_exception(e)
        self._loop.call_soon_threadsafe(call)
        return done.result(10)

    def status(self):
        """org.vc5.Bgp1.Bfd: one wire.BfdState per session, sorted by address."""
        out = []
        runners = dict(self.runners)
        for address in sorted(runners, key=lambda a: (a.version, a)):
            r = runners[address]
            s = r.session
            out.append(wire.BfdState(
                address=str(address), state=STATE_NAMES[s.state], remote_state=STATE_NAMES[s.remote_state],
                diagnostic=diag_name(s.local_diag), local_discriminator=s.local_discr,
                remote_discriminator=s.remote_discr, tx_interval_ms=int(s.tx_interval() * 1000),
                detection_time_ms=int(s.detection_time() * 1000),
                since=int(self.since.get(address, 0) * 1e6), up_count=s.up_count, down_count=s.down_count,
                packets_in=r.counters["packets_in"], packets_out=r.counters["packets_out"]))
        return out

    # ------------------------------------------------------------ the BFD thread

    def _add(self, peer):
        family = socket.AF_INET if peer.address.version == 4 else socket.AF_INET6
        if family not in self.receivers:
            self.receivers[family] = Receiver(family, self._dispatch, self._loop)
        self.runners[peer.address] = Runner(peer.address, peer.bfd, peer.source_ip, self._changed, self._loop)
        self.since[peer.address] = time.time()

    def _remove(self, address, admin_down):
        r = self.runners.pop(address, None)
        self.since.pop(address, None)
        if r is not None:
            r.close(admin_down)
        for family in [f for f in self.receivers
                       if not any((a.version == 4) == (f == socket.AF_INET) for a in self.runners)]:
            self.receivers.pop(family).close()

    def _changed(self, address, transition):
        self.since[address] = time.time()
        remote = STATE_NAMES[self.runners[address].session.remote_state] if address in self.runners else ""
        self._main.call_soon_threadsafe(self.on_change, address, transition, remote)

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
