#!/usr/bin/python3
"""Data plane benchmark: packets per second through native XDP on a veth pair,
vc5's program against a trivial XDP_TX program measured in the same run.
Prints a Markdown table; not a test.

    sudo /usr/bin/python3 bench/dataplane_pps.py [--frames 2000000]

Set-up, all in one private network
namespace (vc5pps<id>) and a private bpffs mounted on a temporary directory,
both removed at the end, even on error:

    generator --(test-run, live frames, XDP_TX out of c0)--> c0 <==veth==> l0
    l0: vc5 "xdp_main" (or the trivial XDP_TX), native mode -> XDP_TX back to c0
    c0: native "sink" program: counts and drops (native XDP_TX on veth only
        delivers when the receiving peer runs an XDP program)

The generator is a small XDP program run by BPF_PROG_TEST_RUN with
BPF_F_TEST_XDP_LIVE_FRAMES (flags 2, repeat=N, ctx_in.ingress_ifindex = c0):
every run rewrites the whole frame (Ethernet to l0's MAC, IPv4/UDP, or with
--proto tcp an IPv4/TCP ACK of an established connection, to the VIP;
the source address and port come from a per-CPU sequence modulo the flow
count) and returns XDP_TX, so the frame leaves c0 and arrives at l0. The
process is pinned to one CPU: the generator, l0's and c0's NAPI all run on it,
so a figure is the rate of the whole one-CPU pipeline (generator + program on
l0 + sink), and the vc5/trivial ratio understates vc5's own cost. vc5's own
per-packet time (its ktime latency counter) is printed as well.

pps = frames counted by the sink on c0 / wall time from the start of the
test-run call until the sink's counter stops moving; each case alternates vc5
and trivial (program replaced in place on l0) over several rounds and prints
the medians, the ratio of the medians and of the best rounds (other work on
the CPU only ever slows a round down). Issue #3 target: vc5 >= 70 % of
trivial.

--gue: GUE against L2 DSR in the same run. For 1 and 1,000 flows, a second
data plane whose service sends every packet over GUE (tunnel-port 6080, UDP
checksum on, outer IPv4: +32 bytes per frame) is measured in the same
alternating rounds as L2 and trivial. The generator and the balancer run on
different CPUs: the generator (this process) is pinned with
sched_setaffinity (taskset's call) to one CPU, and l0 switches to threaded
NAPI with its NAPI thread pinned (taskset -p) to another, so the balancer's
program runs in that thread on its own CPU; the table's heading says which
CPUs were used, or that they had to share one (a one-CPU machine, or no
threaded NAPI).

Cases (--flows): 1, 1,000, 100,000 and 1,000,000 distinct flows (source
address/port) sent round-robin, with the flow table at the configuration's
default size (--table, default config.model.DEFAULT_FLOWS_PER_CPU). The
generator and the balancer run on different CPUs whenever the machine has two
(as --gue: threaded NAPI for l0, pinned with taskset -p), so a figure is what
the balancer's CPU sustains. Issue #14 targets: >= 70 % of trivial at
100,000 flows, >= 50 % at 1,000,000.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]    # vc5, and tests.lib.testrun

from tests.lib.testrun import BpfTestRunOpts  # noqa: E402
from vc5.xdp_loader import attach  # noqa: E402
from vc5.config.model import DEFAULT_FLOWS_PER_CPU  # noqa: E402
from vc5.xdp_loader.dataplane import BackendSpec, DataPlane, ServiceSpec  # noqa: E402

C0_MAC, L0_MAC = "02:00:00:00:0c:00", "02:00:00:00:01:00"
VIP, PORT = "192.0.2.1", 8053
GUE_PORT = 6080                 # --gue: the service's tunnel-port
SRC_BASE = "10.99.0.0"          # client addresses: SRC_BASE + flow // PORTS_PER_ADDR
PORTS_PER_ADDR = 50000          # client ports 1024 .. 1024 + PORTS_PER_ADDR - 1
FRAME_LEN = 60                  # Ethernet 14 + IPv4 20 + UDP 8 + 18 payload (minimum frame, no FCS)
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
CLONE_NEWNET = 0x40000000

_libc = ct.CDLL("libc.so.6", use_errno=True)
_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_prog_test_run_opts.argtypes = [ct.c_int, ct.POINTER(BpfTestRunOpts)]
_libbpf.bpf_prog_test_run_opts.restype = ct.c_int


class XdpMd(ct.Structure):      # struct xdp_md (<linux/bpf.h>), the test-run ctx_in
    _fields_ = [(n, ct.c_uint32) for n in ("data", "data_end", "data_meta",
                                           "ingress_ifindex", "rx_queue_index", "egress_ifindex")]


def _c_bytes(mac: str) -> str:
    return ", ".join(f"0x{b}" for b in mac.split(":"))


def _c_be32(address: str) -> str:
    a, b, c, d = (int(x) for x in address.split("."))
    return f"{(a << 24) | (b << 16) | (c << 8) | d:#x}"


BPF_TEXT = r"""
BPF_PERCPU_ARRAY(gen_seq, u64, 1);
BPF_ARRAY(gen_flows, u32, 1);
BPF_PERCPU_ARRAY(sink_rx, u64, 1);

