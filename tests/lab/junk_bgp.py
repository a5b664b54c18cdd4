"""A "router" that answers a BGP speaker with garbage (one kind per connection).

Listens on TCP 179 (inside a lab namespace). For each connection: read what
the speaker sends first (its OPEN), send the next kind of junk, then read
until the speaker closes (at most 5 s). Prints one JSON line per connection:
{"kind", "received_first": hex, "after_junk": hex, "closed": bool}. After
the last kind it accepts and closes at once. Bounded by --max-seconds.
"""

import argparse
import json
import socket
import struct
import time

MARKER = b"\xff" * 16
KINDS = {
    # RFC 4271 6.1: a marker that is not all ones -> NOTIFICATION 1/1 Connection Not Synchronized.
    "bad-marker": b"\x00" * 16 + struct.pack(">HB", 19, 4),
    # RFC 4271 6.1: length above 4096 -> NOTIFICATION 1/2 Bad Message Length.
    "bad-length": MARKER + struct.pack(">HB", 5000, 4),
    # RFC 4271 6.1: unknown type -> NOTIFICATION 1/3 Bad Message Type.
    "bad-type": MARKER + struct.pack(">HB", 19, 9),
}


def read_some(conn, deadline):
    data = b""
    closed = False
    while time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = conn.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        if deadline - time.monotonic() > 0.3 and len(data) >= 19:
            deadline = min(deadline, time.monotonic() + 0.3)   # the rest of a message, if any
    return data, closed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--max-seconds", type=float, default=120)
    a = p.parse_args()
    kinds = a.kinds.split(",")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 179))
    srv.listen(4)
    end = time.monotonic() + a.max_seconds
    while time.monotonic() < end:
        srv.settimeout(max(0.1, end - time.monotonic()))
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            break
        with conn:
            if not kinds:
                continue
            kind = kinds.pop(0)
            first, _ = read_some(conn, time.monotonic() + 5)
            conn.sendall(KINDS[kind])
            after, closed = read_some(conn, time.monotonic() + 5)
            print(json.dumps({"kind": kind, "received_first": first.hex(), "after_junk": after.hex(),
                              "closed": closed}), flush=True)


if __name__ == "__main__":
    main()
