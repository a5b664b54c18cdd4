#!/usr/bin/python3
"""What the daemons use, to size MemoryMax=/MemoryHigh=, TasksMax= and LimitNOFILE= (needs root).

    sudo /usr/bin/python3 bench/limits.py [flows|loader|bgpd|webd|all] [--flows N] [--n N]

  flows   the four flow tables alone (BPF_MAP_TYPE_LRU_HASH, keys 12 and 36 B, value 16 B, sized
          as layout.flow_table_sizes) at a few settings of `flows`: kernel memory charged to the
          creating memory cgroup, per-CPU memory
          (/proc/meminfo Percpu), bytes per entry, against vc5.common.limits.flow_table_bytes;
  loader  a first start of the data plane (DataPlane: the bcc compiler in a child process, every
          map created and pinned on a private bpffs) in a memory cgroup: the cgroup's peak (the
          compiler beside the loader), what stays charged (the maps), the loader's peak RSS,
          threads and fds; flows_per_cpu --flows (default 1,000,000, vc5's default);
  bgpd    bench/bgpd.py N (vc5-bgpd advertising N VIPs, default 10,000, to BIRD), sampling the
          vc5-bgpd process: peak RSS (VmHWM), PSS, threads, fds;
  webd    a socket-activated vc5-webd reading fake daemons with N backends (default 10,000) on a
          private bus, /status.json and /metrics fetched 5 times each: peak RSS, threads, fds.

The memory cgroup is cgroup v2's (memory.current, memory.peak) when the memory controller is
there, else cgroup v1's (memory.usage_in_bytes, memory.max_usage_in_bytes).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from vc5.common import limits  # noqa: E402

MiB = 1 << 20


# ----------------------------------------------------------------------------- a memory cgroup
class MemCgroup:
    def __init__(self, name):
        v2 = "/sys/fs/cgroup"
        if "memory" in (open(f"{v2}/cgroup.controllers").read().split()
                        if os.path.exists(f"{v2}/cgroup.controllers") else []):
            self.v2 = True
            self.path = f"{v2}/{name}"
        elif os.path.isdir("/sys/fs/cgroup/memory"):
            self.v2 = False
            self.path = f"/sys/fs/cgroup/memory/{name}"
        else:
            raise SystemExit("no memory cgroup controller found")
        os.makedirs(self.path, exist_ok=True)

    def _f(self, v2, v1):
        with open(os.path.join(self.path, v2 if self.v2 else v1)) as f:
            return int(f.read().split()[0])

    def current(self):
        return self._f("memory.current", "memory.usage_in_bytes")

    def peak(self):
        return self._f("memory.peak", "memory.max_usage_in_bytes")

    def reset_peak(self):
        if not self.v2:
            with open(os.path.join(self.path, "memory.max_usage_in_bytes"), "w") as f:
                f.write("0")

    def enter(self, pid=None):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid or os.getpid()))

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def meminfo(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def proc_figures(pid):
    """(VmHWM bytes, threads, fds, PSS bytes) of a live process."""
    hwm = threads = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    pss = 0
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            pss = int(line.split()[1]) * 1024
    return hwm, threads, len(os.listdir(f"/proc/{pid}/fd")), pss


class Sampler:
    """Poll a process (found by `find()`) every 50 ms: the max of each figure while it lives."""

    def __init__(self, find):
        self.find = find
        self.peak = [0, 0, 0, 0]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            pid = self.find()
            if pid:
                try:
                    self.peak = [max(a, b) for a, b in zip(self.peak, proc_figures(pid))]
                except OSError:
                    pass
            time.sleep(0.05)

    def done(self):
        self.stop.set()
        self.thread.join()
        return self.peak


def find_process(module):
    want = f"-m\0{module}\0".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if want in f.read():
                    return int(pid)
        except OSError:
            pass
    return None


# ----------------------------------------------------------------------------- flows
FLOWS_SCRIPT = r"""
import ctypes as ct, os, sys, time, json
lib = ct.CDLL("libbpf.so.1", use_errno=True)
lib.bpf_map_create.argtypes = [ct.c_int, ct.c_char_p, ct.c_uint32, ct.c_uint32, ct.c_uint32, ct.c_void_p]
n, side = int(sys.argv[1]), max(1024, int(sys.argv[1]) // 4)
print("ready", flush=True)
sys.stdin.readline()
for key, entries in ((12, n), (36, side), (12, side), (36, side)):   # LRU_HASH, as bpf/vc5_flows.h
    fd = lib.bpf_map_create(9, b"bench_flows", key, 16, entries, None)
    assert fd >= 0, os.strerror(ct.get_errno())
print("made", flush=True)
sys.stdin.readline()
"""


def bench_flows(sizes):
    from vc5.xdp_loader import layout
    ncpus = layout.possible_cpus()
    cg = MemCgroup("vc5bench-flows")
    print(f"## Flow tables (4 x LRU_HASH, `flows` entries and 3 x flows/4), {ncpus} possible CPUs, "
          f"cgroup {'v2' if cg.v2 else 'v1'}\n")
    print("| entries | charged to the cgroup MiB | per-CPU MiB | total MiB | B/entry | formula MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    try:
        for n in sizes:
            p = subprocess.Popen(["/usr/bin/python3", "-c", FLOWS_SCRIPT, str(n)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            p.stdout.readline()
            cg.enter(p.pid)
            time.sleep(0.2)
            c0, pc0 = cg.current(), meminfo("Percpu")
            p.stdin.write("\n")
            p.stdin.flush()
            p.stdout.readline()
            time.sleep(0.3)
            charged, percpu = cg.current() - c0, meminfo("Percpu") - pc0
            p.stdin.write("\n")
            p.stdin.flush()
            p.wait()
            # cgroup v1 does not show the per-CPU part; v2 does (then it is in both columns).
            total = max(charged, charged + percpu if not cg.v2 else charged)
            formula = limits.flow_table_bytes(n, ncpus) / MiB
            print(f"| {n:,} | {charged / MiB:.1f} | {percpu / MiB:.1f} | {total / MiB:.1f} | {total / n:.0f} "
                  f"| {formula:.1f} |")
            time.sleep(1.0)
    finally:
        cg.remove()
    print()


# ----------------------------------------------------------------------------- loader
LOADER_SCRIPT = r"""
import os, sys, time
from vc5.xdp_loader.dataplane import DataPlane
dp = DataPlane(pin_dir=sys.argv[1], flows=int(sys.argv[2]))
print("loaded", flush=True)
sys.stdin.readline()
dp.close(unpin=True)
"""


def bench_loader(flows):
    from vc5.xdp_loader import layout
    ncpus = layout.possible_cpus()
    cg = MemCgroup("vc5bench-loader")
    bpffs = tempfile.mkdtemp(prefix="vc5bench-bpffs")
    subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    try:
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
        cg.reset_peak()
        c0, pc0 = cg.current(), meminfo("Percpu")
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/python3", "-c", LOADER_SCRIPT, f"{bpffs}/v1", str(flows)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                             preexec_fn=lambda: cg.enter())
        p.stdout.readline()
        took = time.monotonic() - t0
        time.sleep(0.5)
        hwm, threads, fds, pss = proc_figures(p.pid)
        charged, percpu, peak = cg.current() - c0, meminfo("Percpu") - pc0, cg.peak() - c0
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait()
    finally:
        subprocess.run(["umount", bpffs])
        os.rmdir(bpffs)
        cg.remove()
    table = limits.flow_table_bytes(flows, ncpus)
    print(f"## vc5-xdp-loader, first start: flows_per_cpu {flows:,}, {ncpus} possible CPUs "
          f"(cgroup {'v2' if cg.v2 else 'v1'})\n")
    print(f"- start (compile in a child, create and pin every map, load): {took:.1f} s")
    print(f"- cgroup peak (the compiler beside the loader, maps being made): {peak / MiB:.0f} MiB")
    print(f"- charged to the cgroup after start (the loader + the maps): {charged / MiB:.0f} MiB; "
          f"per-CPU memory of the maps: {percpu / MiB:.0f} MiB")
    print(f"- the loader process: peak RSS {hwm / MiB:.0f} MiB, PSS {pss / MiB:.0f} MiB, "
          f"{threads} threads, {fds} fds")
    print(f"- formula (vc5.common.limits): flow table {table / MiB:.0f} MiB, every map "
          f"{limits.maps_bytes(flows, ncpus) / MiB:.0f} MiB, + processes "
          f"{(limits.maps_bytes(flows, ncpus) + limits.PROCESS_BYTES) / MiB:.0f} MiB\n")


# ----------------------------------------------------------------------------- bgpd
def bench_bgpd(n):
    s = Sampler(lambda: find_process("vc5.bgpd"))
    r = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench", "bgpd.py"), str(n)],
                       capture_output=True, text=True)
    hwm, threads, fds, pss = s.done()
    print(f"## vc5-bgpd advertising {n:,} VIPs to BIRD (bench/bgpd.py)\n")
    if r.returncode != 0:
        print("bench/bgpd.py failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    print(f"- peak RSS {hwm / MiB:.0f} MiB, peak PSS {pss / MiB:.0f} MiB, max {threads} threads, "
          f"max {fds} fds\n")


# ----------------------------------------------------------------------------- webd
def big_health(n_backends, per_service=100):
    from vc5.client.snapshot import HealthView
    from vc5.common.wire import BackendState, ServiceState, VipState
    t0 = int((time.time() - 315) * 1e6)
    services, vips = [], []
    for s in range(max(1, n_backends // per_service)):
        vip = f"192.0.{2 + s // 250}.{1 + s % 250}"
        bes = tuple(BackendState(f"10.{1 + s // 250}.{s % 250}.{1 + b}", 80, 1, False, False, b % 7 != 0, t0,
                                 "HTTP 200 OK" if b % 7 else "http: connect: connection refused", 3)
                    for b in range(per_service))
        avail = sum(1 for b in bes if b.usable)
        services.append(ServiceState(vip, 80, "tcp", f"svc{s}", f"service {s}", "high", False, 1, "none", 0,
                                     False, True, t0, avail, bes))
        vips.append(VipState(vip, True, t0))
    return HealthView(tuple(services), tuple(vips))


def bench_webd(n):
    import urllib.request

    from tests.integration.web.fakes import Fakes
    from tests.integration.web.webd_process import Webd
    from tests.lib.privatebus import private_bus
    with private_bus():
        with Fakes() as fakes:
            fakes.run(fakes.health.set_view, big_health(n))
            with Webd("--interval", "1") as w:
                s = Sampler(lambda: w.proc.pid)
                time.sleep(3)
                sizes = {}
                for _ in range(5):
                    for path in ("/status.json", "/metrics"):
                        with urllib.request.urlopen(w.base + path, timeout=60) as r:
                            sizes[path] = len(r.read())
                time.sleep(1)
                hwm, threads, fds, pss = s.done()
    print(f"## vc5-webd with {n:,} backends (fake daemons on a private bus)\n")
    print(f"- /status.json {sizes['/status.json'] / MiB:.1f} MiB, /metrics {sizes['/metrics'] / MiB:.1f} MiB")
    print(f"- peak RSS {hwm / MiB:.0f} MiB, peak PSS {pss / MiB:.0f} MiB, max {threads} threads, "
          f"max {fds} fds (idle: no client connections)\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["flows", "loader", "bgpd", "webd", "all"])
    ap.add_argument("--flows", type=int, default=1_000_000, help="flows_per_cpu for `loader`")
    ap.add_argument("--n", type=int, default=10_000, help="VIPs for `bgpd`, backends for `webd`")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/limits.py needs root (memory cgroups, bpffs, network namespaces)")
    if args.what in ("flows", "all"):
        bench_flows([65_536, 1_000_000])
    if args.what in ("loader", "all"):
        bench_loader(args.flows)
    if args.what in ("bgpd", "all"):
        bench_bgpd(args.n)
    if args.what in ("webd", "all"):
        bench_webd(args.n)


if __name__ == "__main__":
    main()