/* Live-frame generator: rewrites every byte it relies on (the page pool hands
 * back frames as the previous hop left them), then XDP_TX out of c0. */
int gen(struct xdp_md *ctx)
{
    u8 *p = (u8 *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if ((void *)(p + FRAME_LEN) > data_end)
        return XDP_ABORTED;
    u32 z = 0;
    u64 *seq = gen_seq.lookup(&z);
    u32 *nf = gen_flows.lookup(&z);
    if (!seq || !nf || *nf == 0)
        return XDP_ABORTED;
    u32 flow = (u32)(*seq % *nf);
    *seq += 1;
    u8 dmac[6] = {DMAC}, smac[6] = {SMAC};
    __builtin_memcpy(p, dmac, 6);
    __builtin_memcpy(p + 6, smac, 6);
    p[12] = 0x08; p[13] = 0x00;
    u8 *ip = p + 14;
    ip[0] = 0x45; ip[1] = 0;
    *(u16 *)(ip + 2) = bpf_htons(FRAME_LEN - 14);
    *(u16 *)(ip + 4) = 0; *(u16 *)(ip + 6) = 0;
    ip[8] = 64; ip[9] = PROTO;
    *(u16 *)(ip + 10) = 0;
    *(u32 *)(ip + 12) = bpf_htonl(SRC_BASE + flow / PORTS_PER_ADDR);
    *(u32 *)(ip + 16) = bpf_htonl(VIP_BE);
    u32 sum = 0;
    u16 *w = (u16 *)ip;
#pragma unroll
    for (int i = 0; i < 10; i++)
        sum += w[i];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    *(u16 *)(ip + 10) = (u16)~sum;
    u8 *udp = ip + 20;
    *(u16 *)(udp + 0) = bpf_htons(1024 + flow % PORTS_PER_ADDR);
    *(u16 *)(udp + 2) = bpf_htons(VIP_PORT);
    if (PROTO == 6) {           /* an established connection's segment: ACK, no payload checksum */
        if ((void *)(udp + 20) > data_end)
            return XDP_ABORTED;
        *(u32 *)(udp + 4) = bpf_htonl(flow);
        *(u32 *)(udp + 8) = bpf_htonl(1);
        udp[12] = 5 << 4; udp[13] = 0x10;
        *(u16 *)(udp + 14) = bpf_htons(512);
        *(u16 *)(udp + 16) = 0; *(u16 *)(udp + 18) = 0;
        return XDP_TX;
    }
    *(u16 *)(udp + 4) = bpf_htons(FRAME_LEN - 34);
    *(u16 *)(udp + 6) = 0;      /* no UDP checksum (RFC 768) */
    return XDP_TX;
}

/* Baseline on l0: bounce every frame back out, untouched. */
int trivial_tx(struct xdp_md *ctx)
{
    return XDP_TX;
}

/* On c0: count what l0 sent back (IPv4/UDP or TCP to the VIP port, or to the GUE
 * port for --gue: the stack's own IPv6 ND/MLD frames from l0 arrive here
 * too), drop it. */
int sink(struct xdp_md *ctx)
{
    u8 *p = (u8 *)(long)ctx->data;
    if ((void *)(p + FRAME_LEN) > (void *)(long)ctx->data_end ||
        p[12] != 0x08 || p[13] != 0x00 || (p[23] != 17 && p[23] != 6) ||
        (*(u16 *)(p + 36) != bpf_htons(VIP_PORT) && *(u16 *)(p + 36) != bpf_htons(GUE_PORT)))
        return XDP_DROP;
    u32 z = 0;
    u64 *n = sink_rx.lookup(&z);
    if (n)
        *n += 1;
    return XDP_DROP;
}
"""


def bpf_source(proto: int = 17) -> str:
    defs = {"PROTO": str(proto), "FRAME_LEN": str(FRAME_LEN), "DMAC": _c_bytes(L0_MAC),
            "SMAC": _c_bytes(C0_MAC),
            "SRC_BASE": _c_be32(SRC_BASE), "PORTS_PER_ADDR": str(PORTS_PER_ADDR),
            "VIP_BE": _c_be32(VIP), "VIP_PORT": str(PORT), "GUE_PORT": str(GUE_PORT)}
    return "".join(f"#define {k} {v}\n" for k, v in defs.items()) + BPF_TEXT


def sh(*argv: str) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ct.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def pin_napi_thread(dev: str, cpu: int) -> int | None:
    """Threaded NAPI on `dev` (of this netns) with its kthread pinned to `cpu` (taskset -p): the
    balancer's XDP program then runs there, not on the generator's CPU. None if impossible.
    The sysfs of this netns is only visible through a sysfs mounted from inside it."""
    mnt = tempfile.mkdtemp(prefix="vc5pps-sys-")
    try:
        m = subprocess.run(["mount", "-t", "sysfs", "sysfs", mnt], capture_output=True, text=True)
        if m.returncode != 0:
            print(f"(no threaded NAPI: mount sysfs: {m.stderr.strip()})", file=sys.stderr)
            return None
        try:
            with open(f"{mnt}/class/net/{dev}/threaded", "w") as f:
                f.write("1")
        except OSError as e:
            print(f"(no threaded NAPI: {e})", file=sys.stderr)
            return None
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
    finally:
        shutil.rmtree(mnt, ignore_errors=True)
    time.sleep(0.2)
    pids = subprocess.run(["pgrep", "-x", f"napi/{dev}-.*"], capture_output=True, text=True).stdout.split()
    pids = [p for p in pids if open(f"/proc/{p}/comm").read().startswith(f"napi/{dev}-")]
    if not pids:
        return None
    for pid in pids:
        sh("taskset", "-pc", str(cpu), pid)
    return cpu


def ifindex(name: str) -> int:
    return socket.if_nametoindex(name)     # this netns (/sys shows the mounter's)


def ethtool_stats(dev: str) -> dict[str, int]:
    p = subprocess.run(["ethtool", "-S", dev], capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines()[1:]:
        k, _, v = line.strip().partition(":")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


class Generator:
    """The live-frame generator, run by test-run on c0."""

    def __init__(self, prog_fd: int, ingress: int):
        self.prog_fd = prog_fd
        self._frame = ct.create_string_buffer(FRAME_LEN)    # content rewritten by the program
        self._ctx = XdpMd(data=0, data_end=FRAME_LEN, ingress_ifindex=ingress)

    def send(self, frames: int) -> None:
        o = BpfTestRunOpts(sz=ct.sizeof(BpfTestRunOpts), data_in=ct.addressof(self._frame),
                           data_size_in=FRAME_LEN, ctx_in=ct.addressof(self._ctx),
                           ctx_size_in=ct.sizeof(XdpMd), repeat=frames,
                           flags=BPF_F_TEST_XDP_LIVE_FRAMES)
        rc = _libbpf.bpf_prog_test_run_opts(self.prog_fd, ct.byref(o))
        if rc != 0:
            err = -rc if rc < 0 else ct.get_errno()
            raise OSError(err, f"live-frames test-run of the generator: {os.strerror(err)}")


def measure(gen: Generator, sink_count, frames: int) -> tuple[float, int]:
    """(pps, delivered): frames counted by the sink over wall time."""
    before = sink_count()
    t0 = time.perf_counter()
    gen.send(frames)
    last, t_last = sink_count(), time.perf_counter()
    deadline = t_last + 2.0
    while time.perf_counter() < deadline:     # anything still queued in a NAPI ring
        if last - before >= frames:
            break
        time.sleep(0.005)
        n = sink_count()
        if n != last:
            last, t_last = n, time.perf_counter()
        elif time.perf_counter() - t_last > 0.05:
            break
    delivered = last - before
    return delivered / (t_last - t0), delivered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000, help="frames per measurement")
    ap.add_argument("--table", type=int, default=DEFAULT_FLOWS_PER_CPU,
                    help="flow-table size of the data plane (default: the configuration's default)")
    ap.add_argument("--flows", default="1,1000,100000,1000000",
                    help="comma-separated distinct-flow counts, one case each")
    ap.add_argument("--rounds", type=int, default=5, help="alternating vc5/trivial rounds per case (median)")
    ap.add_argument("--proto", choices=("tcp", "udp"), default="udp",
                    help="frames: UDP datagrams, or TCP ACK segments of established connections")
    ap.add_argument("--gue", action="store_true",
                    help="GUE vs L2 in the same run, generator and balancer on different CPUs")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (BPF, namespaces, mount)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[0]
    os.sched_setaffinity(0, {cpu})
    napi_cpu = None             # --gue: l0's threaded NAPI on another CPU
    tag = uuid.uuid4().hex[:6]
    ns = f"vc5pps{tag}"
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    bpffs = tempfile.mkdtemp(prefix=f"vc5pps-{tag}-")
    mounted = in_ns = False
    dp = b = None
    extra: list[DataPlane] = []
    rows, odd = [], []
    try:
        sh("mount", "-t", "bpf", "bpf", bpffs)
        mounted = True
        sh("ip", "netns", "add", ns)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            setns(fd)
        finally:
            os.close(fd)
        in_ns = True
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "c0", "address", C0_MAC, "type", "veth", "peer", "name", "l0",
           "address", L0_MAC)
        sh("ip", "link", "set", "c0", "up")
        sh("ip", "link", "set", "l0", "up")
        c0, l0 = ifindex("c0"), ifindex("l0")

        from bcc import BPF
        b = BPF(text=bpf_source(6 if args.proto == "tcp" else 17))
        gen_fn = b.load_func("gen", BPF.XDP)
        triv_fn = b.load_func("trivial_tx", BPF.XDP)
        sink_fn = b.load_func("sink", BPF.XDP)
        sink_rx, gen_flows = b["sink_rx"], b["gen_flows"]

        def sink_count() -> int:
            return int(sink_rx.sum(0).value)

        service = ServiceSpec(VIP, PORT, args.proto, backends=[
            BackendSpec(f"10.1.0.{i}", C0_MAC, L0_MAC) for i in range(1, 17)])
        dp = DataPlane(pin_dir=f"{bpffs}/default", flows=args.table, watchdog=False)
        dp.set_active(True)
        dp.set_service(service)
        attach.attach(c0, "c0", sink_fn.fd, "native")
        attach.attach(l0, "l0", dp.xdp_fd, "native")
        if len(cpus) > 1:
            napi_cpu = pin_napi_thread("l0", cpus[1])       # l0's NAPI exists once XDP is on it
        gen = Generator(gen_fn.fd, c0)
        c0_stats = ethtool_stats("c0")
        counts = [int(x) for x in args.flows.split(",") if x.strip()]
        cases = [(f"{n:,} flow{'s' if n > 1 else ''}, table {args.table:,}", n, dp) for n in counts]
        if args.gue:
            gue = DataPlane(pin_dir=f"{bpffs}/gue", watchdog=False)
            extra.append(gue)
            gue.set_active(True)
            gue.set_service(ServiceSpec(VIP, PORT, "udp", backends=[
                BackendSpec(f"10.1.0.{i}", C0_MAC, L0_MAC, method="gue", tunnel_port=GUE_PORT,
                            src_address="10.0.0.1") for i in range(1, 17)]))
            cases = [(f"{n:,} flow{'s' if n > 1 else ''}, {m}", n, d)
                     for n in (1, 1000) for m, d in (("L2", dp), ("GUE", gue))]
        for label, flows, vc5 in cases:
            gen_flows[gen_flows.Key(0)] = gen_flows.Leaf(flows)
            programs = {"vc5": vc5.xdp_fd, "trivial": triv_fn.fd}
            got = {"vc5": [], "trivial": []}
            lat = []
            for r in range(args.rounds + 1):            # round 0 warms up (flow table, caches)
                for name, fd in programs.items():
                    attach.attach(l0, "l0", fd, "native")     # replaced in place
                    c = vc5.counters()
                    pps, delivered = measure(gen, sink_count, args.frames)
                    c1 = vc5.counters()
                    if name == "vc5":
                        seen = c1["global"]["packets"] - c["global"]["packets"]
                        dn = c1["latency"]["packets"] - c["latency"]["packets"]
                        if dn and r:
                            lat.append((c1["latency"]["ns"] - c["latency"]["ns"]) / dn)
                        if seen != args.frames and napi_cpu is None:
                            odd.append(f"{label}, round {r}: vc5 counted {seen} of {args.frames}")
                    if delivered != args.frames and napi_cpu is None:    # else: the ring overflows
                        odd.append(f"{label}, {name}, round {r}: sink got {delivered} of {args.frames}")
                    if r:
                        got[name].append(pps)
            errs = {k: v for k, v in vc5.counters()["global"].items() if k.startswith("err_") and v}
            if errs:
                odd.append(f"after {label}, vc5 error counters: {errs}")
            v, t = statistics.median(got["vc5"]), statistics.median(got["trivial"])
            rows.append((label, v, t, v / t, statistics.median(lat) if lat else 0.0,
                         min(got["vc5"]), max(got["vc5"]), min(got["trivial"]), max(got["trivial"])))
        for dev, before in (("c0", c0_stats), ("l0", {})):
            for k, v in ethtool_stats(dev).items():
                # the sink's own XDP_DROPs show as c0 rx_queue_0_xdp_drops
                if ("err" in k or "drop" in k) and v != before.get(k, 0) and k != "rx_queue_0_xdp_drops" \
                        and not (napi_cpu is not None and k == "tx_queue_0_xdp_xmit_errors"):
                    odd.append(f"ethtool -S {dev}: {k} +{v - before.get(k, 0)}")
    finally:
        for d in [dp, *extra]:
            if d is not None:
                d.close(unpin=True)
        if b is not None:
            b.cleanup()
        if in_ns:
            setns(home)
        os.close(home)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if mounted:
            subprocess.run(["umount", bpffs], capture_output=True)
        shutil.rmtree(bpffs, ignore_errors=True)

    shared = " (generator and balancer share it: no second CPU or no threaded NAPI)"
    where = (f"generator on CPU {cpu}, balancer (l0's threaded NAPI) on CPU {napi_cpu}"
             if napi_cpu is not None else f"CPU {cpu}{shared}")
    pipeline = ("the generator and the c0 sink on one CPU, l0's program on the other: the figure is what the "
                "balancer's CPU sustains (the generator outruns it: c0's xdp_xmit_errors count the excess)"
                if napi_cpu is not None else "generator, l0 and the c0 sink share one CPU, so the figure is "
                "the whole pipeline's rate")
    print(f"# vc5 data plane packets/s, native XDP on veth ({where}, {os.cpu_count()} CPUs, "
          f"kernel {os.uname().release})\n")
    print(f"{args.frames} live frames ({FRAME_LEN} B IPv4/{args.proto.upper()}) per measurement, "
          f"median of {args.rounds} "
          f"alternating rounds after one warm-up; {pipeline}. vc5 ns/pkt = vc5's own latency counter "
          "(ktime entry..exit). Target: vc5 >= 70 % of trivial.\n")
    print("| case | vc5 pps | trivial pps | ratio | ratio of bests | vc5 ns/pkt | vc5 range "
          "| trivial range |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, v, t, ratio, lat, vmin, vmax, tmin, tmax in rows:
        print(f"| {label} | {v / 1e6:.2f} M | {t / 1e6:.2f} M | {ratio * 100:.0f} % | "
              f"{vmax / tmax * 100:.0f} % | {lat:.0f} | {vmin / 1e6:.2f}-{vmax / 1e6:.2f} M | "
              f"{tmin / 1e6:.2f}-{tmax / 1e6:.2f} M |")
    if args.gue:
        by = {label: v for label, v, *_ in rows}
        for n in ("1 flow", "1,000 flows"):
            l2, g = by.get(f"{n}, L2"), by.get(f"{n}, GUE")
            if l2 and g:
                print(f"\n{n}: GUE {g / 1e6:.2f} M pps = {g / l2 * 100:.0f} % of L2 ({l2 / 1e6:.2f} M pps); "
                      f"per packet {1e9 / g - 1e9 / l2:+.0f} ns of pipeline time")
    if odd:
        print("\nNotes:")
        for line in odd:
            print(f"- {line}")


if __name__ == "__main__":
    main()
