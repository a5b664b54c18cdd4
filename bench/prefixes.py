#!/usr/bin/python3
"""Cost of the source-prefix hooks (bpf/vc5_prefix.h) per packet, with the
program built without them as the baseline, measured in the same run.
Prints a Markdown table; not a test.

    sudo /usr/bin/python3 bench/prefixes.py [--repeat 200000] [--rounds 7] [--blocked 10000]

Three builds of xdp_main share one set of maps (a private pin directory under
/sys/fs/bpf, removed at the end):
  off       -DVC5_NO_PREFIXES: the hooks are no-ops (the baseline);
  counters  -DVC5_PREFIX_NO_BLOCK: the per-/20 / per-bucket counters only;
  on        the shipped program: counters and the LPM block list.
Each case runs one frame through BPF_PROG_TEST_RUN `repeat` times (the kernel
reports the mean ns per run), builds alternating, `rounds` rounds; the table
shows the medians and on - off. The process is pinned to one CPU (per-CPU
maps; the flow is then a flow-table hit every time after the first packet).

Cases: IPv4 TCP to a VIP (balanced, XDP_TX); IPv4 to a non-VIP (XDP_PASS,
the cheapest path, where the hooks weigh most); IPv6 TCP to a VIP; each with
an empty block list and with `--blocked` entries (random /24s and /48s that
never match); and a blocked source (dropped by `on`, balanced by `off`).

A second table times the read side (ms, median of 5 or 3): the batched
syscall that reads the 2^20 per-CPU /20 counters (the baseline), the same
plus the sum over CPUs (prefixes.percpu_u64_sums), a whole GetPrefixes(0)
read, and for the worst case (every /20 non-zero) the reply's round trip
through a private dbus-daemon, from the call to the decoded value, as an
a(ut) array (the baseline: the first encoding) and as the packed byte arrays
shipped, and webd's rendering of /prefixes.json.
"""

import argparse
import ctypes as ct
import ipaddress
import os
import random
import shutil
import statistics
import sys
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from tests.lib.testrun import TestRunner  # noqa: E402
from vc5.common import wire  # noqa: E402
from vc5.webd import prefixes as web_prefixes  # noqa: E402
from vc5.xdp_loader import prefixes as px  # noqa: E402
from vc5.xdp_loader import program  # noqa: E402
from vc5.xdp_loader.dataplane import BackendSpec, DataPlane, ServiceSpec  # noqa: E402

VIP4, VIP6 = "192.0.2.1", "2001:db8:1::1"
CLIENT4, CLIENT6 = "198.51.100.7", "2001:db8:c::7"
BLOCKED4 = "203.0.113.9"
MAC, LB = "02:00:00:00:01:01", "02:00:00:00:00:1b"


def frame(src, dst):
    ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
    tcp = TCP(sport=40000, dport=80, flags="A") / (b"x" * 18)
    return bytes(Ether(src="02:00:00:00:00:c1", dst=LB) / ip / tcp)


def build(pin_dir: str, define: str):
    """xdp_main compiled with -D<define>, on the maps already pinned in pin_dir; returns (bpf, fd)."""
    import bcc
    src = program.source_dir() / program.SOURCE_NAME
    flags = program.cflags(pin_dir, 4096) + [f"-D{define}"]
    bpf = bcc.BPF(text=program.source_text(src).encode(), cflags=flags)
    return bpf, program.load_xdp(bpf, program.XDP_MAIN).fd


