"""vc5's compact YAML idioms (the grammar of vc5's cmd/config.pl), as pure functions.

Each parser returns a value or raises GrammarError(message); the compiler
turns the message into a Problem at the right node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# vc5 config.pl: "Name '...' isn't valid" unless /^[a-z0-9][-a-z0-9]*$/i
NAME_RE = re.compile(r"^[a-z0-9][-a-z0-9]*$", re.IGNORECASE)
# A scheduler is a label for the display (the XDP data plane always uses Maglev).
SCHEDULER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# Well-known names accepted as policy keys (config.pl's table).
NAMED_PORTS = {
    "ftp": 21, "smtp": 25, "ssh": 22, "telnet": 23,
    "pop2": 109, "pop3": 110, "imap": 143, "imaps": 993,
}

_NUM = r"([1-9][0-9]*)"
_POLICY_FORMS = "N, N/tcp, N/udp, http, https, domain, domain/tcp, domain/udp, N/http, N/https, N/domain, " \
    + ", ".join(sorted(NAMED_PORTS)) + " (a trailing * turns the checks off)"


class GrammarError(ValueError):
    pass


@dataclass(frozen=True)
class PolicyPort:
    """One (port, protocol) a policy key expands to, and its implicit check type (None = no check)."""

    port: int
    protocol: str
    check: str | None


def policy_key(key: str) -> tuple:
    """Expand a policy key into (PolicyPort, ...) and whether checks are on.

    `domain` (and `N/domain`) is both tcp and udp; a trailing `*` means no checks.
    Returns (ports, checks_on).
    """
    k = str(key).strip()
    checks_on = True
    if k.endswith("*"):
        k, checks_on = k[:-1], False
    m = re.fullmatch(_NUM, k) or re.fullmatch(_NUM + "/tcp", k)
    if m:
        out = (_port(m.group(1), key), "tcp", "syn"),
    elif (m := re.fullmatch(_NUM + "/udp", k)):
        out = (_port(m.group(1), key), "udp", None),
    elif (m := re.fullmatch("(?:" + _NUM + "/)?(https?)", k)):
        p = _port(m.group(1), key) if m.group(1) else (80 if m.group(2) == "http" else 443)
        out = (p, "tcp", m.group(2)),
    elif (m := re.fullmatch("(?:" + _NUM + "/)?domain", k)):
        p = _port(m.group(1), key) if m.group(1) else 53
        out = (p, "tcp", "dns"), (p, "udp", "dns")
    elif k in ("domain/tcp", "domain/udp"):
        out = (53, k[7:], "dns"),
    elif k in NAMED_PORTS:
        out = (NAMED_PORTS[k], "tcp", "syn"),
    else:
        raise GrammarError(f"'{key}' is not a policy key; allowed: {_POLICY_FORMS}")
    return tuple(PolicyPort(p, proto, chk if checks_on else None) for p, proto, chk in out), checks_on


# A port in text: ASCII digits only (str.isdigit() also takes '²', on which int() fails, and '١٢',
# which int() reads as 12), 1..65535 (RFC 9293 §3.1: 16-bit; port 0 is reserved, RFC 6335 §6).
PORT_RE = re.compile(r"[0-9]{1,5}")


def is_port(text: str) -> bool:
    """text is a port 1..65535 written in decimal ASCII digits (no sign, no space)."""
    return bool(PORT_RE.fullmatch(text)) and 1 <= int(text) <= 65535


def _port(digits: str, key) -> int:
    p = int(digits)
    if not 1 <= p <= 65535:
        raise GrammarError(f"port {p} in '{key}' is out of range 1..65535")
    return p


def server(text: str) -> tuple:
    """'10.1.2.3' or '10.1.2.3*' -> ('10.1.2.3', disabled)."""
    t = str(text).strip()
    if t.endswith("*"):
        return t[:-1].strip(), True
    return t, False


def expect(value) -> tuple:
    """vc5's `expect`: '200', 302, '200 301', '200-299' (every code in it), 'any' (-> (0,)), or a list.

    Each code must match ^[1-9][0-9][0-9]$ (100..999), as config.pl.
    """
    if isinstance(value, (list, tuple)):
        words = [str(v) for v in value]
    else:
        words = str(value).split()
    if not words:
        raise GrammarError("is empty; give status codes such as 200, '200 301', a range '200-299', or 'any'")
    if len(words) == 1 and words[0].lower() == "any":
        return (0,)
    codes: list[int] = []
    for w in words:
        m = re.fullmatch(r"([1-9][0-9][0-9])-([1-9][0-9][0-9])", w)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            codes.extend(range(min(a, b), max(a, b) + 1))
        elif re.fullmatch(r"[1-9][0-9][0-9]", w):
            codes.append(int(w))
        else:
            raise GrammarError(f"'{w}' is not an HTTP status code; give codes 100..999 such as 200, "
                               "'200 301', a range '200-299', or 'any'")
    seen: list[int] = []
    for c in codes:
        if c not in seen:
            seen.append(c)
    return tuple(seen)


def community(text: str) -> str:
    """Standard community 'asn:value' (RFC 1997), each half 0..65535."""
    m = re.fullmatch(r"([0-9]+):([0-9]+)", str(text).strip())
    if not m:
        raise GrammarError(f"'{text}' is not a community; write 'asn:value' with each half 0..65535 "
                           "(quote it in YAML)")
    a, b = int(m.group(1)), int(m.group(2))
    for half in (a, b):
        if half > 65535:
            raise GrammarError(f"'{text}': {half} is more than 65535; a standard community is two 16-bit "
                               "halves (use large_communities for 32-bit ASNs)")
    return f"{a}:{b}"


def large_community(text: str) -> str:
    """Large community 'a:b:c' (RFC 8092), each part 0..4294967295."""
    m = re.fullmatch(r"([0-9]+):([0-9]+):([0-9]+)", str(text).strip())
    if not m:
        raise GrammarError(f"'{text}' is not a large community; write 'asn:value1:value2', "
                           "each 0..4294967295")
    parts = [int(g) for g in m.groups()]
    for p in parts:
        if p > 4294967295:
            raise GrammarError(f"'{text}': {p} is more than 4294967295")
    return ":".join(str(p) for p in parts)
