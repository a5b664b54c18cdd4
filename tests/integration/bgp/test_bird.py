"""vc5-bgpd (real process) against BIRD 2 in network namespaces."""

import signal
import time

import pytest
from dbus_next import DBusError

from tests.lib.wait import until

from .conftest import NET4, bgp_call, bgp_property, peer_status

VIP = "10.255.0.1"


def yaml_for(ns, peers, extra=""):
    return f"""
        address: {ns.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          {extra}
          peers: [{', '.join(peers)}]
        """


def test_ebgp_active_advertise_and_withdraw_within_1s(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
    bgpd = bgpd_factory(lb, yaml_for(lb, [f"{NET4}.1"], "communities: [65001:100]\n          "
                                     "large_communities: ['65001:7:8']"))
    until(lambda: bird.state("lb") == "Established", 20, message="session established")
    health.set({VIP: True, "10.255.0.2": False})
    route = until(lambda: bird.route(f"{VIP}/32"), 10, message="VIP advertised")
    assert "BGP.as_path: 65001" in route
    assert f"BGP.next_hop: {lb.address4}" in route
    assert "(65001,100)" in route
    assert "(65001, 7, 8)" in route
    assert "10.255.0.2/32" not in bird.routes()
    health.set({VIP: False})
    t0 = time.monotonic()
    until(lambda: not bird.route(f"{VIP}/32"), 5, interval=0.02, message="VIP withdrawn")
    assert time.monotonic() - t0 < 1.0
    assert bgpd.proc.poll() is None
    bgpd.signal(signal.SIGTERM)
    assert bgpd.proc.wait(20) == 0
    until(lambda: "Administrative shutdown" in bird.cli("show", "protocols", "all", "lb")
          or "vc5-bgpd stopping" in bird.log(), 10, message="Cease seen by BIRD")


def test_ibgp_passive_four_octet_asn_graceful_shutdown(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    asn = 4200000001
    bird = bird_factory(asn=asn, neighbors=[dict(name="lb", address=lb.address4, asn=asn, passive=False)])
    bgpd = bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: {asn}
          hold_time: 6
          local_pref: 250
          med: 17
          graceful_shutdown: 2
          groups:
            - name: routers
              passive: true
              peers: [{NET4}.1]
        """, args=["--listen", f"{lb.address4}:179"])
    health.set({VIP: True})
    until(lambda: bird.state("lb") == "Established", 20, message="BIRD connected to the passive speaker")
    route = until(lambda: bird.route(f"{VIP}/32"), 10, message="VIP advertised")
    assert "[i]" in route or "BGP.as_path: \n" in route or "BGP.as_path:\n" in route  # iBGP: empty AS_PATH
    assert "BGP.local_pref: 250" in route and "BGP.med: 17" in route
    st = until(lambda: peer_status(health, f"{NET4}.1"), 5)
    assert st["state"] == "Established" and st["remote_asn"] == asn and "4-octet-as" in st["capabilities"]
    assert st["hold_time"] == 6 and st["advertised"] == [f"{VIP}/32"]
    assert st["counters"]["established"] == 1 and st["group"] == "routers"
    assert bgp_property(health, "Advertised") == [f"{VIP}/32"]

    bgpd.signal(signal.SIGTERM)
    route = until(lambda: "(65535,0)" in bird.route(f"{VIP}/32") and bird.route(f"{VIP}/32"), 5,
                  message="GRACEFUL_SHUTDOWN community before the withdrawal")
    assert "BGP.local_pref: 250" in route
    until(lambda: not bird.route(f"{VIP}/32"), 10, message="withdrawn after the graceful period")
    assert bgpd.proc.wait(20) == 0


def test_ipv6_over_ipv6_session_and_multiprotocol_over_ipv4(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    lb.run("ip link set eth0 up")
    bird = bird_factory(asn=65000, neighbors=[
        dict(name="lb6", address=lb.address6, asn=65001, v6=True),
        dict(name="lbmp", address=lb.address4, asn=65001, mp=True, extra="")])
    bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          peers: [{NET4}.1]
          groups:
            - name: v6
              peers: ["fd00:203::1"]
        """.replace("peers: [10", "next_hop_6: fd00:203::" + lb.address6.rsplit(":", 1)[1]
                    + "\n          peers: [10"))
    until(lambda: bird.state("lb6") == "Established" and bird.state("lbmp") == "Established", 20,
          message=f"sessions: {bird.cli('show', 'protocols')}")
    health.set({VIP: True, "fd00:255::1": True})
    r6 = until(lambda: "lb6" in bird.route("fd00:255::1/128") and "lbmp" in bird.route("fd00:255::1/128")
               and bird.route("fd00:255::1/128"), 10, message="IPv6 VIP via both sessions")
    assert f"BGP.next_hop: {lb.address6}" in r6
    r4 = until(lambda: bird.route(f"{VIP}/32"), 10)
    assert "lbmp" in r4 and "lb6" not in r4      # the IPv6-only session carries no IPv4 routes
    health.set({VIP: True, "fd00:255::1": False})
    until(lambda: not bird.route("fd00:255::1/128"), 5, message="IPv6 VIP withdrawn")
    assert bird.route(f"{VIP}/32")


def test_ecmp_two_speakers_give_two_paths(lab, bird_factory, bgpd_factory, health, health2):
    lb1, lb2 = lab.add_speaker(), lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb1", address=lb1.address4, asn=65001),
                                              dict(name="lb2", address=lb2.address4, asn=65001)],
                        extra="protocol kernel { ipv4 { export where source = RTS_BGP; }; "
                              "merge paths on; }\n")
    bgpd_factory(lb1, yaml_for(lb1, [f"{NET4}.1"]))
    bgpd_factory(lb2, yaml_for(lb2, [f"{NET4}.1"]), bus=health2.address)     # each host has its bus
    until(lambda: bird.state("lb1") == "Established" and bird.state("lb2") == "Established", 20)
    for h in (health, health2):
        h.set({VIP: True})
    route = until(lambda: "lb1" in bird.route(f"{VIP}/32") and "lb2" in bird.route(f"{VIP}/32")
                  and bird.route(f"{VIP}/32"), 10, message="two paths")
    assert f"via {lb1.address4}" in route and f"via {lb2.address4}" in route

    # the router's kernel forwards over both balancers (ECMP)
    def kernel_route():
        return lab.router.run(["ip", "route", "show", f"{VIP}/32"]).stdout

    kernel = until(lambda: kernel_route().count("nexthop via") == 2 and kernel_route(), 10,
                   message="ECMP route in the router's kernel")
    assert lb1.address4 in kernel and lb2.address4 in kernel
    for h in (health, health2):
        h.set({VIP: False})
    until(lambda: not kernel_route().strip(), 5,
          message="ECMP route removed from the kernel")


