"""Hostile backends for tests/integration/health/test_hostile_backends.py (run in the farm namespace).

    python3 hostile_server.py PROBER_ADDRESS ADDR=ROLE ...

Roles, each on its own address:
  endless   HTTP :8080, 200 with a body that never ends (Content-Length 10^12, streamed)
  headers   HTTP :8080, 200 then header lines without end
  bodydrip  HTTP :8080, 200 then the body one byte per 50 ms
  headdrip  HTTP :8080, the status line one byte per 50 ms
  reset     HTTP :8080, accepts and resets (SO_LINGER 0)
  dnsjunk   DNS :5353/udp, per query 300 datagrams with the wrong id, 100 without QR,
            100 truncated below a header, 2 of 16 KiB; never the right answer
  synlate   a *well-behaved* SYN-check target on an address routed to the farm but not
            assigned there (so the kernel stays silent): each SYN to :80 gets forged
            RSTs at once - RST without ACK, RST|ACK acknowledging the wrong number,
            RST|ACK with ack 0, RST with the right number but no ACK bit (RFC 9293
            §3.10.7.3: all to be dropped) - then the correct SYN-ACK 50 ms later; plus
            a storm of RSTs without ACK over every port 61000-65535, 2,000 a second
Prints "ready" once everything listens.
"""

import asyncio
import os
import socket
import struct
import sys
import threading
import time

HTTP_HEAD = b"HTTP/1.1 200 OK\r\n"
HTTP_PORT, DNS_PORT = 8080, 5353      # beside the farm's well-behaved servers on 80 and 53


async def endless(reader, writer):
    writer.write(HTTP_HEAD + b"Content-Length: 1000000000000\r\n\r\n")
    chunk = b"e" * 65536
    while True:
        writer.write(chunk)
        await writer.drain()


async def headers(reader, writer):
    writer.write(HTTP_HEAD)
    i = 0
    while True:
        writer.write(b"".join(b"X-Junk-%d: %s\r\n" % (i + k, b"h" * 4000) for k in range(16)))
        i += 16
        await writer.drain()


async def bodydrip(reader, writer):
    writer.write(HTTP_HEAD + b"Content-Length: 1000000\r\n\r\n")
    while True:
        writer.write(b"d")
        await writer.drain()
        await asyncio.sleep(0.05)


async def headdrip(reader, writer):
    for c in HTTP_HEAD + b"X-Slow: " + b"s" * 100000:
        writer.write(bytes([c]))
        await writer.drain()
        await asyncio.sleep(0.05)


async def reset(reader, writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def http_role(handler):
    async def serve(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.transport.abort()
    return serve


class DnsJunk(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        if len(data) < 12:
            return
        wrong = bytes([data[0] ^ 0x5A, data[1]]) + b"\x81\x80" + data[4:]
        for _ in range(300):
            self.t.sendto(wrong, addr)
        for _ in range(100):
            self.t.sendto(data, addr)                  # QR clear: a query, not a reply
            self.t.sendto(data[:2] + b"\x81", addr)    # shorter than a header
        for _ in range(2):
            self.t.sendto(wrong + b"\0" * 16384, addr)


# ---- forged RSTs (raw IPv4, header included) ----------------------------------------------------

def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment(src, dst, sport, dport, seq, ack, flags):
    """A TCP segment (no payload) in an IPv4 header, checksums right (RFC 9293 §3.1)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 0, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


SYNACK_DELAY = 0.05      # the responder's SYN-ACK leaves this long after its forged RSTs


def synlate(prober, address):
    """A correct but slow SYN-ACK responder on `address` (not assigned here, so the kernel never
    answers), preceded by forged RSTs; and a sweep of RSTs without ACK over every SYN-check port."""
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    sniff.bind(("eth0", 0))

    def sweep():
        while True:
            for port in range(61000, 65536):
                seq = int.from_bytes(os.urandom(4), "big")
                out.sendto(segment(address, prober, 80, port, seq, 0, 0x04), (prober, 0))
                if port % 20 == 0:
                    time.sleep(0.01)

    def synack(sport, seq):
        out.sendto(segment(address, prober, 80, sport, 1000, (seq + 1) & 0xFFFFFFFF, 0x12), (prober, 0))

    threading.Thread(target=sweep, daemon=True).start()
    while True:
        pkt = sniff.recv(65535)
        if len(pkt) < 40 or pkt[9] != 6 or socket.inet_ntoa(pkt[16:20]) != address:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        sport, dport, seq, _ack, _off, flags = struct.unpack("!HHIIBB", pkt[ihl:ihl + 14])
        if dport != 80 or flags != 0x02:
            continue
        for ack, fl in ((0, 0x04), (seq + 2, 0x14), (0, 0x14), (seq + 1, 0x04)):
            out.sendto(segment(address, prober, 80, sport, 7, ack & 0xFFFFFFFF, fl), (prober, 0))
        threading.Timer(SYNACK_DELAY, synack, (sport, seq)).start()


async def main(prober, roles):
    loop = asyncio.get_running_loop()
    handlers = {"endless": endless, "headers": headers, "bodydrip": bodydrip, "headdrip": headdrip,
                "reset": reset}
    for address, role in roles:
        if role in handlers:
            await asyncio.start_server(http_role(handlers[role]), address, HTTP_PORT, reuse_address=True)
        elif role == "dnsjunk":
            await loop.create_datagram_endpoint(DnsJunk, local_addr=(address, DNS_PORT))
        elif role == "synlate":
            threading.Thread(target=synlate, args=(prober, address), daemon=True).start()
        else:
            raise SystemExit(f"unknown role {role}")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]))
