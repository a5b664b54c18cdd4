"""Carry health state across a restart of vc5-healthd: a restart is a reload from saved state.

Without it a restarted healthd starts every backend of every VIP down (vc5's
initial state for a new VIP), bgpd withdraws the VIPs at once and the loader
empties the Maglev tables until five passing rounds later: seconds without
service on a balancer that is the only one advertising.

The daemon saves a snapshot (every few seconds and when it stops) into its
runtime directory; at start a snapshot younger than `max_age` becomes the
"previous generation" that the configuration is applied to, with exactly the
reload rules of state.HealthState.applied: an unchanged (service, backend)
keeps its window, verdict and since; anything new starts as vc5 says. Runtime
drains are kept. A stale, unreadable or foreign snapshot is ignored (logged):
the daemon then starts as vc5 does.

Invariant: the file is replaced atomically (write + rename), so a crash mid-save
leaves the previous snapshot.
"""

import json
import os
import tempfile

from .hysteresis import Hysteresis
from .state import BackendRecord, HealthState, ServiceRecord, VipRecord

FORMAT = 1


def snapshot(state: HealthState, now: int) -> dict:
    services = {}
    for key, svc in state.services.items():
        services[key] = {
            "up": svc.up, "since": svc.since,
            "backends": [{"address": a, "port": p, "up": b.hyst.up, "window": list(b.hyst.window),
                          "rise": b.hyst.rise, "fall": b.hyst.fall, "since": b.since,
                          "drained": b.drained, "diagnostic": b.diagnostic}
                         for (a, p), b in svc.backends.items()],
        }
    return {"format": FORMAT, "saved_at": now, "generation": state.generation,
            "services": services,
            "vips": {v: {"up": r.up, "since": r.since} for v, r in state.vips.items()}}


def restore(snap: dict) -> HealthState:
    """The previous generation a snapshot describes (records without configuration)."""
    if snap.get("format") != FORMAT:
        raise ValueError(f"snapshot format {snap.get('format')!r}, expected {FORMAT}")
    prior = HealthState()
    prior.generation = int(snap["generation"])
    for key, s in snap["services"].items():
        backends = {}
        for b in s["backends"]:
            h = Hysteresis(int(b["rise"]), int(b["fall"]), bool(b["up"]))
            h.window.extend(bool(x) for x in b["window"][-h.rise:])
            rec = BackendRecord(None, h, int(b["since"]))
            rec.drained = bool(b["drained"])
            rec.diagnostic = str(b["diagnostic"])
            backends[(str(b["address"]), int(b["port"]))] = rec
        prior.services[key] = ServiceRecord(None, backends, bool(s["up"]), int(s["since"]))
    for vip, v in snap["vips"].items():
        prior.vips[vip] = VipRecord(vip, bool(v["up"]), int(v["since"]))
    return prior


def save(path: str, state: HealthState, now: int) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(snapshot(state, now), f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load(path: str, now: int, max_age_s: float):
    """(previous generation, None) or (None, why not): never raises."""
    try:
        with open(path) as f:
            snap = json.load(f)
        age_s = (now - int(snap["saved_at"])) / 1e6
        if not 0 <= age_s <= max_age_s:
            return None, f"saved state {path} is {age_s:.0f} s old (restored up to {max_age_s:.0f} s)"
        return restore(snap), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"saved state {path} ignored: {e}"
