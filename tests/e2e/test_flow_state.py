"""Flow state across balancers: shared flows, UDP floods, and a balancer that goes silent.

One lab (two balancers, four backends, BIRD with BFD at 100 ms) with the chaos
load running throughout (tests/lab/load.py: 20 long-lived streams and new
connections). The tests run in order and build on each other:

1. Without `multicast`: 20 streams go through lb1 only, a backend is added on
   both balancers, then lb1 is withdrawn at the router. lb2 never saw those
   flows and its Maglev table now has one backend more: the streams it sends
   to another backend are reset. This is what flow sharing is for.
2. With `multicast` (the loaders restarted to read it): the same scenario, one
   backend more again, and no stream breaks: lb2 learned lb1's flows (vc5 v0.3's
   wire format) and keeps each on its backend.
3. A UDP flood of 200,000 distinct 4-tuples at the VIP while a backend is
   drained (its streams live only in the flow tables): no TCP stream breaks.
4. lb1 goes silent (every frame dropped at its switch port, its vc5 processes
   SIGSTOPped: no NOTIFICATION, carrier up): BFD takes it out of the router's
   ECMP group in under a second and its streams continue through lb2 unbroken.
"""

import json
import os
import signal
import struct
import sys
import time

import pytest

from tests.lab.chaos import TABLES, LoadClient
from tests.lab.silence import silence, unsilence
from tests.lab.stack import Stack
from tests.lab.topology import HERE, VIP4, Lab
from tests.lib.wait import until

GROUP = "239.255.5.5:9999"
OBSERVE_S = 1.5
BFD_MS = 100            # BIRD's intervals; ours are bfd: true's default (docs/bgp.md, "BFD")
DETECT_LIMIT_S = 1.0
FLOWS = 2048           # a small flow table, so that the flood overflows it many times over
FLOOD_FLOWS = 200_000
MANAGER = "org.vc5.Health1.Manager"
VC5_PROCESSES = ("bgpd", "xdp-loader", "healthd")


def config(lab, n_backends, share):
    return dict(backends=lab.backends[:n_backends], top=f"multicast: {GROUP}\n" if share else "",
                bgp="  bfd: true\n", flows=FLOWS)


@pytest.fixture(scope="module")
def flowlab(root):
    lab = Lab.build(prefix=f"vc5f{os.getpid() % 10000}", backends=4)
    stack = Stack(lab, interval=0.5, config=config(lab, 2, share=False))
    lab.stack = stack
    load = None
    try:
        lab.start_backends()
        lab.start_router(bfd_ms=BFD_MS)
        stack.start()
        stack.wait_advertised(timeout=90)
        for b in (1, 2):
            stack.wait_ready("xdp-loader", b)
        load = LoadClient(lab)
        yield lab, stack, load
    finally:
        if load is not None:
            load.close()
            TABLES.append(("flow state across balancers (tests/e2e/test_flow_state.py)", load.table()))
        for b in (1, 2):
            for service in VC5_PROCESSES:
                try:
                    stack.send_signal(service, b, signal.SIGCONT)
                except (KeyError, ProcessLookupError):
                    pass
        lab.destroy()
        stack.stop()


def fib_nexthops(lab):
    out = lab.router.ns.run(f"ip route show {VIP4}", check=False).stdout
    return {w for line in out.splitlines() for w in [line.split("via ", 1)[-1].split()[0]]
            if "via " in line}


def route_only(lab, keep):
    """The router sends the VIP's traffic through balancer `keep` alone (BGP sessions of the others
    disabled in BIRD; enabled again for `keep`)."""
    want = {lab.balancers[keep - 1].ip}
    lab.birdc("enable", f"lb{keep}")                    # first the way in, then the others out:
    until(lambda: want <= fib_nexthops(lab), timeout=60, interval=0.1,     # never no route at all
          message=f"the router does not take lb{keep} back")
    for i in range(1, len(lab.balancers) + 1):
        if i != keep:
            lab.birdc("disable", f"lb{i}")
    until(lambda: fib_nexthops(lab) == want, timeout=60, interval=0.1,
          message=f"the router does not route {VIP4} through lb{keep} alone")


def route_all(lab):
    for i in range(1, len(lab.balancers) + 1):
        lab.birdc("enable", f"lb{i}")
    want = {lb.ip for lb in lab.balancers}
    until(lambda: fib_nexthops(lab) == want, timeout=60, interval=0.1,
          message=f"the router does not route {VIP4} through every balancer")


