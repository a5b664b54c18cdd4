"""Flow sharing, data plane side (bpf/vc5_share.h): a stored or refreshed flow
is noted in share_queue with our pair and cookie; a `shared` entry (filled by
the receiver with OUR pair) carries a flow that misses locally to the backend
another balancer chose, rewritten with our MACs; a SYN never uses it; with
sharing off neither hook does anything."""

import ipaddress
import time

import pytest
from scapy.layers.l2 import Ether

from tests.lib.testrun import XDP_TX, test_run
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import ServiceSpec
from vc5.xdp_loader.share import codec, tables

from .frames import (CLIENT4, CLIENT6, LB_MAC, backend_by_mac, backends, dsr_expected, flow_entry, flow_key,
                     tcp, udp, vc5_choice)

CASES = [("192.0.2.230", "10.30.0."), ("2001:db8:230::1", "fd00:30::")]
OTHER_LB_MAC = bytes.fromhex("0200000000aa")      # the balancer that sent the record


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def client(vip):
    return CLIENT6 if ":" in vip else CLIENT4


@pytest.fixture
def share(clean):
    """The shared data plane with sharing on, the queue and `shared` empty; off again after."""
    tables.pop_noted(clean)
    for k in clean.maps["shared"].keys():
        clean.maps["shared"].delete(k)
    tables.set_sharing(clean, True)
    yield clean
    tables.set_sharing(clean, False)
    tables.pop_noted(clean)
    for k in clean.maps["shared"].keys():
        clean.maps["shared"].delete(k)


def record_for(vip, sport, backend, dport=80, proto=codec.TCP):
    """A flow as another balancer sends it (its own MACs and source address)."""
    return codec.SharedFlow(ipaddress.ip_address(client(vip)), ipaddress.ip_address(vip), sport, dport, proto,
                            ipaddress.ip_address(backend), time_ns=12345, h_dest=bytes(6),
                            h_source=OTHER_LB_MAC, vlan=10)


def not_chosen(bes, vip, sport):
    choice = vc5_choice([b.address for b in bes], client(vip), vip, sport, 80)
    return next(b for b in bes if str(ipaddress.ip_address(b.address)) != choice)


@pytest.mark.parametrize("vip,prefix", CASES)
def test_a_stored_flow_is_noted_with_our_pair_and_cookie(share, vip, prefix):
    bes = backends(prefix, 3)
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=41000, flags="S")))
    assert tables.pop_noted(share) == []                      # a SYN stores nothing, notes nothing
    r = test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=41000, flags="A")))
    chosen = backend_by_mac(r.data, bes)
    noted = tables.pop_noted(share)
    assert len(noted) == 1
    e = noted[0]
    assert bytes(e.key) == bytes(flow_key(client(vip), vip, 41000, 80, codec.TCP))
    key = share.services()[0]
    assert e.flow.pair == share.pair_of(key, chosen)
    assert e.flow.cookie == share.maps["backends"].lookup(layout.U32(e.flow.pair)).cookie
    assert abs(e.flow.time - now_ns()) < 5e9
    f = tables.outgoing(share, e, now_ns())
    assert (str(f.backend), f.client_port, f.port, f.protocol) == (chosen, 41000, 80, codec.TCP)
    test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=41000, flags="PA")))
    assert tables.pop_noted(share) == []                      # a hit on a fresh entry is not noted


def test_udp_flows_are_noted(share):
    vip = "192.0.2.231"
    share.set_service(ServiceSpec(vip, 53, "udp", backends=backends("10.31.0.", 2)))
    test_run(share.xdp_fd, bytes(udp(vip, 53, sport=42000)))
    noted = tables.pop_noted(share)
    assert [(n.key.proto, n.flow.cookie != 0) for n in noted] == [(codec.UDP, True)]


def test_a_refresh_is_noted_once_per_refresh_period(share, one_cpu):
    vip = "192.0.2.232"
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.32.0.", 2)))
    test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=43000)))
    assert len(tables.pop_noted(share)) == 1
    name, k = flow_entry(CLIENT4, vip, 43000, 80, codec.TCP)    # one entry for every CPU (layout 3)
    v = share.maps[name].lookup(k)
    v.time = now_ns() - 61 * 10**9                              # older than the 60 s refresh period
    share.maps[name].update(k, v)
    for _ in range(5):
        test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=43000, flags="PA")))
    assert len(tables.pop_noted(share)) == 1


def test_nothing_is_noted_with_sharing_off(share):
    tables.set_sharing(share, False)
    vip = "192.0.2.233"
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.33.0.", 2)))
    test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=44000)))
    assert tables.pop_noted(share) == []


@pytest.mark.parametrize("vip,prefix", CASES)
def test_a_shared_entry_carries_a_local_miss_to_our_pair(share, one_cpu, vip, prefix):
    bes = backends(prefix, 4)
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    target = not_chosen(bes, vip, 45000)
    assert tables.learn(share, record_for(vip, 45000, target.address), now_ns()) == tables.LEARNED
    pkt = tcp(vip, 80, sport=45000, flags="PA")
    r = test_run(share.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX, r.verdict
    assert r.data == dsr_expected(pkt, target)                # our MAC (LB_MAC), the shared backend
    assert Ether(r.data).src == LB_MAC
    name, k = flow_entry(client(vip), vip, 45000, 80, codec.TCP)
    local = share.maps[name].lookup(k)
    assert local.pair == share.pair_of(share.services()[0], str(ipaddress.ip_address(target.address)))
    assert tables.pop_noted(share) == []                      # a shared flow is not sent back at once


def test_a_syn_never_uses_a_shared_entry(share):
    vip = "192.0.2.234"
    bes = backends("10.34.0.", 4)
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    target = not_chosen(bes, vip, 46000)
    tables.learn(share, record_for(vip, 46000, target.address), now_ns())
    r = test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=46000, flags="S")))
    assert backend_by_mac(r.data, bes) == vc5_choice([b.address for b in bes], CLIENT4, vip, 46000, 80)


def test_shared_entries_are_ignored_when_off_or_expired(share):
    vip = "192.0.2.235"
    bes = backends("10.35.0.", 4)
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    maglev = vc5_choice([b.address for b in bes], CLIENT4, vip, 47000, 80)
    target = not_chosen(bes, vip, 47000)
    tables.learn(share, record_for(vip, 47000, target.address), now_ns() - 121 * 10**9)
    r = test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=47000, flags="PA")))
    assert backend_by_mac(r.data, bes) == maglev               # older than the 120 s TTL
    tables.learn(share, record_for(vip, 47001, target.address), now_ns())
    tables.set_sharing(share, False)
    r = test_run(share.xdp_fd, bytes(tcp(vip, 80, sport=47001, flags="PA")))
    assert backend_by_mac(r.data, bes) == vc5_choice([b.address for b in bes], CLIENT4, vip, 47001, 80)


def test_records_for_unknown_services_or_backends_are_refused(share):
    vip = "192.0.2.236"
    share.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.36.0.", 2)))
    assert tables.learn(share, record_for("192.0.2.237", 1, "10.36.0.1"), now_ns()) == tables.NO_SERVICE
    assert tables.learn(share, record_for(vip, 1, "10.36.0.99"), now_ns()) == tables.NO_BACKEND
    assert share.maps["shared"].keys() == []
