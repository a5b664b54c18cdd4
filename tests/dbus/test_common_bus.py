"""vc5.common.bus on a private dbus-daemon (the `private_bus` fixture of tests/conftest.py)."""

import asyncio

import pytest
from dbus_next import PropertyAccess, Variant
from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, dbus_property, method, signal

from vc5.common import bus as vbus

NAME = "org.vc5.Test1"
PATH = "/org/vc5/Test1"
IFACE = "org.vc5.Test1"
TIMEOUT = 10


class Thing(ServiceInterface):
    def __init__(self, state="starting", count=0):
        super().__init__(IFACE)
        self._state, self._count = state, count
        self._labels = {"vip": Variant("s", "192.0.2.1")}

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> "s":
        return self._state

    @dbus_property(access=PropertyAccess.READ)
    def Count(self) -> "u":
        return self._count

    @dbus_property(access=PropertyAccess.READ)
    def Labels(self) -> "a{sv}":
        return self._labels

    @method()
    def Bump(self, by: "u") -> "u":
        self._count += by
        self.emit_properties_changed({"Count": self._count})
        return self._count

    @signal()
    def Happened(self) -> "s":
        return "x"

    def set_state(self, state, invalidate=False):
        self._state = state
        if invalidate:
            self.emit_properties_changed({}, ["State"])
        else:
            self.emit_properties_changed({"State": state})


async def start_service(address, thing):
    conn = await MessageBus(bus_address=address).connect()
    conn.export(PATH, thing)
    await conn.request_name(NAME)
    return conn


async def stop_service(conn):
    conn.disconnect()
    await conn.wait_for_disconnect()


async def next_item(queue):
    return await asyncio.wait_for(queue.get(), TIMEOUT)


