"""BFD Control packet codec (RFC 5880 §4.1) and the reception checks of §6.8.6."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vc5.bgpd.bfd import packet
from vc5.bgpd.bfd.packet import ADMIN_DOWN, DOWN, INIT, UP, BfdDecodeError, Control, decode

UP_PACKET = Control(state=UP, diag=packet.DIAG_NEIGHBOR_DOWN, detect_mult=3, my_discriminator=0x01020304,
                    your_discriminator=0xA0B0C0D0, desired_min_tx=100_000, required_min_rx=200_000,
                    required_min_echo_rx=0, poll=True)


def raw(vers=1, diag=0, state=UP, flags=0, mult=3, length=24, mine=7, yours=9, tx=1, rx=1, echo=0,
        extra=b""):
    return struct.pack("!BBBBIIIII", (vers << 5) | diag, (state << 6) | flags, mult, length, mine, yours,
                       tx, rx, echo) + extra


def test_encode_layout_is_rfc5880_section_4_1():
    b = UP_PACKET.encode()
    assert len(b) == 24
    assert b[0] == (1 << 5) | 3                    # version 1, diag 3
    assert b[1] == (3 << 6) | 0x20                 # Up, Poll
    assert b[2] == 3 and b[3] == 24
    assert b[4:8] == bytes([1, 2, 3, 4])
    assert struct.unpack("!III", b[12:24]) == (100_000, 200_000, 0)


@pytest.mark.parametrize("p", [UP_PACKET, Control(state=DOWN, my_discriminator=1),
                               Control(state=INIT, my_discriminator=5, your_discriminator=6, final=True,
                                       detect_mult=255, diag=31),
                               Control(state=ADMIN_DOWN, my_discriminator=2 ** 32 - 1, diag=7)])
def test_round_trip(p):
    assert decode(p.encode()) == p


@pytest.mark.parametrize("data, field", [
    (raw(vers=0), "version"),
    (raw(vers=2), "version"),
    (raw(length=23), "length"),
    (raw(length=30), "length"),                    # longer than the payload
    (raw()[:20], "length"),
    (raw(mult=0), "detect mult"),
    (raw(flags=0x01), "M bit"),
    (raw(mine=0), "my discriminator"),
    (raw(state=UP, yours=0), "your discriminator"),
    (raw(state=INIT, yours=0), "your discriminator"),
    (raw(flags=0x04, length=26, extra=b"\x01\x02"), "A bit"),
])
def test_section_6_8_6_discards(data, field):
    with pytest.raises(BfdDecodeError) as e:
        decode(data)
    assert e.value.field == field


@pytest.mark.parametrize("state", [DOWN, ADMIN_DOWN])
def test_your_discriminator_zero_is_allowed_in_down_and_admin_down(state):
    assert decode(raw(state=state, yours=0)).your_discriminator == 0


def test_length_may_be_less_than_the_payload():
    # §6.8.6 only bounds Length by the payload; trailing bytes are ignored
    assert decode(raw(extra=b"\0" * 8)).my_discriminator == 7


def test_encode_refuses_fields_that_do_not_fit():
    with pytest.raises(ValueError):
        Control(detect_mult=0, my_discriminator=1).encode()
    with pytest.raises(ValueError):
        Control(diag=32, my_discriminator=1).encode()


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=64))
def test_decoder_never_fails_otherwise(data):
    """Any bytes: BfdDecodeError naming a field, or a Control that re-encodes to the same 24 bytes
    except Length (always 24 when we encode)."""
    try:
        p = decode(data)
    except BfdDecodeError as e:
        assert e.field and str(e)
        return
    assert p.my_discriminator != 0 and p.detect_mult != 0
    assert p.state in (DOWN, ADMIN_DOWN) or p.your_discriminator != 0
    assert decode(p.encode()) == p
    assert p.encode()[:3] == data[:3] and p.encode()[4:24] == data[4:24]


@settings(max_examples=500, deadline=None)
@given(st.builds(Control, state=st.integers(0, 3), diag=st.integers(0, 31), detect_mult=st.integers(1, 255),
                 my_discriminator=st.integers(1, 2 ** 32 - 1), your_discriminator=st.integers(1, 2 ** 32 - 1),
                 desired_min_tx=st.integers(0, 2 ** 32 - 1), required_min_rx=st.integers(0, 2 ** 32 - 1),
                 required_min_echo_rx=st.integers(0, 2 ** 32 - 1), poll=st.booleans(), final=st.booleans(),
                 control_plane_independent=st.booleans(), demand=st.booleans()))
def test_round_trip_any_valid_packet(p):
    assert decode(p.encode()) == p
