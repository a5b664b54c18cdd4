"""vc5-bgpd (real process) against FRR's bgpd (Debian's frr) in network namespaces."""

import signal
import time

from tests.lib.wait import until

from .conftest import NET4, NET6, peer_status

VIP4, VIP6 = "10.255.0.1", "fd00:255::1"


def test_frr_ebgp_ipv4_and_ipv6_advertise_and_withdraw(lab, frr_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    frr = frr_factory(asn=65000, neighbors=[
        dict(address=lb.address4, asn=65001, families=["ipv4", "ipv6"]),
        dict(address=lb.address6, asn=65001, families=["ipv6"])])
    bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          med: 42
          communities: [65001:100]
          next_hop_6: {lb.address6}
          peers: [{NET4}.1]
          groups:
            - name: v6
              peers: ["{NET6}1"]
        """)
    until(lambda: frr.established(lb.address4) and frr.established(lb.address6), 20,
          message="FRR sessions over IPv4 and IPv6")
    health.set({VIP4: True, VIP6: True})
    p4 = until(lambda: frr.route(f"{VIP4}/32"), 10, message="IPv4 VIP in FRR")
    assert p4[0]["aspath"]["string"] == "65001" and p4[0]["metric"] == 42
    assert p4[0]["community"]["string"] == "65001:100"
    assert p4[0]["nexthops"][0]["ip"] == lb.address4 and p4[0]["valid"]
    p6 = until(lambda: len(frr.route(f"{VIP6}/128", "ipv6")) == 2 and frr.route(f"{VIP6}/128", "ipv6"), 10,
               message="IPv6 VIP in FRR over the IPv4 (MP-BGP) and the IPv6 session")
    assert {h["ip"] for p in p6 for h in p["nexthops"] if h.get("scope") == "global"} == {lb.address6}
    health.set({VIP4: False, VIP6: True})
    until(lambda: not frr.route(f"{VIP4}/32"), 5, interval=0.02, message="IPv4 VIP withdrawn")
    assert len(frr.route(f"{VIP6}/128", "ipv6")) == 2
    health.set({VIP4: False, VIP6: False})
    until(lambda: not frr.route(f"{VIP6}/128", "ipv6"), 5, interval=0.02, message="IPv6 VIP withdrawn")


def test_frr_active_to_passive_speaker_graceful_shutdown(lab, frr_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    frr = frr_factory(asn=65000, neighbors=[dict(address=lb.address4, asn=65001, passive=False)])
    bgpd = bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          graceful_shutdown: 2
          groups:
            - name: routers
              passive: true
              peers: [{NET4}.1]
        """, args=["--listen", f"{lb.address4}:179"])
    health.set({VIP4: True})
    until(lambda: frr.established(lb.address4), 20, message="FRR connected to the passive speaker")
    until(lambda: frr.route(f"{VIP4}/32"), 10, message="VIP in FRR")
    bgpd.signal(signal.SIGTERM)
    p = until(lambda: [x for x in frr.route(f"{VIP4}/32") if "graceful-shutdown" in
                       x.get("community", {}).get("string", "")], 5,
              message="GRACEFUL_SHUTDOWN (RFC 8326) community before the withdrawal")
    assert p[0]["community"]["list"] == ["gracefulShutdown"] and p[0]["valid"]
    assert p[0]["locPrf"] == 0          # FRR acts on it: LOCAL_PREF 0, as RFC 8326 §4.2 suggests
    until(lambda: not frr.route(f"{VIP4}/32"), 10, message="withdrawn after the graceful period")
    assert bgpd.proc.wait(20) == 0


def test_frr_and_bgpd_both_active_settle_on_one_session(lab, frr_factory, bgpd_factory, health):
    """Both sides connect, the usual router configuration: one session comes up and stays up. Whether
    the two connections collide depends on timing (here bgpd's usually wins the race); RFC 4271 §6.8
    itself is tested both ways in tests/unit/test_bgp_collision.py."""
    lb = lab.add_speaker()
    frr = frr_factory(asn=65000, neighbors=[dict(address=lb.address4, asn=65001, passive=False)])
    bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          peers: [{NET4}.1]
        """, args=["--listen", f"{lb.address4}:179"])
    health.set({VIP4: True})
    until(lambda: frr.established(lb.address4), 20, message="session up")
    until(lambda: frr.route(f"{VIP4}/32"), 10, message="VIP in FRR")
    time.sleep(7)                                   # longer than the hold time: no flap
    st = peer_status(health, f"{NET4}.1")
    assert st["state"] == "Established" and st["counters"]["established"] == 1
    assert frr.established(lb.address4) and frr.route(f"{VIP4}/32")
