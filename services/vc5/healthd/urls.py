"""HTTP(S) check URLs and Host headers, exactly as vc5 builds them (pure).

cue:mon/mon.go `httpProbeVIP`: URL = scheme://<host>[:port]/<path>, the port is
left out for 80/http and 443/https, the path's leading '/' is stripped and
re-added, and host defaults to the VIP (IPv6 in brackets). The Host header is
the URL's host[:port]. The TCP connection always goes to the probe address,
whatever the URL says.
"""

import ipaddress

DEFAULT_PORTS = {"http": 80, "https": 443}


def bracket(host: str) -> str:
    """IPv6 literals in brackets (RFC 3986 §3.2.2); anything else unchanged."""
    h = host.strip()
    if h.startswith("["):
        return h
    try:
        if ipaddress.ip_address(h).version == 6:
            return f"[{h}]"
    except ValueError:
        pass
    return h


def host_name(check, vip) -> str:
    """The host part: the check's `host`, else the VIP (IPv6 bracketed)."""
    return bracket(check.host if check.host else str(vip))


def authority(scheme: str, host: str, port: int) -> str:
    return host if DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"


def path_of(check) -> str:
    return "/" + (check.path or "").lstrip("/")


def url(check, vip) -> str:
    """vc5's URL for an http/https check on `vip`, e.g. http://192.0.2.1/alive."""
    return f"{check.type}://{authority(check.type, host_name(check, vip), check.port)}{path_of(check)}"


def host_header(check, vip) -> str:
    """Host: header value (the URL's authority)."""
    return authority(check.type, host_name(check, vip), check.port)


def is_literal(host: str) -> bool:
    """True if the URL host is an IP address (no DNS name, no SNI)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def method_of(check) -> str:
    m = (check.method or "GET").upper()
    return m if m in ("GET", "HEAD") else "GET"


def expected(check, status: int) -> bool:
    """vc5: expect default [200]; 0 in the list matches any status."""
    codes = tuple(check.expect) or (200,)
    return 0 in codes or status in codes
