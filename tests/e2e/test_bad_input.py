"""Bad input from every side, on the running lab: nothing bad gets through, the rest goes on.

- malformed packets to the VIP, as fast as one AF_PACKET sender goes: each kind
  dropped and counted under its err_* counter (org.vc5.XdpLoader1.GetCounters),
  while client traffic through the same balancer carries on;
- a BGP peer that sends garbage: bgpd answers with the NOTIFICATION RFC 4271
  asks for and resets that session only; the router's session and route stay;
- a D-Bus caller without rights: the shipped bus policy refuses .Manager calls
  from anyone but root and lets everyone read;
- a configuration with many errors: `vc5ctl config check` names every one.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

from tests.lab.chaos import LoadClient
from tests.lab.topology import HERE, REPO, VIP4, VIP6
from tests.lib.privatebus import Bus
from tests.lib.require import require
from tests.lib.wait import until

require("scapy.all", "python3-scapy")
from scapy.all import GRE, ICMP, IP, TCP, Ether, IPv6, IPv6ExtHdrFragment, Raw  # noqa: E402

MALFORMED_PER_KIND = 20000


def counters(stack, balancer):
    """(global, per VIP) counters of the balancer's data plane."""
    c = stack.call(balancer, "xdp-loader", "org.vc5.XdpLoader1", "GetCounters")
    return c.totals, c.vips


def malformed_frames(lab, lb):
    """(name, expected err_* counter, frame) for each kind of bad packet to the VIP on lb."""
    src = json.loads(lab.router.ns.run(["ip", "-j", "link", "show", "lan0"]).stdout)[0]["address"]
    eth = Ether(dst=lb.mac, src=src)
    eth4 = Ether(dst=lb.mac, src=src, type=0x0800)      # for IPv4 packets given as raw bytes
    cli, cli6 = lab.client.ip, lab.client.ip6
    tcp = TCP(sport=40000, dport=80, flags="A", seq=1, ack=1)
    ok = IP(src=cli, dst=VIP4, ttl=63) / tcp
    raw_ok = bytes(ok)
    bad_ihl = bytearray(raw_ok)
    bad_ihl[0] = 0x44                                     # IHL 4: shorter than the IPv4 header itself
    options = IP(src=cli, dst=VIP4, ttl=63, options=b"\x01\x01\x01\x00") / tcp
    beyond = bytearray(raw_ok)
    beyond[2:4] = struct.pack(">H", len(raw_ok) + 200)    # total length past the frame's end
    short_tcp = IP(src=cli, dst=VIP4, ttl=63, proto=6) / Raw(b"\x9c\x40\x00\x50\x00\x00\x00\x01")
    return [
        ("truncated IPv4 header", "err_malformed", eth4 / Raw(raw_ok[:12])),
        ("IHL 4", "err_malformed", eth4 / Raw(bytes(bad_ihl))),
        ("IPv4 options", "err_malformed", eth / options),
        ("total length beyond the frame", "err_tot_len", eth4 / Raw(bytes(beyond))),
        ("first fragment (MF)", "err_fragmented", eth / IP(src=cli, dst=VIP4, ttl=63, flags="MF") / tcp),
        ("later fragment (offset)", "err_fragmented",
         eth / IP(src=cli, dst=VIP4, ttl=63, frag=64, proto=6) / Raw(b"x" * 32)),
        ("TTL 1", "err_expired", eth / IP(src=cli, dst=VIP4, ttl=1) / tcp),
        ("hop limit 1 (IPv6)", "err_expired", eth / IPv6(src=cli6, dst=VIP6, hlim=1) / tcp),
        ("IPv6 fragment", "err_fragmented",
         eth / IPv6(src=cli6, dst=VIP6, hlim=63) / IPv6ExtHdrFragment(m=1) / tcp),
        ("port without a service (81)", "err_service_not_found",
         eth / IP(src=cli, dst=VIP4, ttl=63) / TCP(sport=40000, dport=81, flags="S")),
        ("GRE to the VIP", "err_l4_unsupported",
         eth / IP(src=cli, dst=VIP4, ttl=63) / GRE() / Raw(b"y" * 20)),
        ("TCP header cut short", "err_tcp_header", eth / short_tcp),
        ("UDP header cut short", "err_udp_header",
         eth / IP(src=cli, dst=VIP4, ttl=63, proto=17) / Raw(b"\x00\x35")),
        ("ICMP timestamp to the VIP", "err_icmp_unsupported",
         eth / IP(src=cli, dst=VIP4, ttl=63) / ICMP(type=13)),
    ]


