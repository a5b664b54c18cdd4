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
drains are kept. A stale, unreadable, foreign or malformed snapshot (wrong
types, values out of range, too large, nested too deeply) is ignored with a
warning naming the problem: the daemon then starts as vc5 does, instead of
crash-looping on its own state file.

Invariant: the file is replaced atomically (write + rename), so a crash mid-save
leaves the previous snapshot.
"""

import ipaddress
import json
from vc5.common import files

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


# Bounds of a snapshot we accept (docs/health-checks.md, "Differences from the Go vc5"). A
# backend takes about 160-260 bytes, so MAX_BYTES holds >= 100,000 backends; the file is
# ours (RuntimeDirectory= is 0700), but a garbled or hand-edited one must not crash-loop
# healthd: anything outside these is ignored with a warning and healthd starts as vc5 does.
MAX_BYTES = 32 * 1024 * 1024
MAX_RISE = 64                    # vc5.config.service_keys: rise 1..64
MAX_TEXT = 4096                  # a diagnostic or key longer than this was not written by us
MAX_TIME = 2 ** 63 - 1           # microseconds (D-Bus 't'; wire.BackendState.since)


class BadSnapshot(ValueError):
    """The snapshot is not one save() wrote: its path in the file and what is wrong."""


def _get(obj: dict, key: str, kind, where: str, low=None, high=None):
    """obj[key], which must be of type `kind` (bool is not an int here) and within [low, high]."""
    if key not in obj:
        raise BadSnapshot(f"{where}: {key} missing")
    value = obj[key]
    if type(value) is not kind:
        raise BadSnapshot(f"{where}.{key}: {type(value).__name__}, expected {kind.__name__}")
    if kind is str and len(value) > MAX_TEXT:
        raise BadSnapshot(f"{where}.{key}: {len(value)} characters (at most {MAX_TEXT})")
    if low is not None and not low <= value <= high:
        raise BadSnapshot(f"{where}.{key}: {value} not in {low}..{high}")
    return value


def _backend(b, where: str):
    """((address, port), BackendRecord) of one saved backend."""
    if type(b) is not dict:
        raise BadSnapshot(f"{where}: {type(b).__name__}, expected an object")
    rise = _get(b, "rise", int, where, 1, MAX_RISE)
    fall = _get(b, "fall", int, where, 1, rise)
    window = _get(b, "window", list, where)
    if len(window) > rise or any(type(x) is not bool for x in window):
        raise BadSnapshot(f"{where}.window: expected at most rise={rise} booleans")
    try:
        address = str(ipaddress.ip_address(_get(b, "address", str, where)))
    except ValueError:
        raise BadSnapshot(f"{where}.address: not an IP address") from None
    h = Hysteresis(rise, fall, _get(b, "up", bool, where))
    h.window.extend(window)
    rec = BackendRecord(None, h, _get(b, "since", int, where, 0, MAX_TIME))
    rec.drained = _get(b, "drained", bool, where)
    rec.diagnostic = _get(b, "diagnostic", str, where)
    return (address, _get(b, "port", int, where, 0, 65535)), rec


def restore(snap) -> HealthState:
    """The previous generation a snapshot describes (records without configuration).

    Every field is checked for its type and range: a snapshot that save() did not write
    raises BadSnapshot naming the first thing wrong, never another exception.
    """
    if type(snap) is not dict:
        raise BadSnapshot(f"{type(snap).__name__}, expected an object")
    if snap.get("format") != FORMAT or type(snap.get("format")) is not int:
        raise BadSnapshot(f"snapshot format {str(snap.get('format'))[:20]!r}, expected {FORMAT}")
    prior = HealthState()
    prior.generation = _get(snap, "generation", int, "snapshot", 0, MAX_TIME)
    for key, s in _get(snap, "services", dict, "snapshot").items():
        where = f"services[{key[:60]!r}]"
        if len(key) > MAX_TEXT or type(s) is not dict:
            raise BadSnapshot(f"{where}: expected an object")
        backends = dict(_backend(b, f"{where}.backends[{i}]")
                        for i, b in enumerate(_get(s, "backends", list, where)))
        prior.services[key] = ServiceRecord(None, backends, _get(s, "up", bool, where),
                                            _get(s, "since", int, where, 0, MAX_TIME))
    for vip, v in _get(snap, "vips", dict, "snapshot").items():
        where = f"vips[{vip[:60]!r}]"
        if len(vip) > MAX_TEXT or type(v) is not dict:
            raise BadSnapshot(f"{where}: expected an object")
        since = _get(v, "since", int, where, 0, MAX_TIME)
        prior.vips[vip] = VipRecord(vip, _get(v, "up", bool, where), since)
    return prior


def _reject_constant(name):
    raise BadSnapshot(f"{name} is not a number")


def save(path: str, state: HealthState, now: int) -> None:
    files.replace_file(path, json.dumps(snapshot(state, now), separators=(",", ":")))


def load(path: str, now: int, max_age_s: float):
    """(previous generation, None) or (None, why not): never raises.

    The file is read only up to MAX_BYTES; JSON nesting deeper than the parser's recursion
    limit, NaN/Infinity, and every type or range restore() does not expect are reasons.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return None, f"saved state {path} ignored: larger than {MAX_BYTES} bytes"
        snap = json.loads(data, parse_constant=_reject_constant)
        if type(snap) is not dict:
            raise BadSnapshot(f"{type(snap).__name__}, expected an object")
        saved_at = _get(snap, "saved_at", int, "snapshot", 0, MAX_TIME)
        age_s = (now - saved_at) / 1e6
        if not 0 <= age_s <= max_age_s:
            return None, f"saved state {path} is {age_s:.0f} s old (restored up to {max_age_s:.0f} s)"
        return restore(snap), None
    except FileNotFoundError:
        return None, None
    except RecursionError:
        return None, f"saved state {path} ignored: nested too deeply"
    except (OSError, ValueError, UnicodeDecodeError) as e:     # BadSnapshot and JSON errors
        return None, f"saved state {path} ignored: {e}"
