"""Real HTTP through every tunnel type and family mix, decapsulated by `vc5-decap`.

    "balancer" netns                                   backend netns
    curl -> VIP ──route VIP via backend──> l0 ══ veth ══ b0 (vc5-decap attach b0, XDP)
              tc egress on l0: encap_tc.c              lo: VIP4, VIP6; HTTP server on :8080
    <──────────────── the reply, straight from the VIP (DSR), not encapsulated ─────┘

The kernel here has no ipip/gre/fou modules: without vc5-decap the backend
cannot take the encapsulated packets at all, which `detach` demonstrates.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
import json
import os
import subprocess
import sys
import tempfile

import pytest

from tests.lib import netns
from tests.lib.require import require, require_program
from tests.lib.wait import until

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SERVICES = os.path.join(REPO, "services")
LB4, BE4, LB6, BE6 = "10.203.0.1", "10.203.0.2", "fd03::1", "fd03::2"
LB_MAC, BE_MAC = "02:00:00:03:00:01", "02:00:00:03:00:02"
VIP4, VIP6 = "192.0.2.80", "2001:db8:80::80"
FOU_PORT, GUE_PORT, HTTP_PORT = 5555, 6080, 8080
TYPES = {"ipip": 1, "gre": 2, "fou": 3, "gue": 4}
BODY = b"served from the VIP through vc5-decap\n"


class EncapCfg(ct.Structure):       # struct encap_cfg in encap_tc.c
    _fields_ = [("type", ct.c_uint32), ("outer6", ct.c_uint32), ("port", ct.c_uint16), ("pad", ct.c_uint16),
                ("vip4", ct.c_uint8 * 4), ("vip6", ct.c_uint8 * 16), ("src4", ct.c_uint8 * 4),
                ("dst4", ct.c_uint8 * 4), ("src6", ct.c_uint8 * 16), ("dst6", ct.c_uint8 * 16)]


def _b(addr: str, n: int):
    return (ct.c_uint8 * n)(*ipaddress.ip_address(addr).packed)


class Encapsulator:
    """encap_tc.c on the balancer side's l0 egress (clsact, direct action)."""

    def __init__(self, ns: netns.Netns, dev: str):
        import bcc
        from pyroute2 import IPRoute
        from pyroute2 import netns as pr_netns

        self.bpf = bcc.BPF(src_file=os.path.join(HERE, "encap_tc.c").encode())
        fn = self.bpf.load_func(b"encap", bcc.BPF.SCHED_CLS)
        pr_netns.pushns(ns.name)
        try:
            ipr = IPRoute()
        finally:
            pr_netns.popns()
        with ipr:
            idx = ipr.link_lookup(ifname=dev)[0]
            ipr.tc("add", "clsact", idx)
            ipr.tc("add-filter", "bpf", idx, ":1", fd=fn.fd, name=fn.name, parent="ffff:fff3",
                   classid=1, direct_action=True)
        self.cfg = self.bpf.get_table(b"cfg")

    def set(self, kind: str, outer6: bool):
        port = {"fou": FOU_PORT, "gue": GUE_PORT}.get(kind, 0)
        c = EncapCfg(TYPES[kind], int(outer6), port, 0, _b(VIP4, 4), _b(VIP6, 16), _b(LB4, 4), _b(BE4, 4),
                     _b(LB6, 16), _b(BE6, 16))
        self.cfg[ct.c_int(0)] = ct.cast(ct.byref(c), ct.POINTER(self.cfg.Leaf)).contents


def decap_cmd(ns: netns.Netns, base: str, *args, check=True):
    env = f"PYTHONPATH={SERVICES} PYTHONDONTWRITEBYTECODE=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin"
    return ns.run(["env", *env.split(), sys.executable, "-m", "vc5.decap", "--pin-base", base, *args],
                  check=check)


def build_lab(lb: netns.Netns, be: netns.Netns):
    netns.veth(lb, "l0", be, "b0", mac_a=LB_MAC, mac_b=BE_MAC)
    for ns, dev, a4, a6 in ((lb, "l0", LB4, LB6), (be, "b0", BE4, BE6)):
        ns.run(f"ip link set {dev} mtu 1600 && ip addr add {a4}/24 dev {dev} && "
               f"ip addr add {a6}/64 dev {dev} nodad")
    lb.run(f"ip neigh replace {BE4} lladdr {BE_MAC} dev l0 && ip neigh replace {BE6} lladdr {BE_MAC} dev l0")
    be.run(f"ip neigh replace {LB4} lladdr {LB_MAC} dev b0 && ip neigh replace {LB6} lladdr {LB_MAC} dev b0")
    # The tunnel overhead fits under 1600; TCP to the VIP keeps to 1400 (docs/real-servers.md, MTU).
    lb.run(f"ip route add {VIP4}/32 via {BE4} mtu 1400 && ip -6 route add {VIP6}/128 via {BE6} mtu 1400")
    lb.run("ip link set dev l0 gso_max_segs 1")        # encap_tc.c handles no GSO packets
    # The backend, as docs/real-servers.md says: VIPs on lo, no ARP for them, loose rp_filter.
    be.run(f"ip addr add {VIP4}/32 dev lo && ip addr add {VIP6}/128 dev lo nodad")
    for key, value in (("net.ipv4.conf.all.arp_ignore", 1), ("net.ipv4.conf.all.arp_announce", 2),
                       ("net.ipv4.conf.all.rp_filter", 2), ("net.ipv4.conf.b0.rp_filter", 2)):
        be.sysctl(key, value)


