"""org.vc5.XdpLoader1 on a private bus, served by the real loader (root: it loads XDP in a netns).

The live object must match the shipped introspection XML, and what it publishes must be what
it programmed: backends with their resolved MACs or the reason they are not used, counters
under vc5's names, Manager actions that act.
"""

import os
import shutil
import signal

import pytest

from tests.integration.xdp import lab as L
from tests.integration.xdp.bus import BusThread
from tests.lib.wait import until
from vc5.common import bus as vbus
from vc5.common import names, wire
from vc5.xdp_loader import counters

KEY = f"{L.VIP}:{L.HTTP_PORT}:tcp"
UNKNOWN = "10.201.1.99"      # on the VLAN, nobody answers ARP
REMOTE = "10.9.9.9"          # on no VLAN of the balancer


def published(extra=(), drained=()):
    backends = tuple(wire.BackendState(a, L.HTTP_PORT, up=True, drained=a in drained)
                     for a in (*L.BACKENDS.values(), *extra))
    return (wire.ServiceState(L.VIP, L.HTTP_PORT, "tcp", name="http", up=True, backends=backends),)


@pytest.fixture
def loader(root, private_bus):
    tmp = L.tmpdir()
    b = BusThread()
    lab = L.Lab(tmp, with_traffic=False)
    try:
        b.publish(published(extra=(UNKNOWN, REMOTE)))
        lab.start_loader()
        L.wait_loader_ready(b, lab)
        yield lab, b
    finally:
        lab.close()
        b.close()
        shutil.rmtree(tmp, ignore_errors=True)


def services(b):
    return {s[0]: s for s in b.get("Services")}


def backends(b, key=KEY):
    return {be[0]: be for be in services(b)[key][5]}


def test_live_object_matches_shipped_introspection(loader):
    lab, b = loader
    vbus.assert_matches_introspection(b.introspect(), vbus.load_introspection(names.XDP_LOADER_BUS))


def test_services_show_resolved_macs_and_reasons(loader):
    lab, b = loader
    until(lambda: all(backends(b)[a][1] for a in L.BACKENDS.values()), timeout=15,
          message="backend MACs not resolved")
    be = backends(b)
    for i, address in enumerate(L.BACKENDS.values(), start=1):
        assert be[address] == [address, f"02:00:00:01:00:1{i}", True, True, "", "l0", 1]
    assert not be[UNKNOWN][2] and not be[UNKNOWN][3] and be[UNKNOWN][4].startswith("MAC unknown")
    assert not be[REMOTE][2] and "no local VLAN" in be[REMOTE][4]
    s = services(b)[KEY]
    assert (s[1], s[2], s[3], s[4]) == (L.VIP, L.HTTP_PORT, "tcp", "")
    assert "MAC unknown" in lab.log_text()                       # and it said so in the log
    vlan4, vlan6 = b.get("Vlans")
    assert vlan4 == [1, "10.201.1.0/24", "l0", L.BALANCER, "02:00:00:01:00:02", "", "", ""]
    assert vlan6 == [1, "fd20:1::/64", "l0", L.BALANCER6, "02:00:00:01:00:02", "", "", ""]
    (itf,) = b.get("Interfaces")
    assert itf[0] == "l0" and itf[2] == "generic" and itf[4] and itf[3] == lab.xdp_prog_id()
    info = b.get("ProgramInfo")
    assert info[0] == lab.xdp_prog_id() and info[2] == "xdp_main" and info[3] == lab.pin_dir
    assert b.get("Mode") == "generic" and b.get("Active") is True


def test_counters_cover_what_was_programmed(loader):
    lab, b = loader
    until(lambda: all(backends(b)[a][3] for a in L.BACKENDS.values()), timeout=15)
    glob, vips, svcs, bes = b.call("GetCounters")[0]
    assert set(counters.METRICS) <= set(glob)
    assert set(vips) == {L.VIP} and set(svcs) == {KEY}
    assert set(counters.METRICS) <= set(svcs[KEY])
    # every backend the kernel holds (the unusable ones too, kept not valid) has vc5's backend counters
    assert set(L.BACKENDS.values()) | {UNKNOWN, REMOTE} == set(bes[KEY])
    assert all(set(counters.BACKEND_COUNTERS) <= set(c) for c in bes[KEY].values())


def test_drain_and_removal_follow_healthd(loader):
    lab, b = loader
    address = L.BACKENDS["b2"]
    b.publish(published(drained={address}))
    until(lambda: backends(b)[address][4] == "drained by the operator", timeout=10)
    be = backends(b)
    assert not be[address][2] and be[address][3]                 # out of the table, valid for pinned flows
    assert UNKNOWN not in be and REMOTE not in be                 # absent from healthd = removed
    until(lambda: set(b.call("GetCounters")[0][3][KEY]) == set(L.BACKENDS.values()), timeout=5)


