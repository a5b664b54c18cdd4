#!/usr/bin/python3
"""Benchmark vc5-bgpd against BIRD 2 in network namespaces (needs root).

Prints, for N VIPs (default 10,000):
  * advertise: time from healthd publishing N VIPs up (already past the
    hold-down) until BIRD's table holds all N routes from vc5-bgpd;
  * withdraw: time from publishing them all down until BIRD holds none;
  * single VIP down -> gone from BIRD's table (median and max of several);
  * encode only: vc5-bgpd's UPDATE encoding of the N prefixes, in-process;
  * baseline, same run: the same N routes announced to the same BIRD by a
    second BIRD (static protocol exported over BGP): enable -> all present,
    disable -> none. (gobgpd was tried as the baseline: `gobgp mrt inject`
    exits before its gRPC stream is drained and loses routes, and one
    `gobgp global rib add` per route takes minutes for 10,000.)

Usage: sudo /usr/bin/python3 bench/bgpd.py [N]

Reload latency, same run (no root, no network): `bench/bgpd.py reload [N] [TREE ...]`
starts one vc5-bgpd per source tree (default: this one; e.g. a `git worktree` of the
previous commit as the baseline), each on its own private bus with 4 passive peers and
100 VIPs up, then alternates between them N times (default 50): a Manager.Reload round
trip (call -> reply carrying the new Generation), and SIGHUP -> PropertiesChanged with
the new Generation. Prints median, 90th percentile and max per tree.
"""

import asyncio
import signal

import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from tests.integration.bgp.bus_helpers import HealthPublisher  # noqa: E402
from tests.lib import netns  # noqa: E402
from tests.lib.privatebus import private_bus  # noqa: E402
from vc5.bgpd import attributes  # noqa: E402
from vc5.bgpd.messages import update  # noqa: E402

NET = "10.204.0"
DEADLINE = 300.0


def vips(n):
    base = int(ipaddress.IPv4Address("10.128.0.0"))
    return [str(ipaddress.IPv4Address(base + i + 1)) for i in range(n)]


def birdc(ctl, *cmd):
    return subprocess.run(["birdc", "-s", ctl, *cmd], capture_output=True, text=True, timeout=30).stdout


def count(ctl, proto):
    out = birdc(ctl, "show", "route", "count", "protocol", proto)
    m = re.search(r"(\d+) of (\d+) routes", out)
    return int(m.group(1)) if m else 0


def wait(pred, deadline=DEADLINE, interval=0.005, t0=None):
    """Seconds from t0 (default: now) until pred() holds."""
    t0 = time.monotonic() if t0 is None else t0
    while not pred():
        if time.monotonic() - t0 > deadline:
            raise SystemExit("benchmark condition not met within deadline")
        time.sleep(interval)
    return time.monotonic() - t0


def start_bird(ns, tmp, name, conf):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    path = os.path.join(d, "bird.conf")
    with open(path, "w") as f:
        f.write(textwrap.dedent(conf))
    ctl = os.path.join(d, "bird.ctl")
    ns.run(["bird", "-c", path, "-s", ctl, "-P", os.path.join(d, "pid")])
    wait(lambda: os.path.exists(ctl), 10)
    return ctl


