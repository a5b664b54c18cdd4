"""Tiny fake publishers of org.vc5.Health1, org.vc5.Bgp1 and org.vc5.XdpLoader1 for webd/vc5ctl tests.

They run on their own asyncio loop in a background thread, so the test (in
the main thread) can start real `vc5-webd` / `vc5ctl` processes and flip
state while they read. Every `.Manager` call is recorded in `manager_calls`,
so tests can assert webd never makes one (and vc5ctl makes exactly the
expected one). The signatures are the shipped XML's.
"""

from __future__ import annotations

import asyncio
import threading
import time

from dbus_next import BusType
from dbus_next.aio import MessageBus
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

from vc5.common import names, wire
from vc5.webd import demo


# Every fake state changed 5m15s before the fakes started (the console shows "5m15s UP").
T0 = int((time.time() - 315) * 1e6)


class Health(ServiceInterface):
    def __init__(self):
        super().__init__(names.HEALTH_IFACE)
        self.view = demo.health(t0=T0)

    def flip(self, kw):
        """Publish demo.health(**kw) (kw e.g. {"flip_down": "10.1.100.121"}) as a change, with
        a Transition signal per backend that went up or down, as healthd does."""
        old = {(s.key, b.address): b for s in self.view.services for b in s.backends}
        self.set_view(demo.health(t0=int(time.time() * 1e6), **kw))
        for s in self.view.services:
            for b in s.backends:
                if old[(s.key, b.address)].up != b.up:
                    word = "up" if b.up else "down"
                    self.Transition("backend", s.vip, s.port, s.protocol, f"{b.address}:{b.port}", b.up,
                                    f"Backend {b.address}:{b.port} for service {s.key} went {word}")

    @signal()
    def Transition(self, kind, vip, port, protocol, backend, up, text) -> "ssqssbs":
        return [kind, vip, port, protocol, backend, up, text]

    def set_view(self, view):
        self.view = view
        self.emit_properties_changed({"Services": wire.services_to_dbus(view.services),
                                      "VIPs": wire.vips_to_dbus(view.vips)})

    @dbus_property(access=PropertyAccess.READ)
    def Services(self) -> "a(sqssssbqsqbbtqa(sqqbbbtsu))":
        return wire.services_to_dbus(self.view.services)

    @dbus_property(access=PropertyAccess.READ)
    def VIPs(self) -> "a(sbt)":
        return wire.vips_to_dbus(self.view.vips)

    @dbus_property(access=PropertyAccess.READ)
    def Generation(self) -> "t":
        return 1

    @dbus_property(access=PropertyAccess.READ)
    def ConfigSource(self) -> "s":
        return ""


class HealthManager(ServiceInterface):
    def __init__(self, calls):
        super().__init__(names.HEALTH_MANAGER_IFACE)
        self.calls = calls

    @method()
    def Reload(self) -> "t":
        self.calls.append(("Health1.Reload",))
        return 2

    @method()
    def Drain(self, service: "s", backend: "s") -> "u":
        self.calls.append(("Health1.Drain", service, backend))
        return 4 if backend.startswith("10.1.100.") else 0

    @method()
    def Undrain(self, service: "s", backend: "s") -> "u":
        self.calls.append(("Health1.Undrain", service, backend))
        return 4 if backend.startswith("10.1.100.") else 0

    @method()
    def SetDebug(self, enabled: "b"):
        self.calls.append(("Health1.SetDebug", enabled))


def peers_struct(state="Established"):
    counters = {"updates_in": 1, "updates_out": 3, "advertised": 2, "withdrawn": 0, "connection_attempts": 1,
                "established": 1, "notifications_in": 0, "notifications_out": 0}
    up = state == "Established"
    since, uptime = (T0, int(time.time() - T0 / 1e6)) if up else (0, 0)
    return [wire.PeerState(addr, "", state, T0, since, uptime, 10, 3, ("mp:ipv4-unicast",), ("ipv4-unicast",),
                           counters, "", ("192.168.101.1/32", "192.168.101.2/32"), "10.1.100.2", 65000, 65000,
                           addr).to_dbus()
            for addr in ("10.1.100.100", "10.1.100.101")]


