"""Builds the lab's network of namespaces (no vc5 in it yet).

    client --- router (BIRD, ECMP) --- lan bridge --+-- lb1 (XDP) ...
    10.210.1.2  10.210.1.1  10.210.2.1              +-- lb2 (XDP)
    fd00:210:1::2                                   +-- be1..beN (VIP on lo)

With `routed=N` the router gets a second network, ROUTED_NET (bridge rt0),
with N routed backends rb1..rbN: the balancers reach them only through the
router, by a tunnel (ipip, gre, fou, gue; docs/real-servers.md). Each runs
`vc5-decap` on its NIC (this kernel has no tunnel modules) and holds every
ROUTED_VIPS address on lo; its replies go straight to the client through the
router (DSR). With `transit_mtu=M` each balancer also gets a second NIC, eth1,
on a link of its own to the router (TRANSIT_NET.<i>, MTU M on both ends): the
gateway to ROUTED_NET is then named on that link, so tunnelled packets leave
the balancer through an MTU smaller than the client's. `client_mtu=M` adds a
second client, `client2` (CLIENT2_NET), whose link at the router has MTU M
while its own end keeps 1500 (it advertises the larger MSS): replies to it
are too big at the router, which sends the ICMP to the VIP.

    router --- rt0 bridge --+-- rb1 (vc5-decap, VIPs on lo)
    10.220.0.1              +-- rb2 ...

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
ROUTED_NET, ROUTED_NET6 = "10.220.0", "fd00:220:0"
TRANSIT_NET, TRANSIT_NET6 = "10.230", "fd00:230"         # + .<balancer> : one /24 (/64) per balancer
CLIENT2_NET, CLIENT2_NET6 = "10.210.3", "fd00:210:3"
# Tunnel types of the routed services, with their tunnel-port (0: none) and VIP index.
TUNNELS = {"ipip": (0, 1), "gre": (0, 2), "fou": (5555, 3), "gue": (6080, 4)}


def routed_vip(tunnel, inner, outer):
    """The VIP of the routed service for `tunnel` whose VIP family is `inner` (4 or 6) and whose
    backends' family is `outer`: one VIP per mix, so a test knows which mix answered."""
    k = TUNNELS[tunnel][1] + (10 if outer == 6 else 0)
    return f"192.0.2.{20 + k}" if inner == 4 else f"2001:db8:10::{20 + k:x}"


