"""Build time of vc5.maglev tables against two naive baselines measured in the same run.

    PYTHONPATH=services /usr/bin/python3 bench/maglev.py

Baselines:
  paper  - Pseudocode 1 of the Maglev paper as written: every node's whole
           permutation precomputed (N x M ints), then populated; run only
           where N x M stays small enough to finish quickly;
  direct - the population loop with a dict of taken slots and a modulo per
           probe (the shape of the Go original), no precomputation.
Both are checked to give the same table as vc5.maglev. Prints a Markdown table.
"""

import hashlib
import platform
import sys
import time

from vc5 import maglev

BACKENDS = (3, 10, 100, 255, 1000)
SIZES = (8192, 65537)
RUNS = 3
PAPER_LIMIT = 3_000_000  # N x M precomputed permutation entries (~36 bytes each)


def params(names, prime):
    out = []
    for name in names:
        digest = hashlib.sha256(name).digest()
        out.append((int.from_bytes(digest[0:4], "big") % prime,
                    int.from_bytes(digest[4:8], "big") % (prime - 1) + 1))
    return out


def paper(names, prime):
    permutation = [[(offset + j * skip) % prime for j in range(prime)]
                   for offset, skip in params(names, prime)]
    next_ = [0] * len(names)
    entry = [-1] * prime
    filled = 0
    while True:
        for i in range(len(names)):
            c = permutation[i][next_[i]]
            while entry[c] >= 0:
                next_[i] += 1
                c = permutation[i][next_[i]]
            entry[c] = i
            next_[i] += 1
            filled += 1
            if filled == prime:
                return entry


def direct(names, prime):
    p = params(names, prime)
    current = [offset for offset, _ in p]
    entry = {}
    while True:
        for i in range(len(names)):
            c = current[i]
            while c in entry:
                c = (c + p[i][1]) % prime
            current[i] = c
            entry[c] = i
            if len(entry) == prime:
                return [entry[k] for k in range(prime)]


def best_of(runs, fn, *args):
    best, result = None, None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn(*args)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def ms(seconds):
    return "—" if seconds is None else f"{seconds * 1000:.1f}"


def main():
    started = time.perf_counter()
    print(f"# vc5.maglev build time (best of {RUNS}, ms) — Python {platform.python_version()}, "
          f"{platform.machine()}\n")
    print("| slots (M) | backends | vc5.maglev | direct baseline | paper baseline | speed-up vs direct |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in SIZES:
        prime = maglev.prime_for(size)
        for count in BACKENDS:
            addresses = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1, count + 1)]
            ordered, _ = maglev.backend_table(addresses, size)
            names = [maglev.node_name(a) for a in ordered]
            fast, table = best_of(RUNS, maglev.table, names, size)
            slow, reference = best_of(RUNS, direct, names, prime)
            assert table == reference[:size], "direct baseline disagrees"
            naive = None
            if count * prime <= PAPER_LIMIT:
                naive, reference = best_of(RUNS, paper, names, prime)
                assert table == reference[:size], "paper baseline disagrees"
            print(f"| {size} ({prime}) | {count} | {ms(fast)} | {ms(slow)} | {ms(naive)} |"
                  f" {slow / fast:.1f}x |")
    total = time.perf_counter() - started
    print(f"\n(paper baseline skipped where N x M > {PAPER_LIMIT:,}; total run {total:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
