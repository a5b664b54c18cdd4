"""Bounded input for webd's HTTP listener: a connection cap, header/idle/request deadlines, head size.

Why (docs/observability.md, "Bounded input"): aiohttp 3.8 with its defaults
has no deadline for reading a request head. A connection that sends its head
one byte every few seconds holds a handler, a descriptor and a slot forever;
80 of them held the console and /metrics down for 90 s.

What aiohttp 3.8 (Debian 12) offers, and what we use of it: keyword arguments
of `web.RequestHandler` (web.Server passes them through unchanged):
`keepalive_timeout` (idle time between two requests, enforced only once a
first response went out), `max_line_size`, `max_field_size`, `max_headers`
(request-line and header limits: a longer line is a 400 from the parser),
`read_bufsize` (the body buffer's high-water mark, after which aiohttp stops
reading the socket) and `lingering_time` (how long a body the handler did not
read is drained; 0 here: webd takes no bodies, so it closes instead).

What aiohttp 3.8 lacks and this module adds: `Listener` is webd's accept loop
(in place of loop.create_server(): see its doc) and `Guard` the protocol
factory in place of aiohttp's `web.Server` (which it wraps, so the
application, its routing and `runner.cleanup()` are aiohttp's own); it makes a
`GuardedHandler` (a `web.RequestHandler` subclass) per connection, through
loop.connect_accepted_socket(). We chose a subclass over a per-connection
watchdog task because
the three hooks we need are already methods of the handler: `connection_made`
(admission, the first deadline), `data_received` (head bytes, head complete)
and `log_access` (called by aiohttp after every response, also on a client
reset: the connection is idle again). One `loop.call_at` timer per
connection, re-armed at each state change, is the deadline:

- header: a request head must be complete `header_timeout` after the
  connection opened or the first byte of the next request (408, RFC 9110
  §15.5.9, then close);
- idle: a kept-alive connection with no new byte for `idle_timeout` is closed
  (RFC 9112 §9.6 lets a server close an idle connection at any time);
- request: a response not written after `request_timeout` (a client that does
  not read its response) is aborted.

A connection past the cap (`max_connections`) first evicts the connection
that has waited longest with a partial head or idle after a response (it costs
the server nothing to drop, and a slowloris holds exactly such connections),
then one that has sent nothing yet; only when every slot is serving a request
is the new one closed at once (503, RFC 9110 §15.6.4). Either is counted and
logged at most once per LOG_EVERY_S.
An incomplete head past `max_head` bytes is refused with 431 (RFC 6585 §5: a
complete one is bounded by the parser's max_headers x max_field_size);
more than MAX_PIPELINED requests queued unanswered (RFC 9112 §9.3.2) closes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import resource
import struct
import termios
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger("vc5.webd")

SERVER = "vc5-webd"   # the Server: header: no versions (issue 12, "no version banner")
LOG_EVERY_S = 10.0
MAX_PIPELINED = 8
HEAD, BUSY = "head", "busy"


def default_max_connections(nofile: int | None = None) -> int:
    """What RLIMIT_NOFILE (LimitNOFILE=) leaves after 48 descriptors for the process itself, at most 256.

    Admission is decided at accept() (Listener), so open connections never
    exceed the cap by more than the one being refused: webd never meets EMFILE.
    """
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile == resource.RLIM_INFINITY:
            nofile = 65536
    return max(4, min(256, nofile - 48))


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    header_timeout: float = 10.0      # a request head must arrive within this
    idle_timeout: float = 15.0        # kept-alive, nothing sent
    request_timeout: float = 30.0     # head complete -> response written
    max_line_size: int = 8190         # >= the 8000 octets RFC 9112 §3 recommends supporting
    max_field_size: int = 8190
    max_headers: int = 64
    max_head: int = 32768             # the whole head, all lines together

    def handler_args(self) -> dict:
        """Keyword arguments of aiohttp 3.8's web.RequestHandler."""
        # aiohttp's own keep-alive close is only a backstop behind our idle and header deadlines.
        return {"keepalive_timeout": self.idle_timeout + self.header_timeout,
                "max_line_size": self.max_line_size, "max_field_size": self.max_field_size,
                "max_headers": self.max_headers,
                "read_bufsize": 16384, "lingering_time": 0.0, "access_log": None}


