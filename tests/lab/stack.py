"""The vc5 services of every lab balancer, as processes on private buses.

PID 1 is not systemd here, so each balancer gets its own private system-like
bus (tests/lib/privatebus.py) and its own xdp-loader, healthd and bgpd,
started the way the units start them, with the lab's config. One webd, in the
host namespace, reads balancer 1's bus: it needs no network of its own.
"""

import os
import sys

from tests.lab.topology import LAN_NET, LAN_NET6, LB_AS, ROUTER_AS, VIP4, VIP6, Lab
from tests.lib.privatebus import Bus
from tests.lib.wait import until


def balancer_config(lab: Lab, i: int, interval=1.0) -> str:
    lb = lab.balancers[i]
    servers = "\n".join(f"      - {be.ip}" for be in lab.backends)
    return f"""# lab balancer {i + 1}
address: {lb.ip}
interfaces: [{lb.dev}]
xdp_mode: generic
vlans:
  1: {LAN_NET}.0/24
vlans6:
  1: {LAN_NET6}::/64
bgp:
  as_number: {LB_AS}
  peer_as: {ROUTER_AS}
  hold_time: 9
  peers:
    - {lab.router.ip}
services:
  - name: web
    description: lab web service
    virtual:
      - {VIP4}
      - {VIP6}
    servers:
{servers}
    path: /alive
    interval: {interval}
    policy:
      http:
      5353/udp:
"""


class Stack:
    def __init__(self, lab: Lab, web_listen=None, interval=1.0):
        self.lab = lab
        self.web_listen = web_listen
        self.interval = interval
        self.buses = []
        self._bus_objs = []
        self.configs = []

    def config_path(self, i):
        return os.path.join(self.lab.workdir, f"lb{i + 1}.yaml")

    def start(self):
        py = sys.executable
        for i, lb in enumerate(self.lab.balancers):
            bus = Bus()
            self._bus_objs.append(bus)
            self.buses.append(bus.address)
            path = self.config_path(i)
            with open(path, "w") as f:
                f.write(balancer_config(self.lab, i, self.interval))
            env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
            name = f"lb{i + 1}"
            pin = f"/sys/fs/bpf/{self.lab.prefix}-{name}"
            lock = os.path.join(self.lab.workdir, f"{name}-loader.lock")
            self.lab.spawn(lb, [py, "-m", "vc5.healthd", "--config", path], f"{name}-healthd", env)
            self.lab.spawn(lb, [py, "-m", "vc5.xdp_loader", "--config", path, "--pin-dir", pin,
                                "--lock", lock], f"{name}-xdp-loader", env)
            self.lab.spawn(lb, [py, "-m", "vc5.bgpd", "--config", path], f"{name}-bgpd", env)
        if self.web_listen:
            self._start_webd()

    def _start_webd(self):
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.buses[0]}
        self.lab.spawn(None, [sys.executable, "-m", "vc5.webd", "--listen", self.web_listen,
                              "--config", self.config_path(0)], "webd", env)

    def wait_advertised(self, timeout=60):
        """Until the router has the VIP from every balancer."""
        def nexthops():
            out = self.lab.birdc("show", "route", f"{VIP4}/32")
            hops = {line.split()[1] for line in out.splitlines() if line.strip().startswith("via")}
            return hops if len(hops) == len(self.lab.balancers) else None
        return until(nexthops, timeout=timeout, interval=0.5,
                     message=f"the router did not learn {VIP4} from every balancer")

    def stop(self):
        """Stop the buses; the lab stops the processes (call lab.destroy() first)."""
        for bus in self._bus_objs:
            bus.stop()
