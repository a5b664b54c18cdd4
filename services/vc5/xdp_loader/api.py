"""The loader's D-Bus API: org.vc5.XdpLoader1 (read) and org.vc5.XdpLoader1.Manager.

Declarations only. Both interfaces live on /org/vc5/XdpLoader1; the shipped
introspection XML (vc5/dbus/org.vc5.XdpLoader1.xml) is the contract and the
wire structs of vc5.common.wire.XDP_LOADER carry its values (tests compare
both with the live object). Property values are what the loader's Publisher
last published, so a Get and PropertiesChanged never disagree.

Authorisation is the bus policy (dbus-next cannot tell who called): everyone
may read org.vc5.XdpLoader1; only root and the group vc5 (operators) call .Manager. Errors are
org.vc5.XdpLoader1.Error.<Method> (vc5.common.names.XDP_LOADER_ERROR_PREFIX).

Counters are a method, GetCounters(), not a property: they change with every
packet, so a property would either lie or flood the bus with
PropertiesChanged. webd polls it (every 2 s). The same holds for the source
prefix counters, GetPrefixes(limit) (only non-zero ones are sent); the block
list itself is the Blocked property, changed with Manager.BlockPrefixes /
UnblockPrefixes.
"""

import asyncio

from dbus_next import DBusError
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method

from vc5.common import names, wire

P = wire.XDP_LOADER.properties


class LoaderError(DBusError):
    def __init__(self, kind, text):
        super().__init__(names.XDP_LOADER_ERROR_PREFIX + kind, text)


class XdpLoader(ServiceInterface):
    """org.vc5.XdpLoader1: read-only state. `publisher`: a vbus.Publisher on wire.XDP_LOADER;
    `counters()`: a wire.Counters; `prefixes(limit)`: a wire.PrefixCounters."""

    def __init__(self, publisher, counters, prefixes=None):
        super().__init__(names.XDP_LOADER_IFACE)
        self._pub = publisher
        self._counters = counters
        self._prefixes = prefixes

    @dbus_property(access=PropertyAccess.READ)
    def Mode(self) -> P["Mode"].signature:
        return self._pub.published("Mode")

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> P["Status"].signature:
        return self._pub.published("Status")

    @dbus_property(access=PropertyAccess.READ)
    def Active(self) -> P["Active"].signature:
        return self._pub.published("Active")

    @dbus_property(access=PropertyAccess.READ)
    def Interfaces(self) -> P["Interfaces"].signature:
        return self._pub.published("Interfaces")

    @dbus_property(access=PropertyAccess.READ)
    def Vlans(self) -> P["Vlans"].signature:
        return self._pub.published("Vlans")

    @dbus_property(access=PropertyAccess.READ)
    def Services(self) -> P["Services"].signature:
        return self._pub.published("Services")

    @dbus_property(access=PropertyAccess.READ)
    def ProgramInfo(self) -> P["ProgramInfo"].signature:
        return self._pub.published("ProgramInfo")

    @dbus_property(access=PropertyAccess.READ)
    def ProbeAddresses(self) -> P["ProbeAddresses"].signature:
        return self._pub.published("ProbeAddresses")

    @dbus_property(access=PropertyAccess.READ)
    def Learning(self) -> P["Learning"].signature:
        return self._pub.published("Learning")

    @dbus_property(access=PropertyAccess.READ)
    def FlowTables(self) -> P["FlowTables"].signature:
        return self._pub.published("FlowTables")

    @method()
    def GetCounters(self) -> wire.XDP_LOADER.replies["GetCounters"]:
        try:
            return self._counters().to_dbus()
        except Exception as e:      # a map read failed: say which, never crash the loop
            raise LoaderError("Counters", f"reading the data-plane counters failed: {e}") from e

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> P["Blocked"].signature:
        return self._pub.published("Blocked")

    @method()
    async def GetPrefixes(self, limit: "u") -> wire.XDP_LOADER.replies["GetPrefixes"]:
        """Packets per source IPv4 /20 and IPv6 /48 bucket (non-zero only; limit > 0: the busiest
        `limit` of each family), and the packets each block list entry dropped. Read in a worker
        thread: 2^20 per-CPU counters take ~0.5-1 s (bench/prefixes.py), the loop stays free."""
        if self._prefixes is None:
            raise LoaderError("Prefixes", "this loader has no prefix counters")
        try:
            return await asyncio.to_thread(lambda: self._prefixes(int(limit)).to_dbus())
        except Exception as e:
            raise LoaderError("Prefixes", f"reading the prefix counters failed: {e}") from e


class XdpLoaderManager(ServiceInterface):
    """org.vc5.XdpLoader1.Manager: operator actions (root and the group vc5, by bus policy)."""

    def __init__(self, controller):
        super().__init__(names.XDP_LOADER_MANAGER_IFACE)
        self._controller = controller

    async def _run(self, kind, coro):
        try:
            return await coro
        except DBusError:
            raise
        except Exception as e:
            raise LoaderError(kind, str(e)) from e

    @method()
    async def Reattach(self, interface: "s"):
        """Attach the program to `interface` again (replacing in place): the NIC lost its hook."""
        await self._run("Reattach", self._controller.reattach(interface))

    @method()
    async def Resync(self):
        """Re-read healthd's Services, rescan interfaces and neighbours, reprogram every service."""
        await self._run("Resync", self._controller.resync())

    @method()
    async def Reload(self):
        """Re-read the configuration (interfaces, vlans, mode); refused with its problems if invalid."""
        await self._run("Reload", self._controller.reload())

    @method()
    async def SetActive(self, active: "b"):
        """Turn balancing on or off (off: every packet goes to the kernel stack, XDP_PASS)."""
        await self._run("SetActive", self._controller.set_active(active))

    @method()
    async def Shutdown(self, detach: "b"):
        """Stop the loader. detach=true also detaches XDP and removes the pinned maps (stop for good);
        detach=false keeps forwarding for a successor (as on restart)."""
        await self._run("Shutdown", self._controller.shutdown(detach))

    @method()
    async def BlockPrefixes(self, prefixes: "as"):
        """Drop every packet from these source prefixes (CIDR or address) before any other work;
        all are validated first (a bad one: error naming it, nothing changed); kept across restarts."""
        await self._run("BlockPrefixes", self._controller.block_prefixes(list(prefixes)))

    @method()
    async def UnblockPrefixes(self, prefixes: "as"):
        """Remove these exact entries from the block list (one that is not there: error naming it)."""
        await self._run("UnblockPrefixes", self._controller.unblock_prefixes(list(prefixes)))
