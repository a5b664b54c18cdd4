"""User space's side of the flow tables (bpf/vc5_flows.h, docs/data-plane.md "Flow table"):
the new-flow rate limit (settings) and vc5's `current` connection estimate.

`current` (vc5-behaviour: xvs tcp_concurrent / readAndClearSession): the program counts each
flow with an entry once per era in sessions[2 * pair + (era & 1)] (the entry's time bit 0
remembers the parity it was last counted in). Every ERA_S seconds user space bumps
settings.era, then reads and zeroes the previous era's half: the flows of each (service,
backend) pair seen in the last whole era. A service's, VIP's and the global `current` are the
sums over their backends. Flows without an entry (a stateless service, above the new-flow
rate) are not counted; a closed connection drops out at the end of the era after its last
packet (vc5 counted 10 more packets after FIN/RST); a pair freed and reused within one era
may carry its old service's count into the new one's for that era.

Invariant: only roll_era writes settings.era and zeroes sessions; both under the DataPlane lock.
"""

from __future__ import annotations

import ctypes as ct

from . import layout
from .specs import BackendKey

ERA_S = 30.0            # vc5: era++ every 30 s


def set_rate(dp, per_second: float | None, burst: int | None) -> None:
    """New flows stored per second per CPU and the burst (None: the program's defaults,
    125,000/s in bursts of 12,500); above it a new flow is balanced by Maglev, not stored
    (global counter flow_rate_limited)."""
    with dp._lock:
        s = dp._settings()
        s.flow_interval_ns = 0 if not per_second else max(1, int(1e9 / per_second))
        s.flow_burst = burst or 0
        dp._write_settings(s)


def roll_era(dp) -> dict[int, int]:
    """Bump settings.era; read and zero the previous era's counts: {pair: flows seen in it}."""
    with dp._lock:
        s = dp._settings()
        parity = s.era & 1
        s.era += 1
        dp._write_settings(s)
        m = dp.maps["sessions"]
        values = m.lookup_all()
        out = {}
        for pair in range(layout.MAX_PAIRS):
            n = values[2 * pair + parity]
            if n:
                out[pair] = int(n)
                m.update(layout.U32(2 * pair + parity), ct.c_uint64(0))
        return out


def fill_current(out: dict, services: dict, current: dict[int, int]) -> None:
    """Set `current` in DataPlane.counters()' result from the last era's counts (by pair)."""
    total = 0
    vips = {vip: 0 for vip in out["vips"]}
    for key, st in services.items():
        n_svc = 0
        for address, b in st.backends.items():
            n = current.get(b.pair, 0)
            bk = BackendKey(key, address)
            if bk in out["backends"]:
                out["backends"][bk]["current"] = n
            n_svc += n
        if key in out["services"]:
            out["services"][key]["current"] = n_svc
        vips[key.vip] = vips.get(key.vip, 0) + n_svc
        total += n_svc
    for vip, n in vips.items():
        if vip in out["vips"]:
            out["vips"][vip]["current"] = n
    out["global"]["current"] = total
