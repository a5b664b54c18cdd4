"""Follow the network through netlink events, not only the rescan timer (docs/data-plane.md,
"Next hop and tunnels"): subnets (RTM_NEWADDR/DELADDR), links (RTM_NEWLINK/DELLINK: MTU, up or
down, an interface appearing) and neighbours (RTM_NEWNEIGH/DELNEIGH: a backend's or gateway's
MAC) trigger one debounced refresh of the loader.

    watch = NetWatch(on_change)        # on_change(): the loader's tick (rescan + reconcile)
    watch.start(loop)                  # a pyroute2 IPRoute bound to the groups, read by add_reader
    watch.close()

Debounced (`debounce` s after the first event of a burst) and rate-limited (at most one call
per `min_interval` s): a flapping link or a neighbour table in churn costs at most a few
refreshes per second; the timer stays as the safety net (a lost event, ENOBUFS).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("vc5.xdp_loader")

# <linux/rtnetlink.h> multicast groups (RTMGRP_*)
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
GROUPS = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

EVENTS = frozenset(("RTM_NEWNEIGH", "RTM_DELNEIGH", "RTM_NEWADDR", "RTM_DELADDR", "RTM_NEWLINK",
                    "RTM_DELLINK"))
# neighbour states that change no MAC we use (<linux/neighbour.h>): resolution in progress
NUD_TRANSIENT = 0x01 | 0x08 | 0x10      # INCOMPLETE, DELAY, PROBE


def relevant(msg) -> bool:
    """True for an event that may change what the planner sees."""
    event = msg.get("event") if hasattr(msg, "get") else None
    if event not in EVENTS:
        return False
    if event == "RTM_NEWNEIGH":
        state = msg.get("state") if hasattr(msg, "get") else None
        if state is not None and state & NUD_TRANSIENT and not state & ~NUD_TRANSIENT:
            return False
    return True


class NetWatch:
    def __init__(self, on_change, debounce: float = 0.1, min_interval: float = 0.5, ipr_factory=None):
        self.on_change = on_change
        self.debounce = debounce
        self.min_interval = min_interval
        self._factory = ipr_factory
        self.ipr = None
        self.loop = None
        self._pending = None          # asyncio.TimerHandle of the next call
        self._last = -1e9             # monotonic time of the last call
        self.events = 0               # relevant events seen (tests, debugging)
        self.calls = 0

    def start(self, loop) -> bool:
        """Bind to the groups and read from `loop`; False (logged) if netlink refuses."""
        self.loop = loop
        try:
            if self._factory is not None:
                self.ipr = self._factory()
            else:
                from pyroute2 import IPRoute
                self.ipr = IPRoute()
            self.ipr.bind(groups=GROUPS)
            loop.add_reader(self.ipr.fileno(), self._readable)
        except Exception as e:        # the timer still rescans
            log.warning("netlink events not available (%s): following the network every rescan only", e)
            self.close()
            return False
        return True

    def _readable(self) -> None:
        try:
            msgs = self.ipr.get()
        except Exception as e:        # ENOBUFS after a burst: events were lost, refresh anyway
            log.debug("reading netlink events: %s", e)
            msgs = None
        if msgs is None or any(relevant(m) for m in msgs):
            self.events += 1
            self.kick()

    def kick(self) -> None:
        """Ask for a refresh: at most one pending; debounced and rate-limited."""
        if self._pending is not None or self.loop is None:
            return
        delay = max(self.debounce, self._last + self.min_interval - time.monotonic())
        self._pending = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self.calls += 1
        try:
            self.on_change()
        except Exception:
            log.exception("refresh after a netlink event failed; the rescan timer retries")

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self.ipr is not None:
            try:
                if self.loop is not None:
                    self.loop.remove_reader(self.ipr.fileno())
            except Exception:
                pass
            try:
                self.ipr.close()
            except Exception:
                pass
            self.ipr = None
