"""`make demo`: vc5 doing its job on a lab of network namespaces.

Builds the lab (tests/lab/topology.py), starts BIRD on the router, three
L2 backends and one routed backend behind the router (rb1, reached over GUE
and decapsulated by vc5-decap: layer-3 DSR), and on each balancer the vc5 services on a private bus of its own
(processes, since PID 1 here is not systemd), then drives client traffic
through the router and shows, every few seconds, which backend answered each
new connection and what the router learned over BGP. Ctrl-C removes
everything it created.
"""

import collections
import os
import signal
import sys
import time

from tests.lab.stack import Stack
from tests.lab.topology import VIP4, Lab, routed_vip

GUE_VIP = routed_vip("gue", 4, 4)       # the routed service over GUE (stack.routed_services)


def probe_round(lab, n=30, vip=VIP4):
    """n new HTTP connections from the client to `vip`: {backend name: hits}."""
    script = (f"for i in $(seq {n}); do curl -s -m 1 http://{vip}/ || echo fail; done")
    out = lab.client.ns.run(script, check=False, timeout=n * 2 + 5).stdout.split()
    return collections.Counter(out)


def main():
    if os.geteuid() != 0:
        sys.exit("make demo needs root: it builds network namespaces and loads XDP")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
    print("building the lab (namespaces vc5demo-*) ...", flush=True)
    lab = Lab.build(prefix="vc5demo", routed=1)
    lab.routed_tunnels = ("gue",)       # one routed service: GUE, outer IPv4 and IPv6
    # As production should run: flows shared between the balancers (vc5 v0.3's multicast format),
    # BFD toward the router (a dead balancer leaves its ECMP group in about 0.6 s).
    stack = Stack(lab, web_listen="127.0.0.1:8005",
                  config=dict(top="multicast: 239.255.5.5:9999\n", bgp="  bfd: true\n"))
    try:
        lab.start_backends()
        lab.start_router(bfd_ms=100)
        stack.start()
        print("starting vc5 on both balancers; waiting for backends to pass their checks and for"
              " the router to learn the VIP over BGP ...", flush=True)
        stack.wait_advertised(timeout=120)
        print(f"""
vc5 demo is up.
  console:      http://127.0.0.1:8005/   (also /status.json, /metrics)
  client:       nsenter --net=/run/netns/{lab.client.ns.name} curl http://{VIP4}/
  routed (GUE): nsenter --net=/run/netns/{lab.client.ns.name} curl http://{GUE_VIP}/
                (rb1, behind the router; vc5-decap strips the GUE header)
  decap (rb1):  nsenter --net=/run/netns/{lab.routed[0].ns.name} env PYTHONPATH=services \\
                  python3 -m vc5.decap --pin-base {lab.decap_pins(1)} status eth0
  router (BGP): birdc -s {lab.bird_ctl} show route all
  router (BFD): birdc -s {lab.bird_ctl} show bfd sessions
  balancer 1:   DBUS_SYSTEM_BUS_ADDRESS={stack.buses[0]} PYTHONPATH=services python3 -m vc5.cli status
  logs:         {lab.workdir}/*.log
Ctrl-C to stop and remove everything.
""", flush=True)
        while not stopping:
            hits = probe_round(lab)
            routed = probe_round(lab, 10, GUE_VIP)
            routes = lab.birdc("show", "route", f"{VIP4}/32")
            nexthops = sorted({line.split()[1] for line in routes.splitlines()
                               if line.strip().startswith("via")})
            print(time.strftime("%H:%M:%S"), "new connections per backend: L2",
                  ", ".join(f"{k}={v}" for k, v in sorted(hits.items())) or "none",
                  "| GUE", ", ".join(f"{k}={v}" for k, v in sorted(routed.items())) or "none",
                  "| router next hops for", VIP4, ":", ", ".join(nexthops) or "none", flush=True)
            for _ in range(30):
                if stopping:
                    break
                time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nremoving the lab ...", flush=True)
        lab.destroy()
        stack.stop()
        print("done.")


if __name__ == "__main__":
    main()