def encode_only(prefixes):
    nets = [ipaddress.ip_network(p + "/32") for p in prefixes]
    attrs = attributes.PathAttributes(as_path=(65001,), next_hop=ipaddress.ip_address(f"{NET}.2"))
    t0 = time.perf_counter()
    msgs = update.announce(nets, attrs, True)
    t1 = time.perf_counter()
    update.withdraw(nets)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(msgs), sum(map(len, msgs))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    addrs = vips(n)
    tmp = tempfile.mkdtemp(prefix="vc5bench")
    made = []
    procs = []
    try:
        r, lb, src = (netns.Netns.create("vbgb") for _ in range(3))
        made += [r, lb, src]
        netns.bridge(r, "br0")
        r.run(f"ip addr add {NET}.1/24 dev br0")
        for i, ns in ((2, lb), (3, src)):
            netns.veth(ns, "eth0", r, f"p{i}")
            r.run(f"ip link set p{i} master br0")
            ns.run(f"ip addr add {NET}.{i}/24 dev eth0")
        statics = "\n".join(f"  route {a}/32 blackhole;" for a in addrs)
        router = start_bird(r, tmp, "router", f"""
            router id {NET}.1;
            protocol device {{ }}
            protocol direct {{ ipv4; }}
            protocol bgp lb {{ local as 65000; neighbor {NET}.2 as 65001; passive on; hold time 9;
              ipv4 {{ import all; export none; }}; }}
            protocol bgp sender {{ local as 65000; neighbor {NET}.3 as 65002; passive on; hold time 9;
              ipv4 {{ import all; export none; }}; }}
            """)
        sender = start_bird(src, tmp, "sender", f"""
            router id {NET}.3;
            protocol device {{ }}
            protocol static vips {{ disabled yes; ipv4;
            {statics}
            }}
            protocol bgp up {{ local as 65002; neighbor {NET}.1 as 65000; hold time 9; connect retry time 1;
              ipv4 {{ import none; export where source = RTS_STATIC; next hop self; }}; }}
            """)
        with private_bus():
            health = HealthPublisher()
            cfg = os.path.join(tmp, "vc5.yaml")
            with open(cfg, "w") as f:
                f.write(f"address: {NET}.2\nbgp:\n  as_number: 65001\n  hold_time: 9\n  peers: [{NET}.1]\n")
            env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
            log = open(os.path.join(tmp, "bgpd.log"), "w")
            procs.append(lb.popen(["/usr/bin/python3", "-m", "vc5.bgpd", "--config", cfg, "--hold-down", "0",
                                   "--learn", "0", "--retry-min", "0.5"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT))
            wait(lambda: "Established" in birdc(router, "show", "protocols", "lb")
                 and "Established" in birdc(router, "show", "protocols", "sender"), 30)

            old = time.time() - 3600
            assert count(router, "lb") == 0 and count(router, "sender") == 0
            t0 = time.monotonic()
            health.set({a: (True, old) for a in addrs})
            publish = time.monotonic() - t0
            adv = wait(lambda: count(router, "lb") == n, interval=0.02, t0=t0)
            t0 = time.monotonic()
            health.set({a: (False, 0) for a in addrs})
            wd = wait(lambda: count(router, "lb") == 0, interval=0.02, t0=t0)

            singles = []
            for i in range(7):
                a = addrs[i]
                health.set({a: (True, old)})
                wait(lambda: a in birdc(router, "show", "route", f"{a}/32"), 30)
                t0 = time.monotonic()
                health.set({a: (False, 0)})
                singles.append(wait(lambda: a not in birdc(router, "show", "route", f"{a}/32"), 30,
                                    interval=0.002, t0=t0))

            t0 = time.monotonic()
            birdc(sender, "enable", "vips")
            b_adv = wait(lambda: count(router, "sender") == n, interval=0.02, t0=t0)
            t0 = time.monotonic()
            birdc(sender, "disable", "vips")
            b_wd = wait(lambda: count(router, "sender") == 0, interval=0.02, t0=t0)
            health.close()

        enc, wenc, nmsg, nbytes = encode_only(addrs)
        print(f"vc5-bgpd -> BIRD 2, {n} VIPs (IPv4 /32), namespaces on one host, 2 vCPU")
        print(f"  advertise all (publish -> all in BIRD)     {adv:8.3f} s")
        print(f"  withdraw all  (publish -> none in BIRD)    {wd:8.3f} s")
        print(f"    of which the test publisher's D-Bus emission of {n} VIP structs: {publish:.3f} s")
        med = statistics.median(singles) * 1000
        print(f"  one VIP down -> gone from BIRD's table     median {med:.1f} ms, "
              f"max {max(singles) * 1000:.1f} ms ({len(singles)} runs, poll step 2 ms + birdc)")
        print(f"  encode only: announce {enc * 1000:.1f} ms ({nmsg} UPDATEs, {nbytes} octets), "
              f"withdraw {wenc * 1000:.1f} ms")
        print(f"baseline, same run: BIRD 2 (static -> BGP) -> the same BIRD, {n} routes")
        print(f"  advertise all (enable -> all in BIRD)      {b_adv:8.3f} s")
        print(f"  withdraw all  (disable -> none in BIRD)    {b_wd:8.3f} s")
        print("  (all include the D-Bus publish or birdc command, and polling `birdc show route count`)")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for ctl in (os.path.join(tmp, "router", "bird.ctl"), os.path.join(tmp, "sender", "bird.ctl")):
            if os.path.exists(ctl):
                birdc(ctl, "down")
        for ns in made:
            ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)


