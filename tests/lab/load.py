"""Client load for the chaos tests: new connections all the time, plus long-lived streams.

Runs inside the lab's client namespace (started by tests/lab/chaos.py's
LoadClient) and is driven by one command per line on stdin; every command is
answered by one JSON line on stdout:

  window            start a measurement window: zero the counters, replace
                    every stream that broke, wait until all of them deliver
                    lines again -> {"streams": {backend: count}}
  report            what happened since `window` -> see Load.report()
  recycle BACKEND [PORT]
                    close the streams served by BACKEND ("*": all) and open new ones;
                    with PORT, new streams bind to source ports PORT, PORT+1, ...
  quit              stop

New connections: `--workers` loops, each making one HTTP/1.0 GET / at a time
(new TCP connection each) with a `--timeout` deadline, then pausing
`--pause` s. A request fails when it raises, times out or does not answer 200
with a backend's name. One taking longer than SLOW_S is also counted as slow
(typically a lost SYN retransmitted after 1 s). `by_backend` counts only the
requests that began inside the window (one in flight when it opened may have
been balanced before the event).

Streams: `--streams` GET /stream (the backend writes one line every 50 ms
until the client goes). Each reader records its backend, the longest gap
between two reads, and whether the connection was reset or closed. A stream
that delivered nothing for STALL_S at report time is stalled.

Bounded: everything stops after --max-seconds even if nobody says quit.
"""

import argparse
import asyncio
import collections
import json
import sys
import time

SLOW_S = 0.9
# Longer than a few TCP retransmissions (RTO 200 ms doubling), and than the pauses a
# busy 2-CPU machine inflicts on the Python processes at both ends: a stream silent
# for this long is not coming back by itself.
STALL_S = 3.0


class Stream:
    def __init__(self, n):
        self.n = n
        self.backend = None
        self.reset = False
        self.closed = False
        self.error = ""
        self.last = None
        self.max_gap = 0.0
        self.gap_at = 0.0       # when the longest gap ended (monotonic)
        self.lines = 0
        self.task = None
        self.writer = None

    @property
    def broken(self):
        return self.reset or self.closed

    def gap_now(self):
        return time.monotonic() - self.last if self.last else 0.0


