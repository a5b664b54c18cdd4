"""The introspection contract: the shipped XML (services/vc5/dbus/<name>.xml) is the API.

Tests compare a live object against it (assert_matches_introspection) and the
wire structs against it (tests/unit/test_wire.py).
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
import xml.etree.ElementTree as ET

STANDARD_IFACE_PREFIX = "org.freedesktop.DBus."

_NAME_RE = re.compile(r"^[A-Za-z0-9_.]+$")


def load_introspection(name: str) -> str:
    """The shipped introspection XML services/vc5/dbus/<name>.xml (package data)."""
    if not _NAME_RE.match(name):
        raise ValueError(f"bad introspection file name {name!r}")
    resource = importlib.resources.files("vc5").joinpath("dbus", f"{name}.xml")
    try:
        return resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no shipped introspection XML vc5/dbus/{name}.xml") from None


def _annotations(element: ET.Element, where: str) -> list[str]:
    return sorted(f"{where} annotation {a.get('name')}={a.get('value')}"
                  for a in element.findall("annotation"))


def _args(element: ET.Element, direction: str | None = None) -> str:
    types = [a.get("type", "") for a in element.findall("arg")
             if direction is None or (a.get("direction") or "in") == direction]
    return "(" + ", ".join(types) + ")"


def introspection_summary(xml: str) -> list[str]:
    """One sorted line per interface, method, property, signal and annotation (argument names ignored).

    Standard org.freedesktop.DBus.* interfaces and child nodes are left out.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise ValueError(f"introspection XML does not parse: {error}") from None
    lines = []
    for iface in root.findall("interface"):
        iname = iface.get("name", "")
        if iname.startswith(STANDARD_IFACE_PREFIX):
            continue
        lines.append(f"interface {iname}")
        lines += _annotations(iface, iname)
        for method in iface.findall("method"):
            where = f"{iname}.{method.get('name')}"
            # Signal args have no direction; method args default to "in" (D-Bus spec).
            lines.append(f"{where} method in={_args(method, 'in')} out={_args(method, 'out')}")
            lines += _annotations(method, where)
        for prop in iface.findall("property"):
            where = f"{iname}.{prop.get('name')}"
            lines.append(f"{where} property type={prop.get('type')} access={prop.get('access')}")
            lines += _annotations(prop, where)
        for signal in iface.findall("signal"):
            where = f"{iname}.{signal.get('name')}"
            lines.append(f"{where} signal {_args(signal)}")
            lines += _annotations(signal, where)
    return sorted(lines)


def assert_matches_introspection(live_xml: str, shipped_xml: str) -> None:
    """Raise AssertionError, with a diff, unless the live object matches the shipped XML."""
    shipped = introspection_summary(shipped_xml)
    live = introspection_summary(live_xml)
    if shipped != live:
        diff = difflib.unified_diff(shipped, live, "shipped", "live", lineterm="", n=0)
        raise AssertionError("live D-Bus API differs from the shipped introspection XML:\n"
                             + "\n".join(line for line in diff if not line.startswith("@@")))
