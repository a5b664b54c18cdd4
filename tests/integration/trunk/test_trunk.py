"""A trunk: the real vc5 XDP data plane (generic mode) on a balancer's tagged port.

    client (VLAN 10 access) --\
                               switch ==trunk (802.1Q)== balancer (vc5 XDP)
    backend (VLAN 20 access) -/

This kernel has no 802.1Q module and no bridge VLAN filtering, so the switch
is a plain bridge whose access ports do the VLAN work in tc (cls_bpf, direct
action): ingress pushes the port's tag, egress passes only frames of the
port's VLAN and pops the tag. The trunk port carries the tags as they are;
tx VLAN offload is off on its switch end, so the tag is in the frame's bytes
when the balancer's generic XDP sees it. (Not bpf_redirect between the
ports: generic XDP skips packets that a tc program redirected.) tc programs
on the trunk count the IPv4 frames by VID in each direction.

The client sends UDP to the VIP on VLAN 10; the backend (VIP on lo) is on
VLAN 20. vc5 must rewrite the VID 10 -> 20, the MACs to (balancer -> backend)
and send the frame back out of the trunk (XDP_TX); the bridge delivers it to
the VLAN 20 access port only.
"""

import json
import os
import shutil
import sys
import time
import uuid

import pytest

from tests.lib import netns
from tests.lib.require import require
from vc5.xdp_loader.dataplane import BackendKey

VIP = "192.0.2.80"
PORT = 5353
CLIENT = "10.10.0.2"
GATEWAY = "10.10.0.1"             # the client's next hop: the balancer's MAC, statically
BACKEND = "10.20.0.5"
LB_MAC = "02:00:00:13:00:01"      # the balancer's trunk port
SW_TRUNK_MAC = "02:00:00:13:00:02"
CLIENT_MAC = "02:00:00:13:10:02"
BACKEND_MAC = "02:00:00:13:20:05"
PIN_ROOT = "/sys/fs/bpf"
HERE = os.path.dirname(os.path.abspath(__file__))

SWITCH_C = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>

BPF_ARRAY(trunk_vids, u64, 8192);   /* IPv4 frames: [VID] to the balancer, [4096 + VID] from it */

static __always_inline int count(struct __sk_buff *skb, u32 base)
{
    if (skb->protocol != bpf_htons(ETH_P_IP))       /* not the hosts' own IPv6 ND and MLD */
        return TC_ACT_OK;
    u32 slot = base + (skb->vlan_tci & 0x0fff);
    u64 *n = trunk_vids.lookup(&slot);
    if (n)
        __sync_fetch_and_add(n, 1);
    return TC_ACT_OK;
}

int trunk_out(struct __sk_buff *skb) { return count(skb, 0); }
int trunk_in(struct __sk_buff *skb) { return count(skb, 4096); }

#define ACCESS(VID)                                                           \
int access##VID##_in(struct __sk_buff *skb)                                   \
{                                                                             \
    if (skb->vlan_tci & 0x0fff)                                               \
        return TC_ACT_SHOT;                                                   \
    if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), VID))                  \
        return TC_ACT_SHOT;                                                   \
    return TC_ACT_OK;                                                         \
}                                                                             \
int access##VID##_out(struct __sk_buff *skb)                                  \
{                                                                             \
    if ((skb->vlan_tci & 0x0fff) != VID || bpf_skb_vlan_pop(skb))             \
        return TC_ACT_SHOT;                                                   \
    return TC_ACT_OK;                                                         \
}

ACCESS(10)
ACCESS(20)
"""


def ifindex(ns, dev):
    return json.loads(ns.run(["ip", "-j", "link", "show", "dev", dev]).stdout)[0]["ifindex"]


def tc_attach(ns, dev, direction, fn, pin):
    """Attach bcc function `fn` to `dev`'s ingress or egress in `ns` (pinned for tc, then unpinned)."""
    from vc5.xdp_loader import program
    program.obj_pin(fn.fd, pin)
    try:
        ns.run(f"tc qdisc replace dev {dev} clsact && "
               f"tc filter add dev {dev} {direction} bpf direct-action object-pinned {pin}")
    finally:
        os.unlink(pin)


