"""/prefixes.json: vc5 v0.2's per-source-/20 packet counts, read from the loader on demand.

vc5 v0.2 served a JSON array of 1,048,576 numbers: element i is the packets
seen from the IPv4 /20 whose address is i << 12 (`saddr >> 12`). The loader
sends only the non-zero counters (org.vc5.XdpLoader1.GetPrefixes(0)); the
dense array is rebuilt here. Read-only: GetPrefixes is a method of the read
interface, never .Manager.

Invariants: one GetPrefixes per `ttl` seconds at most, however many clients
ask (vc5 v0.1 cached 50 s; reading 2^20 per-CPU counters costs the loader
~0.7 s of CPU on 2 CPUs, bench/prefixes.py); the reply is decoded and the body
rendered off the event loop, once per read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from vc5.common import bus as vbus
from vc5.common import names, wire

log = logging.getLogger(__name__)

SLOTS = 1 << 20          # IPv4 /20s (bpf/vc5_layout.h VC5_PREFIX4_SLOTS)
TTL_S = 10.0

UNAVAILABLE = {
    "error": "per-/20 prefix counters unavailable",
    "detail": "vc5-xdp-loader (org.vc5.XdpLoader1) is not on the bus, or GetPrefixes failed: "
              "the counters live in its data plane",
}


def render(counters: wire.PrefixCounters) -> bytes:
    """vc5's shape: a JSON array of SLOTS packet counts, index = IPv4 address >> 12."""
    dense = [0] * SLOTS
    for slot, packets in counters.ipv4:
        if 0 <= slot < SLOTS:
            dense[slot] = packets
    return (json.dumps(dense, separators=(",", ":")) + "\n").encode()


class PrefixSource:
    """The rendered /prefixes.json body, refreshed from the loader at most every `ttl` s."""

    def __init__(self, reader, ttl: float = TTL_S):
        self.reader = reader
        self.ttl = ttl
        self._body: bytes | None = None
        self._at = -1e18
        self._lock = asyncio.Lock()

    async def _read(self):
        """GetPrefixes(0)'s reply as dbus-next gives it (decoded later, off the loop), or None."""
        bus = getattr(self.reader, "bus", None)
        if bus is None or getattr(self.reader, "xdp_props", None) is None:
            return None
        try:
            [value] = await vbus.call(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH,
                                      names.XDP_LOADER_IFACE, "GetPrefixes", "u", [0])
            return value
        except vbus.BusError as e:
            if e.type not in names.BUS_ERRORS_ABSENT:
                log.warning("GetPrefixes failed: %s", e.text)
            return None

    async def body(self) -> bytes | None:
        """The body, or None when the loader cannot give the counters (nothing cached is served stale
        beyond `ttl`)."""
        async with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return self._body
            counters = await self._read()
            if counters is None:
                return None          # not cached: the loader may be back for the next request
            # decoding 2^20 records takes ~1 s (bench/prefixes.py): with the rendering, in a thread
            try:
                self._body = await asyncio.to_thread(
                    lambda: render(wire.PrefixCounters.from_dbus(vbus.unwrap(counters))))
            except (TypeError, ValueError) as e:     # a reply of another shape: say so, serve 503
                log.warning("GetPrefixes reply not understood: %s", e)
                return None
            self._at = time.monotonic()
            return self._body
