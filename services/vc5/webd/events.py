"""Log lines derived from what changed between two snapshots.

webd has no private line to the other daemons' logs (it runs unprivileged
and reads the bus only), so its console log narrates the transitions it sees
on the bus, in vc5's words (vc5:manager.go `Notify`, vc5:status.go,
vc5:logging.go): "Backend <ip:port> for service <ip:port:proto> went up|down",
"VIP <ip> went up|down", "BGP session with <peer>: <STATE>", plus daemons
appearing on and leaving the bus. Levels: NOTICE(5) for backends, ERR(3) for a
VIP going down, NOTICE for up, WARNING(4) for a daemon leaving.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

from vc5.client.snapshot import Snapshot
from vc5.common import names

NOTICE, WARNING, ERR, INFO = 5, 4, 3, 6


def transition_level(kind: str, up: bool) -> int:
    """Level of a healthd Transition line: a VIP going down is an error, a service change is
    INFO, the rest NOTICE (vc5: backends NOTICE, VIPs at their priority's level)."""
    if kind.startswith("vip"):
        return NOTICE if up else ERR
    if kind == "service":
        return INFO
    return NOTICE


DAEMONS = ((names.HEALTH_BUS, "health", "vc5-healthd"), (names.BGP_BUS, "bgp", "vc5-bgpd"),
           (names.XDP_LOADER_BUS, "xdp", "vc5-xdp-loader"))


def _backends(snap: Snapshot) -> dict:
    out = {}
    if snap.health is not None:
        for s in snap.health.services:
            for b in s.backends:
                out[(s.key, f"{b.address}:{b.port}")] = b
    return out


def diff(old: Optional[Snapshot], new: Snapshot, health_signals: bool = False) -> Iterator[Tuple[int, str]]:
    """(level, text) for each transition from old to new; nothing for the first snapshot.

    `health_signals`: healthd's own Transition signals are being logged, so
    backend and VIP up/down lines are left to them (healthd sees every flap,
    a 2-s diff does not).
    """
    if old is None:
        return
    for bus, attr, unit in DAEMONS:
        was, now = getattr(old, attr) is not None, getattr(new, attr) is not None
        if was and not now:
            yield WARNING, f"{unit} ({bus}) left the bus"
        elif now and not was:
            yield NOTICE, f"{unit} ({bus}) is on the bus"

    if old.health is not None and new.health is not None:
        before = _backends(old)
        for key, b in _backends(new).items():
            prev = before.get(key)
            if prev is not None and prev.up != b.up and not health_signals:
                word = "up" if b.up else "down"
                extra = f" ({b.diagnostic})" if b.diagnostic and not b.up else ""
                yield NOTICE, f"Backend {key[1]} for service {key[0]} went {word}{extra}"
            if prev is not None and prev.drained != b.drained:
                yield NOTICE, f"Backend {key[1]} for service {key[0]} " + (
                    "drained" if b.drained else "undrained")
        vips = {v.vip: v for v in old.health.vips}
        for v in new.health.vips:
            prev = vips.get(v.vip)
            if prev is not None and prev.up != v.up and not health_signals:
                yield (NOTICE if v.up else ERR), f"VIP {v.vip} went {'up' if v.up else 'down'}"
        if old.health.generation and new.health.generation != old.health.generation:
            yield NOTICE, f"Configuration generation {new.health.generation} loaded by vc5-healthd"

    if old.bgp is not None and new.bgp is not None:
        peers = {p.address: p for p in old.bgp.peers}
        for p in new.bgp.peers:
            prev = peers.get(p.address)
            if prev is None:
                yield NOTICE, f"BGP peer {p.address} added"
            elif prev.state != p.state:
                why = f" ({p.last_error})" if p.last_error and p.state.upper() != "ESTABLISHED" else ""
                yield NOTICE, f"BGP session with {p.address}: {p.state}{why}"
        now_peers = {p.address for p in new.bgp.peers}
        for addr in peers:
            if addr not in now_peers:
                yield NOTICE, f"BGP peer {addr} removed"
