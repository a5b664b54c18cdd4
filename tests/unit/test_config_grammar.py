"""Every idiom of vc5's YAML grammar (vc5-behaviour.md section 2) and our extras compile as documented."""

import ipaddress

import pytest

from vc5.config import Check, ConfigError, load_text, to_vc5_json

ip = ipaddress.ip_address
net = ipaddress.ip_network
VLANS = "vlans: {10: 10.1.10.254/24}\nvlans6: {10: 'fd00:10::254/64'}\n"


def compile_(text):
    return load_text(VLANS + text)


def one_service(policy, extra=""):
    return compile_(f"""
services:
  - virtual: 192.0.2.1
    servers: [10.1.10.10]
{extra}    policy:
{policy}
""")


@pytest.mark.parametrize("key, expected", [
    ("http", [(80, "tcp", Check("http", 80))]),
    ("https", [(443, "tcp", Check("https", 443))]),
    ("8000/http", [(8000, "tcp", Check("http", 8000))]),
    ("8443/https", [(8443, "tcp", Check("https", 8443))]),
    ("domain", [(53, "tcp", Check("dns", 53, method="tcp")), (53, "udp", Check("dns", 53, method="udp"))]),
    ("5353/domain", [(5353, "tcp", Check("dns", 5353, method="tcp")),
                     (5353, "udp", Check("dns", 5353, method="udp"))]),
    ("domain/tcp", [(53, "tcp", Check("dns", 53, method="tcp"))]),
    ("domain/udp", [(53, "udp", Check("dns", 53, method="udp"))]),
    ("9000", [(9000, "tcp", Check("syn", 9000))]),
    ("9000/tcp", [(9000, "tcp", Check("syn", 9000))]),
    ("9000/udp", [(9000, "udp", None)]),
    ("ftp", [(21, "tcp", Check("syn", 21))]),
    ("smtp", [(25, "tcp", Check("syn", 25))]),
    ("ssh", [(22, "tcp", Check("syn", 22))]),
    ("telnet", [(23, "tcp", Check("syn", 23))]),
    ("pop2", [(109, "tcp", Check("syn", 109))]),
    ("pop3", [(110, "tcp", Check("syn", 110))]),
    ("imap", [(143, "tcp", Check("syn", 143))]),
    ("imaps", [(993, "tcp", Check("syn", 993))]),
    ("'http*'", [(80, "tcp", None)]),
    ("'domain*'", [(53, "tcp", None), (53, "udp", None)]),
])
def test_policy_keys(key, expected):
    cfg = one_service(f"      {key}:")
    got = [(s.port, s.protocol, s.backends[0].checks[0] if s.backends[0].checks else None)
           for s in cfg.services]
    assert got == expected


def test_virtual_string_or_list_and_star():
    cfg = compile_("""
services:
  - virtual: 192.0.2.1
    servers: [10.1.10.10]
    policy: {http: }
  - virtual: ["192.0.2.2*", "2001:db8::2"]
    servers: [10.1.10.10]
    policy: {http: }
""")
    assert [(str(s.vip), s.disabled) for s in cfg.services] == [
        ("192.0.2.1", False), ("192.0.2.2", True), ("2001:db8::2", False)]
    assert to_vc5_json(cfg)["services"]["192.0.2.2:80:tcp"]["disabled"] is True
    assert "disabled" not in to_vc5_json(cfg)["services"]["192.0.2.1:80:tcp"]


def test_server_groups_star_and_weights():
    cfg = compile_("""
servers:
  web:
    - 10.1.10.12
    - 10.1.10.10*
    - {address: 10.1.10.11, weight: 3}
    - {address: 10.1.10.13, disabled: true}
services:
  - virtual: 192.0.2.1
    servers: web
    policy: {http: }
""")
    b = {str(x.address): (x.disabled, x.weight) for x in cfg.services[0].backends}
    assert b == {"10.1.10.10": (True, 1), "10.1.10.11": (False, 3), "10.1.10.12": (False, 1),
                 "10.1.10.13": (True, 1)}
    assert [str(x.address) for x in cfg.services[0].backends] == sorted(b)
    reals = to_vc5_json(cfg)["services"]["192.0.2.1:80:tcp"]["reals"]
    assert reals["10.1.10.10:80"] == {"checks": [{"type": "http"}], "disabled": True, "weight": 0}
    assert reals["10.1.10.11:80"]["weight"] == 3


def test_named_policy_and_per_entry_overrides():
    cfg = compile_("""
scheduler: roundrobin
policy:
  web:
    http:
    https: {path: /tls, need: 2, sticky: true, scheduler: maglev, persist: 300, reset: true,
            name: tls, description: the tls one, priority: low}
services:
  - name: web
    description: two ports
    virtual: 192.0.2.1
    servers: [10.1.10.10, 10.1.10.11]
    path: /alive
    host: www.example.com
    policy: web
""")
    http, https = cfg.services
    assert (http.name, http.description, http.need, http.sticky, http.scheduler, http.priority) == \
        ("web", "two ports", 1, False, "roundrobin", "critical")
    assert (https.name, https.description, https.need, https.sticky, https.scheduler, https.persist,
            https.reset, https.priority) == ("tls", "the tls one", 2, True, "maglev", 300, True, "low")
    assert http.backends[0].checks == (Check("http", 80, "www.example.com", "/alive"),)
    assert https.backends[0].checks == (Check("https", 443, "www.example.com", "/tls"),)


