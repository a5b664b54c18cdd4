"""dbus-next 0.2.3's writer must wait on a full socket instead of dropping the bus connection."""

import asyncio
from queue import Queue

from vc5.common.bus import busfix


class FullOnceSocket:
    def __init__(self):
        self.calls = 0
        self.sent = b""

    def send(self, data):
        self.calls += 1
        if self.calls == 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        self.sent += bytes(data[:3])          # a partial write, then the rest
        return min(3, len(data))


class Loop:
    def __init__(self):
        self.removed = False

    def remove_writer(self, fd):
        self.removed = True


class Bus:
    finalized = None

    def _finalize(self, e):
        self.finalized = e


def writer():
    w = type("W", (), {})()
    w.messages, w.buf, w.offset, w.unix_fds, w.fut, w.fd = Queue(), None, 0, None, None, 7
    w.negotiate_unix_fd, w.sock, w.loop, w.bus = False, FullOnceSocket(), Loop(), Bus()
    return w


def test_full_socket_waits_then_completes():
    assert busfix.patch()
    from dbus_next.aio.message_bus import _MessageWriter
    assert _MessageWriter.write_callback is busfix._write_callback

    async def main():
        w = writer()
        fut = asyncio.get_running_loop().create_future()
        w.messages.put_nowait((b"hello", [], fut))
        busfix._write_callback(w)            # EAGAIN: nothing lost, connection kept
        assert w.bus.finalized is None and not fut.done()
        busfix._write_callback(w)            # writable: 3 bytes
        busfix._write_callback(w)            # the rest
        assert fut.done() and w.sock.sent == b"hello"
        busfix._write_callback(w)
        assert w.loop.removed and w.bus.finalized is None

    asyncio.run(main())


def test_other_errors_still_finalize():
    class Broken(FullOnceSocket):
        def send(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    async def main():
        w = writer()
        w.sock = Broken()
        fut = asyncio.get_running_loop().create_future()
        w.messages.put_nowait((b"x", [], fut))
        busfix._write_callback(w)
        assert isinstance(w.bus.finalized, BrokenPipeError) and isinstance(fut.exception(), BrokenPipeError)

    asyncio.run(main())
