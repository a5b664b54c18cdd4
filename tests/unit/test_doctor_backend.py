"""vc5ctl doctor backend: the pure checks, fed with facts built by hand."""

import pytest

from vc5.cli.doctor import backend_checks as bc
from vc5.cli.doctor import tunnels
from vc5.cli.doctor.backend_facts import Address, BackendFacts, DecapState, FouPort, Link, Route, parse_fou

VIP = "192.0.2.10"
VIP6 = "2001:db8::10"


def links(**extra):
    out = {"lo": Link("lo", 1, "", 65536, True, loopback=True), "eth0": Link("eth0", 2, "veth", 1500)}
    out.update(extra)
    return out


def good(tunnel="ipip", vips=(VIP,), **kw) -> BackendFacts:
    """A correct backend: VIP on lo, ARP sysctls, loose rp_filter, vc5-decap on eth0, advmss set."""
    t = tunnels.parse(tunnel) if tunnel else None
    f = BackendFacts(tuple(vips), t)
    f.links = links()
    f.addresses = (Address("lo", "127.0.0.1", 8), Address("eth0", "10.0.0.2", 24)) + tuple(
        Address("lo", v, 32 if ":" not in v else 128) for v in vips)
    f.sysctls = {("all", "arp_ignore"): 1, ("all", "arp_announce"): 2, ("all", "rp_filter"): 2,
                 ("eth0", "arp_ignore"): 0, ("eth0", "arp_announce"): 0, ("eth0", "rp_filter"): 1}
    f.routes = {4: Route(4, "default", "eth0", "10.0.0.1", advmss=1400),
                6: Route(6, "default", "eth0", "fe80::1", advmss=1380)}
    if t is not None:
        f.decap = (DecapState("eth0", True, (t.kind,), t.port if t.kind == "fou" else 0,
                              t.port if t.kind == "gue" else 0, ("192.0.2.10/32", "2001:db8::10/128")),)
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def failures(findings):
    return [f for f in findings if f.status == "fail"]


def test_a_correct_backend_has_nothing_to_fix():
    for tunnel in ("ipip", "gre", "fou:5555", "gue:6080", None):
        found = bc.run(good(tunnel, vips=(VIP, VIP6)))
        assert failures(found) == [], (tunnel, found)
        assert {f.check for f in found} >= {"vip", "arp"}


def test_missing_vip_is_added_to_lo():
    f = good()
    f.addresses = f.addresses[:2]
    [finding] = bc.check_vip(f, VIP)
    assert finding.status == "fail" and "not configured" in finding.message
    assert finding.fix == "ip addr add 192.0.2.10/32 dev lo"


def test_vip_on_the_nic_is_moved_to_lo():
    f = good()
    f.addresses = f.addresses[:2] + (Address("eth0", VIP, 24),)
    [finding] = bc.check_vip(f, VIP)
    assert finding.status == "fail" and "eth0" in finding.message
    assert finding.fix == "ip addr del 192.0.2.10/24 dev eth0 && ip addr add 192.0.2.10/32 dev lo"


def test_vip_with_a_prefix_on_lo_gets_a_host_mask():
    f = good(vips=(VIP6,))
    f.addresses = f.addresses[:2] + (Address("lo", VIP6, 64),)
    [finding] = bc.check_vip(f, VIP6)
    assert finding.status == "fail" and "2001:db8::/64" in finding.message
    assert finding.fix.endswith("ip addr add 2001:db8::10/128 dev lo")


def test_vip_on_a_dummy_device_is_fine_and_a_lo_prefix_is_a_warning():
    f = good()
    f.links = links(vips=Link("vips", 3, "dummy", 1500, noarp=True))
    f.addresses = f.addresses[:2] + (Address("vips", VIP, 32),)
    assert bc.check_vip(f, VIP)[0].status == "ok"
    f.addresses = f.addresses[:2] + (Address("lo", "192.0.2.0", 24),)
    assert bc.check_vip(f, VIP)[0].status == "warn"


def test_arp_uses_the_maximum_of_all_and_the_interface():
    f = good()
    f.sysctls[("all", "arp_ignore")] = 0
    found = failures(bc.check_arp(f))
    assert [x.fix for x in found] == ["sysctl -w net.ipv4.conf.all.arp_ignore=1"]
    assert "eth0" in found[0].message
    f.sysctls[("eth0", "arp_ignore")] = 1          # the interface's own value is enough
    assert failures(bc.check_arp(f)) == []
    f.sysctls[("all", "arp_announce")] = 1
    assert [x.fix for x in failures(bc.check_arp(f))] == ["sysctl -w net.ipv4.conf.all.arp_announce=2"]


def test_arp_is_not_checked_for_ipv6_vips_only():
    f = good(vips=(VIP6,))
    f.sysctls = {}
    assert failures(bc.check_arp(f)) == []


def test_strict_rp_filter_on_a_kernel_tunnel_device_drops_everything():
    f = good(decap=())
    f.links = links(tunl0=Link("tunl0", 4, "ipip", 1480, noarp=True))
    f.sysctls[("all", "rp_filter")] = 1
    [finding] = failures(bc.check_rp_filter(f))
    assert finding.subject == "tunl0" and "strict" in finding.message
    assert finding.fix == "sysctl -w net.ipv4.conf.all.rp_filter=2"
    f.sysctls[("all", "rp_filter")], f.sysctls[("tunl0", "rp_filter")] = 0, 1
    assert failures(bc.check_rp_filter(f))[0].fix == "sysctl -w net.ipv4.conf.tunl0.rp_filter=2"


