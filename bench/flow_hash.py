#!/usr/bin/python3
"""Flow-hash benchmark: vc5_sdbm (bpf/vc5_hash.h, independent multiply-adds)
against the serial 36-step loop it replaced, in one run. Prints a Markdown
table; not a test.

    sudo /usr/bin/python3 bench/flow_hash.py [--repeat 1000000] [--rounds 9]

Method: one small XDP program per variant reads a 36-byte tuple from the
packet, hashes it (sticky and full, as vc5_select does) and returns XDP_PASS
when the hash is odd, XDP_DROP when even (so the work cannot be optimised
away). A third program returns XDP_PASS without hashing: the floor. Each
figure is BPF_PROG_TEST_RUN with `repeat` packets (kernel loop, mean ns per
packet), the median of `rounds` rounds interleaved across variants; the
process is pinned to one CPU. Net = figure - floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from tests.lib.testrun import TestRunner  # noqa: E402

PROGRAM = r"""
#include "vc5_headers.h"
#include "vc5_layout.h"
#include "vc5_hash.h"

/* The loop vc5_hash.h replaced: hash = hash * 63 + c, a 36-step chain. */
static __always_inline __u32 serial_sdbm(struct vc5_tuple *t, int sticky, __u16 *h4)
{
    __u8 *p = (__u8 *)t;
    __u32 h = 0;
#pragma unroll
    for (int i = 0; i < 32; i++)
        h = h * 63 + p[i];
    __u32 h3 = h;
#pragma unroll
    for (int i = 32; i < 36; i++)
        h = h * 63 + p[i];
    *h4 = h;
    return (sticky ? h3 : h) & 0xffff;
}

static __always_inline int run(struct xdp_md *ctx, int serial)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    if (data + 14 + sizeof(struct vc5_tuple) > end)
        return XDP_ABORTED;
    struct vc5_tuple t;
    __builtin_memcpy(&t, data + 14, sizeof(t));
    __u16 h4 = 0;
    __u32 a = serial ? serial_sdbm(&t, 1, &h4) : vc5_sdbm(&t, 1, &h4);
    __u32 b = serial ? serial_sdbm(&t, 0, &h4) : vc5_sdbm(&t, 0, &h4);
    return ((a ^ b ^ h4) & 1) ? XDP_PASS : XDP_DROP;
}

int hash_weights(struct xdp_md *ctx) { return run(ctx, 0); }
int hash_serial(struct xdp_md *ctx) { return run(ctx, 1); }
int floor_pass(struct xdp_md *ctx) { return XDP_PASS; }
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1_000_000, help="packets per BPF_PROG_TEST_RUN")
    ap.add_argument("--rounds", type=int, default=9, help="rounds (median reported)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import bcc
    bpf = bcc.BPF(text=PROGRAM.encode(), cflags=[f"-I{os.path.join(REPO, 'bpf')}"])
    names = ("floor_pass", "hash_serial", "hash_weights")
    runners = {n: TestRunner(bpf.load_func(n.encode(), bcc.BPF.XDP).fd) for n in names}
    frame = bytes(14) + bytes(12) + bytes([198, 51, 100, 7]) + bytes(12) + bytes([192, 0, 2, 10]) \
        + (40000).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(64)
    samples = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            samples[n].append(runners[n].run(frame, repeat=args.repeat).duration)
    med = {n: statistics.median(v) for n, v in samples.items()}
    floor = med["floor_pass"]
    print(f"flow hash, {args.rounds} rounds x {args.repeat:,} packets, one CPU, median ns/packet\n")
    print("| variant | ns/packet | net of floor |\n|---|---:|---:|")
    print(f"| XDP_PASS floor | {floor:.1f} | 0.0 |")
    serial = med["hash_serial"]
    print(f"| serial sdbm (baseline, the old loop) | {serial:.1f} | {serial - floor:.1f} |")
    print(f"| vc5_hash.h weights | {med['hash_weights']:.1f} | {med['hash_weights'] - floor:.1f} |")
    base, new = med["hash_serial"] - floor, med["hash_weights"] - floor
    if base > 0:
        print(f"\nnet cost of hashing (sticky + full, as vc5_select): {new:.1f} ns vs {base:.1f} ns "
              f"({100 * (new - base) / base:+.0f}%)")


if __name__ == "__main__":
    main()
