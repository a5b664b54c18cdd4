"""Work around dbus-next 0.2.3 (Debian 12) dropping the bus connection when its socket is full.

dbus_next.aio.message_bus._MessageWriter.write_callback calls sock.send() on
a non-blocking socket and treats *any* exception as fatal: when dbus-daemon
has not yet drained the socket buffer (a burst of large PropertiesChanged
signals: thousands of backends), send() raises BlockingIOError and the whole
connection is finalized; the service silently stops publishing. The same
method below treats EAGAIN/EINTR as "wait until writable", which is what the
writer's add_writer registration is for.

Apply once per process with patch(); it is a no-op if dbus-next's writer does
not look like the one this was written against.
"""

import array
import socket

_PATCHED = False


def _write_callback(self):
    from dbus_next.aio.message_bus import _future_set_exception, _future_set_result
    try:
        while True:
            if self.buf is None:
                if self.messages.qsize() == 0:
                    self.loop.remove_writer(self.fd)
                    return
                buf, unix_fds, fut = self.messages.get_nowait()
                self.unix_fds = unix_fds
                self.buf = memoryview(buf)
                self.offset = 0
                self.fut = fut
            try:
                if self.unix_fds and self.negotiate_unix_fd:
                    ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", self.unix_fds))]
                    self.offset += self.sock.sendmsg([self.buf[self.offset:]], ancdata)
                    self.unix_fds = None
                else:
                    self.offset += self.sock.send(self.buf[self.offset:])
            except (BlockingIOError, InterruptedError):
                return          # still registered with add_writer: called again when writable
            if self.offset >= len(self.buf):
                self.buf = None
                _future_set_result(self.fut, None)
            else:
                return
    except Exception as e:
        _future_set_exception(self.fut, e)
        self.bus._finalize(e)


def patch() -> bool:
    """Install the fixed write_callback; True if installed (now or before)."""
    global _PATCHED
    if _PATCHED:
        return True
    try:
        from dbus_next.aio import message_bus as mb
        from dbus_next.aio.message_bus import _future_set_exception, _future_set_result  # noqa: F401
    except ImportError:
        return False
    writer = getattr(mb, "_MessageWriter", None)
    if writer is None or not hasattr(writer, "write_callback"):
        return False
    writer.write_callback = _write_callback
    _PATCHED = True
    return True