def in_table(stack, balancer):
    """{backend address: usable in every Maglev table of this balancer's data plane}."""
    seen = {}
    for svc in stack.prop(balancer, "xdp-loader", "Services") or []:
        for be in svc.backends:
            seen[be.address] = seen.get(be.address, True) and be.in_table
    return seen


def set_backends(lab, stack, n, share):
    """Configure the first `n` backends on both balancers (healthd reloaded) and wait until every
    one of them is in both data planes' Maglev tables."""
    stack.config = config(lab, n, share)
    for b in (1, 2):
        stack.write_config(b, stack.config_text(b))
        stack.send_signal("healthd", b, signal.SIGHUP)
    want = {be.ip for be in lab.backends[:n]}
    for b in (1, 2):
        until(lambda: {a for a, ok in in_table(stack, b).items() if ok} == want, timeout=30, interval=0.2,
              message=f"lb{b} does not balance over {sorted(want)}")


def broken(result):
    return [s for s in result["streams"] if s["reset"] or s["closed"] or s["stalled"]]


def move_streams_to_lb2_after_a_new_backend(lab, stack, load, n_before, share, port):
    """Streams opened through lb1 alone; backend n_before+1 added on both; lb1 withdrawn."""
    route_only(lab, 1)
    load.recycle("*", port=port)
    set_backends(lab, stack, n_before + 1, share)
    name = f"lb1 -> lb2, be{n_before + 1} added, " + ("shared" if share else "not shared")
    with load.event(name) as ev:
        route_only(lab, 2)
        time.sleep(OBSERVE_S)
    return ev


def test_without_sharing_moved_flows_are_reset_by_a_changed_backend_set(flowlab):
    lab, stack, load = flowlab
    ev = move_streams_to_lb2_after_a_new_backend(lab, stack, load, 2, share=False, port=21000)
    route_all(lab)
    # 20 streams, one backend in three new: none moved has probability (2/3)^20 < 0.001. A moved
    # stream's next ACK reaches a backend that does not know it, which answers RST.
    reset = [s for s in ev.result["streams"] if s["reset"]]
    print(f"\nwithout sharing: {len(reset)} of {len(ev.result['streams'])} streams reset")
    assert reset, ("no stream was reset when lb2 took over flows it never saw after a backend was "
                   f"added: the scenario does not show what sharing is for: {ev.result}")


def test_shared_flows_survive_a_balancer_change_and_a_new_backend(flowlab):
    lab, stack, load = flowlab
    stack.config = config(lab, 3, share=True)
    for b in (1, 2):
        stack.write_config(b, stack.config_text(b))
        stack.restart("xdp-loader", b)             # multicast is read at start; a restart keeps forwarding
        stack.wait_ready("xdp-loader", b)
    stack.wait_advertised(timeout=60)
    ev = move_streams_to_lb2_after_a_new_backend(lab, stack, load, 3, share=True, port=22000)
    route_all(lab)
    assert not broken(ev.result), f"streams broke although lb1 shared its flows with lb2: {broken(ev.result)}"
    # what an operator reads (GetCounters, /metrics vc5_dataplane_share_*_total)
    sent = stack.call(1, "xdp-loader", "org.vc5.XdpLoader1", "GetCounters").totals
    learned = stack.call(2, "xdp-loader", "org.vc5.XdpLoader1", "GetCounters").totals
    print(f"\nflow sharing: lb1 sent {sent.get('share_sent_flows')} flows in "
          f"{sent.get('share_sent_datagrams')} datagrams; lb2 learned {learned.get('share_learned')}, "
          f"{learned.get('share_malformed')} malformed")
    assert sent.get("share_sent_flows", 0) >= 20 and learned.get("share_learned", 0) >= 20, (sent, learned)
    assert learned.get("share_malformed") == 0, learned