def test_reload_changes_attributes_removes_peer_and_refuses_bad_config(
        lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
    bgpd = bgpd_factory(lb, yaml_for(lb, [f"{NET4}.1"], "med: 5"))
    health.set({VIP: True})
    until(lambda: "BGP.med: 5" in bird.route(f"{VIP}/32"), 20, message="advertised with MED 5")
    gen = bgp_property(health, "Generation")

    bgpd.rewrite(yaml_for(lb, [f"{NET4}.1"], "med: 9"))
    bgpd.signal(signal.SIGHUP)
    until(lambda: "BGP.med: 9" in bird.route(f"{VIP}/32"), 10, message="MED change re-advertised")
    until(lambda: bgp_property(health, "Generation") == gen + 1, 5)
    assert peer_status(health, f"{NET4}.1")["counters"]["established"] == 1    # no session reset

    bgpd.rewrite(yaml_for(lb, [f"{NET4}.1"], "med: -3"))
    with pytest.raises(DBusError) as e:
        bgp_call(health, "Reload")
    assert e.value.type == "org.vc5.Bgp1.Error.InvalidConfig" and "med" in e.value.text
    assert "med" in bgp_property(health, "LastReloadError")
    assert bird.state("lb") == "Established" and "BGP.med: 9" in bird.route(f"{VIP}/32")

    bgpd.rewrite(yaml_for(lb, [f"{NET4}.9"], "med: 9"))
    assert bgp_call(health, "Reload", "", []) == [gen + 2]
    until(lambda: not bird.route(f"{VIP}/32"), 10, message="removed peer's routes gone")
    until(lambda: "Peer de-configured" in bird.cli("show", "protocols", "all", "lb")
          or "de-configured" in bird.log().lower(), 10, message="Cease/Peer De-configured")


def test_reset_peer_and_route_refresh(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
    bgpd_factory(lb, yaml_for(lb, [f"{NET4}.1"]))
    health.set({VIP: True})
    until(lambda: bird.route(f"{VIP}/32"), 20)
    before = peer_status(health, f"{NET4}.1")["counters"]["updates_out"]
    bird.cli("reload", "in", "lb")            # BIRD asks for ROUTE-REFRESH
    until(lambda: peer_status(health, f"{NET4}.1")["counters"]["updates_out"] > before, 5,
          message="route refresh answered")
    bgp_call(health, "ResetPeer", "s", [f"{NET4}.1"])
    until(lambda: peer_status(health, f"{NET4}.1")["counters"]["established"] == 2, 15,
          message="re-established after reset")
    until(lambda: bird.route(f"{VIP}/32"), 10)
    with pytest.raises(DBusError) as e:
        bgp_call(health, "ResetPeer", "s", ["192.0.2.99"])
    assert e.value.type == "org.vc5.Bgp1.Error.NotFound"


def test_tcp_md5_active_and_passive(lab, bird_factory, bgpd_factory, health, health2):
    lb1, lb2 = lab.add_speaker(), lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[
        dict(name="lb1", address=lb1.address4, asn=65001, extra='password "s3cret";'),
        dict(name="lb2", address=lb2.address4, asn=65001, passive=False, extra='password "s3cret";')])
    bgpd_factory(lb1, yaml_for(lb1, [f"{NET4}.1"], "md5: s3cret"))
    bgpd_factory(lb2, f"""
        address: {lb2.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          md5: s3cret
          groups:
            - name: r
              passive: true
              peers: [{NET4}.1]
        """, args=["--listen", f"{lb2.address4}:179"], bus=health2.address)     # each host has its bus
    until(lambda: bird.state("lb1") == "Established" and bird.state("lb2") == "Established", 20,
          message=f"MD5 sessions: {bird.cli('show', 'protocols')}")
    for h in (health, health2):
        h.set({VIP: True})
    until(lambda: "lb1" in bird.route(f"{VIP}/32") and "lb2" in bird.route(f"{VIP}/32"), 10)


def test_tcp_md5_wrong_password_never_establishes(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001,
                                                   extra='password "right";')])
    bgpd = bgpd_factory(lb, yaml_for(lb, [f"{NET4}.1"], "md5: wrong"))
    # the speaker keeps trying; the kernel drops every unsigned/mis-signed segment
    until(lambda: peer_status(health, f"{NET4}.1")
          and peer_status(health, f"{NET4}.1")["counters"]["connection_attempts"] >= 1, 10)
    time.sleep(3)   # a bounded observation window: nothing may establish in it
    assert bird.state("lb") != "Established"
    assert peer_status(health, f"{NET4}.1")["counters"]["established"] == 0
    assert bgpd.proc.poll() is None


