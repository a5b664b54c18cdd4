"""`vc5ctl doctor backend` inside real network namespaces, each wrong in one way.

    router netns ── veth ── backend netns (one per case: VIP on lo, sysctls, routes, vc5-decap)

Each case runs the real command through `nsenter --net` (/proc/sys/net and netlink are per
namespace), asserts that exactly its problem is reported with its fix, then runs the printed
fix in the namespace and asserts that the doctor is then satisfied: the fixes are real commands.
The kernel here has no ipip/gre/fou modules, so tunnels are terminated by vc5-decap (generic XDP).
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.lib import netns
from tests.lib.require import CLEAN_PATH, require

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SERVICES = os.path.join(REPO, "services")
VIP = "192.0.2.10"
VIP6 = "2001:db8::10"
PREFIX = "wt-doctor-"


class Lab:
    def __init__(self):
        self.router = netns.Netns.create(PREFIX + "r")
        self.base = f"/sys/fs/bpf/{PREFIX}pins-{os.getpid()}"
        self.made = []          # (netns, device with vc5-decap or None)
        self.subnet = 0

    def env(self, *argv):
        return ["env", f"PYTHONPATH={SERVICES}", "PYTHONDONTWRITEBYTECODE=1", f"PATH={CLEAN_PATH}",
                sys.executable, *argv]

    def backend(self, dev, *, vip=True, arp=True, rp_filter=2, decap=True, advmss=1440, reply_dev=None,
                advmss6=0):
        """A backend netns wired to the router; correct unless told otherwise."""
        self.subnet += 1
        ns = netns.Netns.create(PREFIX + "b")
        self.made.append((ns, dev))
        devices = [dev] + ([reply_dev] if reply_dev else [])
        for i, d in enumerate(devices):
            netns.veth(self.router, f"r{self.subnet}{i}", ns, d)
            ns.run(f"ip addr add 10.77.{self.subnet * 2 + i}.2/24 dev {d}")
        if vip:
            ns.run(f"ip addr add {VIP}/32 dev lo")
        if advmss6:             # IPv6 too: the VIP on lo and a default route with that advmss
            ns.run(f"ip addr add {VIP6}/128 dev lo && "
                   f"ip addr add fd77:{self.subnet}::2/64 dev {dev} nodad && "
                   f"ip -6 route add default via fd77:{self.subnet}::1 dev {dev} advmss {advmss6}")
        out = reply_dev or dev
        ns.run(f"ip route add default via 10.77.{self.subnet * 2 + (1 if reply_dev else 0)}.1 dev {out}"
               + (f" advmss {advmss}" if advmss else ""))
        ns.sysctl("net.ipv4.conf.all.arp_ignore", 1 if arp else 0)
        ns.sysctl("net.ipv4.conf.all.arp_announce", 2 if arp else 0)
        ns.sysctl("net.ipv4.conf.all.rp_filter", rp_filter)
        for d in devices:
            for key in ("arp_ignore", "arp_announce", "rp_filter"):
                ns.sysctl(f"net.ipv4.conf.{d}.{key}", 0)
        if decap:
            self.attach(ns, dev, "--types", "ipip")
        return ns

    def attach(self, ns, dev, *options):
        ns.run(self.env("-m", "vc5.decap", "--pin-base", self.base, "attach", dev, "--mode", "generic",
                        *options))

    def doctor(self, ns, *args):
        p = ns.run(self.env("-m", "vc5.cli", "doctor", "backend", "--vip", VIP, "--decap-pins", self.base,
                            "--json", *args), check=False)
        assert p.returncode in (0, 1), p.stdout + p.stderr
        return p.returncode, json.loads(p.stdout)

    def close(self):
        for ns, dev in self.made:
            ns.run(self.env("-m", "vc5.decap", "--pin-base", self.base, "detach", dev), check=False)
            ns.delete()
        self.router.delete()
        try:
            os.rmdir(self.base)
        except OSError:
            pass


@pytest.fixture(scope="module")
def lab(root):
    require("bcc", "python3-bpfcc")
    require("pyroute2", "python3-pyroute2")
    netns.cleanup_prefix(PREFIX)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def problems(doc):
    return [f for f in doc["findings"] if f["status"] != "ok"]


def fixed(lab, ns, finding, *args, command=None):
    """Run the finding's fix (its first alternative) in `ns`, then the doctor again."""
    ns.run(command or finding["fix"].split("  (")[0].split(" (or")[0])
    return lab.doctor(ns, *args)


