"""The per-service `stateless` key (issue #14): configuration -> loader's reconcile ->
ServiceSpec.stateless -> the service header flag VC5_SVC_STATELESS. The data plane's
behaviour (nothing stored) is tests/bpf/test_flow_tables.py."""

from tests.unit.test_config_keys import service
from tests.unit.test_xdp_reconcile import HEALTH, FakeDataPlane
from tests.unit.test_xdp_planner import NEIGH, view_with
from vc5.config import load_text
from vc5.xdp_loader import dataplane, layout, reconcile
from vc5.xdp_loader.specs import ServiceKey, ServiceSpec


def test_stateless_key_is_read_and_defaults_to_false():
    assert load_text(service("    stateless: true\n", ""), source="t.yaml").services[0].stateless is True
    assert load_text(service("", ""), source="t.yaml").services[0].stateless is False


def test_reconcile_marks_only_the_stateless_services():
    dp, view = FakeDataPlane(), view_with(*NEIGH)
    reconcile.reconcile(dp, HEALTH, view, {}, stateless=frozenset({"192.0.2.1:80:tcp"}))
    assert dp.held[ServiceKey("192.0.2.1", 80, "tcp")].stateless is True
    dp2 = FakeDataPlane()
    reconcile.reconcile(dp2, HEALTH, view, {})
    assert dp2.held[ServiceKey("192.0.2.1", 80, "tcp")].stateless is False


def test_service_header_flags():
    assert dataplane._svc_flags(ServiceSpec("192.0.2.1", 53, "udp", stateless=True)) == layout.SVC_STATELESS
    assert dataplane._svc_flags(ServiceSpec("192.0.2.1", 53, "udp", sticky=True, stateless=True)) == \
        layout.SVC_STATELESS | layout.SVC_STICKY
    assert dataplane._svc_flags(ServiceSpec("192.0.2.1", 53, "udp")) == 0
