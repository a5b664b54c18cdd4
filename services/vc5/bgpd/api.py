"""org.vc5.Bgp1 on the bus: what bgpd publishes and what operators may do.

Two interfaces on /org/vc5/Bgp1 (names in vc5.common.names), described by the
shipped introspection XML vc5/dbus/org.vc5.Bgp1.xml (tested against the live object):
  * org.vc5.Bgp1 (read-only): Peers, Advertised, AsNumber, RouterId, ShuttingDown,
    HealthConnected, Generation, LastReloadError; signal PeerStateChanged.
  * org.vc5.Bgp1.Manager (bus policy: root and vc5 operators): Reload, ResetPeer.
The interfaces hold no state; they ask `controller` (the daemon).
"""

from dbus_next import DBusError
from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

from vc5.common import names

ERROR_INVALID_CONFIG = "org.vc5.Bgp1.Error.InvalidConfig"
ERROR_NOT_FOUND = "org.vc5.Bgp1.Error.NotFound"

PEERS_SIGNATURE = "a(ssstttqqasasa{st}sassuus)"

PROPERTIES = ("Peers", "Advertised", "AsNumber", "RouterId", "ShuttingDown", "HealthConnected", "Generation",
              "LastReloadError")


class BgpInterface(ServiceInterface):
    """org.vc5.Bgp1: read-only view of sessions and the RIB."""

    def __init__(self, controller):
        super().__init__(names.BGP_IFACE)
        self._c = controller

    @dbus_property(access=PropertyAccess.READ)
    def Peers(self) -> PEERS_SIGNATURE:  # noqa: N802 (D-Bus member names)
        return self._c.speaker.peer_status()

    @dbus_property(access=PropertyAccess.READ)
    def Advertised(self) -> "as":  # noqa: N802,F821,F722
        return self._c.speaker.advertised()

    @dbus_property(access=PropertyAccess.READ)
    def AsNumber(self) -> "u":  # noqa: N802,F821
        return self._c.speaker.local.asn

    @dbus_property(access=PropertyAccess.READ)
    def RouterId(self) -> "s":  # noqa: N802,F821
        return str(self._c.speaker.local.router_id)

    @dbus_property(access=PropertyAccess.READ)
    def ShuttingDown(self) -> "b":  # noqa: N802,F821
        return self._c.speaker.shutting_down

    @dbus_property(access=PropertyAccess.READ)
    def HealthConnected(self) -> "b":  # noqa: N802,F821
        return self._c.health_connected

    @dbus_property(access=PropertyAccess.READ)
    def Generation(self) -> "t":  # noqa: N802,F821
        return self._c.generation

    @dbus_property(access=PropertyAccess.READ)
    def LastReloadError(self) -> "s":  # noqa: N802,F821
        return self._c.last_reload_error

    @signal()
    def PeerStateChanged(self, address, old_state, new_state, reason) -> "ssss":  # noqa: N802,F821
        return [address, old_state, new_state, reason]

    def values(self, which):
        """Current values of the named properties (for PropertiesChanged)."""
        getters = {"Peers": self._c.speaker.peer_status, "Advertised": self._c.speaker.advertised,
                   "AsNumber": lambda: self._c.speaker.local.asn,
                   "RouterId": lambda: str(self._c.speaker.local.router_id),
                   "ShuttingDown": lambda: self._c.speaker.shutting_down,
                   "HealthConnected": lambda: self._c.health_connected,
                   "Generation": lambda: self._c.generation,
                   "LastReloadError": lambda: self._c.last_reload_error}
        return {name: getters[name]() for name in which}


class BgpManagerInterface(ServiceInterface):
    """org.vc5.Bgp1.Manager: operator actions."""

    def __init__(self, controller):
        super().__init__(names.BGP_MANAGER_IFACE)
        self._c = controller

    @method()
    async def Reload(self) -> "t":  # noqa: N802,F821
        ok, text = await self._c.reload()
        if not ok:
            raise DBusError(ERROR_INVALID_CONFIG, text)
        return self._c.generation

    @method()
    def ResetPeer(self, address: "s"):  # noqa: N802,F821
        try:
            self._c.speaker.reset_peer(address)
        except (KeyError, ValueError):
            raise DBusError(ERROR_NOT_FOUND, f"no BGP peer {address} is configured")
