"""A backend for the lab: HTTP on port 80 and a tiny UDP echo, answering with its name.

Runs inside a backend namespace that holds the VIP on lo, so it answers for
the VIP (DSR). `GET /alive` answers 200 unless the file given with --fail
exists (then 500): tests and the demo flip a backend's health by touching it.
`POST /upload` reads the whole body and answers "<name> <bytes read>\n".
Every other path answers "<name>\n". Every response carries `X-Backend: <name>`.
"""

import argparse
import asyncio
import os

from aiohttp import web


def make_app(name, fail_file):
    async def alive(request):
        if fail_file and os.path.exists(fail_file):
            return web.Response(status=500, text="failing on purpose\n")
        return web.Response(text="OK\n")

    async def whoami(request):
        return web.Response(text=f"{name}\n")

    async def big(request):
        # n bytes: enough reply traffic to tell where replies go (DSR).
        n = min(int(request.match_info["n"]), 50_000_000)
        return web.Response(body=b"x" * n)

    async def stream(request):
        # A long-lived response: one line every 50 ms until the client goes.
        resp = web.StreamResponse()
        await resp.prepare(request)
        n = 0
        while True:
            await resp.write(f"{name} {n}\n".encode())
            n += 1
            await asyncio.sleep(0.05)

    async def upload(request):
        n = 0
        async for chunk in request.content.iter_any():
            n += len(chunk)
        return web.Response(text=f"{name} {n}\n")

    async def tag(request, response):
        response.headers["X-Backend"] = name

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_response_prepare.append(tag)
    app.router.add_post("/upload", upload)
    app.router.add_get("/alive", alive)
    app.router.add_get("/stream", stream)
    app.router.add_get("/big/{n:[0-9]+}", big)
    app.router.add_get("/{tail:.*}", whoami)
    return app


class Echo(asyncio.DatagramProtocol):
    def __init__(self, name):
        self.name = name.encode()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.name + b" " + data, addr)


async def serve(name, port, udp_port, fail_file, vips):
    runner = web.AppRunner(make_app(name, fail_file), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host=None, port=port, reuse_address=True).start()
    loop = asyncio.get_running_loop()
    # UDP is bound to each VIP: an unconnected wildcard socket would answer
    # from the backend's own address, and the client would drop the reply.
    for vip in vips:
        await loop.create_datagram_endpoint(lambda: Echo(name), local_addr=(vip, udp_port))
    await asyncio.Event().wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--udp-port", type=int, default=5353)
    p.add_argument("--fail", help="while this file exists, /alive answers 500")
    p.add_argument("--vip", action="append", default=[], help="VIP to answer UDP on (repeatable)")
    a = p.parse_args()
    asyncio.run(serve(a.name, a.port, a.udp_port, a.fail, a.vip))


if __name__ == "__main__":
    main()
