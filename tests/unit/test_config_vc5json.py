"""to_vc5_json() reproduces vc5's config.pl output for vc5's own regression fixtures.

Two fixtures contain configurations that we refuse on purpose (see
docs/configuration.md, "Differences from the Go vc5"): the comparison then uses
the fixture's YAML with the refused service(s) removed, against the fixture's
JSON without the key(s) those services produced, and a separate test pins the
refusal.
"""

import glob
import json
import os

import pytest
import yaml

from vc5.config import SECRET, ConfigError, load, load_text, masked, to_vc5_json

FIXTURES = os.path.join(os.path.dirname(__file__), "config_cases", "vc5-fixtures")

# fixture -> (indexes of services[] we refuse, JSON service keys only those services produced)
REFUSED = {
    # services[3]'s `virtual` is prose: config.pl emitted keys "HTTP/HTTPS checks ...:8080:tcp"
    "services02": ([3], ["HTTP/HTTPS checks for services not running on default ports:8080:tcp",
                         "HTTP/HTTPS checks for services not running on default ports:8443:tcp"]),
    # services[0] maps port 80 to 8080 (config.pl -n NAT mode; impossible with DSR);
    # services[2] and services[3] both define 192.168.123.3:80:tcp (config.pl kept the last: services[3])
    "services04": ([0, 2], ["192.168.123.1:80:tcp"]),
}

PAIRS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "*.json")))


def test_every_fixture_with_json_is_compared():
    assert PAIRS == ["bgp01", "bgp02", "services01", "services02", "services03", "services04"]


@pytest.mark.parametrize("name", PAIRS)
def test_vc5_json_equals_config_pl_output(name):
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        expected = json.load(f)
    path = os.path.join(FIXTURES, name + ".yaml")
    if name in REFUSED:
        drop, keys = REFUSED[name]
        with open(path) as f:
            doc = yaml.safe_load(f)
        doc["services"] = [s for i, s in enumerate(doc["services"]) if i not in drop]
        for k in keys:
            del expected["services"][k]
        cfg = load_text(yaml.safe_dump(doc), source=path)
    else:
        cfg = load(path)
    assert to_vc5_json(cfg) == expected


def test_services02_prose_virtual_is_refused():
    with pytest.raises(ConfigError) as e:
        load(os.path.join(FIXTURES, "services02.yaml"))
    (p,) = e.value.problems
    assert (p.line, p.column, p.path) == (42, 14, "services[3].virtual")
    assert "'HTTP/HTTPS checks for services not running on default ports' is not an IPv4 or IPv6 address" \
        in p.message


def test_services04_port_mapping_and_duplicate_are_refused():
    with pytest.raises(ConfigError) as e:
        load(os.path.join(FIXTURES, "services04.yaml"))
    first, second = e.value.problems
    assert (first.line, first.column, first.path) == (14, 13, "services[0].policy.http")
    assert "port 8080 differs from the service port 80" in first.message and "Direct" in first.message
    assert (second.line, second.column, second.path) == (51, 7, "services[3].policy.http")
    assert "192.168.123.3:80:tcp is already defined at" in second.message
    assert "services04.yaml:37:7 (services[2].policy.http)" in second.message


def test_sample_config_json_matches_the_spec():
    cfg = load(os.path.join(FIXTURES, "config.sample.yaml"))
    real = {"checks": [{"path": "/alive", "type": "http"}], "disabled": False, "weight": 1}
    assert to_vc5_json(cfg) == {
        "bgp": {"10.1.10.200": {"as_number": 65000}, "10.1.10.201": {"as_number": 65000}},
        "services": {"192.168.101.1:80:tcp": {
            "name": "nginx", "need": 1, "reset": False, "sticky": False,
            "reals": {f"10.1.10.1{i}:80": real for i in range(4)}}},
    }


def test_ipv6_l3_json():
    j = to_vc5_json(load(os.path.join(FIXTURES, "ipv6-l3.yaml")))
    assert j["bgp"] == {"10.1.10.254": {"as_number": 65001, "multiprotocol": True,
                                        "next_hop_6": "fd6e:eec8:76ac:ac1d:100::10"}}
    assert sorted(j["services"]) == ["192.168.101.1:80:tcp", "192.168.101.2:80:tcp",
                                     "fd6e:eec8:76ac:1337::2:80:tcp"]
    bar6 = j["services"]["fd6e:eec8:76ac:1337::2:80:tcp"]
    assert bar6["tunnel-type"] == "gre"
    assert sorted(bar6["reals"]) == ["10.1.10.20:80", "fd6e:eec8:76ac:ac1d:100::20:80"]
    assert j["vlans"] == {"1": "10.1.10.254/24"} and j["vlans6"] == {"1": "fd6e:eec8:76ac:ac1d:100::254/64"}


SECRETS_YAML = """
logging:
  alert: 4
  slack: https://hooks.slack.com/services/T000/B000/XXXX
  teams: https://example.webhook.office.com/webhookb2/YYYY
  elasticsearch:
    index: vc5
    addresses: [http://10.1.2.31/]
    username: elastic
    password: Xg5nRkc9RA3hALMiBw8X
bgp:
  as_number: 65000
  md5: sekrit
  peers: [10.1.10.200]
"""


def test_masked_hides_every_secret_and_keeps_the_rest():
    cfg = load_text(SECRETS_YAML)
    plain = to_vc5_json(cfg)
    m = masked(cfg)
    assert plain["logging"]["slack"].startswith("https://hooks.slack.com/")
    assert m["logging"]["slack"] == m["logging"]["teams"] == SECRET == "************"
    assert m["logging"]["elasticsearch"] == {"index": "vc5", "addresses": ["http://10.1.2.31/"],
                                             "username": SECRET, "password": SECRET}
    assert m["logging"]["alert"] == 4 and m["logging"]["syslog"] is False
    assert m["bgp"]["10.1.10.200"]["md5"] == SECRET
    text = json.dumps(m)
    for secret in ("XXXX", "YYYY", "elastic\"", "Xg5nRkc9RA3hALMiBw8X", "sekrit"):
        assert secret not in text
    assert plain["bgp"]["10.1.10.200"]["md5"] == "sekrit"   # masked() did not alter the unmasked view


def test_extras_appear_in_the_json_only_when_used():
    cfg = load_text("""
vlans: {10: 10.1.10.0/24}
services:
  - name: web
    virtual: 192.0.2.1
    interval: 1
    rise: 3
    fall: 1
    servers:
      - 10.1.10.10
      - {address: 10.1.10.11, weight: 3}
    policy:
      http: {timeout: 0.5}
""")
    svc = to_vc5_json(cfg)["services"]["192.0.2.1:80:tcp"]
    assert (svc["interval"], svc["rise"], svc["fall"], svc["timeout"]) == (1.0, 3, 1, 0.5)
    assert svc["reals"]["10.1.10.11:80"]["weight"] == 3
    assert svc["reals"]["10.1.10.11:80"]["checks"] == [{"type": "http", "timeout": 0.5}]
    assert "priority" not in svc and "tunnel-type" not in svc
