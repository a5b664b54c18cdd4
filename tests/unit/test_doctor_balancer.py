"""vc5ctl doctor (balancer): the pure checks fed with facts, the flow-table estimate, the report,
and the gatherer run against this machine, where no vc5 daemon runs."""

import json

from vc5.cli import __main__ as cli
from vc5.cli.doctor import balancer_checks as lc
from vc5.cli.doctor import daemon_checks as dc
from vc5.cli.doctor import findings as fd
from vc5.cli.doctor import flowmem
from vc5.cli.doctor.balancer_facts import BalancerFacts, Nic, cpu_count, gather
from vc5.common import limits, wire
from vc5.config import load_text

YAML = """
interfaces: [eth0]
xdp_mode: native
flows_per_cpu: 100000
vlans: {10: 192.0.2.254/24}
services:
  - virtual: 203.0.113.1
    servers: [192.0.2.10, 192.0.2.11]
    need: 1
    policy: {http: {}}
"""
KEY = "203.0.113.1:80:tcp"


def facts(**kw) -> BalancerFacts:
    """A balancer with nothing to fix."""
    f = BalancerFacts("/etc/vc5/vc5.yaml", config=load_text(YAML), bpffs=True, online_cpus=2,
                      possible_cpus=2, mem_total=8 << 30, mem_available=6 << 30)
    f.nics = {"eth0": Nic("eth0", xdp_mode="native", prog_id=42, rx_queues=2, rps_cpus=("0", "0"),
                          features={"large-receive-offload": (False, True), "rx-gro-hw": (False, True),
                                    "rx-vlan-hw-parse": (False, True), "tx-vlan-hw-insert": (False, True)})}
    f.loader = {"Mode": "native", "Status": "running", "Active": True,
                "Interfaces": (wire.InterfaceStatus("eth0", 2, "native", 42, True, ""),),
                "Services": (wire.ProgrammedService(KEY, "203.0.113.1", 80, "tcp", "", backends=(
                    wire.ProgrammedBackend("192.0.2.10", "02:00:00:00:00:10", True, True, "", "eth0"),)),)}
    f.bgp = {"Peers": (wire.PeerState("192.0.2.1", state="Established", uptime_s=60),),
             "HealthConnected": True, "Maintenance": "off", "DataPlane": wire.DataPlaneGate("ready")}
    f.health = {"LastReloadError": "", "Services": (wire.ServiceState(
        "203.0.113.1", 80, "tcp", need=1, up=True, available=2, backends=(
            wire.BackendState("192.0.2.10", 80, up=True), wire.BackendState("192.0.2.11", 80, up=True))),)}
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def bad(findings):
    return [(f.check, f.subject) for f in findings if f.status != fd.OK]


def test_a_healthy_balancer_has_nothing_to_fix():
    found = lc.run(facts())
    assert bad(found) == [] and fd.exit_status(found) == 0
    assert {f.check for f in found} >= {"config", "bpffs", "loader", "xdp", "offload", "queues", "memory",
                                        "bgp", "service"}


def test_invalid_or_missing_configuration():
    f = facts(config=None, config_problems=("x.yaml:3:1: services[0].virtual: not an address",))
    [finding] = lc.check_config(f)
    assert finding.status == fd.FAIL and "services[0].virtual" in finding.message
    assert "vc5ctl config check" in finding.fix
    f.config_missing = True
    assert "no such file" in lc.check_config(f)[0].message


def test_bpffs_not_mounted():
    [finding] = lc.check_bpffs(facts(bpffs=False))
    assert finding.status == fd.FAIL and finding.fix.startswith("mount -t bpf bpf /sys/fs/bpf")


def test_xdp_missing_foreign_or_in_the_wrong_mode():
    f = facts()
    f.nics["eth0"].prog_id = 0
    [finding] = lc.check_xdp(f)
    assert finding.status == fd.FAIL and "no XDP program" in finding.message
    f.nics["eth0"].prog_id, f.nics["eth0"].xdp_mode = 7, "native"
    assert "not vc5's (42)" in lc.check_xdp(f)[0].message
    f.nics["eth0"].prog_id, f.nics["eth0"].xdp_mode = 42, "generic"
    [finding] = lc.check_xdp(f)
    assert finding.status == fd.FAIL and "configured native" in finding.message
    assert finding.fix.endswith("org.vc5.XdpLoader1.Manager Reattach s eth0")
    f.nics["eth0"].exists = False
    assert "no such interface" in lc.check_xdp(f)[0].message


def test_offloads_that_break_xdp():
    f = facts()
    f.nics["eth0"].features.update({"large-receive-offload": (True, True), "rx-gro-hw": (True, True),
                                    "rx-vlan-hw-parse": (True, True)})
    fixes = [x.fix for x in lc.check_offloads(f) if x.status == fd.FAIL]
    assert fixes == ["ethtool -K eth0 lro off", "ethtool -K eth0 rx-gro-hw off",
                     "ethtool -K eth0 rxvlan off txvlan off"]
    f.config = load_text(YAML.replace("vlans: {10: 192.0.2.254/24}\n", ""))
    assert [x.status for x in lc.check_offloads(f) if "VLAN" in x.message] == [fd.WARN]


def test_fewer_rx_queues_than_cpus():
    f = facts(online_cpus=8)
    [finding] = lc.check_queues(f)
    assert finding.status == fd.WARN and finding.fix.startswith("ethtool -L eth0 combined 8")


def test_flow_table_memory_against_free_memory():
    f = facts(mem_available=100 << 20)
    f.config = load_text(YAML.replace("100000", "1000000"))
    [finding] = lc.check_flow_memory(f)
    assert finding.status == fd.FAIL and "flow tables of 173 MiB" in finding.message
    assert "lower flows (old name flows_per_cpu)" in finding.fix
    f.flows_pinned = True               # the running table: MemAvailable is what is left beside it
    assert lc.check_flow_memory(f)[0].status == fd.OK
    assert lc.check_flow_memory(facts())[0].status == fd.OK


