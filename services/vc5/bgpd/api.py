"""org.vc5.Bgp1 on the bus: declarations only (docs/bgp.md, "D-Bus: org.vc5.Bgp1 at /org/vc5/Bgp1").

Two interfaces on /org/vc5/Bgp1 (names in vc5.common.names), described by the
shipped introspection XML vc5/dbus/org.vc5.Bgp1.xml (tested against the live object):
  * org.vc5.Bgp1 (read-only): Peers, Advertised, AsNumber, RouterId, ShuttingDown,
    HealthConnected, Generation, LastReloadError, DataPlane, Maintenance, Bfd; signal PeerStateChanged.
  * org.vc5.Bgp1.Manager (bus policy: root and the group vc5): Reload, ResetPeer, SetMaintenance.

Each member of org.vc5.Bgp1 is declared from wire.BGP (vc5.common.bus.declare), so
its signature is written once and checked against the XML by tests/unit/test_wire.py.
Properties answer from the daemon's Publisher: what the last PropertiesChanged
carried, so a Get and the signal never disagree; Peers is read as of now (live)
because its uptime_s is computed on read (see the XML). PeerStateChanged is
emitted by Publisher.signal(wire.PeerStateChange).
"""

from dbus_next import DBusError
from dbus_next.service import ServiceInterface, method

from vc5.common import names, wire
from vc5.common.bus.declare import declared_signal, read_property

# Belongs in vc5.common.names with the other error names (not this branch's file to edit).


class BgpInterface(ServiceInterface):
    """org.vc5.Bgp1: read-only view of sessions and the RIB."""

    Peers = read_property(wire.BGP, "Peers", live=True)
    Advertised = read_property(wire.BGP, "Advertised")
    AsNumber = read_property(wire.BGP, "AsNumber")
    RouterId = read_property(wire.BGP, "RouterId")
    ShuttingDown = read_property(wire.BGP, "ShuttingDown")
    HealthConnected = read_property(wire.BGP, "HealthConnected")
    Generation = read_property(wire.BGP, "Generation")
    LastReloadError = read_property(wire.BGP, "LastReloadError")
    DataPlane = read_property(wire.BGP, "DataPlane")
    Maintenance = read_property(wire.BGP, "Maintenance")
    Bfd = read_property(wire.BGP, "Bfd", live=True)    # packet counters as of the read
    PeerStateChanged = declared_signal(wire.BGP, "PeerStateChanged")

    def __init__(self, publisher):
        super().__init__(names.BGP_IFACE)
        self.publisher = publisher


class BgpManagerInterface(ServiceInterface):
    """org.vc5.Bgp1.Manager: operator actions, carried out by `controller` (the daemon)."""

    def __init__(self, controller):
        super().__init__(names.BGP_MANAGER_IFACE)
        self._c = controller

    @method()
    async def Reload(self) -> "t":
        ok, text = await self._c.reload()
        if not ok:
            raise DBusError(names.BGP_ERROR_INVALID_CONFIG, text)
        return self._c.generation

    @method()
    def ResetPeer(self, address: "s"):
        try:
            self._c.speaker.reset_peer(address)
        except (KeyError, ValueError):
            raise DBusError(names.BGP_ERROR_NOT_FOUND, f"no BGP peer {address} is configured")

    @method()
    async def SetMaintenance(self, on: "b"):
        try:
            await self._c.set_maintenance(bool(on))
        except OSError as e:
            raise DBusError(names.BGP_ERROR_MAINTENANCE, f"maintenance state not saved: {e}")
