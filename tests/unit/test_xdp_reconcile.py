"""The loader's data flow on typed inputs, without a kernel:

    healthd's Services (wire.ServiceState) + netinfo.NetView
        -> reconcile.reconcile -> planner.plan -> planner.to_specs -> the maps (a fake DataPlane)
and Loader.on_health -> what org.vc5.XdpLoader1 publishes (wire structs).
"""

import ipaddress
from types import SimpleNamespace

import pytest

from tests.unit.test_xdp_planner import ETH0, ETH1, NEIGH, svc, up, view_with
from vc5.common import wire
from vc5.xdp_loader import loader as loader_mod
from vc5.xdp_loader import netinfo, planner, reconcile
from vc5.xdp_loader.specs import BackendKey, ServiceKey, service_key


class FakeDataPlane:
    """DataPlane's service methods over a dict; records every write."""

    def __init__(self, refuse=()):
        self.held = {}                  # ServiceKey -> ServiceSpec
        self.writes, self.removals, self.redirects = [], [], {}
        self.refuse = set(refuse)
        self.xdp_fd = -1

    def set_service(self, spec):
        key = service_key(spec.vip, spec.port, spec.protocol)
        if str(key) in self.refuse:
            raise ValueError(f"service {key}: refused")
        self.held[key] = spec
        self.writes.append(str(key))

    def remove_service(self, vip, port, protocol):
        key = ServiceKey(vip, port, protocol)
        del self.held[key]
        self.removals.append(str(key))
        return True

    def services(self):
        return sorted(self.held)

    def set_redirect(self, slot, ifindex):
        self.redirects[slot] = ifindex


HEALTH = (svc(up("10.1.10.11"), up("10.1.10.12", drained=True), up("10.1.10.99"), up("not-an-ip")),)


def test_reconcile_writes_the_plan_and_names_each_backend_state():
    dp, view = FakeDataPlane(), view_with(*NEIGH)
    r = reconcile.reconcile(dp, HEALTH, view, {})
    assert r.planned == planner.plan(HEALTH, view) and r.errors == () and r.removed == ()
    spec = dp.held[ServiceKey("192.0.2.1", 80, "tcp")]
    assert r.programmed == {"192.0.2.1:80:tcp": spec}
    states = {b.address: (b.in_table, b.valid) for b in spec.backends}
    # healthd's usable (up, not drained) AND forwardable here (MAC known) -> in_table
    assert states == {"10.1.10.11": (True, True),        # in the Maglev table
                      "10.1.10.12": (False, True),       # drained: out of the table, pinned flows stay
                      "10.1.10.99": (False, False)}      # MAC unknown: kept for its slot and counters
    assert r.in_table == 1
    assert not HEALTH[0].backends[1].usable and HEALTH[0].backends[0].usable


def test_reconcile_writes_only_what_changed_and_removes_what_healthd_dropped():
    dp, view = FakeDataPlane(), view_with(*NEIGH)
    first = reconcile.reconcile(dp, HEALTH, view, {})
    again = reconcile.reconcile(dp, HEALTH, view, first.programmed)
    assert dp.writes == ["192.0.2.1:80:tcp"] and again.programmed == first.programmed
    reconcile.reconcile(dp, HEALTH, view, first.programmed, force=True)
    assert len(dp.writes) == 2
    other = (svc(up("10.1.10.11"), port=443),)
    gone = reconcile.reconcile(dp, other, view, first.programmed)
    assert gone.removed == ("192.0.2.1:80:tcp",) and set(gone.programmed) == {"192.0.2.1:443:tcp"}
    assert dp.services() == [ServiceKey("192.0.2.1", 443, "tcp")]


def test_reconcile_keeps_going_past_a_refused_service():
    dp, view = FakeDataPlane(refuse={"192.0.2.1:80:tcp"}), view_with(*NEIGH)
    health = (svc(up("10.1.10.11")), svc(up("10.1.10.12"), port=443))
    r = reconcile.reconcile(dp, health, view, {})
    assert r.errors == (("192.0.2.1:80:tcp", "service 192.0.2.1:80:tcp: refused"),)
    assert set(r.programmed) == {"192.0.2.1:443:tcp"} and len(r.planned) == 2


