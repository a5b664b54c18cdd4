"""healthd's pure state: initial states, transitions, need, VIP verdicts, drains and reload merges."""

import ipaddress
from dataclasses import dataclass, field, replace

import pytest

from vc5.healthd.state import BadKey, HealthState, parse_backend, vip_priority


# ---- stand-ins shaped as vc5.config's model (api-config.md) --------------------------------------

@dataclass(frozen=True)
class Backend:
    address: object
    port: int
    disabled: bool = False
    weight: int = 1
    checks: tuple = ()


@dataclass(frozen=True)
class Service:
    vip: object
    port: int
    protocol: str = "tcp"
    name: object = None
    description: object = None
    priority: str = "critical"
    need: int = 1
    sticky: bool = False
    tunnel_type: str = "none"
    tunnel_port: int = 0
    tunnel_no_checksum: bool = False
    disabled: bool = False
    interval: float = 2.0
    timeout: object = None
    rise: int = 5
    fall: int = 2
    backends: tuple = ()

    @property
    def key(self):
        return f"{self.vip}:{self.port}:{self.protocol}"


@dataclass(frozen=True)
class Config:
    services: tuple = ()
    source: str = "test.yaml"
    vips: tuple = field(default=())


def B(addr, port=80, **kw):
    return Backend(ipaddress.ip_address(addr), port, **kw)


def S(vip, port, *backends, **kw):
    bs = tuple(b if isinstance(b, Backend) else B(b, port) for b in backends)
    return Service(ipaddress.ip_address(vip), port, backends=bs, **kw)


def C(*services):
    return Config(services=tuple(services))


VIP = "192.0.2.1"
WEB = S(VIP, 80, "10.0.0.1", "10.0.0.2")
K = WEB.key
B1, B2 = ("10.0.0.1", 80), ("10.0.0.2", 80)


def rounds(state, key, bkey, results, now=1000):
    events = []
    for i, r in enumerate(results):
        events += state.record(key, bkey, r == "+", "OK" if r == "+" else "http: x", 3, now + i)
    return events


def up_all(state, key, n=5):
    for bkey in list(state.services[key].backends):
        rounds(state, key, bkey, "+" * n)


# ---- initial state -------------------------------------------------------------------------------

def test_new_vip_starts_with_backends_down_and_vip_down():
    s = HealthState.from_config(C(WEB), 1)
    assert [b.up for b in s.services[K].backends.values()] == [False, False]
    assert not s.services[K].up and not s.vips[VIP].up
    assert s.generation == 1 and s.source == "test.yaml" and s.loaded_at == 1


def test_initial_events_one_per_backend_down_and_vip_down():
    _s, events = HealthState().applied(C(WEB), 1)
    kinds = [(e.kind, e.up, e.initial) for e in events]
    assert kinds.count(("backend", False, True)) == 2
    assert ("vip", False, True) in kinds
    text = [e.text for e in events if e.kind == "backend"][0]
    assert text == "Backend 10.0.0.1:80 for service 192.0.2.1:80:tcp went down"


def test_need_zero_service_is_up_with_no_backends_up():
    s = HealthState.from_config(C(S(VIP, 80, "10.0.0.1", need=0)), 1)
    assert s.services[S(VIP, 80).key].up and s.vips[VIP].up


# ---- transitions ---------------------------------------------------------------------------------

def test_backend_up_after_five_passes_then_service_and_vip_up():
    s = HealthState.from_config(C(WEB), 1)
    ev = rounds(s, K, B1, "++++")
    assert ev == [] and not s.services[K].backends[B1].up
    ev = rounds(s, K, B1, "+", now=2000)
    assert [(e.kind, e.up) for e in ev] == [("backend", True), ("service", True), ("vip", True)]
    b = s.services[K].backends[B1]
    assert b.up and b.since == 2000 and s.services[K].since == 2000 and s.vips[VIP].since == 2000
    assert s.services[K].available() == 1


def test_backend_down_after_two_failures_in_window_and_counters():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    assert rounds(s, K, B1, "-++") == []
    ev = rounds(s, K, B1, "-", now=5000)
    assert [(e.kind, e.up) for e in ev] == [("backend", False)]   # B2 still serves: need 1 met
    assert ev[0].diagnostic == "http: x"
    b = s.services[K].backends[B1]
    assert (b.probes, b.passes, b.failures) == (9, 7, 2)
    ev = rounds(s, K, B2, "--", now=6000)
    assert [(e.kind, e.up) for e in ev] == [("backend", False), ("service", False), ("vip", False)]


def test_diagnostic_change_marks_service_dirty_but_not_a_transition():
    s = HealthState.from_config(C(WEB), 1)
    s.services_wire()
    assert not s.dirty_services
    s.record(K, B1, False, "syn: Timeout", 2000, 10)
    assert s.dirty_services == {K}
    wire = {w.key: w for w in s.services_wire()}
    assert wire[K].backends[0].diagnostic == "syn: Timeout" and wire[K].backends[0].took_ms == 2000
    s.record(K, B1, False, "syn: Timeout", 1999, 11)
    assert not s.dirty_services     # same verdict, same diagnostic: nothing to publish


