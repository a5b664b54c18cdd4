"""Flow tables (one value per flow, shared by every CPU): SYN floods cannot fill them, established flows keep
their backend while it is drained/unhealthy but not once it is removed, UDP
is tracked, entries expire and refresh as in vc5 (120 s / 60 s)."""

import ctypes
import time

import pytest

from tests.lib.testrun import XDP_TX, test_run
from vc5.xdp_loader.dataplane import BackendSpec, ServiceSpec

from .frames import CLIENT4, CLIENT6, Delta, backend_by_mac, backends, flow_entry, tcp, udp, vc5_choice

CASES = [("192.0.2.200", "10.20.0."), ("2001:db8:200::1", "fd00:20::")]
TCP, UDP = 6, 17


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def client(vip):
    return CLIENT6 if ":" in vip else CLIENT4


def send(dp, pkt, bes):
    r = test_run(dp.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX, r.verdict
    return backend_by_mac(r.data, bes)


def entry(dp, cpu, vip, sport, dport=80, proto=TCP):
    """The flow's entry (the same for every CPU), or None."""
    name, k = flow_entry(client(vip), vip, sport, dport, proto)
    return dp.maps[name].lookup(k)


def age(dp, vip, sport, seconds, dport=80, proto=TCP):
    """Move the entry's timestamp `seconds` into the past (bit 0, the era parity it was
    counted in for `current`, kept)."""
    name, k = flow_entry(client(vip), vip, sport, dport, proto)
    v = dp.maps[name].lookup(k)
    v.time = ((now_ns() - int(seconds * 1e9)) & ~1) | (v.time & 1)
    dp.maps[name].update(k, v)


def drained(bes, address):
    return [BackendSpec(b.address, b.mac, b.src_mac, in_table=(b.address != address)) for b in bes]


@pytest.mark.parametrize("vip,prefix", CASES)
def test_syn_does_not_create_a_flow_first_ack_does(clean, one_cpu, vip, prefix):
    bes = backends(prefix, 4)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    d = Delta(clean)
    for flags in ("S", "R", "F", "FA", "RA", "SA"):
        send(clean, tcp(vip, 80, sport=33000, flags=flags), bes)
        assert entry(clean, one_cpu, vip, 33000) is None, flags
    assert d.global_()["flows"] == 0
    chosen = send(clean, tcp(vip, 80, sport=33000, flags="A"), bes)
    e = entry(clean, one_cpu, vip, 33000)
    assert e is not None and abs(e.time - now_ns()) < 5e9
    assert e.cookie != 0
    assert d.global_()["flows"] == 1
    send(clean, tcp(vip, 80, sport=33000, flags="PA"), bes)
    assert d.global_()["flows"] == 1                    # a hit is not a new flow
    assert chosen == vc5_choice([b.address for b in bes], client(vip), vip, 33000, 80)


def test_syn_flood_leaves_the_table_empty(clean, one_cpu):
    vip = "192.0.2.201"
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("10.21.0.", 2)))
    for sport in range(1024, 1024 + 500):
        test_run(clean.xdp_fd, bytes(tcp(vip, 80, sport=sport, flags="S")))
    assert clean.maps["flows"].keys() == [] and clean.maps["flows_udp"].keys() == []


@pytest.mark.parametrize("vip,prefix", CASES)
def test_established_flow_stays_on_a_drained_backend(clean, one_cpu, vip, prefix):
    bes = backends(prefix, 5)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    first = send(clean, tcp(vip, 80, sport=34000, flags="A"), bes)
    # the backend fails its checks (or is disabled): out of the Maglev table, still in the service
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=drained(bes, first)))
    for _ in range(3):
        assert send(clean, tcp(vip, 80, sport=34000, flags="PA"), bes) == first
    # new flows never go there
    usable = [b.address for b in bes if b.address != first]
    for sport in range(35000, 35400, 7):
        got = send(clean, tcp(vip, 80, sport=sport, flags="S"), bes)
        assert got != first and got == vc5_choice(usable, client(vip), vip, sport, 80)


@pytest.mark.parametrize("vip,prefix", CASES)
def test_flow_of_a_removed_backend_is_reselected(clean, one_cpu, vip, prefix):
    bes = backends(prefix, 5)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    first = send(clean, tcp(vip, 80, sport=36000, flags="A"), bes)
    old = entry(clean, one_cpu, vip, 36000)
    rest = [b for b in bes if b.address != first]
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=rest))
    d = Delta(clean)
    got = send(clean, tcp(vip, 80, sport=36000, flags="PA"), bes)
    assert got != first
    assert got == vc5_choice([b.address for b in rest], client(vip), vip, 36000, 80)
    new = entry(clean, one_cpu, vip, 36000)
    assert (new.pair, new.cookie) != (old.pair, old.cookie)
    assert d.global_()["flows"] == 1 and d.global_()["errors"] == 0
    # and it stays there, even if the removed backend comes back (new cookie)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    assert send(clean, tcp(vip, 80, sport=36000, flags="PA"), bes) == got


