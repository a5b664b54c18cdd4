"""Routed backends end to end (docs/data-plane.md, "Next hop and tunnels"; docs/probe-path.md,
"Tunnels"): the real loader, a router between it and the backend, vc5-decap on the backend
(this kernel has no ipip/gre/fou modules).

    client c0 10.204.0.2 ── rc 10.204.0.1 ┐
                                        router (forwarding; VIPs via the balancer)
    balancer l0 10.204.1.2 ── rl 10.204.1.254 ┘└ rb 10.204.2.1 ── b0 10.204.2.5 backend
    (XDP generic; vlans: {1: 10.204.1.254/24})                   (vc5-decap; VIPs on lo; HTTP :80)

GUE (port 6080) serves VIP 192.0.2.90, IPIP serves 192.0.2.91. The backend is on no local
prefix: the loader sends it to the gateway named by the prefix's host bits, at the router's MAC.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from tests.integration.xdp.bus import BusThread
from tests.lib import netns
from tests.lib.privatebus import private_bus
from tests.lib.require import require_program
from tests.lib.wait import until
from vc5.common import wire

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PY = "/usr/bin/python3"
CLIENT, ROUTER_C = "10.204.0.2", "10.204.0.1"
BALANCER, GATEWAY = "10.204.1.2", "10.204.1.254"
ROUTER_B, BACKEND = "10.204.2.1", "10.204.2.5"
VIP_GUE, VIP_IPIP, GUE_PORT = "192.0.2.90", "192.0.2.91", 6080
ROUTER_L_MAC = "02:00:00:04:01:fe"
DECAP = ("attach", "b0", "--types", "ipip,gue", "--gue-port", str(GUE_PORT), "--mode", "generic")


def services():
    be = (wire.BackendState(BACKEND, 80, up=True),)
    return (wire.ServiceState(VIP_GUE, 80, "tcp", name="gue", up=True, tunnel_type="gue",
                              tunnel_port=GUE_PORT, backends=be),
            wire.ServiceState(VIP_IPIP, 80, "tcp", name="ipip", up=True, tunnel_type="ipip", backends=be),
            wire.ServiceState("192.0.2.92", 80, "tcp", name="l2", up=True, backends=be))


def env():
    e = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"), PYTHONDONTWRITEBYTECODE="1")
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "INVOCATION_ID"):
        e.pop(k, None)
    return e


def decap(lab, *args, check=True):
    return lab["be"].run([PY, "-m", "vc5.decap", "--pin-base", lab["decap_base"], *args], env=env(),
                         check=check)


def build(tmp):
    ns = {k: netns.Netns.create("rt" + k) for k in ("c", "r", "lb", "be")}
    c, r, lb, be = ns["c"], ns["r"], ns["lb"], ns["be"]
    netns.veth(c, "c0", r, "rc")
    netns.veth(lb, "l0", r, "rl", mac_b=ROUTER_L_MAC)
    netns.veth(be, "b0", r, "rb")
    # A veth hands on CHECKSUM_PARTIAL segments (the TCP checksum holds the pseudo-header only)
    # and the tunnel's outer UDP checksum is derived from the inner one (bpf/vc5_encap.h): a real
    # client's frames arrive complete, so the lab's client computes them in full too.
    c.run(f"ip addr add {CLIENT}/24 dev c0 && ip route add default via {ROUTER_C} && ethtool -K c0 tx off")
    r.run(f"ip addr add {ROUTER_C}/24 dev rc && ip addr add {GATEWAY}/24 dev rl && "
          f"ip addr add {ROUTER_B}/24 dev rb")
    for vip in (VIP_GUE, VIP_IPIP, "192.0.2.92"):
        r.run(f"ip route add {vip}/32 via {BALANCER}")
    r.sysctl("net.ipv4.ip_forward", 1)
    lb.run(f"ip addr add {BALANCER}/24 dev l0 && ip route add default via {GATEWAY}")
    be.run(f"ip addr add {BACKEND}/24 dev b0 && ip route add default via {ROUTER_B} && "
           f"ip addr add {VIP_GUE}/32 dev lo && ip addr add {VIP_IPIP}/32 dev lo")
    for n, devs in ((r, ("rc", "rl", "rb")), (lb, ("l0",)), (be, ("b0", "lo")), (c, ("c0",))):
        for dev in ("all", "default", *devs):
            n.sysctl(f"net.ipv4.conf.{dev}.rp_filter", 0)
    for key in ("arp_ignore", "arp_announce"):
        be.sysctl(f"net.ipv4.conf.all.{key}", 1 if key == "arp_ignore" else 2)
    config = os.path.join(tmp, "vc5.yaml")
    with open(config, "w") as f:
        f.write(f"interfaces: [l0]\nvlans:\n  1: {GATEWAY}/24\nxdp_mode: generic\nflows_per_cpu: 4096\n")
    return ns, config


@pytest.fixture(scope="module")
def lab(root):
    curl = require_program("curl", "curl")
    tmp = tempfile.mkdtemp(prefix="vc5routed")
    pin_root = f"/sys/fs/bpf/vc5rt{uuid.uuid4().hex[:8]}"
    procs, made = [], {}
    with private_bus():
        bus = BusThread()
        try:
            made, config = build(tmp)
            lab = dict(made, curl=curl, bus=bus, decap_base=pin_root + "-decap", tmp=tmp)
            server = made["be"].popen([PY, "-m", "http.server", "80", "--bind", "0.0.0.0", "--directory",
                                       tmp], stdout=subprocess.DEVNULL)
            procs.append(server)
            with open(os.path.join(tmp, "index.html"), "w") as f:
                f.write("routed backend\n")
            decap(lab, *DECAP)
            bus.publish(services())
            log = open(os.path.join(tmp, "loader.log"), "w")
            argv = [PY, "-m", "vc5.xdp_loader", "--config", config, "--pin-dir", pin_root + "/v1",
                    "--lock", os.path.join(tmp, "lock"), "--rescan", "30", "--state-dir", tmp]
            loader = made["lb"].popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env(), text=True)
            procs.append(loader)
            lab["loader"] = loader
            until(lambda: in_table(lab, VIP_GUE) and in_table(lab, VIP_IPIP), timeout=40,
                  message="the routed backend never entered the tables")
            yield lab
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, 9)
                    p.wait(10)
            if "be" in made:
                decap(dict(be=made["be"], decap_base=pin_root + "-decap"), "detach", "b0", check=False)
            for n in made.values():
                n.delete()
            bus.close()
            shutil.rmtree(pin_root, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)


def programmed(lab, vip):
    for s in lab["bus"].get("Services"):
        if s[1] == vip:
            return s
    return None


def in_table(lab, vip):
    if lab["loader"].poll() is not None:
        raise AssertionError("the loader exited:\n" + open(os.path.join(lab["tmp"], "loader.log")).read())
    if lab["bus"].owner("org.vc5.XdpLoader1") is None:
        return False
    s = programmed(lab, vip)
    return bool(s and s[5] and s[5][0][2])


def probe_address(lab, vip):
    return {v: a for v, b, a in lab["bus"].get("ProbeAddresses")}.get(vip)


def curl(lab, ns, url, host, timeout=3):
    argv = [lab["curl"], "-sS", "--max-time", str(timeout), "-H", f"Host: {host}", url]
    return lab[ns].run(argv, check=False)


def test_routed_backend_published_with_the_gateway_mac(lab):
    for vip in (VIP_GUE, VIP_IPIP):
        (address, mac, in_tab, valid, reason, ifname, vlan) = programmed(lab, vip)[5][0]
        assert (address, mac, in_tab, valid, reason, ifname) == (BACKEND, ROUTER_L_MAC, True, True, "", "l0")


def test_tunnel_none_to_a_routed_backend_is_refused_with_a_reason(lab):
    s = programmed(lab, "192.0.2.92")
    b = s[5][0]
    assert not b[2] and not b[3] and "tunnel-type none" in b[4] and s[4] == "no usable backend"
    log = open(os.path.join(lab["tmp"], "loader.log")).read()
    assert f"backend {BACKEND} not used for new flows: {BACKEND} is on no local VLAN prefix" in log


def test_vlan_offload_is_off_while_attached(lab):
    out = lab["lb"].run("ethtool -k l0").stdout
    assert "rx-vlan-offload: off" in out and "tx-vlan-offload: off" in out


@pytest.mark.parametrize("vip", [VIP_GUE, VIP_IPIP], ids=["gue", "ipip"])
def test_client_http_through_the_tunnel(lab, vip):
    p = curl(lab, "c", f"http://{vip}/", vip)
    assert p.returncode == 0 and p.stdout == "routed backend\n", p.stderr


@pytest.mark.parametrize("vip", [VIP_GUE, VIP_IPIP], ids=["gue", "ipip"])
def test_probe_through_the_nat_path_in_the_tunnel(lab, vip):
    addr = probe_address(lab, vip)
    assert addr and addr.startswith("255.")
    p = curl(lab, "lb", f"http://{addr}/", vip)
    assert p.returncode == 0 and p.stdout == "routed backend\n", p.stderr


def test_gateway_mac_change_follows_the_neighbour_event_within_a_second(lab):
    import time
    lab["lb"].run(f"ip neigh replace {GATEWAY} lladdr 02:00:00:04:99:99 dev l0 nud permanent")
    t0 = time.monotonic()
    try:
        until(lambda: programmed(lab, VIP_GUE)[5][0][1] == "02:00:00:04:99:99", timeout=1.5,
              interval=0.05, message="the new gateway MAC was not published (rescan is 30 s: netlink events)")
        assert time.monotonic() - t0 < 1.0
    finally:
        lab["lb"].run(f"ip neigh replace {GATEWAY} lladdr {ROUTER_L_MAC} dev l0 nud reachable")
    until(lambda: programmed(lab, VIP_GUE)[5][0][1] == ROUTER_L_MAC, timeout=3, interval=0.05,
          message="the gateway MAC did not come back")


def test_without_decapsulation_the_probe_fails(lab):
    decap(lab, "detach", "b0")
    try:
        for vip in (VIP_GUE, VIP_IPIP):
            p = curl(lab, "lb", f"http://{probe_address(lab, vip)}/", vip, timeout=2)
            assert p.returncode != 0
    finally:
        decap(lab, *DECAP)
    p = curl(lab, "lb", f"http://{probe_address(lab, VIP_GUE)}/", VIP_GUE)
    assert p.returncode == 0, p.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
