"""Fixtures for vc5-bgpd against real BGP peers (BIRD 2, GoBGP) in network namespaces.

Topology per test: namespace R (the router: BIRD or gobgpd) and one or more
namespaces L (a real vc5-bgpd process each), joined by a bridge in R. VIP
states come from a test publisher of org.vc5.Health1 on a private bus.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap

import pytest

from tests.lib import netns as nsmod
from tests.lib.privatebus import Bus
from tests.lib.wait import until

from .bus_helpers import HealthPublisher, bgp_call, bgp_property, peer_status

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PREFIX = "vbgp"
NET4 = "10.203.0"
NET6 = "fd00:203::"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration/bgp" in str(item.fspath):
            item.add_marker(pytest.mark.usefixtures("root"))


@pytest.fixture
def health(private_bus):
    pub = HealthPublisher()
    yield pub
    pub.close()


@pytest.fixture
def health2(private_bus):
    """A second balancer host's own system bus, with its org.vc5.Health1: each host runs one
    vc5-bgpd, which owns org.vc5.Bgp1 on its bus (a second one on the same bus exits 1).
    Pass `bus=health2.address` to bgpd_factory for the vc5-bgpd of that host."""
    bus = Bus()
    pub = HealthPublisher(bus.address)
    yield pub
    pub.close()
    bus.stop()


# ---------------------------------------------------------------- topology

class Lab:
    """R (router) with a bridge; add_speaker() adds a namespace wired to it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.made = []
        self.router = self._ns()
        nsmod.bridge(self.router, "br0")
        self.router.run(f"ip addr add {NET4}.1/24 dev br0; ip -6 addr add {NET6}1/64 dev br0 nodad")
        self.count = 1

    def _ns(self):
        ns = nsmod.Netns.create(PREFIX)
        self.made.append(ns)
        return ns

    def add_speaker(self):
        self.count += 1
        i = self.count
        ns = self._ns()
        nsmod.veth(ns, "eth0", self.router, f"p{i}")
        self.router.run(f"ip link set p{i} master br0")
        ns.run(f"ip addr add {NET4}.{i}/24 dev eth0; ip -6 addr add {NET6}{i}/64 dev eth0 nodad")
        ns.address4, ns.address6 = f"{NET4}.{i}", f"{NET6}{i}"
        return ns

    def close(self):
        for ns in reversed(self.made):
            ns.delete()


@pytest.fixture
def lab(root):
    tmp = tempfile.mkdtemp(prefix="vc5bgp")
    lab = Lab(tmp)
    yield lab
    lab.close()
    shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- BIRD

