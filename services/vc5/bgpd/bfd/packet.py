"""BFD Control packets (RFC 5880 §4.1), without authentication.

    0                   1                   2                   3
    |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
    |                       My Discriminator                        |
    |                      Your Discriminator                       |
    |                    Desired Min TX Interval                    |
    |                   Required Min RX Interval                    |
    |                 Required Min Echo RX Interval                 |

Intervals are microseconds. decode() applies the checks of §6.8.6 that need no
session: version, length, Detect Mult, Multipoint, My Discriminator, Your
Discriminator zero outside Down/AdminDown, and the A bit (this implementation
uses no authentication, so a packet with A set is discarded as §6.8.6 says when
no authentication is in use). Selecting the session by Your Discriminator is
the caller's (transport.py).
"""

import struct
from dataclasses import dataclass

VERSION = 1
LENGTH = 24                       # the mandatory section; nothing else is sent
_FMT = struct.Struct("!BBBBIIIII")

# bfd.SessionState values as carried in the Sta field
ADMIN_DOWN, DOWN, INIT, UP = 0, 1, 2, 3
STATE_NAMES = ("AdminDown", "Down", "Init", "Up")

# Diagnostic codes (§4.1)
DIAG_NONE = 0
DIAG_TIME_EXPIRED = 1             # Control Detection Time Expired
DIAG_ECHO_FAILED = 2
DIAG_NEIGHBOR_DOWN = 3            # Neighbor Signaled Session Down
DIAG_FORWARDING_RESET = 4
DIAG_PATH_DOWN = 5
DIAG_CONCAT_PATH_DOWN = 6
DIAG_ADMIN_DOWN = 7
DIAG_REVERSE_CONCAT_PATH_DOWN = 8
DIAG_NAMES = ("No Diagnostic", "Control Detection Time Expired", "Echo Function Failed",
              "Neighbor Signaled Session Down", "Forwarding Plane Reset", "Path Down",
              "Concatenated Path Down", "Administratively Down", "Reverse Concatenated Path Down")

_P, _F, _C, _A, _D, _M = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01


class BfdDecodeError(ValueError):
    """A received packet that §6.8.6 says to discard; `field` names the field, the text says why."""

    def __init__(self, field: str, text: str):
        super().__init__(text)
        self.field = field


def diag_name(code: int) -> str:
    return DIAG_NAMES[code] if 0 <= code < len(DIAG_NAMES) else f"diagnostic {code}"


@dataclass(frozen=True)
class Control:
    state: int = DOWN
    diag: int = DIAG_NONE
    detect_mult: int = 3
    my_discriminator: int = 0
    your_discriminator: int = 0
    desired_min_tx: int = 1_000_000          # µs
    required_min_rx: int = 1_000_000         # µs
    required_min_echo_rx: int = 0            # µs; 0: we do not do the Echo function
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    demand: bool = False

    def encode(self) -> bytes:
        """The 24-byte packet. ValueError if a field does not fit (a caller bug)."""
        if not 0 <= self.diag < 32 or not 0 <= self.state < 4 or not 1 <= self.detect_mult < 256:
            raise ValueError(f"BFD field out of range: {self}")
        flags = (self.state << 6) | (_P if self.poll else 0) | (_F if self.final else 0) \
            | (_C if self.control_plane_independent else 0) | (_D if self.demand else 0)
        return _FMT.pack((VERSION << 5) | self.diag, flags, self.detect_mult, LENGTH,
                         self.my_discriminator, self.your_discriminator, self.desired_min_tx,
                         self.required_min_rx, self.required_min_echo_rx)


def decode(data: bytes) -> Control:
    """A received Control packet, or BfdDecodeError for one that RFC 5880 §6.8.6 discards."""
    if len(data) < LENGTH:
        raise BfdDecodeError("length", f"packet of {len(data)} bytes is shorter than the "
                                       f"{LENGTH}-byte mandatory section")
    vd, flags, mult, length, mine, yours, tx, rx, echo = _FMT.unpack_from(data)
    version = vd >> 5
    if version != VERSION:
        raise BfdDecodeError("version", f"version {version}, not {VERSION}")
    if flags & _A:
        # §6.8.6: A set and no authentication in use -> discard (an A-set packet is >= 26 bytes too)
        raise BfdDecodeError("A bit", "Authentication Present (A) bit set; no authentication is configured")
    if length < LENGTH:
        raise BfdDecodeError("length", f"Length field {length} is less than {LENGTH}")
    if length > len(data):
        raise BfdDecodeError("length", f"Length field {length} exceeds the {len(data)}-byte payload")
    if mult == 0:
        raise BfdDecodeError("detect mult", "Detect Mult is zero")
    if flags & _M:
        raise BfdDecodeError("M bit", "Multipoint (M) bit set")
    if mine == 0:
        raise BfdDecodeError("my discriminator", "My Discriminator is zero")
    state = flags >> 6
    if yours == 0 and state not in (DOWN, ADMIN_DOWN):
        raise BfdDecodeError("your discriminator",
                             f"Your Discriminator is zero in state {STATE_NAMES[state]}")
    return Control(state=state, diag=vd & 0x1F, detect_mult=mult, my_discriminator=mine,
                   your_discriminator=yours, desired_min_tx=tx, required_min_rx=rx,
                   required_min_echo_rx=echo, poll=bool(flags & _P), final=bool(flags & _F),
                   control_plane_independent=bool(flags & _C), demand=bool(flags & _D))
