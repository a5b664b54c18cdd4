"""Hostile backends beside well-behaved ones (issue 12): healthd stays small and fair.

    prober netns  10.9.0.1, route 10.9.1.0/24 -> the farm
    farm netns    10.9.0.10, .11  well-behaved: aiohttp :80, dnsmasq :53, kernel SYN-ACKs
                  10.9.1.13       well-behaved SYN target answered late from user space,
                                  behind forged RSTs and a RST storm (hostile_server.py synlate)
                  10.9.0.20-.24   HTTP :8080: endless body, endless headers, dripping body,
                                  dripping head, reset
                  10.9.0.25       DNS :5353: garbage only (wrong ids, no QR, truncated, 16 KiB)

Every well-behaved (service, backend) comes up and never goes down while the
hostile ones do their worst (fall 1: a single failed round would show), and
healthd's RSS stays under the unit's MemoryMax= (and grows by less than
GROWTH_MIB). The hostile backends end where docs/health-checks.md says: the
status decides (endless and dripping bodies pass), a head that never ends
or never comes fails, and so does a backend that only sends garbage.
"""

import os
import re
import time

from . import procstat
from .conftest import HERE

OBSERVE_S = 12.0
GROWTH_MIB = 48          # RSS growth allowed while the hostile backends run
GUARD_MIB = 1024         # the test kills healthd above this (the old code grew without bound)
UNIT = os.path.join(HERE, "..", "..", "..", "units", "vc5-healthd.service")

HOSTILE_HTTP = {"10.9.0.20": "endless", "10.9.0.21": "headers", "10.9.0.22": "bodydrip",
                "10.9.0.23": "headdrip", "10.9.0.24": "reset"}
JUNK_DNS, LATE_SYN = "10.9.0.25", "10.9.1.13"

TIMING = "\n    ".join(["interval: 0.5", "timeout: 0.4", "rise: 2", "fall: 1"])
CONFIG = f"""\
services:
  - name: web
    virtual: 192.0.2.1
    servers: [10.9.0.10, 10.9.0.11]
    {TIMING}
    policy:
      http: {{path: /alive}}
  - name: syn
    virtual: 192.0.2.2
    servers: [10.9.0.10, 10.9.0.11, {LATE_SYN}]
    {TIMING}
    policy:
      80:
  - name: dns
    virtual: 192.0.2.3
    servers: [10.9.0.10, 10.9.0.11]
    {TIMING}
    policy:
      domain/udp:
  - name: hostile-web
    virtual: 192.0.2.4
    servers: [{", ".join(HOSTILE_HTTP)}]
    need: 0
    {TIMING}
    policy:
      8080:
        checks: [{{type: http}}]
  - name: hostile-dns
    virtual: 192.0.2.5
    servers: [{JUNK_DNS}]
    need: 0
    {TIMING}
    policy:
      5353/udp:
        checks: [{{type: dns}}]
"""

WELL_BEHAVED = [("192.0.2.1:80:tcp", a) for a in ("10.9.0.10", "10.9.0.11")] + \
    [("192.0.2.2:80:tcp", a) for a in ("10.9.0.10", "10.9.0.11", LATE_SYN)] + \
    [("192.0.2.3:53:udp", a) for a in ("10.9.0.10", "10.9.0.11")]


def memory_max_mib():
    with open(UNIT) as f:
        m = re.search(r"^MemoryMax=(\d+)M$", f.read(), re.M)
    assert m, "units/vc5-healthd.service sets no MemoryMax=<n>M"
    return int(m.group(1))


def hostile(farm):
    for a in list(HOSTILE_HTTP) + [JUNK_DNS]:
        farm.ns.run(f"ip addr add {a}/24 dev eth0")
    farm.prober.run("ip route add 10.9.1.0/24 via 10.9.0.10")
    roles = [f"{a}={r}" for a, r in HOSTILE_HTTP.items()] + [f"{JUNK_DNS}=dnsjunk", f"{LATE_SYN}=synlate"]
    p = farm.ns.popen(["/usr/bin/python3", os.path.join(HERE, "hostile_server.py"), "10.9.0.1", *roles])
    assert p.stdout.readline().strip() == b"ready", "hostile server did not start"
    return p


def test_hostile_backends_leave_the_others_alone_and_healthd_small(farm):
    limit = memory_max_mib()
    server = hostile(farm)
    try:
        with farm.healthd(CONFIG) as h:
            def guard():
                rss = procstat.rss_kib(h.proc.pid)
                if rss > GUARD_MIB * 1024:
                    h.proc.kill()
                return rss
            with procstat.Sampler(guard, 0.05) as rss:
                for svc, a in WELL_BEHAVED:
                    h.wait_backend(svc, a, True, timeout=20)
                start_rss = procstat.rss_kib(h.proc.pid)
                since = {(svc, a): h.backend(svc, a)["since"] for svc, a in WELL_BEHAVED}
                time.sleep(OBSERVE_S)
                services = h.services()
                logs = {(svc, a): h.call("org.vc5.Health1", "ProbeLog", "ss", svc, a)[0]
                        for svc, a in WELL_BEHAVED}
            assert h.proc.poll() is None, f"healthd died:\n{h.log()[-3000:]}"
    finally:
        server.terminate()
        server.wait(5)

    peak_mib = rss.max / 1024
    print(f"healthd RSS: {start_rss / 1024:.0f} MiB when all were up, peak {peak_mib:.0f} MiB")
    assert peak_mib < limit, f"healthd RSS peaked at {peak_mib:.0f} MiB, MemoryMax={limit}M"
    assert peak_mib - start_rss / 1024 < GROWTH_MIB, (peak_mib, start_rss / 1024)
    for (svc, a), was in since.items():
        b = services[svc]["backends"][a]
        assert b["up"] and b["since"] == was, f"{a} of {svc} went down: {b} {logs[(svc, a)][-5:]}"
        rounds = logs[(svc, a)]
        assert len(rounds) >= 20 and all(r[1] for r in rounds), (svc, a, [r for r in rounds if not r[1]])

    web = services["192.0.2.4:8080:tcp"]["backends"]
    assert web["10.9.0.20"]["up"] and web["10.9.0.20"]["diagnostic"] == "OK"          # endless body
    assert web["10.9.0.22"]["up"] and web["10.9.0.22"]["diagnostic"] == "OK"          # dripping body
    headers = web["10.9.0.21"]
    assert not headers["up"] and "invalid response: Too many headers" in headers["diagnostic"], headers
    assert not web["10.9.0.23"]["up"] and web["10.9.0.23"]["diagnostic"].endswith(" - Timeout")
    assert not web["10.9.0.24"]["up"]
    junk = services["192.0.2.5:5353:udp"]["backends"][JUNK_DNS]
    assert not junk["up"] and junk["diagnostic"] == "dns: Timeout"
