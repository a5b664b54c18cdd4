"""The Health1 wire structs round-trip through real D-Bus marshalling."""

from dbus_next import Message, MessageType, Variant

from vc5.common import wire


def roundtrip(signature, value):
    msg = Message(destination="a.b", path="/a", interface="a.b", member="m",
                  signature=signature, body=[value], message_type=MessageType.METHOD_CALL, serial=1)
    from dbus_next._private.unmarshaller import Unmarshaller
    import io
    u = Unmarshaller(io.BytesIO(msg._marshall()))
    u.unmarshall()
    return u.message.body[0]


def sample():
    b1 = wire.BackendState("10.1.10.10", 80, 1, False, False, True, 1700000000000000, "OK", 3)
    b2 = wire.BackendState("10.1.10.11", 80, 2, True, False, True, 0, "http: GET / - 500", 7)
    return wire.ServiceState("192.0.2.1", 80, "tcp", "web", "a web", "high", True, 1, "none", 0,
                             False, True, 5, 1, (b1, b2))


def test_services_roundtrip_through_dbus_marshalling():
    s = sample()
    got = wire.services_from_dbus(roundtrip(wire.SERVICES_SIGNATURE, wire.services_to_dbus([s])))
    assert got == (s,)
    assert got[0].key == "192.0.2.1:80:tcp"


def test_usable_excludes_disabled_drained_down_and_zero_weight():
    s = sample()
    assert [b.usable for b in s.backends] == [True, False]
    b = s.backends[0]
    for change in ({"up": False}, {"drained": True}, {"weight": 0}, {"disabled": True}):
        assert not wire.BackendState(**{**b.__dict__, **change}).usable


def test_vips_roundtrip():
    v = (wire.VipState("2001:db8::1", True, 9), wire.VipState("192.0.2.1", False, 0))
    assert wire.vips_from_dbus(roundtrip(wire.VIPS_SIGNATURE, wire.vips_to_dbus(v))) == v
    assert Variant(wire.VIPS_SIGNATURE, wire.vips_to_dbus(v)).signature == "a(sbt)"
