"""Client side of the XDP integration tests; prints JSON on stdout.

    client.py http SRC VIP PORT SPORT...        -> {"SPORT": "backend name" | "error: ..."}
    client.py udp SRC VIP PORT SPORT...         -> same, over UDP
    client.py streams SRC VIP PORT SECONDS SPORT...
        one TCP connection per SPORT; each sends one byte every 50 ms and reads the echo.
        Prints {"connected": {"SPORT": name}} as soon as all are up, then at the end
        {"result": {"SPORT": {"name", "sent", "received", "max_gap", "error"}}}.
"""

import http.client
import json
import selectors
import socket
import sys
import time

INTERVAL = 0.05


def do_http(src, vip, port, sports):
    out = {}
    for sp in sports:
        try:
            c = http.client.HTTPConnection(vip, port, timeout=3, source_address=(src, sp))
            c.request("GET", "/")
            out[str(sp)] = c.getresponse().read().decode()
            c.close()
        except OSError as e:
            out[str(sp)] = f"error: {e}"
    return out


def do_udp(src, vip, port, sports):
    out = {}
    for sp in sports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.bind((src, sp))
            s.sendto(b"who", (vip, port))
            out[str(sp)] = s.recv(2048).decode()
        except OSError as e:
            out[str(sp)] = f"error: {e}"
        finally:
            s.close()
    return out


def do_streams(src, vip, port, seconds, sports):
    sel = selectors.DefaultSelector()
    st = {}
    for sp in sports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(3)
        s.bind((src, sp))
        s.connect((vip, port))
        f = s.makefile("rb")
        name = f.readline().decode().strip()
        s.setblocking(False)
        st[sp] = {"sock": s, "name": name, "sent": 0, "received": 0, "max_gap": 0.0, "error": "",
                  "last": time.monotonic()}
        sel.register(s, selectors.EVENT_READ, sp)
    print(json.dumps({"connected": {str(sp): v["name"] for sp, v in st.items()}}), flush=True)
    end = time.monotonic() + seconds
    next_send = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_send:
            for sp, v in st.items():
                if not v["error"]:
                    try:
                        v["sock"].send(b"x")
                        v["sent"] += 1
                    except OSError as e:
                        v["error"] = f"send: {e}"
            next_send = now + INTERVAL
        for key, _ in sel.select(timeout=max(0.0, min(next_send, end) - time.monotonic())):
            v = st[key.data]
            try:
                data = v["sock"].recv(4096)
            except OSError as e:
                v["error"] = f"recv: {e}"
                sel.unregister(v["sock"])
                continue
            if not data:
                v["error"] = "closed by peer"
                sel.unregister(v["sock"])
                continue
            t = time.monotonic()
            v["max_gap"] = max(v["max_gap"], t - v["last"])
            v["last"] = t
            v["received"] += len(data)
    t = time.monotonic()
    for v in st.values():
        v["max_gap"] = round(max(v["max_gap"], t - v["last"]), 3)
        v["sock"].close()
    return {"result": {str(sp): {k: v[k] for k in ("name", "sent", "received", "max_gap", "error")}
                       for sp, v in st.items()}}


def main(argv):
    mode, src, vip, port = argv[0], argv[1], argv[2], int(argv[3])
    if mode == "http":
        print(json.dumps(do_http(src, vip, port, [int(p) for p in argv[4:]])), flush=True)
    elif mode == "udp":
        print(json.dumps(do_udp(src, vip, port, [int(p) for p in argv[4:]])), flush=True)
    elif mode == "streams":
        print(json.dumps(do_streams(src, vip, port, float(argv[4]), [int(p) for p in argv[5:]])), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