def test_strict_rp_filter_with_vc5_decap_fails_only_with_asymmetric_routing():
    f = good()
    f.sysctls[("all", "rp_filter")] = 1
    assert failures(bc.check_rp_filter(f)) == []              # replies leave by eth0, where it arrives
    f.links = links(eth1=Link("eth1", 5, "veth", 1500))
    f.routes[4] = Route(4, "default", "eth1", "10.1.0.1", advmss=1400)
    [finding] = failures(bc.check_rp_filter(f))
    assert "eth1" in finding.message
    assert finding.fix == ("sysctl -w net.ipv4.conf.all.rp_filter=2 && "
                           "sysctl -w net.ipv4.conf.eth0.rp_filter=2")


def test_unterminated_tunnel_says_how_to_terminate_it():
    f = good("gue:6080", decap=())
    [finding] = bc.check_tunnel(f)
    assert finding.status == "fail" and "gue:6080" in finding.message
    assert finding.fix.startswith("vc5-decap attach eth0 --types gue --gue-port 6080")
    assert "ip fou add port 6080 gue" in finding.fix


def test_vc5_decap_on_the_wrong_port_or_type_does_not_count():
    f = good("fou:5555")
    f.decap = (DecapState("eth0", True, ("fou",), 5556, 0, ("192.0.2.10/32",)),)
    [finding] = bc.check_tunnel(f)
    assert finding.status == "fail" and "fou port 5556" in finding.message
    f.decap = (DecapState("eth0", True, ("gre",), 0, 0, ("192.0.2.10/32",)),)
    assert bc.check_tunnel(f)[0].status == "fail"


def test_vc5_decap_missing_a_vip_is_reloaded():
    f = good("gre", vips=(VIP, "192.0.2.11"))
    f.addresses += (Address("lo", "192.0.2.11", 32),)
    [finding] = bc.check_tunnel(f)
    assert finding.status == "fail" and "192.0.2.11" in finding.message
    assert finding.fix.startswith("systemctl reload vc5-decap@eth0")


def test_kernel_fou_needs_the_port_and_the_ipip_device():
    f = good("fou:5555", decap=())
    f.links = links(tunl0=Link("tunl0", 4, "ipip", 1480, noarp=True))
    assert bc.check_tunnel(f)[0].status == "fail"            # no FOU port
    f.fou = (FouPort(5555, False, 4),)
    assert bc.check_tunnel(f)[0].status == "ok"
    f.fou = (FouPort(5555, True),)                           # a GUE port is not a FOU port
    assert bc.check_tunnel(f)[0].status == "fail"


def test_mss_too_big_for_the_tunnel_gets_advmss():
    f = good("gue:6080")
    f.routes[4] = Route(4, "default", "eth0", "10.0.0.1")
    [finding] = bc.check_mtu(f)
    assert finding.status == "fail" and "MSS 1460" in finding.message and "1428" in finding.message
    assert finding.fix.startswith("ip route replace default via 10.0.0.1 dev eth0 advmss 1428")
    assert "ip link set" not in finding.fix          # replies leave by eth0: its MTU raises the MSS too
    f.links = links(eth1=Link("eth1", 5, "veth", 1500))
    f.routes[4] = Route(4, "10.9.0.0/16", "eth1", "", mtu=1500, metric=100, src="10.9.0.2")
    [finding] = bc.check_mtu(f)
    assert finding.fix.startswith("ip route replace 10.9.0.0/16 dev eth1 src 10.9.0.2 metric 100 mtu 1500 "
                                  "advmss 1428")
    assert "ip link set eth0 mtu 1532" in finding.fix


def test_mss_follows_the_route_mtu_and_ipv6_headers():
    f = good("ipip", vips=(VIP6,))
    f.routes[6] = Route(6, "default", "eth0", "fe80::1", mtu=1460)
    [finding] = bc.check_mtu(f)
    assert finding.status == "ok" and "MSS 1400 <= 1420" in finding.message
    f.links = links(eth0=Link("eth0", 2, "veth", 1600))      # a bigger tunnel path, replies kept at 1500
    f.routes[6] = Route(6, "default", "eth0", "fe80::1", mtu=1500)
    assert bc.check_mtu(f)[0].status == "ok"
    f.routes[6] = Route(6, "default", "eth0", "fe80::1")     # but then the MSS grows with it
    assert bc.check_mtu(f)[0].status == "fail"


def test_no_route_to_clients_is_a_problem():
    f = good("ipip")
    f.routes[4] = None
    [finding] = bc.check_mtu(f)
    assert finding.check == "route" and finding.status == "fail"


def test_tunnel_arguments():
    assert str(tunnels.parse("GUE:6080")) == "gue:6080"
    for bad in ("vxlan", "fou", "fou:0", "ipip:5"):
        with pytest.raises(ValueError, match="--tunnel"):
            tunnels.parse(bad)


def test_overheads_are_the_data_planes():
    # docs/real-servers.md §5: MSS for a 1500-byte path, IPv4 VIP, outer IPv4 / IPv6
    assert [tunnels.max_mss(1500, k, 4, 4) for k in ("ipip", "gre", "fou", "gue")] == [1440, 1436, 1432, 1428]
    assert [tunnels.max_mss(1500, k, 6, 6) for k in ("ipip", "gre", "fou", "gue")] == [1400, 1396, 1392, 1388]


def test_ip_fou_show_is_parsed():
    parsed = parse_fou("port 5555 ipproto 4\nport 6080 gue -6\n")
    assert parsed == (FouPort(5555, False, 4, 4), FouPort(6080, True, 0, 6))