class Bgp(ServiceInterface):
    def __init__(self):
        super().__init__(names.BGP_IFACE)
        self.peers = peers_struct()

    def set_state(self, state):
        self.peers = peers_struct(state)
        self.emit_properties_changed({"Peers": self.peers})

    @dbus_property(access=PropertyAccess.READ)
    def Peers(self) -> "a(ssstttqqasasa{st}sassuus)":
        return self.peers

    @dbus_property(access=PropertyAccess.READ)
    def Advertised(self) -> "as":
        return ["192.168.101.1/32", "192.168.101.2/32"]


class BgpManager(ServiceInterface):
    def __init__(self, calls):
        super().__init__(names.BGP_MANAGER_IFACE)
        self.calls = calls

    @method()
    def Reload(self) -> "t":
        self.calls.append(("Bgp1.Reload",))
        return 2

    @method()
    def ResetPeer(self, address: "s"):
        self.calls.append(("Bgp1.ResetPeer", address))


class Loader(ServiceInterface):
    def __init__(self):
        super().__init__(names.XDP_LOADER_IFACE)
        self.tick = 0

    @dbus_property(access=PropertyAccess.READ)
    def Interfaces(self) -> "a(sisubs)":
        return [wire.InterfaceStatus("eth0", 2, "generic", 42, True, "").to_dbus()]

    @dbus_property(access=PropertyAccess.READ)
    def Services(self) -> "a(ssqssa(ssbbssq))":
        return [wire.ProgrammedService(s.key, s.vip, s.port, s.protocol, "", tuple(
                    wire.ProgrammedBackend(b.address, demo.MACS[b.address], b.usable, True, "", "eth0", 0)
                    for b in s.backends)).to_dbus()
                for s in demo.health().services]

    @dbus_property(access=PropertyAccess.READ)
    def ProgramInfo(self) -> "(usssut)":
        return wire.ProgramInfo(42, "abcdef", "xdp_vc5", "/sys/fs/bpf/vc5", 1, T0).to_dbus()

    @method()
    def GetCounters(self) -> "(a{st}a{sa{st}}a{sa{st}}a{sa{sa{st}}})":
        self.tick += 1
        x = demo.xdp(self.tick)
        backends = {}
        for (svc, rip), c in x.backends.items():
            backends.setdefault(svc, {})[rip] = c
        return wire.Counters(x.globals, x.vips, x.services, backends).to_dbus()

    @method()
    def GetPrefixes(self, limit: "u") -> "(ayayayaya{st}a{st})":
        # 203.0.113.0/20 (slot 203.0.113.0 >> 12) and 10.1.96.0/20: what /prefixes.json must show
        return wire.PrefixCounters(ipv4=((0xCB007, 1234), (0x0A016, 5)), blocked={"192.0.2.0/24": 9},
                                   totals={"blocked4": 9}).to_dbus()


class LoaderManager(ServiceInterface):
    def __init__(self, calls):
        super().__init__(names.XDP_LOADER_MANAGER_IFACE)
        self.calls = calls

    @method()
    def Resync(self):
        self.calls.append(("XdpLoader1.Resync",))


class Fakes:
    """`with Fakes(which=("health", "bgp", "xdp")) as f:`; f.run(callable) runs on the fakes' loop."""

    def __init__(self, which=("health", "bgp", "xdp")):
        self.which = which
        self.manager_calls = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.buses = {}

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _export(self, key, bus_name, path, *ifaces):
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        for iface in ifaces:
            bus.export(path, iface)
        await bus.request_name(bus_name)
        self.buses[key] = bus

    async def _start(self):
        if "health" in self.which:
            self.health = Health()
            await self._export("health", names.HEALTH_BUS, names.HEALTH_PATH, self.health,
                               HealthManager(self.manager_calls))
        if "bgp" in self.which:
            self.bgp = Bgp()
            await self._export("bgp", names.BGP_BUS, names.BGP_PATH, self.bgp,
                               BgpManager(self.manager_calls))
        if "xdp" in self.which:
            self.loader = Loader()
            await self._export("xdp", names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, self.loader,
                               LoaderManager(self.manager_calls))

    def run(self, fn, *args):
        """Run fn(*args) on the fakes' loop (D-Bus objects are not thread-safe) and return its result."""
        async def call():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def stop(self, key):
        """Drop one daemon off the bus (as if it stopped)."""
        async def go():
            self.buses.pop(key).disconnect()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    def __exit__(self, *exc):
        async def close():
            for bus in self.buses.values():
                bus.disconnect()
        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