def test_check_cascade_service_policy_check():
    cfg = one_service("""      9000:
        path: /policy
        expect: 200-204
        checks:
          - type: syn
          - {type: http, port: 8500}
          - {type: https, port: 8443, path: /check, host: other.example.com, method: get, expect: any}
          - {type: dns, port: 5353}
""", extra="    host: svc.example.com\n    method: HEAD\n    expect: 301\n")
    (svc,) = cfg.services
    assert svc.backends[0].checks == (
        Check("syn", 9000),
        Check("http", 8500, "svc.example.com", "/policy", "HEAD", (200, 201, 202, 203, 204)),
        Check("https", 8443, "other.example.com", "/check", "GET", (0,)),
        Check("dns", 5353, method="tcp"),
    )
    j = to_vc5_json(cfg)["services"]["192.0.2.1:9000:tcp"]["reals"]["10.1.10.10:9000"]["checks"]
    assert j[0] == {"type": "syn"}
    assert j[1] == {"type": "http", "port": 8500, "host": "svc.example.com", "path": "/policy",
                    "method": "HEAD", "expect": [200, 201, 202, 203, 204]}
    assert j[3] == {"type": "dns", "port": 5353, "method": "tcp"}


@pytest.mark.parametrize("text, codes", [
    ("200", (200,)), ("'200 301'", (200, 301)), ("'200-202 404'", (200, 201, 202, 404)),
    ("any", (0,)), ("[200, 302]", (200, 302)), ("'204-200'", (200, 201, 202, 203, 204)),
])
def test_expect_forms(text, codes):
    cfg = one_service(f"      http: {{expect: {text}}}")
    assert cfg.services[0].backends[0].checks[0].expect == codes


def test_empty_checks_means_no_checks_and_dns_method_follows_protocol():
    cfg = one_service("      http: {checks: []}\n      domain/udp: {checks: [{type: dns}]}\n"
                      "      domain/tcp: {method: udp}")
    dns_tcp, dns_udp, http = cfg.services   # sorted by (vip, port, protocol)
    assert http.backends[0].checks == ()
    assert dns_udp.backends[0].checks == (Check("dns", 53, method="udp"),)
    assert dns_tcp.backends[0].checks == (Check("dns", 53, method="udp"),)   # explicit method wins


def test_defaults_fix_vc5_foot_guns():
    (svc,) = one_service("      http:").services
    assert svc.need == 1 and svc.backends[0].weight == 1
    assert (svc.interval, svc.rise, svc.fall, svc.timeout) == (2.0, 5, 2, None)
    assert (svc.tunnel_type, svc.tunnel_port, svc.priority, svc.scheduler) == ("none", 0, "critical", None)


def test_tunnels_and_health_timing_extras():
    cfg = one_service("      http: {rise: 3, fall: 1, timeout: 0.5}\n",
                      extra="    tunnel-type: gue\n    tunnel-port: 6080\n    tunnel-no-checksum: true\n"
                            "    interval: 1.5\n")
    (svc,) = cfg.services
    assert (svc.tunnel_type, svc.tunnel_port, svc.tunnel_no_checksum) == ("gue", 6080, True)
    assert (svc.interval, svc.rise, svc.fall, svc.timeout) == (1.5, 3, 1, 0.5)
    assert svc.backends[0].checks[0].timeout == 0.5
    j = to_vc5_json(cfg)["services"]["192.0.2.1:80:tcp"]
    assert (j["tunnel-type"], j["tunnel-port"], j["tunnel-no-checksum"]) == ("gue", 6080, True)