def test_flows_keep_their_backend_when_one_is_added(clean, one_cpu):
    vip = "192.0.2.202"
    bes = backends("10.22.0.", 6)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes[:3]))
    before = {s: send(clean, tcp(vip, 80, sport=s, flags="A"), bes) for s in range(37000, 37300, 3)}
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    moved = 0
    for s, b in before.items():
        assert send(clean, tcp(vip, 80, sport=s, flags="PA"), bes) == b
        moved += vc5_choice([x.address for x in bes], CLIENT4, vip, s, 80) != b
    assert moved > 0           # the table did change for some of them


@pytest.mark.parametrize("vip,prefix", CASES)
def test_udp_flows_are_tracked(clean, one_cpu, vip, prefix):
    bes = backends(prefix, 4)
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=bes))
    d = Delta(clean)
    first = send(clean, udp(vip, 53, sport=38000), bes)
    assert entry(clean, one_cpu, vip, 38000, 53, UDP) is not None
    assert d.global_()["flows"] == 1
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=drained(bes, first)))
    assert send(clean, udp(vip, 53, sport=38000), bes) == first      # vc5 would re-hash (its bug)
    assert d.global_()["flows"] == 1
    assert entry(clean, one_cpu, vip, 38000, 53, TCP) is None         # TCP and UDP tables do not mix


@pytest.mark.parametrize("vip,prefix", CASES)
def test_flow_expires_after_120_s(clean, one_cpu, vip, prefix):
    bes = backends(prefix, 4)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    first = send(clean, tcp(vip, 80, sport=39000, flags="A"), bes)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=drained(bes, first)))
    age(clean, vip, 39000, 119)
    assert send(clean, tcp(vip, 80, sport=39000, flags="A"), bes) == first   # still valid
    age(clean, vip, 39000, 121)
    d = Delta(clean)
    assert send(clean, tcp(vip, 80, sport=39000, flags="A"), bes) != first   # expired: re-selected
    assert d.global_()["flows"] == 1
    assert abs(entry(clean, one_cpu, vip, 39000).time - now_ns()) < 5e9


def test_flow_is_refreshed_when_older_than_60_s(clean, one_cpu):
    vip = "192.0.2.203"
    bes = backends("10.23.0.", 3)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    send(clean, tcp(vip, 80, sport=40000, flags="A"), bes)
    age(clean, vip, 40000, 30)
    stamp = entry(clean, one_cpu, vip, 40000).time
    send(clean, tcp(vip, 80, sport=40000, flags="A"), bes)
    assert entry(clean, one_cpu, vip, 40000).time == stamp          # younger than 60 s: untouched
    age(clean, vip, 40000, 61)
    send(clean, tcp(vip, 80, sport=40000, flags="A"), bes)
    assert abs(entry(clean, one_cpu, vip, 40000).time - now_ns()) < 5e9


def test_syn_never_follows_an_entry_of_an_earlier_connection(clean, one_cpu):
    vip = "192.0.2.204"
    bes = backends("10.24.0.", 4)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    first = send(clean, tcp(vip, 80, sport=41000, flags="A"), bes)
    assert send(clean, tcp(vip, 80, sport=41000, flags="S"), bes) == first   # same table: same choice
    send(clean, tcp(vip, 80, sport=41000, flags="A"), bes)                    # entry back
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=drained(bes, first)))
    assert send(clean, tcp(vip, 80, sport=41000, flags="A"), bes) == first   # established: pinned
    # A re-used source port a second later: the drained backend gets no new connection.
    assert send(clean, tcp(vip, 80, sport=41000, flags="S"), bes) != first
    assert entry(clean, one_cpu, vip, 41000) is None                          # and a SYN stores nothing


def test_one_entry_per_flow_for_every_cpu(clean, one_cpu):
    vip = "192.0.2.205"
    bes = backends("10.25.0.", 2)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    send(clean, tcp(vip, 80, sport=42000, flags="A"), bes)
    name, k = flow_entry(CLIENT4, vip, 42000, 80, TCP)
    assert name == "flows" and ctypes.sizeof(k) == 12        # compact IPv4 key, TCP table
    v = clean.maps["flows"].lookup(k)
    assert not clean.maps["flows"].percpu and v.time != 0 and v.cookie != 0


def test_backend_mac_change_keeps_its_flows(clean, one_cpu):
    vip = "192.0.2.206"
    bes = backends("10.26.0.", 3)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    first = send(clean, tcp(vip, 80, sport=43000, flags="A"), bes)
    old = entry(clean, one_cpu, vip, 43000)
    moved = [BackendSpec(b.address, "02:00:00:00:99:99" if b.address == first else b.mac, b.src_mac)
             for b in bes]
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=moved))
    r = test_run(clean.xdp_fd, bytes(tcp(vip, 80, sport=43000, flags="PA")))
    assert backend_by_mac(r.data, moved) == first
    new = entry(clean, one_cpu, vip, 43000)
    assert (new.pair, new.cookie) == (old.pair, old.cookie)
