#!/usr/bin/python3
"""vc5 against Katran, side by side (issue #14): ns per packet through
BPF_PROG_TEST_RUN for a flow-table hit and a new flow, both programs measured
in the same run on the same frames. Prints a Markdown table; not a test.

    sudo /usr/bin/python3 bench/katran_compare.py --katran DIR [--rounds 7] [--calls 5000]

DIR is a Katran source tree holding katran/lib/bpf and katran/lib/linux_includes
(the benchmark does not vendor Katran). One way to get it, with the
project's `fetch` tool (github:facebookincubator/katran gives a bare git
directory under /work/.mirror), or from any clone:

    G=/work/.mirror/facebookincubator+katran/repo     # or DIR_OF_A_CLONE/.git
    mkdir -p /tmp/katran-src
    git --git-dir=$G archive HEAD katran/lib | tar -x -C /tmp/katran-src
    git --git-dir=$G rev-parse HEAD > /tmp/katran-src/COMMIT   # optional: printed in the report
    sudo /usr/bin/python3 bench/katran_compare.py --katran /tmp/katran-src

Katran: katran/lib/bpf/balancer.bpf.c built as its Makefile-bpf does (clang
-emit-llvm, then llc -march=bpf; Debian's clang 14 and llvm 14) into a private
directory under /tmp, in two flavours: IPIP (the default) and GUE
(-DGUE_ENCAP -DINLINE_DECAP_GUE). Each is loaded with bpftool (`prog load ...
type xdp pinmaps`) into a private bpffs directory and its maps are filled with
libbpf through ctypes: vip_map (every VIP below -> vip_num 0), reals 1..3,
ch_rings (a 65,537-slot Maglev ring of the 3 reals, vc5.maglev with M = 65537),
ctl_array[0] (the gateway MAC), pckt_srcs (GUE: our outer source) and, as
Katran's own loader does for a forwarding core, a per-CPU LRU_HASH
(flow_key -> real_pos_lru) put in lru_mapping[cpu]. The stats arrays start at 0.

vc5: a DataPlane (services/vc5/xdp_loader/dataplane.py) with four services of
3 backends each, one per forwarding method: L2 DSR, IPIP, FOU (bare IP in
UDP/6080: what Katran's GUE flavour sends) and GUE (a 4-byte GUE header more).
FOU/GUE UDP checksums are on in both (Katran derives its from the inner L4
checksum, vc5 from the inner sum). Like for like: Katran IPIP against vc5 IPIP,
Katran GUE against vc5 FOU and vc5 GUE; vc5's L2 DSR is shown against Katran
IPIP (Katran always encapsulates). All flow tables have --flows entries and
always hold the same flows: vc5 has one table for its four VIPs, Katran one
per flavour, so the new flows of a case are also fed, untimed, to the other
Katran flavour (a lookup miss costs more in a fuller table); --prefill N puts
N flows in all of them before the first round.

Frames (the same bytes for both): Ethernet, IPv4, TCP with ACK to VIP:80,
64 bytes of payload. Hit: one flow, created by a first call, then repeated.
New flow: ACK frames with a distinct source (port and low half of the
address) on every call, never seen before (the table's miss path: hash,
Maglev ring, insert). New-flow calls are paced to at most 100,000 a second
per program so that neither Katran's flood guard (MAX_CONN_RATE: above
125,000 new flows a second it stops inserting) nor vc5's new-flow rate
limit (125,000 a second per CPU, bursts of 12,500) acts; that every insert
happened is checked in Katran's LRU after each case and in every table at
the end. Every program's output is checked once before timing (outer
destination one of the reals, inner destination the VIP, the encapsulation
asked for).

Method: the process is pinned to one CPU (--cpu; Katran's flow table and
vc5's rate limiter are per CPU). Each case (a path, hit or new flow) runs
`calls` BPF_PROG_TEST_RUN calls of repeat=1 (repeat=N would re-run an
encapsulating program on the frame it has already modified) on each of
Katran, vc5 and the floor, vc5's trivial XDP_PASS program ("xdp_pass"),
interleaved in chunks of 250 calls (the order reversed after every chunk),
so the three see the same load from the rest of the machine. A program's
figure for the round is its median kernel-reported duration minus the
floor's median in the same case (net). The table gives the median over the
rounds of the net figures and of the per-round ratio vc5/Katran, with the
min-max spread.
Targets (issue #14): hit <= 1.0 x Katran; new flow <= 1.5 x Katran.
Everything pinned or built is removed at the end, even on error.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]    # vc5, and tests.lib.testrun

from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from tests.lib.testrun import XDP_PASS, XDP_TX, TestRunner  # noqa: E402
from vc5 import maglev  # noqa: E402
from vc5.xdp_loader import layout, program  # noqa: E402
from vc5.xdp_loader.dataplane import BackendSpec, DataPlane, ServiceSpec  # noqa: E402

LB_MAC, GW_MAC, CLIENT_MAC = "02:00:00:00:00:1b", "02:00:00:00:00:fe", "02:00:00:00:00:c1"
CLIENT, OUR_SRC = "198.51.100.1", "10.0.0.1"
REALS = ["10.5.0.1", "10.5.0.2", "10.5.0.3"]
REAL_MACS = ["02:00:00:00:05:01", "02:00:00:00:05:02", "02:00:00:00:05:03"]
GUE_PORT = 6080                       # Katran's GUE_DPORT
VIPS = {"l2": "192.0.2.1", "ipip": "192.0.2.11", "fou": "192.0.2.13", "gue": "192.0.2.14"}
FLAVOURS = {"ipip": [], "gue": ["-DGUE_ENCAP", "-DINLINE_DECAP_GUE"]}
# (row label, Katran flavour, vc5 method, VIP key): like for like on the wire
PAIRS = [("IPIP", "ipip", "ipip", "ipip"),
         ("FOU (bare IP in UDP) vs Katran GUE", "gue", "fou", "fou"),
         ("GUE (4-byte header) vs Katran GUE", "gue", "gue", "gue"),
         ("vc5 L2 DSR vs Katran IPIP", "ipip", "l2", "l2")]
TARGETS = {"hit": 1.0, "new": 1.5}

# Katran's layouts (katran/lib/bpf/balancer_consts.h, balancer_structs.h)
RING_SIZE = 65537                     # RING_SIZE; ch_rings[vip_num * RING_SIZE + pos] = real id (from 1)
FLOW_KEY_SIZE, LRU_VALUE_SIZE = 40, 16    # struct flow_key (37 + pad), struct real_pos_lru
BPF_MAP_TYPE_LRU_HASH = 9
MAP_TYPES = {9: "LRU_HASH", 10: "LRU_PERCPU_HASH"}
CHUNK = 250                           # calls per program before switching to the next one
PACE_RATE = 100000                    # new flows a second per program, at most: Katran's guard is 125,000

HOWTO = __doc__[__doc__.index("DIR is"):__doc__.index("Katran: katran/lib")]

_lib = ct.CDLL("libbpf.so.1", use_errno=True)
_lib.bpf_map_update_elem.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_uint64]
_lib.bpf_map_lookup_elem.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
_lib.bpf_map_create.argtypes = [ct.c_int, ct.c_char_p, ct.c_uint32, ct.c_uint32, ct.c_uint32, ct.c_void_p]
_lib.bpf_map_get_next_key.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]


def map_update(fd: int, key: bytes, value: bytes, what: str) -> None:
    rc = _lib.bpf_map_update_elem(fd, key, value, 0)
    if rc != 0:
        err = -rc if rc < -1 else ct.get_errno()
        raise OSError(err, f"update of {what}: {os.strerror(err)}")


def count_keys(fd: int, key_size: int) -> int:
    """Entries in a hash map (bpf_map_get_next_key until ENOENT)."""
    keys, n, prev = [ct.create_string_buffer(key_size), ct.create_string_buffer(key_size)], 0, None
    while _lib.bpf_map_get_next_key(fd, prev, keys[n % 2]) == 0:
        prev = keys[n % 2]
        n += 1
    return n


def addr16(a: str) -> bytes:
    """An IPv4 address as Katran stores it: network order in the first 4 of 16 bytes."""
    return ipaddress.ip_address(a).packed.ljust(16, b"\0")


def prog_info(fd: int) -> str:
    """'xlated NB, jited NB' of a loaded program, from its fdinfo id and bpftool."""
    pid = layout.read_fdinfo(fd).get("prog_id")
    if not pid:
        return "size unknown"
    out = subprocess.run(["bpftool", "-j", "prog", "show", "id", pid], capture_output=True, text=True)
    info = json.loads(out.stdout or "{}")
    return f"xlated {info.get('bytes_xlated', '?')} B, jited {info.get('bytes_jited', '?')} B"


# ---- Katran ------------------------------------------------------------------

def build_katran(src: str, flavour: str, out_dir: str) -> str:
    """balancer.bpf.c -> out_dir/balancer-FLAVOUR.o as Katran's Makefile-bpf does it."""
    bc, obj = f"{out_dir}/balancer-{flavour}.bc", f"{out_dir}/balancer-{flavour}.o"
    cc = ["clang", f"-I{src}", f"-I{src}/katran/lib/linux_includes", "-DDEBUG", "-D__KERNEL__",
          *FLAVOURS[flavour], "-Wno-unused-value", "-Wno-pointer-sign",
          "-Wno-compare-distinct-pointer-types", "-O2", "-emit-llvm", "-c", "-g",
          f"{src}/katran/lib/bpf/balancer.bpf.c", "-o", bc]
    for argv in (cc, ["llc", "-march=bpf", "-filetype=obj", "-o", obj, bc]):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"Katran {flavour} build failed: {' '.join(argv)}\n{p.stderr[-3000:]}")
    return obj


