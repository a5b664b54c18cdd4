"""`vc5ctl config check` refuses what this balancer cannot do (issue #15): more services, VIPs,
(service, server) or (VIP, server) pairs than the data plane's maps hold, more servers per
service than a service has slots, a graceful shutdown longer than vc5-bgpd's stop timeout, a
`webserver:` nobody reads. Each refusal is located (FILE:LINE:COLUMN: key.path). The numbers
live in vc5.common.capacity, which the loader's layout uses too.
"""

import os
import re
import subprocess
import sys

import pytest

from vc5.common import capacity
from vc5.config import ConfigError, load_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VLANS = "vlans: {10: 10.200.0.0/16}\n"


def problems(text):
    with pytest.raises(ConfigError) as e:
        load_text(text, source="t.yaml")
    return e.value.problems


def services(n, vip=lambda i: f"10.1.{i // 250}.{i % 250 + 1}", servers="[10.200.0.2]", key=lambda i: "http"):
    """n services, one per entry (3 lines each, the first on line 3 after VLANS and 'services:')."""
    return VLANS + "services:\n" + "".join(
        f"  - virtual: {vip(i)}\n    servers: {servers}\n    policy: {{{key(i)}: }}\n" for i in range(n))


def line_of_entry(i):
    """The line of services[i].policy's key in services()."""
    return 3 + 3 * i + 2


def test_as_many_services_and_vips_as_the_maps_hold_pass():
    cfg = load_text(services(capacity.MAX_SERVICES), source="t.yaml")
    assert len(cfg.services) == capacity.MAX_SERVICES == len(cfg.vips)


def test_1100_services_are_refused_at_the_first_beyond_the_limit():
    got = problems(services(1100, vip=lambda i: f"10.1.0.{i % 4 + 1}", key=lambda i: i + 1))
    assert len(got) == 1, got          # 4 VIPs: only the services limit
    p = got[0]
    n = capacity.MAX_SERVICES
    assert (p.line, p.column) == (line_of_entry(n), 14)
    assert p.path == f"services[{n}].policy.{n + 1}"
    assert p.message.startswith(f"service 10.1.0.1:{n + 1}:tcp is the first beyond the limit: the file "
                                "defines 1,100 services (VIP:port:protocol) and the data plane holds at "
                                "most 1,024")
    assert "docs/operations/limits.md" in p.message


def test_a_vip_beyond_the_vips_map_is_refused_too():
    got = problems(services(capacity.MAX_VIPS + 1))
    assert [p.line for p in got] == [line_of_entry(capacity.MAX_VIPS)] * 2
    assert "1,025 services" in got[0].message
    assert got[1].message.startswith("VIP 10.1.4.25 is the first beyond the limit: the file uses 1,025 VIPs "
                                     "and the data plane holds at most 1,024")


def big_server_list(n=capacity.MAX_BACKENDS):
    return "servers:\n  big:\n" + "".join(f"    - 10.200.{i // 200}.{i % 200 + 2}\n" for i in range(n))


def test_service_server_pairs_beyond_the_backends_map_are_refused():
    per = capacity.MAX_BACKENDS
    fit = capacity.USABLE_PAIRS // per                   # 257 services of 255 servers: 65,535 pairs
    one_vip = dict(vip=lambda i: "10.1.0.1", servers="big", key=lambda i: i + 1)
    load_text(big_server_list() + services(fit, **one_vip), source="t.yaml")
    got = problems(big_server_list() + services(fit + 1, **one_vip))
    assert len(got) == 1, got          # one VIP: 255 (VIP, server) pairs
    assert got[0].path == f"services[{fit}].policy.{fit + 1}"
    assert got[0].line == line_of_entry(fit) + per + 2
    assert f"the file lists {(fit + 1) * per:,}" in got[0].message
    assert "65,535 (service, server) pairs" in got[0].message     # pair 0 means "no record"


def test_vip_server_pairs_beyond_the_probe_addresses_are_refused():
    fit = capacity.MAX_NAT // capacity.MAX_BACKENDS
    got = problems(big_server_list() + services(fit + 1, servers="big"))
    assert len(got) == 2 and {p.path for p in got} == {f"services[{fit}].policy.http"}
    assert "the data plane's 65,535 (service, server) pairs" in got[0].message
    assert "the 65,536 (VIP, server) pairs the data plane can give a health-check probe address: the file " \
           f"has {(fit + 1) * capacity.MAX_BACKENDS:,}" in got[1].message


def test_servers_per_service_come_from_the_slots_of_a_service():
    assert capacity.MAX_BACKENDS == capacity.BACKEND_SLOTS - 1 == 255
    text = big_server_list(capacity.MAX_BACKENDS + 1) + services(1, servers="big")
    got = problems(text)
    assert len(got) == 1 and "has 256 servers; at most 255 per service" in got[0].message


