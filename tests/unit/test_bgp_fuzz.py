"""The decoder never raises anything but BgpError, whatever a peer sends."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vc5.bgpd import messages
from vc5.bgpd.errors import BgpError
from vc5.bgpd.messages import header

MARKER = b"\xff" * 16


def decode_all(raw, four_octet):
    try:
        messages.decode_stream(raw, four_octet)
    except BgpError:
        pass


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(raw, four):
    decode_all(raw, four)


@st.composite
def framed(draw):
    """Valid marker and length, random type and body: reaches every message decoder."""
    msg_type = draw(st.sampled_from([1, 2, 3, 4, 5]))
    body = draw(st.binary(max_size=300))
    return MARKER + (len(body) + 19).to_bytes(2, "big") + bytes([msg_type]) + body


@settings(max_examples=3000, deadline=None)
@given(framed(), st.booleans())
def test_framed_random_bodies(raw, four):
    decode_all(raw, four)


@st.composite
def update_like(draw):
    """UPDATEs with plausible structure and random attributes."""
    withdrawn = draw(st.binary(max_size=20))
    attrs = b""
    for _ in range(draw(st.integers(0, 5))):
        flags = draw(st.sampled_from([0x40, 0x80, 0xc0, 0x50, 0x90, 0xd0, 0x00, 0xe0]))
        code = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 17, 18, 32, 99, 200]))
        value = draw(st.binary(max_size=40))
        ext = flags & 0x10
        length = len(value).to_bytes(2, "big") if ext else bytes([len(value)])
        attrs += bytes([flags, code]) + length + value
    nlri = draw(st.binary(max_size=20))
    body = len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri
    return header.encode(header.UPDATE, body) if len(body) + 19 <= 4096 else b""


@settings(max_examples=3000, deadline=None)
@given(update_like(), st.booleans())
def test_structured_updates(raw, four):
    decode_all(raw, four)