@pytest.fixture(scope="module")
def lab(root):
    require("bcc", "python3-bpfcc")
    curl = require_program("curl", "curl")
    lb, be = netns.Netns.create("dcl"), netns.Netns.create("dcb")
    base = f"/sys/fs/bpf/vc5-decap-test-{os.getpid()}"
    www = tempfile.mkdtemp(prefix="vc5-decap-www-")
    server = None
    try:
        build_lab(lb, be)
        with open(os.path.join(www, "index.html"), "wb") as f:
            f.write(BODY)
        server = be.popen([sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "::",
                           "--directory", www], stdout=subprocess.DEVNULL)
        until(lambda: be.run(f"ss -ltn sport = :{HTTP_PORT} | grep -q LISTEN", check=False).returncode == 0,
              timeout=10, message="the HTTP server on the backend did not start")
        encap = Encapsulator(lb, "l0")
        decap_cmd(be, base, "attach", "b0", "--types", "ipip,gre,fou,gue", "--fou-port", str(FOU_PORT),
                  "--gue-port", str(GUE_PORT))
        yield {"lb": lb, "be": be, "base": base, "encap": encap, "curl": curl}
    finally:
        if server is not None:
            os.killpg(server.pid, 9)
            server.wait()
        decap_cmd(be, base, "detach", "b0", check=False)
        be.delete()
        lb.delete()
        subprocess.run(["rm", "-rf", www])


def get(lab, vip: str, timeout: float = 3):
    host = f"[{vip}]" if ":" in vip else vip
    return lab["lb"].run([lab["curl"], "-sS", "--max-time", str(timeout), f"http://{host}:{HTTP_PORT}/"],
                         check=False)


def status(lab) -> dict:
    p = decap_cmd(lab["be"], lab["base"], "status", "b0", "--json", check=False)
    return json.loads(p.stdout)


MIXES = [(k, o, i) for k in TYPES for o in (4, 6) for i in (4, 6)]


@pytest.mark.parametrize("kind,outer,inner", MIXES, ids=[f"{k}-{i}in{o}" for k, o, i in MIXES])
def test_http_through_the_tunnel(lab, kind, outer, inner):
    lab["encap"].set(kind, outer == 6)
    before = status(lab)["counters"]
    p = get(lab, VIP4 if inner == 4 else VIP6)
    assert p.returncode == 0, p.stderr
    assert p.stdout.encode() == BODY
    after = status(lab)["counters"]
    assert after[f"decap_{kind}"] - before[f"decap_{kind}"] >= 3      # SYN, ACK, request, ...
    assert after[f"decap_outer_ipv{outer}"] > before[f"decap_outer_ipv{outer}"]


def test_status_shows_the_attachment(lab):
    st = status(lab)
    assert st["attached"] and st["mode"] in ("native", "generic") and not st["problems"]
    assert st["types"] == ["ipip", "gre", "fou", "gue"]
    assert (st["fou_port"], st["gue_port"]) == (FOU_PORT, GUE_PORT)
    assert set(st["vips"]) == {f"{VIP4}/32", f"{VIP6}/128"}          # read from lo
    assert all(st["counters"][f"decap_{k}"] > 0 for k in TYPES)
    text = decap_cmd(lab["be"], lab["base"], "status", "b0").stdout
    assert "attached (" in text and "decap_gue" in text


def test_generic_mode_works_too(lab):
    """Switching mode detaches and attaches again (the kernel holds one mode at a time)."""
    args = ["attach", "b0", "--types", "ipip,gre,fou,gue", "--fou-port", str(FOU_PORT),
            "--gue-port", str(GUE_PORT)]
    mode = status(lab)["mode"]
    decap_cmd(lab["be"], lab["base"], *args, "--mode", "generic")
    try:
        assert status(lab)["mode"] == "generic"
        for kind, outer, vip in (("gue", True, VIP6), ("ipip", False, VIP4), ("gre", True, VIP4)):
            lab["encap"].set(kind, outer)
            p = get(lab, vip)
            assert p.returncode == 0 and p.stdout.encode() == BODY, (kind, p.stderr)
    finally:
        decap_cmd(lab["be"], lab["base"], *args, "--mode", mode)
    assert status(lab)["mode"] == mode


def test_wrong_port_is_counted(lab):
    lab["encap"].set("gue", False)
    decap_cmd(lab["be"], lab["base"], "attach", "b0", "--types", "ipip,gre,fou,gue", "--fou-port",
              str(FOU_PORT), "--gue-port", str(GUE_PORT + 1))
    try:
        before = status(lab)["counters"]["rejected_port"]
        assert get(lab, VIP4, timeout=1).returncode != 0
        assert status(lab)["counters"]["rejected_port"] > before
    finally:
        decap_cmd(lab["be"], lab["base"], "attach", "b0", "--types", "ipip,gre,fou,gue", "--fou-port",
                  str(FOU_PORT), "--gue-port", str(GUE_PORT))
    assert get(lab, VIP4).returncode == 0


def test_detach_stops_the_tunnel(lab):
    lab["encap"].set("fou", True)
    assert get(lab, VIP6).returncode == 0
    p = decap_cmd(lab["be"], lab["base"], "detach", "b0")
    assert "detached program" in p.stdout
    assert not os.path.exists(os.path.join(lab["base"], "b0"))
    assert get(lab, VIP6, timeout=1).returncode != 0      # no fou module: nothing takes the packets
    p = decap_cmd(lab["be"], lab["base"], "status", "b0", check=False)
    assert p.returncode == 1 and "not attached" in p.stderr
