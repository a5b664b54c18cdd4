"""Bounded configuration input (issue #12): CPU and peak RSS of hostile and large files.

    PYTHONPATH=services /usr/bin/python3 bench/config_limits.py

Each case runs in a fresh interpreter (its own peak RSS). Cases:
  merge bomb  - 24 mappings, each merging the previous twice (<<: [*a, *a]): 2**24 pairs;
  list bomb   - billion laughs, 9 lists of 10 aliases each: 10**9 strings;
  prefixes N  - one prefixes: list of N /32s, accepted by a BGP group.
Prints a Markdown table.
"""

import json
import os
import subprocess
import sys

CHILD = """
import json, resource, sys, time
from vc5.config import ConfigError, load_text
text = sys.stdin.read()
t = time.process_time()
try:
    load_text(text, source="bench.yaml")
    verdict = "loaded"
except ConfigError as e:
    verdict = e.problems[0].message[:60]
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": time.process_time() - t, "rss": u.ru_maxrss / 1024, "verdict": verdict}))
"""


def merge_bomb(levels=24):
    lines = ["policy:", "  a0: &a0 {http: , https: }"]
    lines += [f"  a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], {i}: }}" for i in range(1, levels + 1)]
    lines += ["services:", f"  - {{virtual: 192.0.2.1, servers: [10.1.10.10], policy: a{levels}}}"]
    return "\n".join(lines) + "\n"


def list_bomb(levels=9):
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\nprefixes: {{x: *l{levels}}}\n"


def prefixes(n):
    nets = [f"    - 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32" for i in range(n)]
    return "\n".join(["address: 10.1.10.100", "prefixes:", "  big:", *nets, "bgp:", "  as_number: 65000",
                      "  groups:", "    - {name: g, peers: [10.1.10.200], accept: [big]}"]) + "\n"


def run(text):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", CHILD], input=text, capture_output=True, text=True, env=env,
                       timeout=600, check=True)
    return json.loads(r.stdout)


def main():
    print("| case | bytes | CPU s | peak RSS MiB | result |\n|---|---|---|---|---|")
    cases = [("merge bomb", merge_bomb()), ("list bomb", list_bomb()),
             ("prefixes 20,000", prefixes(20_000)), ("prefixes 100,000", prefixes(100_000))]
    for name, text in cases:
        got = run(text)
        print(f"| {name} | {len(text):,} | {got['cpu']:.3f} | {got['rss']:.0f} | {got['verdict']} |")


if __name__ == "__main__":
    main()