RELOAD_CONFIG = """\
address: 10.0.0.2
bgp:
  as_number: 65001
  hold_time: 9
  groups:
    - name: routers
      passive: true
      peers: [192.0.2.251, 192.0.2.252, 192.0.2.253, 192.0.2.254]
"""


class ReloadTarget:
    """One vc5-bgpd from source tree `tree`, on its own private bus, and a client connection to it."""

    def __init__(self, tree, tmp):
        from tests.lib.privatebus import Bus
        self.tree, self.bus = tree, Bus()
        self.config = os.path.join(tmp, f"vc5-{len(os.listdir(tmp))}.yaml")
        with open(self.config, "w") as f:
            f.write(RELOAD_CONFIG)
        self.health = HealthPublisher(self.bus.address)
        self.health.set({str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.128.0.1")) + i)): True
                         for i in range(100)})
        env = dict(os.environ, PYTHONPATH=os.path.join(tree, "services"),
                   DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "vc5.bgpd", "--config", self.config,
                                      "--learn", "0", "--hold-down", "0"], env=env, cwd=tree,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = None
        self.generations = asyncio.Queue()
        self.reload_rtt, self.sighup = [], []

    async def connect(self):
        from dbus_next.aio import MessageBus

        from vc5.common import bus as vbus
        from vc5.common import names
        self.client = await MessageBus(bus_address=self.bus.address).connect()
        await vbus.wait_for_name(self.client, names.BGP_BUS, timeout=30)

        def on_message(msg):
            if (msg.member == "PropertiesChanged" and msg.path == names.BGP_PATH
                    and "Generation" in msg.body[1]):
                self.generations.put_nowait((time.perf_counter(), msg.body[1]["Generation"].value))
        self.client.add_message_handler(on_message)
        await vbus.call(self.client, vbus.DBUS_NAME, vbus.DBUS_PATH, vbus.DBUS_NAME, "AddMatch", "s",
                        [f"type='signal',path='{names.BGP_PATH}',member='PropertiesChanged'"])

    async def one_round(self):
        from vc5.common import bus as vbus
        from vc5.common import names
        t0 = time.perf_counter()
        [generation] = await vbus.call(self.client, names.BGP_BUS, names.BGP_PATH, names.BGP_MANAGER_IFACE,
                                       "Reload", timeout=10)
        self.reload_rtt.append(time.perf_counter() - t0)
        await self._generation(generation)
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGHUP)
        self.sighup.append(await self._generation(generation + 1) - t0)

    async def _generation(self, wanted):
        while True:
            t, generation = await asyncio.wait_for(self.generations.get(), 10)
            if generation == wanted:
                return t

    def close(self):
        if self.client is not None:
            self.client.disconnect()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.health.close()
        self.bus.stop()


def _ms(values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return (f"median {statistics.median(values) * 1000:6.2f} ms, p90 {p90 * 1000:6.2f} ms, "
            f"max {values[-1] * 1000:6.2f} ms")


def reload_bench(n, trees):
    tmp = tempfile.mkdtemp(prefix="vc5reload")
    targets = []

    async def measure():
        for t in targets:
            await t.connect()
        for t in targets:            # warm-up (imports, first config load), not counted
            await t.one_round()
            t.reload_rtt.clear()
            t.sighup.clear()
        for _ in range(n):
            for t in targets:        # alternate: both see the same machine, round by round
                await t.one_round()
        for t in targets:
            t.client.disconnect()
            t.client = None
    try:
        targets = [ReloadTarget(os.path.abspath(tree), tmp) for tree in trees]
        asyncio.run(measure())
        print(f"vc5-bgpd reload latency, same run, N={n} each, alternating (4 passive peers, 100 VIPs up)")
        for t in targets:
            print(f"  {t.tree}")
            print(f"    Manager.Reload round trip         {_ms(t.reload_rtt)}")
            print(f"    SIGHUP -> PropertiesChanged(Gen)  {_ms(t.sighup)}")
    finally:
        for t in targets:
            t.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["reload"]:
        reload_bench(int(sys.argv[2]) if len(sys.argv) > 2 else 50, sys.argv[3:] or [REPO])
    else:
        main()
