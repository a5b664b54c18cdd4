#!/usr/bin/python3
"""Loader reconcile benchmark: healthd's Services + a network view -> plan -> specs -> maps, on
real pinned maps (a private pin directory, removed at the end). Prints a Markdown table; not a test.

    sudo /usr/bin/python3 bench/dataplane_reconcile.py [--rounds 30]
    sudo /usr/bin/python3 bench/dataplane_reconcile.py --compare /tmp/xdp-base [--rounds 30]

One service of N backends (16, 255), all up, every MAC known:
  * set_service alone: DataPlane.set_service of the same spec (as bench/dataplane.py);
  * forced: the whole path, the service rewritten (plan, specs, set_service with its Maglev build);
  * unchanged: a rescan that finds nothing new (plan, specs, compare: no map write);
  * one drained: a backend leaves the table (the service rewritten once).
Median µs over `rounds` calls. `--compare TREE` measures TREE (another checkout, e.g. the base
commit) and this tree in the same run, alternately, in child processes (one `vc5` per process).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SIZES = (16, 255)
LB_MAC = "02:00:00:00:00:01"


def measure(tree: str, rounds: int) -> dict:
    """In this process: import vc5 from `tree`, time the three cases for each size."""
    sys.path.insert(0, os.path.join(tree, "services"))
    from vc5.common import wire
    from vc5.xdp_loader import netinfo
    from vc5.xdp_loader.dataplane import BackendSpec, DataPlane, ServiceSpec

    try:
        from vc5.xdp_loader.loader import Loader
        explicit = True                               # reconcile(health, view, force)
    except ImportError:
        from vc5.xdp_loader.daemon import Loader      # base: reconcile(force) reads self.health/self.view
        explicit = False
    logging.disable(logging.CRITICAL)
    os.environ.pop("NOTIFY_SOCKET", None)
    eth = netinfo.Interface("eth0", 2, LB_MAC, netinfo.IFF_UP | netinfo.IFF_BROADCAST,
                            (ipaddress.ip_interface("10.1.0.1/16"),))
    base = ipaddress.ip_address("10.1.1.1")
    addresses = [str(base + i) for i in range(max(SIZES))]
    neighbours = [netinfo.Neighbour(ipaddress.ip_address(a), f"02:00:00:01:{i >> 8:02x}:{i & 255:02x}", 2,
                                    netinfo.NUD_REACHABLE) for i, a in enumerate(addresses)]
    vlans = {10: ipaddress.ip_interface("10.1.0.0/16")}
    view = netinfo.build_view([eth], neighbours, vlans, {})
    reader = SimpleNamespace(interfaces=lambda: [eth], ipr=None, close=lambda: None,
                             view=lambda *a, **k: view)
    cfg = SimpleNamespace(source="bench", flows_per_cpu=4096, xdp_mode="generic", interfaces=("eth0",),
                          vlans=vlans, vlans6={}, untagged=False)
    pins = f"/sys/fs/bpf/vc5-bench-rec-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    dp = DataPlane(pin_dir=f"{pins}/v1", flows=4096, watchdog=False)
    out = {}
    try:
        loader = Loader(cfg, dp, reader=reader)
        loader.view = view

        def reconcile(health, force=False):
            if explicit:
                loader.reconcile(health, view, force=force)
            else:
                loader.health = health
                loader.reconcile(force=force)

        def timed(fn):
            t = []
            for _ in range(rounds):
                s = time.perf_counter_ns()
                fn()
                t.append(time.perf_counter_ns() - s)
            return statistics.median(t) / 1000

        for n in SIZES:
            specs = [ServiceSpec("192.0.2.9", 80, "tcp", backends=tuple(
                BackendSpec(a, f"02:00:00:02:00:{i & 255:02x}", LB_MAC)
                for i, a in enumerate(addresses[:n])))]
            out[f"set_service alone, {n} backends"] = timed(lambda: dp.set_service(specs[0]))
            dp.remove_service("192.0.2.9", 80, "tcp")
            up = tuple(wire.BackendState(a, 80, up=True) for a in addresses[:n])
            drained = (wire.BackendState(addresses[0], 80, up=True, drained=True),) + up[1:]
            health = (wire.ServiceState("192.0.2.1", 80, "tcp", up=True, backends=up),)
            other = (wire.ServiceState("192.0.2.1", 80, "tcp", up=True, backends=drained),)
            reconcile(health)
            out[f"forced, {n} backends"] = timed(lambda: reconcile(health, force=True))
            out[f"unchanged, {n} backends"] = timed(lambda: reconcile(health))
            flip = [health, other]
            out[f"one drained, {n} backends"] = timed(lambda: (flip.reverse(), reconcile(flip[0])))
            reconcile(())
    finally:
        dp.close(unpin=True)
        try:
            os.rmdir(pins)
        except OSError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--compare", metavar="TREE", help="another checkout measured in the same run")
    ap.add_argument("--passes", type=int, default=3, help="with --compare: alternate passes per tree")
    ap.add_argument("--tree", default=HERE, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (BPF)")
    if args.json:
        print(json.dumps(measure(args.tree, args.rounds)))
        return
    trees = [args.compare, HERE] if args.compare else [HERE]
    runs = {t: [] for t in trees}
    for _ in range(args.passes if args.compare else 1):
        for tree in trees:
            cmd = [sys.executable, __file__, "--tree", tree, "--rounds", str(args.rounds), "--json"]
            r = subprocess.run(cmd,
                               capture_output=True, text=True, check=True)
            runs[tree].append(json.loads(r.stdout.strip().splitlines()[-1]))
    cases = list(runs[HERE][0])
    best = {t: {c: min(r[c] for r in runs[t]) for c in cases} for t in trees}
    print(f"# loader reconcile, median µs of {args.rounds} calls (best of {len(runs[HERE])} passes)\n")
    if args.compare:
        print(f"| case | {args.compare} | {HERE} | ratio |\n|---|---:|---:|---:|")
        for c in cases:
            a, b = best[args.compare][c], best[HERE][c]
            print(f"| {c} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    else:
        print("| case | µs |\n|---|---:|")
        for c in cases:
            print(f"| {c} | {best[HERE][c]:.0f} |")


if __name__ == "__main__":
    main()