ROUTED_VIPS = [routed_vip(t, i, o) for t in TUNNELS for i in (4, 6) for o in (4, 6)]
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
    routed: list = field(default_factory=list)      # routed backends (behind the router)
    transit: list = field(default_factory=list)     # per balancer: Host of eth1, or nothing
    client2: Host = None
    routed_tunnels: tuple = tuple(TUNNELS)          # the routed services the stack configures
    procs: list = field(default_factory=list)
    namespaces: list = field(default_factory=list)

    # --- building -------------------------------------------------------
    @classmethod
    def build(cls, prefix="vc5lab", balancers=2, backends=3, workdir=None, routed=0, transit_mtu=0,
              client_mtu=0):
        lab = cls(prefix=prefix, workdir=workdir or tempfile.mkdtemp(prefix=prefix + "-"))
        try:
            lab._build(balancers, backends)
            if routed:
                lab._build_routed(routed)
            if transit_mtu:
                lab._build_transit(transit_mtu)
            if client_mtu:
                lab._build_client2(client_mtu)
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

    def _build_routed(self, n):
        router = self.router.ns
        bridge(router, "rt0")
        router.run(f"ip addr add {ROUTED_NET}.1/24 dev rt0; ip -6 addr add {ROUTED_NET6}::1/64 dev rt0 nodad")
        vips = "; ".join(f"ip addr add {v}/{32 if ':' not in v else 128} dev lo" for v in ROUTED_VIPS)
        for i in range(1, n + 1):
            ns = self._ns(f"rb{i}")
            port = f"rb{i}p"
            mac = f"02:00:00:00:03:{i:02x}"
            veth(ns, "eth0", router, port, mac_a=mac)
            router.run(["ip", "link", "set", port, "master", "rt0"])
            ip, ip6 = f"{ROUTED_NET}.{10 + i}", f"{ROUTED_NET6}::{10 + i:x}"
            ns.sysctl("net.ipv4.conf.all.arp_ignore", 1)
            ns.sysctl("net.ipv4.conf.all.arp_announce", 2)
            ns.run(f"ip addr add {ip}/24 dev eth0; ip -6 addr add {ip6}/64 dev eth0 nodad; {vips};"
                   f" ip route add default via {ROUTED_NET}.1; ip -6 route add default via {ROUTED_NET6}::1")
            ns.run("ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true")
            router.run(f"ethtool -K {port} tx off rx off >/dev/null 2>&1 || true")
            self.routed.append(Host(ns, ip, ip6, "eth0", mac))
            self.decap(i, "attach")
        router.run("ethtool -K rt0 tx off rx off >/dev/null 2>&1 || true")

    def decap_pins(self, i):
        return f"/sys/fs/bpf/{self.prefix}-decap-rb{i}"

    def decap(self, i, action="attach"):
        """`vc5-decap attach|detach|status eth0` on routed backend i (numbered from 1): every tunnel
        type, FOU and GUE on the lab's ports, the VIPs = the addresses on lo (ROUTED_VIPS)."""
        rb = self.routed[i - 1]
        argv = [sys.executable, "-m", "vc5.decap", "--pin-base", self.decap_pins(i), action, rb.dev]
        if action == "attach":
            argv += ["--types", "ipip,gre,fou,gue", "--fou-port", str(TUNNELS["fou"][0]),
                     "--gue-port", str(TUNNELS["gue"][0]), "--mode", "generic"]
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services") + ":" + REPO)
        return rb.ns.run(argv, env=env, cwd=REPO).stdout

    def decap_status(self, i):
        """`vc5-decap status --json eth0` of routed backend i, as a dict (exit 1 = detached: fine)."""
        rb = self.routed[i - 1]
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services") + ":" + REPO)
        out = rb.ns.run([sys.executable, "-m", "vc5.decap", "--pin-base", self.decap_pins(i), "status",
                         rb.dev, "--json"], env=env, cwd=REPO, check=False).stdout
        return json.loads(out)

    def _build_transit(self, mtu):
        """eth1 on every balancer: a link of its own to the router, MTU `mtu` on both ends."""
        router = self.router.ns
        for i, lb in enumerate(self.balancers, 1):
            port = f"lb{i}t"
            mac = f"02:00:00:00:04:{i:02x}"
            veth(lb.ns, "eth1", router, port, mac_a=mac)
            net, net6 = f"{TRANSIT_NET}.{i}", f"{TRANSIT_NET6}:{i:x}"
            router.run(f"ip link set {port} mtu {mtu}; ip addr add {net}.1/24 dev {port};"
                       f" ip -6 addr add {net6}::1/64 dev {port} nodad;"
                       f" ethtool -K {port} tx off rx off >/dev/null 2>&1 || true")
            lb.ns.run(f"ip link set eth1 mtu {mtu}; ip addr add {net}.2/24 dev eth1;"
                      f" ip -6 addr add {net6}::2/64 dev eth1 nodad;"
                      f" ip route add {ROUTED_NET}.0/24 via {net}.1;"
                      f" ip -6 route add {ROUTED_NET6}::/64 via {net6}::1;"
                      f" ethtool -K eth1 tx off rx off >/dev/null 2>&1 || true")
            self._steer_flows(lb.ns, "eth1")
            self.transit.append(Host(lb.ns, f"{net}.2", f"{net6}::2", "eth1", mac))

    def _build_client2(self, mtu):
        """A second client whose link has MTU `mtu` at the router (1500 at the client)."""
        router = self.router.ns
        ns = self._ns("client2")
        veth(ns, "eth0", router, "cli2")
        ns.run(f"ip addr add {CLIENT2_NET}.2/24 dev eth0; ip -6 addr add {CLIENT2_NET6}::2/64 dev eth0 nodad;"
               f" ip route add default via {CLIENT2_NET}.1; ip -6 route add default via {CLIENT2_NET6}::1;"
               " ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true")
        router.run(f"ip link set cli2 mtu {mtu}; ip addr add {CLIENT2_NET}.1/24 dev cli2;"
                   f" ip -6 addr add {CLIENT2_NET6}::1/64 dev cli2 nodad;"
                   " ethtool -K cli2 tx off rx off >/dev/null 2>&1 || true")
        clear_hash_on_ingress(router, "cli2", f"/sys/fs/bpf/{self.prefix}-router-clear-hash2")
        self.client2 = Host(ns, f"{CLIENT2_NET}.2", f"{CLIENT2_NET6}::2", "eth0")

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
        servers = [(be, f"be{i}", self.fail_file(i), [VIP4, VIP6]) for i, be in enumerate(self.backends, 1)]
        servers += [(rb, f"rb{i}", self.fail_file(f"rb{i}"), []) for i, rb in enumerate(self.routed, 1)]
        for host, name, fail, vips in servers:
            self.spawn(host, [sys.executable, os.path.join(HERE, "backend_server.py"), "--name", name,
                              "--fail", fail, *[a for v in vips for a in ("--vip", v)]], f"{name}-http")
        for host, name, _, _ in servers:
            until(lambda host=host: host.ns.run("ss -Hltn 'sport = :80'", check=False).stdout.strip(),
                  timeout=20, message=f"backend {name} HTTP server did not start")

    def fail_file(self, i):
        """Backend i's (1..) flag file; or a name's ("rb1" for a routed backend)."""
        return os.path.join(self.workdir, f"{i if isinstance(i, str) else f'be{i}'}.fail")

    def set_backend_failing(self, i, failing=True):
        path = self.fail_file(i)
        if failing:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    def start_router(self, bfd_ms=0):
        """BIRD on the router: passive BGP to every balancer, ECMP into the kernel. With `bfd_ms`,
        BFD (RFC 5880) on every session, `bfd_ms` ms intervals, multiplier 3: a silent balancer
        leaves the ECMP group after 3 intervals instead of the 9 s hold time."""
        conf = os.path.join(self.workdir, "bird.conf")
        bfd = f"""protocol bfd {{
  interface "*" {{ min rx interval {bfd_ms} ms; min tx interval {bfd_ms} ms; multiplier 3; }};
}}
""" if bfd_ms else ""
        peers = "\n".join(
            f"""protocol bgp lb{i} {{
  local {LAN_NET}.1 as {ROUTER_AS};
  neighbor {lb.ip} as {LB_AS};
  passive on;
  hold time 9;{" bfd on;" if bfd_ms else ""}
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}""" for i, lb in enumerate(self.balancers, 1))
        with open(conf, "w") as f:
            f.write(f"""log "{self.workdir}/bird.log" all;
router id {LAN_NET}.1;
protocol device {{ }}
protocol kernel {{ merge paths on; ipv4 {{ export all; }}; }}
protocol kernel {{ merge paths on; ipv6 {{ export all; }}; }}
{bfd}{peers}
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
        for i in range(1, len(self.routed) + 1):
            shutil.rmtree(self.decap_pins(i), ignore_errors=True)
        if os.environ.get("VC5_LAB_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
