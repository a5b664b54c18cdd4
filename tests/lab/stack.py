"""The vc5 services of every lab balancer, as processes on private buses.

PID 1 is not systemd here, so each balancer gets its own private system-like
bus (tests/lib/privatebus.py) and its own xdp-loader, healthd and bgpd,
started the way the units start them, with the lab's config. One webd, in the
host namespace, reads balancer 1's bus: it needs no network of its own.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

from vc5.common import wire

from tests.lab.topology import (LAN_NET, LAN_NET6, LB_AS, ROUTER_AS, TRANSIT_NET, TRANSIT_NET6, TUNNELS, VIP4,
                                VIP6, Lab, routed_vip)
from tests.lib.privatebus import Bus
from tests.lib.wait import until


def routed_services(lab: Lab, interval=1.0) -> str:
    """One service per (tunnel type, backends' family), each on a VIP pair of its own
    (topology.routed_vip): tunnel-type/tunnel-port as vc5 v0.3 writes them."""
    out = []
    for tunnel in lab.routed_tunnels:
        port = TUNNELS[tunnel][0]
        for outer in (4, 6):
            servers = "\n".join(f"      - {rb.ip if outer == 4 else rb.ip6}" for rb in lab.routed)
            out.append(f"""  - name: routed-{tunnel}-{outer}
    description: routed backends over {tunnel}, outer IPv{outer}
    virtual:
      - {routed_vip(tunnel, 4, outer)}
      - {routed_vip(tunnel, 6, outer)}
    servers:
{servers}
    tunnel-type: {tunnel}
""" + (f"    tunnel-port: {port}\n" if port else "") + f"""    path: /alive
    interval: {interval}
    policy:
      http:
""")
    return "".join(out)


def vlans_config(lab: Lab, i: int) -> str:
    """The balancer's networks. With routed backends, host bits name the gateway to them (vc5's
    `10: 10.1.10.254/24` form): the router on the LAN, or on the balancer's transit link."""
    if lab.transit:
        t = TRANSIT_NET + f".{i + 1}"
        t6 = TRANSIT_NET6 + f":{i + 1:x}"
        return (f"vlans:\n  1: {LAN_NET}.0/24\n  2: {t}.1/24\n"
                f"vlans6:\n  1: {LAN_NET6}::/64\n  2: {t6}::1/64\n")
    host = ".1" if lab.routed else ".0"
    host6 = "1" if lab.routed else ""
    return f"vlans:\n  1: {LAN_NET}{host}/24\nvlans6:\n  1: {LAN_NET6}::{host6}/64\n"


def balancer_config(lab: Lab, i: int, interval=1.0, backends=None, top="", bgp="", flows=65536) -> str:
    """Balancer i's configuration: `backends` (default all of them) behind the web service,
    `top` added as top-level keys, `bgp` as keys of the bgp section (each line as written)."""
    lb = lab.balancers[i]
    servers = "\n".join(f"      - {be.ip}" for be in (lab.backends if backends is None else backends))
    devs = ", ".join([lb.dev] + ([lab.transit[i].dev] if lab.transit else []))
    return f"""# lab balancer {i + 1}
address: {lb.ip}
interfaces: [{devs}]
xdp_mode: generic
flows_per_cpu: {flows}
{top}{vlans_config(lab, i)}bgp:
  as_number: {LB_AS}
  peer_as: {ROUTER_AS}
  hold_time: 9
{bgp}{f"  next_hop_6: {lb.ip6}{chr(10)}" if lab.routed else ""}  peers:
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
""" + (routed_services(lab, interval) if lab.routed else "")


SERVICES = ("xdp-loader", "healthd", "bgpd", "webd")
BUS = {"healthd": ("org.vc5.Health1", "/org/vc5/Health1"),
       "xdp-loader": ("org.vc5.XdpLoader1", "/org/vc5/XdpLoader1"),
       "bgpd": ("org.vc5.Bgp1", "/org/vc5/Bgp1")}


