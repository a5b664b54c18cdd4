"""Bounded input (issue #12): alias expansion, nesting, file size, large prefix lists, ports.

docs/configuration.md, "Limits". The bomb tests measure CPU time and peak RSS
with resource.getrusage in a child process (a fresh peak), with generous bounds:
before the bound, the 539-byte merge-key bomb took 9.2 s CPU and 1 GiB.
"""

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from vc5.config import ConfigError, load, load_text
from vc5.config import bounded


def problems(text):
    with pytest.raises(ConfigError) as e:
        load_text(text, source="t.yaml")
    return [str(p) for p in e.value.problems]


def merge_bomb(levels: int) -> str:
    """A mapping per level merging the previous one twice: 2**levels pairs when expanded."""
    lines = ["policy:", "  a0: &a0 {http: , https: }"]
    lines += [f"  a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], {i}: }}" for i in range(1, levels + 1)]
    lines += ["services:", f"  - {{virtual: 192.0.2.1, servers: [10.1.10.10], policy: a{levels}}}"]
    return "\n".join(lines) + "\n"


def list_bomb(levels: int) -> str:
    """The classic billion laughs: each list holds the previous one ten times."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\nprefixes: {{x: *l{levels}}}\n"


CHILD = """
import json, resource, sys
from vc5.config import ConfigError, load_text
text = sys.stdin.read()
try:
    load_text(text, source="bomb.yaml")
    out = []
except ConfigError as e:
    out = [str(p) for p in e.problems]
u = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: the latter carries the forking parent's high-water mark across exec
# (a test run's pytest is far bigger than the bound); VmHWM belongs to this image alone.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"problems": out, "cpu": u.ru_utime + u.ru_stime, "rss_kib": hwm}))
"""


def run_child(text):
    """(problems, CPU seconds, peak RSS in MiB) of loading text in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", CHILD], input=text, capture_output=True, text=True,
                       env=env, timeout=60, check=True)
    got = json.loads(r.stdout)
    return got["problems"], got["cpu"], got["rss_kib"] / 1024


@pytest.mark.parametrize("text,alias", [(merge_bomb(24), "*a"), (list_bomb(9), "*l")], ids=["merge", "list"])
def test_alias_bombs_are_refused_quickly_at_the_alias(text, alias):
    assert len(text) < 1000
    found, cpu, rss = run_child(text)
    assert len(found) == 1, found
    assert f"alias {alias}" in found[0] and "past 1,000,000 nodes" in found[0]
    assert found[0].startswith("bomb.yaml:") and found[0].split(":")[1] != "0"
    # generous: the interpreter itself takes ~0.1 s and ~20 MiB
    assert cpu < 1.0, cpu
    assert rss < 200, rss


def test_the_refusal_names_the_line_column_and_key_of_the_alias():
    text = merge_bomb(24)
    [msg] = problems(text)
    line, col = (int(x) for x in msg.split(":")[1:3])
    assert text.splitlines()[line - 1][col - 1:].startswith("*a")
    assert msg.split(": ")[1].startswith(f"policy.a{line - 2}.<<[")


def test_expansion_is_counted_not_only_for_merge_keys():
    # under the bound: loads (the bound counts nodes, it does not refuse aliases)
    cfg = load_text(merge_bomb(10))
    assert len(cfg.services) == 12      # http, https and the ports 1..10
    assert bounded.MAX_NODES == 1_000_000