def test_malformed_packets_are_dropped_and_counted_while_traffic_goes_on(lab, capsys):
    stack = lab.stack
    lb = lab.balancers[0]
    kinds = malformed_frames(lab, lb)
    path = os.path.join(lab.workdir, "malformed.frames")
    with open(path, "wb") as f:
        for _, _, frame in kinds:
            raw = bytes(frame)
            f.write(struct.pack(">H", len(raw)) + raw)
    load = LoadClient(lab, streams=5, workers=2)
    try:
        g0, v0 = counters(stack, 1)
        backends_rx = [lab.link_stats(be)["rx_packets"] for be in lab.backends]
        with load.event("malformed packets to the VIP on lb1") as ev:
            out = lab.router.ns.run([sys.executable, os.path.join(HERE, "blast.py"), "lan0", path,
                                     str(MALFORMED_PER_KIND * len(kinds)), "20"], timeout=60).stdout
            blast = json.loads(out)
            time.sleep(0.5)
        g1, v1 = counters(stack, 1)
    finally:
        load.close()
    expected = {}
    for (name, counter, _), n in zip(kinds, blast["per_frame"]):
        expected[counter] = expected.get(counter, 0) + n
    with capsys.disabled():
        print(f"\nmalformed frames: {blast['sent']} sent in {blast['seconds']} s ({blast['pps']} frames/s)")
        for counter, n in sorted(expected.items()):
            print(f"  {counter:<24} sent {n:>7}   counted {g1[counter] - g0[counter]:>7}")
    assert blast["sent"] >= MALFORMED_PER_KIND * len(kinds) * 0.9, blast
    for counter, n in expected.items():
        got = g1[counter] - g0[counter]
        # Every frame that reached XDP is counted; the veth may drop a few before it (backlog).
        assert 0.95 * n <= got <= n, f"{counter}: {got} counted for {n} sent"
    errors = sum(g1[c] - g0[c] for c in g1 if c.startswith("err_"))
    assert g1["errors"] - g0["errors"] == errors, "the errors total disagrees with the err_* counters"
    # Dropped, not forwarded: the backends saw about as many packets as the good traffic needs.
    grown = [lab.link_stats(be)["rx_packets"] - rx for be, rx in zip(lab.backends, backends_rx)]
    assert sum(grown) < blast["sent"] / 10, f"backends received {grown} packets during the blast"
    # Good traffic went on.
    r = ev.result
    assert r["failed"] == 0 and r["ok"] > 0, r
    assert not [s for s in r["streams"] if s["reset"] or s["closed"] or s["stalled"]], r["streams"]


# ------------------------------------------------------------------ BGP

def peer(stack, balancer, address):
    for p in stack.prop(balancer, "bgpd", "Peers"):
        if p.address == address:
            return p
    return None


def bird_session(lab, name):
    """(BGP state, since) of BIRD's protocol `name` (columns: name proto table state since info)."""
    for line in lab.birdc("show", "protocols", name).splitlines():
        words = line.split()
        if words and words[0] == name:
            return words[5] if len(words) > 5 else words[3], words[4]
    return None


def settled_bird_session(lab, name):
    """bird_session once it holds still: BIRD moves `since` again as each channel of a session that
    has just come up follows it (a read 21 ms too early once made this test see a 'change')."""
    last = [None]

    def same_twice():
        now = bird_session(lab, name)
        ok, last[0] = now == last[0], now
        return now if ok else None
    return until(same_twice, timeout=10, interval=0.5, message=f"BIRD's {name} session does not settle")


