"""A stand-in healthd (org.vc5.Health1 publishing `Services` built with vc5.common.wire) and a
client of org.vc5.XdpLoader1, both on one dbus-next connection driven by a background thread.
"""

import asyncio
import threading

from dbus_next import Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.constants import BusType, PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property

from vc5.common import bus as vbus
from vc5.common import names, wire


class FakeHealth(ServiceInterface):
    """Only what the loader reads: the Services property and its PropertiesChanged."""

    def __init__(self):
        super().__init__(names.HEALTH_IFACE)
        self.services = ()

    @dbus_property(access=PropertyAccess.READ)
    def Services(self) -> wire.SERVICES_SIGNATURE:
        return wire.services_to_dbus(self.services)


class BusThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test bus")
        self.thread.start()
        self.bus = self._run(self._connect())
        self.health = None

    @staticmethod
    async def _connect():
        # MessageBus binds the running loop when constructed: build it in the bus thread
        return await MessageBus(bus_type=BusType.SYSTEM).connect()

    def _run(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- stand-in healthd
    def publish(self, services):
        async def go():
            if self.health is None:
                self.health = FakeHealth()
                self.health.services = tuple(services)
                self.bus.export(names.HEALTH_PATH, self.health)
                await self.bus.request_name(names.HEALTH_BUS)
            else:
                self.health.services = tuple(services)
                self.health.emit_properties_changed({"Services": wire.services_to_dbus(self.health.services)})
        self._run(go())

    def withdraw_health(self):
        async def go():
            if self.health is not None:
                await self.bus.release_name(names.HEALTH_BUS)
                self.bus.unexport(names.HEALTH_PATH, self.health)
                self.health = None
        self._run(go())

    # -- client of the loader
    def call(self, member, signature="", body=(), interface=names.XDP_LOADER_IFACE,
             destination=names.XDP_LOADER_BUS, path=names.XDP_LOADER_PATH):
        """Body of the reply (plain values); raises RuntimeError with the D-Bus error."""
        async def go():
            reply = await self.bus.call(Message(destination=destination, path=path, interface=interface,
                                                member=member, signature=signature, body=list(body)))
            if reply.message_type == MessageType.ERROR:
                raise RuntimeError(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
            return vbus.unwrap(reply.body)
        return self._run(go())

    def get(self, prop, interface=names.XDP_LOADER_IFACE):
        return self.call("Get", "ss", [interface, prop], interface="org.freedesktop.DBus.Properties")[0]

    def get_all(self, interface=names.XDP_LOADER_IFACE):
        return self.call("GetAll", "s", [interface], interface="org.freedesktop.DBus.Properties")[0]

    def introspect(self):
        return self.call("Introspect", interface="org.freedesktop.DBus.Introspectable")[0]

    def owner(self, name):
        return self._run(vbus.get_name_owner(self.bus, name))

    def close(self):
        try:
            self.bus.disconnect()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def variant_free(value):
    return vbus.unwrap(value) if isinstance(value, Variant) else value
