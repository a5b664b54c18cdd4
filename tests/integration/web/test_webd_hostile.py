"""A hostile-client suite for vc5-webd (issue 12): a real, socket-activated webd (demo data, no bus)
with LimitNOFILE=64 and a cap of 16 connections, under a slowloris at twice the cap, then at 80
connections as in the issue's reproduction (half-open connections each sending a header byte every
second, reopened when closed), endless oversized request lines and header blocks, and huge bodies, all
at once. Throughout, /metrics and /status.json must answer within 1 s, every time; webd's RSS stays
bounded; the counters on /metrics show what happened. Before the guard, the 80-connection case left
webd out of descriptors ("socket.accept() out of system resource") and 8 of 10 requests timed out.
Loopback only; ~20 s."""

import asyncio
import http.client
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.web.webd_process import Webd
from tests.lib.wait import until

CAP = 16
NOFILE = 64
HEADER_TIMEOUT = 3.0
RUN_S = 2.5 * HEADER_TIMEOUT        # long enough for header deadlines to expire under attack
RSS_BOUND_KB = 40 * 1024            # growth allowed over the idle RSS


class Attack:
    """Hostile clients on their own event loop, in a thread; `stop()` ends them."""

    def __init__(self, port: int, slowloris: int):
        self.port, self.n = port, slowloris
        self.loop = asyncio.new_event_loop()
        self.stopping = None
        self.counts = {"slowloris_opened": 0, "oversized": 0, "bodies": 0}
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.main(),), daemon=True)

    async def main(self):
        self.stopping = asyncio.Event()
        tasks = [asyncio.create_task(self.slowloris()) for _ in range(self.n)]
        tasks += [asyncio.create_task(self.oversized(i)) for i in range(3)]
        tasks.append(asyncio.create_task(self.huge_body()))
        await self.stopping.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def slowloris(self):
        """A request head that never ends: one header byte a second; reopened 0.2 s after a close."""
        while True:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.port)
                self.counts["slowloris_opened"] += 1
                w.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while not r.at_eof():
                    w.write(b"X")
                    await w.drain()
                    try:
                        await asyncio.wait_for(r.read(1024), 1.0)
                    except asyncio.TimeoutError:
                        pass
                w.close()
            except OSError:
                pass
            await asyncio.sleep(0.2)

    async def oversized(self, kind: int):
        """A 64 KiB request line, 100 headers of 8 KiB, or one 1 MiB header, again and again."""
        head = [b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000) for i in range(100))
                + b"\r\n",
                b"GET / HTTP/1.1\r\nX-Huge: " + b"h" * (1 << 20) + b"\r\n\r\n"][kind]
        while True:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.write(head)
                await asyncio.wait_for(r.read(), 5)
                self.counts["oversized"] += 1
                w.close()
            except (OSError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.05)

    async def huge_body(self):
        """A POST announcing 10 GB and streaming it as fast as webd takes it."""
        chunk = b"x" * (1 << 20)
        while True:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.write(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
                self.counts["bodies"] += 1
                for _ in range(10000):
                    w.write(chunk)
                    await asyncio.wait_for(w.drain(), 5)
                w.close()
            except (OSError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        until(lambda: self.stopping is not None, timeout=5)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def timed_get(base: str, path: str) -> tuple[float, bytes]:
    t0 = time.monotonic()
    with urllib.request.urlopen(base + path, timeout=1.0) as r:
        assert r.status == 200
        body = r.read()
    return time.monotonic() - t0, body


def scrape(base: str, path: str, retries: list) -> float:
    """A scraper's request: a connection closed before it was read (evicted while its request
    was still in flight, which eviction cannot tell from a slowloris) or refused with 503 (every
    slot busy at that instant) is retried, as a scraper does within its timeout; the answer must
    come within 1 s of the first attempt. Retries are recorded."""
    t0, attempts = time.monotonic(), 0
    while True:
        attempts += 1
        try:
            timed_get(base, path)
            break
        except (http.client.RemoteDisconnected, ConnectionResetError):
            pass
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise
        if attempts == 1:
            retries.append(path)            # scrapes that needed a retry (not attempts)
        assert time.monotonic() - t0 < 1.0, f"{path}: no answer within 1 s ({attempts} attempts)"
    took = time.monotonic() - t0
    assert took < 1.0, f"{path}: {took:.2f} s in {attempts} attempts"
    return took


def metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
                or line.startswith(name + "{"))


@pytest.mark.parametrize("slowloris", [2 * CAP, 80], ids=["2x-cap", "80-as-in-issue-12"])
def test_metrics_and_status_answer_within_1s_under_attack(slowloris):
    with Webd("--demo", "--interval", "0.5", "--max-connections", str(CAP), "--header-timeout",
              str(HEADER_TIMEOUT), nofile=NOFILE) as webd:
        until(lambda: _answers(webd.base), timeout=15, message="webd did not start")
        idle_rss = rss_kb(webd.proc.pid)
        latencies, retries, peak_rss = [], [], idle_rss
        with Attack(webd.port, slowloris) as attack:
            until(lambda: attack.counts["slowloris_opened"] >= slowloris, timeout=5)
            deadline = time.monotonic() + RUN_S
            while time.monotonic() < deadline:          # back to back: every request is a sample
                for path in ("/metrics", "/status.json"):
                    latencies.append(scrape(webd.base, path, retries))  # fails past 1 s
                peak_rss = max(peak_rss, rss_kb(webd.proc.pid))
            counts = dict(attack.counts)
        assert webd.proc.poll() is None, webd.output()
        _, body = timed_get(webd.base, "/metrics")
        log = webd.output()
    text = body.decode()
    latencies.sort()
    print(f"\n{len(latencies)} requests under attack: median {latencies[len(latencies) // 2] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms, {len(retries)} retried; "
          f"RSS {idle_rss} -> peak {peak_rss} kB; attack {counts}; "
          f"evicted {metric(text, 'vc5_webd_connections_evicted_total'):.0f}, "
          f"rejected {metric(text, 'vc5_webd_connections_rejected_total'):.0f}")
    assert latencies[-1] < 1.0 and len(latencies) > 20
    assert len(retries) <= len(latencies) // 50, f"{len(retries)} of {len(latencies)} requests retried"
    assert peak_rss - idle_rss < RSS_BOUND_KB
    assert counts["oversized"] > 0 and counts["bodies"] > 0
    assert metric(text, "vc5_webd_connections_max") == CAP
    assert metric(text, "vc5_webd_connections_evicted_total") > 0
    assert 'vc5_webd_requests_refused_total{reason="bad_request"} 0' not in text
    assert 'vc5_webd_requests_refused_total{reason="body"} 0' not in text
    # Never out of descriptors (asyncio would stop accepting for 1 s); no traceback per bad request;
    # the limit warnings rate-limited (one per 10 s at most).
    assert "out of system resource" not in log and "Traceback" not in log, log[-3000:]
    assert 1 <= log.count("connection limits hit") <= 2, log[-3000:]


def _answers(base):
    try:
        return timed_get(base, "/metrics")
    except OSError:
        return None
