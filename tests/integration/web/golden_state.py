"""One fixed state of the three daemons, as the wire structs they publish (vc5.common.wire).

test_render_golden.py renders it through vc5.client / vc5.webd / vc5ctl and
compares with golden/ files. Those files were produced by the renderers of
commit 36ce8be (before vc5.client existed) from this same state encoded with
`to_dbus()`, so any byte that changes in /status.json, /cue.json, /lb.json,
/metrics or vc5ctl's tables is a behaviour change, not a refactoring.
"""

from __future__ import annotations

from vc5.common.wire import (BackendState, Counters, InterfaceStatus, PeerState, ProgramInfo,
                             ProgrammedBackend, ProgrammedService, ServiceState, VipState)

T0 = 1_700_000_000_000_000          # µs
NOW = T0 / 1e6 + 4000               # the snapshot's time: every state is at least 10 s old
CONFIG = """
vlans:
  100: 10.1.100.0/24
services:
  - name: foo
    description: FooCorp website
    virtual: [192.168.101.1]
    servers: [10.1.100.120, 10.1.100.121, 10.1.100.122*]
    policy:
      http:
"""
MACS = {"10.1.100.120": "52:54:00:00:01:20", "10.1.100.121": "52:54:00:00:01:21",
        "10.1.100.122": "", "2001:db8:100::7": "52:54:00:00:07:07"}


def _be(address, port, up=True, disabled=False, drained=False, weight=1, age_s=3600, took=3,
        diagnostic="HTTP 200 OK"):
    since = T0 - age_s * 1_000_000
    return BackendState(address, port, weight, disabled, drained, up, since, diagnostic, took)


def services() -> tuple:
    failed = "http: GET http://192.168.101.1/alive - 500 Internal Server Error"
    foo = (_be("10.1.100.121", 80, up=False, diagnostic=failed),
           _be("10.1.100.120", 80, drained=True), _be("10.1.100.122", 80, disabled=True, age_s=0))
    weights = (("10.1.100.122", 0), ("10.1.100.120", 2), ("10.1.100.121", 1))
    dns = tuple(_be(a, 53, took=1, weight=w) for a, w in weights)
    v6 = (_be("2001:db8:100::7", 8443, took=12), _be("2001:db8:100::10", 8443, up=False, diagnostic=""))
    return (
        ServiceState("192.168.101.2", 53, "udp", "bind", "Corporate \"BIND\" server", "high", True, 2,
                     "gre", 0, True, True, T0 - 10_000_000, 2, dns),
        ServiceState("192.168.101.1", 80, "tcp", "foo", "FooCorp website", "critical", False, 1, "none",
                     0, False, False, T0, 0, foo),
        ServiceState("2001:db8::1", 8443, "tcp", "", "", "low", False, 1, "fou", 9999, False, True, 0, 1, v6),
        ServiceState("192.168.101.2", 53, "tcp", "bind", "Corporate \"BIND\" server", "high", False, 2,
                     "ipip", 0, False, True, T0 - 10_000_000, 2, dns),
    )


def vips() -> tuple:
    return (VipState("2001:db8::1", True, T0 - 5_000_000), VipState("192.168.101.2", True, T0),
            VipState("192.168.101.1", False, 0))


def peers() -> tuple:
    counters = {"updates_in": 1, "updates_out": 7, "advertised": 3, "withdrawn": 1, "connection_attempts": 4,
                "established": 2, "notifications_in": 0, "notifications_out": 1}
    return (
        PeerState("10.1.100.101", "", "Active", T0 - 20_000_000, 0, 0, 0, 0, (), (),
                  {"connection_attempts": 9}, "connection refused", (), "", 65000, 0, ""),
        PeerState("2001:db8:100::1", "v6", "Idle", 0, 0, 0, 0, 0, (), (), {}, "", (), "", 65000, 65002, ""),
        PeerState("10.1.100.100", "core", "Established", T0, T0 + 5_000_000, 3995, 9, 3,
                  ("mp:ipv4-unicast", "4-octet-as"), ("ipv4-unicast",), counters, "",
                  ("192.168.101.2/32", "2001:db8::1/128"), "10.1.100.2", 65000, 65001, "10.1.100.100"),
    )


ADVERTISED = ("2001:db8::1/128", "192.168.101.2/32", "192.168.101.2/32")


def counters(n: int) -> Counters:
    """The loader's GetCounters() after n 2-s samples."""
    backends, services_, vips_ = {}, {}, {}
    for i, s in enumerate(services()):
        for j, b in enumerate(s.backends):
            base = 1000 * (i + 1) + 10 * j
            c = {"packets": base * 100 + base * 2 * n, "octets": base * 90_000 + base * 1500 * n,
                 "flows": base + 7 * n * (j + 1), "current": j * 3, "syn": base + n, "ack": 2 * base,
                 "fin": 0, "rst": 1, "errors": j, "too_big": 0, "tunnel_unsupported": 0, "adjust_failed": 0}
            backends.setdefault(s.key, {})[b.address] = c
            total = services_.setdefault(s.key, {})
            for k, v in c.items():
                total[k] = total.get(k, 0) + v
    for key, c in services_.items():
        vip = key.rsplit(":", 2)[0]
        total = vips_.setdefault(vip, {})
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    totals = {"packets": 9_000_000 + 5000 * n, "octets": 8_000_000_000 + 7_000_000 * n,
              "flows": 70_000 + 60 * n, "current": 17, "too_big": 3, "not_a_vip": 12, "latency_ns": 233}
    return Counters(totals, vips_, services_, backends)


def loader_properties() -> dict:
    """The loader's Services, Interfaces and ProgramInfo properties (the parts the views read)."""
    programmed = tuple(
        ProgrammedService(s.key, s.vip, s.port, s.protocol, "",
                          tuple(ProgrammedBackend(b.address, MACS.get(b.address, ""), b.usable, True,
                                                  "" if b.usable else "down", "eth0", 100)
                                for b in s.backends))
        for s in services())
    return {"Services": programmed,
            "Interfaces": (InterfaceStatus("eth0", 2, "native", 42, True, ""),
                           InterfaceStatus("eth1", 3, "", 0, False, "no such device")),
            "ProgramInfo": ProgramInfo(42, "abcdef0123456789", "xdp_vc5", "/sys/fs/bpf/vc5", 3,
                                       T0 - 600_000_000)}
