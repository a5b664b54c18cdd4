"""Flow sharing for one data plane: sockets, both threads and the settings flag.

    sharing = FlowSharing(dp, "224.0.0.1:9999", interface=None)
    sharing.start()          # flag on, sender + receiver running
    sharing.stats()          # {"sent": {...}, "received": {...}}
    sharing.stop()           # threads stopped, flag off, sockets closed

Learning (vc5 -l N): a new balancer listens for `learn` seconds before it
advertises its VIPs; `Learning(learn).active(now)` says whether that time is
still running (the loader publishes it; bgpd's gate holds the VIPs meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import sockets, tables
from .receiver import Receiver
from .sender import Sender

log = logging.getLogger("vc5.xdp_loader.share")


class FlowSharing:
    def __init__(self, dp, multicast: str, interface: str | None = None, loop: bool = False):
        self.dp = dp
        self.group, self.port = sockets.parse_group(multicast)
        self.interface, self.loop = interface, loop
        self.sender: Sender | None = None
        self.receiver: Receiver | None = None

    def start(self) -> None:
        rx = sockets.receiver_socket(self.group, self.port, self.interface)
        try:
            tx = sockets.sender_socket(self.group, self.port, self.interface, self.loop)
        except BaseException:
            rx.close()
            raise
        self.receiver, self.sender = Receiver(self.dp, rx), Sender(self.dp, tx)
        tables.set_sharing(self.dp, True)
        self.receiver.start()
        self.sender.start()

    def stop(self) -> None:
        """Flag off first: the program stops noting and stops using `shared`."""
        try:
            tables.set_sharing(self.dp, False)
        except OSError:
            pass                    # maps already closed
        for t in (self.sender, self.receiver):
            if t is not None:
                t.stop()
                t.sock.close()
        log.info("flow sharing stopped: %s", self.stats())

    def stats(self) -> dict:
        return {"sent": dict(self.sender.stats) if self.sender else {},
                "received": dict(self.receiver.stats) if self.receiver else {}}

    def totals(self) -> dict:
        """The counters as GetCounters' totals carry them (names in xvs_names.SHARE_COUNTERS)."""
        sent = self.sender.stats if self.sender else {}
        got = self.receiver.stats if self.receiver else {}
        known = {tables.LEARNED, tables.NO_SERVICE, tables.NO_BACKEND, "map_errors"}
        return {"share_sent_flows": sent.get("flows", 0),
                "share_sent_datagrams": sent.get("datagrams", 0),
                "share_send_errors": sent.get("send_errors", 0),
                "share_stale": sent.get("stale", 0),
                "share_received_datagrams": self.receiver.datagrams if self.receiver else 0,
                "share_learned": got.get(tables.LEARNED, 0),
                "share_not_ours": got.get(tables.NO_SERVICE, 0) + got.get(tables.NO_BACKEND, 0),
                "share_malformed": sum(n for k, n in got.items() if k not in known)}


class Learning:
    """vc5 -l N: hold the VIPs for N seconds from start (0: not at all)."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.clock = clock
        self.until = clock() + max(0.0, float(seconds))

    def active(self, now: float | None = None) -> bool:
        return (self.clock() if now is None else now) < self.until

    def remaining(self) -> float:
        return max(0.0, self.until - self.clock())


def start_for_loader(loader, cfg, fresh_maps: bool) -> FlowSharing | None:
    """Daemon glue, at start only (a reload does not change `multicast` or `learn`):
    flow sharing when `multicast` is set; Learning (published as Learning) for `learn`
    seconds when this loader made fresh maps: a restart keeps its flow table and its
    routes (docs/data-plane.md, "Restart keeps forwarding"), so it has nothing to learn."""
    if cfg.learn and fresh_maps:
        loader.learning = Learning(cfg.learn)
        log.info("learning: VIPs held for %d s while the other balancers' flows arrive", cfg.learn)
    if not cfg.multicast:
        return None
    # The group's interface: the routing table's choice (vc5's), else the first configured NIC.
    for interface in (None, *tuple(cfg.interfaces or ())[:1]):
        sharing = FlowSharing(loader.dp, cfg.multicast, interface=interface)
        try:
            sharing.start()
            break
        except OSError as e:
            log.error("flow sharing with %s on %s not started: %s", cfg.multicast,
                      interface or "the routed interface", e)
    else:
        log.error("flow sharing off: balancing goes on without it")
        return None
    log.info("flow sharing on %s:%d (vc5 v0.3 records)", sharing.group, sharing.port)
    return sharing


async def end_learning(loader) -> None:
    """Publish Learning = false when the time is up."""
    await asyncio.sleep(loader.learning.remaining())
    loader.publisher.mark("Learning")
    log.info("learning over: VIPs may be advertised")
