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


def typed(b, prop):
    """A property of the live loader, decoded to its vc5.common.wire struct(s)."""
    return wire.XDP_LOADER.decode({prop: b.get(prop)})[prop]


def counters_of(b):
    [reply] = b.call("GetCounters")
    return wire.Counters.from_dbus(reply)


def services(b):
    return {s.key: s for s in typed(b, "Services")}


def backends(b, key=KEY):
    return {be.address: be for be in services(b)[key].backends}


def test_live_object_matches_shipped_introspection(loader):
    lab, b = loader
    vbus.assert_matches_introspection(b.introspect(), vbus.load_introspection(names.XDP_LOADER_BUS))


def test_services_show_resolved_macs_and_reasons(loader):
    lab, b = loader
    until(lambda: all(backends(b)[a].mac for a in L.BACKENDS.values()), timeout=15,
          message="backend MACs not resolved")
    be = backends(b)
    for i, address in enumerate(L.BACKENDS.values(), start=1):
        assert be[address] == wire.ProgrammedBackend(address, f"02:00:00:01:00:1{i}", in_table=True,
                                                     valid=True, reason="", interface="l0", vlan=1)
    assert not be[UNKNOWN].in_table and not be[UNKNOWN].valid
    assert be[UNKNOWN].reason.startswith("MAC unknown")
    assert not be[REMOTE].in_table and "no local VLAN" in be[REMOTE].reason
    s = services(b)[KEY]
    assert (s.vip, s.port, s.protocol, s.reason) == (L.VIP, L.HTTP_PORT, "tcp", "")
    assert "MAC unknown" in lab.log_text()                       # and it said so in the log
    vlan4, vlan6 = typed(b, "Vlans")
    assert vlan4 == wire.VlanStatus(1, "10.201.1.0/24", "l0", L.BALANCER, "02:00:00:01:00:02", "", "", "")
    assert vlan6 == wire.VlanStatus(1, "fd20:1::/64", "l0", L.BALANCER6, "02:00:00:01:00:02", "", "", "")
    (itf,) = typed(b, "Interfaces")
    assert itf.name == "l0" and itf.mode == "generic" and itf.attached and itf.prog_id == lab.xdp_prog_id()
    info = typed(b, "ProgramInfo")
    assert info.prog_id == lab.xdp_prog_id() and info.name == "xdp_main" and info.pin_dir == lab.pin_dir
    assert b.get("Mode") == "generic" and b.get("Active") is True


def test_counters_cover_what_was_programmed(loader):
    lab, b = loader
    until(lambda: all(backends(b)[a].valid for a in L.BACKENDS.values()), timeout=15)
    c = counters_of(b)
    assert set(counters.METRICS) <= set(c.totals)
    assert set(c.vips) == {L.VIP} and set(c.services) == {KEY}
    assert set(counters.METRICS) <= set(c.services[KEY])
    # every backend the kernel holds (those out of the table too, kept not valid) has vc5's backend counters
    assert set(L.BACKENDS.values()) | {UNKNOWN, REMOTE} == set(c.backends[KEY])
    assert all(set(counters.BACKEND_COUNTERS) <= set(n) for n in c.backends[KEY].values())


def test_drain_and_removal_follow_healthd(loader):
    lab, b = loader
    address = L.BACKENDS["b2"]
    b.publish(published(drained={address}))
    until(lambda: backends(b)[address].reason == "drained by the operator", timeout=10)
    be = backends(b)
    assert not be[address].in_table and be[address].valid      # out of the table, valid for pinned flows
    assert UNKNOWN not in be and REMOTE not in be                 # absent from healthd = removed
    until(lambda: set(counters_of(b).backends[KEY]) == set(L.BACKENDS.values()), timeout=5)


def test_healthd_gone_keeps_state_and_reappearing_is_reread(loader):
    lab, b = loader
    until(lambda: all(backends(b)[a].in_table for a in L.BACKENDS.values()), timeout=15)
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
        return {i.name: i for i in typed(b, "Interfaces")}

    with open(lab.config, "w") as f:      # one more interface (absent yet), no IPv6 VLAN
        f.write("interfaces: [l0, l9]\nvlans:\n  1: 10.201.1.0/24\nxdp_mode: generic\nflows_per_cpu: 4096\n")
    b.call("Reload", interface=manager)
    assert [v.prefix for v in typed(b, "Vlans")] == ["10.201.1.0/24"]
    assert not interfaces()["l9"].attached and "no such interface" in interfaces()["l9"].note
    lab.lb.run("ip link add l9 type veth peer name l9p && ip link set l9 up && ip link set l9p up")
    until(lambda: interfaces()["l9"].attached, timeout=10,
          message="the loader did not attach to the new interface")
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


def test_shutdown_without_detach_keeps_forwarding_through_stop_post(loader):
    """Manager.Shutdown(false) exits 0 with no restart job: --stop-post must still keep XDP
    (docs/data-plane.md, "Restart keeps forwarding; stop detaches"); a later plain stop detaches."""
    lab, b = loader
    prog = lab.xdp_prog_id()
    b.call("Shutdown", "b", [False], interface=names.XDP_LOADER_MANAGER_IFACE)
    until(lambda: lab.loader.poll() is not None, timeout=10)
    assert lab.loader.returncode == 0
    marker = os.path.join(os.path.dirname(lab.lock), "keep-attached")
    assert os.path.exists(marker)
    r = lab.run_loader_command("--stop-post", env_extra={"SERVICE_RESULT": "success"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.xdp_prog_id() == prog and os.listdir(lab.pin_dir), "Shutdown(false) detached"
    assert not os.path.exists(marker)                            # consumed: the next stop detaches
    r = lab.run_loader_command("--stop-post", env_extra={"SERVICE_RESULT": "success"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.xdp_prog_id() == 0 and not os.path.exists(lab.pin_dir)


def test_flow_tables_are_published_with_their_kernel_memory(loader):
    from vc5.xdp_loader import layout
    lab, b = loader
    tables = {t.name: t for t in typed(b, "FlowTables")}
    assert {n: t.entries for n, t in tables.items()} == layout.flow_table_sizes(4096)   # the lab: 4096
    for t in tables.values():       # fdinfo memlock: 48 + key + value per entry, buckets
        assert t.bytes > 0 and t.bytes_per_entry * t.entries <= t.bytes < (t.bytes_per_entry + 1) * t.entries
        assert t.bytes_per_entry >= (80 if t.name in ("flows", "flows_udp") else 104)
