"""Health checks: one module per type (http/https, syn, dns), a common Result, and the round runner.

Every check answers Result(passed, diagnostic) and never raises: errors and
timeouts are failures with a diagnostic. The round diagnostic is vc5's:
"<type>: <message>" for the first failing check, "OK" when all pass.
"""

import asyncio
import errno
import logging
import os
import resource
import time
from dataclasses import dataclass

log = logging.getLogger("vc5.healthd")

# vc5 (cue:mon/mon.go, syn.go, dns.go): HTTP(S) client/dial/TLS 2 s; SYN 2 s; DNS 1 s.
DEFAULT_TIMEOUTS = {"http": 2.0, "https": 2.0, "syn": 2.0, "dns": 1.0}


@dataclass(frozen=True)
class Result:
    passed: bool
    diagnostic: str


def timeout_for(check, service=None) -> float:
    """The check's own timeout, else the service's, else the type's vc5 default."""
    if getattr(check, "timeout", None):
        return float(check.timeout)
    if service is not None and getattr(service, "timeout", None):
        return float(service.timeout)
    return DEFAULT_TIMEOUTS.get(check.type, 2.0)


def describe_error(e: BaseException) -> str:
    """A short, stable text for a network error (strerror when there is one)."""
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "Timeout"
    # aiohttp wraps the OSError (os_error); asyncio's own text ("Connect call failed ...") is
    # replaced by strerror(errno), e.g. "Connection refused".
    for err in (getattr(e, "os_error", None), e):
        if isinstance(err, OSError) and err.errno:
            if err.errno in (errno.EMFILE, errno.ENFILE):
                return descriptor_limit(err.errno)
            return os.strerror(err.errno)
    text = str(e).strip()
    return text or type(e).__name__


RECEIVE_BUFFER = 4 * 1024 * 1024


def enlarge_receive_buffer(sock, size=RECEIVE_BUFFER) -> None:
    """Let a shared socket absorb replies that arrive while the event loop is busy.

    SO_RCVBUFFORCE (CAP_NET_ADMIN) passes net.core.rmem_max; without it SO_RCVBUF is
    capped there. Either way failure is harmless: the default still works, with more
    timeouts under bursts.
    """
    import socket
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
            return
        except OSError:
            continue


# At most one journal warning per this many seconds about the descriptor limit.
LIMIT_WARNING_INTERVAL = 60.0
_limit_warned = {"at": float("-inf"), "since": 0}


def descriptor_limit(err: int) -> str:
    """The diagnostic of a probe that could not open a socket; warns (rate-limited) in the journal.

    EMFILE is the unit's LimitNOFILE= (units/vc5-healthd.service; docs/health-checks.md,
    "Limits"), ENFILE the system's fs.file-max. The probe fails, healthd carries on.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if err == errno.EMFILE:
        text = f"{os.strerror(err)} (LimitNOFILE={soft} reached)"
    else:
        text = f"{os.strerror(err)} (fs.file-max reached)"
    now = time.monotonic()
    _limit_warned["since"] += 1
    if now - _limit_warned["at"] >= LIMIT_WARNING_INTERVAL:
        log.warning("probes cannot open sockets: %s; %d probe(s) failed for it since the last "
                    "warning. Raise LimitNOFILE= for vc5-healthd or check fewer backends",
                    text, _limit_warned["since"])
        _limit_warned.update(at=now, since=0)
    return text
