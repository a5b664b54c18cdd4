"""http and https checks with aiohttp (cue:mon/mon.go `httpProbeVIP`).

docs/health-checks.md, "What a check is":
  * GET or HEAD `scheme://host[:port]/path`, Host = the check's host or the VIP;
  * redirects are not followed, certificates are not verified;
  * the TCP connection goes to the probe address whatever the URL's host
    (an IP host is replaced by the probe address and sent as the Host header;
    a DNS name is kept in the URL, so it is also the TLS SNI, and resolved to
    the probe address by a one-address resolver);
  * one keep-alive session per probe target, closed after 60 s unused (as vc5);
  * passed iff the status is in `expect` (default [200]; 0 = any): the status
    decides, as vc5 (which ignores its body read's error). Diagnostics as vc5:
    "200 OK" on success, "GET http://192.0.2.1/alive - 500 Internal Server Error"
    on failure.

Bounded input (docs/health-checks.md, "Limits"): at most BODY_CAP bytes of the
body are read, and only so that the connection can be reused (RFC 9112 §9.3:
a connection is reusable once the whole message has been read); a longer,
endless or late body closes the connection instead. A backend's bytes
therefore cost at most READ_BUFSIZE of buffer per connection, and a check
never outlives its timeout (the total timeout covers the body read). The
response head is bounded by aiohttp's parser: MAX_HEADERS fields, each line
at most 8190 bytes; more is a failed check ("invalid response: ...").
"""

import asyncio
import inspect
import logging
import resource
import socket
import time

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from .. import urls
from . import Result, describe_error

IDLE_SECONDS = 60.0
USER_AGENT = "vc5-healthd"
BODY_CAP = 4096                 # bytes of a body read to keep its connection alive
READ_BUFSIZE = 16 * 1024        # per-connection receive buffer before reading pauses
MAX_HEADERS = 64                # response header fields (aiohttp's default is 128)
REASON_CHARS = 100              # of a reason phrase shown in a diagnostic
KEEPALIVE_SHARE = 0.75          # of RLIMIT_NOFILE for idle keep-alive connections

log = logging.getLogger("vc5.healthd")

# Bounds on the response head that this aiohttp's ClientSession accepts (Debian's 3.8 has
# max_headers; 3.9+ adds max_line_size and max_field_size, default 8190).
_LIMITS = {k: v for k, v in (("max_headers", MAX_HEADERS), ("read_bufsize", READ_BUFSIZE))
           if k in inspect.signature(aiohttp.ClientSession).parameters}


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
    """Runs http/https checks; owns the per-target keep-alive sessions.

    Each kept-alive target holds one descriptor between rounds. At most `keepalive_budget`
    targets (KEEPALIVE_SHARE of RLIMIT_NOFILE, the unit's LimitNOFILE=) are kept alive; the
    others connect for each check and close after it, so many HTTP backends cost
    reconnects, not failed checks (docs/health-checks.md, "Limits").
    """

    def __init__(self, keepalive_budget=None):
        self._sessions = {}       # (address, port, scheme) -> [ClientSession, last_used, kept alive]
        self._pruned = time.monotonic()
        self._requests = {}       # (check, vip, address) -> (method, URL, headers, shown URL)
        if keepalive_budget is None:
            keepalive_budget = int(resource.getrlimit(resource.RLIMIT_NOFILE)[0] * KEEPALIVE_SHARE)
        self.keepalive_budget = keepalive_budget
        self.kept_alive = 0
        self._warned = False

    def _session(self, address: str, port: int, scheme: str) -> aiohttp.ClientSession:
        key = (address, port, scheme)
        now = time.monotonic()
        entry = self._sessions.get(key)
        if entry is None:
            session = self._new_session(address)
            entry = self._sessions[key] = [session, now, not session.connector.force_close]
        entry[1] = now
        if now - self._pruned > IDLE_SECONDS:
            self._prune(now)
        return entry[0]

    def _new_session(self, address: str) -> aiohttp.ClientSession:
        keep = self.kept_alive < self.keepalive_budget
        if keep:
            self.kept_alive += 1
        elif not self._warned:
            self._warned = True
            log.warning("HTTP keep-alive is limited to %d targets (%d%% of LimitNOFILE=%d); checks "
                        "of the others reconnect every round. Raise LimitNOFILE= for vc5-healthd "
                        "to keep them all alive", self.keepalive_budget, KEEPALIVE_SHARE * 100,
                        resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        connector = aiohttp.TCPConnector(ssl=False, limit=4, keepalive_timeout=IDLE_SECONDS if keep else None,
                                         force_close=not keep, resolver=_OneAddressResolver(address),
                                         use_dns_cache=False)
        return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     headers={"User-Agent": USER_AGENT},
                                     cookie_jar=aiohttp.DummyCookieJar(), **_LIMITS)

    def _prune(self, now):
        self._pruned = now
        for key, (session, used, kept) in list(self._sessions.items()):
            if now - used > IDLE_SECONDS:
                del self._sessions[key]
                self.kept_alive -= kept
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
                await discard_body(resp)
                code, reason = resp.status, resp.reason
        except asyncio.CancelledError:
            raise
        except Exception as e:   # every failure is a diagnostic, never an exception
            return Result(False, f"{method} {shown} - {_error(e)}")
        status = f"{code} {_printable(reason or '', REASON_CHARS)}".rstrip()
        if urls.expected(check, code):
            return Result(True, status)
        return Result(False, f"{method} {shown} - {status}")

    async def close(self):
        sessions = [s for s, _, _ in self._sessions.values()]
        self._sessions.clear()
        self.kept_alive = 0
        for s in sessions:
            await s.close()


async def discard_body(resp: aiohttp.ClientResponse) -> bool:
    """Read at most BODY_CAP bytes of the body; True if that was all of it.

    A complete body leaves the connection to the pool (keep-alive); a longer, endless or
    late one (the total timeout fires here), or a broken one, closes it: unread bytes
    never pile up, and nothing waits for them. The status has already decided.
    """
    left = BODY_CAP
    try:
        while left >= 0:
            chunk = await resp.content.read(left + 1)
            if not chunk:
                return True
            left -= len(chunk)
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
        pass
    resp.close()
    return False


def _printable(text: str, most: int) -> str:
    """A backend's words for the journal: one line, printable, at most `most` characters."""
    text = "".join(c if c.isprintable() else "?" for c in text[:most + 1])
    return text if len(text) <= most else text[:most - 3] + "..."


def _error(e: Exception) -> str:
    if isinstance(e, aiohttp.ClientResponseError):
        # the parser refused the response head (too many or too long header lines, bad status line)
        return "invalid response: " + _printable(str(e.message), 120)
    return _printable(describe_error(e), 200)
