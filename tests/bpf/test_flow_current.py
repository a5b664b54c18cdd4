"""vc5's `current` connection estimate (era scheme, vc5.xdp_loader.flowstate): each flow with
an entry counts once per era for its backend, however many packets it sends; roll_sessions()
closes the era and `current` is what the era saw, per backend, service, VIP and globally."""

from tests.lib.testrun import XDP_TX, test_run
from vc5.xdp_loader.dataplane import BackendKey, ServiceKey, ServiceSpec

from .frames import backend_by_mac, backends, tcp, udp


def send(dp, pkt, bes):
    r = test_run(dp.xdp_fd, bytes(pkt))
    assert r.action == XDP_TX, r.verdict
    return backend_by_mac(r.data, bes)


def test_current_counts_each_flow_once_per_era(clean, one_cpu):
    vip = "192.0.2.240"
    bes = backends("10.60.0.", 3)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    clean.set_service(ServiceSpec(vip, 53, "udp", backends=bes))
    clean.roll_sessions()                       # ends the era of the tests before
    clean.roll_sessions()                       # an empty era: a clean start
    assert clean.counters()["global"]["current"] == 0
    tcp_by = {}
    for sport in range(48000, 48030):
        for _ in range(3):                      # three packets, one flow
            tcp_by[sport] = send(clean, tcp(vip, 80, sport=sport, flags="A"), bes)
    for sport in range(48000, 48010):
        send(clean, udp(vip, 53, sport=sport), bes)
    send(clean, tcp(vip, 80, sport=48100, flags="S"), bes)      # a SYN stores and counts nothing
    assert clean.counters()["global"]["current"] == 0            # nothing shown until the era ends
    clean.roll_sessions()
    c = clean.counters()
    tk, uk = ServiceKey(vip, 80, "tcp"), ServiceKey(vip, 53, "udp")
    per_backend = {b.address: sum(1 for x in tcp_by.values() if x == b.address) for b in bes}
    assert {b.address: c["backends"][BackendKey(tk, b.address)]["current"] for b in bes} == per_backend
    assert c["services"][tk]["current"] == 30 and c["services"][uk]["current"] == 10
    assert c["vips"][vip]["current"] == 40 and c["global"]["current"] == 40
    # next era: only five of the TCP flows are still sending
    for sport in range(48000, 48005):
        send(clean, tcp(vip, 80, sport=sport, flags="PA"), bes)
    clean.roll_sessions()
    c = clean.counters()
    assert (c["services"][tk]["current"], c["services"][uk]["current"], c["global"]["current"]) == (5, 0, 5)
    clean.roll_sessions()                       # an idle era: nothing is left
    assert clean.counters()["global"]["current"] == 0
