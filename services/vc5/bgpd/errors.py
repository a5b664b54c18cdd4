"""The one exception the BGP codec raises, and readable names for error codes.

Every decoder in vc5.bgpd raises BgpError and nothing else for bad input
(fuzzed in tests/unit/test_bgp_fuzz.py). A BgpError carries the NOTIFICATION
the RFC requires in reply (RFC 4271 §6), so the session can send it as is.
"""

# RFC 4271 §4.5 error codes
MESSAGE_HEADER_ERROR = 1
OPEN_MESSAGE_ERROR = 2
UPDATE_MESSAGE_ERROR = 3
HOLD_TIMER_EXPIRED = 4
FSM_ERROR = 5
CEASE = 6
ROUTE_REFRESH_ERROR = 7   # RFC 7313

# header error subcodes (RFC 4271 §6.1)
CONNECTION_NOT_SYNCHRONIZED = 1
BAD_MESSAGE_LENGTH = 2
BAD_MESSAGE_TYPE = 3

# OPEN error subcodes (RFC 4271 §6.2, RFC 5492)
UNSUPPORTED_VERSION = 1
BAD_PEER_AS = 2
BAD_BGP_IDENTIFIER = 3
UNSUPPORTED_OPTIONAL_PARAMETER = 4
UNACCEPTABLE_HOLD_TIME = 6
UNSUPPORTED_CAPABILITY = 7

# UPDATE error subcodes (RFC 4271 §6.3)
MALFORMED_ATTRIBUTE_LIST = 1
UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
MISSING_WELL_KNOWN_ATTRIBUTE = 3
ATTRIBUTE_FLAGS_ERROR = 4
ATTRIBUTE_LENGTH_ERROR = 5
INVALID_ORIGIN_ATTRIBUTE = 6
INVALID_NEXT_HOP_ATTRIBUTE = 8
OPTIONAL_ATTRIBUTE_ERROR = 9
INVALID_NETWORK_FIELD = 10
MALFORMED_AS_PATH = 11

# Cease subcodes (RFC 4486, RFC 8203/9003)
ADMINISTRATIVE_SHUTDOWN = 2
PEER_DECONFIGURED = 3
ADMINISTRATIVE_RESET = 4
CONNECTION_REJECTED = 5
OTHER_CONFIGURATION_CHANGE = 6
CONNECTION_COLLISION_RESOLUTION = 7

CODE_NAMES = {
    MESSAGE_HEADER_ERROR: "Message Header Error",
    OPEN_MESSAGE_ERROR: "OPEN Message Error",
    UPDATE_MESSAGE_ERROR: "UPDATE Message Error",
    HOLD_TIMER_EXPIRED: "Hold Timer Expired",
    FSM_ERROR: "Finite State Machine Error",
    CEASE: "Cease",
    ROUTE_REFRESH_ERROR: "ROUTE-REFRESH Message Error",
}

SUBCODE_NAMES = {
    MESSAGE_HEADER_ERROR: {1: "Connection Not Synchronized", 2: "Bad Message Length", 3: "Bad Message Type"},
    OPEN_MESSAGE_ERROR: {1: "Unsupported Version Number", 2: "Bad Peer AS", 3: "Bad BGP Identifier",
                         4: "Unsupported Optional Parameter", 5: "Authentication Failure (deprecated)",
                         6: "Unacceptable Hold Time", 7: "Unsupported Capability"},
    UPDATE_MESSAGE_ERROR: {1: "Malformed Attribute List", 2: "Unrecognized Well-known Attribute",
                           3: "Missing Well-known Attribute", 4: "Attribute Flags Error",
                           5: "Attribute Length Error", 6: "Invalid ORIGIN Attribute",
                           7: "AS Routing Loop (deprecated)", 8: "Invalid NEXT_HOP Attribute",
                           9: "Optional Attribute Error", 10: "Invalid Network Field",
                           11: "Malformed AS_PATH"},
    FSM_ERROR: {0: "Unspecified Error", 1: "Receive Unexpected Message in OpenSent State",
                2: "Receive Unexpected Message in OpenConfirm State",
                3: "Receive Unexpected Message in Established State"},
    CEASE: {1: "Maximum Number of Prefixes Reached", 2: "Administrative Shutdown", 3: "Peer De-configured",
            4: "Administrative Reset", 5: "Connection Rejected", 6: "Other Configuration Change",
            7: "Connection Collision Resolution", 8: "Out of Resources", 9: "Hard Reset",
            10: "BFD Down"},
    ROUTE_REFRESH_ERROR: {1: "Invalid Message Length"},
}


def describe(code: int, subcode: int) -> str:
    """'Cease / Administrative Shutdown' for (6, 2); numbers for unknown codes."""
    name = CODE_NAMES.get(code, f"Unknown error code {code}")
    sub = SUBCODE_NAMES.get(code, {}).get(subcode)
    if sub is None:
        sub = "Unspecific" if subcode == 0 else f"subcode {subcode}"
    return f"{name} / {sub}"


class BgpError(Exception):
    """A protocol error: what we send in the NOTIFICATION, and why (for the log)."""

    def __init__(self, code: int, subcode: int, reason: str, data: bytes = b""):
        super().__init__(f"{describe(code, subcode)} ({code}/{subcode}): {reason}")
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.data = bytes(data)
