"""struct tcp_md5sig as Linux lays it out (linux/tcp.h), and that the kernel accepts it."""

import asyncio
import ipaddress
import socket
import struct

import pytest

from vc5.bgpd import md5


def test_struct_layout_ipv4():
    raw = md5.tcp_md5sig("192.0.2.1", "s3cret")
    assert len(raw) == 216                       # 128 + 1 + 1 + 2 + 4 + 80
    assert struct.unpack("=H", raw[:2])[0] == socket.AF_INET
    assert raw[4:8] == bytes([192, 0, 2, 1])
    assert struct.unpack("=H", raw[130:132])[0] == 6
    assert raw[136:142] == b"s3cret" and raw[142:] == bytes(74)


def test_struct_layout_ipv6_and_mapped():
    raw = md5.tcp_md5sig("2001:db8::1", "k")
    assert struct.unpack("=H", raw[:2])[0] == socket.AF_INET6
    assert raw[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert str(md5.peer_for_socket(socket.AF_INET6, "192.0.2.1")) == "::ffff:c000:201"


def test_key_too_long():
    with pytest.raises(ValueError):
        md5.tcp_md5sig("192.0.2.1", "x" * 81)


def test_kernel_accepts_the_option():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        md5.set_key(s, "192.0.2.1", "s3cret")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        md5.set_key(s, md5.peer_for_socket(socket.AF_INET6, "192.0.2.1"), "s3cret")


# ---------------------------------------------------------------- keys on reload

def _bgp(*peers):
    from vc5.config.model import Bgp
    return Bgp(as_number=65001, router_id=ipaddress.IPv4Address("10.0.0.2"), peers=tuple(peers))


def _peer(key=None, address="127.0.0.1"):
    from vc5.config.model import Peer
    return Peer(address=ipaddress.ip_address(address), as_number=65001, passive=True, md5=key)


async def _connects(port, key, timeout=0.5) -> bool:
    """A TCP connection from 127.0.0.1 to the listener, signed with `key` (None: unsigned). The
    kernel drops segments whose signature does not match the listener's key for us: it times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    if key:
        md5.set_key(sock, "127.0.0.3", key)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.3", port)), timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        sock.close()


def test_reload_replaces_and_removes_listening_socket_keys():
    from vc5.bgpd.speaker import Speaker, bind_listener

    async def main():
        listener = bind_listener("127.0.0.3", 0)
        port = listener.getsockname()[1]
        sp = Speaker(_bgp(_peer("old")), hold_down=0, retry_min=5, retry_max=5, learn=0)
        sp.start()
        await sp.serve([listener])
        assert not await _connects(port, None) and await _connects(port, "old")
        sp.reconfigure(_bgp(_peer("new")))                        # key changed: replaced
        assert not await _connects(port, "old") and await _connects(port, "new")
        sp.reconfigure(_bgp(_peer(None)))                         # key removed
        assert await _connects(port, None) and not await _connects(port, "new")
        sp.reconfigure(_bgp(_peer("again")))
        assert not await _connects(port, None)
        sp.reconfigure(_bgp(_peer(None, "127.0.0.9")))            # peer removed: its key goes too
        assert await _connects(port, None)
        await sp.shutdown()
    asyncio.run(asyncio.wait_for(main(), 30))
