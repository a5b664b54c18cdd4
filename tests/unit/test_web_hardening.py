"""webd hardening in-process (issue 12): the connection guard (cap, eviction, rejection, header/idle
deadlines, head size, parser errors), no version banner, no symlinks out of webroot, the optional Host
allow-list, no request bodies, and credentials inside URLs masked on /config.json and in the log."""

import asyncio
import json
import os
import socket

import pytest
from aiohttp import web

from tests.unit.test_web_app import Reader, fetch
from vc5.client.redact import SECRET, mask_text, mask_url, mask_urls
from vc5.config import load_text
from vc5.webd import guard
from vc5.webd.app import make_app
from vc5.webd.logring import LogRing


class Served:
    """`app` behind vc5.webd.guard on 127.0.0.1 (the way daemon.py serves it), with raw clients."""

    def __init__(self, app, limits, stats=None):
        self.app, self.limits, self.stats = app, limits, stats

    async def __aenter__(self):
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        self.guard = guard.Guard(self.runner.server, self.limits, self.stats)
        self.listener = guard.Listener(self.guard, socket.create_server(("127.0.0.1", 0)))
        self.port = self.listener.sock.getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.listener.close()
        await self.runner.server.shutdown(1)
        await self.runner.cleanup()

    async def connect(self):
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def exchange(self, data: bytes, timeout=3.0) -> bytes:
        """Send `data`, read until the server closes (or `timeout`)."""
        r, w = await self.connect()
        w.write(data)
        try:
            return await asyncio.wait_for(r.read(), timeout)
        finally:
            w.close()


GET = b"GET /build.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def run(coro):
    return asyncio.run(coro)


def test_header_deadline_answers_408_and_counts():
    async def go():
        async with Served(make_app(Reader()), guard.Limits(header_timeout=0.3)) as s:
            t0 = asyncio.get_running_loop().time()
            out = await s.exchange(b"GET /status.json HT", timeout=3)
            took = asyncio.get_running_loop().time() - t0
            return out, took, s.guard.stats
    out, took, stats = run(go())
    assert out.startswith(b"HTTP/1.1 408 ") and b"Server: vc5-webd\r\n" in out
    assert 0.25 < took < 2
    assert stats.timeouts["header"] == 1 and stats.open == 0


def test_idle_keepalive_connection_is_closed_silently():
    async def go():
        async with Served(make_app(Reader()), guard.Limits(idle_timeout=0.3)) as s:
            r, w = await s.connect()
            w.write(b"GET /build.json HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await r.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await r.readexactly(length)
            rest = await asyncio.wait_for(r.read(), 3)     # EOF after the idle deadline
            w.close()
            return head, rest, s.guard.stats
    head, rest, stats = run(go())
    assert head.startswith(b"HTTP/1.1 200") and rest == b""
    assert stats.timeouts["idle"] == 1


def test_cap_evicts_the_longest_waiting_connection_first():
    async def go():
        async with Served(make_app(Reader()), guard.Limits(max_connections=3)) as s:
            idle = [await s.connect() for _ in range(3)]
            await asyncio.sleep(0.05)
            out = await s.exchange(GET)
            first_closed = await asyncio.wait_for(idle[0][0].read(), 2)   # EOF: the oldest went
            for _, w in idle:
                w.close()
            return out, first_closed, s.guard.stats
    out, first_closed, stats = run(go())
    assert out.startswith(b"HTTP/1.1 200") and first_closed == b""
    assert stats.evicted == 1 and stats.rejected == 0


def test_cap_rejects_at_once_when_every_slot_is_serving():
    release = asyncio.Event

    async def go():
        gate = release()

        async def slow(request):
            await gate.wait()
            return web.Response(text="late")
        app = web.Application()
        app.router.add_get("/slow", slow)
        async with Served(app, guard.Limits(max_connections=2)) as s:
            busy = [await s.connect() for _ in range(2)]
            for _, w in busy:
                w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)
            t0 = asyncio.get_running_loop().time()
            out = await s.exchange(GET, timeout=2)
            took = asyncio.get_running_loop().time() - t0
            gate.set()
            for _, w in busy:
                w.close()
            return out, took, s.guard.stats
    out, took, stats = run(go())
    assert out.startswith(b"HTTP/1.1 503 ") and took < 0.5
    assert stats.rejected == 1 and stats.evicted == 0