class Stack:
    """The vc5 services of every balancer. Balancers are numbered from 1 (lb1, lb2) in
    the process-control and bus helpers, as in the namespace and log names."""

    def __init__(self, lab: Lab, web_listen=None, interval=1.0, web_host=None, config=None):
        self.lab = lab
        # balancer_config keyword arguments for every balancer (backends, top, bgp)
        self.config = dict(config or {})
        self.web_listen = web_listen
        # Where webd runs: None = the host's namespace, or a lab Host (e.g. a balancer).
        self.web_host = web_host
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
            self.write_config(i + 1, balancer_config(self.lab, i, self.interval, **self.config))
            env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
            name = f"lb{i + 1}"
            pin = self.pin_dir(i)
            # Lab.build made this prefix's namespaces afresh, so no live lab uses these pins:
            # whatever is there was left by a crashed run (or another flows_per_cpu, which the
            # loader would rightly refuse).
            shutil.rmtree(pin, ignore_errors=True)
            lock = os.path.join(self.lab.workdir, f"{name}-loader.lock")
            # As the unit's RuntimeDirectory: state carried across a restart.
            state = os.path.join(self.lab.workdir, f"{name}-healthd.state.json")
            self.lab.spawn(lb, [py, "-m", "vc5.healthd", "--config", path, "--state-file", state],
                           f"{name}-healthd", env)
            block_dir = os.path.join(self.lab.workdir, f"{name}-state")     # the block list
            self.lab.spawn(lb, [py, "-m", "vc5.xdp_loader", "--config", path, "--pin-dir", pin,
                                "--lock", lock, "--state-dir", block_dir], f"{name}-xdp-loader", env)
            # As the unit: VIPs advertised only while this balancer's loader forwards them.
            self.lab.spawn(lb, [py, "-m", "vc5.bgpd", "--config", path, "--dataplane", "required"],
                           f"{name}-bgpd", env)
        if self.web_listen:
            self._start_webd()

    def _start_webd(self):
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.buses[0]}
        argv = [sys.executable, "-m", "vc5.webd", "--listen", self.web_listen,
                "--config", self.config_path(0)]
        self.lab.spawn(self.web_host, argv, "lb1-webd", env)

    def wait_advertised(self, timeout=60):
        """Until the router has the VIP from every balancer."""
        def nexthops():
            out = self.lab.birdc("show", "route", f"{VIP4}/32")
            hops = {line.split()[1] for line in out.splitlines() if line.strip().startswith("via")}
            return hops if len(hops) == len(self.lab.balancers) else None
        try:
            return until(nexthops, timeout=timeout, interval=0.5)
        except AssertionError:
            raise AssertionError(f"the router did not learn {VIP4} from every balancer\n"
                                 + self.diagnose()) from None

    def diagnose(self) -> str:
        """What each balancer's daemons publish: why a VIP is not advertised (for failure messages)."""
        lines = [f"router: {self.lab.birdc('show', 'protocols').strip()}"]
        for b in range(1, len(self.lab.balancers) + 1):
            lines.append(f"lb{b}: bgpd DataPlane={self.prop(b, 'bgpd', 'DataPlane')} "
                         f"Maintenance={self.prop(b, 'bgpd', 'Maintenance')} "
                         f"Advertised={self.prop(b, 'bgpd', 'Advertised')}")
            for p in self.prop(b, "bgpd", "Peers") or ():
                lines.append(f"  peer {p.address} {p.state} {p.last_error}")
            lines.append(f"  loader Status={self.prop(b, 'xdp-loader', 'Status')}")
            for s in self.prop(b, "xdp-loader", "Services") or ():
                if s.reason or not all(x.in_table for x in s.backends):
                    lines.append(f"  service {s.key} {s.reason!r} "
                                 f"{[(x.address, x.in_table, x.reason) for x in s.backends]}")
            lines.append(f"  healthd VIPs={self.prop(b, 'healthd', 'VIPs')}")
            for process in ("bgpd", "xdp-loader", "healthd"):
                proc = self.process(process, b)
                if proc is not None and proc.poll() is not None:
                    lines.append(f"  {process} exited {proc.returncode}")
        return "\n".join(lines)

    def pin_dir(self, i):
        return f"/sys/fs/bpf/{self.lab.prefix}-lb{i + 1}"

    def stop(self):
        """Stop the buses and remove the loaders' pinned maps (call lab.destroy() first: it stops
        the processes). A loader stopped by SIGTERM leaves its pins for a successor, as under
        systemd; nothing succeeds a lab, and its flow tables hold memory until unpinned."""
        for bus in self._bus_objs:
            bus.stop()
        for i in range(len(self.lab.balancers)):
            shutil.rmtree(self.pin_dir(i), ignore_errors=True)

    # --- process control, as systemd would do it ----------------------------
    def process(self, service, balancer):
        assert service in SERVICES, service
        return self.lab.process(f"lb{balancer}-{service}")

    def send_signal(self, service, balancer, sig):
        os.kill(self.process(service, balancer).pid, sig)

    def stop_service(self, service, balancer, sig=signal.SIGTERM, timeout=20):
        """Send `sig` and wait for the process to exit; returns its exit status."""
        proc = self.process(service, balancer)
        if proc.poll() is None:
            os.kill(proc.pid, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"lb{balancer}-{service} did not exit within {timeout} s of signal {sig}")

    def start_service(self, service, balancer):
        """Start a stopped service again with the same arguments and environment."""
        return self.lab.respawn(self.process(service, balancer))

    def restart(self, service, balancer, timeout=20):
        """`systemctl restart`: SIGTERM, wait for the exit, start again with the same args."""
        status = self.stop_service(service, balancer, signal.SIGTERM, timeout)
        self.start_service(service, balancer)
        return status

    def kill(self, service, balancer):
        """A crash followed by systemd's Restart=: SIGKILL, then start again."""
        self.stop_service(service, balancer, signal.SIGKILL)
        self.start_service(service, balancer)

    def write_config(self, balancer, text):
        with open(self.config_path(balancer - 1), "w") as f:
            f.write(text)

    def config_text(self, balancer):
        return balancer_config(self.lab, balancer - 1, self.interval, **self.config)

    # --- the balancer's private bus --------------------------------------
    def busctl(self, balancer, *args, check=True, user=None):
        """busctl on balancer's bus; `user` runs it as that user (runuser)."""
        argv = ["busctl", f"--address={self.buses[balancer - 1]}", *args]
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
        return p

    def prop(self, balancer, service, name, interface=None):
        """A property's value, or None if the service is absent: read with busctl --json and,
        for the read interfaces, decoded to its vc5.common.wire structs (as every client does)."""
        bus, path = BUS[service]
        interface = interface or bus
        p = self.busctl(balancer, "--json=short", "get-property", bus, path, interface, name, check=False)
        if p.returncode != 0:
            return None
        value = json.loads(p.stdout)["data"]
        schema = wire.SCHEMAS.get(interface)
        return schema.decode({name: value})[name] if schema is not None else value

    def call(self, balancer, service, interface, method, signature="", *args):
        bus, path = BUS[service]
        p = self.busctl(balancer, "--json=short", "call", bus, path, interface, method,
                        *([signature, *map(str, args)] if signature else []))
        body = json.loads(p.stdout)["data"] if p.stdout.strip() else None
        # A read interface's reply with a wire struct (e.g. GetCounters) is decoded to it.
        schema = wire.SCHEMAS.get(interface)
        reply = schema.replies.get(method) if schema is not None else None
        struct = wire.STRUCTS_BY_SIGNATURE.get(reply) if reply else None
        return struct.from_dbus(body[0]) if struct is not None and body else body

    def wait_ready(self, service, balancer, timeout=60):
        """Until the (re)started service does its job again."""
        if service == "xdp-loader":
            until(lambda: (self.prop(balancer, "xdp-loader", "Status") or "").startswith("running"),
                  timeout=timeout, interval=0.2, message=f"lb{balancer} xdp-loader not running")
        elif service == "healthd":
            until(lambda: (vips := self.prop(balancer, "healthd", "VIPs")) and all(v.up for v in vips),
                  timeout=timeout, interval=0.2, message=f"lb{balancer} healthd: VIPs not up")
        elif service == "bgpd":
            self.wait_advertised(timeout)
        elif service == "webd":
            host = self.web_host.ns if self.web_host else None
            cmd = f"curl -sf -m 2 -o /dev/null http://{self.web_listen}/status.json"
            until(lambda: (host.run(cmd, check=False) if host else
                           subprocess.run(cmd, shell=True)).returncode == 0,
                  timeout=timeout, interval=0.2, message="webd does not answer")
