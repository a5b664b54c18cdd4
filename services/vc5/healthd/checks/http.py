"""http and https checks with aiohttp (cue:mon/mon.go `httpProbeVIP`).

docs/health-checks.md, "What a check is":
  * GET or HEAD `scheme://host[:port]/path`, Host = the check's host or the VIP;
  * redirects are not followed, certificates are not verified;
  * the TCP connection goes to the probe address whatever the URL's host
    (an IP host is replaced by the probe address and sent as the Host header;
    a DNS name is kept in the URL, so it is also the TLS SNI, and resolved to
    the probe address by a one-address resolver);
  * one keep-alive session per probe target, closed after 60 s unused (as vc5);
  * the body is read and discarded; passed iff the status is in `expect`
    (default [200]; 0 = any). Diagnostics as vc5: "200 OK" on success,
    "GET http://192.0.2.1/alive - 500 Internal Server Error" on failure.
"""

import asyncio
import socket
import time

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from .. import urls
from . import Result, describe_error

IDLE_SECONDS = 60.0
USER_AGENT = "vc5-healthd"


class _OneAddressResolver(AbstractResolver):
    """Resolves every name to the probe address (so the URL may carry a DNS name for Host/SNI)."""

    def __init__(self, address: str):
        self.address = address
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": self.address, "port": port, "family": self.family,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


class HttpChecker:
    """Runs http/https checks; owns the per-target keep-alive sessions."""

    def __init__(self):
        self._sessions = {}       # (address, port, scheme) -> [ClientSession, last_used]
        self._pruned = time.monotonic()
        self._requests = {}       # (check, vip, address) -> (method, URL, headers, shown URL)

    def _session(self, address: str, port: int, scheme: str) -> aiohttp.ClientSession:
        key = (address, port, scheme)
        now = time.monotonic()
        entry = self._sessions.get(key)
        if entry is None:
            connector = aiohttp.TCPConnector(ssl=False, limit=4, keepalive_timeout=IDLE_SECONDS,
                                             resolver=_OneAddressResolver(address), use_dns_cache=False)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                            headers={"User-Agent": USER_AGENT},
                                            cookie_jar=aiohttp.DummyCookieJar())
            entry = self._sessions[key] = [session, now]
        entry[1] = now
        if now - self._pruned > IDLE_SECONDS:
            self._prune(now)
        return entry[0]

    def _prune(self, now):
        self._pruned = now
        for key, (session, used) in list(self._sessions.items()):
            if now - used > IDLE_SECONDS:
                del self._sessions[key]
                asyncio.ensure_future(session.close())

    def _request(self, check, vip, address: str):
        """(method, URL to request, headers, URL shown in diagnostics), computed once per target."""
        key = (check, str(vip), address)
        req = self._requests.get(key)
        if req is None:
            method = urls.method_of(check)
            shown = urls.url(check, vip)          # what vc5 shows in diagnostics
            host = urls.host_name(check, vip)
            if urls.is_literal(host):
                target = f"{check.type}://{urls.bracket(address)}:{check.port}{urls.path_of(check)}"
                headers = {"Host": urls.host_header(check, vip)}
            else:
                target, headers = shown, None
            if len(self._requests) > 100_000:
                self._requests.clear()
            req = self._requests[key] = (method, URL(target), headers, shown)
        return req

    async def probe(self, check, vip, address: str, timeout: float) -> Result:
        """One http/https check of `check` on `vip`, connecting to probe address `address`."""
        method, target, headers, shown = self._request(check, vip, address)
        session = self._session(address, check.port, check.type)
        try:
            async with session.request(method, target, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                await resp.read()
                status = f"{resp.status} {resp.reason or ''}".rstrip()
                if urls.expected(check, resp.status):
                    return Result(True, status)
                return Result(False, f"{method} {shown} - {status}")
        except asyncio.CancelledError:
            raise
        except Exception as e:   # every failure is a diagnostic, never an exception
            return Result(False, f"{method} {shown} - {describe_error(e)}")

    async def close(self):
        sessions = [s for s, _ in self._sessions.values()]
        self._sessions.clear()
        for s in sessions:
            await s.close()