def test_need_two():
    svc = S(VIP, 80, "10.0.0.1", "10.0.0.2", need=2)
    s = HealthState.from_config(C(svc), 1)
    rounds(s, svc.key, B1, "+++++")
    assert not s.services[svc.key].up
    ev = rounds(s, svc.key, B2, "+++++")
    assert s.services[svc.key].up and ("vip", True) in [(e.kind, e.up) for e in ev]


def test_vip_up_only_when_all_its_services_are_up():
    web, dns = S(VIP, 80, "10.0.0.1"), S(VIP, 53, "10.0.0.1", protocol="udp")
    s = HealthState.from_config(C(web, dns), 1)
    rounds(s, web.key, B1, "+++++")
    assert s.services[web.key].up and not s.vips[VIP].up
    ev = rounds(s, dns.key, ("10.0.0.1", 53), "+++++")
    assert s.vips[VIP].up and ev[-1].kind == "vip"
    ev = rounds(s, dns.key, ("10.0.0.1", 53), "--")
    assert not s.vips[VIP].up and s.services[web.key].up


def test_disabled_backend_checked_but_never_usable():
    svc = S(VIP, 80, B("10.0.0.1", disabled=True))
    s = HealthState.from_config(C(svc), 1)
    ev = rounds(s, svc.key, B1, "+++++")
    b = s.services[svc.key].backends[B1]
    assert b.up and not b.usable and b.probes == 5
    assert [(e.kind, e.up) for e in ev] == [("backend", True)]
    assert not s.services[svc.key].up
    w = s.services_wire()[0].backends[0]
    assert w.up and w.disabled and not w.usable


def test_weight_zero_is_never_usable():
    svc = S(VIP, 80, B("10.0.0.1", weight=0))
    s = HealthState.from_config(C(svc), 1)
    rounds(s, svc.key, B1, "+++++")
    assert not s.services[svc.key].backends[B1].usable and not s.services[svc.key].up


def test_custom_rise_and_fall():
    svc = S(VIP, 80, "10.0.0.1", rise=2, fall=1)
    s = HealthState.from_config(C(svc), 1)
    rounds(s, svc.key, B1, "++")
    assert s.services[svc.key].up
    rounds(s, svc.key, B1, "-")
    assert not s.services[svc.key].up


def test_results_for_unknown_backends_are_ignored():
    s = HealthState.from_config(C(WEB), 1)
    assert s.record(K, ("10.9.9.9", 80), True, "OK", 1, 2) == []
    assert s.record("198.51.100.1:80:tcp", B1, True, "OK", 1, 2) == []


# ---- priorities ----------------------------------------------------------------------------------

@pytest.mark.parametrize("priority,severity", [("critical", 3), ("high", 4), ("medium", 5), ("low", 6)])
def test_vip_down_severity_follows_priority(priority, severity):
    svc = S(VIP, 80, "10.0.0.1", priority=priority)
    s = HealthState.from_config(C(svc), 1)
    rounds(s, svc.key, B1, "+++++")
    ev = rounds(s, svc.key, B1, "--")
    vip = [e for e in ev if e.kind == "vip"][0]
    assert vip.severity == severity and vip.text == "VIP 192.0.2.1 went down"


def test_vip_priority_is_the_most_severe_of_its_services():
    assert vip_priority([S(VIP, 80, priority="low"), S(VIP, 443, priority="high")]) == "high"


# ---- drain ---------------------------------------------------------------------------------------

def test_drain_removes_usable_and_can_take_service_down():
    svc = S(VIP, 80, "10.0.0.1")
    s = HealthState.from_config(C(svc), 1)
    rounds(s, svc.key, B1, "+++++")
    ev = s.set_drained(svc.key, B1, True, 50)
    assert [(e.kind, e.up) for e in ev] == [("service", False), ("vip", False)]
    w = s.services_wire()[0].backends[0]
    assert w.drained and w.up and not w.usable
    assert s.set_drained(svc.key, B1, True, 51) == []
    ev = s.set_drained(svc.key, B1, False, 52)
    assert [(e.kind, e.up) for e in ev] == [("service", True), ("vip", True)]


def test_find_backends():
    web2 = S(VIP, 443, "10.0.0.1", "10.0.0.2")
    s = HealthState.from_config(C(WEB, web2), 1)
    assert s.find_backends(K, "10.0.0.1") == [(K, B1)]
    assert s.find_backends(K, "10.0.0.1:80") == [(K, B1)]
    assert s.find_backends("", "10.0.0.2") == [(K, B2), (web2.key, ("10.0.0.2", 443))]
    with pytest.raises(KeyError, match="no backend"):
        s.find_backends(K, "10.0.0.3")
    with pytest.raises(KeyError, match="no service"):
        s.find_backends("192.0.2.9:80:tcp", "10.0.0.1")