def test_flow_table_size_is_the_one_the_loader_checks():
    for flows, cpus in ((65536, 2), (1_000_000, 16), (3, 1)):
        assert flowmem.flow_table_bytes(flows, cpus) == limits.flow_table_bytes(flows, cpus)


def test_absent_daemons_are_findings():
    f = facts(loader=None, bgp=None, health=None)
    found = lc.run(f)
    absent = {x.subject: x for x in found if x.status == fd.FAIL and "not on the bus" in x.message}
    assert set(absent) == {"vc5-xdp-loader", "vc5-bgpd", "vc5-healthd"}
    assert absent["vc5-bgpd"].fix.startswith("systemctl start vc5-bgpd")
    f.bus_error = "FileNotFoundError: no socket"
    assert all("no system bus" in x.message for x in dc.check_bgp(f) + dc.check_health(f))


def test_loader_off_and_interface_notes():
    f = facts()
    f.loader = dict(f.loader, Active=False, Status="starting",
                    Interfaces=(wire.InterfaceStatus("eth0", 2, "native", 42, True, "rxvlan stayed on"),))
    found = dc.check_loader(f)
    assert [x.status for x in found] == [fd.OK, fd.FAIL, fd.WARN, fd.WARN]
    assert found[1].fix.endswith("SetActive b true")


def test_bgp_peer_not_established_maintenance_and_held_vips():
    f = facts()
    f.bgp = dict(f.bgp, Peers=(wire.PeerState("192.0.2.1", state="Active", last_error="connection refused",
                                              remote_asn=65001),),
                 Maintenance="on", DataPlane=wire.DataPlaneGate("ready", held=(
                     wire.HeldVip("203.0.113.1", "eth0: no XDP program"),)))
    found = {(x.subject, x.status): x for x in dc.check_bgp(f)}
    peer = found[("192.0.2.1", fd.FAIL)]
    assert "connection refused" in peer.message and "ResetPeer s 192.0.2.1" in peer.fix
    assert found[("maintenance", fd.WARN)].fix.startswith("vc5ctl maintenance off")
    assert "no XDP program" in found[("203.0.113.1", fd.FAIL)].message


def test_unusable_backends_with_their_reasons():
    f = facts()
    f.health = {"LastReloadError": "", "Services": (wire.ServiceState(
        "203.0.113.1", 80, "tcp", need=2, up=False, available=0, tunnel_type="gue", tunnel_port=6080,
        backends=(wire.BackendState("192.0.2.10", 80, up=False, diagnostic="connect: connection refused"),
                  wire.BackendState("192.0.2.11", 80, up=True, drained=True),
                  wire.BackendState("192.0.2.12", 80, up=True, disabled=True))),)}
    found = dc.check_health(f)
    by = {x.subject: x for x in found}
    assert by[KEY].status == fd.FAIL and "need 2" in by[KEY].message
    down = by[f"{KEY} 192.0.2.10:80"]
    assert "connection refused" in down.message
    assert "vc5ctl doctor backend --vip 203.0.113.1 --tunnel gue:6080" in down.fix
    assert by[f"{KEY} 192.0.2.11:80"].fix.startswith(f"vc5ctl undrain 192.0.2.11 --service {KEY}")
    assert "trailing *" in by[f"{KEY} 192.0.2.12:80"].message


def test_backend_up_but_unusable_by_the_loader():
    f = facts()
    f.loader = dict(f.loader, Services=(wire.ProgrammedService(KEY, "203.0.113.1", 80, "tcp", "", (
        wire.ProgrammedBackend("192.0.2.10", "", False, False, "no MAC address (ARP unanswered)"),)),))
    [finding] = [x for x in dc.check_health(f) if x.status == fd.FAIL]
    assert "ARP unanswered" in finding.message


def test_report_table_and_json():
    found = [fd.ok("bpffs", "/sys/fs/bpf", "mounted"), fd.fail("xdp", "eth0", "nothing", "do it")]
    table = fd.to_table(found)
    assert table.splitlines()[1].startswith("FAIL") and "fix: do it" in table
    doc = json.loads(fd.to_json("balancer", found))
    assert doc["ok"] is False and doc["problems"] == 1 and doc["findings"][1]["fix"] == "do it"


def test_cpu_list_parsing(tmp_path):
    p = tmp_path / "possible"
    p.write_text("0-3,8,10-11\n")
    assert cpu_count(str(p)) == 7


def test_gatherer_on_this_machine_without_vc5(tmp_path, monkeypatch):
    """No configuration and (here) no vc5 daemon on any bus: every absence is a finding, no crash."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    f = gather(str(tmp_path / "vc5.yaml"))
    found = lc.run(f)
    assert f.config_missing and f.loader is None and f.bgp is None and f.health is None
    fails = {x.check for x in found if x.status == fd.FAIL}
    assert fails == {"config", "loader", "bgp", "health"}
    assert cli.main(["doctor", "--config", str(tmp_path / "vc5.yaml"), "--json"]) == 1


def test_cli_parses_both_roles():
    parser = cli.build_parser()
    a = parser.parse_args(["doctor", "backend", "--vip", "192.0.2.1", "--vip", "2001:db8::1", "--tunnel",
                           "fou:5555", "--json"])
    assert a.vip == ["192.0.2.1", "2001:db8::1"] and str(a.tunnel) == "fou:5555" and a.json
    b = parser.parse_args(["doctor", "--json", "balancer"])
    assert b.json and b.config == "/etc/vc5/vc5.yaml"
