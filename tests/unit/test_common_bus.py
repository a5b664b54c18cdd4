"""vc5.common.bus introspection contract helpers (pure XML, no bus)."""

import pytest

from vc5.common import bus, introspection

SHIPPED = """<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.vc5.Health1">
    <annotation name="b" value="2"/>
    <annotation name="a" value="1"/>
    <method name="Get">
      <arg name="vip" type="s" direction="in"/>
      <arg name="state" type="a{sv}" direction="out"/>
    </method>
    <property name="Ready" type="b" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="true"/>
    </property>
    <signal name="BackendChanged"><arg name="backend" type="s"/><arg name="up" type="b"/></signal>
  </interface>
</node>"""

# The same API as a live dbus-next object would render it: other order, other
# argument names, implicit "in", standard interfaces and child nodes added.
LIVE = """<node name="/org/vc5/Health1">
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg name="data" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="GetAll"><arg type="s" direction="in"/><arg type="a{sv}" direction="out"/></method>
  </interface>
  <interface name="org.vc5.Health1">
    <signal name="BackendChanged"><arg type="s"/><arg type="b"/></signal>
    <property name="Ready" type="b" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="true"/>
    </property>
    <method name="Get"><arg name="address" type="s"/><arg name="out" type="a{sv}" direction="out"/></method>
    <annotation name="a" value="1"/>
    <annotation name="b" value="2"/>
  </interface>
  <node name="child"/>
</node>"""


def test_equivalent_xml_matches():
    bus.assert_matches_introspection(LIVE, SHIPPED)


def test_summary_is_readable_and_complete():
    assert bus.introspection_summary(SHIPPED) == [
        "interface org.vc5.Health1",
        "org.vc5.Health1 annotation a=1",
        "org.vc5.Health1 annotation b=2",
        "org.vc5.Health1.BackendChanged signal (s, b)",
        "org.vc5.Health1.Get method in=(s) out=(a{sv})",
        "org.vc5.Health1.Ready annotation org.freedesktop.DBus.Property.EmitsChangedSignal=true",
        "org.vc5.Health1.Ready property type=b access=read",
    ]


@pytest.mark.parametrize("change, expected", [
    (('access="read"', 'access="readwrite"'), "+org.vc5.Health1.Ready property type=b access=readwrite"),
    (('<arg name="up" type="b"/>', ""), "+org.vc5.Health1.BackendChanged signal (s)"),
    (('value="true"', 'value="false"'),
     "+org.vc5.Health1.Ready annotation org.freedesktop.DBus.Property.EmitsChangedSignal=false"),
    (('name="org.vc5.Health1"', 'name="org.vc5.Health2"'), "+interface org.vc5.Health2"),
])
def test_differences_are_reported_with_a_diff(change, expected):
    live = SHIPPED.replace(*change)
    with pytest.raises(AssertionError) as error:
        bus.assert_matches_introspection(live, SHIPPED)
    text = str(error.value)
    assert text.startswith("live D-Bus API differs from the shipped introspection XML:")
    assert expected in text.splitlines()


def test_bad_xml_is_a_clear_error():
    with pytest.raises(ValueError, match="introspection XML does not parse"):
        bus.assert_matches_introspection("<node>", SHIPPED)


def test_load_introspection_reads_package_data(monkeypatch, tmp_path):
    (tmp_path / "dbus").mkdir()
    (tmp_path / "dbus" / "org.vc5.Health1.xml").write_text(SHIPPED)
    monkeypatch.setattr(introspection.importlib.resources, "files", lambda package: tmp_path)
    assert bus.load_introspection("org.vc5.Health1") == SHIPPED
    with pytest.raises(FileNotFoundError, match="no shipped introspection XML vc5/dbus/org.vc5.Nope1.xml"):
        bus.load_introspection("org.vc5.Nope1")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ""])
def test_load_introspection_rejects_paths(name):
    with pytest.raises(ValueError, match="bad introspection file name"):
        bus.load_introspection(name)


def test_unwrap_variants_recursively():
    from dbus_next import Variant
    value = {"a": Variant("a{sv}", {"b": Variant("as", ["x"])}), "c": [Variant("u", 1)]}
    assert bus.unwrap(value) == {"a": {"b": ["x"]}, "c": [1]}


def test_shipped_introspection_files_load_and_parse():
    from importlib.resources import files
    shipped = sorted(p.name[:-4] for p in files("vc5").joinpath("dbus").iterdir() if p.name.endswith(".xml"))
    assert shipped, "services/vc5/dbus/*.xml ships the D-Bus API contract"
    for name in shipped:
        summary = bus.introspection_summary(bus.load_introspection(name))
        assert f"interface {name}" in summary, f"{name}.xml does not describe interface {name}"
