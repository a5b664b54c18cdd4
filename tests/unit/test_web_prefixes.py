"""/prefixes.json: vc5 v0.2's dense array of 1,048,576 per-/20 packet counts, rebuilt from the
loader's sparse GetPrefixes(0) (a stand-in for the bus call), read at most once per TTL, and a 503
naming the loader when it is absent."""

import asyncio
import ipaddress
import json

from aiohttp.test_utils import TestClient, TestServer

from vc5.common import wire
from vc5.webd import prefixes as wp
from vc5.webd.app import make_app

from .test_web_app import Reader

SLOT = int(ipaddress.IPv4Address("203.0.113.0")) >> 12


def test_render_is_vc5s_dense_array():
    doc = json.loads(wp.render(wire.PrefixCounters(ipv4=((SLOT, 7), (0, 1), (wp.SLOTS - 1, 2)))))
    assert len(doc) == 1 << 20 and doc[SLOT] == 7 and doc[0] == 1 and doc[-1] == 2 and sum(doc) == 10


def get(reader, n=1):
    async def go():
        client = TestClient(TestServer(make_app(reader)))
        await client.start_server()
        try:
            out = []
            for _ in range(n):
                r = await client.get("/prefixes.json")
                out.append((r.status, await r.read()))
            return out
        finally:
            await client.close()
    return asyncio.run(go())


def test_served_from_getprefixes_and_cached(monkeypatch):
    calls = []

    async def call(bus, name, path, interface, member, signature="", body=(), reply=None, timeout=None):
        calls.append((interface, member, signature, list(body)))
        return [wire.PrefixCounters(ipv4=((SLOT, 42),), blocked={"192.0.2.0/24": 3}).to_dbus()]

    monkeypatch.setattr(wp.vbus, "call", call)
    reader = Reader()
    reader.bus, reader.xdp_props = object(), {"Status": "running"}
    (s1, b1), (s2, b2) = get(reader, 2)
    assert s1 == s2 == 200 and b1 == b2
    doc = json.loads(b1)
    assert len(doc) == 1 << 20 and doc[SLOT] == 42 and sum(doc) == 42
    assert calls == [("org.vc5.XdpLoader1", "GetPrefixes", "u", [0])]    # once: the second was cached


def test_loader_absent_is_503_and_not_cached(monkeypatch):
    async def fail(*a, **kw):
        raise AssertionError("no call without the loader")

    monkeypatch.setattr(wp.vbus, "call", fail)
    [(status, body)] = get(Reader())
    assert status == 503 and "vc5-xdp-loader" in json.loads(body)["detail"]


def test_status_summary_blocked_is_the_block_lists_drops():
    import dataclasses

    from vc5.client import status as render_status
    from vc5.client.snapshot import take
    from vc5.webd import demo

    def xdp(tick, blocked):
        x = demo.xdp(tick)
        return dataclasses.replace(x, globals={**x.globals, "blocked": blocked})

    _, first = take(demo.health(), demo.bgp(), xdp(0, 100), now=1000.0, monotonic=1.0)
    snap, _ = take(demo.health(), demo.bgp(), xdp(1, 160), previous=first, now=1002.0, monotonic=3.0)
    s = render_status.status(snap)["summary"]
    assert s["blocked"] == 160 and s["blocked_per_second"] == 30


def test_prefix_counters_cross_the_wire_packed():
    import pytest

    c = wire.PrefixCounters(ipv4=((SLOT, 2**40), (7, 1)), ipv6=((65535, 3),), blocked={"10.0.0.0/8": 4},
                            totals={"blocked4": 4})
    v = c.to_dbus()
    assert v[0] == SLOT.to_bytes(4, "little") + (7).to_bytes(4, "little")
    assert v[1] == (2**40).to_bytes(8, "little") + (1).to_bytes(8, "little")
    assert wire.PrefixCounters.from_dbus(v) == c
    assert wire.PrefixCounters.from_dbus(wire.PrefixCounters().to_dbus()) == wire.PrefixCounters()
    with pytest.raises(ValueError, match="PrefixCounters.ipv6: 1 indexes but 0 counters"):
        wire.PrefixCounters.from_dbus([b"", b"", b"\0" * 4, b"", {}, {}])