def random_blocks(n: int, seed: int = 5):
    """n/2 IPv4 /24s in 100.64.0.0/10 and n/2 IPv6 /48s in 2001:db8:8000::/33: never a test source."""
    rng = random.Random(seed)
    v4 = {f"{ipaddress.IPv4Address(0x64400000 | rng.getrandbits(14) << 8)}/24" for _ in range(n // 2)}
    v6 = {f"{ipaddress.IPv6Address((0x20010db88000 | rng.getrandbits(15)) << 80)}/48"
          for _ in range(n // 2)}
    return sorted(v4) + sorted(v6)


def measure(fds: dict, pkt: bytes, repeat: int, rounds: int) -> dict:
    runners = {name: TestRunner(fd) for name, fd in fds.items()}
    for r in runners.values():
        r.run(pkt, 1000)                   # warm: the flow entry, caches
    times = {name: [] for name in fds}
    for _ in range(rounds):
        for name, r in runners.items():
            times[name].append(r.run(pkt, repeat).duration)
    return {name: statistics.median(t) for name, t in times.items()}


def ms(fn, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def raw_batch(handle) -> None:
    """The baseline: BPF_MAP_LOOKUP_BATCH of every slot, nothing done with the values."""
    n = handle.spec.max_entries
    keys, values = (ct.c_uint32 * n)(), (ct.c_uint64 * (n * handle.ncpus))()
    count, token = ct.c_uint32(n), ct.c_uint32()
    px._libbpf.bpf_map_lookup_batch(handle.fd, None, ct.byref(token), keys, values, ct.byref(count), None)


def bus_round_trip(full: wire.PrefixCounters) -> list:
    """GetPrefixes' worst-case reply over a private dbus-daemon, as a(ut) arrays (the first
    encoding: the baseline) and as the packed byte arrays shipped: call to decoded reply, ms."""
    import asyncio

    from dbus_next.aio import MessageBus
    from dbus_next.service import ServiceInterface, method

    from tests.lib.privatebus import Bus
    from vc5.common import bus as vbus

    class Replies(ServiceInterface):
        def __init__(self):
            super().__init__("org.vc5.BenchPrefixes")

        @method()
        def Structs(self) -> "(a(ut)a(ut)a{st}a{st})":  # noqa: F722
            return [[[i, n] for i, n in full.ipv4], [], {}, {}]

        @method()
        def Packed(self) -> "(ayayayaya{st}a{st})":  # noqa: F722
            return full.to_dbus()

    async def go():
        server = await MessageBus(bus_address=bus.address).connect()
        server.export("/b", Replies())
        await server.request_name("org.vc5.BenchPrefixes")
        client = await MessageBus(bus_address=bus.address).connect()
        out = []
        try:
            for member, decode in (("Structs", lambda v: tuple((i, n) for i, n in v[0])),
                                   ("Packed", wire.PrefixCounters.from_dbus)):
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    [value] = await vbus.call(client, "org.vc5.BenchPrefixes", "/b", "org.vc5.BenchPrefixes",
                                              member, timeout=120)
                    decode(value)
                    times.append((time.perf_counter() - t0) * 1000)
                out.append(statistics.median(times))
        finally:
            client.disconnect()
            server.disconnect()
        return out

    bus = Bus()
    try:
        structs, packed = asyncio.run(go())
    finally:
        bus.stop()
    return [("GetPrefixes reply, every /20 non-zero, as a(ut): call to decoded (baseline)", structs),
            ("GetPrefixes reply, every /20 non-zero, packed ay (shipped): call to decoded", packed)]


def read_side(p, maps) -> list:
    full = wire.PrefixCounters(ipv4=tuple((i, i + 1) for i in range(px.layout.PREFIX4_SLOTS)))
    stats = maps["prefix4_stats"]
    return [("BPF_MAP_LOOKUP_BATCH of 2^20 per-CPU counters (baseline)", ms(lambda: raw_batch(stats))),
            ("... and the sum over CPUs (percpu_u64_sums)", ms(lambda: px.percpu_u64_sums(stats))),
            ("GetPrefixes(0) read, IPv4 + IPv6 + block list", ms(lambda: p.counters(0))),
            *bus_round_trip(full),
            ("/prefixes.json rendering, every /20 non-zero (webd)", ms(lambda: web_prefixes.render(full), 3))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--blocked", type=int, default=10000,
                    help="block list entries for the 'large list' cases")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (BPF_PROG_TEST_RUN, bpffs)", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    root = f"/sys/fs/bpf/wt-prefix-bench-{uuid.uuid4().hex[:6]}"
    os.makedirs(root)
    dp = None
    keep = []
    try:
        dp = DataPlane(pin_dir=f"{root}/v1", flows=4096, watchdog=False)
        dp.set_active(True)
        for vip in (VIP4, VIP6):
            backend = BackendSpec("10.9.0.1", mac=MAC, src_mac=LB)
            dp.set_service(ServiceSpec(vip, 80, "tcp", backends=[backend]))
        p = px.Prefixes(dp.maps, state_file=None)
        p.restore()
        fds = {"off": None, "counters": None, "on": dp.xdp_fd}
        for name, define in (("off", "VC5_NO_PREFIXES"), ("counters", "VC5_PREFIX_NO_BLOCK")):
            bpf, fds[name] = build(f"{root}/v1", define)
            keep.append(bpf)
        cases = [("IPv4 to a VIP (XDP_TX)", frame(CLIENT4, VIP4)),
                 ("IPv4 not to a VIP (XDP_PASS)", frame(CLIENT4, "192.0.2.99")),
                 ("IPv6 to a VIP (XDP_TX)", frame(CLIENT6, VIP6))]
        rows = []
        for label, pkt in cases:
            rows.append((label, "empty", measure(fds, pkt, args.repeat, args.rounds)))
        p.block(random_blocks(args.blocked))
        for label, pkt in cases:
            rows.append((label, f"{args.blocked:,}", measure(fds, pkt, args.repeat, args.rounds)))
        p.block([f"{BLOCKED4}/32"])
        rows.append(("IPv4 from a blocked source (on: XDP_DROP)", f"{args.blocked + 1:,}",
                     measure(fds, frame(BLOCKED4, VIP4), args.repeat, args.rounds)))
        reads = read_side(p, dp.maps)
    finally:
        if dp is not None:
            dp.close(unpin=True)
        shutil.rmtree(root, ignore_errors=True)

    print(f"Source-prefix hooks, ns/packet (BPF_PROG_TEST_RUN, median of {args.rounds} rounds of "
          f"{args.repeat:,} runs, one CPU; baseline `off` = -DVC5_NO_PREFIXES, same run)\n")
    print("| case | block list | off (baseline) | counters only | on (shipped) | on - off |")
    print("|---|---|---|---|---|---|")
    for label, blocked, t in rows:
        print(f"| {label} | {blocked} | {t['off']:.1f} | {t['counters']:.1f} | {t['on']:.1f} | "
              f"{t['on'] - t['off']:+.1f} |")
    print(f"\nRead side, ms (median; {dp.ncpus} possible CPUs)\n")
    print("| step | ms |")
    print("|---|---|")
    for label, t in reads:
        print(f"| {label} | {t:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
