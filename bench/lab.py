#!/usr/bin/python3
"""Figures of the whole stack on the lab (tests/lab): reload latency, memory, new connections.

    sudo /usr/bin/python3 bench/lab.py [--json FILE] [--seconds S]

Builds the lab (client -> router (BIRD, ECMP) -> 2 balancers -> 3 backends),
starts every vc5 service on both balancers, and measures, each against a
baseline taken in the same run:

  * reload latency: SIGHUP to healthd (and to bgpd) -> the new Generation
    arrives as PropertiesChanged on the bus. Baselines: loading and
    validating the same file in-process (vc5.config.load, the work a reload
    cannot avoid) and one D-Bus Get round trip (the messaging floor);
  * memory: RSS and PSS of every vc5 process after start. Baselines: a bare
    /usr/bin/python3 interpreter, and BIRD (the router's daemon);
  * new connections per second through the VIP (client -> router ->
    balancers, XDP -> backends, DSR back) against the same client talking
    to the same backends directly (router -> backend): wrk, one process per
    backend, `Connection: close` (every request a new TCP connection).

Prints Markdown. --json writes the raw figures (bench/run_all.py plots them).
"""

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from tests.lab.stack import Stack  # noqa: E402
from tests.lab.topology import VIP4, Lab  # noqa: E402

RELOADS = 10


# ----------------------------------------------------------------------------- reload
async def reload_latencies(address, bus_name, path, iface, send, n):
    """[seconds from send() to PropertiesChanged carrying a new Generation] x n, and Get round trips."""
    from dbus_next import BusType, Message, MessageType  # noqa: F401
    from dbus_next.aio import MessageBus
    bus = await MessageBus(bus_address=address).connect()
    changed = asyncio.Queue()

    def on_message(msg):
        if (msg.message_type == MessageType.SIGNAL and msg.member == "PropertiesChanged"
                and msg.path == path and msg.body and msg.body[0] == iface and "Generation" in msg.body[1]):
            changed.put_nowait((time.monotonic(), msg.body[1]["Generation"].value))

    bus.add_message_handler(on_message)
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                           body=[f"type='signal',interface='org.freedesktop.DBus.Properties',path='{path}'"]))
    get = Message(destination=bus_name, path=path, interface="org.freedesktop.DBus.Properties", member="Get",
                  signature="ss", body=[iface, "Generation"])
    took, rtts = [], []
    for _ in range(n):
        t0 = time.monotonic()
        reply = await bus.call(get)
        rtts.append(time.monotonic() - t0)
        before = reply.body[0].value
        t0 = time.monotonic()
        send()
        while True:
            t, gen = await asyncio.wait_for(changed.get(), 10)
            if gen > before:
                took.append(t - t0)
                break
        await asyncio.sleep(0.2)
    bus.disconnect()
    return took, rtts


def config_load_times(path, n):
    from vc5 import config
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        config.load(path)
        out.append(time.monotonic() - t0)
    return out


