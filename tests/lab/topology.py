"""Builds the lab's network of namespaces (no vc5 in it yet).

    client --- router (BIRD, ECMP) --- lan bridge --+-- lb1 (XDP) ...
    10.210.1.2  10.210.1.1  10.210.2.1              +-- lb2 (XDP)
    fd00:210:1::2                                   +-- be1..beN (VIP on lo)

Backends hold the VIPs on lo with arp_ignore=1/arp_announce=2 (so they never
answer ARP for a VIP) and route replies straight to the router: Direct Server
Return. The router learns the VIPs from the balancers over BGP (BIRD) and
installs every balancer as an equal-cost next hop, hashing on layer 4.

Every address here lives only inside namespaces the lab creates.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from tests.lab.skbhash import clear_hash_on_ingress
from tests.lib.netns import Netns, bridge, veth
from tests.lib.wait import until

VIP4 = "192.0.2.10"
VIP6 = "2001:db8:10::10"
ROUTER_AS = 65000
LB_AS = 65001
CLIENT_NET, LAN_NET = "10.210.1", "10.210.2"
CLIENT_NET6, LAN_NET6 = "fd00:210:1", "fd00:210:2"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@dataclass
class Host:
    ns: Netns
    ip: str
    ip6: str
    dev: str
    mac: str = ""


@dataclass
class Lab:
    prefix: str
    workdir: str
    client: Host = None
    router: Host = None
    balancers: list = field(default_factory=list)
    backends: list = field(default_factory=list)
    procs: list = field(default_factory=list)
    namespaces: list = field(default_factory=list)

    # --- building -------------------------------------------------------
    @classmethod
    def build(cls, prefix="vc5lab", balancers=2, backends=3, workdir=None):
        lab = cls(prefix=prefix, workdir=workdir or tempfile.mkdtemp(prefix=prefix + "-"))
        try:
            lab._build(balancers, backends)
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _ns(self, role):
        ns = Netns(f"{self.prefix}-{role}")
        self.namespaces.append(ns)
        for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
            ns.sysctl(key, 0)
        return ns

    def _build(self, n_lb, n_be):
        router = self._ns("router")
        client = self._ns("client")
        for key, value in (("net.ipv4.ip_forward", 1), ("net.ipv6.conf.all.forwarding", 1),
                           ("net.ipv4.fib_multipath_hash_policy", 1),
                           ("net.ipv6.fib_multipath_hash_policy", 1)):
            router.sysctl(key, value)
        veth(client, "eth0", router, "cli0")
        client.run(f"ip addr add {CLIENT_NET}.2/24 dev eth0;"
                   f" ip -6 addr add {CLIENT_NET6}::2/64 dev eth0 nodad;"
                   f" ip route add default via {CLIENT_NET}.1; ip -6 route add default via {CLIENT_NET6}::1")
        router.run(f"ip addr add {CLIENT_NET}.1/24 dev cli0;"
                   f" ip -6 addr add {CLIENT_NET6}::1/64 dev cli0 nodad")
        # The router hashes the client's flows from their headers, as for packets off a wire.
        clear_hash_on_ingress(router, "cli0", f"/sys/fs/bpf/{self.prefix}-router-clear-hash")
        bridge(router, "lan0")
        router.run(f"ip addr add {LAN_NET}.1/24 dev lan0; ip -6 addr add {LAN_NET6}::1/64 dev lan0 nodad")
        self.client = Host(client, f"{CLIENT_NET}.2", f"{CLIENT_NET6}::2", "eth0")
        self.router = Host(router, f"{LAN_NET}.1", f"{LAN_NET6}::1", "lan0")

        for i in range(1, n_lb + 1):
            ns = self._ns(f"lb{i}")
            port = f"lb{i}p"
            veth(ns, "eth0", router, port, mac_a=f"02:00:00:00:01:{i:02x}")
            router.run(["ip", "link", "set", port, "master", "lan0"])
            ip, ip6 = f"{LAN_NET}.{10 + i}", f"{LAN_NET6}::{10 + i:x}"
            ns.run(f"ip addr add {ip}/24 dev eth0; ip -6 addr add {ip6}/64 dev eth0 nodad;"
                   f" ip route add default via {LAN_NET}.1; ip -6 route add default via {LAN_NET6}::1")
            # Offloads off: XDP sees complete checksums on veth (environment facts).
            ns.run("ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true")
            self._steer_flows(ns, "eth0")
            self.balancers.append(Host(ns, ip, ip6, "eth0", f"02:00:00:00:01:{i:02x}"))

        for i in range(1, n_be + 1):
            ns = self._ns(f"be{i}")
            port = f"be{i}p"
            veth(ns, "eth0", router, port, mac_a=f"02:00:00:00:02:{i:02x}")
            router.run(["ip", "link", "set", port, "master", "lan0"])
            ip, ip6 = f"{LAN_NET}.{20 + i}", f"{LAN_NET6}::{20 + i:x}"
            ns.sysctl("net.ipv4.conf.all.arp_ignore", 1)
            ns.sysctl("net.ipv4.conf.all.arp_announce", 2)
            ns.run(f"ip addr add {ip}/24 dev eth0; ip -6 addr add {ip6}/64 dev eth0 nodad;"
                   f" ip addr add {VIP4}/32 dev lo; ip -6 addr add {VIP6}/128 dev lo;"
                   f" ip route add default via {LAN_NET}.1; ip -6 route add default via {LAN_NET6}::1")
            ns.run("ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true")
            self.backends.append(Host(ns, ip, ip6, "eth0", f"02:00:00:00:02:{i:02x}"))
        for dev in ["cli0", "lan0"] + [f"lb{i}p" for i in range(1, n_lb + 1)] + \
                [f"be{i}p" for i in range(1, n_be + 1)]:
            router.run(f"ethtool -K {dev} tx off rx off >/dev/null 2>&1 || true")

    def add_lan_host(self, role, index):
        """Another namespace on the LAN bridge at LAN_NET.index (e.g. a second BGP peer)."""
        ns = self._ns(role)
        port = f"{role[:8]}p"
        veth(ns, "eth0", self.router.ns, port)
        self.router.ns.run(["ip", "link", "set", port, "master", "lan0"])
        ip = f"{LAN_NET}.{index}"
        ns.run(f"ip addr add {ip}/24 dev eth0; ip route add default via {LAN_NET}.1")
        ns.run("ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true")
        self.router.ns.run(f"ethtool -K {port} tx off rx off >/dev/null 2>&1 || true")
        return Host(ns, ip, "", "eth0")

    @staticmethod
    def _steer_flows(ns, dev):
        """RPS over every CPU: each flow is received on one CPU, chosen by its hash.

        A NIC's RSS does this on a real balancer, and the data plane relies on it:
        its flow table is per CPU (as vc5's), so a flow whose packets reach XDP on
        changing CPUs loses its pinning. A veth without RPS receives on whichever
        CPU the sender ran on; generic XDP runs after RPS steering. sysfs shows the
        namespace's own devices only when mounted inside it: `ip netns exec` does
        that in a private mount namespace of its own.
        """
        mask = format((1 << os.cpu_count()) - 1, "x")
        subprocess.run(["ip", "netns", "exec", ns.name, "sh", "-c",
                        f"for q in /sys/class/net/{dev}/queues/rx-*; do echo {mask} > $q/rps_cpus; done"],
                       check=True, capture_output=True)

    def link_stats(self, host):
        """{"rx_packets", "rx_bytes", ...} of host's device (sysfs here shows the host's devices)."""
        out = host.ns.run(["ip", "-s", "-j", "link", "show", "dev", host.dev]).stdout
        stats = json.loads(out)[0]["stats64"]
        return {f"{d}_{k}": v for d in ("rx", "tx") for k, v in stats[d].items()}

    # --- processes ------------------------------------------------------
    def spawn(self, host_or_ns, argv, name, env=None):
        """Start a long-running process in a namespace (None: the host's), logging to workdir/NAME.log."""
        ns = host_or_ns.ns if isinstance(host_or_ns, Host) else host_or_ns
        log = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        full_env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services") + ":" + REPO, **(env or {}))
        if ns is None:
            proc = subprocess.Popen(argv, stdout=log, stderr=log, env=full_env, cwd=REPO,
                                    start_new_session=True)
        else:
            proc = ns.popen(argv, stdout=log, stderr=log, env=full_env, cwd=REPO)
        proc.lab_name = name
        proc.lab_start = (host_or_ns, argv, name, env)
        self.procs.append(proc)
        return proc

    def process(self, name):
        """The live process spawned as `name` (the newest one if it was respawned)."""
        for proc in reversed(self.procs):
            if proc.lab_name == name:
                return proc
        raise KeyError(f"no lab process named {name!r}")

    def respawn(self, proc):
        """Start `proc` again exactly as it was started (it must have exited)."""
        assert proc.poll() is not None, f"{proc.lab_name} is still running"
        self.procs.remove(proc)
        return self.spawn(*proc.lab_start)

    def start_backends(self):
        for i, be in enumerate(self.backends, 1):
            self.spawn(be, [sys.executable, os.path.join(HERE, "backend_server.py"), "--name", f"be{i}",
                            "--fail", self.fail_file(i), "--vip", VIP4, "--vip", VIP6], f"be{i}-http")
        for i, be in enumerate(self.backends, 1):
            until(lambda be=be: be.ns.run("ss -Hltn 'sport = :80'", check=False).stdout.strip(),
                  timeout=20, message=f"backend be{i} HTTP server did not start")

    def fail_file(self, i):
        return os.path.join(self.workdir, f"be{i}.fail")

    def set_backend_failing(self, i, failing=True):
        path = self.fail_file(i)
        if failing:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    def start_router(self):
        """BIRD on the router: passive BGP to every balancer, ECMP into the kernel."""
        conf = os.path.join(self.workdir, "bird.conf")
        peers = "\n".join(
            f"""protocol bgp lb{i} {{
  local {LAN_NET}.1 as {ROUTER_AS};
  neighbor {lb.ip} as {LB_AS};
  passive on;
  hold time 9;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}""" for i, lb in enumerate(self.balancers, 1))
        with open(conf, "w") as f:
            f.write(f"""log "{self.workdir}/bird.log" all;
router id {LAN_NET}.1;
protocol device {{ }}
protocol kernel {{ merge paths on; ipv4 {{ export all; }}; }}
protocol kernel {{ merge paths on; ipv6 {{ export all; }}; }}
{peers}
""")
        self.bird_ctl = os.path.join(self.workdir, "bird.ctl")
        pid = os.path.join(self.workdir, "bird.pid")
        self.router.ns.run(["bird", "-c", conf, "-s", self.bird_ctl, "-P", pid])

    def birdc(self, *args):
        return subprocess.run(["birdc", "-s", self.bird_ctl, *args], capture_output=True, text=True).stdout

    # --- teardown -------------------------------------------------------
    def destroy(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except Exception:
                os.killpg(proc.pid, 9)
        pidfile = os.path.join(self.workdir, "bird.pid")
        if os.path.exists(pidfile):
            try:
                os.kill(int(open(pidfile).read().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass
        for ns in reversed(self.namespaces):
            ns.delete()
        if os.environ.get("VC5_LAB_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
