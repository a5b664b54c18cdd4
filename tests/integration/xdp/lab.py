"""The DSR lab: client -> router -> (bridge) -> balancer with XDP -> 3 backends -> straight back.

    client  c0 10.201.0.2/24 ── r0 10.201.0.1/24  router  r1 10.201.1.1/24 ──┐
                                                                           bridge (own netns)
    balancer l0 10.201.1.2/24 (XDP, generic mode) ─────────────────────────┤
    backend bN b0 10.201.1.1N/24, VIP 192.0.2.80/32 on lo, default via 10.201.1.1 ┘
    (and the same in IPv6: fd20::/64, fd20:1::/64, VIP 2001:db8::80 with an HTTP service)

The router sends the VIP to the balancer; the balancer's XDP program rewrites
the destination MAC to a backend's and transmits back onto the bridge; the
backend (arp_ignore=1, arp_announce=2, rp_filter 0) answers the client from
the VIP through the router (Direct Server Return).

Flow state is per CPU (as in vc5: "RSS must map a flow to the same core"). A
veth has no RSS: a packet is processed on the CPU of whatever sent it (a
process, a timer), so one flow could meet the program on two CPUs. The lab
turns on RPS on the balancer's l0 over every CPU: each flow is steered to one
CPU by its hash before generic XDP runs, which is what RSS gives a real NIC.

The loader runs as a real subprocess in the balancer's namespace, with the
private bus in its environment, a private pin directory under /sys/fs/bpf
and its lock in a temporary directory.
"""

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

from tests.lib import netns
from tests.lib.wait import until
from vc5 import maglev
from vc5.common import wire

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PY = "/usr/bin/python3"

CLIENT = "10.201.0.2"
ROUTER_C, ROUTER_S = "10.201.0.1", "10.201.1.1"
BALANCER = "10.201.1.2"
BACKENDS = {"b1": "10.201.1.11", "b2": "10.201.1.12", "b3": "10.201.1.13"}
VIP = "192.0.2.80"
# IPv6: the same topology, one more prefix per link (no DAD: addresses usable at once)
CLIENT6 = "fd20::2"
ROUTER_C6, ROUTER_S6 = "fd20::1", "fd20:1::1"
BALANCER6 = "fd20:1::2"
BACKENDS6 = {"b1": "fd20:1::11", "b2": "fd20:1::12", "b3": "fd20:1::13"}
VIP6 = "2001:db8::80"
HTTP_PORT, ECHO_PORT, UDP_PORT = 80, 7007, 5353
PREFIX = "h4x"


def sysctls(ns, *devs):
    for key, value in (("net.ipv4.conf.all.rp_filter", 0), ("net.ipv4.conf.default.rp_filter", 0)):
        ns.sysctl(key, value)
    for dev in devs:
        ns.sysctl(f"net.ipv4.conf.{dev}.rp_filter", 0)


def addr16(ip):
    ip = ipaddress.ip_address(ip)
    return ip.packed if ip.version == 6 else bytes(12) + ip.packed


def sdbm16(data):
    """vc5's 16-bit sdbm (bpf/vc5_xdp.c vc5_sdbm): h = h * 63 + c, modulo 2^16."""
    h = 0
    for c in data:
        h = (h * 63 + c) & 0xFFFF
    return h


def expected_backend(addresses, src, sport, vip, dport):
    """The backend vc5's Maglev picks for a new flow (vc5.maglev + sdbm of the 36-byte tuple)."""
    ordered, table = maglev.backend_table(addresses)
    tuple36 = addr16(src) + addr16(vip) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return str(ordered[table[sdbm16(tuple36) & 0x1FFF]])


def health_services(drained=(), down=()):
    """What the stand-in healthd publishes: three services on the VIP, three backends each."""
    def backends(port):
        return tuple(wire.BackendState(a, port, up=a not in down, drained=a in drained)
                     for a in BACKENDS.values())
    v6 = tuple(wire.BackendState(a, HTTP_PORT, up=True) for a in BACKENDS6.values())
    return (wire.ServiceState(VIP, HTTP_PORT, "tcp", name="http", up=True, backends=backends(HTTP_PORT)),
            wire.ServiceState(VIP, ECHO_PORT, "tcp", name="echo", up=True, backends=backends(ECHO_PORT)),
            wire.ServiceState(VIP, UDP_PORT, "udp", name="whoami", up=True, backends=backends(UDP_PORT)),
            wire.ServiceState(VIP6, HTTP_PORT, "tcp", name="http6", up=True, backends=v6))


