"""Flow sharing between two balancers over real multicast.

    ns A (eth0 10.97.0.1) --\
                             bridge (ns SW)
    ns B (eth0 10.97.0.2) --/

Two data planes (separate pin directories, this process) each run the
loader's FlowSharing (sockets made inside their namespace, joined on eth0;
A through the daemon's start_for_loader, which falls back to the first
configured interface as the namespaces have no route to the group).
A balances a flow (BPF_PROG_TEST_RUN: an ACK to the VIP); A's program notes
it, A's sender multicasts the vc5 record, B's receiver stores it in B's
`shared` table with B's OWN pair and cookie for that backend. B's service
has a backend more than A's (a change since the flow started), so B's
Maglev alone would pick another backend: B's program sends the flow's next
packet to A's choice anyway, with B's MACs."""

import contextlib
import ctypes as ct
import ipaddress
import os
import time
from types import SimpleNamespace

import pytest

from tests.bpf.frames import CLIENT4, backend_by_mac, backends, flow_key, tcp, vc5_choice
from tests.lib import netns
from tests.lib.testrun import XDP_TX, test_run
from tests.lib.wait import until

VIP = "192.0.2.240"
PORT = 80
GROUPS = ["239.255.97.5:9997", "[ff02::97:5]:9997"]
CLONE_NEWNET = 0x40000000
_libc = ct.CDLL("libc.so.6", use_errno=True)


@contextlib.contextmanager
def inside(ns):
    """Run the block's socket creation in `ns` (this thread only; sockets keep their namespace)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(ns.path, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ct.get_errno(), f"setns {ns.path}")
        yield
    finally:
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ct.get_errno(), "setns back to the test's namespace")
        os.close(home)
        os.close(target)


@pytest.fixture
def lan(root):
    made = []
    try:
        sw, a, b = (netns.Netns.create("wt-share") for _ in range(3))
        made += [sw, a, b]
        for ns, port, address in ((a, "pa", "10.97.0.1/24"), (b, "pb", "10.97.0.2/24")):
            netns.veth(ns, "eth0", sw, port)
            ns.run(["ip", "addr", "add", address, "dev", "eth0"])
            ns.run(["ip", "-6", "addr", "add", address.replace("10.97.0.", "fd97::"), "dev", "eth0", "nodad"])
        netns.bridge(sw, "br0", ["pa", "pb"])
        yield a, b
    finally:
        for ns in made:
            ns.delete()


@pytest.fixture
def planes(root):
    from vc5.xdp_loader.dataplane import DataPlane

    base = f"/sys/fs/bpf/wt-share-{os.getpid()}"
    out = []
    try:
        for name in ("a", "b"):
            dp = DataPlane(pin_dir=f"{base}/{name}", flows=4096, watchdog=False)
            dp.set_active(True)
            out.append(dp)
        yield out
    finally:
        for dp in out:
            dp.close(unpin=True)
        with contextlib.suppress(OSError):
            os.rmdir(base)


def sport_where_maglev_differs(a_bes, b_bes):
    for sport in range(50000, 51000):
        ca = vc5_choice([x.address for x in a_bes], CLIENT4, VIP, sport, PORT)
        cb = vc5_choice([x.address for x in b_bes], CLIENT4, VIP, sport, PORT)
        if ca != cb:
            return sport, ca, cb
    raise AssertionError("no 4-tuple moves when a backend is added")


@pytest.mark.parametrize("group", GROUPS)
def test_a_flow_balanced_on_a_is_followed_by_b(lan, planes, caplog, group):
    from vc5.xdp_loader.dataplane import ServiceSpec
    from vc5.xdp_loader.share import tables
    from vc5.xdp_loader.share import codec, service, sockets

    ns_a, ns_b = lan
    dp_a, dp_b = planes
    a_bes = backends("10.97.1.", 4)
    b_bes = backends("10.97.1.", 5)[::-1]           # one more backend, other order: other pairs
    dp_b.set_service(ServiceSpec("192.0.2.241", PORT, "tcp", backends=backends("10.97.2.", 3)))
    dp_a.set_service(ServiceSpec(VIP, PORT, "tcp", backends=a_bes))
    dp_b.set_service(ServiceSpec(VIP, PORT, "tcp", backends=b_bes))
    sport, on_a, maglev_b = sport_where_maglev_differs(a_bes, b_bes)

    sharing = []
    try:
        with inside(ns_a):          # the loader's own start-up path (no route to the group: eth0)
            cfg = SimpleNamespace(multicast=group, learn=0, interfaces=("eth0",))
            s = service.start_for_loader(SimpleNamespace(dp=dp_a, learning=None), cfg, fresh_maps=True)
            assert s is not None and s.interface == "eth0"
            sharing.append(s)
        with inside(ns_b):
            s = service.FlowSharing(dp_b, group, interface="eth0")
            s.start()
            sharing.append(s)
        share_a, share_b = sharing

        r = test_run(dp_a.xdp_fd, bytes(tcp(VIP, PORT, sport=sport, flags="A")))
        assert r.action == XDP_TX and backend_by_mac(r.data, a_bes) == on_a

        key = flow_key(CLIENT4, VIP, sport, PORT, 6)
        got = until(lambda: dp_b.maps["shared"].lookup(key), timeout=5,
                    message=f"B never learned the flow (A sent {share_a.stats()}, B got {share_b.stats()})")
        b_key = next(k for k in dp_b.services() if k.vip == VIP)
        pair, cookie = tables._pair_of(dp_b, b_key, on_a)
        assert (got.pair, got.cookie) == (pair, cookie)
        assert abs(got.time - time.clock_gettime_ns(time.CLOCK_MONOTONIC)) < 5e9
        assert share_a.stats()["sent"]["flows"] == 1 and share_b.stats()["received"]["ok"] == 1

        r = test_run(dp_b.xdp_fd, bytes(tcp(VIP, PORT, sport=sport, flags="PA")))
        assert r.action == XDP_TX
        assert backend_by_mac(r.data, b_bes) == on_a != maglev_b
        # a record B cannot parse (vc5 FLOW_VERSION 1) is counted, the peer named, nothing stored
        ip = ipaddress.ip_address
        bad = bytearray(codec.encode_record(
            codec.SharedFlow(ip(CLIENT4), ip(VIP), sport + 1, PORT, codec.TCP, ip(on_a))))
        bad[-1] = 1
        with inside(ns_a):
            raw = sockets.sender_socket(*sockets.parse_group(group), interface="eth0")
        with raw:
            raw.send(bytes([116]) + bytes(bad))
        until(lambda: share_b.stats()["received"].get(codec.VERSION) == 1, timeout=5)
        # IPv6: A's link-local source, or fd97::1 while the link-local address is tentative
        peers_a = ("fe80::", "fd97::1") if group.startswith("[") else ("10.97.0.1",)
        assert any(f"malformed records from {p}" in r.getMessage() for r in caplog.records for p in peers_a)
        assert dp_b.maps["shared"].lookup(flow_key(CLIENT4, VIP, sport + 1, PORT, 6)) is None

        # a SYN on the same 4-tuple opens a new connection: B's own Maglev choice
        r = test_run(dp_b.xdp_fd, bytes(tcp(VIP, PORT, sport=sport, flags="S")))
        assert backend_by_mac(r.data, b_bes) == maglev_b
    finally:
        for s in sharing:
            s.stop()
