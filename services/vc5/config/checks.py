"""A policy entry's health checks: the implicit one of its policy key, or its explicit `checks:` list.

docs/configuration.md, "Health checks" and "Check timing": host, path,
method, expect and timeout cascade from the service and the policy entry to
each check, which may override them; a cascaded method applies only to the
check types it fits.
"""

from __future__ import annotations

from .errors import did_you_mean
from .model import CHECK_TYPES, DEFAULT_FALL, DEFAULT_INTERVAL, DEFAULT_RISE, Check
from .reader import Reader, is_null, join
from .service_keys import CHECK_SETTINGS, DNS_METHODS, HTTP_METHODS

METHODS = {"http": HTTP_METHODS, "https": HTTP_METHODS, "dns": DNS_METHODS}
CHECK_KEYS = ("type", *CHECK_SETTINGS)
_A_CHECK = f" (a check: {', '.join(CHECK_KEYS)})"


def check_timing(r: Reader, st: dict, path: str, knode) -> None:
    """fall at most rise, timeout at most interval (docs/configuration.md, "Check timing")."""
    rise = st.get("rise", (DEFAULT_RISE, None, None))
    fall = st.get("fall", (DEFAULT_FALL, None, None))
    if fall[0] > rise[0]:
        where = fall if fall[1] is not None else rise
        r.error(where[1], where[2], f"fall {fall[0]} is more than rise {rise[0]}: fall counts failures "
                                    f"within the last 'rise' rounds, so it must be 1..{rise[0]}")
    interval = st.get("interval", (DEFAULT_INTERVAL, None, None))
    timeout = st.get("timeout")
    if timeout and timeout[0] > interval[0]:
        r.error(timeout[1], timeout[2], f"timeout {timeout[0]:g}s is longer than the interval "
                                        f"{interval[0]:g}s between check rounds; it must be at most the "
                                        "interval")


def make_check(t: str, own: dict, g: dict, pp) -> Check:
    """A check of type t on policy port pp: its own keys over the cascaded values g (KeyTable.values)."""
    port = own.get("port", pp.port)
    timeout = own.get("timeout", g["timeout"])
    cascaded = g["method"]
    if t in ("http", "https"):
        method = own.get("method", cascaded if cascaded in HTTP_METHODS else None)
        return Check(t, port, own.get("host", g["host"]), own.get("path", g["path"]), method,
                     own.get("expect", g["expect"] or ()), timeout)
    if t == "dns":
        method = own.get("method", cascaded if cascaded in DNS_METHODS else pp.protocol)
        return Check("dns", port, method=method, timeout=timeout)
    return Check("syn", port, timeout=timeout)


def implicit_checks(g: dict, pp) -> tuple:
    """The check a policy key implies (none for N/udp and for a key ending in '*')."""
    return (make_check(pp.check, {}, g, pp),) if pp.check else ()


def explicit_checks(r: Reader, node, path: str, g: dict, pp):
    """The checks of a `checks:` list, or None when any of them is refused."""
    items = r.sequence(node, path)
    if items is None:
        return None
    out, ok = [], True
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        m = r.mapping(item, p, CHECK_KEYS, _A_CHECK)
        t = _check_type(r, m, item, p) if m is not None else None
        if t is None:
            ok = False
            continue
        own, fine = _check_keys(r, m, p, t, g["interval"])
        ok = ok and fine
        out.append(make_check(t, own, g, pp))
    return tuple(out) if ok else None


def _check_type(r: Reader, m: dict, item, p: str):
    if "type" not in m or is_null(m["type"][1]):
        r.error(item, join(p, "type"), f"is required: one of {', '.join(CHECK_TYPES)}")
        return None
    t = r.text(m["type"][1], join(p, "type"))
    if t is not None and t not in CHECK_TYPES:
        r.error(m["type"][1], join(p, "type"),
                f"check type '{t}' is not one of {', '.join(CHECK_TYPES)}{did_you_mean(t, CHECK_TYPES)}")
        return None
    return t


def _check_keys(r: Reader, m: dict, p: str, t: str, interval: float) -> tuple:
    """({key: value} of the keys a check of type t sets, whether all were accepted)."""
    own, ok = {}, True
    for key, row in CHECK_SETTINGS.items():
        if key not in m or is_null(m[key][1]):
            continue
        knode, vnode = m[key]
        kp = join(p, key)
        if t not in row.applies:
            r.error(knode, kp, f"'{key}' applies only to {' and '.join(row.applies)} checks, not {t}")
            ok = False
            continue
        v = row.reader(r, vnode, kp)
        if v is None or not _fits(r, key, v, vnode, kp, t, interval):
            ok = False
            continue
        own[key] = v
    return own, ok


def _fits(r: Reader, key: str, v, node, kp: str, t: str, interval: float) -> bool:
    """The rules between a check's key and its type or the interval."""
    if key == "method" and v not in METHODS.get(t, ()):
        choices = ', '.join(METHODS.get(t, ())) or 'none (syn checks have no method)'
        r.error(node, kp, f"method '{v}' does not apply to a {t} check; allowed: {choices}")
        return False
    if key == "timeout" and v > interval:
        r.error(node, kp, f"timeout {v:g}s is longer than the interval {interval:g}s "
                          "between check rounds; it must be at most the interval")
        return False
    return True
