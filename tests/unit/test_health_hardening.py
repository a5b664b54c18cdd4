"""Hardening of the checks against hostile packets and callers (issue 12, "Small ones").

SYN checks: a RST without ACK is dropped (RFC 9293 §3.10.7.3), fed as crafted
packets through the raw socket's packet handler.
"""

import asyncio
import socket
import struct

import pytest

from vc5.healthd.checks import Result, syn

SEQ = 0x12345678
PEER, US = "10.9.0.10", "10.9.0.1"


def tcp(sport, dport, seq, ack, flags):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 1024, 0, 0)


def ipv4(src, dst, segment):
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0, 64, socket.IPPROTO_TCP, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    return head + segment


def settle(packets, family=socket.AF_INET, peer=PEER):
    """Feed `packets` to a SynChecker waiting for (peer:80 -> us:61001, SEQ); its result or None."""
    async def main():
        checker = syn.SynChecker()
        fut = asyncio.get_running_loop().create_future()
        checker._pending[(peer, 80, 61001)] = (fut, SEQ)
        for p in packets:
            checker.received(family, p, (peer, 0))
        return fut.result() if fut.done() else None
    return asyncio.run(main())


def test_rst_without_ack_is_dropped_and_the_probe_keeps_waiting():
    rst = ipv4(PEER, US, tcp(80, 61001, 0, 0, syn.FLAG_RST))
    assert settle([rst]) is None
    # ... and the SYN-ACK that follows still passes the probe
    synack = ipv4(PEER, US, tcp(80, 61001, 999, SEQ + 1, syn.FLAG_SYN | syn.FLAG_ACK))
    assert settle([rst, synack]) == Result(True, "OK")


def test_rst_ack_acknowledging_the_syn_refuses():
    assert settle([ipv4(PEER, US, tcp(80, 61001, 0, SEQ + 1, syn.FLAG_RST | syn.FLAG_ACK))]) == \
        Result(False, "Connection refused")


@pytest.mark.parametrize("flags,ack", [
    (syn.FLAG_RST, SEQ + 1),                    # the right number but no ACK bit: not acknowledged
    (syn.FLAG_RST | syn.FLAG_ACK, SEQ + 7),     # acknowledges something else (RFC 9293 §3.10.7.3)
    (syn.FLAG_RST | syn.FLAG_ACK, SEQ),
])
def test_unacceptable_rst_is_ignored(flags, ack):
    assert settle([ipv4(PEER, US, tcp(80, 61001, 0, ack, flags))]) is None


def test_rst_storm_from_elsewhere_or_to_other_ports_is_ignored():
    storm = [ipv4("10.9.0.99", US, tcp(80, 61001, 0, SEQ + 1, syn.FLAG_RST | syn.FLAG_ACK)),
             ipv4(PEER, US, tcp(81, 61001, 0, SEQ + 1, syn.FLAG_RST | syn.FLAG_ACK)),
             ipv4(PEER, US, tcp(80, 61002, 0, SEQ + 1, syn.FLAG_RST | syn.FLAG_ACK)),
             b"\x45\x00", b"", ipv4(PEER, US, b"\x00" * 7)]
    assert settle(storm * 100) is None


def test_ipv6_rst_without_ack_is_dropped():
    peer = "fd00:9::10"
    assert settle([tcp(80, 61001, 0, 0, syn.FLAG_RST)], socket.AF_INET6, peer) is None
    assert settle([tcp(80, 61001, 0, SEQ + 1, syn.FLAG_RST | syn.FLAG_ACK)], socket.AF_INET6, peer) == \
        Result(False, "Connection refused")


def test_verdict_rst_without_ack_is_not_an_answer():
    assert syn.verdict(syn.FLAG_RST, 0, SEQ) is None
    assert syn.verdict(syn.FLAG_RST, SEQ + 1, SEQ) is None
    assert syn.verdict(syn.FLAG_RST | syn.FLAG_ACK, SEQ + 1, SEQ) == Result(False, "Connection refused")


