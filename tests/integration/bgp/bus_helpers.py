"""Test-side D-Bus helpers: a publisher of org.vc5.Health1 VIPs, and readers of org.vc5.Bgp1."""

import asyncio
import threading
import time


# ---------------------------------------------------------------- Health1 publisher

class HealthPublisher:
    """org.vc5.Health1 with a VIPs property, on the private bus, run in its own thread.

    `address`: another private bus than DBUS_SYSTEM_BUS_ADDRESS (a second balancer host's).
    """

    def __init__(self, address=None):
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.vips = []
        self.iface = None
        self.bus = None
        self._call(self._start())

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self):
        from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property

        from vc5.common import bus as vbus
        from vc5.common import names, wire

        pub = self

        class Health(ServiceInterface):
            def __init__(self):
                super().__init__(names.HEALTH_IFACE)

            @dbus_property(access=PropertyAccess.READ)
            def VIPs(self) -> wire.VIPS_SIGNATURE:  # noqa: N802
                return pub.vips

        if self.address is None:
            self.bus = await vbus.connect_system_bus()
        else:
            from dbus_next.aio import MessageBus
            self.bus = await MessageBus(bus_address=self.address).connect()
        self.iface = Health()
        self.bus.export(names.HEALTH_PATH, self.iface)
        await self.bus.request_name(names.HEALTH_BUS)

    def set(self, states):
        """states: {vip: up} or {vip: (up, since_seconds)}; since defaults to now when up."""
        from vc5.common import wire

        now = time.time()
        previous = {v.vip: v for v in map(wire.VipState.from_dbus, self.vips)}
        out = []
        for vip, st in sorted(states.items()):
            up, since = st if isinstance(st, tuple) else (st, now)
            old = previous.get(vip)
            if not isinstance(st, tuple) and old is not None and old.up == bool(up):
                since = old.since / 1e6         # unchanged state keeps its `since`, as healthd does
            out.append(wire.VipState(vip, bool(up), int(since * 1e6)).to_dbus())

        async def apply():
            self.vips = out
            self.iface.emit_properties_changed({"VIPs": out})
        self._call(apply())

    def release_name(self):
        """Leave the bus name, as a stopping healthd does (the connection stays for reading)."""
        from vc5.common import names

        async def release():
            await self.bus.release_name(names.HEALTH_BUS)
        self._call(release())

    def request_name(self):
        from vc5.common import names

        async def request():
            await self.bus.request_name(names.HEALTH_BUS)
        self._call(request())

    def close(self):
        async def stop():
            self.bus.disconnect()
        try:
            self._call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def bgp_property(health, name):
    """Read a property of org.vc5.Bgp1 over the private bus (plain Python values)."""
    from vc5.common import bus as vbus
    from vc5.common import names

    async def get():
        reply = await vbus.call(health.bus, names.BGP_BUS, names.BGP_PATH, "org.freedesktop.DBus.Properties",
                                "Get", "ss", [names.BGP_IFACE, name])
        return vbus.unwrap(reply[0])
    return health._call(get())


def bgp_call(health, member, signature="", body=None):
    """Call org.vc5.Bgp1.Manager.<member>; returns the reply body or raises DBusError."""
    from vc5.common import bus as vbus
    from vc5.common import names

    async def call():
        return await vbus.call(health.bus, names.BGP_BUS, names.BGP_PATH, names.BGP_MANAGER_IFACE, member,
                               signature, body)
    return health._call(call())


def peer_status(health, address):
    """The Peers entry of `address` as a dict; None if bgpd is not (yet) on the bus or has no such peer.

    Keys are wire.PeerState's fields, plus the short names the tests use (uptime, keepalive,
    advertised); sequences are lists, as on the bus."""
    from dbus_next import DBusError

    from vc5.common import wire
    try:
        peers = bgp_property(health, "Peers")
    except DBusError:
        return None
    for p in map(wire.PeerState.from_dbus, peers):
        if p.address == address:
            out = {name: list(v) if isinstance(v, tuple) else v
                   for name, v in ((f, getattr(p, f)) for f in wire.PeerState.field_names())}
            out.update(uptime=p.uptime_s, keepalive=p.keepalive_s, advertised=list(p.advertised_prefixes))
            return out
    return None