def test_graceful_restart_keeps_routes_across_a_restart(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001,
                                                   extra="graceful restart on;")])
    conf = yaml_for(lb, [f"{NET4}.1"], "graceful_restart: true")
    first = bgpd_factory(lb, conf)
    health.set({VIP: True, "10.255.0.2": True})
    until(lambda: bird.route(f"{VIP}/32") and bird.route("10.255.0.2/32"), 20, message="advertised")
    assert "graceful-restart" in peer_status(health, f"{NET4}.1")["capabilities"]
    first.signal(signal.SIGTERM)
    assert first.proc.wait(20) == 0
    until(lambda: "Established" not in bird.cli("show", "protocols", "lb"), 10)
    assert bird.route(f"{VIP}/32"), "route kept (stale) while the speaker restarts"
    health.set({VIP: True, "10.255.0.2": False})         # changed while bgpd was away
    bgpd_factory(lb, conf)
    until(lambda: bird.state("lb") == "Established", 20, message="back")
    until(lambda: not bird.route("10.255.0.2/32"), 10, message="stale route flushed after End-of-RIB")
    assert bird.route(f"{VIP}/32")


def test_socket_activation_dual_stack_listener(lab, bird_factory, bgpd_factory, health):
    """As vc5-bgpd.socket: one [::]:179 socket handed over (LISTEN_FDS); an IPv4 peer arrives v4-mapped."""
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001, passive=False)])
    health.set({VIP: True})
    bgpd = bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          groups:
            - name: r
              passive: true
              peers: [{NET4}.1]
        """, wrapper=["systemd-socket-activate", "-l", "179", "-E", "PYTHONPATH", "-E", "PYTHONUNBUFFERED",
                      "-E", "DBUS_SYSTEM_BUS_ADDRESS"])
    try:
        until(lambda: bird.state("lb") == "Established", 20)
    except AssertionError:
        raise AssertionError(f"no session over the activated socket; vc5-bgpd said:\n{bgpd.log()}")
    until(lambda: bird.route(f"{VIP}/32"), 10)
    st = until(lambda: peer_status(health, f"{NET4}.1"), 5)
    assert st["local_address"] == lb.address4


def test_source_ip_and_next_hop_4(lab, bird_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    second = f"{NET4}.{100 + int(lb.address4.rsplit('.', 1)[1])}"
    lb.run(f"ip addr add {second}/24 dev eth0")
    # BIRD only knows the second address: the session comes up only if bgpd binds source_ip
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=second, asn=65001)])
    bgpd_factory(lb, yaml_for(lb, [f"{NET4}.1"], f"source_ip: {second}\n          next_hop_4: {lb.address4}"))
    until(lambda: bird.state("lb") == "Established", 20, message="session from source_ip")
    health.set({VIP: True})
    route = until(lambda: bird.route(f"{VIP}/32"), 10)
    assert f"BGP.next_hop: {lb.address4}" in route
    assert peer_status(health, f"{NET4}.1")["local_address"] == second