def test_bgp_peers_groups_filters_and_parameters():
    cfg = compile_("""
address: 10.1.10.100
prefixes:
  mine: [192.168.123.0/24, "2001:db8:1::/48"]
bgp:
  as_number: 65000
  hold_time: 2
  local_pref: 200
  med: 50
  communities: [65000:10, "65000:20"]
  source_ip: 10.1.10.100
  next_hop_6: fd00:10::100
  learn: 30
  listen: yes
  peers: [10.1.10.200]
  groups:
    - name: edge
      as_number: 4200000001
      peer_as: 65100
      hold_time: 30
      large_communities: ["4200000001:1:2"]
      next_hop_4: 10.1.10.99
      passive: true
      md5: s3cret
      port: 1179
      accept: [mine, 10.9.9.9, 172.16.0.0/12]
      reject: [any]
      peers: [10.1.10.201]
""")
    bgp = cfg.bgp
    assert (bgp.as_number, bgp.router_id, bgp.learn, bgp.listen) == (65000, ip("10.1.10.100"), 30, True)
    assert cfg.learn == 30
    top, edge = bgp.peers
    assert (top.address, top.group, top.as_number, top.peer_as, top.hold_time) == \
        (ip("10.1.10.200"), None, 65000, None, 10)          # vc5: hold time < 3 -> 10
    assert (top.local_pref, top.med, top.communities) == (200, 50, ("65000:10", "65000:20"))
    assert (top.source_ip, top.next_hop_6, top.multiprotocol) == (ip("10.1.10.100"), ip("fd00:10::100"), True)
    assert (top.accept, top.reject, top.passive, top.md5, top.port) == ((), (), False, None, 179)
    assert (edge.group, edge.as_number, edge.peer_as, edge.hold_time) == ("edge", 4200000001, 65100, 30)
    assert edge.local_pref == 200 and edge.communities == ("65000:10", "65000:20")   # inherited
    assert (edge.large_communities, edge.next_hop_4) == (("4200000001:1:2",), ip("10.1.10.99"))
    assert (edge.passive, edge.md5, edge.port) == (True, "s3cret", 1179)
    assert edge.accept == (net("192.168.123.0/24"), net("2001:db8:1::/48"), net("10.9.9.9/32"),
                           net("172.16.0.0/12"))
    assert edge.reject == (net("0.0.0.0/0"), net("::/0"))
    j = to_vc5_json(cfg)
    assert j["bgp"]["10.1.10.201"]["reject"] == ["0.0.0.0/0"]   # config.pl's rendering of `any`
    assert j["listen"] is True and j["learn"] == 30


def test_top_level_learn_is_kept_and_asdot():
    cfg = load_text("learn: 15\nbgp: {as_number: 1.10, peers: [10.1.10.200]}\n")
    assert cfg.learn == 15 and cfg.bgp.learn == 15 and cfg.bgp.as_number == 65546


def test_legacy_command_line_keys_logging_defcon_and_extras():
    cfg = load_text("""
address: 10.1.10.100
interfaces: [eth0, eth1]
native: true
untagged: false
multicast: 224.0.0.1:9999
host_id: lb1
webserver: ":8080"
webroot: /var/local/vc5
defcon: 3
flows_per_cpu: 100000
logging: {alert: 4, syslog: true, elasticsearch: {index: vc5, addresses: http://10.1.2.31/}}
""")
    assert (cfg.address, cfg.interfaces, cfg.native, cfg.untagged) == \
        (ip("10.1.10.100"), ("eth0", "eth1"), True, False)
    assert (cfg.multicast, cfg.host_id, cfg.webserver, cfg.webroot) == \
        ("224.0.0.1:9999", "lb1", ":8080", "/var/local/vc5")
    assert (cfg.defcon, cfg.xdp_mode, cfg.flows_per_cpu) == (3, "native", 100000)
    assert (cfg.logging.alert, cfg.logging.syslog) == (4, True)
    assert cfg.logging.elasticsearch == {"index": "vc5", "addresses": ("http://10.1.2.31/",)}
    j = to_vc5_json(cfg)
    assert j["interfaces"] == ["eth0", "eth1"] and j["native"] is True and j["defcon"] == 3
    assert j["logging"]["elasticsearch"]["addresses"] == ["http://10.1.2.31/"]
    assert load_text("xdp_mode: auto\n").xdp_mode == "auto"
    assert load_text("{}").xdp_mode == "generic" and load_text("{}").flows_per_cpu == 1_000_000


def test_merge_keys_work():
    cfg = compile_("""
servers:
  web: &web [10.1.10.10]
services:
  - &base
    virtual: 192.0.2.1
    servers: *web
    policy: {http: }
  - <<: *base
    virtual: 192.0.2.2
""")
    assert [str(s.vip) for s in cfg.services] == ["192.0.2.1", "192.0.2.2"]


def test_warnings_do_not_refuse():
    cfg = load_text("""
vlans: {10: 10.1.10.0/24}
services:
  - virtual: 192.0.2.1
    servers: [10.1.10.10, "10.1.10.11*", 10.9.9.9]
    need: 3
    policy: {http: }
""")
    msgs = [w.message for w in cfg.warnings]
    assert any("need 3 but only 2 of 3 servers are enabled" in m for m in msgs)
    assert any("server 10.9.9.9 is in no vlans/vlans6 prefix" in m for m in msgs)
    nov = load_text("services: [{virtual: 192.0.2.1, servers: [10.1.10.10], policy: {http: }}]")
    assert [w.path for w in nov.warnings] == ["vlans"]
    no_id = load_text("bgp: {as_number: 65000, peers: [10.1.10.200]}")
    assert [(w.path, "no BGP router ID" in w.message) for w in no_id.warnings] == [("bgp", True)]
    assert load_text("address: 10.1.10.100\nbgp: {as_number: 65000, peers: [10.1.10.200]}").warnings == ()


def test_yes_no_booleans_and_null_values():
    (svc,) = one_service("      http:", extra="    sticky: yes\n    reset: off\n    path:\n").services
    assert svc.sticky is True and svc.reset is False
    assert svc.backends[0].checks[0].path is None


def test_refusal_is_all_or_nothing():
    with pytest.raises(ConfigError):
        compile_("services: [{virtual: 192.0.2.1, servers: [10.1.10.10], policy: {http: , bogus: }}]")