class Stats:
    """Counters for /metrics (docs/observability.md, "vc5_webd_*")."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.open = 0
        self.accepted = 0
        self.rejected = 0
        self.evicted = 0
        self.timeouts = collections.Counter()    # phase -> count
        self.refused = collections.Counter()     # reason -> count (requests answered 4xx and closed)
        self._logged_at = -LOG_EVERY_S
        self._unlogged = collections.Counter()

    def note(self, loop: asyncio.AbstractEventLoop, what: str) -> None:
        """Count `what` towards the next rate-limited warning."""
        self._unlogged[what] += 1
        now = loop.time()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            text = ", ".join(f"{n} {k}" for k, n in sorted(self._unlogged.items()))
            self._unlogged.clear()
            log.warning("connection limits hit (cap %d, %d open): %s in the last %.0f s at most",
                        self.limits.max_connections, self.open, text, LOG_EVERY_S)

    def families(self):
        from .metrics import Family
        f = Family("vc5_webd_connections", "HTTP connections open now", "gauge")
        f.add((), self.open)
        yield f.metric
        f = Family("vc5_webd_connections_max", "Cap on open HTTP connections", "gauge")
        f.add((), self.limits.max_connections)
        yield f.metric
        for name, value, text in (
                ("accepted", self.accepted, "HTTP connections admitted"),
                ("rejected", self.rejected, "HTTP connections closed at once: every slot was busy"),
                ("evicted", self.evicted, "Connections waiting for a request closed to admit a new one")):
            f = Family(f"vc5_webd_connections_{name}_total", text, "counter")
            f.add((), value)
            yield f.metric
        f = Family("vc5_webd_connection_timeouts_total", "Connections closed by a deadline", "counter",
                   ("phase",))
        for phase in ("header", "idle", "request"):
            f.add((phase,), self.timeouts[phase])
        yield f.metric
        f = Family("vc5_webd_requests_refused_total", "Requests refused with a 4xx before any handler",
                   "counter", ("reason",))
        for reason in ("bad_request", "head_too_large", "body", "pipelined", "host"):
            f.add((reason,), self.refused[reason])
        yield f.metric


def _raw_response(code: int, phrase: str) -> bytes:
    return (f"HTTP/1.1 {code} {phrase}\r\nServer: {SERVER}\r\nContent-Length: 0\r\n"
            f"Connection: close\r\n\r\n").encode()


class Guard:
    """Protocol factory (asyncio) for every listener: admission, deadlines and counters."""

    def __init__(self, server: web.Server, limits: Limits, stats: Stats | None = None):
        self.server = server
        self.limits = limits
        self.stats = stats or Stats(limits)
        self.active: set = set()
        self.reserved = 0        # accepted, transport not made yet
        # Eviction order (oldest first in each): `waiting` (a partial head, or idle after a response:
        # the slowloris, and what is cheapest to reopen), then `fresh` (nothing received yet; a real
        # client's request is usually in flight: it is evicted last).
        self.waiting: collections.OrderedDict = collections.OrderedDict()
        self.fresh: collections.OrderedDict = collections.OrderedDict()

    def __call__(self) -> "GuardedHandler":
        loop = asyncio.get_running_loop()
        return GuardedHandler(self, self.server, loop=loop, **self.limits.handler_args())

    def make_room(self, loop) -> bool:
        """Room for one more connection: True, evicting if at the cap; False if every slot is busy."""
        if len(self.active) + self.reserved < self.limits.max_connections:
            return True
        victim = next(iter(self.waiting), None) or _first_without_bytes(self.fresh)
        if victim is None:
            self.stats.rejected += 1
            self.stats.note(loop, "rejected (every slot busy)")
            return False
        self.stats.evicted += 1
        self.stats.note(loop, "evicted (waiting for a request)")
        victim.drop()
        return True

    def admitted(self, handler: "GuardedHandler") -> None:
        self.active.add(handler)
        self.stats.accepted += 1
        self.stats.open = len(self.active)

    def release(self, handler: "GuardedHandler") -> None:
        self.active.discard(handler)
        self.waiting.pop(handler, None)
        self.fresh.pop(handler, None)
        self.stats.open = len(self.active)


class Listener:
    """webd's accept loop on one listening socket, in place of loop.create_server().

    Admission is decided at accept(), before any transport exists: a refused
    connection costs a descriptor for microseconds, so the process never runs
    out of them (at EMFILE asyncio's own accept loop pauses for a whole second).
    asyncio.Server would also call listen() with its own backlog, shrinking the
    accept queue systemd made (Backlog=, SOMAXCONN): a full queue drops SYNs, and
    a real client waits for its SYN to be retransmitted (1 s). Accepts are taken
    in batches of cap/8 per loop turn so that a connect storm cannot evict a
    connection before its first bytes were even read.
    """

    def __init__(self, guard: Guard, sock):
        self.guard, self.sock = guard, sock
        self.loop = asyncio.get_running_loop()
        self.batch = max(1, guard.limits.max_connections // 8)
        self.tasks: set = set()
        self.closed = False
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(self.batch):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:    # EMFILE, ENFILE, ENOBUFS: try again shortly
                self.guard.stats.note(self.loop, f"accept failed ({e.strerror})")
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(0.1, self._resume)
                return
            if not self.guard.make_room(self.loop):
                with contextlib.suppress(OSError):
                    conn.setblocking(False)
                    conn.send(_raw_response(503, "Service Unavailable"))
                conn.close()
                continue
            conn.setblocking(False)
            self.guard.reserved += 1
            task = self.loop.create_task(self._connect(conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _connect(self, conn) -> None:
        try:
            await self.loop.connect_accepted_socket(self.guard, conn)
        except Exception:
            conn.close()
        finally:
            self.guard.reserved -= 1

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    @property
    def name(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


def _first_without_bytes(fresh):
    """The oldest fresh connection with nothing in its receive queue. One whose request already
    arrived but was not read yet (the loop is busy accepting a connect storm) is a real client
    about to be served: evicting it would fail the request the cap exists to protect."""
    for handler in fresh:
        sock = handler.transport.get_extra_info("socket") if handler.transport is not None else None
        if sock is None or _queued_bytes(sock.fileno()) == 0:
            return handler
    return None


def _queued_bytes(fd: int) -> int:
    """Bytes waiting in a TCP socket's receive queue (FIONREAD, tcp(7)); 0 if it cannot be told."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class GuardedHandler(web.RequestHandler):
    """aiohttp's per-connection protocol with admission, deadlines and a head-size cap (module doc)."""

    def __init__(self, guard: Guard, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.state = HEAD
        self.head_bytes = 0
        self.requests_seen = 0
        self.deadline: asyncio.TimerHandle | None = None
        self.admitted = False
        self.raw = None

    # ---------------------------------------------------------------- admission

    def connection_made(self, transport) -> None:
        self.raw = transport
        self.admitted = True
        self.guard.admitted(self)
        super().connection_made(transport)
        self._enter(HEAD, self.guard.limits.header_timeout, "header")

    def connection_lost(self, exc) -> None:
        if not self.admitted:
            return
        self._disarm()
        self.guard.release(self)
        super().connection_lost(exc)

    def drop(self, response: bytes = b"") -> None:
        """Close now (a short response first if given); the slot is free at once."""
        self._disarm()
        self.guard.release(self)
        self._force_close = True
        if self._waiter is not None:
            self._waiter.cancel()
        raw = self.raw
        if response and raw is not None and not raw.is_closing():
            raw.write(response)
            raw.close()
            self._loop.call_later(1.0, raw.abort)   # a peer that does not read: do not wait for it
        elif raw is not None:
            raw.abort()

    # ---------------------------------------------------------------- states and deadlines

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _enter(self, state: str, seconds: float, phase: str) -> None:
        self._disarm()
        self.state = state
        self.guard.waiting.pop(self, None)
        self.guard.fresh.pop(self, None)
        if state == HEAD:
            queue = self.guard.fresh if not (self.head_bytes or self.requests_seen) else self.guard.waiting
            queue[self] = None
        self.deadline = self._loop.call_later(seconds, self._expired, phase)

    def _expired(self, phase: str) -> None:
        self.deadline = None
        self.guard.stats.timeouts[phase] += 1
        self.guard.stats.note(self._loop, f"{phase} timeouts")
        self.drop(_raw_response(408, "Request Timeout") if phase == "header" and self.head_bytes else b"")

    def _refuse(self, reason: str, code: int, phrase: str) -> None:
        self.guard.stats.refused[reason] += 1
        self.guard.stats.note(self._loop, f"refused ({reason})")
        self.drop(_raw_response(code, phrase))

    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close:
            return
        if self.state == HEAD and self.head_bytes == 0 and self.requests_seen:
            self._enter(HEAD, self.guard.limits.header_timeout, "header")   # idle -> the next head began
        if self._payload_parser is None:     # bytes of heads, not of a body (refused with 413 anyway)
            self.head_bytes += len(data)
            if self.guard.fresh.pop(self, False) is None:   # first bytes: evictable as a partial head
                self.guard.waiting[self] = None
        super().data_received(data)
        if self._request_count > self.requests_seen:
            self.requests_seen = self._request_count
            self.head_bytes = 0
            if self.state == HEAD:
                self._enter(BUSY, self.guard.limits.request_timeout, "request")
            if len(self._messages) > MAX_PIPELINED:
                self._messages.clear()     # each parsed request costs memory: answer none of them
                self._refuse("pipelined", 429, "Too Many Requests")
        elif self.head_bytes > self.guard.limits.max_head:   # the parser's buffer for an incomplete head
            self._refuse("head_too_large", 431, "Request Header Fields Too Large")

    def log_access(self, request, response, time: float) -> None:
        """aiohttp calls this after every response: idle again, unless more requests are queued."""
        if not self.admitted or self._force_close or self.transport is None:
            return
        if self._messages:
            self._enter(BUSY, self.guard.limits.request_timeout, "request")
        else:
            self._enter(HEAD, self.guard.limits.idle_timeout, "idle")

    def handle_error(self, request, status: int = 500, exc=None, message=None):
        """The parser's 400s (line or header too long, malformed): counted, answered, not logged with a
        traceback (aiohttp logs every one at ERROR, which a hostile client would turn into a flood)."""
        if status >= 500:
            resp = super().handle_error(request, status, exc, message)
        else:
            self.guard.stats.refused["bad_request"] += 1
            self.guard.stats.note(self._loop, "refused (bad_request)")
            # Not the parser's message: it quotes the request back.
            resp = web.Response(status=status, text=f"Bad Request ({type(exc).__name__})\n")
            resp.force_close()
        resp.headers["Server"] = SERVER
        return resp