def test_graceful_shutdown_fits_in_the_bgpd_stop_timeout():
    with open(os.path.join(ROOT, "units", "vc5-bgpd.service")) as f:
        unit = f.read()
    timeouts = re.findall(r"(?m)^TimeoutStopSec=(\d+)s$", unit)
    assert timeouts == [str(capacity.BGPD_STOP_TIMEOUT_S)]
    assert capacity.MAX_GRACEFUL_SHUTDOWN_S + capacity.WITHDRAW_MARGIN_S == capacity.BGPD_STOP_TIMEOUT_S
    ok = load_text(f"bgp: {{as_number: 65000, graceful_shutdown: {capacity.MAX_GRACEFUL_SHUTDOWN_S}}}\n")
    assert ok.bgp.graceful_shutdown == capacity.MAX_GRACEFUL_SHUTDOWN_S
    for value in ("600", f"{capacity.MAX_GRACEFUL_SHUTDOWN_S}.5"):
        got = problems(f"bgp:\n  as_number: 65000\n  graceful_shutdown: {value}\n")
        assert [(p.line, p.column, p.path) for p in got] == [(3, 22, "bgp.graceful_shutdown")]
        assert "TimeoutStopSec=130s" in got[0].message and got[0].message.endswith("from 0 to 120")


def test_webserver_must_be_the_files_own_key():
    assert load_text('webserver: "127.0.0.1:8080"\n').webserver == "127.0.0.1:8080"
    got = problems('<<: {webserver: ":8080"}\n')
    assert [(p.line, p.column, p.path) for p in got] == [(1, 6, "webserver")]
    assert "vc5-webd-generator reads only the top-level webserver:" in got[0].message


def test_webserver_forms_the_check_accepts_are_the_ones_the_generator_applies():
    """Every accepted webserver: value becomes vc5-webd.socket's ListenStream= (none is ignored)."""
    import importlib.machinery
    import importlib.util
    path = os.path.join(ROOT, "units", "vc5-webd-generator")
    spec = importlib.util.spec_from_loader("vc5_webd_generator",
                                           importlib.machinery.SourceFileLoader("vc5_webd_generator", path))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for value in (":80", "10.1.2.3:8080", "[::1]:80", "::1:80", "0.0.0.0:443", " :81 "):
        cfg = load_text(f'webserver: "{value}"\n')
        assert gen.listen_stream(cfg.webserver), value
    for value in ("80", "host:80", ":0", ":65536", "[::1]", "10.1.2.3"):
        assert problems(f'webserver: "{value}"\n')[0].path == "webserver"
        assert gen.listen_stream(value) is None, value


def test_tunnel_types_are_the_encapsulations_the_data_plane_builds():
    from vc5.config import model
    from vc5.xdp_loader import layout, planner, specs
    assert model.TUNNEL_TYPES == capacity.TUNNEL_TYPES
    methods = [layout.METHOD_L2, layout.METHOD_IPIP, layout.METHOD_GRE, layout.METHOD_FOU, layout.METHOD_GUE]
    assert [specs.METHODS[t] for t in capacity.TUNNEL_TYPES] == methods
    assert set(specs.METHODS) - {"l2"} == set(capacity.TUNNEL_TYPES)
    # the loader's maps are sized from the same numbers
    assert (layout.MAX_SERVICES, layout.MAX_VIPS, layout.MAX_PAIRS, layout.MAX_NAT, layout.MAX_BACKENDS) == (
        capacity.MAX_SERVICES, capacity.MAX_VIPS, capacity.MAX_PAIRS, capacity.MAX_NAT, capacity.MAX_BACKENDS)
    assert planner.MAX_BACKENDS == capacity.MAX_BACKENDS


def test_the_check_imports_no_data_plane_code():
    code = ("import sys; from vc5.config import load_text; load_text('services: []\\n'); "
            "bad = [m for m in sys.modules if m == 'bcc' or m.startswith(('bcc.', 'vc5.xdp_loader'))]; "
            "print(bad)")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "services"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_vc5ctl_check_refuses_1100_services_naming_file_line_and_key(tmp_path):
    path = tmp_path / "vc5.yaml"
    path.write_text(services(1100, vip=lambda i: f"10.1.0.{i % 4 + 1}", key=lambda i: i + 1))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "services"))
    r = subprocess.run([sys.executable, "-m", "vc5.cli", "config", "check", str(path)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"{path}:{line_of_entry(1024)}:14: services[1024].policy.1025: service "
                               "10.1.0.1:1025:tcp is the first beyond the limit"), r.stderr
