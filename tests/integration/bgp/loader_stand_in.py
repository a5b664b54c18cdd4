"""A stand-in for vc5-xdp-loader on a private bus: org.vc5.XdpLoader1 publishing wire structs.

The real declarations (vc5.xdp_loader.api.XdpLoader) answer from a vbus.Publisher on
wire.XDP_LOADER, as the loader does; the test sets what it publishes. Runs in its own
thread with its own connection, so the name can be owned, released and re-owned as a
loader restart does (docs/data-plane.md).
"""

import asyncio
import threading

from vc5.common import wire


def programmed(vip, port=80, protocol="tcp", reason=""):
    return wire.ProgrammedService(f"{vip}:{port}:{protocol}", vip, port, protocol, reason)


class LoaderStandIn:
    def __init__(self, address=None):
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.state = {"Mode": "native", "Status": "starting: compiling the XDP program", "Active": True,
                      "Interfaces": (wire.InterfaceStatus("eth0", 2, "native", 7, True),), "Vlans": (),
                      "Services": (), "ProgramInfo": wire.ProgramInfo(), "ProbeAddresses": (),
                      "Learning": False, "FlowTables": (), "Blocked": ()}
        self.bus = None
        self.publisher = None
        self._call(self._connect())

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _connect(self):
        from dbus_next.aio import MessageBus

        from vc5.common import bus as vbus
        from vc5.common import names
        from vc5.xdp_loader import api

        if self.address is None:
            self.bus = await vbus.connect_system_bus()
        else:
            self.bus = await MessageBus(bus_address=self.address).connect()
        getters = {name: (lambda n=name: self.state[n]) for name in wire.XDP_LOADER.properties}
        self.publisher = vbus.Publisher(names.XDP_LOADER_PATH, wire.XDP_LOADER, getters)
        self.publisher.attach(self.bus)
        vbus.export(self.bus, names.XDP_LOADER_PATH, api.XdpLoader(self.publisher, wire.Counters))

    def publish(self, **props):
        """Set and publish properties (typed values, e.g. Services=(programmed(vip),))."""
        async def apply():
            self.state.update(props)
            self.publisher.mark(*props)
        self._call(apply())

    def run(self, *vips, **props):
        """A running loader that programmed one service per VIP."""
        self.publish(Status=f"running: {len(vips)} services", Services=tuple(programmed(v) for v in vips),
                     **props)

    def own(self, exported=True):
        """Own the name; exported=False: without the object, as a loader compiling its program."""
        from vc5.common import bus as vbus
        from vc5.common import names
        from vc5.xdp_loader import api

        async def request():
            self.bus.unexport(names.XDP_LOADER_PATH)
            if exported:
                vbus.export(self.bus, names.XDP_LOADER_PATH, api.XdpLoader(self.publisher, wire.Counters))
            await self.bus.request_name(names.XDP_LOADER_BUS)
        self._call(request())

    def export(self):
        """Export the object (a compiled loader that now publishes)."""
        from vc5.common import bus as vbus
        from vc5.common import names
        from vc5.xdp_loader import api

        async def export():
            vbus.export(self.bus, names.XDP_LOADER_PATH, api.XdpLoader(self.publisher, wire.Counters))
            self.publisher.mark(*wire.XDP_LOADER.properties)
        self._call(export())

    def release(self):
        """Leave the bus name, as an exiting loader does."""
        from vc5.common import names

        async def release():
            await self.bus.release_name(names.XDP_LOADER_BUS)
        self._call(release())

    def close(self):
        async def stop():
            self.bus.disconnect()
        try:
            self._call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
