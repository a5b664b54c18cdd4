"""Chaos under load: every service restarted, killed and reloaded while clients keep going.

The client namespace runs tests/lab/load.py for the whole module: a few loops
making new HTTP connections to the VIP all the time (about 100 per second)
and 20 long-lived GET /stream connections (a line every 50 ms each). Each
event below is one measurement window; its row (new connections, failures,
stream resets/closes/stalls, the longest gap in any stream, how often the
router's route to the VIP changed) is printed in the test output and again in
the summary at the end of the run.

Target: nothing fails and no stream breaks, except the in-flight connections
of a backend removed from the configuration.
"""

import os
import signal
import time

import pytest

from tests.lab.chaos import TABLES, LoadClient
from tests.lab.stack import SERVICES, Stack
from tests.lab.topology import VIP4, Lab
from tests.lib.wait import until

OBSERVE_S = 1.5        # traffic observed after each event has converged (the measurement)
MANAGER = "org.vc5.Health1.Manager"


@pytest.fixture(scope="module")
def chaos(root):
    lab = Lab.build(prefix=f"vc5c{os.getpid() % 10000}")
    # webd beside balancer 1, in its namespace (its console on lb1's address).
    stack = Stack(lab, interval=0.5, web_listen=f"{lab.balancers[0].ip}:8080", web_host=lab.balancers[0])
    lab.stack = stack
    load = None
    try:
        lab.start_backends()
        lab.start_router()
        stack.start()
        stack.wait_advertised(timeout=90)
        for b in range(1, len(lab.balancers) + 1):
            stack.wait_ready("xdp-loader", b)
        stack.wait_ready("webd", 1)
        load = LoadClient(lab)
        with load.event("baseline (nothing happens)"):
            time.sleep(OBSERVE_S)
        yield lab, stack, load
    finally:
        if load is not None:
            load.close()
            TABLES.append(("chaos under load (tests/e2e/test_chaos.py)", load.table()))
        lab.destroy()
        stack.stop()


def assert_clean(ev, spare_backend=None, in_flight=0):
    """No failed new connection; no stream reset, closed or stalled (except spare_backend's).

    `in_flight`: how many new connections may be reset because they were
    mid-handshake with spare_backend when it was removed (their ACK is
    re-balanced and the new backend answers RST): removal's allowed loss.
    """
    r = ev.result
    resets = r["errors"].get("ConnectionResetError", 0)
    allowed = min(in_flight, resets) if set(r["errors"]) <= {"ConnectionResetError"} else 0
    assert r["failed"] <= allowed, f"{ev.name}: {r['failed']} new connections failed: {r['errors']}"
    broken = [s for s in r["streams"] if s["backend"] != spare_backend
              and (s["reset"] or s["closed"] or s["stalled"])]
    assert not broken, f"{ev.name}: streams broken: {broken}"


def loader_usable(stack, balancer):
    """{backend address: {usable in the Maglev table, one per service}} from the balancer's data plane."""
    seen = {}
    for svc in stack.prop(balancer, "xdp-loader", "Services") or []:
        for be in svc.backends:
            seen.setdefault(be.address, set()).add(be.in_table)
    return seen


def program_id(stack, balancer):
    return stack.prop(balancer, "xdp-loader", "ProgramInfo").prog_id


def fib_nexthops(lab):
    out = lab.router.ns.run(f"ip route show {VIP4}", check=False).stdout
    return {w for line in out.splitlines() for w in [line.split("via ", 1)[-1].split()[0]]
            if "via " in line}


def loader_reloads(stack):
    """Whether this xdp-loader supports reload (Manager.Reload, SIGHUP); older ones die of SIGHUP."""
    out = stack.busctl(1, "introspect", "org.vc5.XdpLoader1", "/org/vc5/XdpLoader1",
                       "org.vc5.XdpLoader1.Manager", check=False).stdout
    return ".Reload" in out


def balancers_of(service):
    # webd runs once, beside balancer 1; everything else on both.
    return (1,) if service == "webd" else (1, 2)


# ------------------------------------------------------------------ restart and kill

@pytest.mark.parametrize("service", SERVICES)
def test_restart_keeps_every_connection(chaos, service):
    lab, stack, load = chaos
    balancer = 1
    before = program_id(stack, balancer) if service == "xdp-loader" else None
    with load.event(f"restart {service} lb{balancer} (SIGTERM+start)") as ev:
        status = stack.restart(service, balancer)
        stack.wait_ready(service, balancer)
        time.sleep(OBSERVE_S)
    assert status == 0, f"{service} exited {status} on SIGTERM"
    assert_clean(ev)
    if service == "xdp-loader":
        assert program_id(stack, balancer) != before, "the restarted loader did not load its program"
    if service == "bgpd":
        assert ev.route_changes > 0, "the router never saw lb1's route go (graceful stop withdraws it)"


