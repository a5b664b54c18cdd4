"""Sender thread: every 10 ms (vc5's ticker), the flows the program noted in
share_queue become vc5 records in datagrams under 1,400 bytes to the group.

A noted flow is dropped (counted "stale") when it is older than 2 s (vc5's
ReadFlow) or its pair record no longer has the flow's cookie. A send error is
counted and logged once per kind; the thread keeps going.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from . import codec, tables

log = logging.getLogger("vc5.xdp_loader.share")

INTERVAL_S = 0.010


class Sender(threading.Thread):
    def __init__(self, dp, sock, interval: float = INTERVAL_S):
        super().__init__(name="vc5-share-send", daemon=True)
        self.dp, self.sock, self.interval = dp, sock, interval
        self.stats: Counter = Counter()     # flows, datagrams, stale, send_errors
        self._halt = threading.Event()
        self._errors_seen: set = set()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.tick()
            except OSError as e:            # the map read failed: keep trying
                self._once(f"share_queue: {e}")

    def tick(self, now_ns: int | None = None) -> int:
        """Drain the queue once and send; returns the number of flows sent."""
        now = tables.monotonic_ns() if now_ns is None else now_ns
        records = []
        for entry in tables.pop_noted(self.dp):
            f = tables.outgoing(self.dp, entry, now)
            if f is None:
                self.stats["stale"] += 1
            else:
                records.append(codec.encode_record(f))
        for datagram in codec.frame(records):
            try:
                self.sock.send(datagram)
                self.stats["datagrams"] += 1
            except OSError as e:
                self.stats["send_errors"] += 1
                self._once(f"sending to the flow-sharing group: {e}")
        self.stats["flows"] += len(records)
        return len(records)

    def stop(self, timeout: float = 2.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout)

    def _once(self, text: str) -> None:
        if text not in self._errors_seen:
            self._errors_seen.add(text)
            log.warning("flow sharing: %s", text)