# ----------------------------------------------------------------------------- memory
def memory_kib(pid):
    """(RSS, PSS) in KiB of a process."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


# ----------------------------------------------------------------------------- new connections
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_LAT = re.compile(r"^\s+Latency\s+([\d.]+)(us|ms|s)\s", re.M)
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)", re.M)
WRK_ERR = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_many(lab, urls, seconds, conns):
    """Run one wrk per URL at once from the client; (total req/s, mean ms, worst p99 ms, errors)."""
    procs = [lab.client.ns.popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "3s",
                                  "-H", "Connection: close", url], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for url in urls]
    outs = [p.communicate(timeout=seconds + 30)[0] for p in procs]
    rate = sum(float(WRK_RATE.search(o).group(1)) for o in outs)
    lat = statistics.mean(float(m.group(1)) * UNIT[m.group(2)] for o in outs for m in [WRK_LAT.search(o)])
    p99 = max(float(m.group(1)) * UNIT[m.group(2)] for o in outs for m in [WRK_P99.search(o)])
    errors = [m.group(0) for o in outs for m in WRK_ERR.finditer(o)]
    return rate, lat, p99, errors


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--seconds", type=int, default=5, help="wrk duration per run")
    ap.add_argument("--conns", type=int, default=8, help="wrk connections per backend")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/lab.py needs root (network namespaces, XDP)")
    fig = {}
    lab = Lab.build(prefix=f"vc5b{os.getpid() % 10000}")
    stack = Stack(lab, interval=1.0, web_listen=f"{lab.balancers[0].ip}:8080", web_host=lab.balancers[0])
    try:
        lab.start_backends()
        lab.start_router()
        t0 = time.monotonic()
        stack.start()
        stack.wait_advertised(timeout=120)
        fig["start_to_advertised_s"] = time.monotonic() - t0
        for b in (1, 2):
            stack.wait_ready("xdp-loader", b)
        stack.wait_ready("webd", 1)
        time.sleep(2)   # let every process settle after start

        # memory
        mem = {}
        for name in ("xdp-loader", "healthd", "bgpd"):
            mem[f"vc5-{name}"] = memory_kib(stack.process(name, 1).pid)
        mem["vc5-webd"] = memory_kib(stack.process("webd", 1).pid)
        bare = subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(30)"])
        time.sleep(0.5)
        mem["baseline: bare python3"] = memory_kib(bare.pid)
        bare.kill()
        bare.wait()
        bird_pid = int(open(os.path.join(lab.workdir, "bird.pid")).read())
        mem["baseline: BIRD 2"] = memory_kib(bird_pid)
        fig["memory_kib"] = mem

        # reload latency
        address = stack.buses[0]
        hd = stack.process("healthd", 1).pid
        bg = stack.process("bgpd", 1).pid
        h_took, h_rtt = asyncio.run(reload_latencies(address, "org.vc5.Health1", "/org/vc5/Health1",
                                                     "org.vc5.Health1", lambda: os.kill(hd, signal.SIGHUP),
                                                     RELOADS))
        b_took, _ = asyncio.run(reload_latencies(address, "org.vc5.Bgp1", "/org/vc5/Bgp1", "org.vc5.Bgp1",
                                                 lambda: os.kill(bg, signal.SIGHUP), RELOADS))
        loads = config_load_times(stack.config_path(0), RELOADS)
        fig["reload_s"] = {"healthd": h_took, "bgpd": b_took, "baseline: vc5.config.load": loads,
                           "baseline: D-Bus Get round trip": h_rtt}

        # new connections
        direct = [f"http://{be.ip}/" for be in lab.backends]
        via_vip = [f"http://{VIP4}/"] * len(lab.backends)
        wrk_many(lab, direct, 1, args.conns)                    # warm-up
        fig["conn_rate"] = {
            "baseline: client -> backends directly": wrk_many(lab, direct, args.seconds, args.conns),
            "client -> VIP (router ECMP -> 2 balancers, XDP) -> backends":
                wrk_many(lab, via_vip, args.seconds, args.conns),
        }
    finally:
        lab.destroy()
        stack.stop()

    ms = 1000.0
    print("## Lab: the whole stack (tests/lab)\n")
    print(f"Start of the four services to the router holding the VIP from both balancers: "
          f"{fig['start_to_advertised_s']:.1f} s (healthd interval 1 s: 5 passing rounds, then bgpd's 5 s "
          f"hold-down).\n")
    print(f"### Reload latency (SIGHUP -> new Generation on the bus), {RELOADS} reloads\n")
    print("| what | median ms | max ms |\n|---|---:|---:|")
    for name, xs in fig["reload_s"].items():
        print(f"| {name} | {statistics.median(xs) * ms:.1f} | {max(xs) * ms:.1f} |")
    print("\n### Memory after start (one balancer)\n")
    print("| process | RSS MiB | PSS MiB |\n|---|---:|---:|")
    for name, (rss, pss) in fig["memory_kib"].items():
        print(f"| {name} | {rss / 1024:.1f} | {pss / 1024:.1f} |")
    print(f"\n### New connections (wrk, Connection: close, {args.conns} connections per backend, "
          f"{args.seconds} s)\n")
    print("| path | new conn/s | mean latency ms | p99 ms | errors |\n|---|---:|---:|---:|---|")
    for name, (rate, lat, p99, errors) in fig["conn_rate"].items():
        print(f"| {name} | {rate:.0f} | {lat:.2f} | {p99:.2f} | {'; '.join(errors) or 'none'} |")
    print("\nThe balancers run XDP in generic mode on veth, so the client, the router, the balancers and "
          "the Python backends share the machine's CPUs: the ratio of the two rows is the figure, not the "
          "absolute rate.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fig, f, indent=1)


if __name__ == "__main__":
    main()