@pytest.mark.parametrize("service", SERVICES)
def test_sigkill_keeps_every_connection(chaos, service):
    lab, stack, load = chaos
    balancer = balancers_of(service)[-1]
    before = program_id(stack, balancer) if service == "xdp-loader" else None
    with load.event(f"SIGKILL {service} lb{balancer} (+start)") as ev:
        stack.kill(service, balancer)
        stack.wait_ready(service, balancer)
        time.sleep(OBSERVE_S)
    assert_clean(ev)
    if service == "xdp-loader":
        assert program_id(stack, balancer) != before, "the restarted loader did not load its program"
    if service == "bgpd":
        assert ev.route_changes > 0, "the router never noticed the killed session"


# ------------------------------------------------------------------ reload

def test_reload_with_changed_config_keeps_every_connection(chaos):
    lab, stack, load = chaos
    daemons = [("healthd", b) for b in (1, 2)] + [("bgpd", b) for b in (1, 2)]
    generations = {d: stack.prop(d[1], d[0], "Generation") for d in daemons}
    with load.event("reload all, config changed (SIGHUP)") as ev:
        for b in (1, 2):
            text = stack.config_text(b).replace("description: lab web service",
                                                "description: lab web service, reloaded")
            text = text.replace("  hold_time: 9\n", "  hold_time: 9\n  med: 50\n  communities: [65001:100]\n")
            stack.write_config(b, text)
        others = [("webd", 1)] + ([("xdp-loader", b) for b in (1, 2)] if loader_reloads(stack) else [])
        for service, b in daemons + others:
            stack.send_signal(service, b, signal.SIGHUP)
        until(lambda: all(stack.prop(b, s, "Generation") == generations[(s, b)] + 1 for s, b in daemons),
              timeout=20, interval=0.2,
              message=f"not every daemon applied the new configuration: {generations}")
        # bgpd re-advertised with the new attributes: the router sees them from both balancers.
        until(lambda: lab.birdc("show", "route", "all", f"{VIP4}/32").count("BGP.med: 50") == 2,
              timeout=20, interval=0.2, message="the router did not get MED 50 from both balancers")
        time.sleep(OBSERVE_S)
    assert_clean(ev)
    for service, b in daemons:
        assert stack.prop(b, service, "LastReloadError") == ""
    for service, b in others:
        assert stack.process(service, b).poll() is None, f"lb{b} {service} died on SIGHUP"
    descs = {s.description for s in stack.prop(1, "healthd", "Services")}
    assert descs == {"lab web service, reloaded"}, descs
    # Back to the lab's configuration, so that later restarts read what is in force.
    for b in (1, 2):
        stack.write_config(b, stack.config_text(b))
    with load.event("reload all, config restored (SIGHUP)") as ev:
        for service, b in daemons:
            stack.send_signal(service, b, signal.SIGHUP)
        until(lambda: all(stack.prop(b, s, "Generation") == generations[(s, b)] + 2 for s, b in daemons),
              timeout=20, interval=0.2, message="not every daemon applied the restored configuration")
        until(lambda: "BGP.med" not in lab.birdc("show", "route", "all", f"{VIP4}/32"), timeout=20,
              interval=0.2, message="the router still has MED 50")
        until(lambda: fib_nexthops(lab) == {b.ip for b in lab.balancers}, timeout=20, interval=0.2,
              message="the router does not use both balancers again")
        time.sleep(OBSERVE_S)
    assert_clean(ev)


def state_view(stack, b):
    """What a refused reload must not change: healthd's services, bgpd's RIB, the data plane."""
    health = [(s.vip, s.port, s.protocol, [(be.address, be.port, be.up) for be in s.backends])
              for s in stack.prop(b, "healthd", "Services")]
    return health, sorted(stack.prop(b, "bgpd", "Advertised")), loader_usable(stack, b)


