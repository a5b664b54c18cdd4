"""A backend for the XDP integration tests: answers on the VIP (bound to lo) with its own name.

    backend_server.py NAME VIP[,VIP6] HTTP_PORT ECHO_PORT UDP_PORT

  * HTTP (stdlib http.server): GET / -> NAME (on VIP6 too when given)
  * TCP echo: sends "NAME\\n" on accept, then echoes every byte
  * UDP: replies NAME to every datagram
Prints "ready" once all three listen.
"""

import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, VIP, *VIP6 = sys.argv[1], *sys.argv[2].split(",")
HTTP_PORT, ECHO_PORT, UDP_PORT = (int(p) for p in sys.argv[3:6])


class Http(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        body = NAME.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(NAME.encode() + b"\n")
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((VIP, UDP_PORT))
    return s


def serve_udp(s):
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(NAME.encode(), peer)


class QuickHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind asks getfqdn(), a DNS lookup that times out in a namespace without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class QuickHTTPServer6(QuickHTTPServer):
    address_family = socket.AF_INET6


http = QuickHTTPServer((VIP, HTTP_PORT), Http)
echo = ThreadingTCP((VIP, ECHO_PORT), Echo)
u = udp()
servers = [(http.serve_forever, ()), (echo.serve_forever, ()), (serve_udp, (u,))]
for v6 in VIP6:
    servers.append((QuickHTTPServer6((v6, HTTP_PORT), Http).serve_forever, ()))
for target, arg in servers:
    threading.Thread(target=target, args=arg, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
