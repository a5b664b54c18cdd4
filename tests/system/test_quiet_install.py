"""A quiet install (issue #15): after `apt install` and before the operator configures anything,
no vc5 unit sends a packet; `systemctl reload vc5.target` after editing /etc/vc5/vc5.yaml brings
vc5-healthd and vc5-bgpd into action with no other command.

The session's container (conftest `machine`) gets a route first: a veth with the default route
through a gateway whose MAC is a permanent neighbour entry, so that a probe or a BGP connection
to any address really leaves (without a route a connect() fails before any packet exists, and
without a neighbour only ARP would; either way the test could not fail). Then the packages are
installed afresh (purged first if an earlier test left them), with IPAccounting=yes drop-ins, so
systemd counts every packet each vc5 unit sends. For 30 s a capture on every interface (lo
included) looks for what vc5 would send: anything to the shipped example's documentation
networks and any TCP SYN to port 179; a control SYN sent on purpose near the end proves the
capture sees such packets.
"""

from __future__ import annotations

import time

import pytest

from tests.lib.wait import until
from tests.system.conftest import APT, PACKAGES, needs_service

IFACE = "quiet0"                 # the container's own network namespace: no other engineer's
OUR_NET = "10.197.0"             # quiet0's; the gateway is .254
FAR_NET = "10.198.0"             # the edited configuration's peer and server, through the gateway
CONTROL = "192.0.2.99"           # the control SYN's destination (not an address of the example)
EXAMPLE_NETS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
OBSERVE_S = 30
DAEMONS = ("vc5-healthd.service", "vc5-bgpd.service")
ACCOUNTED = DAEMONS + ("vc5-webd.service", "vc5-xdp-loader.service")
DROPIN = "/etc/systemd/system/{unit}.d/50-quiet-test.conf"
CAPTURE_UNIT = "vc5quiet-capture"
CONFIG = f"""\
address: {OUR_NET}.1
vlans: {{10: {FAR_NET}.0/24}}
bgp:
  as_number: 65000
  peers: [{FAR_NET}.2]
services:
  - virtual: 192.0.2.10
    servers: [{FAR_NET}.11]
    interval: 1
    policy: {{http: }}
"""
BUS = {"org.vc5.Health1": "/org/vc5/Health1", "org.vc5.Bgp1": "/org/vc5/Bgp1"}


def sh(m, cmd, **kw):
    return m.run(cmd, **kw)


def prop(m, bus, name) -> str:
    return sh(m, f"busctl get-property {bus} {BUS[bus]} {bus} {name}").stdout.strip()


def show(m, unit, name) -> str:
    return sh(m, f"systemctl show -P {name} {unit}").stdout.strip()


def journal(m) -> str:
    return sh(m, "journalctl --no-pager -n 60 -u 'vc5-*'").stdout


