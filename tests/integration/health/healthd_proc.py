"""Run the real vc5-healthd as a subprocess and read its bus object with busctl (test helper)."""

import asyncio
import json
import os
import signal
import subprocess
import time

from dbus_next import BusType
from dbus_next.aio import MessageBus

from tests.lib.wait import until

SERVICES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "services")
BUS, PATH = "org.vc5.Health1", "/org/vc5/Health1"
IFACE, MANAGER = "org.vc5.Health1", "org.vc5.Health1.Manager"


class Healthd:
    """`with Healthd(config_path, bus_address) as h:` the daemon runs and owns org.vc5.Health1."""

    def __init__(self, config, address, args=(), argv_prefix=()):
        self.config, self.address = str(config), address
        self.args, self.argv_prefix = list(args), list(argv_prefix)
        self.log_path = self.config + ".log"
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(SERVICES), DBUS_SYSTEM_BUS_ADDRESS=self.address)
        env.pop("INVOCATION_ID", None)
        env.pop("JOURNAL_STREAM", None)
        env.pop("NOTIFY_SOCKET", None)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*self.argv_prefix, "/usr/bin/python3", "-m", "vc5.healthd",
                                      "--config", self.config, *self.args],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)
        until(lambda: self.owned() or self.proc.poll() is not None, timeout=20,
              message="healthd did not take org.vc5.Health1")
        assert self.proc.poll() is None, f"healthd exited {self.proc.returncode}:\n{self.log()}"
        return self

    def owned(self):
        r = self.busctl("status", BUS, check=False, json_out=False)
        return r.returncode == 0

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    # ---- bus access ----------------------------------------------------------------------------

    def busctl(self, *args, check=True, json_out=True):
        argv = ["busctl", f"--address={self.address}"] + (["--json=short"] if json_out else []) + list(args)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise BusCallFailed(r.stderr.strip())
        return r

    def get(self, prop):
        r = self.busctl("get-property", BUS, PATH, IFACE, prop)
        return json.loads(r.stdout)["data"]

    def call(self, iface, member, signature="", *args):
        r = self.busctl("call", BUS, PATH, iface, member, signature, *[str(a) for a in args])
        out = r.stdout.strip()
        return json.loads(out)["data"] if out else None

    def manager(self, member, signature="", *args):
        return self.call(MANAGER, member, signature, *args)

    def services(self):
        """{service key: {"up", "available", "backends": {address: dict}}} from the Services property."""
        out = {}
        for s in self.get("Services"):
            (vip, port, proto, name, _d, priority, _st, need, _tt, _tp, _tn, up, since, available, bs) = s
            out[f"{vip}:{port}:{proto}"] = {
                "up": up, "since": since, "available": available, "need": need, "name": name,
                "priority": priority,
                "backends": {b[0]: dict(port=b[1], weight=b[2], disabled=b[3], drained=b[4], up=b[5],
                                        since=b[6], diagnostic=b[7], took_ms=b[8],
                                        usable=b[5] and not b[3] and not b[4] and b[2] > 0)
                             for b in bs}}
        return out

    def vips(self):
        return {v[0]: v[1] for v in self.get("VIPs")}

    def backend(self, service, address):
        return self.services()[service]["backends"][address]

    def wait_backend(self, service, address, up, timeout=15):
        return until(lambda: self.backend(service, address)["up"] == up, timeout=timeout,
                     message=f"{address} of {service} did not become {'up' if up else 'down'}: "
                             f"{self.services().get(service)}")


class BusCallFailed(Exception):
    pass


class LoaderStandIn:
    """Publishes org.vc5.XdpLoader1 ProbeAddresses a(sss) from a thread, as xdp-loader will.

    A stand-in for the peer until xdp-loader's NAT path publishes the property.
    """

    def __init__(self, addresses):
        import threading
        from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property

        class Iface(ServiceInterface):
            def __init__(self):
                super().__init__("org.vc5.XdpLoader1")
                self.addresses = addresses

            @dbus_property(access=PropertyAccess.READ)
            def ProbeAddresses(self) -> "a(sss)":  # noqa: N802,F821
                return self.addresses

        self.iface = Iface()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def start():
            self.bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            self.bus.export("/org/vc5/XdpLoader1", self.iface)
            await self.bus.request_name("org.vc5.XdpLoader1")
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def publish(self, addresses):
        def change():
            self.iface.addresses = addresses
            self.iface.emit_properties_changed({"ProbeAddresses": addresses})
        self.loop.call_soon_threadsafe(change)

    def stop(self):
        self.loop.call_soon_threadsafe(self.bus.disconnect)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def monotonic():
    return time.monotonic()
