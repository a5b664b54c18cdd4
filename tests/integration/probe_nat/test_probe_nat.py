"""The health-check probe path end to end: the real loader (XDP in generic mode on veths), a
stand-in healthd publishing Services on a private bus, backends with the VIP on lo.

A probe to a (VIP, backend) probe address from the balancer must reach the backend ADDRESSED
TO THE VIP, from the balancer's own address on that subnet (the backend's server sees
local = VIP, peer = the balancer), and the answer must come back to the prober. A backend
without the VIP on lo (the usual DSR mistake) must fail, though it answers on its own address.

Reuses the DSR lab of tests/integration/xdp (lab.Lab without client and router); the backends
run backend.py here (it reports how each connection reached it).
"""

import ipaddress
import json
import os
import shutil
import signal

import pytest

from tests.integration.xdp import lab as L
from tests.integration.xdp.bus import BusThread
from tests.lib.privatebus import private_bus
from tests.lib.wait import until

HERE = os.path.dirname(os.path.abspath(__file__))
NO_VIP = "b3"                                   # this backend lacks the VIPs on lo
GOOD = [n for n in L.BACKENDS if n != NO_VIP]
PAIRS = 2 * len(L.BACKENDS)                     # (VIP, backend) + (VIP6, backend6)


def probe_addresses(b):
    return {(v, be): a for v, be, a in b.get("ProbeAddresses")}


@pytest.fixture(scope="module")
def lab(root):
    tmp = L.tmpdir()
    with private_bus():
        b = BusThread()
        lab = L.Lab(tmp, with_traffic=False)
        try:
            lab.backends[NO_VIP].run(f"ip addr del {L.VIP}/32 dev lo && ip addr del {L.VIP6}/128 dev lo")
            for name, ns in lab.backends.items():
                p = ns.popen([L.PY, os.path.join(HERE, "backend.py"), name, str(L.HTTP_PORT)], text=True)
                lab.procs.append(p)
                assert p.stdout.readline().strip() == "ready", f"backend {name} did not start"
            b.publish(L.health_services())
            lab.start_loader()
            L.wait_loader_ready(b, lab)
            until(lambda: len(probe_addresses(b)) == PAIRS, timeout=20,
                  message="ProbeAddresses never covered every (VIP, backend) pair")
            lab.bus = b
            yield lab
        finally:
            lab.close()
            b.close()
            shutil.rmtree(tmp, ignore_errors=True)


def probe(lab, *jobs):
    env = lab.env()
    out = lab.lb.run([L.PY, os.path.join(HERE, "probe_client.py"), json.dumps(jobs)], env=env, timeout=60)
    return json.loads(out.stdout)


def nat_of(lab, name, v6=False):
    vip, backend = (L.VIP6, L.BACKENDS6[name]) if v6 else (L.VIP, L.BACKENDS[name])
    return probe_addresses(lab.bus)[(vip, backend)]


