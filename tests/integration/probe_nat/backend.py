"""A backend for the probe-path tests: says who it is and how it was reached.

    backend.py NAME PORT

HTTP on every address (IPv4 and IPv6, one dual-stack socket): GET / answers
200 with JSON {"name", "local": the address the connection was made to,
"peer": the address it came from}; UDP on the same port answers each
datagram with the same JSON (local = the datagram's destination, from
IPV6_RECVPKTINFO; the answer leaves from it). A backend with the VIP on lo therefore
answers a probe to the VIP with local = VIP; one without the VIP on lo
answers on its own address only. Prints "ready" once listening.
"""

import json
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, PORT = sys.argv[1], int(sys.argv[2])


def plain(address: str) -> str:
    return address[7:] if address.startswith("::ffff:") else address


class Who(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        body = json.dumps({"name": NAME, "local": plain(self.request.getsockname()[0]),
                           "peer": plain(self.client_address[0]), "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DualStack(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)      # no getfqdn(): no DNS in a namespace
        self.server_name, self.server_port = "backend", self.server_address[1]


def serve_udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    s.bind(("::", PORT))
    while True:
        data, anc, _flags, peer = s.recvmsg(2048, socket.CMSG_SPACE(20))
        info = next(d for level, kind, d in anc
                    if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO)
        local = socket.inet_ntop(socket.AF_INET6, info[:16])
        body = json.dumps({"name": NAME, "local": plain(local), "peer": plain(peer[0])}).encode()
        s.sendmsg([body], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)], 0, peer)


server = DualStack(("::", PORT), Who)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
server.serve_forever()
