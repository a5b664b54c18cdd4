#!/usr/bin/python3
"""BFD transmit jitter of vc5-bgpd on this machine, idle and under load (needs root).

A real vc5-bgpd (bfd on toward one peer) and BIRD 2 (`protocol bfd`, `bfd on`)
in network namespaces. The BFD packets on the router's side of the link are
captured with an AF_PACKET socket and kernel receive timestamps
(SO_TIMESTAMPNS), so the capture itself adds no jitter. For each load the
script prints, per sender, the gaps between consecutive packets (median, 99th,
99.9th percentile, max, in ms) and how many BFD sessions went down:

  idle     nothing else running (beyond the other users of this machine)
  cpu      one busy-loop process per CPU (at the same nice level as bgpd)
  cpu+rib  the busy loops, and healthd's VIP list (N VIPs) flipping every
           0.5 s, so bgpd's event loop also encodes UPDATEs and D-Bus messages

The baseline, same run: BIRD's own BFD packets (C, same machine, same load).
A session flaps falsely when a gap exceeds the detection time: multiplier x
max(interval, the router's min rx). Usage:

    sudo /usr/bin/python3 bench/bfd_jitter.py [INTERVAL_MS [SECONDS [N_VIPS]]]

defaults: 200 ms (the default of `bfd: true`), 20 s per load, 2000 VIPs.
"""

import ctypes
import ipaddress
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from tests.integration.bgp.bus_helpers import HealthPublisher, bgp_property  # noqa: E402
from tests.lib import netns  # noqa: E402
from tests.lib.privatebus import private_bus  # noqa: E402

