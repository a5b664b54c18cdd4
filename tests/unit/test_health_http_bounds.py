"""HTTP checks read a bounded amount from a backend (issue 12; docs/health-checks.md "Limits").

Raw asyncio servers on loopback, in this process, play hostile backends: the
status decides, at most BODY_CAP bytes of the body are read, a longer or
endless body closes the connection, the head is bounded, and no check outlives
its timeout. Well-behaved small bodies keep their connection alive.
"""

import asyncio
import time

import pytest

from vc5 import config
from vc5.healthd.checks import Result
from vc5.healthd.checks import http as hc


class Backend:
    """A raw HTTP/1.1 server answering every request with `respond(writer)`; counts connections."""

    def __init__(self, respond):
        self.respond, self.connections, self.sent, self.open = respond, 0, 0, 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        self.connections += 1
        self.open += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await self.respond(self, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def write(self, writer, data):
        writer.write(data)
        self.sent += len(data)
        await writer.drain()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


def fixed(body: bytes, extra=b""):
    async def respond(b, w):
        await b.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body)
    return respond


async def endless(b, w):
    await b.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
    while True:
        await b.write(w, b"x" * 65536)


async def endless_chunked(b, w):
    await b.write(w, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        await b.write(w, b"10000\r\n" + b"y" * 65536 + b"\r\n")


async def drip(b, w):
    await b.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while True:
        await b.write(w, b"z")
        await asyncio.sleep(0.05)


async def drip_head(b, w):
    for c in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 10000:
        await b.write(w, bytes([c]))
        await asyncio.sleep(0.01)


async def many_headers(b, w):
    await b.write(w, b"HTTP/1.1 200 OK\r\n")
    i = 0
    while True:
        await b.write(w, b"".join(b"X-H%d: %s\r\n" % (i + k, b"h" * 1000) for k in range(64)))
        i += 64


async def long_header(b, w):
    await b.write(w, b"HTTP/1.1 200 OK\r\nX-Long: ")
    while True:
        await b.write(w, b"l" * 65536)


async def bad_reason(b, w):
    await b.write(w, b"HTTP/1.1 500 " + b"\x1b[31m" + b"r" * 4000 + b"\r\nContent-Length: 0\r\n\r\n")


def probe(respond, times=1, timeout=1.0, check=None):
    """[(Result, seconds)] of `times` checks against one Backend; and the backend."""
    async def main():
        b = await Backend(respond).start()
        checker = hc.HttpChecker()
        out = []
        try:
            for _ in range(times):
                t0 = time.monotonic()
                c = check(b.port) if check else config.Check("http", b.port, path="/")
                r = await checker.probe(c, "192.0.2.1", "127.0.0.1", timeout)
                out.append((r, time.monotonic() - t0))
            await asyncio.sleep(0.05)           # the server notices a closed connection
            return out, b
        finally:
            await checker.close()
            await b.stop()
    return asyncio.run(main())


@pytest.mark.parametrize("respond", [endless, endless_chunked], ids=["content-length", "chunked"])
def test_an_endless_body_is_cut_off_and_the_status_decides(respond):
    out, b = probe(respond, times=3)
    for r, took in out:
        assert r == Result(True, "200 OK") and took < 0.5, (r, took)
    # each check closed its connection instead of reading on: 3 connections, none left open
    assert b.connections == 3 and b.open == 0
    # what the backend managed to send is bounded by socket buffers, not by the timeout
    assert b.sent < 3 * 16 * 1024 * 1024


def test_a_dripping_body_does_not_hold_the_check_past_its_timeout():
    (r, took), = probe(drip, timeout=0.4)[0]
    assert r == Result(True, "200 OK") and 0.35 < took < 0.6, (r, took)


def test_a_dripping_head_times_out():
    (r, took), = probe(drip_head, timeout=0.4)[0]
    assert not r.passed and r.diagnostic.endswith("- Timeout") and took < 0.6


@pytest.mark.parametrize("respond,words", [(many_headers, "Too many headers"),
                                           (long_header, "Got more than 8190 bytes")])
def test_a_huge_head_fails_quickly_with_a_short_diagnostic(respond, words):
    (r, took), = probe(respond)[0]
    assert not r.passed and "invalid response: " in r.diagnostic and words in r.diagnostic, r
    assert len(r.diagnostic) < 250 and took < 0.5


def test_a_reason_phrase_is_cut_and_made_printable():
    (r, _), = probe(bad_reason)[0]
    assert not r.passed and "\x1b" not in r.diagnostic and r.diagnostic.endswith("...")
    assert len(r.diagnostic) < 200


@pytest.mark.parametrize("size", [0, 3, hc.BODY_CAP])
def test_a_small_body_is_read_and_its_connection_kept_alive(size):
    out, b = probe(fixed(b"k" * size), times=3)
    assert all(r == Result(True, "200 OK") for r, _ in out)
    assert b.connections == 1


async def late_rest(b, w):
    """A body larger than the cap whose second half comes 0.3 s later."""
    await b.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"a" * 5000)
    await asyncio.sleep(0.3)
    await b.write(w, b"a" * 5000)


def test_a_large_unfinished_body_is_not_waited_for_and_its_connection_closed():
    out, b = probe(late_rest, times=3)
    for r, took in out:
        assert r == Result(True, "200 OK") and took < 0.2, (r, took)
    assert b.connections == 3           # never reused with unread bytes in flight


def test_head_requests_keep_alive():
    head = lambda port: config.Check("http", port, path="/", method="HEAD")  # noqa: E731
    out, b = probe(fixed(b""), times=3, check=head)
    assert all(r.passed for r, _ in out) and b.connections == 1


def test_keep_alive_beyond_the_descriptor_budget_reconnects_instead_of_failing(caplog):
    async def main():
        a, b = await Backend(fixed(b"ok")).start(), await Backend(fixed(b"ok")).start()
        checker = hc.HttpChecker(keepalive_budget=1)
        try:
            for _ in range(3):
                for backend in (a, b):
                    r = await checker.probe(config.Check("http", backend.port, path="/"), "192.0.2.1",
                                            "127.0.0.1", 1.0)
                    assert r == Result(True, "200 OK")
            await asyncio.sleep(0.05)
            return a.connections, b.connections, b.open
        finally:
            await checker.close()
            await a.stop()
            await b.stop()

    kept, reconnected, left_open = asyncio.run(main())
    assert (kept, reconnected, left_open) == (1, 3, 0)
    assert caplog.text.count("HTTP keep-alive is limited to 1 targets") == 1
