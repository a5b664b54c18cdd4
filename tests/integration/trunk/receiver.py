"""Run inside the backend namespace: wait for one UDP datagram to VIP:PORT on an
AF_PACKET socket of DEV and on a UDP socket bound to the VIP; print JSON."""

import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def main(dev, vip, port, timeout):
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.bind((dev, 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((vip, port))
    print("ready", flush=True)
    frames, payload = [], None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (payload is None or not frames):
        ready, _, _ = select.select([raw, udp], [], [], 0.2)
        if raw in ready:
            data, addr = raw.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING or len(data) < 14 + 28:
                continue
            ethertype = struct.unpack("!H", data[12:14])[0]
            ip = data[14:]
            if ethertype == 0x0800 and ip[9] == 17 and socket.inet_ntoa(ip[16:20]) == vip:
                ihl = (ip[0] & 15) * 4
                if struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] == port:
                    frames.append({"dst_mac": data[0:6].hex(":"), "src_mac": data[6:12].hex(":"),
                                   "src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20]),
                                   "ttl": ip[8]})
        if udp in ready:
            data, peer = udp.recvfrom(65535)
            payload = data.decode(errors="replace")
    print(json.dumps({"frames": frames, "payload": payload}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