class Load:
    def __init__(self, args):
        self.a = args
        self.streams = []
        self.next_id = 0
        self.next_port = None     # source port of the next stream (None: the kernel's choice)
        self.zero()

    def zero(self):
        self.ok = 0
        self.failed = 0
        self.slow = 0
        self.errors = collections.Counter()
        self.by_backend = collections.Counter()
        self.max_latency = 0.0
        self.window_start = time.monotonic()
        for s in self.streams:
            s.max_gap = 0.0

    # ---------------------------------------------------------------- requests
    async def one_request(self):
        t0 = time.monotonic()
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.a.vip, self.a.port), self.a.timeout)
            writer.write(f"GET / HTTP/1.0\r\nHost: {self.a.vip}\r\n\r\n".encode())
            data = await asyncio.wait_for(reader.read(-1), self.a.timeout - (time.monotonic() - t0))
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise ValueError(f"bad answer {head[:40]!r}")
            name = body.strip().decode() or "?"
            if t0 >= self.window_start:
                self.by_backend[name] += 1
            self.ok += 1
        except Exception as e:  # every failure counts, by kind
            self.failed += 1
            self.errors[type(e).__name__] += 1
        finally:
            if writer is not None:
                writer.close()
        took = time.monotonic() - t0
        self.max_latency = max(self.max_latency, took)
        if took > SLOW_S:
            self.slow += 1

    async def worker(self):
        while True:
            await self.one_request()
            await asyncio.sleep(self.a.pause)

    # ---------------------------------------------------------------- streams
    async def run_stream(self, s, port=None):
        try:
            local = ("0.0.0.0", port) if port else None
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.a.vip, self.a.port, local_addr=local), self.a.timeout)
            s.writer = writer
            writer.write(f"GET /stream HTTP/1.0\r\nHost: {self.a.vip}\r\n\r\n".encode())
            buf = b""
            while True:
                data = await reader.read(4096)
                now = time.monotonic()
                if not data:
                    s.closed = True
                    return
                if s.last is not None and now - s.last > s.max_gap:
                    s.max_gap, s.gap_at = now - s.last, now
                s.last = now
                buf += data
                if s.backend is None and b"\r\n\r\n" in buf:
                    body = buf.split(b"\r\n\r\n", 1)[1]
                    if b"\n" in body:
                        s.backend = body.split(b" ", 1)[0].decode()
                if len(buf) > 65536:
                    buf = buf[-1024:]
                s.lines += 1
        except ConnectionResetError as e:
            s.reset = True
            s.error = str(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            s.closed = True
            s.error = f"{type(e).__name__}: {e}"

    def open_stream(self):
        s = Stream(self.next_id)
        self.next_id += 1
        port = self.next_port
        if port:
            self.next_port += 1
        s.task = asyncio.ensure_future(self.run_stream(s, port))
        self.streams.append(s)
        return s

    def close_stream(self, s):
        s.task.cancel()
        if s.writer is not None:
            s.writer.close()
        self.streams.remove(s)

    async def fill_streams(self):
        """Replace broken streams; until every stream has a backend and fresh lines."""
        for s in list(self.streams):
            if s.broken or (s.last is not None and s.gap_now() > STALL_S):
                self.close_stream(s)
        while len(self.streams) < self.a.streams:
            self.open_stream()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fresh = [s for s in self.streams if s.backend and not s.broken and s.gap_now() < 0.5]
            if len(fresh) == len(self.streams):
                return True
            for s in list(self.streams):
                if s.broken:
                    self.close_stream(s)
                    self.open_stream()
            await asyncio.sleep(0.1)
        return False

    # ---------------------------------------------------------------- control
    def report(self):
        streams = [{"id": s.n, "backend": s.backend, "max_gap": round(max(s.max_gap, s.gap_now()), 3),
                    "gap_ended_at": round((time.monotonic() if s.gap_now() > s.max_gap else s.gap_at)
                                          - self.window_start, 2),
                    "reset": s.reset, "closed": s.closed, "stalled": (not s.broken) and s.gap_now() > STALL_S,
                    "error": s.error} for s in self.streams]
        return {"requests": self.ok + self.failed, "ok": self.ok, "failed": self.failed, "slow": self.slow,
                "max_latency": round(self.max_latency, 3), "errors": dict(self.errors),
                "by_backend": dict(self.by_backend), "streams": streams}

    async def control(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = (await reader.readline()).decode().strip()
            if not line or line == "quit":
                return
            cmd, _, arg = line.partition(" ")
            if cmd == "window":
                ready = await self.fill_streams()
                self.zero()
                answer = {"ready": ready,
                          "streams": dict(collections.Counter(s.backend for s in self.streams))}
            elif cmd == "report":
                answer = self.report()
            elif cmd == "recycle":
                arg, _, port = arg.partition(" ")
                self.next_port = int(port) if port else None
                for s in [s for s in self.streams if arg in (s.backend, "*")]:
                    self.close_stream(s)
                answer = {"ready": await self.fill_streams()}
            else:
                answer = {"error": f"unknown command {line!r}"}
            print(json.dumps(answer), flush=True)

    async def main(self):
        workers = [asyncio.ensure_future(self.worker()) for _ in range(self.a.workers)]
        try:
            await asyncio.wait_for(self.control(), self.a.max_seconds)
        except asyncio.TimeoutError:
            pass
        for t in workers + [s.task for s in self.streams]:
            t.cancel()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vip", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--streams", type=int, default=20)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--max-seconds", type=float, default=600)
    asyncio.run(Load(p.parse_args()).main())


if __name__ == "__main__":
    main()
