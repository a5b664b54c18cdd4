"""Route health injection: which VIPs go in the RIB, and when (pure functions).

vc5 (manager.go adjRIBOut): a VIP is advertised once it has been up
continuously for more than the hold-down (vc5: 5 s) and not before the learn
delay after start; a VIP that goes down leaves the RIB at once (no damping).
"""

import functools
import ipaddress


@functools.lru_cache(maxsize=1 << 16)
def vip_prefix(vip: str):
    """'192.0.2.1' -> 192.0.2.1/32, '2001:db8::1' -> 2001:db8::1/128 (host routes only)."""
    addr = ipaddress.ip_address(vip)
    return ipaddress.ip_network((addr, addr.max_prefixlen))


def compute(vips, now: float, hold_down: float, learn_until: float, first_seen_up=None):
    """(set of prefixes to advertise, time of the next change due to the clock or None).

    `vips`: VipState-like (vip, up, since µs since epoch; 0 = unknown). `now` is
    the same clock in seconds. `first_seen_up` maps vip -> when we first saw it
    up, used when `since` is unknown.
    """
    rib = set()
    wake = None
    for v in vips:
        if not v.up:
            continue
        since = v.since / 1e6 if v.since else (first_seen_up or {}).get(v.vip, now)
        due = max(since + hold_down, learn_until)
        # "more than" the hold-down (vc5 uses >): equal is not yet
        if now > due or (now >= due and hold_down == 0):
            rib.add(vip_prefix(v.vip))
        else:
            wake = due if wake is None else min(wake, due)
    return rib, wake
