#!/usr/bin/python3
"""Flow-table designs compared in one run (issue #14): nanoseconds per lookup
(hit) and per lookup + insert (miss), by BPF_PROG_TEST_RUN of a small XDP
program per design. Prints a Markdown table; not a test.

    sudo /usr/bin/python3 bench/flow_tables.py [--sizes 1000,100000,1000000] [--runs 1000000]

Each design is one map declaration; the program (the same text for all)
derives a flow key from a per-CPU sequence (flow i of `base + seq % count`),
looks it up, refreshes the value's time like vc5_select (only when older
than the refresh interval: never here) and, on a miss, inserts a 16-byte
value (time, cookie, pair, hash: struct vc5_flow). Keys:

  key40  the data plane's padded key before issue #14 (struct vc5_flow_key:
         two 16-byte addresses, ports, protocol, 3 pad bytes);
  key12  a compact IPv4 key (saddr, daddr, sport, dport); the protocol is the
         table (one table per protocol), so it is not in the key.

Designs: lru_percpu_hash (the table before issue #14: one 16-byte value per
possible CPU), lru_hash (one value, shared by all CPUs), lru_hash with
BPF_F_NO_COMMON_LRU (per-CPU LRU lists: a CPU evicts only from its own list
and, as the kernel splits the free list, can hold at most max_entries /
possible CPUs entries inserted by itself), and vc5's array of maps (one inner
lru_hash per CPU, the outer array indexed by bpf_get_smp_processor_id).

Per size N (table max_entries = N, N flows):
  hit   N runs fill the table, then --runs runs cycle over the same N flows;
        `hit %` is the share of those runs that found their flow (an LRU may
        evict before it is full, and NO_COMMON_LRU holds N / CPUs per CPU);
  miss  --runs runs of flows never seen before (lookup fails, insert evicts).
ns = kernel-measured mean per run minus the baseline program's (same key
derivation, no map) measured in the same run; the process is pinned to one
CPU. Memory: the kernel's own figure for the map (bpf_map_memory_usage,
fdinfo `memlock`) at N entries.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from tests.lib.testrun import TestRunner  # noqa: E402

BPF_F_NO_COMMON_LRU = 1 << 1

KEYS = {
    "key40": ("struct fkey { u32 saddr[4]; u32 daddr[4]; u16 sport; u16 dport; u8 proto; u8 pad[3]; };",
              "k.saddr[3] = i; k.daddr[3] = 0x010200c0; k.sport = (u16)(i >> 16) ^ 0x55aa; "
              "k.dport = 0x5000; k.proto = 6;"),
    "key12": ("struct fkey { u32 saddr; u32 daddr; u16 sport; u16 dport; };",
              "k.saddr = i; k.daddr = 0x010200c0; k.sport = (u16)(i >> 16) ^ 0x55aa; k.dport = 0x5000;"),
}

# name -> (map declaration, lookup expression setting `v`)
DESIGNS = {
    "lru_percpu_hash": ('BPF_TABLE("lru_percpu_hash", struct fkey, struct fval, t, N);', "t.lookup(&k)"),
    "lru_hash": ('BPF_TABLE("lru_hash", struct fkey, struct fval, t, N);', "t.lookup(&k)"),
    "lru_hash NO_COMMON_LRU": (
        f'BPF_F_TABLE("lru_hash", struct fkey, struct fval, t, N, {BPF_F_NO_COMMON_LRU});', "t.lookup(&k)"),
    "array of per-CPU lru_hash (vc5)": None,     # built by program_text (one inner map per CPU)
    "baseline (no map)": ("", "(struct fval *)0"),
}

TEXT = r"""
struct fval { u64 time; u32 cookie; u16 pair; u16 hash; };
KEYDEF
MAPDEF
BPF_PERCPU_ARRAY(seq, u64, 1);
BPF_ARRAY(cfg, u64, 2);           /* [0] base, [1] count */
BPF_PERCPU_ARRAY(hits, u64, 1);