def test_bgp_peer_sending_garbage_gets_a_notification_and_nothing_else_moves(lab):
    stack = lab.stack
    junk = lab.add_lan_host("junk", 5)
    lab.spawn(junk, [sys.executable, os.path.join(HERE, "junk_bgp.py"), "--max-seconds", "90"], "junk-bgp")
    until(lambda: junk.ns.run("ss -Hltn 'sport = :179'", check=False).stdout.strip(), timeout=10,
          message="the junk BGP peer does not listen")
    log = os.path.join(lab.workdir, "junk-bgp.log")
    bird_before = settled_bird_session(lab, "lb1")
    router_before = peer(stack, 1, lab.router.ip)
    assert bird_before[0] == "Established" and router_before.state == "Established"
    routes_before = lab.router.ns.run(f"ip route show {VIP4}").stdout
    peers = f"    - {lab.router.ip}\n"
    text = stack.config_text(1).replace(peers, peers + f"    - {junk.ip}\n")
    stack.write_config(1, text)
    stack.send_signal("bgpd", 1, signal.SIGHUP)
    try:
        def answers():
            lines = [json.loads(x) for x in open(log).read().splitlines() if x.startswith("{")]
            return lines if len(lines) >= 3 else None
        got = until(answers, timeout=60, interval=0.5,
                    message="bgpd did not come back to the junk peer 3 times")
        junk_peer = until(lambda: (p := peer(stack, 1, junk.ip)) and p.counter("notifications_out") >= 3
                          and p, timeout=10,
                          message=f"bgpd's Peers does not count the NOTIFICATIONs it sent: "
                          f"{peer(stack, 1, junk.ip)}")
    finally:
        stack.write_config(1, stack.config_text(1))
        stack.send_signal("bgpd", 1, signal.SIGHUP)
    expected = {"bad-marker": (1, 1), "bad-length": (1, 2), "bad-type": (1, 3)}
    for answer in got:
        first = bytes.fromhex(answer["received_first"])
        assert first[:16] == b"\xff" * 16 and first[18] == 1, f"bgpd did not open with an OPEN: {answer}"
        reply = bytes.fromhex(answer["after_junk"])
        assert reply[:16] == b"\xff" * 16 and reply[18] == 3, \
            f"no NOTIFICATION after {answer['kind']}: {answer}"
        assert (reply[19], reply[20]) == expected[answer["kind"]], (answer["kind"], reply[19:21])
        assert answer["closed"], f"bgpd kept the connection open after {answer['kind']}"
    assert junk_peer.last_error, "bgpd's Peers shows no last_error for the junk peer"
    # The router's session never noticed.
    assert bird_session(lab, "lb1") == bird_before
    router_after = peer(stack, 1, lab.router.ip)
    assert router_after.state == "Established", router_after
    assert router_after.established_at == router_before.established_at, router_after
    assert lab.router.ns.run(f"ip route show {VIP4}").stdout == routes_before
    until(lambda: peer(stack, 1, junk.ip) is None, timeout=10,
          message="the junk peer was not removed on reload")


# ------------------------------------------------------------------ D-Bus policy

ROOT_MAY_OWN = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <!-- The daemons run as root here, not as their static users. -->
  <policy user="root">
    <allow own="org.vc5.Health1"/>
    <allow own="org.vc5.Bgp1"/>
  </policy>
