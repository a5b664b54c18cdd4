"""vc5.config loads vc5's own example configurations into the typed model."""

import copy
import ipaddress
import os
import pickle

import pytest

from vc5.config import Backend, Check, Config, ConfigError, load, load_text

# vc5's own examples and config.pl regression fixtures, copied verbatim.
FIXTURES = os.path.join(os.path.dirname(__file__), "config_cases", "vc5-fixtures")

ip = ipaddress.ip_address


def fixture(name):
    return os.path.join(FIXTURES, name)


def test_sample_config_model():
    cfg = load(fixture("config.sample.yaml"))
    assert isinstance(cfg, Config)
    assert cfg.source == fixture("config.sample.yaml")
    assert [s.key for s in cfg.services] == ["192.168.101.1:80:tcp"]
    s = cfg.services[0]
    assert (s.name, s.need, s.protocol, s.priority, s.tunnel_type) == ("nginx", 1, "tcp", "critical", "none")
    assert (s.interval, s.rise, s.fall, s.timeout) == (2.0, 5, 2, None)
    assert [b.address for b in s.backends] == [ip(f"10.1.10.1{i}") for i in range(4)]
    assert s.backends[0] == Backend(ip("10.1.10.10"), 80, False, 1, (Check("http", 80, path="/alive"),))
    assert cfg.vips == (ip("192.168.101.1"),)
    assert [str(p.address) for p in cfg.bgp.peers] == ["10.1.10.200", "10.1.10.201"]
    assert all(p.as_number == 65000 and p.hold_time == 10 and p.local_pref == 100 for p in cfg.bgp.peers)
    assert cfg.vlans == {}


def test_ipv6_l3_model():
    cfg = load(fixture("ipv6-l3.yaml"))
    assert [s.key for s in cfg.services] == [
        "192.168.101.1:80:tcp", "192.168.101.2:80:tcp", "fd6e:eec8:76ac:1337::2:80:tcp"]
    assert cfg.vips == (ip("192.168.101.1"), ip("192.168.101.2"), ip("fd6e:eec8:76ac:1337::2"))
    assert cfg.vlans == {1: ipaddress.ip_interface("10.1.10.254/24")}
    assert cfg.vlans6 == {1: ipaddress.ip_interface("fd6e:eec8:76ac:ac1d:100::254/64")}
    foo = cfg.services[0]
    assert foo.tunnel_type == "ipip"
    assert foo.backends[0].checks == (Check("http", 80, host="foo.example.net", path="/loadbalancer.htm"),)
    bar6 = cfg.services[2]
    assert bar6.tunnel_type == "gre"
    assert [b.address for b in bar6.backends] == [ip("10.1.10.20"), ip("fd6e:eec8:76ac:ac1d:100::20")]
    (peer,) = cfg.bgp.peers
    assert peer.multiprotocol and peer.next_hop_6 == ip("fd6e:eec8:76ac:ac1d:100::10")


def test_model_is_immutable_and_hashable():
    cfg = load(fixture("services01.yaml"))
    s = cfg.services[0]
    with pytest.raises(AttributeError):
        s.need = 3
    with pytest.raises(TypeError):
        cfg.vlans[5] = None
    assert hash(s) == hash(load(fixture("services01.yaml")).services[0])
    assert isinstance(cfg.services, tuple) and isinstance(s.backends, tuple)
    assert hash(cfg) == hash(load(fixture("services01.yaml")))
    assert pickle.loads(pickle.dumps(cfg)) == cfg == copy.deepcopy(cfg)


def test_backend_usable_and_service_lookup():
    cfg = load_text("""
vlans: {10: 10.1.10.0/24}
services:
  - virtual: 192.0.2.1
    servers: [10.1.10.10, "10.1.10.11*"]
    policy: {http: , https: }
""")
    b = cfg.service("192.0.2.1:80:tcp").backends
    assert [x.usable for x in b] == [True, False]
    assert [s.port for s in cfg.services_on(ip("192.0.2.1"))] == [80, 443]
    assert cfg.service("192.0.2.1:81:tcp") is None


def test_domain_expands_to_tcp_and_udp_dns_checks():
    cfg = load(fixture("services01.yaml"))
    tcp = cfg.service("192.168.123.45:53:tcp")
    udp = cfg.service("192.168.123.45:53:udp")
    assert tcp.backends[0].checks == (Check("dns", 53, method="tcp"),)
    assert udp.backends[0].checks == (Check("dns", 53, method="udp"),)
    assert cfg.service("192.168.123.45:993:tcp").backends[0].checks == (Check("syn", 993),)
    assert len(cfg.services) == 11


def test_empty_file_is_an_empty_config():
    cfg = load_text("---\n# nothing yet\n")
    assert cfg.services == () and cfg.bgp is None


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path / "missing.yaml"))
    assert "cannot read" in str(e.value)
