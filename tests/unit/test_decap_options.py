"""vc5-decap's option handling and VIP sources (pure: no root, no bcc)."""

import ipaddress
import socket

import pytest

from vc5.decap import maps, options
from vc5.decap.__main__ import EXIT_USAGE, main


def test_default_types_follow_the_ports():
    assert options.accept(None).types == ("ipip", "gre")
    acc = options.accept(None, fou_port="5555", gue_port=6080)
    assert acc.types == ("ipip", "gre", "fou", "gue") and (acc.fou_port, acc.gue_port) == (5555, 6080)


def test_config_round_trip():
    acc = options.accept("gue,ipip", gue_port=6080, check_udp_csum=False)
    cfg = acc.config(build=42)
    assert (cfg.types, cfg.fou_port, cfg.gue_port, cfg.flags, cfg.build) == (0b1001, 0, 6080, 0, 42)
    assert cfg.layout == maps.LAYOUT_VERSION
    assert options.Accept.from_config(cfg) == acc


@pytest.mark.parametrize("types,fou,gue,why", [
    ("vxlan", None, None, "unknown tunnel type"),
    ("fou", None, None, "--fou-port"),
    ("gue", None, None, "--gue-port"),
    ("fou,gue", 6080, 6080, "cannot share"),
    (None, "0", None, "1..65535"),
    (None, None, "http", "must be a number"),
])
def test_bad_options_are_usage_errors(types, fou, gue, why):
    with pytest.raises(options.UsageError, match=why):
        options.accept(types, fou, gue)


def test_vips_from_lo():
    got = options.lo_networks([(socket.AF_INET, "127.0.0.1", 8), (socket.AF_INET6, "::1", 128),
                               (socket.AF_INET, "192.0.2.80", 32), (socket.AF_INET, "203.0.113.1", 24),
                               (socket.AF_INET6, "2001:db8::80", 64)])
    assert [str(n) for n in got] == ["192.0.2.80/32", "203.0.113.0/24", "2001:db8::80/128"]


def test_vip_keys_map_ipv4_into_ipv6():
    for text in ("192.0.2.80/32", "203.0.113.0/24", "2001:db8::/64"):
        net = ipaddress.ip_network(text)
        assert maps.key_network(maps.vip_key(net)) == net
    assert maps.vip_key(ipaddress.ip_network("192.0.2.80/32")).prefixlen == 128
    with pytest.raises(options.UsageError):
        options.parse_vips(["192.0.2.80/24"])


def test_usage_errors_exit_2(capsys):
    assert main(["attach", "eth0", "--types", "fou"]) == EXIT_USAGE
    assert "eth0: --types includes fou" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["attach"])
    assert e.value.code == EXIT_USAGE
