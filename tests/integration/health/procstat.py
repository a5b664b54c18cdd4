"""What a process costs, read from /proc (for bench/healthd.py and the hostile-backend suite).

  * rss_kib(pid), fds(pid), threads(pid): VmRSS, open descriptors and threads now;
  * udp_rx_queue(pid, port): bytes waiting in the receive queues of the UDP
    sockets in `pid`'s network namespace (/proc/PID/net/udp and udp6, column
    rx_queue = sk_rmem_alloc, i.e. kernel memory charged for the queued
    datagrams), all local ports or one;
  * Sampler: calls a function every `every` seconds on a thread (so the
    samples do not wait for a busy event loop) and keeps the maximum and mean.
"""

import os
import threading
import time


def rss_kib(pid="self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def threads(pid="self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def fds(pid="self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def udp_rx_queue(pid="self", port=None) -> int:
    total = 0
    for name in ("udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if port is not None and int(cols[1].rsplit(":", 1)[1], 16) != port:
                        continue
                    total += int(cols[4].split(":")[1], 16)
        except FileNotFoundError:
            pass
    return total


class Sampler:
    """`with Sampler(fn, every) as s:` ... then s.max, s.mean, s.samples."""

    def __init__(self, fn, every=0.05):
        self.fn, self.every = fn, every
        self.values = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.values.append(self.fn())
            except (OSError, ValueError):
                pass
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    @property
    def max(self):
        return max(self.values, default=0)

    @property
    def mean(self):
        return sum(self.values) / len(self.values) if self.values else 0.0
