"""Does the configuration fit in the data plane? (vc5.common.capacity; docs/operations/limits.md)

The XDP loader's maps have fixed sizes. A configuration beyond them used to
check fine and fail later, in the loader, one service at a time; here it is
refused up front, each limit once, at the first service (in file order) that
goes beyond it, with its key path and position:

  * MAX_SERVICES  VIP:port:protocol services (a policy entry such as
                  `domain` makes two, tcp and udp);
  * MAX_VIPS      distinct VIPs;
  * MAX_PAIRS     (service, backend) pairs: the sum of every service's
                  servers, counted as an upper bound (disabled ones,
                  `address*`, included: a file that fits, fits whatever
                  the health of its servers);
  * MAX_NAT       distinct (VIP, server) pairs: each gets a probe address.

Servers per service (MAX_BACKENDS) are checked where the list is read
(services.py), tunnel types where the key is read (service_keys.py).
"""

from __future__ import annotations

from vc5.common import capacity

from .errors import Problem
from .reader import Reader

WHERE = "docs/operations/limits.md"


def position(origin: str) -> tuple:
    """(line, column) of an origin "FILE:LINE:COLUMN" (the file name may hold colons)."""
    try:
        _, line, column = origin.rsplit(":", 2)
        return int(line), int(column)
    except ValueError:
        return 0, 0


def check(r: Reader, placed: dict, services: list) -> None:
    """placed: (vip, port, protocol) -> (key path, origin) in file order (ServiceCompiler.seen);
    services: the compiled Services. Records one Problem per limit exceeded."""
    by_ident = {(s.vip, s.port, s.protocol): s for s in services}
    ordered = [(by_ident[i], path, origin) for i, (path, origin) in placed.items() if i in by_ident]
    vips, nat, pairs = set(), set(), 0
    over = {}                   # limit name -> (service, path, origin, count when crossed)
    for n, (s, path, origin) in enumerate(ordered, 1):
        vips.add(s.vip)
        nat.update((s.vip, b.address) for b in s.backends)
        pairs += len(s.backends)
        for name, count, limit in (("services", n, capacity.MAX_SERVICES),
                                   ("VIPs", len(vips), capacity.MAX_VIPS),
                                   ("pairs", pairs, capacity.USABLE_PAIRS),
                                   ("nat", len(nat), capacity.MAX_NAT)):
            if count > limit and name not in over:
                over[name] = (s, path, origin)
    totals = {"services": len(ordered), "VIPs": len(vips), "pairs": pairs, "nat": len(nat)}
    for name, (s, path, origin) in over.items():
        line, column = position(origin)
        r.problems.append(Problem(r.source, line, column, path, _message(name, s, totals[name])))


def _message(name: str, s, total: int) -> str:
    if name == "services":
        return (f"service {s.key} is the first beyond the limit: the file defines {total:,} services "
                f"(VIP:port:protocol) and the data plane holds at most {capacity.MAX_SERVICES:,} ({WHERE})")
    if name == "VIPs":
        return (f"VIP {s.vip} is the first beyond the limit: the file uses {total:,} VIPs and the data plane "
                f"holds at most {capacity.MAX_VIPS:,} ({WHERE})")
    if name == "pairs":
        return (f"service {s.key} goes beyond the data plane's {capacity.USABLE_PAIRS:,} (service, server) "
                f"pairs: the file lists {total:,}, counting every service's servers ({WHERE})")
    return (f"service {s.key} goes beyond the {capacity.MAX_NAT:,} (VIP, server) pairs the data plane can "
            f"give a health-check probe address: the file has {total:,} ({WHERE})")
