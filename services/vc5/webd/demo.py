"""A fixed, realistic set of daemon states (vc5's sample config), for tests and previews.

`vc5-webd --demo` serves the console from these instead of the bus, so the
page can be looked at (and screenshotted) without any daemon running. The
numbers are deterministic; `tick(n)` advances the counters as if n 2-s
samples had passed, so rates are non-zero.
"""

from __future__ import annotations

from vc5.client.snapshot import BgpView, HealthView, XdpView
from vc5.common.wire import BackendState, Counters, PeerState, ServiceState, VipState

T0 = 1_700_000_000_000_000          # µs: a fixed "since" for every state
MACS = {"10.1.100.120": "52:54:00:00:01:20", "10.1.100.121": "52:54:00:00:01:21",
        "10.1.100.122": "52:54:00:00:01:22"}


def health(flip_down: str | None = None, drained: str | None = None, t0: int = T0) -> HealthView:
    """The sample config's services; `flip_down`="ip" marks that backend down everywhere."""

    def be(addr, port, disabled=False, took=2):
        down = addr == flip_down
        return BackendState(addr, port, 1, disabled, addr == drained, not down, t0,
                            "http: GET http://192.168.101.1/alive - 500 Internal Server Error" if down
                            else "HTTP 200 OK", took)

    foo_http = (be("10.1.100.120", 80), be("10.1.100.121", 80), be("10.1.100.122", 80, disabled=True))
    foo_https = (be("10.1.100.120", 443, took=6), be("10.1.100.121", 443, took=6),
                 be("10.1.100.122", 443, disabled=True, took=6))
    dns = tuple(be(a, 53, took=1) for a in ("10.1.100.120", "10.1.100.121", "10.1.100.122"))

    def svc(vip, port, proto, name, desc, need, backends):
        avail = sum(1 for b in backends if b.usable)
        return ServiceState(vip, port, proto, name, desc, "critical", False, need, "none", 0, False,
                            avail >= need, t0, avail, backends)

    services = (
        svc("192.168.101.1", 80, "tcp", "foo", "FooCorp website", 1, foo_http),
        svc("192.168.101.1", 443, "tcp", "foo", "FooCorp website", 1, foo_https),
        svc("192.168.101.2", 53, "tcp", "bind", "Corporate BIND server", 2, dns),
        svc("192.168.101.2", 53, "udp", "bind", "Corporate BIND server", 2, dns),
    )
    vips = tuple(VipState(v, all(s.up for s in services if s.vip == v), t0)
                 for v in ("192.168.101.1", "192.168.101.2"))
    return HealthView.from_wire(services, vips, generation=1, config_source="/etc/vc5/vc5.yaml")


def bgp(state: str = "Established", t0: int = T0) -> BgpView:
    counters = {"updates_in": 1, "updates_out": 3, "advertised": 2, "withdrawn": 0, "connection_attempts": 1,
                "established": 1}
    peers = [PeerState(addr, state=state, since=t0, hold_time=10, counters=counters,
                       advertised_prefixes=("192.168.101.1/32", "192.168.101.2/32"),
                       local_address="10.1.100.2", local_asn=65000, remote_asn=65000)
             for addr in ("10.1.100.100", "10.1.100.101")]
    return BgpView.from_wire(peers, ["192.168.101.1", "192.168.101.2"])


def xdp(n: int = 0, t0: int = T0) -> XdpView:
    """Counters after n samples; each backend has its own steady rate."""
    per_backend = {("192.168.101.1:80:tcp", "10.1.100.120"): (37236, 24962676, 7449),
                   ("192.168.101.1:80:tcp", "10.1.100.121"): (37283, 24992672, 7454),
                   ("192.168.101.1:443:tcp", "10.1.100.120"): (4700, 4072184, 453),
                   ("192.168.101.1:443:tcp", "10.1.100.121"): (4621, 4009384, 450),
                   ("192.168.101.2:53:tcp", "10.1.100.120"): (84, 51072, 14),
                   ("192.168.101.2:53:tcp", "10.1.100.121"): (63, 38304, 10),
                   ("192.168.101.2:53:tcp", "10.1.100.122"): (75, 45600, 12),
                   ("192.168.101.2:53:udp", "10.1.100.120"): (11, 8096, 0),
                   ("192.168.101.2:53:udp", "10.1.100.121"): (16, 12144, 0),
                   ("192.168.101.2:53:udp", "10.1.100.122"): (13, 9568, 0)}
    backends, services = {}, {}
    total = {"packets": 1_000_000, "octets": 900_000_000, "flows": 50_000, "current": 0}
    for (svc, rip), (pps, ops, fps) in per_backend.items():
        c = {"packets": 500_000 + pps * 2 * n, "octets": 400_000_000 + ops * 2 * n,
             "flows": 10_000 + fps * 2 * n, "current": fps // 80, "syn": fps * 2 * n}
        backends.setdefault(svc, {})[rip] = c
        s = services.setdefault(svc, {})
        for k, v in c.items():
            s[k] = s.get(k, 0) + v
            total[k] = total.get(k, 0) + v
    counters = Counters({"latency": 429, **total}, {}, services, backends)
    return XdpView.from_counters(counters, interfaces=("eth0",), macs=MACS, started=t0 / 1e6)
