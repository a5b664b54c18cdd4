"""A scripted BGP router for tests: `python3 -m tests.integration.bgp.scripted_peer SPEC.json`.

Listens on the spec's address:179, accepts one connection, answers the OPEN
(AS 65000, hold `hold`, IPv4 and IPv6 unicast, 4-octet AS), sends each
message of `send` (hex) twice, then stays `stay` seconds answering with a
KEEPALIVE every second, and prints one JSON line: keepalives received,
NOTIFICATIONs received, prefixes announced and withdrawn, whether the
connection was closed. Run in the router's namespace (tests/integration/bgp/test_rfc7606.py).
"""

import json
import socket
import sys
import time

from vc5.bgpd import capabilities as caps
from vc5.bgpd import messages
from vc5.bgpd.messages import header, keepalive
from vc5.bgpd.messages import open as bgp_open


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    listener = socket.create_server((spec["address"], 179))
    conn, _ = listener.accept()
    conn.settimeout(0.2)
    report = {"opens": 0, "keepalives": 0, "notifications": [], "announced": [], "withdrawn": [],
              "closed": False}
    buf = b""

    def pump():
        nonlocal buf
        try:
            data = conn.recv(65536)
        except socket.timeout:
            return
        if not data:
            report["closed"] = True
            return
        buf += data
        msgs, buf = messages.decode_stream(buf)
        for msg_type, msg in msgs:
            if msg_type == header.OPEN:
                report["opens"] += 1
            elif msg_type == header.KEEPALIVE:
                report["keepalives"] += 1
            elif msg_type == header.NOTIFICATION:
                report["notifications"].append(msg.text)
            elif msg_type == header.UPDATE:
                report["announced"] += [str(p) for p in msg.nlri]
                report["withdrawn"] += [str(p) for p in msg.withdrawn]

    while not report["opens"] and not report["closed"]:
        pump()                                           # bgpd's OPEN
    c = caps.Capabilities(families=(caps.IPV4_UNICAST, caps.IPV6_UNICAST), route_refresh=True,
                          four_octet_as=65000)
    conn.sendall(bgp_open.encode(65000, spec["hold"], spec["router_id"], c) + keepalive.encode())
    end = time.monotonic() + spec["stay"]
    for raw in [bytes.fromhex(h) for h in spec["send"]] * 2:
        conn.sendall(raw)
    last = 0.0
    while time.monotonic() < end and not report["closed"]:
        pump()
        if time.monotonic() - last >= 1.0:
            conn.sendall(keepalive.encode())
            last = time.monotonic()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