NET = "10.205.0"
ETH_P_ALL = 3
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    """setns(2) for this thread (os.setns is Python 3.12+)."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def wait(pred, deadline=30.0, interval=0.05):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > deadline:
            raise SystemExit("benchmark condition not met within deadline")
        time.sleep(interval)


class Capture:
    """Kernel timestamps of the BFD control packets (UDP to 3784) seen on one interface, by source."""

    def __init__(self, ns, ifname):
        self.times = {}
        self.stop = threading.Event()
        fd = os.open(ns.path, os.O_RDONLY)
        here = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            setns(fd)
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((ifname, 0))
        finally:
            setns(here)
            os.close(fd)
            os.close(here)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            if len(data) < 14 + 20 + 8 or data[12:14] != b"\x08\x00" or data[23] != 17:
                continue
            ihl = (data[14] & 0x0F) * 4
            dport = struct.unpack_from("!H", data, 14 + ihl + 2)[0]
            if dport != 3784:
                continue
            stamp = next((struct.unpack("=qq", v[:16]) for lvl, typ, v in anc
                          if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS), None)
            if stamp is None:
                continue
            src = socket.inet_ntoa(data[26:30])
            self.times.setdefault(src, []).append(stamp[0] + stamp[1] / 1e9)

    def take(self):
        out, self.times = self.times, {}
        return out

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def gaps_ms(times):
    return [(b - a) * 1000 for a, b in zip(times, times[1:])]


def row(name, gaps):
    if len(gaps) < 10:
        return f"  {name:<22} too few packets ({len(gaps)})"
    q = statistics.quantiles(gaps, n=1000, method="inclusive")
    return (f"  {name:<22} n={len(gaps):<5} median {statistics.median(gaps):7.1f}  p99 {q[989]:7.1f}  "
            f"p99.9 {q[998]:7.1f}  max {max(gaps):7.1f} ms")


def burners(n):
    return [subprocess.Popen(["/usr/bin/python3", "-c", "while True: pass"]) for _ in range(n)]


def flipper(health, vips, stop):
    up = True
    while not stop.is_set():
        health.set({v: up for v in vips})
        up = not up
        stop.wait(0.5)


def birdlog(tmp):
    with open(os.path.join(tmp, "bird.log")) as f:
        return f.read()


def bfd_downs(health):
    from vc5.common import wire
    return sum(wire.BfdState.from_dbus(s).down_count for s in bgp_property(health, "Bfd"))


def start_bird(r, tmp, interval):
    conf = os.path.join(tmp, "bird.conf")
    with open(conf, "w") as f:
        f.write(textwrap.dedent(f"""
            log "{tmp}/bird.log" all;
            router id {NET}.1;
            protocol device {{ }}
            protocol bfd {{ interface "*" {{ min rx interval 50 ms; min tx interval {interval} ms;
              idle tx interval 300 ms; multiplier 3; }}; }}
            protocol bgp lb {{ local as 65000; neighbor {NET}.2 as 65001; passive on; hold time 9;
              bfd on; debug {{ states, events }}; ipv4 {{ import all; export none; }}; }}
            """))
    ctl = os.path.join(tmp, "bird.ctl")
    r.run(["bird", "-c", conf, "-s", ctl, "-P", os.path.join(tmp, "bird.pid")])
    wait(lambda: os.path.exists(ctl))
    return ctl


def start_bgpd(lb, tmp, interval):
    cfg = os.path.join(tmp, "vc5.yaml")
    with open(cfg, "w") as f:
        f.write(f"address: {NET}.2\nbgp:\n  as_number: 65001\n  hold_time: 9\n"
                f"  bfd: {{interval_ms: {interval}, multiplier: 3}}\n  peers: [{NET}.1]\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
    log = open(os.path.join(tmp, "bgpd.log"), "w")
    return lb.popen(["/usr/bin/python3", "-m", "vc5.bgpd", "--config", cfg, "--hold-down", "0",
                     "--learn", "0"], env=env, stdout=log, stderr=subprocess.STDOUT)


def birdc(ctl, *cmd):
    return subprocess.run(["birdc", "-s", ctl, *cmd], capture_output=True, text=True).stdout


def measure(load, seconds, cap, health, vips, tmp):
    """One load for `seconds`: print the sessions that went down and the gaps of each sender."""
    extra, stop, flip = [], threading.Event(), None
    downs = bfd_downs(health)
    bird_downs = birdlog(tmp).count("BFD session down")
    if load != "idle":
        extra = burners(os.cpu_count() or 2)
    if load == "cpu+rib":
        flip = threading.Thread(target=flipper, args=(health, vips, stop))
        flip.start()
    cap.take()
    time.sleep(seconds)
    got = cap.take()
    stop.set()
    if flip:
        flip.join()
        health.set({v: True for v in vips})
    for p in extra:
        p.kill()
        p.wait()
    downs = bfd_downs(health) - downs
    bird_downs = birdlog(tmp).count("BFD session down") - bird_downs
    print(f"{load}: sessions down at vc5 {downs}, at BIRD {bird_downs}")
    print(row("vc5-bgpd -> router", gaps_ms(got.get(f"{NET}.2", []))))
    print(row("baseline BIRD -> vc5", gaps_ms(got.get(f"{NET}.1", []))))


def main():
    interval = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    nvips = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    base = int(ipaddress.IPv4Address("10.130.0.0"))
    vips = [str(ipaddress.IPv4Address(base + i + 1)) for i in range(nvips)]
    tmp = tempfile.mkdtemp(prefix="wtbfdbench")
    made, procs = [], []
    try:
        r, lb = netns.Netns.create("wtbfdb"), netns.Netns.create("wtbfdb")
        made += [r, lb]
        netns.veth(lb, "eth0", r, "p2")
        r.run(f"ip addr add {NET}.1/24 dev p2")
        lb.run(f"ip addr add {NET}.2/24 dev eth0")
        ctl = start_bird(r, tmp, interval)
        with private_bus():
            health = HealthPublisher()
            procs.append(start_bgpd(lb, tmp, interval))
            health.set({v: True for v in vips})

            def routes():
                m = re.search(r"(\d+) of (\d+) routes", birdc(ctl, "show", "route", "count"))
                return m and int(m.group(1)) >= nvips
            wait(routes, 120)
            wait(lambda: " Up " in birdc(ctl, "show", "bfd", "sessions"))
            time.sleep(2)             # the poll sequences that set the fast intervals are over
            cap = Capture(r, "p2")
            print(f"BFD interval {interval} ms x 3 (detection {3 * interval} ms at the router); "
                  f"{seconds:.0f} s per load; {os.cpu_count()} CPUs; {nvips} VIPs")
            for load in ("idle", "cpu", "cpu+rib"):
                measure(load, seconds, cap, health, vips, tmp)
            cap.close()
            health.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        birdc(os.path.join(tmp, "bird.ctl"), "down")
        for ns in made:
            ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