def test_probe_addresses_follow_vcs_scheme(lab):
    addrs = probe_addresses(lab.bus)
    assert set(addrs) == ({(L.VIP, a) for a in L.BACKENDS.values()}
                          | {(L.VIP6, a) for a in L.BACKENDS6.values()})
    assert len(set(addrs.values())) == PAIRS           # one per pair; the VIP's 3 services share it
    for (vip, _), a in addrs.items():
        if ":" in vip:
            assert ipaddress.ip_address(a) in ipaddress.ip_network("fefe::/96")
        else:
            assert ipaddress.ip_address(a) in ipaddress.ip_network("255.0.0.0/8")
    routes = lab.lb.run("ip route show 255.0.0.0/8; ip -6 route show fefe::/96").stdout
    assert "via 255.255.255.254 dev vc5nat" in routes and "via fefe::ffff:fffe dev vc5nat" in routes
    peer = json.loads(lab.lb.run("ip -j link show dev vc5nat_").stdout)[0]
    assert peer["xdp"]["mode"] == 2                    # generic (XDP_ATTACHED_SKB)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_http_probe_reaches_the_vip_on_each_backend(lab, v6):
    vip, balancer = (L.VIP6, L.BALANCER6) if v6 else (L.VIP, L.BALANCER)
    host = f"[{vip}]" if v6 else vip
    results = probe(lab, *[["http", nat_of(lab, n, v6), L.HTTP_PORT, host] for n in GOOD])
    for name, r in zip(GOOD, results):
        assert r["ok"], (name, r)
        # the backend's own view: addressed to the VIP, from our address on its subnet
        assert r["body"] == {"name": name, "local": vip, "peer": balancer, "host": host}


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_udp_probe_reaches_the_vip_and_the_answer_comes_back(lab, v6):
    vip, balancer = (L.VIP6, L.BALANCER6) if v6 else (L.VIP, L.BALANCER)
    results = probe(lab, *[["udp", nat_of(lab, n, v6), L.HTTP_PORT, None] for n in GOOD])
    for name, r in zip(GOOD, results):
        assert r["ok"], (name, r)
        assert r["body"] == {"name": name, "local": vip, "peer": balancer}


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_syn_probe_gets_syn_ack(lab, v6):
    results = probe(lab, *[["syn", nat_of(lab, n, v6), L.HTTP_PORT, None] for n in GOOD])
    assert all(r["ok"] for r in results), results


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_backend_without_the_vip_on_lo_fails_but_answers_on_its_own_address(lab, v6):
    own = L.BACKENDS6[NO_VIP] if v6 else L.BACKENDS[NO_VIP]
    nat = nat_of(lab, NO_VIP, v6)
    via_vip, syn, direct = probe(lab, ["http", nat, L.HTTP_PORT, None], ["syn", nat, L.HTTP_PORT, None],
                                 ["http", own, L.HTTP_PORT, None])
    assert not via_vip["ok"] and not syn["ok"], (via_vip, syn)
    assert direct["ok"] and direct["body"]["local"] == own


def test_removed_backend_loses_its_probe_address(lab):
    gone = L.BACKENDS["b2"]
    old = nat_of(lab, "b2")
    services = tuple(s.__class__(s.vip, s.port, s.protocol, name=s.name, up=True,
                                 backends=tuple(x for x in s.backends if x.address != gone))
                     for s in L.health_services())
    lab.bus.publish(services)
    until(lambda: (L.VIP, gone) not in probe_addresses(lab.bus), timeout=10,
          message="the removed backend kept its probe address")
    (r,) = probe(lab, ["http", old, L.HTTP_PORT, None])
    assert not r["ok"]                                 # no entry: xdp_nat drops it
    assert nat_of(lab, "b1") and len(probe_addresses(lab.bus)) == PAIRS - 1
    lab.bus.publish(L.health_services())
    until(lambda: len(probe_addresses(lab.bus)) == PAIRS, timeout=10, message="b2 did not come back")


def test_in_place_restart_keeps_the_path_and_addresses_then_stop_tears_it_down(lab):
    before = probe_addresses(lab.bus)
    lab.kill_loader(signal.SIGTERM)                    # not a systemd stop: XDP and the path stay
    (r,) = probe(lab, ["http", before[(L.VIP, L.BACKENDS["b1"])], L.HTTP_PORT, None])
    assert r["ok"] and r["body"]["name"] == "b1"      # the path works with no loader running
    lab.loader_log.close()
    lab.start_loader()
    L.wait_loader_ready(lab.bus, lab)
    until(lambda: probe_addresses(lab.bus) == before, timeout=20, message="probe addresses changed")
    lab.kill_loader(signal.SIGTERM)
    r = lab.run_loader_command("--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.lb.run("ip link show dev vc5nat", check=False).returncode != 0
    assert "255.0.0.0/8" not in lab.lb.run("ip route").stdout