def test_reload_with_broken_config_is_refused_and_changes_nothing(chaos):
    lab, stack, load = chaos
    daemons = [(s, b) for s in ("healthd", "bgpd") for b in (1, 2)]
    generations = {d: stack.prop(d[1], d[0], "Generation") for d in daemons}
    views = {b: state_view(stack, b) for b in (1, 2)}
    be1 = lab.backends[0]
    with load.event("reload all, config broken (refused)") as ev:
        for b in (1, 2):
            # An impossible address where be1 was: a half-applying daemon would drop be1.
            text = stack.config_text(b).replace(f"      - {be1.ip}\n", "      - 10.210.2.300\n")
            stack.write_config(b, text)
        loaders = [("webd", 1)] + ([("xdp-loader", b) for b in (1, 2)] if loader_reloads(stack) else [])
        for service, b in daemons + loaders:
            stack.send_signal(service, b, signal.SIGHUP)
        until(lambda: all(stack.prop(b, s, "LastReloadError") for s, b in daemons), timeout=20, interval=0.2,
              message="not every daemon reported the refused reload in LastReloadError")
        refused = stack.busctl(1, "call", "org.vc5.Health1", "/org/vc5/Health1", MANAGER, "Reload",
                               check=False)
        time.sleep(OBSERVE_S)
    try:
        assert_clean(ev)
        for service, b in daemons:
            err = stack.prop(b, service, "LastReloadError")
            assert "10.210.2.300" in err and "servers[0]" in err, (service, b, err)
            assert stack.prop(b, service, "Generation") == generations[(service, b)], (service, b)
        assert refused.returncode != 0 and "10.210.2.300" in refused.stderr, refused
        for b in (1, 2):
            assert state_view(stack, b) == views[b], f"lb{b} changed after a refused reload"
        for service, b in daemons + loaders:
            assert stack.process(service, b).poll() is None, f"lb{b} {service} died on a broken config"
    finally:
        for b in (1, 2):
            stack.write_config(b, stack.config_text(b))


# ------------------------------------------------------------------ backends

def test_drained_backend_keeps_its_streams(chaos):
    lab, stack, load = chaos
    be = lab.backends[1]
    with load.event("drain be2 (Health1.Manager.Drain)") as ev:
        for b in (1, 2):
            matched = stack.call(b, "healthd", MANAGER, "Drain", "ss", "", be.ip)
            assert matched and matched[0] >= 1, matched
        until(lambda: all(loader_usable(stack, b).get(be.ip) == {False} for b in (1, 2)), timeout=10,
              interval=0.1, message="be2 is still in a Maglev table after Drain")
        time.sleep(OBSERVE_S)
    assert ev.before.get("be2"), f"no stream was on be2 to begin with: {ev.before}"
    assert_clean(ev)
    try:
        # No new connection reaches be2, even from a client re-using a source port of a
        # recent connection to it (a SYN never follows a flow entry).
        with load.event("be2 drained (observe)") as ev:
            time.sleep(OBSERVE_S)
        name, result, routes = load.rows[-1]
        load.rows[-1] = (f"{name}: {result['by_backend'].get('be2', 0)} to be2", result, routes)
        assert_clean(ev)
        assert result["by_backend"].get("be2", 0) == 0, result["by_backend"]
        on_be2 = [s for s in ev.result["streams"] if s["backend"] == "be2"]
        assert on_be2 and all(s["max_gap"] < 1.0 for s in on_be2), on_be2
    finally:
        for b in (1, 2):
            stack.call(b, "healthd", MANAGER, "Undrain", "ss", "", be.ip)
    until(lambda: all(loader_usable(stack, b).get(be.ip) == {True} for b in (1, 2)), timeout=10,
          interval=0.1, message="be2 did not come back after Undrain")


FIXED_PORT_GET = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1])))
s.settimeout(3)
s.connect((sys.argv[2], 80))
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip())
"""


def get_from_port(lab, port):
    """GET / from a fixed client source port: the name of the backend that answered."""
    return lab.client.ns.run(["python3", "-c", FIXED_PORT_GET, str(port), VIP4], timeout=10).stdout.strip()


def test_drained_backend_gets_no_new_connection_on_a_reused_port(chaos):
    lab, stack, load = chaos
    be = lab.backends[1]
    # Below the ephemeral range (32768-60999), so the load client never holds this port.
    port = next(p for p in range(20000, 20100) if get_from_port(lab, p) == "be2")
    for b in (1, 2):
        stack.call(b, "healthd", MANAGER, "Drain", "ss", "", be.ip)
    try:
        until(lambda: all(loader_usable(stack, b).get(be.ip) == {False} for b in (1, 2)), timeout=10,
              interval=0.1, message="be2 is still in a Maglev table after Drain")
        # The earlier connection from this port is closed; this one is a new connection (SYN).
        assert get_from_port(lab, port) != "be2", f"a new connection from port {port} went to drained be2"
    finally:
        for b in (1, 2):
            stack.call(b, "healthd", MANAGER, "Undrain", "ss", "", be.ip)
        until(lambda: all(loader_usable(stack, b).get(be.ip) == {True} for b in (1, 2)), timeout=10,
              interval=0.1, message="be2 did not come back after Undrain")


def test_removed_backend_breaks_only_its_own_connections(chaos):
    lab, stack, load = chaos
    be = lab.backends[2]
    with load.event("be3 removed from the config (reload)") as ev:
        for b in (1, 2):
            stack.write_config(b, stack.config_text(b).replace(f"      - {be.ip}\n", ""))
            stack.send_signal("healthd", b, signal.SIGHUP)
        until(lambda: all(be.ip not in loader_usable(stack, b) for b in (1, 2)), timeout=20,
              interval=0.1, message="be3 is still in a data plane after its removal")
        time.sleep(OBSERVE_S)
    try:
        assert ev.before.get("be3"), f"no stream was on be3 to begin with: {ev.before}"
        assert_clean(ev, spare_backend="be3", in_flight=5)
        with load.event("be3 removed (observe new connections)") as ev2:
            time.sleep(OBSERVE_S)
        assert_clean(ev2, spare_backend="be3")
        assert "be3" not in ev2.result["by_backend"], ev2.result["by_backend"]
    finally:
        with load.event("be3 added back (reload)") as ev3:
            for b in (1, 2):
                stack.write_config(b, stack.config_text(b))
                stack.send_signal("healthd", b, signal.SIGHUP)
            until(lambda: all(loader_usable(stack, b).get(be.ip) == {True} for b in (1, 2)), timeout=30,
                  interval=0.1, message="be3 did not come back after it was configured again")
            time.sleep(OBSERVE_S)
        # Streams cut by the removal are replaced by the next window.
        assert_clean(ev3, spare_backend="be3")
        load.recycle("be3")
    assert ev3.result["by_backend"].get("be3"), "be3 gets no new connections after coming back"


# ------------------------------------------------------------------ balancers

def vip_packets(stack, balancer):
    """Packets to the VIP that the balancer's XDP program handled (org.vc5.XdpLoader1.GetCounters)."""
    counters = stack.call(balancer, "xdp-loader", "org.vc5.XdpLoader1", "GetCounters")
    return counters.vips[VIP4]["packets"]