def test_parser_limits_and_incomplete_head_cap():
    async def go():
        async with Served(make_app(Reader()), guard.Limits(max_head=4096)) as s:
            line = await s.exchange(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            field = await s.exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
            many = await s.exchange(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(70))
                                    + b"\r\n")
            partial = await s.exchange(b"GET / HTTP/1.1\r\n" + b"X-A: %s\r\n" % (b"1" * 200) * 40)
            return line, field, many, partial, s.guard.stats
    line, field, many, partial, stats = run(go())
    for out in (line, field, many):
        assert out.split(b"\r\n")[0].endswith(b"400 Bad Request"), out[:80]
        assert b"Server: vc5-webd\r\n" in out and b"aaaa" not in out and b"bbbb" not in out
    assert partial.startswith(b"HTTP/1.1 431 ")
    assert stats.refused["bad_request"] == 3 and stats.refused["head_too_large"] == 1


def test_bodies_refused_and_deep_pipelines_closed():
    async def go():
        stats = guard.Stats(guard.Limits())
        async with Served(make_app(Reader(), stats=stats), stats.limits, stats) as s:
            body = await s.exchange(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                                    + b"x" * 5000)
            chunked = await s.exchange(b"GET /status.json HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            piped = await s.exchange(b"GET /build.json HTTP/1.1\r\nHost: x\r\n\r\n" * 40)
            return body, chunked, piped, s.guard.stats
    body, chunked, piped, stats = run(go())
    assert body.startswith(b"HTTP/1.1 413 ") and chunked.startswith(b"HTTP/1.1 413 ")
    assert b"HTTP/1.1 429 " in piped or piped.count(b"HTTP/1.1 200") <= guard.MAX_PIPELINED + 1
    assert stats.refused["body"] == 2 and stats.refused["pipelined"] == 1


def test_counters_on_metrics():
    async def go():
        stats = guard.Stats(guard.Limits(max_connections=7))
        async with Served(make_app(Reader(), stats=stats), stats.limits, stats) as s:
            return await s.exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = run(go()).decode()
    assert "vc5_webd_connections_max 7\n" in text
    assert "vc5_webd_connections_rejected_total 0\n" in text
    assert 'vc5_webd_connection_timeouts_total{phase="header"} 0\n' in text
    assert "# TYPE vc5_webd_connections_evicted_total counter\n" in text


def test_default_cap_leaves_room_below_limit_nofile():
    assert guard.default_max_connections(1024) == 256
    assert guard.default_max_connections(64) == 16
    assert guard.default_max_connections(10) == 4


def test_no_version_banner():
    results = fetch(Reader(), ("/status.json", {}), ("/nope.html", {}), ("/log/x", {}))
    for status, headers, _ in results:
        assert headers["Server"] == "vc5-webd", status


def test_symlink_out_of_webroot_is_refused(tmp_path):
    root, outside = tmp_path / "www", tmp_path / "secret.txt"
    root.mkdir()
    outside.write_text("private")
    (root / "inside.txt").write_text("public")
    os.symlink(outside, root / "leak.txt")
    os.symlink(root / "inside.txt", root / "alias.txt")
    os.symlink(tmp_path, root / "up")
    results = fetch(Reader(), ("/leak.txt", {}), ("/alias.txt", {}), ("/up/secret.txt", {}),
                    webroot=str(root))
    assert results[0][0] == 404 and b"private" not in results[0][2]
    assert results[1][0] == 200 and results[1][2] == b"public"      # a link that stays inside is fine
    assert results[2][0] == 404 and b"private" not in results[2][2]


def test_host_allow_list():
    async def go(allowed, *hosts):
        async with Served(make_app(Reader(), allowed_hosts=allowed), guard.Limits()) as s:
            return [(await s.exchange(b"GET /build.json HTTP/1.1\r\nHost: " + h.encode()
                                      + b"\r\nConnection: close\r\n\r\n"))[:12] for h in hosts]
    got = run(go(["lb1.example"], "lb1.example", "LB1.example.:80", "10.1.2.3:80", "[::1]:80",
                 "evil.example", "evil.example:80"))
    assert got[:4] == [b"HTTP/1.1 200"] * 4 and got[4:] == [b"HTTP/1.1 421"] * 2
    assert run(go(None, "evil.example")) == [b"HTTP/1.1 200"]    # default: no check, as vc5


ES_CONFIG = """
logging:
  elasticsearch:
    index: vc5
    addresses: ["https://elastic:s3cr3t@es1.example:9200/", "https://es2.example/?api_key=KEYKEY"]
services:
  - name: foo
    virtual: [192.168.101.1]
    servers: [10.1.100.120]
    policy:
      http:
"""


def test_config_json_masks_credentials_inside_urls():
    cfg = load_text(ES_CONFIG, source="test.yaml")
    [(status, _, body)] = fetch(Reader(cfg), ("/config.json", {}))
    assert status == 200
    assert b"s3cr3t" not in body and b"KEYKEY" not in body
    addresses = json.loads(body)["logging"]["elasticsearch"]["addresses"]
    assert addresses == [f"https://elastic:{SECRET}@es1.example:9200/", f"https://es2.example/?{SECRET}"]


def test_url_masking_rules():
    assert mask_url("https://u:p@h:1/x?a=1&b=2#frag") == f"https://u:{SECRET}@h:1/x?{SECRET}"
    assert mask_url("https://es.example:9200/") == "https://es.example:9200/"
    assert mask_url("/health?x=1") == "/health?x=1"            # a check path, not a URL
    assert mask_text("bad address 'http://a:b@es/' at line 3") == \
        f"bad address 'http://{SECRET}@es/' at line 3"
    assert mask_urls({"a": ["http://t@h/", 3, None]}) == {"a": [f"http://{SECRET}@h/", 3, None]}
    assert mask_url(mask_url("https://u:p@h/?k=v")) == mask_url("https://u:p@h/?k=v")   # idempotent


def test_config_error_and_log_lines_mask_urls():
    reader = Reader()
    from dataclasses import replace
    reader.current = replace(reader.current, config_error="x.yaml: 'https://u:pw@es/' is not reachable")
    [(status, _, body)] = fetch(reader, ("/config.json", {}))
    assert status == 503 and b"pw@" not in body and SECRET.encode() in body
    ring = LogRing()
    ring.add("posting to https://bot:tok@hooks.example/x failed")
    assert "tok" not in ring.after(0)[0]["text"]


@pytest.mark.parametrize("argv, message", [
    (["--max-connections", "0"], "at least 1"),
    (["--header-timeout", "0"], "--header-timeout must be positive")])
def test_cli_limits_validated(argv, message, capsys):
    from vc5.webd import __main__ as webd_main
    with pytest.raises(SystemExit) as exit_:
        webd_main.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_warns_when_the_inherited_socket_is_not_the_configured_one(caplog):
    from vc5.webd import daemon

    class Cache:
        path = "/etc/vc5/vc5.yaml"

        class config:
            webserver = "127.0.0.1:8080"

    with socket.create_server(("127.0.0.1", 0)) as other, socket.create_server(("127.0.0.1", 0)) as right:
        daemon._check_webserver([other], Cache)
        assert "systemctl restart vc5-webd.socket" in caplog.text
        caplog.clear()
        Cache.config.webserver = f"127.0.0.1:{right.getsockname()[1]}"
        daemon._check_webserver([right], Cache)
        Cache.config.webserver = f":{right.getsockname()[1]}"
        daemon._check_webserver([right], Cache)      # :PORT is every address: 127.0.0.1 is not that
        assert caplog.text.count("listens on") == 1