class Lab:
    def __init__(self, tmp, with_traffic=True):
        self.tmp = tmp
        self.made = []
        self.procs = []
        self.loader = None
        self.loader_log = None
        self.pin_root = f"/sys/fs/bpf/{PREFIX}{uuid.uuid4().hex[:8]}"
        self.pin_dir = self.pin_root + "/v1"
        self.lock = os.path.join(tmp, "run", "xdp-loader.lock")
        self.config = os.path.join(tmp, "vc5.yaml")
        with open(self.config, "w") as f:
            f.write("interfaces: [l0]\nvlans:\n  1: 10.201.1.0/24\nvlans6:\n  1: fd20:1::/64\n"
                    "xdp_mode: generic\nflows_per_cpu: 4096\n")
        try:
            self._build(with_traffic)
        except BaseException:
            self.close()
            raise

    def _ns(self):
        ns = netns.Netns.create(PREFIX)
        self.made.append(ns)
        return ns

    def _build(self, with_traffic):
        self.sw = self._ns()
        self.lb = self._ns()
        self.backends = {name: self._ns() for name in BACKENDS}
        ports = ["sl"]
        netns.veth(self.lb, "l0", self.sw, "sl", mac_a="02:00:00:01:00:02")
        for i, (name, ns) in enumerate(self.backends.items(), start=1):
            netns.veth(ns, "b0", self.sw, f"sb{i}", mac_b=None, mac_a=f"02:00:00:01:00:1{i}")
            ports.append(f"sb{i}")
        if with_traffic:
            self.client = self._ns()
            self.router = self._ns()
            netns.veth(self.client, "c0", self.router, "r0")
            netns.veth(self.router, "r1", self.sw, "sr")
            ports.append("sr")
        netns.bridge(self.sw, "br0", ports)
        self.sw.run("ip link set br0 type bridge stp_state 0 forward_delay 0")
        self.lb.run(f"ip addr add {BALANCER}/24 dev l0 && ip addr add {BALANCER6}/64 dev l0 nodad")
        # RPS, our RSS (see the module docstring). Only `ip netns exec` shows the namespace's sysfs.
        mask = format((1 << os.cpu_count()) - 1, "x")
        subprocess.run(["ip", "netns", "exec", self.lb.name, "sh", "-c",
                        f"echo {mask} > /sys/class/net/l0/queues/rx-0/rps_cpus"], check=True)
        sysctls(self.lb, "l0")
        for name, ns in self.backends.items():
            a = BACKENDS[name]
            ns.run(f"ip addr add {a}/24 dev b0 && ip addr add {VIP}/32 dev lo && "
                   f"ip addr add {BACKENDS6[name]}/64 dev b0 nodad && ip addr add {VIP6}/128 dev lo nodad")
            sysctls(ns, "b0", "lo")
            for dev in ("all", "b0"):
                ns.sysctl(f"net.ipv4.conf.{dev}.arp_ignore", 1)
                ns.sysctl(f"net.ipv4.conf.{dev}.arp_announce", 2)
            if with_traffic:
                ns.run(f"ip route add default via {ROUTER_S} && ip -6 route add default via {ROUTER_S6}")
        if with_traffic:
            self.client.run(f"ip addr add {CLIENT}/24 dev c0 && ip route add default via {ROUTER_C}")
            self.client.run(f"ip addr add {CLIENT6}/64 dev c0 nodad")
            self.client.run(f"ip -6 route add default via {ROUTER_C6}")
            sysctls(self.client, "c0")
            self.router.run(f"ip addr add {ROUTER_C}/24 dev r0 && ip addr add {ROUTER_S}/24 dev r1")
            self.router.run(f"ip addr add {ROUTER_C6}/64 dev r0 nodad")
            self.router.run(f"ip addr add {ROUTER_S6}/64 dev r1 nodad")
            self.router.sysctl("net.ipv4.ip_forward", 1)
            self.router.sysctl("net.ipv6.conf.all.forwarding", 1)
            sysctls(self.router, "r0", "r1")
            self.router.run(f"ip route add {VIP}/32 via {BALANCER}")
            self.router.run(f"ip -6 route add {VIP6}/128 via {BALANCER6}")
            for name, ns in self.backends.items():
                p = ns.popen([PY, os.path.join(HERE, "backend_server.py"), name, f"{VIP},{VIP6}",
                              str(HTTP_PORT), str(ECHO_PORT), str(UDP_PORT)], text=True)
                self.procs.append(p)
                line = p.stdout.readline()
                assert line.strip() == "ready", f"backend {name} did not start: {line!r}"

    # -- the loader
    def env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.join(REPO, "services") + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        env.pop("INVOCATION_ID", None)
        return env

    def loader_argv(self, *extra):
        return [PY, "-m", "vc5.xdp_loader", "--config", self.config, "--pin-dir", self.pin_dir,
                "--lock", self.lock, "--rescan", "0.5", "--state-dir", os.path.join(self.tmp, "state"),
                *extra]

    def start_loader(self):
        self.loader_log = open(os.path.join(self.tmp, "loader.log"), "a")
        self.loader = self.lb.popen(self.loader_argv(), stdout=self.loader_log, stderr=subprocess.STDOUT,
                                    env=self.env())
        return self.loader

    def run_loader_command(self, *extra, env_extra=None, timeout=30):
        env = self.env()
        env.update(env_extra or {})
        return self.lb.run(self.loader_argv(*extra), check=False, env=env, timeout=timeout)

    def kill_loader(self, sig=signal.SIGKILL):
        if self.loader is not None and self.loader.poll() is None:
            os.killpg(self.loader.pid, sig)
            self.loader.wait(20)

    def log_text(self):
        try:
            with open(os.path.join(self.tmp, "loader.log")) as f:
                return f.read()
        except OSError:
            return ""

    def xdp_prog_id(self, dev="l0"):
        out = self.lb.run(f"ip -j link show dev {dev}").stdout
        info = json.loads(out)[0]
        return (info.get("xdp") or {}).get("prog", {}).get("id", 0)

    # -- the client
    def client_argv(self, *args):
        return [PY, os.path.join(HERE, "client.py"), *[str(a) for a in args]]

    def http(self, sports, port=HTTP_PORT, v6=False):
        src, vip = (CLIENT6, VIP6) if v6 else (CLIENT, VIP)
        return json.loads(self.client.run(self.client_argv("http", src, vip, port, *sports)).stdout)

    def udp(self, sports, port=UDP_PORT):
        return json.loads(self.client.run(self.client_argv("udp", CLIENT, VIP, port, *sports)).stdout)

    def start_streams(self, seconds, sports, port=ECHO_PORT):
        """Start streams; returns (process, {sport: backend}) once all are connected."""
        p = self.client.popen(self.client_argv("streams", CLIENT, VIP, port, seconds, *sports), text=True,
                              stderr=subprocess.PIPE)
        line = p.stdout.readline()
        if not line:
            raise AssertionError(f"streams did not connect: {p.stderr.read()}")
        return p, json.loads(line)["connected"]

    @staticmethod
    def finish_streams(p, timeout=30):
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])["result"]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        if self.loader is not None:
            self.kill_loader()
        if self.loader_log is not None:
            self.loader_log.close()
        for ns in reversed(self.made):
            ns.delete()
        shutil.rmtree(self.pin_root, ignore_errors=True)
        if os.path.isdir(self.pin_root):
            for root, dirs, files in os.walk(self.pin_root, topdown=False):
                for n in files:
                    os.unlink(os.path.join(root, n))
                for n in dirs:
                    os.rmdir(os.path.join(root, n))
            os.rmdir(self.pin_root)


def wait_loader_ready(busthread, lab, timeout=30):
    """Until the loader owns its name and reports running with every service's backends in use."""
    def ready():
        if lab.loader is not None and lab.loader.poll() is not None:
            raise AssertionError(f"loader exited {lab.loader.returncode}:\n{lab.log_text()}")
        if busthread.owner("org.vc5.XdpLoader1") is None:
            return False
        return busthread.get("Status").startswith("running")
    until(ready, timeout=timeout, interval=0.1, message="loader did not become ready")


def tmpdir():
    return tempfile.mkdtemp(prefix="h4xdp")


if __name__ == "__main__":   # manual: build the lab and wait
    lab = Lab(tmpdir())
    print("built", [ns.name for ns in lab.made], file=sys.stderr)
    input()
    lab.close()
