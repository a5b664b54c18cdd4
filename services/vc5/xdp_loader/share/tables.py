"""The data plane's side of flow sharing: the share_queue the program fills
and the `shared` table it reads (bpf/vc5_share.h), in terms of codec.SharedFlow.

    set_sharing(dp, True)            settings.flags |= SETTINGS_SHARE (the hooks work)
    pop_noted(dp, limit)   -> [layout.ShareEntry]   oldest first
    outgoing(dp, entry, now_ns) -> SharedFlow | None  (None: stale or pair gone)
    learn(dp, flow, now_ns) -> "ok" | reason          the flow into `shared`, with OUR pair

Invariants: a `shared` entry always names one of our pairs with the cookie it
has now (the program re-checks both before using it); its time is our
CLOCK_MONOTONIC when the record arrived (the sender's clock means nothing here).
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import time

from .. import layout
from ..specs import service_key
from . import codec

MAX_AGE_NS = 2 * 10**9          # vc5 ReadFlow: a noted flow older than 2 s is not sent
METHOD_BY_INDEX = codec.METHODS

_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_map_lookup_and_delete_elem.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]

# learn() reasons (receiver counters)
NO_SERVICE = "no_service"       # VIP:port:proto not programmed here
NO_BACKEND = "no_backend"       # the backend is not in our service
LEARNED = "ok"


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)     # = bpf_ktime_get_ns()


def set_sharing(dp, on: bool) -> None:
    with dp._lock:
        s = dp._settings()
        s.flags = (s.flags | layout.SETTINGS_SHARE) if on else (s.flags & ~layout.SETTINGS_SHARE)
        dp._write_settings(s)


def sharing(dp) -> bool:
    return bool(dp._settings().flags & layout.SETTINGS_SHARE)


def pop_noted(dp, limit: int = layout.SHARE_QUEUE) -> list:
    """Up to `limit` entries of share_queue, oldest first (removed from the queue)."""
    fd = dp.maps["share_queue"].fd
    out = []
    while len(out) < limit:
        e = layout.ShareEntry()
        rc = _libbpf.bpf_map_lookup_and_delete_elem(fd, None, ct.byref(e))
        if rc < 0:
            err = -rc if rc < -1 else ct.get_errno()
            if err == errno.ENOENT:
                break
            raise OSError(err, f"pop on map share_queue: {os.strerror(err)}")
        out.append(e)
    return out


def outgoing(dp, e, now_ns: int) -> codec.SharedFlow | None:
    """The record to send for a noted flow; None when it is older than MAX_AGE_NS
    (or from the future by as much: vc5 skips those too) or its pair record no
    longer has the cookie the flow was noted with."""
    if abs(now_ns - e.flow.time) > MAX_AGE_NS:
        return None
    rec = dp.maps["backends"].lookup(layout.U32(e.flow.pair))
    if rec is None or rec.cookie == 0 or rec.cookie != e.flow.cookie:
        return None
    t = e.key.t
    backend = layout.addr_from16(rec.addr)
    method = rec.method if rec.method < len(METHOD_BY_INDEX) else 0
    return codec.SharedFlow(
        client=layout.addr_from16(t.saddr), vip=layout.addr_from16(t.daddr),
        client_port=_ntohs(t.sport), port=_ntohs(t.dport), protocol=e.key.proto, backend=backend,
        time_ns=e.flow.time, source=layout.addr_from16(rec.saddr) if any(rec.saddr.b) else None,
        tunnel_port=rec.tunnel_port, tunnel_sport=0x8000 | (e.flow.hash & 0x7FFF), vlan=rec.vlan,
        method=method, flags=codec.NO_CHECKSUM if rec.flags & layout.BE_NO_CSUM else 0,
        h_dest=bytes(rec.h_dest), h_source=bytes(rec.h_source))


def learn(dp, f: codec.SharedFlow, now_ns: int) -> str:
    """Store a received flow in `shared` with our pair for its service and backend."""
    try:
        key = service_key(str(f.vip), f.port, layout.PROTOCOL_NAMES[f.protocol])
    except ValueError:          # port 0
        return NO_SERVICE
    found = _pair_of(dp, key, str(f.backend))
    if isinstance(found, str):
        return found
    pair, cookie = found
    tuple36 = codec.fourtuple(f)
    k = layout.FlowKey()
    ct.memmove(ct.addressof(k.t), tuple36, 36)
    k.proto = f.protocol
    v = layout.Flow(time=now_ns, cookie=cookie, pair=pair, hash=codec.sdbm16(tuple36))
    dp.maps["shared"].update(k, v)
    return LEARNED


def _pair_of(dp, key, backend: str):
    """(pair, cookie) of `backend` in service `key` as programmed, or a reason.
    (DataPlane.pair_of gives the index alone.)"""
    with dp._lock:
        state = dp._services.get(key)
        if state is None:
            return NO_SERVICE
        p = state.backends.get(backend)
        return (p.pair, p.cookie) if p is not None else NO_BACKEND


def _ntohs(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)