</busconfig>
"""


def test_bus_policy_refuses_manager_calls_from_other_users(lab, tmp_path):
    """The shipped policies (etc/dbus-1/system.d) on a private bus: nobody reads, only root
    (and the group vc5) manages."""
    extra = tmp_path / "policy"
    extra.mkdir()
    (extra / "root-owns.conf").write_text(ROOT_MAY_OWN)
    bus = Bus(policy_dirs=[os.path.join(REPO, "etc", "dbus-1", "system.d"), str(extra)],
              permissive_root=False)
    try:
        # `nobody` must reach the socket for the policy (not the file mode) to decide.
        sock_dir = os.path.dirname(bus.address.split("path=", 1)[1].split(",", 1)[0])
        os.chmod(sock_dir, 0o755)
        conf = os.path.join(lab.workdir, "policy-test.yaml")
        with open(conf, "w") as f:
            # No BGP peer: this bgpd must not disturb the lab's router.
            f.write(lab.stack.config_text(1).replace(f"  peers:\n    - {lab.router.ip}\n", ""))
        env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
        lb = lab.balancers[0]
        lab.spawn(lb, [sys.executable, "-m", "vc5.healthd", "--config", conf], "policy-healthd", env)
        lab.spawn(lb, [sys.executable, "-m", "vc5.bgpd", "--config", conf], "policy-bgpd", env)

        def busctl(*args, user=None):
            argv = ["busctl", f"--address={bus.address}", *args]
            if user:
                argv = ["runuser", "-u", user, "--", *argv]
            return subprocess.run(argv, capture_output=True, text=True, timeout=20)

        until(lambda: busctl("status", "org.vc5.Health1").returncode == 0 and
              busctl("status", "org.vc5.Bgp1").returncode == 0, timeout=30, interval=0.2,
              message="healthd/bgpd did not take their names on the policy bus")
        health = ("org.vc5.Health1", "/org/vc5/Health1")
        bgp = ("org.vc5.Bgp1", "/org/vc5/Bgp1")
        # Everyone may read.
        r = busctl("get-property", *health, "org.vc5.Health1", "Generation", user="nobody")
        assert r.returncode == 0 and r.stdout.strip() == "t 1", r
        r = busctl("get-property", *bgp, "org.vc5.Bgp1", "Generation", user="nobody")
        assert r.returncode == 0, r
        # Nobody else may manage.
        drain = ["ss", "", lab.backends[0].ip]
        for obj, iface, method, args in ((health, "org.vc5.Health1.Manager", "Drain", drain),
                                         (health, "org.vc5.Health1.Manager", "Reload", []),
                                         (bgp, "org.vc5.Bgp1.Manager", "Reload", [])):
            r = busctl("call", *obj, iface, method, *args, user="nobody")
            assert r.returncode != 0 and "Access denied" in r.stderr, (method, r)
        # Nor set a property.
        r = busctl("set-property", *health, "org.vc5.Health1", "Debug", "b", "true", user="nobody")
        assert r.returncode != 0, r
        # Root may.
        r = busctl("call", *health, "org.vc5.Health1.Manager", "Drain", "ss", "", lab.backends[0].ip)
        assert r.returncode == 0 and r.stdout.split()[0] == "u", r
        r = busctl("call", *bgp, "org.vc5.Bgp1.Manager", "Reload")
        assert r.returncode == 0 and r.stdout.strip() == "t 2", r
    finally:
        for name in ("policy-healthd", "policy-bgpd"):
            try:
                proc = lab.process(name)
                proc.terminate()
                proc.wait(timeout=10)
            except (KeyError, subprocess.TimeoutExpired):
                pass
        bus.stop()


# ------------------------------------------------------------------ configuration

EVERY_ERROR = """\
address: 10.0.0.300
interfaces: [eth0]
xdp_mode: turbo
vlans:
  5000: 10.1.0.0/24
bgp:
  as_number: 4294967296
  peers:
    - not-an-address
services:
  - name: bad name!
    virtual: 192.0.2.1
    servers: [10.1.0.1, 10.1.0.2]
    policy:
      70000/tcp:
      https:
        method: carrier-pigeon
  - virtual: 192.0.2.20
    servers: [10.1.0.300]
    frobnicate: yes
    policy:
      dns:
"""
# (line, key path) of each problem in EVERY_ERROR.
EVERY_ERROR_EXPECTED = [
    (1, "address"), (3, "xdp_mode"), (5, "vlans.5000"), (7, "bgp.as_number"), (9, "bgp.peers[0]"),
    (11, "services[0].name"), (15, "services[0].policy.70000/tcp"), (17, "services[0].policy.https.method"),
    (19, "services[1].servers[0]"), (20, "services[1].frobnicate"), (22, "services[1].policy.dns"),
]


def config_check(text):
    """(CompletedProcess of `vc5ctl config check FILE`, FILE); the caller removes FILE."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
    return subprocess.run([sys.executable, "-m", "vc5.cli", "config", "check", f.name], capture_output=True,
                          text=True, timeout=30, env=env, cwd=REPO), f.name


def test_config_check_lists_every_error_at_once():
    r, path = config_check(EVERY_ERROR)
    try:
        assert r.returncode == 1, r
        problems = [line for line in r.stderr.splitlines() if line.startswith(path + ":")]
        for line, key in EVERY_ERROR_EXPECTED:
            assert any(p.startswith(f"{path}:{line}:") and f" {key}:" in p for p in problems), \
                f"line {line} ({key}) not reported:\n{r.stderr}"
    finally:
        os.unlink(path)


def test_config_check_reports_policy_errors_of_a_service_with_a_bad_vip():
    text = EVERY_ERROR.replace("    virtual: 192.0.2.1\n", "    virtual: 192.0.2.999\n")
    r, path = config_check(text)
    try:
        assert f"{path}:12:" in r.stderr, r.stderr           # the VIP itself
        assert f"{path}:15:" in r.stderr and f"{path}:17:" in r.stderr, r.stderr
    finally:
        os.unlink(path)
