"""BFD (RFC 5880/5881) between a real vc5-bgpd and BIRD 2: the router's view of a balancer that hangs.

A balancer frozen with SIGSTOP sends no NOTIFICATION and its links stay up; only
BFD can tell the router within a second (the BGP hold time here is 6 s). BIRD runs
`protocol bfd` and `bfd on` in its BGP protocol; when its BFD session to us fails
it shuts its BGP session down and drops our routes.
"""

import os
import re
import signal
import time

import pytest

from tests.lib import netns as nsmod
from tests.lib.wait import until

from . import conftest
from .conftest import NET4, NET6, bgp_property, peer_status

VIP = "10.255.0.1"
INTERVAL_MS = 200          # the default of bfd: true (vc5.config.model.DEFAULT_BFD_INTERVAL_MS)
BIRD_BFD = """
    protocol bfd {
      interface "*" {
        min rx interval 100 ms;
        min tx interval 100 ms;
        idle tx interval 300 ms;
        multiplier 3;
      };
    }
    """


class BfdLab(conftest.Lab):
    """The bgp tests' topology, with namespace names of this test's own (wtbfd...)."""

    def _ns(self):
        ns = nsmod.Netns.create("wtbfd")
        self.made.append(ns)
        return ns


@pytest.fixture
def lab(root, tmp_path):
    lab = BfdLab(str(tmp_path))
    yield lab
    lab.close()


def bfd_state(health, address):
    from vc5.common import wire
    try:
        sessions = bgp_property(health, "Bfd")
    except Exception:  # noqa: BLE001 - not on the bus yet
        return None
    return next((s for s in map(wire.BfdState.from_dbus, sessions) if s.address == address), None)


def bird_bfd_up(bird, address):
    lines = bird.cli("show", "bfd", "sessions").splitlines()
    return any(address in line and " Up " in line for line in lines)


