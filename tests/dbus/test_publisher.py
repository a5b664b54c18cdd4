"""vc5.common.bus.Publisher, typed watches, signals and own_name on a private dbus-daemon."""

import asyncio

import pytest
from dbus_next import PropertyAccess
from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, dbus_property, method

from vc5.common import bus as vbus
from vc5.common import wire

NAME = "org.vc5.Test1"
PATH = "/org/vc5/Test1"
SCHEMA = wire.Interface("org.vc5.Test1", {
    "Vips": wire.Prop.array(wire.VipState),
    "Count": wire.Prop.scalar("u"),
}, signals={"Changed": wire.PeerStateChange}, replies={"Info": wire.ProgramInfo.SIGNATURE})
TIMEOUT = 10


class Model:
    def __init__(self):
        self.vips = (wire.VipState("192.0.2.1", False, 0),)
        self.count = 0


class Api(ServiceInterface):
    def __init__(self, pub):
        super().__init__(SCHEMA.name)
        self._pub = pub

    @dbus_property(access=PropertyAccess.READ)
    def Vips(self) -> "a(sbt)":
        return self._pub.published("Vips")

    @dbus_property(access=PropertyAccess.READ)
    def Count(self) -> "u":
        return self._pub.published("Count")

    @method()
    def Info(self) -> "(usssut)":
        return wire.ProgramInfo(7, "tag", "xdp_main", "/pins", 3, 9).to_dbus()


async def serve(address, lazy_delay=0.3):
    model = Model()
    pub = vbus.Publisher(PATH, SCHEMA, {"Vips": lambda: model.vips, "Count": lambda: model.count},
                         lazy_delay=lazy_delay)
    conn = await MessageBus(bus_address=address).connect()
    vbus.export(conn, PATH, Api(pub))
    await vbus.own_name(conn, NAME, queue=False)
    pub.attach(conn)
    return model, pub, conn


def count_signals(client):
    seen = []

    def handler(msg):
        if msg.member == "PropertiesChanged" and msg.path == PATH:
            seen.append(sorted(msg.body[1]))
    client.add_message_handler(handler)
    return seen


async def until(predicate, what):
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)


def test_publisher_coalesces_marks_and_watchers_get_typed_values(private_bus):
    async def run():
        model, pub, conn = await serve(private_bus)
        client = await vbus.connect_system_bus()
        states = asyncio.Queue()
        watch = await vbus.watch_properties(client, NAME, PATH, SCHEMA.name, states.put_nowait, schema=SCHEMA)
        signals = count_signals(client)
        try:
            first = await asyncio.wait_for(states.get(), TIMEOUT)
            assert first == {"Vips": (wire.VipState("192.0.2.1", False, 0),), "Count": 0}

            # Two changes while handling one event: one signal carrying both.
            model.vips = (wire.VipState("192.0.2.1", True, 5),)
            pub.mark("Vips")
            model.count = 3
            pub.mark("Count")
            got = await asyncio.wait_for(states.get(), TIMEOUT)
            assert got == {"Vips": (wire.VipState("192.0.2.1", True, 5),), "Count": 3}
            await until(lambda: signals, "no PropertiesChanged")
            assert signals == [["Count", "Vips"]]

            # A Get answers what was published, not a value nobody was told about.
            model.count = 4
            assert (await vbus.get_all(client, NAME, PATH, SCHEMA))["Count"] == 3
            assert pub.current("Count") == 4
        finally:
            await watch.close()
            client.disconnect()
            conn.disconnect()

    asyncio.run(run())


def test_a_lazy_change_waits_for_the_delay_or_the_next_urgent_one(private_bus):
    async def run():
        model, pub, conn = await serve(private_bus, lazy_delay=0.5)
        client = await vbus.connect_system_bus()
        signals = count_signals(client)
        await vbus.call(client, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "AddMatch", "s", [f"type='signal',sender='{NAME}',path='{PATH}'"])
        try:
            loop = asyncio.get_running_loop()
            model.count = 1
            start = loop.time()
            pub.mark("Count", urgent=False)
            await until(lambda: signals, "the lazy change was never published")
            assert loop.time() - start >= 0.45
            model.count = 2
            pub.mark("Count", urgent=False)
            model.vips = ()
            pub.mark("Vips")            # urgent: takes the lazy one along at once
            await until(lambda: len(signals) == 2, "the urgent change was not published")
            assert signals[1] == ["Count", "Vips"] and loop.time() - start < 0.9
        finally:
            client.disconnect()
            conn.disconnect()

    asyncio.run(run())


def test_signals_typed_calls_and_a_second_owner(private_bus):
    async def run():
        model, pub, conn = await serve(private_bus)
        client = await vbus.connect_system_bus()
        changes = asyncio.Queue()
        watch = await vbus.watch_signal(client, NAME, PATH, SCHEMA, "Changed", changes.put_nowait)
        second = await MessageBus(bus_address=private_bus).connect()
        try:
            event = wire.PeerStateChange("192.0.2.254", "Active", "Established", "OPEN received")
            pub.signal(event)
            assert await asyncio.wait_for(changes.get(), TIMEOUT) == event
            with pytest.raises(ValueError, match="no signal carrying VipState"):
                pub.signal(wire.VipState("192.0.2.1"))

            info = await vbus.call(client, NAME, PATH, SCHEMA.name, "Info", reply=wire.ProgramInfo)
            assert info == wire.ProgramInfo(7, "tag", "xdp_main", "/pins", 3, 9)

            with pytest.raises(vbus.NameTaken, match="org.vc5.Test1 is already owned"):
                await vbus.own_name(second, NAME, queue=False)
            with pytest.raises(vbus.BusError) as error:
                await vbus.call(client, NAME, PATH, SCHEMA.name, "NoSuchMethod")
            assert error.value.type == "org.freedesktop.DBus.Error.UnknownMethod"
        finally:
            await watch.close()
            second.disconnect()
            client.disconnect()
            conn.disconnect()

    asyncio.run(run())


def test_get_all_of_an_absent_daemon_is_none(private_bus):
    async def run():
        client = await vbus.connect_system_bus()
        try:
            assert await vbus.get_all(client, NAME, PATH, SCHEMA) is None
        finally:
            client.disconnect()

    asyncio.run(run())
