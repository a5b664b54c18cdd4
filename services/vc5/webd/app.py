"""The aiohttp application: console, vc5-compatible JSON, Prometheus /metrics.

Every handler renders from `reader.current`, one immutable Snapshot, so a
response never mixes two moments. Rendered bodies are cached per snapshot
(several browsers polling every 2 s cost one rendering). Responses are
gzip-compressed when the client accepts it; `/status.json.gz` is always
gzip (Content-Encoding: gzip), as vc5's console expects.

Paths (vc5:manager.go; docs/observability.md, "HTTP endpoints"): `/` and any other path = static files
(webroot first, if configured, else the embedded console); `/status.json`,
`/status.json.gz`, `/config.json`, `/cue.json`, `/lb.json`, `/log/<N>`,
`/build.json`, `/metrics`, `/prefixes.json` (vc5 v0.2's 1,048,576 per-source-/20
packet counts, read from the loader on demand: prefixes.py; 503 when it is absent).

Hardening (docs/observability.md, "Bounded input" and "Narrowing the console"):
no request may carry a body (413, RFC 9110 §15.5.14: every endpoint is a
GET); `Server:` is a fixed "vc5-webd" without versions; a file of `webroot`
that resolves (symlinks followed) outside `webroot` is a 404; with
`--allowed-hosts`, a Host that is neither an IP address nor a listed name is a
421 (RFC 9110 §15.5.20), which defeats DNS rebinding (a browser tricked into
reading a console it can reach under another site's name). Connection-level
limits are vc5.webd.guard's.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import ipaddress
import mimetypes
import os
import threading

from aiohttp import web

from vc5.client import status as render_status
from vc5.client.redact import mask_text

from . import metrics, render_json
from .prefixes import UNAVAILABLE, PrefixSource
from .guard import SERVER

STATIC = importlib.resources.files("vc5.webd").joinpath("static")
JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store"}


def _accepts_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


class Renderer:
    """Bodies rendered once per snapshot, off the event loop.

    Rendering is pure Python over an immutable Snapshot; with thousands of
    backends /metrics takes on the order of a second, so it runs in a worker
    thread (`render()`), keeping the loop free for the bus and other clients.
    One lock: concurrent requests for the same body wait for one rendering.
    """

    def __init__(self, reader):
        self.reader = reader
        self._snap = None
        self._cache: dict = {}
        self._lock = threading.Lock()

    def get(self, key: str, make):
        with self._lock:
            return self.cached(self.reader.current, key, make)

    def cached(self, snap, key: str, make):
        """Body `key` of `snap` (caller holds the lock; `make` may call this for another key)."""
        if snap is not self._snap:
            self._snap, self._cache = snap, {}
        if key not in self._cache:
            self._cache[key] = make(snap)
        return self._cache[key]

    async def render(self, key: str, make):
        return await asyncio.to_thread(self.get, key, make)


def _json_response(request, body: bytes, status: int = 200) -> web.Response:
    resp = web.Response(body=body, status=status, content_type=JSON, headers=NO_STORE)
    if _accepts_gzip(request):
        resp.enable_compression(web.ContentCoding.gzip)
    return resp


def _static_file(webroot: str | None, name: str) -> tuple[bytes, str]:
    """(body, content type) of a console file: webroot's if it has it, else the embedded one."""
    name = name or "index.html"
    if name.endswith("/"):
        name += "index.html"
    parts = [p for p in name.split("/") if p]
    if any(p in (".", "..") or p.startswith(".") for p in parts):
        raise web.HTTPNotFound()
    body = None
    if webroot:
        path = os.path.join(webroot, *parts)
        if os.path.isfile(path):
            root = os.path.realpath(webroot)
            if os.path.commonpath([root, os.path.realpath(path)]) != root:
                raise web.HTTPNotFound(text=f"no such page: /{name}\n")   # a symlink out of webroot
            with open(path, "rb") as f:
                body = f.read()
    if body is None:
        res = STATIC.joinpath(*parts)
        if not res.is_file():
            raise web.HTTPNotFound(text=f"no such page: /{name}\n")
        body = res.read_bytes()
    return body, mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"