class Katran:
    """One loaded Katran balancer (a flavour) with its maps filled for our VIPs."""

    def __init__(self, obj: str, pin: str, flavour: str, cpu: int, flows: int):
        self.flavour, self.pin, self.fds = flavour, pin, []
        os.makedirs(pin)
        p = subprocess.run(["bpftool", "prog", "load", obj, f"{pin}/prog", "type", "xdp", "pinmaps", pin],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"bpftool could not load Katran {flavour} ({obj}):\n{p.stderr[-3000:]}")
        self.prog_fd = self._get("prog")
        self._fill(cpu, flows)

    def _get(self, name: str) -> int:
        fd = program.obj_get(f"{self.pin}/{name}")
        self.fds.append(fd)
        return fd

    def _fill(self, cpu: int, flows: int) -> None:
        vip_map = self._get("vip_map")
        for vip in VIPS.values():
            # struct vip_definition {addr[16]; __u16 port (network order); __u8 proto; pad}
            key = addr16(vip) + (80).to_bytes(2, "big") + bytes([6, 0])
            map_update(vip_map, key, (0).to_bytes(4, "little") * 2, f"Katran vip_map {vip}:80")
        reals = self._get("reals")
        for i, real in enumerate(REALS, start=1):          # real ids start from 1; 0 = unset
            map_update(reals, i.to_bytes(4, "little"), addr16(real) + bytes(4), f"Katran reals[{i}]")
        ring = self._get("ch_rings")
        for pos, idx in enumerate(maglev.table(REALS, size=RING_SIZE)):
            map_update(ring, pos.to_bytes(4, "little"), (idx + 1).to_bytes(4, "little"),
                       f"Katran ch_rings[{pos}]")
        gw = bytes.fromhex(GW_MAC.replace(":", "")) + bytes(2)      # struct ctl_value: mac[6] in a u64
        map_update(self._get("ctl_array"), bytes(4), gw, "Katran ctl_array[0] (gateway MAC)")
        if self.flavour == "gue":
            srcs = self._get("pckt_srcs")               # V4_SRC_INDEX 0: the outer IPv4 source
            map_update(srcs, bytes(4), addr16(OUR_SRC) + bytes(4), "Katran pckt_srcs[0]")
        # Katran's loader gives each forwarding core its own LRU_HASH in lru_mapping
        # (KatranLb::initLrus); without it the program falls back to fallback_cache.
        self.lru_fd = _lib.bpf_map_create(BPF_MAP_TYPE_LRU_HASH, f"katran_lru{cpu}".encode(),
                                          FLOW_KEY_SIZE, LRU_VALUE_SIZE, flows, None)
        if self.lru_fd < 0:
            raise OSError(ct.get_errno(), f"Katran per-CPU LRU ({flows} entries): "
                          f"{os.strerror(ct.get_errno())}")
        self.fds.append(self.lru_fd)
        map_update(self._get("lru_mapping"), cpu.to_bytes(4, "little"), self.lru_fd.to_bytes(4, "little"),
                   f"Katran lru_mapping[{cpu}]")

    def flows_stored(self, frames: list[bytes]) -> int:
        """How many of these frames' flows are in the per-CPU LRU (struct flow_key)."""
        n, out = 0, ct.create_string_buffer(LRU_VALUE_SIZE)
        for f in frames:
            key = f[26:30] + bytes(12) + f[30:34] + bytes(12) + f[34:38] + bytes([6, 0, 0, 0])
            n += _lib.bpf_map_lookup_elem(self.lru_fd, key, out) == 0
        return n

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        shutil.rmtree(self.pin, ignore_errors=True)


