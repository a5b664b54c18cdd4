"""Probes as healthd sends them, run in the balancer's namespace.

    probe_client.py '[["http", ADDRESS, PORT, HOST], ["udp", ADDRESS, PORT, null],
                      ["syn", ADDRESS, PORT, null], ...]'

Prints one JSON list: for http and udp (one datagram, one answer expected)
{"ok": true, "body": {...}} or {"ok": false, "error": "..."}; for syn
{"ok": bool, "diagnostic": "..."} from healthd's own SYN checker
(vc5.healthd.checks.syn: raw socket, SYN-ACK expected). 2 s timeouts, as vc5.
"""

import asyncio
import http.client
import json
import socket
import sys

from vc5.healthd.checks.syn import SynChecker

TIMEOUT = 2.0


def http_get(address, port, host):
    try:
        c = http.client.HTTPConnection(address, port, timeout=TIMEOUT)
        c.request("GET", "/", headers={"Host": host or address})
        r = c.getresponse()
        body = r.read()
        c.close()
        return {"ok": r.status == 200, "body": json.loads(body)}
    except (OSError, http.client.HTTPException, ValueError) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def udp_ask(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(TIMEOUT)
            s.connect((address, port))
            s.send(b"probe")
            return {"ok": True, "body": json.loads(s.recv(2048))}
    except (OSError, ValueError) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


async def syns(jobs):
    checker = SynChecker()
    try:
        results = await asyncio.gather(*(checker.probe(a, p, TIMEOUT) for a, p in jobs))
    finally:
        await checker.close()
    return [{"ok": r.passed, "diagnostic": r.diagnostic} for r in results]


def main():
    jobs = json.loads(sys.argv[1])
    out = [None] * len(jobs)
    syn_jobs = [(i, j) for i, j in enumerate(jobs) if j[0] == "syn"]
    if syn_jobs:
        for (i, _), r in zip(syn_jobs, asyncio.run(syns([(j[1], j[2]) for _, j in syn_jobs]))):
            out[i] = r
    for i, j in enumerate(jobs):
        if j[0] == "http":
            out[i] = http_get(j[1], j[2], j[3])
        elif j[0] == "udp":
            out[i] = udp_ask(j[1], j[2])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