def udp_flood_frames(lab, n):
    """n Ethernet frames from the client to VIP4:5353/udp, each a 4-tuple of its own (sources in the
    client's /24, which the router forwards; answers to them are lost there, which is fine)."""
    client_mac = json.loads(lab.client.ns.run("ip -j link show eth0").stdout)[0]["address"]
    router_mac = json.loads(lab.router.ns.run("ip -j link show cli0").stdout)[0]["address"]
    eth = bytes.fromhex(router_mac.replace(":", "") + client_mac.replace(":", "") + "0800")
    dst = bytes(map(int, VIP4.split(".")))
    net = bytes(map(int, lab.client.ip.split(".")[:3]))
    payload = b"\x00" * 18
    frames = []
    for i in range(n):
        src = net + bytes([100 + (i // 60000)])
        hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), i & 0xffff, 0, 64,
                                    17, 0, src, dst))
        s = sum(struct.unpack("!10H", hdr))
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        hdr[10:12] = struct.pack("!H", ~s & 0xffff)
        udp = struct.pack("!HHHH", 1024 + i % 60000, 5353, 8 + len(payload), 0)
        frames.append(eth + bytes(hdr) + udp + payload)
    return frames


def test_udp_flood_does_not_evict_tcp_flows(flowlab):
    lab, stack, load = flowlab
    route_all(lab)
    load.recycle("*", port=23000)
    be = lab.backends[1]
    path = os.path.join(lab.workdir, "udp-flood.frames")
    with open(path, "wb") as f:
        for frame in udp_flood_frames(lab, FLOOD_FLOWS):
            f.write(len(frame).to_bytes(2, "big") + frame)
    for b in (1, 2):
        matched = stack.call(b, "healthd", MANAGER, "Drain", "ss", "", be.ip)
        assert matched and matched[0] >= 1, matched
    try:
        until(lambda: all(in_table(stack, b).get(be.ip) is False for b in (1, 2)), timeout=10,
              interval=0.1, message="be2 is still in a Maglev table after Drain")
        # Streams on a drained backend live only in the flow tables: an evicted entry would be
        # re-balanced to another backend, which answers RST.
        with load.event(f"UDP flood ({FLOOD_FLOWS:,} flows), be2 drained") as ev:
            out = lab.client.ns.run([sys.executable, os.path.join(HERE, "blast.py"), "eth0", path,
                                     str(FLOOD_FLOWS), "30"], timeout=60).stdout
            blast = json.loads(out)
            time.sleep(OBSERVE_S)
        print(f"\nUDP flood: {blast['sent']:,} frames in {blast['seconds']} s ({blast['pps']:,} frames/s)")
        assert blast["sent"] >= FLOOD_FLOWS * 0.9, blast
        assert ev.before.get("be2"), f"no stream was on be2 to begin with: {ev.before}"
        assert not broken(ev.result), f"the UDP flood broke TCP streams: {broken(ev.result)}"
    finally:
        for b in (1, 2):
            stack.call(b, "healthd", MANAGER, "Undrain", "ss", "", be.ip)
    until(lambda: all(in_table(stack, b).get(be.ip) for b in (1, 2)), timeout=20, interval=0.2,
          message="be2 did not come back after Undrain")


def test_silent_balancer_leaves_ecmp_within_a_second_and_its_streams_continue(flowlab):
    lab, stack, load = flowlab
    route_all(lab)
    until(lambda: "Up" in lab.birdc("show", "bfd", "sessions"), timeout=30, interval=0.2,
          message=f"BIRD has no BFD session up: {lab.birdc('show', 'bfd', 'sessions')}")
    load.recycle("*", port=24000)
    lb2 = lab.balancers[1]
    pin = f"/sys/fs/bpf/{lab.prefix}-silence"
    with load.event("lb1 silent (dropped at its port, SIGSTOP)") as ev:
        for service in VC5_PROCESSES:
            stack.send_signal(service, 1, signal.SIGSTOP)
        t0 = time.monotonic()
        silence(lab.router.ns, "lb1p", pin)
        try:
            until(lambda: fib_nexthops(lab) == {lb2.ip}, timeout=15, interval=0.02,
                  message="the router still routes the VIP through the silent lb1")
            detected = time.monotonic() - t0
            time.sleep(OBSERVE_S)
        finally:
            unsilence(lab.router.ns, "lb1p")
            for service in VC5_PROCESSES:
                stack.send_signal(service, 1, signal.SIGCONT)
    print(f"\nsilent balancer left the router's ECMP group after {detected:.3f} s (BFD {BFD_MS} ms at BIRD)")
    assert detected < DETECT_LIMIT_S, f"lb1 left the ECMP group only after {detected:.2f} s"
    assert not broken(ev.result), f"streams of the silent balancer broke: {broken(ev.result)}"
    stack.wait_advertised(timeout=90)