@pytest.fixture
def pair(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, extra=BIRD_BFD,
                        neighbors=[dict(name="lb", address=lb.address4, asn=65001, extra="bfd on;")])
    bgpd = bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          bfd: true
          peers: [{NET4}.1]
        """)
    health.set({VIP: True})
    until(lambda: bird.state("lb") == "Established", 20, message="BGP session established")
    until(lambda: bird.route(f"{VIP}/32"), 10, message="VIP advertised")
    until(lambda: bird_bfd_up(bird, lb.address4), 10, message="BIRD's BFD session Up")
    s = until(lambda: (lambda s: s if s and s.state == "Up" else None)(bfd_state(health, f"{NET4}.1")), 10,
              message="our BFD session Up")
    assert s.remote_state == "Up" and s.remote_discriminator != 0 and s.tx_interval_ms == INTERVAL_MS
    assert s.detection_time_ms == 3 * INTERVAL_MS   # BIRD x3, its 100 ms slower than our Required Min RX
    return lb, bird, bgpd


def test_frozen_balancer_is_dropped_by_the_router_within_1s_and_recovers(pair, health):
    lb, bird, bgpd = pair
    try:
        os.kill(bgpd.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        until(lambda: not bird.route(f"{VIP}/32"), 5, interval=0.01, message="route dropped by BIRD")
        took = time.monotonic() - t0
        print(f"\nBFD: BIRD dropped the frozen balancer's route {took * 1000:.0f} ms after SIGSTOP "
              f"(interval {INTERVAL_MS} ms x 3; BGP hold time 6 s)")
        assert took < 1.0
        assert "BFD session down" in bird.cli("show", "protocols", "all", "lb")
    finally:
        os.kill(bgpd.proc.pid, signal.SIGCONT)
    until(lambda: bird.route(f"{VIP}/32"), 20, message="route back after SIGCONT")
    s = until(lambda: (lambda s: s if s and s.state == "Up" and s.up_count >= 2 else None)(
        bfd_state(health, f"{NET4}.1")), 10, message="our BFD session Up again")
    assert s.down_count >= 1
    assert bgpd.proc.poll() is None


def test_dead_router_closes_our_bgp_session_at_once(pair, health):
    """Our side: the router freezes; BFD Down closes our BGP session with Cease/BFD Down (RFC 9384)
    long before the 6 s hold time."""
    lb, bird, bgpd = pair
    pid = int(open(os.path.join(bird.dir, "bird.pid")).read().split()[0])
    try:
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        until(lambda: (peer_status(health, f"{NET4}.1") or {}).get("state") != "Established", 5,
              interval=0.01, message="our BGP session closed")
        took = time.monotonic() - t0
        print(f"\nBFD: our BGP session closed {took * 1000:.0f} ms after the router froze")
        assert took < 1.0
        s = bfd_state(health, f"{NET4}.1")
        assert s.state in ("Down", "Init") and s.down_count == 1
        assert "BFD Down" in peer_status(health, f"{NET4}.1")["last_error"]
    finally:
        os.kill(pid, signal.SIGCONT)
    until(lambda: bird.state("lb") == "Established", 20, message="BGP back after the router resumed")


def test_packets_without_ttl_255_are_discarded(pair, health):
    """RFC 5881 §5 (GTSM): a packet from further away than the link is dropped, and says so."""
    lb, bird, bgpd = pair
    before = bfd_state(health, f"{NET4}.1")
    from vc5.bgpd.bfd.packet import DOWN, Control
    spoof = Control(state=DOWN, my_discriminator=1234).encode()   # would take an Up session down
    code = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 254); "
            f"s.sendto(bytes.fromhex('{spoof.hex()}'), ('{lb.address4}', 3784))")
    lab_router = bird.ns
    lab_router.run(["/usr/bin/python3", "-c", code])
    until(lambda: "TTL is not 255" in bgpd.log(), 5, message="discard logged")
    after = bfd_state(health, f"{NET4}.1")
    assert after.state == "Up" and after.down_count == before.down_count


def test_ipv6_session_comes_up_with_hop_limit_255(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, extra=BIRD_BFD,
                        neighbors=[dict(name="lb6", address=lb.address6, asn=65001, v6=True,
                                        extra="bfd on; debug { events };")])
    bgpd = bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          next_hop_6: {lb.address6}
          bfd: {{interval_ms: 100, multiplier: 4}}
          peers: [{NET6}1]
        """)
    until(lambda: bird.state("lb6") == "Established", 20, message="BGP session established over IPv6")
    until(lambda: bird_bfd_up(bird, lb.address6), 10, message="BIRD's IPv6 BFD session Up")
    s = until(lambda: (lambda s: s if s and s.state == "Up" else None)(bfd_state(health, f"{NET6}1")), 10,
              message="our IPv6 BFD session Up")
    assert s.tx_interval_ms == 100 and s.detection_time_ms == 300 and s.packets_in > 0
    # A stop: the Cease closes BIRD's BGP session (not BFD), then AdminDown; the BFD thread ends.
    # (BIRD 2.0.12 counts any BFD Up -> Down, AdminDown too, as a failure of the BGP session it
    # has restarted by then, and logs "BFD session down" after the Cease: docs/bgp.md, "BFD".)
    bgpd.signal(signal.SIGTERM)
    assert bgpd.proc.wait(20) == 0
    until(lambda: "vc5-bgpd stopping" in bird.log(), 10, message="Cease seen by BIRD")
    text = bird.log()
    assert "lb6: BGP session established" in text             # its event trace is on (debug events)
    closed_by = text.index('Received: Administrative shutdown: "vc5-bgpd stopping"')
    assert "BFD session down" not in text[:closed_by]
    assert re.search(r"peer fd00:203::1: BFD \w+ -> AdminDown", bgpd.log())


def test_port_3784_taken_means_bgp_without_bfd(lab, bird_factory, bgpd_factory, health):
    """Another BFD daemon on the balancer owns 3784: vc5-bgpd says so and BGP runs on, never sharing
    the port (a shared UDP port would take packets from the other daemon)."""
    lb = lab.add_speaker()
    holder = lb.popen(["/usr/bin/python3", "-c", "import socket, time; s = socket.socket(socket.AF_INET, "
                       "socket.SOCK_DGRAM); s.bind(('0.0.0.0', 3784)); print('bound', flush=True); "
                       "time.sleep(120)"])
    try:
        assert holder.stdout.readline().strip() == b"bound"
        bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
        bgpd = bgpd_factory(lb, f"""
            address: {lb.address4}
            bgp:
              as_number: 65001
              bfd: true
              peers: [{NET4}.1]
            """)
        until(lambda: bird.state("lb") == "Established", 20, message="BGP session established without BFD")
        assert f"peer {NET4}.1: BFD not started: [Errno 98] Address already in use" in bgpd.log()
        assert bgp_property(health, "Bfd") == []
    finally:
        holder.kill()
        holder.wait()