@pytest.fixture(scope="module")
def quiet(machine):
    """A route out, IP accounting on the vc5 units, the packages installed afresh; undone after."""
    m = machine
    sh(m, f"ip link add {IFACE} type veth peer name {IFACE}p && ip addr add {OUR_NET}.1/24 dev {IFACE} "
          f"&& ip link set {IFACE} up && ip link set {IFACE}p up "
          f"&& ip neigh add {OUR_NET}.254 lladdr 02:00:00:00:00:fe dev {IFACE} nud permanent "
          f"&& ip route add default via {OUR_NET}.254 dev {IFACE}", check=True)
    for unit in ACCOUNTED:
        m.write(DROPIN.format(unit=unit), "[Service]\nIPAccounting=yes\n")
    sh(m, "systemctl daemon-reload", check=True)
    installed = [p for p in PACKAGES
                 if sh(m, f"dpkg-query -W -f='${{Status}}' {p}").stdout.endswith(" installed")]
    if installed:
        r = sh(m, f"{APT} purge {' '.join(installed)}", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    r = sh(m, f"{APT} install --no-install-recommends /root/debs/*.deb", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    yield m
    sh(m, f"systemctl stop {CAPTURE_UNIT}; rm -f " + " ".join(DROPIN.format(unit=u) for u in ACCOUNTED)
       + f"; systemctl daemon-reload; ip link del {IFACE}; rm -f /tmp/quiet.pcap")


def suspects(m) -> list[str]:
    """The captured packets vc5 would send: to the example's networks, or a SYN to port 179."""
    nets = " or ".join(f"net {n}" for n in EXAMPLE_NETS)
    expr = f"({nets}) or (tcp dst port 179 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn)"
    r = sh(m, f"tcpdump -nn -r /tmp/quiet.pcap '{expr}'")
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def capture_for(m, seconds: float, control) -> list[str]:
    """tcpdump on every interface (a transient unit) for `seconds`, then `control()`, whose packet
    must show up before the capture stops; suspects() of the whole capture."""
    r = sh(m, f"systemd-run --unit={CAPTURE_UNIT} --collect tcpdump -i any -nn -U -w /tmp/quiet.pcap")
    assert r.returncode == 0, r.stderr
    until(lambda: "listening on any" in sh(m, f"journalctl --no-pager -u {CAPTURE_UNIT}").stdout,
          timeout=20, interval=0.2, message="tcpdump did not start listening")
    time.sleep(seconds)          # the observation window itself: nothing to poll for
    control()
    until(lambda: any(f"> {CONTROL}.179:" in x for x in suspects(m)), timeout=10, interval=0.2,
          message=f"the capture missed the control SYN to {CONTROL}:179: it proves nothing")
    sh(m, f"systemctl stop {CAPTURE_UNIT}")
    return suspects(m)


def send_control_syn(m):
    sh(m, "/usr/bin/python3 -c \"import socket; s = socket.socket(); s.setblocking(False); "
          f"s.connect_ex(('{CONTROL}', 179))\"")


@needs_service("healthd")
@needs_service("bgpd")
def test_installed_units_idle_and_send_nothing(quiet):
    m = quiet
    until(lambda: all(show(m, u, "ActiveState") == "active" for u in DAEMONS), timeout=60, interval=0.3,
          message=f"healthd and bgpd must run (idle) after install:\n{journal(m)}")
    assert show(m, "vc5.target", "ActiveState") == "active"      # so that reload works
    assert show(m, "vc5-xdp-loader.service", "UnitFileState") == "disabled"
    assert show(m, "vc5-xdp-loader.service", "ActiveState") == "inactive"
    assert prop(m, "org.vc5.Health1", "Services").split()[1:] == ["0"]    # "a(...) 0": no service
    assert prop(m, "org.vc5.Bgp1", "Peers").split()[1:] == ["0"]

    lines = capture_for(m, OBSERVE_S, control=lambda: send_control_syn(m))
    others = [x for x in lines if f"> {CONTROL}.179:" not in x]
    assert others == [], "vc5 sent packets before it was configured:\n" + "\n".join(others)
    for unit in DAEMONS:
        sent = show(m, unit, "IPEgressPackets")
        assert sent.isdigit(), f"{unit}: no IP accounting ({sent!r}): the counters prove nothing"
        assert sent == "0", f"{unit} sent {sent} packets:\n{journal(m)}"
    assert show(m, "vc5-webd.service", "ActiveState") == "inactive"     # nobody connected


@needs_service("healthd")
@needs_service("bgpd")
def test_reload_of_the_target_brings_healthd_and_bgpd_into_action(quiet):
    m = quiet
    generation = prop(m, "org.vc5.Health1", "Generation")
    pids = [show(m, u, "MainPID") for u in DAEMONS]
    m.write("/etc/vc5/vc5.yaml", CONFIG, mode=0o640)
    r = sh(m, "systemctl reload vc5.target")
    assert r.returncode == 0, r.stderr + journal(m)
    until(lambda: "192.0.2.10" in prop(m, "org.vc5.Health1", "Services"), timeout=30, interval=0.3,
          message=f"healthd did not take the service:\n{journal(m)}")
    assert prop(m, "org.vc5.Health1", "Generation") != generation
    until(lambda: f"{FAR_NET}.2" in prop(m, "org.vc5.Bgp1", "Peers"), timeout=30, interval=0.3,
          message=f"bgpd did not take the peer:\n{journal(m)}")
    # and both act on the network: the health probe and the BGP connection leave
    for unit in DAEMONS:
        until(lambda: int(show(m, unit, "IPEgressPackets") or 0) > 0, timeout=30, interval=0.5,
              message=f"{unit} sent nothing after the reload:\n{journal(m)}")
    assert [show(m, u, "MainPID") for u in DAEMONS] == pids        # reloaded, not restarted
