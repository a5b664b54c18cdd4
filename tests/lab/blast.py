"""Send prepared Ethernet frames as fast as one process can, through an AF_PACKET socket.

    blast.py DEV FRAMES_FILE COUNT [MAX_SECONDS]

FRAMES_FILE holds frames as 2-byte big-endian length + bytes, one after the
other. They are sent round-robin until COUNT frames are out or MAX_SECONDS
(default 10) have passed. Prints {"sent": n, "per_frame": [n0, n1, ...],
"seconds": s, "pps": p} as JSON (a frame the kernel refused, ENOBUFS, is not
counted).
Runs inside a lab namespace (the frames go out of DEV there).
"""

import errno
import json
import socket
import struct
import sys
import time


def read_frames(path):
    frames, data = [], open(path, "rb").read()
    i = 0
    while i < len(data):
        (n,) = struct.unpack_from(">H", data, i)
        frames.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return frames


def main():
    dev, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    frames = read_frames(path)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    per_frame = [0] * len(frames)
    sent, tries = 0, 0
    t0 = time.monotonic()
    deadline = t0 + limit
    while tries < count and time.monotonic() < deadline:
        for i, f in enumerate(frames):
            tries += 1
            try:
                s.send(f)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                continue
            per_frame[i] += 1
        sent = sum(per_frame)
    took = time.monotonic() - t0
    print(json.dumps({"sent": sent, "per_frame": per_frame, "seconds": round(took, 3),
                      "pps": round(sent / took)}))


if __name__ == "__main__":
    main()