def test_redirects_follow_the_plan():
    dp, view = FakeDataPlane(), view_with(*NEIGH)
    reconcile.reconcile(dp, (svc(up("10.1.10.11"), up("10.1.20.13")),), view, {},
                        redirect_ifindexes=(2, 3), untagged=True)
    assert dp.redirects == {10: 2, 20: 3}
    (spec,) = dp.held.values()
    assert [(b.redirect_slot, b.vlan) for b in spec.backends] == [(10, 0), (20, 0)]


def test_published_services_are_the_wire_structs_of_the_plan():
    (p,) = planner.plan(HEALTH, view_with(*NEIGH))
    s = p.to_wire()
    assert isinstance(s, wire.ProgrammedService)
    assert wire.ProgrammedService.from_dbus(s.to_dbus()) == s
    assert [(b.address, b.in_table, b.valid) for b in s.backends][:3] == [
        ("10.1.10.11", True, True), ("10.1.10.12", False, True), ("10.1.10.99", False, False)]
    assert s.backends[1].reason == "drained by the operator"


class FakeReader:
    ipr = None

    def interfaces(self):
        return [ETH0, ETH1]

    def view(self, vlans, vlans6, implicit_from=()):
        return netinfo.build_view([ETH0, ETH1], list(NEIGH), vlans, vlans6, implicit_from)

    def close(self):
        pass


@pytest.fixture
def loader(monkeypatch):
    monkeypatch.setattr(netinfo, "probe", lambda *a, **k: "")
    cfg = SimpleNamespace(source="vc5.yaml", flows_per_cpu=4096, xdp_mode="generic", interfaces=("eth0",),
                          vlans={10: ipaddress.ip_interface("10.1.10.0/24"),
                                 20: ipaddress.ip_interface("10.1.20.0/24")},
                          vlans6={6: ipaddress.ip_interface("fd00:10::/64")}, untagged=False)
    return loader_mod.Loader(cfg, FakeDataPlane(), reader=FakeReader())


def test_loader_never_guesses_before_healthd_is_read(loader):
    loader.refresh()
    assert loader.dp.writes == [] and loader.planned == ()
    assert loader.publisher.current("Services") == []


def test_loader_follows_healthd_and_publishes_typed_values(loader):
    loader.on_health({"Services": HEALTH, "Generation": 3})
    assert loader.health is HEALTH and loader.dp.writes == ["192.0.2.1:80:tcp"]
    assert loader.publisher.current("Services") == [p.to_wire().to_dbus() for p in loader.planned]
    assert loader.status == "running: 1 services, 1 backends in use"
    vlans = [wire.VlanStatus.from_dbus(v) for v in loader.publisher.current("Vlans")]
    assert [(v.vlan, v.prefix, v.interface, v.address) for v in vlans] == [
        (10, "10.1.10.0/24", "eth0", "10.1.10.1"), (20, "10.1.20.0/24", "eth1", "10.1.20.1"),
        (6, "fd00:10::/64", "eth0", "fd00:10::1")]
    loader.on_health({"Generation": 4})                # no Services: nothing to do
    assert loader.dp.writes == ["192.0.2.1:80:tcp"]
    loader.on_health({"Services": ()})                 # healthd lists nothing: removed
    assert loader.dp.removals == ["192.0.2.1:80:tcp"] and loader.publisher.current("Services") == []


def test_loader_counters_are_the_wire_struct(loader):
    key = ServiceKey("192.0.2.1", 80, "tcp")
    loader.dp.counters = lambda: {"global": {"packets": 5}, "vips": {"192.0.2.1": {"packets": 5}},
                                  "services": {key: {"packets": 5}},
                                  "backends": {BackendKey(key, "10.1.10.11"): {"packets": 5}}}
    loader.dp.latency_ns = lambda: 42.4
    c = loader.counters()
    assert c == wire.Counters({"packets": 5, "latency_ns": 42}, {"192.0.2.1": {"packets": 5}},
                              {"192.0.2.1:80:tcp": {"packets": 5}},
                              {"192.0.2.1:80:tcp": {"10.1.10.11": {"packets": 5}}})
    assert wire.Counters.from_dbus(c.to_dbus()) == c
