"""The wire structs: one per published value, matching the shipped XML, round-tripping exactly."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest
from dbus_next.signature import SignatureTree

from vc5.common import wire
from vc5.common.introspection import STANDARD_IFACE_PREFIX, load_introspection


def verified(signature, value):
    """The value dbus-next would marshal: verify() raises unless `value` has `signature`'s shape."""
    SignatureTree(signature).verify([value])
    return value


def sample():
    b1 = wire.BackendState("10.1.10.10", 80, 1, False, False, True, 1700000000000000, "OK", 3)
    b2 = wire.BackendState("10.1.10.11", 80, 2, True, False, True, 0, "http: GET / - 500", 7)
    return wire.ServiceState("192.0.2.1", 80, "tcp", "web", "a web", "high", True, 1, "none", 0,
                             False, True, 5, 1, (b1, b2))


SAMPLES = [
    sample(),
    wire.VipState("2001:db8::1", True, 9),
    wire.ProbeRound(1700000000000000, False, "connection refused", 3, "255.0.0.1:80"),
    wire.Transition("backend", "192.0.2.1", 80, "tcp", "10.1.10.10:80", False, "went down"),
    wire.PeerState("192.0.2.254", "", "Established", 1, 2, 3, 90, 30, ("4-octet-as",), ("ipv4-unicast",),
                   {"updates_in": 4}, "", ("192.0.2.1/32",), "192.0.2.2", 65000, 65001, "192.0.2.254"),
    wire.PeerStateChange("192.0.2.254", "Active", "Established", "OPEN received"),
    wire.InterfaceStatus("eth0", 2, "native", 17, True, ""),
    wire.VlanStatus(10, "10.1.10.0/24", "eth0", "10.1.10.2", "02:00:00:00:00:01", "10.1.10.254",
                    "02:00:00:00:00:fe", ""),
    wire.ProgrammedService("192.0.2.1:80:tcp", "192.0.2.1", 80, "tcp", "", (
        wire.ProgrammedBackend("10.1.10.10", "02:00:00:00:00:0a", True, True, "", "eth0", 10),)),
    wire.ProgramInfo(17, "abcdef", "xdp_main", "/sys/fs/bpf/vc5", 3, 1700000000000000),
    wire.ProbeAddress("192.0.2.1", "10.1.10.10", "255.0.0.1"),
    wire.Counters({"packets": 1}, {"192.0.2.1": {"packets": 1}}, {"192.0.2.1:80:tcp": {"packets": 1}},
                  {"192.0.2.1:80:tcp": {"10.1.10.10": {"packets": 1}}}),
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_every_struct_roundtrips_and_has_its_signature(value):
    encoded = verified(value.SIGNATURE, value.to_dbus())
    assert type(value).from_dbus(encoded) == value


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_signature_has_one_item_per_field(value):
    assert len(SignatureTree(value.SIGNATURE).types[0].children) == len(dataclasses.fields(value))


def test_a_struct_of_another_length_is_a_clear_error():
    with pytest.raises(ValueError, match="VlanStatus: 7 items on the wire, expected 8"):
        wire.VlanStatus.from_dbus([10, "", "", "", "", "", ""])


def test_services_roundtrip_and_key():
    s = sample()
    got = wire.services_from_dbus(verified(wire.SERVICES_SIGNATURE, wire.services_to_dbus([s])))
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
    assert wire.vips_from_dbus(verified(wire.VIPS_SIGNATURE, wire.vips_to_dbus(v))) == v


def test_interface_schema_decodes_typed_values_and_names_a_bad_one():
    values = {"Services": wire.services_to_dbus([sample()]), "Generation": 3, "Extra": "kept"}
    got = wire.HEALTH.decode(values)
    assert got["Services"] == (sample(),) and got["Generation"] == 3 and got["Extra"] == "kept"
    with pytest.raises(ValueError, match=r"org.vc5.Health1.VIPs: .*VipState"):
        wire.HEALTH.decode({"VIPs": [["192.0.2.1", True]]})


# ----------------------------------------------------------------- the XML and the structs agree

def _xml_members(bus_name):
    root = ET.fromstring(load_introspection(bus_name))
    for iface in root.findall("interface"):
        if iface.get("name", "").startswith(STANDARD_IFACE_PREFIX):
            continue
        yield iface


@pytest.mark.parametrize("schema", wire.SCHEMAS.values(), ids=lambda s: s.name)
def test_shipped_xml_and_wire_schema_agree(schema):
    [iface] = [i for i in _xml_members(schema.name) if i.get("name") == schema.name]
    xml_props = {p.get("name"): p.get("type") for p in iface.findall("property")}
    assert xml_props == {name: prop.signature for name, prop in schema.properties.items()}
    xml_signals = {s.get("name"): "(" + "".join(a.get("type") for a in s.findall("arg")) + ")"
                   for s in iface.findall("signal")}
    assert xml_signals == {name: struct.SIGNATURE for name, struct in schema.signals.items()}
    for method, signature in schema.replies.items():
        [m] = [m for m in iface.findall("method") if m.get("name") == method]
        assert [a.get("type") for a in m.findall("arg") if a.get("direction") == "out"] == [signature]


def test_every_read_interface_has_a_schema():
    for bus_name in ("org.vc5.Health1", "org.vc5.Bgp1", "org.vc5.XdpLoader1"):
        read = [i.get("name") for i in _xml_members(bus_name) if not i.get("name").endswith(".Manager")]
        assert read == [bus_name] and bus_name in wire.SCHEMAS