def test_ordinary_anchors_aliases_and_merge_keys_still_work():
    cfg = load_text("""
servers:
  web: &web [10.1.10.10, 10.1.10.11]
policy:
  base: &base {http: {path: /alive}, https: }
  other: &other {http: {path: /other}, 53: }
  both: &both {<<: [*other, *base], 8443/https: }
services:
  - &first
    virtual: 192.0.2.1
    servers: *web
    need: 2
    sticky: true
    policy: both
  - <<: [{need: 1}, *first]
    virtual: 192.0.2.2
    policy: {<<: *base, 8080/http: }
""")
    by_key = {s.key: s for s in cfg.services}
    # both: the earlier mapping in a merge list wins (other's http path), own keys added
    assert sorted(by_key) == sorted(["192.0.2.1:80:tcp", "192.0.2.1:443:tcp", "192.0.2.1:53:tcp",
                                     "192.0.2.1:8443:tcp", "192.0.2.2:80:tcp", "192.0.2.2:443:tcp",
                                     "192.0.2.2:8080:tcp"])
    assert by_key["192.0.2.1:80:tcp"].backends[0].checks[0].path == "/other"
    assert by_key["192.0.2.2:80:tcp"].backends[0].checks[0].path == "/alive"
    assert by_key["192.0.2.1:80:tcp"].need == 2 and by_key["192.0.2.2:80:tcp"].need == 1
    assert by_key["192.0.2.2:80:tcp"].sticky is True
    # reading `both` did not rewrite `other` or `base` (PyYAML's flatten_mapping would)
    assert "duplicate key" not in " ".join(str(w) for w in cfg.warnings)


def test_merging_the_same_mapping_twice_is_no_duplicate_key():
    cfg = load_text("""
policy:
  a: &a {http: }
  b: &b {<<: [*a, *a], https: }
  c: {<<: [*b, *b], 443/http: }
services:
  - {virtual: 192.0.2.1, servers: [10.1.10.10], policy: b}
""")
    assert [s.port for s in cfg.services] == [80, 443]
    assert [w.message for w in cfg.warnings if "named policy" in w.message] == \
        ["named policy 'a' is not used by any service", "named policy 'c' is not used by any service"]


def test_bad_merge_keys_keep_their_messages():
    found = problems("services:\n  - <<: 5\n    virtual: 192.0.2.1\n")
    assert found[0] == ("t.yaml:2:5: services[0]: bad merge key: expected a mapping or list of mappings "
                        "for merging, but found scalar")
    found = problems("x: &x {http: }\npolicy:\n  p: {<<: [*x, 7]}\n")
    assert "t.yaml:3:6: policy.p: bad merge key: expected a mapping for merging, but found scalar" in found


def test_recursive_alias_is_refused():
    assert problems("a: &a [1, *a]\n") == [
        "t.yaml:1:11: a[1]: alias *a is inside the node it refers to; recursive structures are not allowed"]
    assert problems("a: &a {<<: *a}\n")[0].startswith("t.yaml:1:12: a.<<: alias *a is inside")