def _host_allowed(host: str | None, allowed: frozenset) -> bool:
    """Host (RFC 9110 §7.2) without its port: an IP literal, or one of `allowed` (case-insensitive)."""
    if not host:
        return True     # HTTP/1.0 without Host: not a browser, so not DNS rebinding
    name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name.lower().rstrip(".") in allowed


def _guards(stats, allowed_hosts):
    allowed = frozenset(h.lower().rstrip(".") for h in allowed_hosts or ())

    @web.middleware
    async def refuse(request, handler):
        reason = None
        if request.body_exists:
            reason, resp = "body", web.Response(status=413, text="vc5-webd takes no request body\n")
        elif allowed and not _host_allowed(request.host, allowed):
            reason, resp = "host", web.Response(status=421, text="unknown Host (vc5-webd --allowed-hosts)\n")
        if reason is None:
            return await handler(request)
        if stats is not None:
            stats.refused[reason] += 1
        resp.force_close()
        return resp

    async def server_header(request, response):
        response.headers["Server"] = SERVER

    return refuse, server_header


def make_app(reader, webroot: str | None = None, stats=None, allowed_hosts=None) -> web.Application:
    """The application; `stats` (vc5.webd.guard.Stats) adds the vc5_webd_* families to /metrics."""
    refuse, server_header = _guards(stats, allowed_hosts)
    app = web.Application(middlewares=[refuse], client_max_size=1024)
    app.on_response_prepare.append(server_header)
    render = Renderer(reader)

    def status_body(snap):
        return render_json.dumps(render_status.status(snap))

    async def status(request):
        return _json_response(request, await render.render("status", status_body))

    async def status_gz(request):
        body = await render.render("status.gz",
                                   lambda s: render_json.gzipped(render.cached(s, "status", status_body)))
        return web.Response(body=body, content_type=JSON, headers={"Content-Encoding": "gzip", **NO_STORE})

    async def config(request):
        snap = reader.current
        doc = render_json.config(snap)
        if doc is None:
            msg = {"error": "no configuration loaded",
                   "detail": mask_text(snap.config_error) or "not read yet"}
            return _json_response(request, render_json.dumps(msg), status=503)
        return _json_response(request, render_json.dumps(doc))

    async def cue(request):
        body = await render.render("cue", lambda s: render_json.dumps(render_json.cue(s)))
        return _json_response(request, body)

    async def lb(request):
        body = await render.render("lb", lambda s: render_json.dumps(render_json.lb(s)))
        return _json_response(request, body)

    async def build(request):
        return _json_response(request, render_json.dumps(render_json.build()))

    prefix_source = PrefixSource(reader)

    async def prefixes(request):
        body = await prefix_source.body()
        if body is None:
            return _json_response(request, render_json.dumps(UNAVAILABLE), status=503)
        return _json_response(request, body)

    async def log(request):
        try:
            n = int(request.match_info["n"])
        except ValueError:
            raise web.HTTPBadRequest(text="/log/N: N must be an integer (the last index seen; 0 = all)\n")
        return _json_response(request, render_json.dumps(reader.log.after(n)))

    async def prometheus(request):
        body = await render.render("metrics", metrics.render)
        if stats is not None:     # webd's own counters change with every connection: never cached
            body += metrics.exposition(stats.families())
        resp = web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE, **NO_STORE})
        if _accepts_gzip(request):
            resp.enable_compression(web.ContentCoding.gzip)
        return resp

    async def static(request):
        body, ctype = _static_file(webroot, request.match_info.get("path", ""))
        resp = web.Response(body=body, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})
        if _accepts_gzip(request) and len(body) > 512:
            resp.enable_compression(web.ContentCoding.gzip)
        return resp

    app.router.add_get("/status.json", status)
    app.router.add_get("/status.json.gz", status_gz)
    app.router.add_get("/config.json", config)
    app.router.add_get("/cue.json", cue)
    app.router.add_get("/lb.json", lb)
    app.router.add_get("/build.json", build)
    app.router.add_get("/prefixes.json", prefixes)
    app.router.add_get("/log/{n}", log)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/{path:.*}", static)
    return app