# ---- vc5 ----------------------------------------------------------------------

def vc5_services(dp: DataPlane) -> None:
    for method, vip in VIPS.items():
        if method == "l2":
            bes = [BackendSpec(r, m, LB_MAC) for r, m in zip(REALS, REAL_MACS)]
        else:
            port = GUE_PORT if method in ("fou", "gue") else 0
            bes = [BackendSpec(r, GW_MAC, LB_MAC, method=method, src_address=OUR_SRC, tunnel_port=port)
                   for r in REALS]
        dp.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))


# ---- frames and checks ----------------------------------------------------------

def frame(vip: str) -> bytes:
    return bytes(Ether(src=CLIENT_MAC, dst=LB_MAC) / IP(src=CLIENT, dst=vip)
                 / TCP(sport=40000, dport=80, flags="A") / (b"x" * 64))


def new_flows(template: bytes, n: int, start: int) -> list[bytes]:
    """n copies of an IPv4 TCP frame, flows start..start+n-1 by (source port, low
    half of the source address). Checksums are not redone: neither program
    checks them, and the cost of the checksum arithmetic does not depend on them."""
    out = []
    for i in range(start, start + n):
        f = bytearray(template)
        f[34:36] = (1024 + i % 64000).to_bytes(2, "big")
        f[28:30] = ((i // 64000) & 0xffff).to_bytes(2, "big")
        out.append(bytes(f))
    return out


def check_output(who: str, method: str, vip: str, data: bytes) -> None:
    """The frame a program sent: to one of the reals, the VIP inside, the method asked for."""
    e = Ether(data)
    if method == "l2":
        ok = e.dst in REAL_MACS and IP in e and e[IP].dst == vip
    else:
        outer = e[IP] if IP in e else None
        ok = outer is not None and outer.dst in REALS
        if ok and method == "ipip":
            ok = outer.proto == 4 and IP(bytes(outer.payload)).dst == vip
        elif ok:
            udp = outer[UDP] if UDP in outer else None
            inner = bytes(udp.payload)[4 if method == "gue" else 0:] if udp else b""
            ok = udp is not None and udp.dport == GUE_PORT and len(inner) >= 20 and IP(inner).dst == vip
    if not ok:
        raise SystemExit(f"{who}, {method} to {vip}: unexpected output frame: {e.summary()}")


# ---- measurement ------------------------------------------------------------------

def interleaved(runs: list, calls: int, first: int, pace: bool) -> list[float]:
    """Median kernel duration of each (runner, frames, expected verdict, name) in
    `runs`, `calls` calls each, run in alternating chunks of CHUNK calls (the
    order reversed after every chunk, runs[first] starting) so that every
    program sees the same load from the rest of the machine. pace: at most
    PACE_RATE calls a second per program (Katran's flood guard)."""
    durations: list[list[int]] = [[] for _ in runs]
    order = list(range(len(runs)))
    order.insert(0, order.pop(first))
    t0 = time.monotonic()
    for start in range(0, calls, CHUNK):
        stop = min(calls, start + CHUNK)
        for j in order:
            runner, frames, expect, who = runs[j]
            for i in range(start, stop):
                r = runner.run(frames[i % len(frames)])
                if r.action != expect:
                    raise SystemExit(f"{who}: verdict {r.verdict} on call {i}, wanted {expect}")
                durations[j].append(r.duration)
        order.reverse()
        if pace:
            time.sleep(max(0.0, t0 + stop / PACE_RATE - time.monotonic()))
    return [statistics.median(d) for d in durations]


def require_stored(k: Katran, frames: list[bytes]) -> None:
    stored = k.flows_stored(frames)
    if stored != len(frames):
        raise SystemExit(f"Katran {k.flavour}: only {stored} of {len(frames)} new flows stored "
                         "in its LRU (its flood guard was on, or the LRU is too small)")


def feed(katran: dict, ours: TestRunner | None, frames: list[bytes], skip: str | None = None) -> None:
    """Untimed: these new flows into vc5 (if given) and every Katran flavour but
    `skip`, so that all three flow tables always hold the same number of flows."""
    for flavour, k in katran.items():
        if flavour != skip:
            run = (k.runner, frames, XDP_TX, f"Katran {flavour}, feeding its LRU")
            interleaved([run], len(frames), 0, True)
            require_stored(k, frames)
    if ours is not None:
        interleaved([(ours, frames, XDP_TX, "vc5, feeding its flow table")], len(frames), 0, True)


def measure_round(rnd: int, args, katran: dict, ours: TestRunner, floor_r: TestRunner,
                  hits: dict, flows_start: int) -> dict:
    """One round: {(side, pair label, "hit"|"new"): net ns, "floor": ns}. Every case
    runs Katran, vc5 and the XDP_PASS floor interleaved; net = median - that floor.
    vc5 has one flow table for its four VIPs, Katran one per flavour: the new
    flows of a case are fed (untimed) to the other flavour too, so the tables
    grow alike (a lookup miss costs more in a fuller table)."""
    res, floors = {}, []
    new = {k: new_flows(hits[k], args.calls, flows_start) for k in VIPS}
    for label, flavour, method, vipk in PAIRS:
        k = katran[flavour]
        for kind, frames in (("hit", [hits[vipk]]), ("new", new[vipk])):
            runs = [(k.runner, frames, XDP_TX, f"Katran {flavour}, {kind}, to {VIPS[vipk]}"),
                    (ours, frames, XDP_TX, f"vc5 {method}, {kind}, to {VIPS[vipk]}"),
                    (floor_r, frames, XDP_PASS, "vc5 xdp_pass (floor)")]
            mk, mv, mf = interleaved(runs, args.calls, rnd % 2, pace=kind == "new")
            res[("katran", label, kind)], res[("vc5", label, kind)] = mk - mf, mv - mf
            floors.append(mf)
            if kind == "new":
                require_stored(k, frames)
                feed(katran, None, frames, skip=flavour)
    res["floor"] = statistics.median(floors)
    return res


def summary(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def setup_checks(katran: dict, ours: TestRunner, hits: dict) -> None:
    """A first call on every (program, VIP) creates the hit flow; its output is checked."""
    for _label, flavour, method, vipk in PAIRS:
        # Katran's GUE flavour sends bare IP in UDP, which is what vc5 calls FOU
        kat = (f"Katran {flavour}", katran[flavour].runner, "fou" if flavour == "gue" else flavour)
        for who, runner, m in (kat, (f"vc5 {method}", ours, method)):
            r = runner.run(hits[vipk])
            if r.action != XDP_TX:
                raise SystemExit(f"{who}, first frame to {VIPS[vipk]}: verdict {r.verdict}, wanted XDP_TX")
            check_output(who, m, VIPS[vipk], r.data)
        if katran[flavour].flows_stored([hits[vipk]]) != 1:
            raise SystemExit(f"Katran {flavour}: the flow to {VIPS[vipk]} is not in its per-CPU LRU")


def print_report(args, cpu: int, results: list[dict], sizes: dict, commit: str) -> None:
    floors = [r["floor"] for r in results]
    print(f"# vc5 against Katran: ns per packet (CPU {cpu} of {os.cpu_count()}, "
          f"kernel {os.uname().release})\n")
    print(f"Katran {commit}, built with {sizes['clang']}: IPIP {sizes['ipip']}; GUE {sizes['gue']}. "
          f"vc5 xdp_main: {sizes['vc5']}.\n")
    print(f"{len(results)} rounds of {args.calls} BPF_PROG_TEST_RUN calls (repeat=1) per case and program, "
          "Katran, vc5 and the floor (vc5's xdp_pass) interleaved; net = median kernel duration minus the "
          f"floor's median in the same case (floor: median {summary(floors)} ns per round); "
          "cells: median over the rounds (min–max). "
          f"Flow tables: {args.flows} entries each (vc5 {sizes['vc5 table']}, Katran per-CPU LRU_HASH), "
          f"all three holding the same flows: {args.prefill} before the first round, "
          f"{args.prefill + 4 * args.rounds * args.calls} after the last. "
          "TCP ACK, IPv4, 118-byte frames; new flow = a flow never seen before on every call.\n")
    print("| path | case | Katran net ns | vc5 net ns | vc5/Katran | target |")
    print("|---|---|---:|---:|---:|---|")
    for label, _flavour, _method, _vipk in PAIRS:
        for kind, name in (("hit", "flow-table hit"), ("new", "new flow")):
            k = [r[("katran", label, kind)] for r in results]
            v = [r[("vc5", label, kind)] for r in results]
            ratios, t = [b / a for a, b in zip(k, v)], TARGETS[kind]
            verdict = f"<= {t:.1f}: {'met' if statistics.median(ratios) <= t else 'NOT met'}"
            print(f"| {label} | {name} | {summary(k)} | {summary(v)} | {summary(ratios, '{:.2f}')} "
                  f"| {verdict} |")


def print_flows(args, flows: dict) -> None:
    """Entries in each flow table after the run against what the run put there (new
    flows, prefill, one hit flow per VIP: vc5 four, a Katran flavour the two it is timed on)."""
    base, cells = args.prefill + 4 * args.rounds * args.calls, []
    for name, n in flows.items():
        want = base + (len(VIPS) if name == "vc5" else 2)
        cells.append(f"{name} {n}" + ("" if n == want else f" (NOT the {want} put in: evicted/not stored)"))
    print(f"\nFlows in the tables at the end: {', '.join(cells)}.")


def katran_commit(src: str) -> str:
    for path in (f"{src}/COMMIT", f"{src}/.git"):
        if os.path.isfile(path):
            with open(path) as f:
                return f"commit {f.read().strip()[:12]}"
        if os.path.isdir(path):
            p = subprocess.run(["git", f"--git-dir={path}", "rev-parse", "--short=12", "HEAD"],
                               capture_output=True, text=True)
            return f"commit {p.stdout.strip()}" if p.returncode == 0 else "commit unknown"
    return "commit unknown (no COMMIT file in --katran DIR)"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=HOWTO)
    ap.add_argument("--katran", metavar="DIR",
                    help="Katran source tree (katran/lib/bpf, katran/lib/linux_includes)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds; medians and spread over them (default 7)")
    ap.add_argument("--calls", type=int, default=5000,
                    help="repeat=1 calls per case and round (default 5000)")
    ap.add_argument("--flows", type=int, default=1 << 18,
                    help="flow table entries, both programs (default 262144: no eviction in a default run)")
    ap.add_argument("--prefill", type=int, default=0,
                    help="flows put in every table (untimed) before the first round (default 0)")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the lowest allowed)")
    args = ap.parse_args()
    if not args.katran:
        print("katran_compare: --katran DIR is required; the benchmark does not vendor Katran.\n\n" + HOWTO,
              file=sys.stderr)
        raise SystemExit(2)
    need = f"{args.katran}/katran/lib/bpf/balancer.bpf.c"
    if not os.path.isfile(need) or not os.path.isdir(f"{args.katran}/katran/lib/linux_includes"):
        print(f"katran_compare: --katran {args.katran}: no {need} (or no katran/lib/linux_includes)\n\n"
              + HOWTO, file=sys.stderr)
        raise SystemExit(2)
    if args.rounds < 1 or args.calls < 1:
        raise SystemExit("--rounds and --calls must be >= 1")
    if args.prefill + 4 * args.rounds * args.calls > args.flows:
        need = args.prefill + 4 * args.rounds * args.calls
        raise SystemExit(f"--flows {args.flows} is smaller than the {need} flows each table gets "
                         "(prefill + 4 VIPs x rounds x calls): raise --flows")
    if os.geteuid() != 0:
        raise SystemExit("run as root (BPF)")
    return args


def main() -> None:
    args = parse_args()
    src = os.path.abspath(args.katran)
    cpu = min(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    work, pin = f"/tmp/vc5-katran-{tag}", f"/sys/fs/bpf/vc5-katran-{tag}"
    os.makedirs(work)
    katran, dp = {}, None
    try:
        clang = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        sizes = {"clang": clang}
        for flavour in FLAVOURS:
            obj = build_katran(src, flavour, work)
            katran[flavour] = Katran(obj, f"{pin}/{flavour}", flavour, cpu, args.flows)
            katran[flavour].runner = TestRunner(katran[flavour].prog_fd)
            sizes[flavour] = prog_info(katran[flavour].prog_fd)
        dp = DataPlane(pin_dir=f"{pin}/vc5", flows=args.flows, watchdog=False)
        dp.set_active(True)
        vc5_services(dp)
        sizes["vc5"] = prog_info(dp.xdp_fd)
        ours, floor_r = TestRunner(dp.xdp_fd), TestRunner(dp.pass_fd)
        hits = {k: frame(v) for k, v in VIPS.items()}
        setup_checks(katran, ours, hits)
        if args.prefill:      # flows no round uses: after the rounds' range
            feed(katran, ours, new_flows(hits["ipip"], args.prefill, args.rounds * args.calls))
        results = [measure_round(r, args, katran, ours, floor_r, hits, r * args.calls)
                   for r in range(args.rounds)]
        flows = {"vc5": count_keys(dp.maps["flows"].fd, dp.maps["flows"].spec.key_size)}
        sizes["vc5 table"] = MAP_TYPES.get(dp.maps["flows"].spec.map_type, "?")
        flows.update({f"Katran {f}": count_keys(k.lru_fd, FLOW_KEY_SIZE) for f, k in katran.items()})
    finally:
        for k in katran.values():
            k.close()
        if dp is not None:
            dp.close(unpin=True)
        shutil.rmtree(pin, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print_report(args, cpu, results, sizes, katran_commit(src))
    print_flows(args, flows)


if __name__ == "__main__":
    main()