def test_connect_system_bus_uses_dbus_system_bus_address(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        service = await start_service(private_bus, Thing())
        try:
            assert await vbus.get_name_owner(client, NAME) == service.unique_name
        finally:
            await stop_service(service)
            client.disconnect()

    asyncio.run(run())


def test_wait_for_name_present_absent_and_timeout(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await vbus.wait_for_name(client, NAME, timeout=0.2)
            waiter = asyncio.create_task(vbus.wait_for_name(client, NAME, timeout=TIMEOUT))
            await asyncio.sleep(0)  # let it subscribe: correctness must not depend on this
            service = await start_service(private_bus, Thing())
            try:
                assert await waiter == service.unique_name
                # Already owned: returns at once.
                assert await vbus.wait_for_name(client, NAME, timeout=TIMEOUT) == service.unique_name
            finally:
                await stop_service(service)
            assert await vbus.get_name_owner(client, NAME) is None
        finally:
            client.disconnect()

    asyncio.run(run())


def test_watch_properties_follows_peer_across_restarts(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        seen, vanished = asyncio.Queue(), asyncio.Queue()
        watch = await vbus.watch_properties(client, NAME, PATH, IFACE, seen.put_nowait,
                                            on_vanished=lambda: vanished.put_nowait(True))
        try:
            assert watch.owner is None and watch.properties == {}
            # Peer absent: nothing delivered, nothing guessed.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(seen.get(), 0.3)

            thing = Thing("starting", 1)
            service = await start_service(private_bus, thing)
            assert await next_item(seen) == {"State": "starting", "Count": 1, "Labels": {"vip": "192.0.2.1"}}
            assert watch.owner == service.unique_name

            thing.set_state("ready")
            assert await next_item(seen) == {"State": "ready", "Count": 1, "Labels": {"vip": "192.0.2.1"}}

            # A method call from another client changes Count; the watcher sees the full dict.
            other = await MessageBus(bus_address=private_bus).connect()
            proxy = other.get_proxy_object(NAME, PATH, await other.introspect(NAME, PATH))
            assert await proxy.get_interface(IFACE).call_bump(5) == 6
            other.disconnect()
            assert await next_item(seen) == {"State": "ready", "Count": 6, "Labels": {"vip": "192.0.2.1"}}

            # Invalidated (value not sent): the watcher fetches it.
            thing.set_state("draining", invalidate=True)
            assert (await next_item(seen))["State"] == "draining"

            await stop_service(service)
            assert await next_item(vanished) is True
            assert watch.owner is None and watch.properties == {}

            # Re-appearance (a restart), even with the very same values, is delivered again.
            thing = Thing("draining", 6)
            service = await start_service(private_bus, thing)
            assert await next_item(seen) == {"State": "draining", "Count": 6, "Labels": {"vip": "192.0.2.1"}}
            assert watch.owner == service.unique_name
            # The subscription follows the name to its new owner.
            thing.set_state("ready again")
            assert (await next_item(seen))["State"] == "ready again"
            await stop_service(service)
            assert await next_item(vanished) is True
        finally:
            await watch.close()
            client.disconnect()

    asyncio.run(run())


def test_watch_properties_peer_already_present_and_async_callback(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        thing = Thing("ready", 7)
        service = await start_service(private_bus, thing)
        seen = asyncio.Queue()

        async def callback(properties):
            await asyncio.sleep(0)
            seen.put_nowait(properties)

        watch = await vbus.watch_properties(client, NAME, PATH, IFACE, callback, raw=True)
        try:
            first = await next_item(seen)
            assert first["Count"] == Variant("u", 7)
            assert first["Labels"] == Variant("a{sv}", {"vip": Variant("s", "192.0.2.1")})
            thing.set_state("down")
            assert (await next_item(seen))["State"] == Variant("s", "down")
        finally:
            await watch.close()
            await stop_service(service)
            client.disconnect()

    asyncio.run(run())


def test_watch_ignores_other_interfaces_and_paths(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        thing = Thing("ready", 1)
        service = await start_service(private_bus, thing)
        decoy = Thing("decoy", 99)
        service.export("/org/vc5/Other", decoy)
        seen = asyncio.Queue()
        watch = await vbus.watch_properties(client, NAME, PATH, IFACE, seen.put_nowait)
        try:
            assert (await next_item(seen))["State"] == "ready"
            decoy.set_state("noise")
            thing.set_state("up")
            assert (await next_item(seen))["State"] == "up"
            assert seen.empty()
        finally:
            await watch.close()
            await stop_service(service)
            client.disconnect()

    asyncio.run(run())


SHIPPED = """<node>
  <interface name="org.vc5.Test1">
    <method name="Bump"><arg name="by" type="u" direction="in"/><arg type="u" direction="out"/></method>
    <signal name="Happened"><arg type="s"/></signal>
    <property name="Labels" type="a{sv}" access="read"/>
    <property name="Count" type="u" access="read"/>
    <property name="State" type="s" access="read"/>
  </interface>
</node>"""


def test_live_object_matches_shipped_introspection(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        service = await start_service(private_bus, Thing())
        try:
            [live] = await vbus.call(client, NAME, PATH, "org.freedesktop.DBus.Introspectable", "Introspect")
        finally:
            await stop_service(service)
            client.disconnect()
        return live

    live = asyncio.run(run())
    assert "org.freedesktop.DBus.Properties" in live  # standard interfaces are present, and ignored
    vbus.assert_matches_introspection(live, SHIPPED)
    with pytest.raises(AssertionError) as error:
        changed = SHIPPED.replace('type="u" direction="out"', 'type="i" direction="out"')
        vbus.assert_matches_introspection(live, changed)
    assert "-org.vc5.Test1.Bump method in=(u) out=(i)" in str(error.value)
    assert "+org.vc5.Test1.Bump method in=(u) out=(u)" in str(error.value)


def test_watch_asks_again_until_a_peer_that_owns_its_name_exports_its_object(private_bus):
    """xdp-loader owns its name before it exports anything (it must claim the name before it
    touches the kernel): a watcher must not stay empty because its first GetAll failed and the
    peer then published without a PropertiesChanged."""
    async def run():
        client = await vbus.connect_system_bus()
        seen = asyncio.Queue()
        service = await MessageBus(bus_address=private_bus).connect()
        await service.request_name(NAME)                    # the name, no object yet
        watch = await vbus.watch_properties(client, NAME, PATH, IFACE, seen.put_nowait)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(seen.get(), 0.5)     # nothing to deliver yet
            service.export(PATH, Thing("running", 3))       # exported later, no signal sent
            assert await next_item(seen) == {"State": "running", "Count": 3,
                                             "Labels": {"vip": "192.0.2.1"}}
        finally:
            await watch.close()
            client.disconnect()
            await stop_service(service)

    asyncio.run(run())


def test_watch_sees_a_peer_that_took_its_name_while_the_first_owner_query_was_answered(private_bus,
                                                                                       monkeypatch):
    """The reply to the watch's first GetNameOwner ("no owner") and the NameOwnerChanged that
    follows it can be read in one batch: dbus-next queues the signal at once and resumes the
    caller a loop turn later. The stale "no owner" must not be taken as news after the signal
    (bgpd's fail-safe gate stayed 'loader not on the bus' for good in one lab start in four)."""
    from vc5.common.bus import watch as watch_module

    real = watch_module.get_name_owner
    service_box = {}

    async def reply_then_owner_appears(bus, name):
        owner = await real(bus, name)                       # None: nobody owns it yet
        service_box["conn"] = await start_service(private_bus, Thing("running", 7))
        w = service_box["watch_ref"]
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while w._events.empty():                            # the signal reached the reader first
            assert asyncio.get_running_loop().time() < deadline, "no NameOwnerChanged arrived"
            await asyncio.sleep(0.01)
        return owner                                        # ... and the stale reply resumes after it

    async def run():
        client = await vbus.connect_system_bus()
        seen = asyncio.Queue()
        original_init = watch_module.PropertyWatch.__init__

        def remember(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            service_box["watch_ref"] = self
        monkeypatch.setattr(watch_module.PropertyWatch, "__init__", remember)
        monkeypatch.setattr(watch_module, "get_name_owner", reply_then_owner_appears)
        watch = await vbus.watch_properties(client, NAME, PATH, IFACE, seen.put_nowait)
        try:
            assert (await next_item(seen))["Count"] == 7
            await asyncio.sleep(0.3)                        # let any stale event be handled
            assert watch.owner is not None, "the watch took the stale 'no owner' reply as news"
            assert watch.properties["State"] == "running"
        finally:
            await watch.close()
            client.disconnect()
            await stop_service(service_box["conn"])

    asyncio.run(run())
