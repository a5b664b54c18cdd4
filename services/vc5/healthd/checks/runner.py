"""One round for one (service, backend): its checks in order, the first failure decides.

cue:mon/mon.go `probes`: all checks of a backend run sequentially every round;
the first failing check ends the round with diagnostic "<type>: <message>";
a round in which every check passed (or that has no checks) reports "OK".
"""

import time
from dataclasses import dataclass

from .. import probe_path as pp
from . import Result, timeout_for
from .dns import DnsChecker
from .http import HttpChecker
from .syn import SynChecker


@dataclass(frozen=True)
class Round:
    passed: bool
    diagnostic: str
    took_ms: int
    target: str          # the probe address used ("" if none)


class Runner:
    def __init__(self, path: pp.ProbePath):
        self.path = path
        self.http = HttpChecker()
        self.syn = SynChecker()
        self.dns = DnsChecker()

    async def check(self, check, service, address: str) -> Result:
        timeout = timeout_for(check, service)
        if check.type in ("http", "https"):
            return await self.http.probe(check, service.vip, address, timeout)
        if check.type == "syn":
            return await self.syn.probe(address, check.port, timeout)
        if check.type == "dns":
            return await self.dns.probe(address, check.port, check.method or service.protocol, timeout)
        return Result(False, f"unknown check type {check.type!r}")

    async def round(self, service, backend) -> Round:
        t0 = time.monotonic()
        target = self.path.target(_text(service.vip), _text(backend.address))
        if not backend.checks:
            return Round(True, "OK", 0, target or "")
        if target is None:
            return Round(False, pp.missing_target_diagnostic(service.vip, backend.address), 0, "")
        for check in backend.checks:
            r = await self.check(check, service, target)
            if not r.passed:
                diagnostic = f"{check.type}: {r.diagnostic}"
                own = _text(backend.address)
                if target != own:
                    # Through the NAT path the probe reached the VIP on the backend and failed:
                    # if the same check passes on the backend's own address, say what is wrong.
                    took = _ms(t0)
                    direct = await self.check(check, service, own)
                    hint = (pp.tunnel_hint(service, own)
                            or pp.dsr_hint(False, direct.passed, _text(service.vip), own))
                    if hint:
                        diagnostic = f"{diagnostic} ({hint})"
                    return Round(False, diagnostic, took, target)
                return Round(False, diagnostic, _ms(t0), target)
        return Round(True, "OK", _ms(t0), target)

    async def close(self):
        await self.http.close()
        await self.syn.close()
        await self.dns.close()


_texts: dict = {}


def _text(address) -> str:
    """str() of an ipaddress object, memoised (it is on every round's path)."""
    t = _texts.get(address)
    if t is None:
        if len(_texts) > 100_000:
            _texts.clear()
        t = _texts[address] = str(address)
    return t


def _ms(t0) -> int:
    return int((time.monotonic() - t0) * 1000)