class Bird:
    def __init__(self, ns, tmp, router_id, asn, neighbors, extra=""):
        """neighbors: list of dicts: name, address, asn, passive (bool), extra (str), v6 (bool), mp (bool).
        extra: more global configuration (e.g. a kernel protocol)."""
        self.ns, self.dir = ns, tempfile.mkdtemp(dir=tmp, prefix="bird")
        self.ctl = os.path.join(self.dir, "bird.ctl")
        self.conf = os.path.join(self.dir, "bird.conf")
        protos = []
        for n in neighbors:
            chans = []
            if not n.get("v6") or n.get("mp"):
                chans.append("ipv4 { import all; export none; };")
            if n.get("v6") or n.get("mp"):
                chans.append("ipv6 { import all; export none; };")
            protos.append(textwrap.dedent(f"""
                protocol bgp {n['name']} {{
                  local as {asn};
                  neighbor {n['address']} as {n['asn']};
                  {'passive on;' if n.get('passive', True) else ''}
                  hold time {n.get('hold', 6)};
                  connect retry time 1;
                  error wait time 1, 2;
                  {n.get('extra', '')}
                  {' '.join(chans)}
                }}"""))
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent(f"""
                log "{self.dir}/bird.log" all;
                router id {router_id};
                protocol device {{ }}
                protocol direct {{ ipv4; ipv6; }}
                """) + textwrap.dedent(extra) + "\n".join(protos) + "\n")
        subprocess.run(["bird", "-p", "-c", self.conf], check=True, capture_output=True)
        ns.run(["bird", "-c", self.conf, "-s", self.ctl, "-P", os.path.join(self.dir, "bird.pid")])
        until(lambda: os.path.exists(self.ctl), 10, message="bird control socket")

    def cli(self, *cmd):
        p = subprocess.run(["birdc", "-s", self.ctl, *cmd], capture_output=True, text=True, timeout=20)
        return p.stdout

    def route(self, prefix, table=None):
        """`show route all PREFIX` text ('' if BIRD has no route)."""
        args = ["show", "route", "all", prefix]
        if table:
            args += ["table", table]
        out = self.cli(*args)
        return out if prefix.split("/")[0] in out else ""

    def routes(self, table="master4"):
        """Set of prefixes in `table`."""
        out = self.cli("show", "route", "table", table)
        prefixes = set()
        for line in out.splitlines():
            first = line.split()[0] if line.strip() else ""
            if "/" in first and not line.startswith(" "):
                prefixes.add(first)
        return prefixes

    def count(self, table="master4"):
        out = self.cli("show", "route", "count", "table", table)
        m = re.search(r"(\d+) of (\d+) routes", out)
        if m:
            return int(m.group(2))
        m = re.search(r"(\d+) routes", out)
        return int(m.group(1)) if m else 0

    def state(self, proto):
        out = self.cli("show", "protocols", proto)
        return "Established" if "Established" in out else out.strip().splitlines()[-1] if out.strip() else ""

    def log(self):
        try:
            with open(os.path.join(self.dir, "bird.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        self.cli("down")


@pytest.fixture
def bird_factory(lab):
    made = []

    def make(**kw):
        b = Bird(lab.router, lab.tmp, f"{NET4}.1", **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


# ---------------------------------------------------------------- vc5-bgpd

class Bgpd:
    def __init__(self, ns, tmp, yaml_text, args=(), wrapper=(), bus=None):
        self.ns = ns
        fd, self.config = tempfile.mkstemp(dir=tmp, suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(textwrap.dedent(yaml_text))
        self.logfile = self.config + ".log"
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"), PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        env.pop("INVOCATION_ID", None)
        if bus is not None:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus
        self.out = open(self.logfile, "w")
        self.proc = ns.popen([*wrapper, "/usr/bin/python3", "-m", "vc5.bgpd", "--config", self.config,
                              "--hold-down", "0.3", "--learn", "0", "--retry-min", "0.5", "--retry-max", "2",
                              *args], env=env, stdout=self.out, stderr=subprocess.STDOUT, cwd=REPO)

    def rewrite(self, yaml_text):
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(yaml_text))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def log(self):
        with open(self.logfile) as f:
            return f.read()

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()
        return self.proc.returncode


@pytest.fixture
def bgpd_factory(lab, private_bus):
    made = []

    def make(ns, yaml_text, args=(), wrapper=(), bus=None):
        b = Bgpd(ns, lab.tmp, yaml_text, args, wrapper, bus)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


__all__ = ["until", "NET4", "NET6", "bgp_call", "bgp_property", "peer_status"]


# ---------------------------------------------------------------- GoBGP

class GoBgp:
    """gobgpd in a namespace; its gRPC API is on 127.0.0.1:50051 inside that namespace."""

    def __init__(self, ns, tmp, router_id, asn, neighbors):
        """neighbors: dicts: address, asn, passive (bool, default True), families (list)."""
        self.ns = ns
        self.dir = tempfile.mkdtemp(dir=tmp, prefix="gobgp")
        conf = os.path.join(self.dir, "gobgpd.toml")
        text = f'[global.config]\n  as = {asn}\n  router-id = "{router_id}"\n'
        for n in neighbors:
            text += textwrap.dedent(f"""
                [[neighbors]]
                  [neighbors.config]
                    neighbor-address = "{n['address']}"
                    peer-as = {n['asn']}
                  [neighbors.timers.config]
                    hold-time = 6
                    keepalive-interval = 2
                    connect-retry = 1
                  [neighbors.transport.config]
                    passive-mode = {'true' if n.get('passive', True) else 'false'}
                """)
            for fam in n.get("families", ["ipv4-unicast"]):
                text += textwrap.dedent(f"""
                      [[neighbors.afi-safis]]
                        [neighbors.afi-safis.config]
                          afi-safi-name = "{fam}"
                    """)
        with open(conf, "w") as f:
            f.write(text)
        self.logfile = open(os.path.join(self.dir, "gobgpd.log"), "w")
        self.proc = ns.popen(["gobgpd", "-f", conf, "-p", "--api-hosts", "127.0.0.1:50051"],
                             stdout=self.logfile, stderr=subprocess.STDOUT)
        until(lambda: ns.run(["gobgp", "neighbor"], check=False).returncode == 0, 15, interval=0.2,
              message="gobgpd API up")

    def neighbors(self):
        return self.ns.run(["gobgp", "neighbor"], check=False).stdout

    def established(self, address):
        return any(line.split()[:1] == [address] and "Establ" in line
                   for line in self.neighbors().splitlines())

    def rib(self, family="ipv4"):
        out = self.ns.run(["gobgp", "global", "rib", "-a", family, "-j"], check=False).stdout.strip()
        try:
            return json.loads(out) if out else {}
        except ValueError:
            return {}

    def attrs(self, prefix, family="ipv4"):
        """{type code: attribute dict} of the best path for prefix, or None."""
        paths = self.rib(family).get(prefix)
        if not paths:
            return None
        return {a["type"]: a for a in paths[0]["attrs"]}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logfile.close()


@pytest.fixture
def gobgp_factory(lab):
    made = []

    def make(**kw):
        g = GoBgp(lab.router, lab.tmp, f"{NET4}.1", **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


# ---------------------------------------------------------------- FRR

FRR_BGPD = "/usr/lib/frr/bgpd"


class Frr:
    """FRR's bgpd alone in a namespace (Debian's frr; no zebra, no systemd): `-Z` (no zebra), `-n` (no
    kernel routes), `-S` (stay root, no capability checks), its own pid file, zserv path and vty socket
    directory so that it shares nothing with another instance; vtysh talks to it with `--vty_socket`."""

    def __init__(self, ns, tmp, router_id, asn, neighbors):
        """neighbors: dicts: address, asn, passive (bool, default True), families (default ["ipv4"]),
        extra (more `neighbor ADDRESS ...` lines, e.g. "timers delayopen 3")."""
        self.ns = ns
        self.dir = tempfile.mkdtemp(dir=tmp, prefix="frr")
        conf = os.path.join(self.dir, "bgpd.conf")
        text = (f"hostname r\nlog file {self.dir}/bgpd.log\nrouter bgp {asn}\n bgp router-id {router_id}\n"
                " no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n")
        for n in neighbors:
            text += f" neighbor {n['address']} remote-as {n['asn']}\n"
            text += f" neighbor {n['address']} timers 2 6\n neighbor {n['address']} timers connect 1\n"
            if n.get("passive", True):
                text += f" neighbor {n['address']} passive\n"
            text += "".join(f" neighbor {n['address']} {extra}\n" for extra in n.get("extra", ()))
        for fam in ("ipv4", "ipv6"):
            active = [n for n in neighbors if fam in n.get("families", ["ipv4"])]
            if active:
                text += f" address-family {fam} unicast\n"
                text += "".join(f"  neighbor {n['address']} activate\n" for n in active)
                text += " exit-address-family\n"
        with open(conf, "w") as f:
            f.write(text)
        self.logfile = open(os.path.join(self.dir, "stdout.log"), "w")
        self.proc = ns.popen([FRR_BGPD, "-f", conf, "-i", os.path.join(self.dir, "bgpd.pid"),
                              "-z", os.path.join(self.dir, "zserv.api"), "--vty_socket", self.dir,
                              "-Z", "-n", "-S"], stdout=self.logfile, stderr=subprocess.STDOUT)
        until(lambda: self.json("show bgp summary json") is not None, 15, interval=0.2, message="FRR bgpd up")

    def vtysh(self, command):
        return self.ns.run(["vtysh", "--vty_socket", self.dir, "-d", "bgpd", "-c", command],
                           check=False).stdout

    def json(self, command):
        try:
            return json.loads(self.vtysh(command))
        except ValueError:
            return None

    def established(self, address):
        got = self.json(f"show bgp neighbors {address} json") or {}
        return got.get(address, {}).get("bgpState") == "Established"

    def route(self, prefix, family="ipv4"):
        """The paths FRR holds for `prefix` (show bgp FAMILY unicast PREFIX json), [] if none."""
        got = self.json(f"show bgp {family} unicast {prefix} json") or {}
        return got.get("paths", [])

    def log(self):
        try:
            with open(os.path.join(self.dir, "bgpd.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logfile.close()


@pytest.fixture
def frr_factory(lab):
    if not os.path.exists(FRR_BGPD):
        pytest.skip("FRR not installed (Debian package frr; `make deps`)")
    made = []

    def make(router_id=f"{NET4}.1", **kw):
        f = Frr(lab.router, lab.tmp, router_id, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()
