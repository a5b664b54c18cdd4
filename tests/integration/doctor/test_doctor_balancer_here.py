"""`vc5ctl doctor` (balancer) on this machine, where no vc5 daemon runs: a private system bus
with nobody on it, a real veth named in the configuration, real XDP and ethtool state.

Absent daemons must be findings with their fix (not a crash); the interface's own state
(no XDP program, then one in generic mode; VLAN offload on, then off) must be read as it is.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.lib import netns
from tests.lib.require import CLEAN_PATH, require

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "services")
PREFIX = "wt-doctor-"
CONFIG = """
interfaces: [lb0]
flows_per_cpu: 100000
vlans: {10: 192.0.2.254/24}
services:
  - virtual: 203.0.113.1
    servers: [192.0.2.10]
    policy: {http: {}}
"""


def env(*argv):
    return ["env", f"PYTHONPATH={SERVICES}", "PYTHONDONTWRITEBYTECODE=1", f"PATH={CLEAN_PATH}",
            f"DBUS_SYSTEM_BUS_ADDRESS={os.environ['DBUS_SYSTEM_BUS_ADDRESS']}", sys.executable, *argv]


@pytest.fixture
def balancer(root, private_bus, tmp_path):
    require("pyroute2", "python3-pyroute2")
    require("bcc", "python3-bpfcc")
    lb, peer = netns.Netns.create(PREFIX + "l"), netns.Netns.create(PREFIX + "p")
    base = f"/sys/fs/bpf/{PREFIX}bal-{os.getpid()}"
    try:
        netns.veth(lb, "lb0", peer, "pb0")
        config = tmp_path / "vc5.yaml"
        config.write_text(CONFIG)
        yield lb, str(config), base
    finally:
        lb.run(env("-m", "vc5.decap", "--pin-base", base, "detach", "lb0"), check=False)
        lb.delete()
        peer.delete()


def doctor(ns, config):
    p = ns.run(env("-m", "vc5.cli", "doctor", "--config", config, "--json"), check=False)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    doc = json.loads(p.stdout)
    return p.returncode, {(f["check"], f["subject"]): f for f in doc["findings"]}


def test_absent_daemons_and_the_interface_as_it_is(balancer):
    lb, config, base = balancer
    rc, found = doctor(lb, config)
    assert rc == 1
    assert found[("config", config)]["status"] == "ok"
    assert found[("bpffs", "/sys/fs/bpf")]["status"] == "ok"
    for check, unit in (("loader", "vc5-xdp-loader"), ("bgp", "vc5-bgpd"), ("health", "vc5-healthd")):
        f = found[(check, unit)]
        assert f["status"] == "fail" and "not on the bus" in f["message"]
        assert f["fix"].startswith(f"systemctl start {unit}")
    xdp = found[("xdp", "lb0")]
    assert xdp["status"] == "fail" and "no XDP program attached" in xdp["message"]
    assert found[("memory", "flows")]["status"] == "ok"
    assert ("queues", "lb0") in found

    # veth's VLAN offload, as ethtool sets it, is read: on is a problem (VLANs are configured) ...
    lb.run("ethtool -K lb0 rxvlan on txvlan on")
    rc, found = doctor(lb, config)
    vlan = found[("offload", "lb0")]
    assert vlan["status"] == "fail" and "VLAN offload on" in vlan["message"]
    assert vlan["fix"] == "ethtool -K lb0 rxvlan off txvlan off"
    lb.run(vlan["fix"])                 # ... and its fix clears it
    lb.run(env("-m", "vc5.decap", "--pin-base", base, "attach", "lb0", "--mode", "generic",
               "--vip", "203.0.113.1"))
    rc, found = doctor(lb, config)
    assert found[("offload", "lb0")]["status"] == "ok"
    xdp = found[("xdp", "lb0")]
    prog = json.loads(lb.run("ip -j link show lb0").stdout)[0]["xdp"]["prog"]["id"]
    assert xdp["status"] == "warn" and "generic" in xdp["message"] and "xdp_mode: native" in xdp["fix"]
    assert xdp["message"].startswith(f"program {prog} attached in generic")