def test_healthd_gone_keeps_state_and_reappearing_is_reread(loader):
    lab, b = loader
    until(lambda: all(backends(b)[a][2] for a in L.BACKENDS.values()), timeout=15)
    b.withdraw_health()
    until(lambda: "gone" in b.get("Status"), timeout=10)
    assert set(backends(b)) == set(L.BACKENDS.values()) | {UNKNOWN, REMOTE}   # nothing guessed away
    b.publish(published())                                        # healthd is back, with less
    until(lambda: set(backends(b)) == set(L.BACKENDS.values()), timeout=10)
    assert b.get("Status").startswith("running")


def test_manager_actions(loader):
    lab, b = loader
    b.call("SetActive", "b", [False], interface=names.XDP_LOADER_MANAGER_IFACE)
    assert b.get("Active") is False
    b.call("SetActive", "b", [True], interface=names.XDP_LOADER_MANAGER_IFACE)
    assert b.get("Active") is True
    prog = lab.xdp_prog_id()
    b.call("Reattach", "s", ["l0"], interface=names.XDP_LOADER_MANAGER_IFACE)
    assert lab.xdp_prog_id() == prog
    with pytest.raises(RuntimeError, match="not in the configured interfaces"):
        b.call("Reattach", "s", ["eth9"], interface=names.XDP_LOADER_MANAGER_IFACE)
    b.call("Resync", interface=names.XDP_LOADER_MANAGER_IFACE)
    assert b.get("Status").startswith("running")
    # an interface that lost its hook is taken back by the loader on its own
    lab.lb.run("ip link set dev l0 xdpgeneric off")
    until(lambda: lab.xdp_prog_id() == prog, timeout=10, message="the loader did not re-attach")
    b.call("Shutdown", "b", [True], interface=names.XDP_LOADER_MANAGER_IFACE)
    until(lambda: lab.loader.poll() is not None, timeout=10)
    assert lab.loader.returncode == 0
    assert lab.xdp_prog_id() == 0
    assert not os.path.exists(lab.pin_dir)


def test_reload_follows_the_configuration_and_refuses_a_bad_one(loader):
    lab, b = loader
    manager = names.XDP_LOADER_MANAGER_IFACE
    with open(lab.config) as f:
        original = f.read()

    def interfaces():
        return {i[0]: i for i in b.get("Interfaces")}

    with open(lab.config, "w") as f:      # one more interface (absent yet), no IPv6 VLAN
        f.write("interfaces: [l0, l9]\nvlans:\n  1: 10.201.1.0/24\nxdp_mode: generic\nflows_per_cpu: 4096\n")
    b.call("Reload", interface=manager)
    assert [v[1] for v in b.get("Vlans")] == ["10.201.1.0/24"]
    assert not interfaces()["l9"][4] and "no such interface" in interfaces()["l9"][5]
    lab.lb.run("ip link add l9 type veth peer name l9p && ip link set l9 up && ip link set l9p up")
    until(lambda: interfaces()["l9"][4], timeout=10, message="the loader did not attach to the new interface")
    assert lab.xdp_prog_id("l9") == lab.xdp_prog_id("l0") != 0

    with open(lab.config, "w") as f:
        f.write("interfaces: [l0\n")
    with pytest.raises(RuntimeError, match="configuration refused"):
        b.call("Reload", interface=manager)
    assert set(interfaces()) == {"l0", "l9"}                   # the running configuration stays

    with open(lab.config, "w") as f:
        f.write(original)
    os.kill(lab.loader.pid, signal.SIGHUP)                      # systemctl reload
    until(lambda: set(interfaces()) == {"l0"}, timeout=10)
    until(lambda: lab.xdp_prog_id("l9") == 0, timeout=5, message="l9 kept the program")
    assert len(b.get("Vlans")) == 2 and "reloaded" in lab.log_text()


def test_start_detaches_vc5_from_interfaces_no_longer_configured(loader):
    lab, b = loader
    with open(lab.config) as f:
        original = f.read()
    lab.lb.run("ip link add l9 type veth peer name l9p && ip link set l9 up && ip link set l9p up")
    with open(lab.config, "w") as f:
        f.write(original.replace("interfaces: [l0]", "interfaces: [l0, l9]"))
    b.call("Reload", interface=names.XDP_LOADER_MANAGER_IFACE)
    until(lambda: lab.xdp_prog_id("l9") != 0, timeout=10)
    lab.kill_loader()                                           # crash, then the configuration changes
    with open(lab.config, "w") as f:
        f.write(original)
    assert lab.xdp_prog_id("l9") != 0
    lab.start_loader()
    L.wait_loader_ready(b, lab)
    until(lambda: lab.xdp_prog_id("l9") == 0, timeout=10, message="the stale program on l9 stayed")
    assert lab.xdp_prog_id("l0") != 0 and "detached from l9 (not in the configured" in lab.log_text()
