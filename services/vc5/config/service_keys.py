"""The keys a service or a policy entry may set, one table row each: reader, default, help.

`SETTINGS` is what validation uses: a key is accepted at a service or a
policy entry when it has a row, and its value is read by the row's reader.
The keys cascade (docs/configuration.md, "Services" and "Health checks"):
a service's value is the default of each of its policy entries, which may
override it; host, path, method, expect and timeout are in turn the
defaults of each explicit check, which may override them (`CHECK_SETTINGS`).

A reader is `reader(r, node, path) -> value`, or None after reporting the
problem at the node. A row's `default` is the value compilation uses when
the key is written nowhere (KeyTable.values); None means unset (the model's own
default applies, e.g. Service.tunnel_port 0, or the check type's timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from yaml.nodes import ScalarNode, SequenceNode

from vc5.common import capacity

from . import grammar
from .errors import did_you_mean
from .grammar import GrammarError
from .model import CHECK_TYPES, DEFAULT_FALL, DEFAULT_INTERVAL, DEFAULT_RISE, PRIORITIES, TUNNEL_TYPES
from .reader import Reader, is_null, join, kind

HTTP_METHODS = ("GET", "HEAD")
DNS_METHODS = ("udp", "tcp")
MAX_BACKENDS = capacity.MAX_BACKENDS  # the data plane's slots 1..255 of a service

Read = Callable[[Reader, object, str], object]


@dataclass(frozen=True)
class Key:
    """One service/policy-entry key."""

    reader: Read
    default: object            # when the key is written nowhere; None = unset
    help: str                  # one line, for docs and vc5ctl
    field: Optional[str] = None    # the Service attribute it sets (None: it feeds the checks)
    explicit: bool = False     # recorded in Service.explicit (the vc5 JSON view emits it only when set)


@dataclass(frozen=True)
class CheckKey:
    """One key of an explicit check, over the cascaded value (docs/configuration.md, "Health checks")."""

    reader: Read
    help: str
    applies: tuple = CHECK_TYPES   # the check types it may be given for


# -- readers ----------------------------------------------------------------


def checked(fits, why: str, choices=()) -> Read:
    """A reader of text that fits(text); else the problem why, formatted with the text as {s}.

    With choices, why may also name them ({choices}) and the closest one ({close}).
    """
    def read(r, node, path):
        s = r.text(node, path)
        if s is not None and not fits(s):
            r.error(node, path, why.format(s=s, choices=", ".join(choices), close=did_you_mean(s, choices)))
            return None
        return s
    read.__doc__ = why
    return read


def one_of(choices: tuple, why: str) -> Read:
    return checked(choices.__contains__, why, choices)


def integer(lo: int, hi: int, what: str) -> Read:
    def read(r, node, path):
        return r.integer(node, path, lo, hi, what)
    read.__doc__ = f"{what} from {lo} to {hi}"
    return read


def seconds(lo: float, hi: float) -> Read:
    def read(r, node, path):
        return r.number(node, path, lo, hi)
    read.__doc__ = f"a number of seconds from {lo:g} to {hi:g}"
    return read


def boolean(r: Reader, node, path):
    return r.boolean(node, path)


def text(r: Reader, node, path):
    return r.text(node, path)


def _host_name(s: str) -> bool:
    return bool(s.strip()) and not any(c.isspace() for c in s) and "/" not in s


def _no_space(s: str) -> bool:
    return not any(c.isspace() for c in s)


name = checked(grammar.NAME_RE.match, "name '{s}' is not valid: letters, digits and '-', "
                                      "starting with a letter or digit (vc5's rule)")
priority = one_of(PRIORITIES, "priority '{s}' is not one of {choices}{close}")
scheduler = checked(grammar.SCHEDULER_RE.match, "scheduler '{s}' is not a scheduler name (e.g. roundrobin, "
                                                "leastconn, maglev; the XDP data plane always uses Maglev)")
tunnel_type = one_of(TUNNEL_TYPES, "tunnel type '{s}' is not supported; allowed: {choices}{close}")
host = checked(_host_name, "host '{s}' is not a host name (it becomes the Host header and SNI; "
                           "no spaces, no scheme or path)")
_path_text = checked(_no_space, "path '{s}' contains white space; URL-encode it (%20)")


def url_path(r: Reader, node, path):
    s = _path_text(r, node, path)
    return s if s is None or s.startswith("/") else "/" + s


def method(r: Reader, node, path):
    s = r.text(node, path)
    if s is None:
        return None
    if s.upper() in HTTP_METHODS:
        return s.upper()
    if s.lower() in DNS_METHODS:
        return s.lower()
    r.error(node, path, f"method '{s}' is not valid: GET or HEAD for http/https checks, "
                        "udp or tcp for dns checks")
    return None


def expect(r: Reader, node, path):
    if isinstance(node, SequenceNode):
        raw = []
        for item in node.value:
            if not isinstance(item, ScalarNode) or is_null(item):
                r.error(item, path, f"expect list items must be status codes, not {kind(item)}")
                return None
            raw.append(item.value)
    elif isinstance(node, ScalarNode):
        raw = node.value
    else:
        r.error(node, path, f"must be status codes (200, '200 301', '200-299', any), not {kind(node)}")
        return None
    try:
        return grammar.expect(raw)
    except GrammarError as e:
        r.error(node, path, f"expect {e}")
        return None


def port(r: Reader, node, path):
    """A port 1..65535 (Reader.port)."""
    return r.port(node, path)


def udp_port(r: Reader, node, path):
    """A UDP port 1..65535 (Reader.port)."""
    return r.port(node, path, "a UDP port")


# -- the tables -------------------------------------------------------------

# In this order: the cascade reads keys (and reports their problems) in table order.
SETTINGS: dict[str, Key] = {
    "name": Key(name, None, "shown in the console, logs and metrics; letters, digits and '-'",
                field="name", explicit=True),
    "description": Key(text, None, "free text shown in the console, logs and metrics",
                       field="description", explicit=True),
    "priority": Key(priority, "critical", "severity of the VIP up/down alert: critical, high, medium or low",
                    field="priority", explicit=True),
    "need": Key(integer(0, MAX_BACKENDS, "a number of healthy backends"), 1,
                "the service is up while at least this many servers are healthy (0: always up)",
                field="need"),
    "sticky": Key(boolean, False, "choose the server by client and VIP addresses only (no ports)",
                  field="sticky"),
    "stateless": Key(boolean, False, "store no flows: every packet is balanced by Maglev (DNS and other "
                     "one-packet exchanges)", field="stateless"),
    "reset": Key(boolean, False, "kept and shown (IPVS only in vc5)",
                 field="reset"),
    "scheduler": Key(scheduler, None, "kept and shown (default: the top-level scheduler); Maglev is used",
                     field="scheduler", explicit=True),
    "persist": Key(integer(0, 4294967295, "a number of seconds"), None, "kept and shown (IPVS only in vc5)",
                   field="persist", explicit=True),
    "tunnel-type": Key(tunnel_type, "none",
                       "how packets reach the servers: none (layer-2 DSR), ipip, gre, fou or gue",
                       field="tunnel_type", explicit=True),
    "tunnel-port": Key(udp_port, None, "UDP port of the servers' FOU/GUE receiver",
                       field="tunnel_port", explicit=True),
    "tunnel-no-checksum": Key(boolean, False, "no UDP checksum in FOU/GUE packets",
                              field="tunnel_no_checksum", explicit=True),
    "host": Key(host, None, "checks' Host header and SNI (default: the VIP)"),
    "path": Key(url_path, None, "checks' URL path (default: /)"),
    "method": Key(method, None, "checks' method: GET or HEAD (http, https), udp or tcp (dns)"),
    "expect": Key(expect, None,
                  "checks' HTTP status codes: 200, '200 301', 200-299, a list, or any (default: 200)"),
    "interval": Key(seconds(0.1, 3600.0), DEFAULT_INTERVAL, "seconds between check rounds",
                    field="interval", explicit=True),
    "timeout": Key(seconds(0.01, 60.0), None, "seconds a check may take, at most interval (default: by type)",
                   field="timeout", explicit=True),
    "rise": Key(integer(1, 64, "a number of check rounds"), DEFAULT_RISE,
                "consecutive passing rounds to come up; also the window of fall",
                field="rise", explicit=True),
    "fall": Key(integer(1, 64, "a number of check rounds"), DEFAULT_FALL,
                "failures within the last rise rounds that take a server down (at most rise)",
                field="fall", explicit=True),
}

# The keys of an explicit check besides `type`, in the order they are read.
CHECK_SETTINGS: dict[str, CheckKey] = {
    "port": CheckKey(port, "port to check (default: the service port)"),
    "host": CheckKey(host, SETTINGS["host"].help, ("http", "https")),
    "path": CheckKey(url_path, SETTINGS["path"].help, ("http", "https")),
    "method": CheckKey(method, SETTINGS["method"].help),
    "expect": CheckKey(expect, SETTINGS["expect"].help, ("http", "https")),
    "timeout": CheckKey(SETTINGS["timeout"].reader, SETTINGS["timeout"].help),
}


class KeyTable:
    """What compilation needs of a table, worked out once (table() makes it for SETTINGS).

    Settings read from a level are {key: (value, node, path)}; values() resolves
    them to {key: value} of every key, the unwritten ones taking their default.
    """

    def __init__(self, settings: dict):
        self.rows = tuple(settings.items())
        self.names = frozenset(settings)
        self.defaults = {key: row.default for key, row in self.rows}
        self.fields = tuple((key, row.field) for key, row in self.rows if row.field is not None)
        self.explicit = tuple(key for key, row in self.rows if row.explicit)
        self._allowed = {}

    def allowed(self, *own: str) -> frozenset:
        """The table's keys and own (the keys a level has besides settings)."""
        got = self._allowed.get(own)
        if got is None:
            got = self._allowed[own] = self.names | frozenset(own)
        return got

    def read(self, r: Reader, m: dict, path: str, inherited: dict) -> dict:
        """The keys of one level (m: {key: (key node, value node)}) over the inherited ones."""
        out = dict(inherited)
        for key, row in self.rows:
            if key not in m:
                continue
            node = m[key][1]
            if is_null(node):
                continue
            kp = join(path, key)
            v = row.reader(r, node, kp)
            if v is not None:
                out[key] = (v, node, kp)
        return out

    def values(self, st: dict) -> dict:
        """{key: value} of every key: as read into st, else its default."""
        g = self.defaults.copy()
        for key, got in st.items():
            g[key] = got[0]
        return g

    def service_fields(self, g: dict) -> dict:
        """Service(**...) of values(): None is left to the model's defaults."""
        return {field: g[key] for key, field in self.fields if g[key] is not None}

    def explicit_keys(self, st: dict) -> frozenset:
        """The keys recorded in Service.explicit that st sets."""
        return frozenset(key for key in self.explicit if key in st)


_table: tuple = (None, None)


def table() -> KeyTable:
    """The KeyTable of SETTINGS, made again when SETTINGS is replaced (tests replace it, never edit it)."""
    global _table
    if _table[0] is not SETTINGS:
        _table = (SETTINGS, KeyTable(SETTINGS))
    return _table[1]