EMFILE_PROBES = r"""
import asyncio, logging, resource, socket, sys
from vc5 import config
from vc5.healthd.checks import dns, http, syn
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")

async def main():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checkers = http.HttpChecker(), dns.DnsChecker(), syn.SynChecker()
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    hog = []
    try:
        while True:
            hog.append(open("/dev/null"))
    except OSError:
        pass
    h, d, s = checkers
    check = config.Check("http", port, path="/")
    for _ in range(3):
        print("http", (await h.probe(check, "192.0.2.1", "127.0.0.1", 1)).diagnostic)
        print("dns", (await d.probe("127.0.0.1", port, "udp", 0.2)).diagnostic)
        print("dnstcp", (await d.probe("127.0.0.1", port, "tcp", 0.2)).diagnostic)
        print("syn", (await s.probe("127.0.0.1", port, 0.2)).diagnostic)
    for f in hog:
        f.close()
    print("after", (await h.probe(check, "192.0.2.1", "127.0.0.1", 1)).diagnostic)

asyncio.run(main())
"""


def test_at_the_descriptor_limit_probes_fail_naming_it_and_one_warning_is_logged():
    import os
    import subprocess
    import sys
    services = os.path.join(os.path.dirname(__file__), "..", "..", "services")
    r = subprocess.run([sys.executable, "-c", EMFILE_PROBES], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.path.abspath(services)))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for kind in ("http", "dns", "dnstcp", "syn"):
        diagnostics = [line.split(" ", 1)[1] for line in lines if line.startswith(kind + " ")]
        assert len(diagnostics) == 3 and all("Too many open files (LimitNOFILE=64 reached)" in d
                                             for d in diagnostics), (kind, r.stdout)
    warnings = [line for line in lines if line.startswith("WARNING probes cannot open sockets")]
    assert len(warnings) == 1 and "LimitNOFILE=64" in warnings[0], r.stdout
    assert not any(line.startswith("after ") and "Too many" in line for line in lines)


# ---- DNS replies are read to the end of each socket's queue per wakeup ----------------------------

def test_dns_replies_queued_behind_a_busy_loop_are_all_read_in_time():
    """2,000 probes answered at once while every loop iteration costs 5 ms of other work: a socket
    must be read until empty when it is readable (asyncio's datagram transport reads one datagram
    per iteration: 8 sockets x 200 iterations/s = 1,600 replies/s, most probes would time out)."""
    import time

    from vc5.healthd.checks import dns

    async def main():
        loop = asyncio.get_running_loop()
        responder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        responder.bind(("127.0.0.1", 0))
        responder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        responder.setblocking(False)
        port = responder.getsockname()[1]
        busy = {"on": True}

        def other_work():            # the rest of healthd: every iteration costs 5 ms
            time.sleep(0.005)
            if busy["on"]:
                loop.call_soon(other_work)

        def answer():
            while True:
                try:
                    data, addr = responder.recvfrom(512)
                except BlockingIOError:
                    return
                responder.sendto(data[:2] + b"\x81\x80" + data[4:], addr)

        checker = dns.DnsChecker()
        loop.add_reader(responder.fileno(), answer)
        try:
            assert (await checker.probe("127.0.0.1", port, "udp", 0.8)).passed     # the pool is open
            loop.call_soon(other_work)
            return await asyncio.gather(*(checker.probe("127.0.0.1", port, "udp", 0.8) for _ in range(2000)))
        finally:
            busy["on"] = False
            loop.remove_reader(responder.fileno())
            responder.close()
            await checker.close()

    results = asyncio.run(main())
    assert sum(not r.passed for r in results) == 0, {r.diagnostic for r in results}


def test_concurrent_first_dns_probes_open_one_pool_of_sockets():
    """Thousands of probes start together at start-up: one pool, not one per probe (the old
    asynchronous pool creation let every probe that found no pool open its own 8 sockets)."""
    import os

    from vc5.healthd.checks import dns

    async def main():
        before = len(os.listdir("/proc/self/fd"))
        checker = dns.DnsChecker()
        try:
            await asyncio.gather(*(checker.probe("127.0.0.1", 9, "udp", 0.05) for _ in range(200)))
            return len(os.listdir("/proc/self/fd")) - before
        finally:
            await checker.close()

    assert asyncio.run(main()) <= dns.POOL + 2