def test_deep_nesting_is_refused_without_crashing():
    # libyaml's C composer recursed and crashed the process (SIGSEGV) at 100,000 levels
    found = problems("x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert len(found) == 1 and "nesting deeper than 64 levels" in found[0]
    assert found[0].startswith("t.yaml:1:")
    assert bounded.compose("x: " + "[" * 60 + "]" * 60 + "\n") is not None


def test_undefined_alias_is_a_located_syntax_error():
    assert problems("a: *nothing\n") == ["t.yaml:1:4: YAML syntax error: found undefined alias 'nothing'"]


def test_file_size_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(bounded, "MAX_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * 2000 + "\n")
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert str(e.value).startswith(f"{path}:0:0: the file is larger than 1000 bytes")
    assert "larger than 1000 bytes" in problems("# " + "x" * 2000 + "\n")[0]


# -- prefixes: (O(n), was O(n^2): 20,000 entries took 36 s) ----------------------------------


def prefix_config(n: int, dup_every: int = 0) -> str:
    nets = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32" for i in range(n)]
    if dup_every:
        nets += nets[::dup_every]
    lines = ["address: 10.1.10.100", "prefixes:", "  big:"] + [f"    - {x}" for x in nets]
    lines += ["bgp:", "  as_number: 65000", "  groups:", "    - name: g", "      peers: [10.1.10.200]",
              "      accept: [big, 10.0.0.5/32, big]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("n", [20_000, 100_000])
def test_large_prefix_lists_load_and_keep_the_first_of_duplicates(n):
    cfg = load_text(prefix_config(n, dup_every=1000))
    big = cfg.prefixes["big"]
    assert len(big) == n
    assert big[0] == ipaddress.ip_network("10.0.0.0/32") and big[-1] == ipaddress.ip_network(
        f"10.{(n - 1) >> 16 & 255}.{(n - 1) >> 8 & 255}.{(n - 1) & 255}/32")
    (peer,) = cfg.bgp.peers
    assert peer.accept == big      # the named list twice and one of its own prefixes: each once


def test_prefix_order_and_duplicates_are_as_before():
    cfg = load_text("prefixes:\n  p: [10.0.2.0/24, 10.0.1.0/24, 10.0.2.0/24, 2001:db8::/32, 10.0.1.0/24]\n")
    assert [str(n) for n in cfg.prefixes["p"]] == ["10.0.2.0/24", "10.0.1.0/24", "2001:db8::/32"]


# -- ports ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,why", [
    ("-5", "-5 is out of range: a TCP port from 1 to 65535"),
    ("0", "0 is out of range: a TCP port from 1 to 65535"),
    ("65536", "65536 is out of range: a TCP port from 1 to 65535"),
    ("'+179'", "must be a TCP port from 1 to 65535, not '+179'"),
    ("0x50", "must be a TCP port from 1 to 65535, not '0x50'"),
    ("1_79", "must be a TCP port from 1 to 65535, not '1_79'"),
    ("17.9", "must be a TCP port from 1 to 65535, not '17.9'"),
    ("'١٢'", "must be a TCP port from 1 to 65535, not '١٢'"),
])
def test_bgp_port_refuses_what_is_not_a_port(value, why):
    found = problems(f"bgp:\n  as_number: 65000\n  port: {value}\n  peers: [10.1.10.200]\n")
    assert found == [f"t.yaml:3:9: bgp.port: {why}"]


@pytest.mark.parametrize("where,yaml_,path,what", [
    ("check", "checks: [{type: http, port: PORT}]", "services[0].policy.http.checks[0].port", "a port"),
    ("bind", "bind: PORT", "services[0].policy.http.bind", "a port"),
])
def test_service_ports_refuse_negatives_zero_large_and_signs(where, yaml_, path, what):
    for bad in ("-5", "0", "65536", "'+80'"):
        text = ("services:\n  - virtual: 192.0.2.1\n    servers: [10.1.10.10]\n    policy:\n      http: {"
                + yaml_.replace("PORT", bad) + "}\n")
        found = problems(text)
        assert len(found) == 1 and f": {path}: " in found[0] and "from 1 to 65535" in found[0], (bad, found)
        assert found[0].startswith("t.yaml:5:"), found


def test_tunnel_port_refuses_a_negative():
    found = problems("services:\n  - virtual: 192.0.2.1\n    servers: [10.1.10.10]\n    tunnel-type: fou\n"
                     "    tunnel-port: -5\n    policy: {http: }\n")
    assert "t.yaml:5:18: services[0].tunnel-port: -5 is out of range: a UDP port from 1 to 65535" in found


@pytest.mark.parametrize("key,bad", [
    ("webserver", "1.2.3.4:-5"), ("webserver", ":0"), ("webserver", ":65536"), ("webserver", ":+80"),
    ("webserver", ":²"), ("webserver", ":١٢"), ("webserver", ": 80"),
    ("multicast", "224.0.0.1:-5"), ("multicast", "224.0.0.1:0"), ("multicast", "224.0.0.1:99999"),
    ("multicast", "224.0.0.1:²"), ("multicast", "224.0.0.1:١٢"),
])
def test_listen_and_multicast_ports(key, bad):
    found = problems(f"{key}: \"{bad}\"\n")
    assert len(found) == 1 and found[0].startswith(f"t.yaml:1:{len(key) + 3}: {key}: '{bad}' is not a"), found


def test_good_ports_still_load():
    cfg = load_text('webserver: "[::1]:8080"\nmulticast: "224.0.0.1:9999"\n'
                    "bgp: {as_number: 65000, port: 1179, peers: [10.1.10.200]}\n")
    assert (cfg.webserver, cfg.multicast, cfg.bgp.peers[0].port) == ("[::1]:8080", "224.0.0.1:9999", 1179)