int run(struct xdp_md *ctx)
{
    u32 z = 0, one = 1;
    u64 *s = seq.lookup(&z), *base = cfg.lookup(&z), *count = cfg.lookup(&one), *h = hits.lookup(&z);
    if (!s || !base || !count || !h || !*count)
        return XDP_ABORTED;
    u32 i = (u32)(*base + *s % *count);
    *s += 1;
    struct fkey k = {};
    KEYSET
    u64 now = bpf_ktime_get_coarse_ns();
    struct fval *v = LOOKUP;
    if (v) {
        if (now - v->time > 60000000000ULL)
            v->time = now;
        *h += 1;
        return XDP_PASS;
    }
    INSERT
    return XDP_DROP;
}
"""


def program_text(design: str, key: str, n: int, ncpus: int) -> str:
    keydef, keyset = KEYS[key]
    insert = "struct fval nv = { .time = now, .cookie = i, .pair = 1, .hash = 2 }; "
    if design.startswith("array of"):
        inner = "".join(f'BPF_TABLE("lru_hash", struct fkey, struct fval, t{c}, N);\n' for c in range(ncpus))
        mapdef = inner + f'BPF_ARRAY_OF_MAPS(outer, "t0", {ncpus});'
        lookup = "NULL; u32 cpu = bpf_get_smp_processor_id(); void *m = outer.lookup(&cpu); " \
                 "if (m) v = bpf_map_lookup_elem(m, &k)"
        insert += "if (m) bpf_map_update_elem(m, &k, &nv, BPF_ANY);"
        body = TEXT.replace("struct fval *v = LOOKUP;", f"struct fval *v = {lookup};")
    else:
        mapdef, lookup = DESIGNS[design]
        insert += "t.update(&k, &nv);" if mapdef else "(void)nv;"
        body = TEXT.replace("LOOKUP", lookup)
    body = body.replace("KEYDEF", keydef).replace("MAPDEF", mapdef).replace("KEYSET", keyset)
    return f"#define N {n}\n" + body.replace("INSERT", insert)


def memlock(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    return 0


def measure(design: str, key: str, n: int, runs: int, ncpus: int, frame: bytes) -> dict:
    from bcc import BPF
    b = BPF(text=program_text(design, key, n, ncpus))
    try:
        fn = b.load_func("run", BPF.XDP)
        cfg, hits = b["cfg"], b["hits"]
        mem = 0
        if design.startswith("array of"):
            outer = b["outer"]
            for c in range(ncpus):
                t = b[f"t{c}"]
                outer[ct.c_int(c)] = ct.c_int(t.map_fd)
                mem += memlock(t.map_fd)
        elif DESIGNS[design][0]:
            mem = memlock(b["t"].map_fd)
        runner = TestRunner(fn.fd)

        def go(base: int, count: int, repeat: int) -> tuple[float, float]:
            cfg[ct.c_int(0)] = ct.c_uint64(base)
            cfg[ct.c_int(1)] = ct.c_uint64(count)
            h0 = hits.sum(ct.c_int(0)).value
            r = runner.run(frame, repeat=repeat)
            h1 = hits.sum(ct.c_int(0)).value
            return float(r.duration), (h1 - h0) / repeat

        go(0, n, n)                                   # fill
        hit_ns, hit_rate = go(0, n, runs)
        miss_ns, _ = go(1 << 30, 1 << 30, runs)       # never-seen flows
        return {"hit": hit_ns, "hit_rate": hit_rate, "miss": miss_ns, "mem": mem}
    finally:
        b.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000", help="table sizes = flow counts")
    ap.add_argument("--runs", type=int, default=1_000_000, help="test runs per measurement")
    ap.add_argument("--keys", default="key40,key12")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (BPF)")
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    from vc5.xdp_loader import layout
    ncpus = layout.possible_cpus()
    frame = bytes(64)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        base = measure("baseline (no map)", "key12", n, args.runs, ncpus, frame)
        for design in DESIGNS:
            if design.startswith("baseline"):
                continue
            for key in args.keys.split(","):
                m = measure(design, key, n, args.runs, ncpus, frame)
                rows.append((n, design, key, m["hit"] - base["hit"], m["hit_rate"],
                             m["miss"] - base["miss"], m["mem"]))
        rows.append((n, "baseline (no map)", "-", base["hit"], 0.0, base["miss"], 0))
    print(f"# Flow-table designs, BPF_PROG_TEST_RUN on CPU {cpu} ({ncpus} possible CPUs, "
          f"kernel {os.uname().release})\n")
    print(f"{args.runs:,} runs per measurement; ns = mean per run minus the baseline's (last row of each "
          "size, absolute); memory = the map's fdinfo memlock (all inner maps for the array of maps).\n")
    print("| flows = entries | design | key | hit ns | hit % | miss ns | memory | bytes/entry |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for n, design, key, hit, rate, miss, mem in rows:
        per = f"{mem / n:.0f}" if mem else "-"
        print(f"| {n:,} | {design} | {key} | {hit:.1f} | {rate * 100:.0f} % | {miss:.1f} | "
              f"{mem / 2**20:.1f} MiB | {per} |")


if __name__ == "__main__":
    main()
