"""bpf/vc5_hash.h computes vc5's sdbm as independent multiply-adds: the same 16 bits as Go.

The weights are read from the header itself, so a wrong constant fails here
before any packet is sent; tests/bpf/test_xdp_forward.py checks the compiled
program picks the backend this formula does.
"""

import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "bpf", "vc5_hash.h")
TERM = re.compile(r"p\[(\d+)\] \* (\d+)u")


def go_sdbm(data: bytes) -> int:
    """Transcription of xvs's sdbm (uint32 arithmetic as in Go/C), low 16 bits kept."""
    h = 0
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & 0xffffffff
    return h & 0xffff


def _header_terms():
    text = open(HEADER).read()
    h3_expr = text[text.index("__u32 h3 ="):text.index(";", text.index("__u32 h3 ="))]
    h_expr = text[text.index("__u32 h = h3 *"):text.index(";", text.index("__u32 h = h3 *"))]
    h3 = [(int(i), int(w)) for i, w in TERM.findall(h3_expr)]
    scale = int(re.search(r"h3 \* (\d+)u", h_expr).group(1))
    tail = [(int(i), int(w)) for i, w in TERM.findall(h_expr)]
    return h3, scale, tail


H3, SCALE, TAIL = _header_terms()


def header_sdbm(tuple36: bytes) -> tuple[int, int]:
    """(hash of the 32 address bytes, hash of all 36) as vc5_sdbm computes them."""
    h3 = sum(tuple36[i] * w for i, w in H3) & 0xffffffff
    h = (h3 * SCALE + sum(tuple36[i] * w for i, w in TAIL)) & 0xffffffff
    return h3 & 0xffff, h & 0xffff


def test_the_header_weighs_every_byte_once():
    assert sorted(i for i, _ in H3) == list(range(32))
    assert sorted(i for i, _ in TAIL) == list(range(32, 36))


def test_weights_are_powers_of_63():
    for i, w in H3:
        assert w == pow(63, 31 - i, 1 << 16), i
    for i, w in TAIL:
        assert w == pow(63, 35 - i, 1 << 16), i
    assert SCALE == pow(63, 4, 1 << 16)


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=36, max_size=36))
def test_same_bits_as_go(data):
    sticky, full = header_sdbm(data)
    assert full == go_sdbm(data)
    assert sticky == go_sdbm(data[:32])


def test_fixtures():
    # IPv4 as vc5 stores it: the address in the last 4 of 16 bytes, ports in network order.
    def v4(src, dst, sport, dport):
        return (bytes(12) + bytes(map(int, src.split("."))) + bytes(12) + bytes(map(int, dst.split(".")))
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))
    for t in (v4("10.0.0.1", "192.0.2.10", 40000, 80), v4("203.0.113.7", "192.0.2.10", 1, 443),
              bytes(36), bytes([255]) * 36):
        assert header_sdbm(t) == (go_sdbm(t[:32]), go_sdbm(t))