@pytest.fixture
def trunk(root):
    require("bcc", "python3-bpfcc")
    if not os.path.ismount(PIN_ROOT):
        pytest.fail(f"no bpffs mounted at {PIN_ROOT}: mount it (make bpffs)", pytrace=False)
    from bcc import BPF

    from vc5.xdp_loader.dataplane import BackendSpec, DataPlane, ServiceSpec

    pin_base = f"{PIN_ROOT}/vc5-trunk-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(pin_base)
    made, plane = [], None
    try:
        for _ in range(4):
            made.append(netns.Netns.create("vc5trk"))
        sw, lb, client, backend = made
        netns.veth(sw, "trunk", lb, "trunk", mac_a=SW_TRUNK_MAC, mac_b=LB_MAC)
        netns.veth(sw, "acc10", client, "eth0", mac_b=CLIENT_MAC)
        netns.veth(sw, "acc20", backend, "eth0", mac_b=BACKEND_MAC)
        sw.run("ethtool -K trunk txvlan off")

        # the switch
        netns.bridge(sw, "br0", ("trunk", "acc10", "acc20"))
        switch = BPF(text=SWITCH_C.encode())
        for dev, direction, fn in (("trunk", "ingress", "trunk_in"), ("trunk", "egress", "trunk_out"),
                                   ("acc10", "ingress", "access10_in"), ("acc10", "egress", "access10_out"),
                                   ("acc20", "ingress", "access20_in"), ("acc20", "egress", "access20_out")):
            tc_attach(sw, dev, direction, switch.load_func(fn.encode(), BPF.SCHED_CLS), f"{pin_base}/{fn}")

        # the client: VLAN 10, the VIP routed to the balancer (a static neighbour: no ARP across vc5)
        client.run(f"ip addr add {CLIENT}/24 dev eth0 && ip route add {VIP}/32 via {GATEWAY} && "
                   f"ip neigh replace {GATEWAY} lladdr {LB_MAC} dev eth0 nud permanent && "
                   "ethtool -K eth0 tx off")
        # the backend: VLAN 20, VIP on lo (DSR)
        backend.run(f"ip addr add {BACKEND}/24 dev eth0 && ip addr add {VIP}/32 dev lo")
        backend.sysctl("net.ipv4.conf.all.rp_filter", 0)
        backend.sysctl("net.ipv4.conf.eth0.rp_filter", 0)

        # the balancer: vc5's data plane, generic XDP on the trunk
        plane = DataPlane(pin_dir=f"{pin_base}/vc5", flows=4096, watchdog=False)
        plane.set_active(True)
        plane.set_service(ServiceSpec(VIP, PORT, "udp", backends=[
            BackendSpec(BACKEND, BACKEND_MAC, LB_MAC, vlan=20)]))
        from vc5.xdp_loader import program
        program.obj_pin(plane.xdp_fd, f"{pin_base}/xdp_main")
        try:
            lb.run(f"ip link set dev trunk xdpgeneric pinned {pin_base}/xdp_main")
        finally:
            os.unlink(f"{pin_base}/xdp_main")
        yield {"switch": switch, "client": client, "backend": backend, "lb": lb, "plane": plane}
    finally:
        for ns in reversed(made):
            ns.delete()
        if plane is not None:
            plane.close(unpin=True)
        shutil.rmtree(pin_base, ignore_errors=True)


def vid_counts(switch):
    """Frames on the trunk by (direction, VID), seen from the switch."""
    table = switch.get_table(b"trunk_vids")
    return {(way, vid): table[table.Key(base + vid)].value
            for way, base in (("to_lb", 0), ("from_lb", 4096)) for vid in (10, 20)}


def test_vlan_10_client_reaches_vlan_20_backend_through_the_trunk(trunk):
    backend, client = trunk["backend"], trunk["client"]
    rx = backend.popen([sys.executable, os.path.join(HERE, "receiver.py"), "eth0", VIP, str(PORT), "10"],
                       text=True)
    try:
        assert rx.stdout.readline().strip() == "ready"
        before = vid_counts(trunk["switch"])
        for _ in range(5):
            client.run([sys.executable, "-c",
                        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                        f"s.bind(('{CLIENT}', 41000)); s.sendto(b'over the trunk', ('{VIP}', {PORT}))"])
            time.sleep(0.2)
            if rx.poll() is not None:
                break
        out, _ = rx.communicate(timeout=15)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    got = json.loads(out.strip().splitlines()[-1])
    assert got["payload"] == "over the trunk"
    frame = got["frames"][0]
    assert (frame["src_mac"], frame["dst_mac"]) == (LB_MAC, BACKEND_MAC), frame
    assert (frame["src"], frame["dst"]) == (CLIENT, VIP), frame
    after = vid_counts(trunk["switch"])
    # the client's frames went to the balancer tagged 10 and came back (XDP_TX) tagged 20, never 10
    delta = {k: after[k] - before[k] for k in after}
    assert delta[("to_lb", 10)] >= 1 and delta[("to_lb", 20)] == 0, delta
    assert delta[("from_lb", 20)] >= 1 and delta[("from_lb", 10)] == 0, delta
    counters = trunk["plane"].counters()
    (key,) = counters["services"]
    assert counters["backends"][BackendKey(key, BACKEND)]["packets"] >= 1, counters
