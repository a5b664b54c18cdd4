"""org.vc5.Bgp1 on the bus: declarations only (docs/bgp.md, "D-Bus: org.vc5.Bgp1 at /org/vc5/Bgp1").

Two interfaces on /org/vc5/Bgp1 (names in vc5.common.names), described by the
shipped introspection XML vc5/dbus/org.vc5.Bgp1.xml (tested against the live object):
  * org.vc5.Bgp1 (read-only): Peers, Advertised, AsNumber, RouterId, ShuttingDown,
    HealthConnected, Generation, LastReloadError; signal PeerStateChanged.
  * org.vc5.Bgp1.Manager (bus policy: root and vc5 operators): Reload, ResetPeer.

The properties read the daemon's Publisher (vc5.common.bus): what the last
PropertiesChanged carried, so a Get and the signal never disagree; Peers is read
as of now (`current`) because its uptime_s is computed on read (see the XML).
PeerStateChanged is emitted by Publisher.signal(wire.PeerStateChange); the
declaration here gives it its place in the introspection.
"""

from dbus_next import DBusError
from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

from vc5.common import names


class BgpInterface(ServiceInterface):
    """org.vc5.Bgp1: read-only view of sessions and the RIB."""

    def __init__(self, publisher):
        super().__init__(names.BGP_IFACE)
        self._pub = publisher

    @dbus_property(access=PropertyAccess.READ)
    def Peers(self) -> "a(ssstttqqasasa{st}sassuus)":
        return self._pub.current("Peers")

    @dbus_property(access=PropertyAccess.READ)
    def Advertised(self) -> "as":
        return self._pub.published("Advertised")

    @dbus_property(access=PropertyAccess.READ)
    def AsNumber(self) -> "u":
        return self._pub.published("AsNumber")

    @dbus_property(access=PropertyAccess.READ)
    def RouterId(self) -> "s":
        return self._pub.published("RouterId")

    @dbus_property(access=PropertyAccess.READ)
    def ShuttingDown(self) -> "b":
        return self._pub.published("ShuttingDown")

    @dbus_property(access=PropertyAccess.READ)
    def HealthConnected(self) -> "b":
        return self._pub.published("HealthConnected")

    @dbus_property(access=PropertyAccess.READ)
    def Generation(self) -> "t":
        return self._pub.published("Generation")

    @dbus_property(access=PropertyAccess.READ)
    def LastReloadError(self) -> "s":
        return self._pub.published("LastReloadError")

    @signal()
    def PeerStateChanged(self) -> "ssss":
        raise NotImplementedError("emitted by Publisher.signal(wire.PeerStateChange)")


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
