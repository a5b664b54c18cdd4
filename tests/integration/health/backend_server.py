"""A test backend: aiohttp on http (80) and https (443), both families, every local address.

GET/HEAD /alive answers the status written in STATE_DIR/<local address> (200
if absent; "hang" answers after 5 s) and records the request's Host header in STATE_DIR/host-<local
address>; /redirect answers 302. Prints "ready" once listening.

    python3 backend_server.py STATE_DIR CERT KEY
"""

import asyncio
import os
import ssl
import sys

from aiohttp import web


def local_address(request):
    return request.transport.get_extra_info("sockname")[0].split("%")[0]


def main(state_dir, cert, key):
    async def alive(request):
        addr = local_address(request)
        with open(os.path.join(state_dir, "host-" + addr), "w") as f:
            f.write(request.headers.get("Host", ""))
        try:
            with open(os.path.join(state_dir, addr)) as f:
                text = f.read().strip()
        except FileNotFoundError:
            text = ""
        if text == "hang":          # answer far too late: the check must time out
            await asyncio.sleep(5)
            text = ""
        status = int(text or 200)
        return web.Response(status=status, text="alive\n")

    async def redirect(request):
        raise web.HTTPFound("/alive")

    async def run():
        app = web.Application()
        app.router.add_route("*", "/alive", alive)
        app.router.add_route("*", "/redirect", redirect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        for host in ("0.0.0.0", "::"):
            await web.TCPSite(runner, host, 80, reuse_address=True).start()
            await web.TCPSite(runner, host, 443, ssl_context=ctx, reuse_address=True).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main(*sys.argv[1:4])
