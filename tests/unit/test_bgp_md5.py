"""struct tcp_md5sig as Linux lays it out (linux/tcp.h), and that the kernel accepts it."""

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
