"""Declaring a daemon's read interface from its vc5.common.wire schema (for api.py).

    class BgpInterface(ServiceInterface):
        Advertised = read_property(wire.BGP, "Advertised")
        Peers = read_property(wire.BGP, "Peers", live=True)
        PeerStateChanged = declared_signal(wire.BGP, "PeerStateChanged")

The signature of each member is the schema's (checked against the shipped XML
by tests/unit/test_wire.py), so it is written once. A property answers from the
interface's `publisher` attribute (a Publisher): what the last PropertiesChanged
carried, or with `live=True` the value as of the read (for values computed on
read). A declared signal is emitted with Publisher.signal(struct), never by
calling it.
"""

from __future__ import annotations

from typing import Any

from dbus_next.service import PropertyAccess, dbus_property, signal

from vc5.common import wire


def read_property(schema: wire.Interface, name: str, *, live: bool = False) -> Any:
    """A read-only dbus-next property `name` of `schema`, answered from `self.publisher`."""
    if live:
        def getter(self):
            return self.publisher.current(name)
    else:
        def getter(self):
            return self.publisher.published(name)
    getter.__name__ = getter.__qualname__ = name
    getter.__annotations__ = {"return": schema.properties[name].signature}
    return dbus_property(access=PropertyAccess.READ, name=name)(getter)


def declared_signal(schema: wire.Interface, member: str) -> Any:
    """The dbus-next declaration of `schema`'s signal `member` (for introspection)."""
    struct = schema.signals[member]

    def declaration(self):
        raise NotImplementedError(f"{member} is emitted by Publisher.signal({struct.__name__}(...))")
    declaration.__name__ = declaration.__qualname__ = member
    declaration.__annotations__ = {"return": struct.SIGNATURE[1:-1]}
    return signal(name=member)(declaration)
