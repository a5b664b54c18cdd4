"""Check internals: SYN segments and replies, cBPF filter, DNS query, timeouts, round runner,
probe path; and the HTTP checker against a real aiohttp server on loopback."""

import asyncio
import ipaddress
import socket
import struct
from dataclasses import dataclass

import pytest
from aiohttp import web
from dns import message as dnsmessage

from vc5.healthd import probe_path as pp
from vc5 import config
from vc5.common import wire
from vc5.healthd.checks import DEFAULT_TIMEOUTS, Result, describe_error, dns, syn, timeout_for
from vc5.healthd.checks.http import HttpChecker
from vc5.healthd.checks.runner import Runner


def Check(type="http", port=80, **kw):
    """The real model's Check (vc5.config), with test defaults: the tests cannot drift from it."""
    return config.Check(type, port, **kw)


@dataclass(frozen=True)
class Service:
    vip: object = ipaddress.ip_address("192.0.2.1")
    protocol: str = "tcp"
    timeout: object = None


@dataclass(frozen=True)
class Backend:
    address: object = ipaddress.ip_address("127.0.0.1")
    port: int = 80
    checks: tuple = ()


# ---- SYN -----------------------------------------------------------------------------------------

def test_checksum_rfc1071_example():
    # RFC 1071 §3 example words 0001 f203 f4f5 f6f7 -> sum ddf2 -> checksum 220d
    assert syn.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@pytest.mark.parametrize("src,dst", [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")])
def test_syn_segment(src, dst):
    seg = syn.build_syn(src, dst, 61234, 80, 0xDEADBEEF)
    sport, dport, seq, ack, flags = syn.parse_tcp(seg)
    assert (sport, dport, seq, ack, flags) == (61234, 80, 0xDEADBEEF, 0, syn.FLAG_SYN)
    assert seg[12] >> 4 == 6 and struct.unpack("!H", seg[14:16])[0] == syn.WINDOW
    assert seg[20:24] == syn.MSS_OPTION
    # a correct checksum sums (with the pseudo-header) to zero
    assert syn.checksum(syn.pseudo_header(src, dst, len(seg)) + seg) == 0


def test_verdicts():
    seq = 0xFFFFFFFF
    assert syn.verdict(syn.FLAG_SYN | syn.FLAG_ACK, 0, seq) == Result(True, "OK")      # wraps
    assert syn.verdict(syn.FLAG_SYN | syn.FLAG_ACK, 5, seq) is None                   # wrong ack
    assert syn.verdict(syn.FLAG_RST | syn.FLAG_ACK, 0, seq) == Result(False, "Connection refused")
    assert syn.verdict(syn.FLAG_RST | syn.FLAG_ACK, 7, seq) is None                   # not ours
    assert syn.verdict(syn.FLAG_ACK, 0, seq) is None


def test_strip_ipv4():
    ip = bytes([0x45, 0, 0, 40]) + b"\0" * 8 + socket.inet_aton("10.1.2.3") + socket.inet_aton("10.0.0.1")
    src, seg = syn.strip_ipv4(ip + b"TCP")
    assert src == "10.1.2.3" and seg == b"TCP"
    assert syn.strip_ipv4(b"\x60" + b"\0" * 39) == (None, b"")


def run_cbpf(prog, pkt):
    """A tiny classic-BPF interpreter for the instructions bpf_program uses."""
    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0xB1:
            x = 4 * (pkt[k] & 0xF)
        elif code == 0x01:
            x = k
        elif code == 0x48:
            a = struct.unpack("!H", pkt[x + k:x + k + 2])[0]
        elif code == 0x50:
            a = pkt[x + k]
        elif code in (0x35, 0x25, 0x45):
            hit = a >= k if code == 0x35 else a > k if code == 0x25 else bool(a & k)
            pc += jt if hit else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x}")


@pytest.mark.parametrize("ipv4", [True, False])
def test_cbpf_filter_passes_only_syn_or_rst_to_our_ports(ipv4):
    prog = syn.bpf_program(ipv4)
    head = bytes([0x45]) + b"\0" * 19 if ipv4 else b""

    def seg(dport, flags):
        return head + struct.pack("!HHIIBBHHH", 80, dport, 1, 2, 0x50, flags, 0, 0, 0)

    assert run_cbpf(prog, seg(61000, syn.FLAG_SYN | syn.FLAG_ACK))
    assert run_cbpf(prog, seg(65535, syn.FLAG_RST))
    assert syn.PORT_BASE + syn.PORT_COUNT - 1 == 65535
    assert not run_cbpf(prog, seg(60999, syn.FLAG_SYN | syn.FLAG_ACK))
    assert not run_cbpf(prog, seg(61500, syn.FLAG_ACK))


# ---- DNS, timeouts, errors -----------------------------------------------------------------------

def test_dns_query_is_vc5s():
    q = dns.make_query()
    assert str(q.question[0].name) == "localhost." and q.question[0].rdtype == 1
    assert q.flags == 0x0120
    wire = dns.query_wire(0xBEEF)
    parsed = dnsmessage.from_wire(wire)
    assert parsed.id == 0xBEEF and parsed.flags == 0x0120 and str(parsed.question[0].name) == "localhost."


def test_dns_reply_header():
    assert dns.parse_reply_header(bytes.fromhex("beef8185") + b"\0" * 8) == (0xBEEF, True, "REFUSED")
    assert dns.parse_reply_header(bytes.fromhex("beef0100") + b"\0" * 8) == (0xBEEF, False, "NOERROR")
    assert dns.parse_reply_header(b"\xbe\xef") is None


def test_dns_udp_against_a_loopback_responder():
    """Any RCODE passes; a reply with another id or without QR is ignored (-> Timeout)."""
    import socket as s

    async def main():
        loop = asyncio.get_running_loop()
        mode = {"v": "echo"}

        class Responder(asyncio.DatagramProtocol):
            def connection_made(self, t):
                self.t = t

            def datagram_received(self, data, addr):
                if mode["v"] == "echo":        # REFUSED, same id
                    self.t.sendto(data[:2] + b"\x81\x05" + data[4:], addr)
                elif mode["v"] == "wrong-id":
                    self.t.sendto(bytes([data[0] ^ 1, data[1]]) + b"\x81\x80" + data[4:], addr)
                elif mode["v"] == "no-qr":
                    self.t.sendto(data, addr)

        t, _ = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0), family=s.AF_INET)
        port = t.get_extra_info("sockname")[1]
        checker = dns.DnsChecker()
        try:
            out = [await checker.probe("127.0.0.1", port, "udp", 0.5)]
            for m in ("wrong-id", "no-qr"):
                mode["v"] = m
                out.append(await checker.probe("127.0.0.1", port, "udp", 0.2))
            return out
        finally:
            await checker.close()
            t.close()

    ok, wrong_id, no_qr = asyncio.run(main())
    assert ok == Result(True, "REFUSED")
    assert wrong_id == Result(False, "Timeout") and no_qr == Result(False, "Timeout")


