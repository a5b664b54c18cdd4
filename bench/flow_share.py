#!/usr/bin/python3
"""Cost of flow sharing on the data plane's new-flow path (needs root).

BPF_PROG_TEST_RUN, one CPU, a private pin directory, one service of 8 L2
backends. Every frame is the FIRST packet (an ACK) of a new TCP flow, so it
misses the local flow table and is stored. Per mode, N flows per round,
rounds interleaved so that drift hits every mode alike; the median over
rounds of the mean ns per new flow is printed:

  baseline     sharing off (settings flag clear): the hooks cost one
               inlined settings read and a flag test
  on, empty    sharing on, `shared` empty: + one failed LRU-hash lookup
               (the miss) + one queue push (the note)
  on, hit      sharing on, every flow in `shared` (another balancer's):
               lookup hit, no Maglev, stored locally, not noted

and the user-space side: ns per record to drain, encode and frame a queue
of N noted flows (sender), and to decode and store N records (receiver).

Usage: sudo /usr/bin/python3 bench/flow_share.py [N] [ROUNDS]   (default 2000 5)
"""

import ipaddress
import os
import shutil
import statistics
import sys
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [REPO, os.path.join(REPO, "services")]

from tests.bpf.frames import CLIENT4, backends, tcp  # noqa: E402
from tests.lib.testrun import XDP_TX, TestRunner  # noqa: E402
from vc5.xdp_loader.dataplane import DataPlane, ServiceSpec  # noqa: E402
from vc5.xdp_loader.share import codec, tables  # noqa: E402
from vc5.xdp_loader.share.receiver import Receiver  # noqa: E402

VIP = "192.0.2.250"


def new_flows(runner, frames):
    """Mean kernel ns per frame (each a new flow)."""
    total = 0
    for f in frames:
        r = runner.run(f)
        assert r.action == XDP_TX, r.verdict
        total += r.duration
    return total / len(frames)


def main(n=2000, rounds=5):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pin = f"/sys/fs/bpf/wt-share-bench-{uuid.uuid4().hex[:6]}"
    flows = max(65536, 4 * n * rounds)
    dp = DataPlane(pin_dir=pin, flows=flows, watchdog=False)
    try:
        dp.set_active(True)
        bes = backends("10.250.0.", 8)
        dp.set_service(ServiceSpec(VIP, 80, "tcp", backends=bes))
        runner = TestRunner(dp.xdp_fd)
        results = {"baseline": [], "on, empty": [], "on, hit": []}
        sport = 1024
        target = str(ipaddress.ip_address(bes[3].address))
        for _ in range(rounds):
            for mode in results:
                ports = range(sport, sport + n)
                sport += n
                frames = [bytes(tcp(VIP, 80, sport=p, flags="A")) for p in ports]
                tables.set_sharing(dp, mode != "baseline")
                if mode == "on, hit":
                    now = tables.monotonic_ns()
                    for p in ports:
                        f = codec.SharedFlow(ipaddress.ip_address(CLIENT4), ipaddress.ip_address(VIP), p, 80,
                                             codec.TCP, ipaddress.ip_address(target))
                        assert tables.learn(dp, f, now) == tables.LEARNED
                results[mode].append(new_flows(runner, frames))
                tables.pop_noted(dp)
        tables.set_sharing(dp, True)
        frames = [bytes(tcp(VIP, 80, sport=p, flags="A")) for p in range(sport, sport + n)]
        for f in frames:
            runner.run(f)
        t0 = time.perf_counter_ns()
        noted = tables.pop_noted(dp)
        now = tables.monotonic_ns()
        records = [codec.encode_record(tables.outgoing(dp, e, now)) for e in noted]
        datagrams = codec.frame(records)
        send_ns = (time.perf_counter_ns() - t0) / len(noted)
        rx = Receiver(dp, sock=_NullSock())
        t0 = time.perf_counter_ns()
        for d in datagrams:
            rx.handle(d)
        recv_ns = (time.perf_counter_ns() - t0) / len(noted)
        assert rx.stats["ok"] == len(noted) == n, (rx.stats, len(noted))
    finally:
        dp.close(unpin=True)
        shutil.rmtree(pin, ignore_errors=True)
    base = statistics.median(results["baseline"])
    print(f"new TCP flow, kernel ns per first packet (median of {rounds} rounds of {n}; 1 CPU):")
    for mode, values in results.items():
        m = statistics.median(values)
        print(f"  {mode:<10} {m:8.0f} ns   {m - base:+6.0f} ns vs baseline   (rounds: "
              + ", ".join(f"{v:.0f}" for v in values) + ")")
    print(f"user space, per record: sender (drain + encode + frame) {send_ns / 1000:.1f} us, "
          f"receiver (decode + store in shared) {recv_ns / 1000:.1f} us; {len(datagrams)} datagrams")


class _NullSock:
    def settimeout(self, _):
        pass


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