def test_withdrawn_balancer_hands_its_flows_to_the_other_one_unbroken(chaos):
    """Streams pinned on lb1 move to lb2 when lb1 withdraws: lb2 has no flow entry for them,
    but its Maglev table is lb1's, so it picks the same backend and nothing resets.

    Fresh streams first, from source ports no earlier connection used: a flow that began
    under another backend set (before an earlier event) may be pinned where today's Maglev
    table would not send it; the balancers share no flow state (vc5's multicast flow
    sharing is not implemented)."""
    lab, stack, load = chaos
    lb1, lb2 = lab.balancers
    load.recycle("*", port=21000)
    with load.event("lb1 withdrawn (bgpd stopped)") as ev:
        p0 = vip_packets(stack, 1)
        time.sleep(0.5)
        before = vip_packets(stack, 1) - p0
        assert stack.stop_service("bgpd", 1) == 0
        until(lambda: fib_nexthops(lab) == {lb2.ip}, timeout=20, interval=0.1,
              message="the router still routes the VIP through lb1")
        p1 = vip_packets(stack, 1)
        time.sleep(OBSERVE_S)
        after = vip_packets(stack, 1) - p1
    try:
        assert before > 50, f"lb1 carried no VIP traffic before it was withdrawn ({before} packets in 0.5 s)"
        # A few packets may already have been routed to lb1 when the FIB changed (queued on a busy CPU).
        assert after <= max(10, before // 20), \
            f"lb1 still receives VIP traffic after the withdrawal ({after} packets; {before} in 0.5 s before)"
        assert_clean(ev)
    finally:
        with load.event("lb1 rejoins (bgpd started)") as ev2:
            stack.start_service("bgpd", 1)
            until(lambda: fib_nexthops(lab) == {lb1.ip, lb2.ip}, timeout=30, interval=0.1,
                  message="the router did not take lb1 back")
            time.sleep(OBSERVE_S)
    assert_clean(ev2)


def test_healthd_restart_on_the_only_balancer_keeps_serving(chaos):
    """With one balancer advertising, a healthd restart must not take the VIP away
    ("forwarding keeps going while healthd or bgpd restart", ARCHITECTURE.md)."""
    lab, stack, load = chaos
    lb1, lb2 = lab.balancers
    assert stack.stop_service("bgpd", 2) == 0
    try:
        until(lambda: fib_nexthops(lab) == {lb1.ip}, timeout=20, interval=0.1,
              message="the router still routes the VIP through lb2")
        with load.event("restart healthd lb1, lb1 alone") as ev:
            stack.restart("healthd", 1)
            stack.wait_ready("healthd", 1)
            until(lambda: fib_nexthops(lab) == {lb1.ip}, timeout=20, interval=0.1,
                  message="the router lost the VIP for good")
            time.sleep(OBSERVE_S)
    finally:
        stack.start_service("bgpd", 2)
        until(lambda: fib_nexthops(lab) == {lb1.ip, lb2.ip}, timeout=30, interval=0.1,
              message="the router did not take lb2 back")
    assert_clean(ev)
    assert ev.route_changes == 0, "the VIP was withdrawn while healthd restarted"
