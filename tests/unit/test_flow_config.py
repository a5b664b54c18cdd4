"""Flow-table configuration (issue #14): `flows` (old name `flows_per_cpu`), and the per-service
`stateless` key: configuration -> loader's reconcile ->
ServiceSpec.stateless -> the service header flag VC5_SVC_STATELESS. The data plane's
behaviour (nothing stored) is tests/bpf/test_flow_tables.py."""

from types import SimpleNamespace

import pytest

from tests.unit.test_config_keys import service
from tests.unit.test_xdp_reconcile import HEALTH, FakeDataPlane, FakeReader
from tests.unit.test_xdp_planner import NEIGH, view_with
from vc5.cli import ops_cmd
from vc5.common import limits, wire
from vc5.config import ConfigError, load_text
from vc5.xdp_loader import dataplane, layout, netinfo, reconcile
from vc5.xdp_loader import loader as loader_mod
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


def test_flows_is_the_new_name_of_flows_per_cpu():
    assert load_text("flows: 200000\n").flows_per_cpu == 200_000
    assert load_text("flows_per_cpu: 300000\n").flows_per_cpu == 300_000      # vc5's name, still read
    assert load_text("flows: 0\n").flows_per_cpu == 1_000_000                 # vc5 -F 0
    with pytest.raises(ConfigError) as e:
        load_text("flows: 1000\nflows_per_cpu: 2000\n", source="t.yaml")
    assert "flows_per_cpu: is the old name of flows" in str(e.value)


@pytest.mark.parametrize("flows", [1000, 4096, 65536, 1_000_000, 3_000_001])
def test_memory_check_and_map_specs_size_the_same_tables(flows):
    sizes = layout.flow_table_sizes(flows)
    specs = layout.map_specs(flows)
    assert {n: specs[n].max_entries for n in layout.FLOW_TABLES} == sizes
    assert sizes["flows"] == flows
    assert {sizes[n] for n in ("flows6", "flows_udp", "flows_udp6")} == {limits.flow_side(flows)}
    assert {specs[n].key_size for n in ("flows", "flows_udp")} == {12}
    assert {specs[n].key_size for n in ("flows6", "flows_udp6")} == {36}


class TablesDataPlane(FakeDataPlane):
    def flow_tables(self):
        return {"flows": {"entries": 1_000_000, "bytes": 96_778_176, "bytes_per_entry": 96},
                "flows6": {"entries": 250_000, "bytes": 30_195_264, "bytes_per_entry": 120}}


def test_loader_publishes_flow_tables_and_vc5ctl_shows_them(monkeypatch):
    monkeypatch.setattr(netinfo, "probe", lambda *a, **k: "")
    cfg = SimpleNamespace(source="vc5.yaml", flows_per_cpu=1_000_000, xdp_mode="generic",
                          interfaces=("eth0",),
                          vlans={}, vlans6={}, untagged=False, services=())
    ld = loader_mod.Loader(cfg, TablesDataPlane(), reader=FakeReader())
    published = [wire.FlowTable.from_dbus(t) for t in ld.publisher.current("FlowTables")]
    assert published == [wire.FlowTable("flows", 1_000_000, 96_778_176, 96),
                         wire.FlowTable("flows6", 250_000, 30_195_264, 120)]
    assert ops_cmd.format_flow_tables(published) == \
        "flow tables: flows 1,000,000 x 96 B, flows6 250,000 x 120 B; 121 MiB in all"
    assert ops_cmd.format_flow_tables(()) == ""
    # a data plane without the method (older fakes) publishes none
    assert loader_mod.Loader(cfg, FakeDataPlane(), reader=FakeReader()).publisher.current("FlowTables") == []


class RateDataPlane(FakeDataPlane):
    def __init__(self):
        super().__init__()
        self.rates = []

    def set_flow_rate(self, per_second=None, burst=None):
        self.rates.append((per_second, burst))


def test_flow_rate_is_read_and_applied_at_start_and_reload(monkeypatch):
    assert load_text("flow_rate: 50000\n").flow_rate == 50_000
    assert load_text("{}").flow_rate == 0
    with pytest.raises(ConfigError, match="flow_rate"):
        load_text("flow_rate: -1\n", source="t.yaml")
    monkeypatch.setattr(netinfo, "probe", lambda *a, **k: "")
    cfg = SimpleNamespace(source="vc5.yaml", flows_per_cpu=4096, xdp_mode="generic", interfaces=(),
                          vlans={}, vlans6={}, untagged=False, services=(), flow_rate=50_000)
    dp = RateDataPlane()
    ld = loader_mod.Loader(cfg, dp, reader=FakeReader())
    ld._apply_flow_rate(cfg)
    ld._apply_flow_rate(SimpleNamespace(flow_rate=0))
    assert dp.rates == [(50_000, 5_000), (None, None)]       # 0: the program's default


def test_an_upgrade_removes_the_pins_of_older_layouts(tmp_path):
    from vc5.xdp_loader.stop_post import remove_older_layouts

    ours = f"v{layout.LAYOUT_VERSION}"
    for d in ("v1", f"v{layout.LAYOUT_VERSION - 1}", ours, f"v{layout.LAYOUT_VERSION + 1}", "other"):
        (tmp_path / d).mkdir(exist_ok=True)
        (tmp_path / d / "flows").write_text("")
        (tmp_path / d / "settings").write_text("")
    assert remove_older_layouts(str(tmp_path / "custom")) == []            # not a v<N> directory: nothing
    removed = remove_older_layouts(str(tmp_path / ours))
    assert sorted(removed) == sorted({str(tmp_path / "v1"), str(tmp_path / f"v{layout.LAYOUT_VERSION - 1}")})
    newer = f"v{layout.LAYOUT_VERSION + 1}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours, newer, "other"])
    assert sorted(p.name for p in (tmp_path / ours).iterdir()) == ["flows", "settings"]    # ours untouched