def test_timeouts():
    assert DEFAULT_TIMEOUTS == {"http": 2.0, "https": 2.0, "syn": 2.0, "dns": 1.0}
    assert timeout_for(Check(type="dns")) == 1.0
    assert timeout_for(Check(type="syn"), Service(timeout=0.5)) == 0.5
    assert timeout_for(Check(type="syn", timeout=0.3), Service(timeout=0.5)) == 0.3


def test_describe_error():
    assert describe_error(asyncio.TimeoutError()) == "Timeout"
    assert describe_error(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"


# ---- probe path ----------------------------------------------------------------------------------

def test_probe_path_direct_and_loader():
    assert pp.ProbePath("direct").target("192.0.2.1", "10.0.0.1") == "10.0.0.1"
    p = pp.ProbePath("loader", [wire.ProbeAddress("192.0.2.1", "10.0.0.1", "255.0.0.1")])
    assert p.target("192.0.2.1", ipaddress.ip_address("10.0.0.1")) == "255.0.0.1"
    assert p.target("192.0.2.1", "10.0.0.2") is None
    p.update([wire.ProbeAddress("192.0.2.1", "10.0.0.2", "255.0.0.2")])
    assert p.target("192.0.2.1", "10.0.0.2") == "255.0.0.2" and p.target("192.0.2.1", "10.0.0.1") is None
    with pytest.raises(ValueError):
        pp.ProbePath("auto")
    auto = pp.ProbePath("loader", [wire.ProbeAddress("192.0.2.1", "10.0.0.1", "255.0.0.1")], requested="auto")
    assert auto.target("192.0.2.1", "10.0.0.1") == "255.0.0.1"
    assert auto.target("192.0.2.1", "10.0.0.2") == "10.0.0.2"     # no address: direct, not failed


def test_probe_path_follows_typed_loader_properties():
    """watch_properties(schema=wire.XDP_LOADER) delivers ProbeAddresses as wire.ProbeAddress structs."""
    auto = pp.ProbePath("direct", requested="auto")
    changes = []
    auto.on_change = lambda: changes.append(auto.mode)
    props = wire.XDP_LOADER.decode({"Mode": "native",
                                    "ProbeAddresses": [["192.0.2.1", "10.0.0.1", "255.0.0.1"]]})
    auto.loader_properties(props)
    assert auto.mode == "loader" and changes == ["loader"]
    assert auto.target("192.0.2.1", "10.0.0.1") == "255.0.0.1"
    auto.loader_properties(wire.XDP_LOADER.decode({"Mode": "native"}))
    assert auto.mode == "direct" and changes == ["loader", "direct"]


def test_dsr_hint_names_the_mistake():
    hint = pp.dsr_hint(False, True, "192.0.2.1", "10.0.0.1")
    assert "answers on its own address but not on VIP 192.0.2.1" in hint and "192.0.2.1/32 dev lo" in hint
    assert "2001:db8::1/128" in pp.dsr_hint(False, True, "2001:db8::1", "fd00::1")
    assert pp.dsr_hint(True, True, "192.0.2.1", "10.0.0.1") is None
    assert pp.dsr_hint(False, False, "192.0.2.1", "10.0.0.1") is None


def test_runner_without_probe_address_fails_naming_it():
    r = asyncio.run(Runner(pp.ProbePath("loader")).round(Service(), Backend(checks=(Check(),))))
    assert not r.passed and "no probe address for VIP 192.0.2.1 on backend 127.0.0.1" in r.diagnostic


def test_runner_no_checks_passes():
    r = asyncio.run(Runner(pp.ProbePath("direct")).round(Service(), Backend()))
    assert r.passed and r.diagnostic == "OK"


# ---- HTTP against a real loopback server ---------------------------------------------------------

async def http_server(handler_log):
    async def alive(request):
        handler_log.append((request.method, request.path, request.headers.get("Host"),
                            request.transport.get_extra_info("peername")[1]))
        return web.Response(status=int(request.query.get("s", "200")), text="ok")

    async def redirect(request):
        raise web.HTTPFound("/alive")

    app = web.Application()
    app.router.add_route("*", "/alive", alive)
    app.router.add_route("*", "/redirect", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, port


def test_http_checker_against_loopback():
    async def main():
        seen = []
        runner, port = await http_server(seen)
        checker = HttpChecker()
        try:
            ok = await checker.probe(Check(port=port, path="/alive"), "192.0.2.1", "127.0.0.1", 2.0)
            bad = await checker.probe(Check(port=port, path="alive?s=500"), "192.0.2.1", "127.0.0.1", 2.0)
            redir = await checker.probe(Check(port=port, path="/redirect"), "192.0.2.1", "127.0.0.1", 2.0)
            head = await checker.probe(Check(port=port, path="/alive", method="HEAD", expect=(0,)),
                                       "2001:db8::1", "127.0.0.1", 2.0)
            named = await checker.probe(Check(port=port, path="/alive", host="www.example.com"),
                                        "192.0.2.1", "127.0.0.1", 2.0)
            refused = await checker.probe(Check(port=1, path="/alive"), "192.0.2.1", "127.0.0.1", 2.0)
            return ok, bad, redir, head, named, refused, seen
        finally:
            await checker.close()
            await runner.cleanup()

    ok, bad, redir, head, named, refused, seen = asyncio.run(main())
    assert ok == Result(True, "200 OK")
    assert not bad.passed and bad.diagnostic.startswith("GET http://192.0.2.1:") and \
        bad.diagnostic.endswith("/alive?s=500 - 500 Internal Server Error")
    assert not redir.passed and redir.diagnostic.endswith("/redirect - 302 Found")
    assert head.passed
    assert named.passed
    assert not refused.passed and refused.diagnostic == "GET http://192.0.2.1:1/alive - Connection refused"
    methods = [s[0] for s in seen]
    assert methods == ["GET", "GET", "HEAD", "GET"]           # the redirect target was never fetched
    hosts = [s[2] for s in seen]
    assert hosts[0].startswith("192.0.2.1:") and hosts[2].startswith("[2001:db8::1]:")
    assert hosts[3].startswith("www.example.com:")
    # keep-alive: the first requests to one target reuse one connection
    assert seen[0][3] == seen[1][3] == seen[2][3]