def test_correct_backend_reports_clean(lab):
    ns = lab.backend("dg0")
    rc, doc = lab.doctor(ns, "--tunnel", "ipip")
    assert rc == 0 and doc["ok"] and problems(doc) == [], doc
    checks = {(f["check"], f["subject"]) for f in doc["findings"]}
    assert {("vip", VIP), ("rp_filter", "dg0"), ("tunnel", "dg0"), ("mtu", "IPv4 default")} <= checks
    assert any(f["check"] == "arp" for f in doc["findings"])


def test_correct_dual_stack_backend_and_its_ipv6_mss(lab):
    ns = lab.backend("d60", advmss6=1420)        # IPv6 VIP in IPv4 IPIP: 1500 - 20 - 60
    rc, doc = lab.doctor(ns, "--vip", VIP6, "--tunnel", "ipip")
    assert rc == 0 and problems(doc) == [], doc
    assert {f["subject"] for f in doc["findings"] if f["check"] == "mtu"} == {"IPv4 default", "IPv6 default"}
    ns.run(f"ip -6 route change default via fd77:{lab.subnet}::1 dev d60 advmss 1440")
    rc, doc = lab.doctor(ns, "--vip", VIP6, "--tunnel", "ipip")
    [p] = problems(doc)
    assert rc == 1 and p["subject"] == "IPv6 default" and "above 1420" in p["message"]
    assert p["fix"].startswith(f"ip -6 route replace default via fd77:{lab.subnet}::1 dev d60")
    assert fixed(lab, ns, p, "--vip", VIP6, "--tunnel", "ipip")[0] == 0


def test_vip_missing(lab):
    ns = lab.backend("dv0", vip=False, decap=False)
    rc, doc = lab.doctor(ns)
    [p] = problems(doc)
    assert rc == 1 and p["check"] == "vip" and "not configured" in p["message"]
    assert p["fix"] == f"ip addr add {VIP}/32 dev lo"
    assert fixed(lab, ns, p)[0] == 0


def test_arp_not_suppressed(lab):
    ns = lab.backend("da0", arp=False, decap=False)
    rc, doc = lab.doctor(ns)
    found = problems(doc)
    assert rc == 1 and [p["check"] for p in found] == ["arp", "arp"]
    assert "da0" in found[0]["message"] and "answers ARP" in found[0]["message"]
    assert [p["fix"] for p in found] == ["sysctl -w net.ipv4.conf.all.arp_ignore=1",
                                         "sysctl -w net.ipv4.conf.all.arp_announce=2"]
    fixed(lab, ns, found[0])
    assert fixed(lab, ns, found[1])[0] == 0


def test_rp_filter_strict_with_asymmetric_replies(lab):
    ns = lab.backend("dr0", rp_filter=1, reply_dev="dr1")
    rc, doc = lab.doctor(ns, "--tunnel", "ipip")
    [p] = problems(doc)
    assert rc == 1 and p["check"] == "rp_filter" and p["subject"] == "dr0"
    assert "strict" in p["message"] and "dr1" in p["message"]
    assert p["fix"] == "sysctl -w net.ipv4.conf.all.rp_filter=2"
    assert fixed(lab, ns, p, "--tunnel", "ipip")[0] == 0


def test_tunnel_not_terminated(lab):
    ns = lab.backend("dt0", decap=False, advmss=1428)                  # GUE over IPv4 adds 32 bytes
    rc, doc = lab.doctor(ns, "--tunnel", "gue:6080")
    [p] = problems(doc)
    assert rc == 1 and p["check"] == "tunnel" and "nothing terminates gue:6080" in p["message"]
    assert p["fix"].startswith("vc5-decap attach dt0 --types gue --gue-port 6080 (or: modprobe fou")
    lab.attach(ns, "dt0", "--types", "gue", "--gue-port", "6080")       # the fix, with the test's pins
    rc, doc = lab.doctor(ns, "--tunnel", "gue:6080")
    assert rc == 0 and problems(doc) == [], doc
    rc, doc = lab.doctor(ns, "--tunnel", "gre")
    assert [p["check"] for p in problems(doc)] == ["tunnel"]          # vc5-decap takes gue only here


def test_mtu_too_big_for_the_tunnel(lab):
    ns = lab.backend("dm0", advmss=0)
    rc, doc = lab.doctor(ns, "--tunnel", "ipip")
    [p] = problems(doc)
    assert rc == 1 and p["check"] == "mtu" and "MSS 1460" in p["message"] and "1440" in p["message"]
    gateway = f"10.77.{lab.subnet * 2}.1"
    assert p["fix"].startswith(f"ip route replace default via {gateway} dev dm0 advmss 1440")
    assert fixed(lab, ns, p, "--tunnel", "ipip")[0] == 0
    assert "advmss 1440" in ns.run("ip route show default").stdout
