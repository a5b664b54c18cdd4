"""The real loader, real XDP (generic mode) on veths, real TCP/UDP through Direct Server Return.

client -> router -> balancer (vc5-xdp-loader subprocess) -> 3 backends (VIP on lo) -> client.
A stand-in healthd on a private bus publishes org.vc5.Health1 Services (vc5.common.wire).
Every expectation about which backend serves a flow is computed with vc5.maglev and vc5's
sdbm for the exact source ports used: deterministic, not statistical.
"""

import os
import shutil
import signal

import pytest

from tests.integration.xdp import lab as L
from tests.integration.xdp.bus import BusThread
from tests.lib.privatebus import private_bus
from tests.lib.wait import until

HTTP_KEY = f"{L.VIP}:{L.HTTP_PORT}:tcp"
ECHO_KEY = f"{L.VIP}:{L.ECHO_PORT}:tcp"
ALL = list(L.BACKENDS.values())
NAME_OF = {a: n for n, a in L.BACKENDS.items()}


@pytest.fixture(scope="module")
def lab(root):
    tmp = L.tmpdir()
    with private_bus():
        b = BusThread()
        lab = L.Lab(tmp)
        try:
            b.publish(L.health_services())
            lab.start_loader()
            L.wait_loader_ready(b, lab)
            until(lambda: all(all(be[2] for be in s[5]) for s in b.get("Services")), timeout=20,
                  message="backend MACs were not resolved")
            lab.bus = b
            yield lab
        finally:
            lab.close()
            b.close()
            shutil.rmtree(tmp, ignore_errors=True)


def expected(backends, sports, port):
    return {str(sp): NAME_OF[L.expected_backend(backends, L.CLIENT, sp, L.VIP, port)] for sp in sports}


def test_new_flows_land_on_their_maglev_backend(lab):
    sports = list(range(40000, 40024))
    want = expected(ALL, sports, L.HTTP_PORT)
    assert set(want.values()) == {"b1", "b2", "b3"}      # these ports exercise all three
    assert lab.http(sports) == want
    usports = list(range(41000, 41012))
    assert lab.udp(usports) == expected(ALL, usports, L.UDP_PORT)
    counters = lab.bus.call("GetCounters")[0]
    glob, vips, services, backends = counters
    assert services[HTTP_KEY]["syn"] >= len(sports) and glob["packets"] >= services[HTTP_KEY]["packets"]
    assert vips[L.VIP]["packets"] >= services[HTTP_KEY]["packets"]
    for address in ALL:
        n = sum(1 for name in want.values() if name == NAME_OF[address])
        assert backends[HTTP_KEY][address]["syn"] >= n


def test_ipv6_flows_land_on_their_maglev_backend(lab):
    """IPv6 VIP, IPv6 backends: MACs from Neighbour Discovery (probed), same Maglev and sdbm."""
    name6 = {a: n for n, a in L.BACKENDS6.items()}
    sports = list(range(47000, 47012))
    want = {str(sp): name6[L.expected_backend(list(L.BACKENDS6.values()), L.CLIENT6, sp, L.VIP6, L.HTTP_PORT)]
            for sp in sports}
    assert len(set(want.values())) > 1
    assert lab.http(sports, v6=True) == want
    s6 = {s[0]: s for s in lab.bus.get("Services")}[f"{L.VIP6}:{L.HTTP_PORT}:tcp"]
    assert [b[1] for b in s6[5]] == [f"02:00:00:01:00:1{i}" for i in (1, 2, 3)]


def test_drained_backend_keeps_established_flows_and_gets_no_new_ones(lab):
    sports = list(range(42000, 42012))
    streams, placed = lab.start_streams(4, sports)
    assert placed == expected(ALL, sports, L.ECHO_PORT)
    drained = max(L.BACKENDS, key=lambda n: sum(1 for v in placed.values() if v == n))
    address = L.BACKENDS[drained]
    try:
        lab.bus.publish(L.health_services(drained={address}))

        def is_drained():
            for s in lab.bus.get("Services"):
                if s[0] == HTTP_KEY:
                    be = {b[0]: b for b in s[5]}[address]
                    return not be[2] and be[3] and be[4] == "drained by the operator"
        until(is_drained, timeout=10, message="the loader did not publish the drain")
        remaining = [a for a in ALL if a != address]
        new = list(range(43000, 43024))
        got = lab.http(new)
        assert got == expected(remaining, new, L.HTTP_PORT)
        assert drained not in got.values()
        result = lab.finish_streams(streams)
    finally:
        lab.bus.publish(L.health_services())
    on_drained = [r for r in result.values() if r["name"] == drained]
    assert on_drained
    for sp, r in result.items():
        assert r["error"] == "", (sp, r)
        assert r["received"] >= r["sent"] - 3 and r["sent"] >= 40, (sp, r)
        assert r["max_gap"] < 1.0, (sp, r)


def test_streams_survive_loader_sigkill_and_restart(lab):
    sports = list(range(44000, 44020))
    before = lab.xdp_prog_id()
    streams, placed = lab.start_streams(6, sports)
    assert placed == expected(ALL, sports, L.ECHO_PORT)
    lab.kill_loader(signal.SIGKILL)
    assert lab.xdp_prog_id() == before          # XDP outlives the process
    lab.start_loader()
    L.wait_loader_ready(lab.bus, lab)
    until(lambda: lab.xdp_prog_id() not in (0, before), timeout=10, message="program not replaced")
    after = lab.xdp_prog_id()
    assert lab.bus.get("ProgramInfo")[0] == after
    assert "replaced program %d in place" % before in lab.log_text()
    result = lab.finish_streams(streams)
    gaps = sorted(r["max_gap"] for r in result.values())
    print(f"20 streams across SIGKILL + restart: max gap {gaps[-1]:.3f} s, median {gaps[10]:.3f} s")
    for sp, r in result.items():
        assert r["error"] == "", (sp, r)
        assert r["max_gap"] < 2.0, (sp, r)
        assert r["received"] >= r["sent"] - 3, (sp, r)
    new = list(range(45000, 45012))
    assert lab.http(new) == expected(ALL, new, L.HTTP_PORT)


def test_a_second_loader_refuses(lab):
    prog = lab.xdp_prog_id()
    same_lock = lab.run_loader_command()
    assert same_lock.returncode == 1 and "holds the lock" in same_lock.stderr, same_lock.stderr
    other = lab.run_loader_command("--lock", os.path.join(lab.tmp, "other.lock"))
    assert other.returncode == 1 and "already owned" in other.stderr, other.stderr
    assert lab.xdp_prog_id() == prog


def test_sigterm_keeps_forwarding_and_stop_post_detaches_and_unpins(lab):
    prog = lab.xdp_prog_id()
    lab.kill_loader(signal.SIGTERM)
    assert lab.loader.returncode == 0, lab.log_text()
    assert lab.xdp_prog_id() == prog and os.path.exists(lab.pin_dir + "/services")
    sports = list(range(46000, 46006))
    assert lab.http(sports) == expected(ALL, sports, L.HTTP_PORT)     # still balanced, no loader
    failed = lab.run_loader_command("--stop-post", env_extra={"SERVICE_RESULT": "signal"})
    assert failed.returncode == 0 and "stays attached" in failed.stderr, failed.stderr
    assert lab.xdp_prog_id() == prog
    stop = lab.run_loader_command("--stop-post", env_extra={"SERVICE_RESULT": "success"})
    assert stop.returncode == 0, stop.stderr
    assert f"detached program {prog} from l0" in stop.stderr, stop.stderr
    assert lab.xdp_prog_id() == 0
    assert not os.path.exists(lab.pin_dir)
