"""Receiver thread: datagrams from the group -> `shared`, with OUR pair.

Every record is counted under one key of `stats`:
  codec reasons   truncated, length, version, protocol, family, method (malformed: ignored)
  tables reasons  no_service, no_backend (we do not serve that VIP:port:proto / backend)
  "ok"            stored in `shared` (time = our clock when it arrived)
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter

from . import codec, tables

log = logging.getLogger("vc5.xdp_loader.share")

POLL_S = 0.2        # how often a blocked receive looks at stop()
WARN_EVERY_S = 60.0  # a peer sending malformed records is named at most this often


class Receiver(threading.Thread):
    def __init__(self, dp, sock):
        super().__init__(name="vc5-share-recv", daemon=True)
        self.dp, self.sock = dp, sock
        self.stats: Counter = Counter()
        self.datagrams = 0
        self._halt = threading.Event()
        self._warned: dict = {}         # peer -> monotonic time of the last warning
        sock.settimeout(POLL_S)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError as e:
                if not self._halt.is_set():
                    log.warning("flow sharing: receive failed: %s", e)
                    self._halt.wait(1.0)
                continue
            self.handle(data, peer=peer[0])

    def handle(self, data: bytes, now_ns: int | None = None, peer: str = "?") -> None:
        """Learn every flow of one datagram from `peer`."""
        self.datagrams += 1
        decoded = codec.DecodeStats()
        flows = codec.unframe(data, decoded)
        decoded.pop("ok", None)
        self.stats.update(decoded)
        if decoded:
            self._warn(peer, decoded)
        now = tables.monotonic_ns() if now_ns is None else now_ns
        for f in flows:
            try:
                self.stats[tables.learn(self.dp, f, now)] += 1
            except OSError as e:
                self.stats["map_errors"] += 1
                log.warning("flow sharing: storing a shared flow failed: %s", e)

    def _warn(self, peer: str, skipped) -> None:
        now = time.monotonic()
        if now - self._warned.get(peer, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[peer] = now
            log.warning("flow sharing: ignored malformed records from %s (%s; totals so far: %s)", peer,
                        ", ".join(f"{k} {n}" for k, n in sorted(skipped.items())), dict(self.stats))

    def stop(self, timeout: float = 2.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout)