def test_parse_backend():
    assert parse_backend("2001:db8::1") == ("2001:db8::1", None)
    assert parse_backend("[2001:db8::1]:80") == ("2001:db8::1", 80)
    assert parse_backend("10.0.0.1:8080") == ("10.0.0.1", 8080)
    with pytest.raises(BadKey):
        parse_backend("nonsense")


@pytest.mark.parametrize("text", ["[zz]:80", "[10.0.0.1", "[::1]x", "[::1]:", "10.0.0.1:-5", "10.0.0.1:+5",
                                  "10.0.0.1:65536", "10.0.0.1:5_0", "10.0.0.1: 5", "[::1]:http", "",
                                  "::1:80:x", "10.0.0.1:٣", "x" * 10_000])
def test_parse_backend_rejects_malformed_words_with_badkey(text):
    with pytest.raises(BadKey) as e:
        parse_backend(text)
    assert len(str(e.value)) < 200 and "\n" not in str(e.value)


# ---- reload --------------------------------------------------------------------------------------

def test_reload_keeps_existing_state_counters_and_since():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    before = s.services[K].backends[B1]
    new, events = s.applied(C(WEB), 99)
    b = new.services[K].backends[B1]
    assert b.up and b.probes == before.probes and b.since == before.since
    assert new.services[K].up and new.services[K].since == s.services[K].since
    assert new.vips[VIP].up and new.vips[VIP].since == s.vips[VIP].since
    assert events == [] and new.generation == 2 and new.loaded_at == 99


def test_reload_is_atomic_old_state_untouched():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    new, _ = s.applied(C(S(VIP, 80, "10.0.0.1")), 2)
    rounds(new, K, B1, "--")
    assert s.services[K].backends[B1].up and len(s.services[K].backends) == 2


def test_reload_new_backend_on_existing_service_starts_down():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    new, events = s.applied(C(S(VIP, 80, "10.0.0.1", "10.0.0.2", "10.0.0.3")), 2)
    assert not new.services[K].backends[("10.0.0.3", 80)].up
    assert new.services[K].up
    assert [(e.kind, e.up, e.backend) for e in events] == [("backend", False, "10.0.0.3:80")]


def test_reload_new_service_on_existing_vip_starts_up():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    tls = S(VIP, 443, "10.0.0.1", "10.0.0.2")
    new, events = s.applied(C(WEB, tls), 2)
    assert all(b.up for b in new.services[tls.key].backends.values())
    assert new.services[tls.key].up and new.vips[VIP].up
    assert new.vips[VIP].since == s.vips[VIP].since       # the VIP was never withdrawn
    assert not [e for e in events if e.kind == "vip"]


def test_reload_new_vip_starts_down():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    other = S("192.0.2.2", 80, "10.0.0.1")
    new, events = s.applied(C(WEB, other), 2)
    assert not new.services[other.key].backends[B1].up
    assert not new.vips["192.0.2.2"].up and new.vips[VIP].up
    assert ("vip", False, True) in [(e.kind, e.up, e.initial) for e in events]


def test_reload_removing_a_vip_reports_it():
    s = HealthState.from_config(C(WEB, S("192.0.2.2", 80, "10.0.0.1")), 1)
    new, events = s.applied(C(WEB), 2)
    assert "192.0.2.2" not in new.vips
    assert [e.vip for e in events if e.kind == "vip-removed"] == ["192.0.2.2"]


def test_reload_changing_need_reevaluates_service():
    s = HealthState.from_config(C(WEB), 1)
    rounds(s, K, B1, "+++++")
    assert s.services[K].up
    new, events = s.applied(C(replace(WEB, need=2)), 2)
    assert not new.services[K].up and not new.vips[VIP].up
    assert ("service", False) in [(e.kind, e.up) for e in events]


def test_drain_survives_reload_unless_backend_config_changes():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    s.set_drained(K, B1, True, 5)
    new, _ = s.applied(C(WEB), 6)
    assert new.services[K].backends[B1].drained
    changed = S(VIP, 80, B("10.0.0.1", weight=2), "10.0.0.2")
    newer, _ = new.applied(C(changed), 7)
    assert not newer.services[K].backends[B1].drained
    assert newer.services[K].backends[B1].up          # but its health state is kept


def test_reload_rise_change_keeps_verdict():
    s = HealthState.from_config(C(WEB), 1)
    up_all(s, K)
    new, _ = s.applied(C(replace(WEB, rise=3, fall=1)), 2)
    b = new.services[K].backends[B1]
    assert b.up and b.hyst.rise == 3
    rounds(new, K, B1, "-")
    assert not new.services[K].backends[B1].up


def test_wire_snapshot_shape():
    svc = S("2001:db8::1", 443, "2001:db8::10", name="web", description="d", priority="high", need=1)
    s = HealthState.from_config(C(svc), 7)
    (w,) = s.services_wire()
    assert (w.vip, w.port, w.protocol, w.name, w.priority, w.up, w.since, w.available) == \
        ("2001:db8::1", 443, "tcp", "web", "high", False, 7, 0)
    assert w.backends[0].address == "2001:db8::10" and w.backends[0].port == 443
    assert s.vips_wire()[0].vip == "2001:db8::1"
    assert not s.dirty
