"""Secret values: inline, or a systemd credential (`md5: {credential: NAME}`); and masking them.

docs/configuration.md, "Secrets and credentials". A secret key (bgp md5,
logging slack/teams, logging.elasticsearch username/password/addresses) takes
either its value or a mapping with the one key `credential`: the value is then
the file $CREDENTIALS_DIRECTORY/NAME, which systemd provides to a unit with
`LoadCredential=NAME:/etc/vc5/credentials/NAME` (systemd.exec(5),
"Credentials"). The mapping is plain YAML, so every reader parses the file.

A process that was given no credentials ($CREDENTIALS_DIRECTORY unset, and no
directory passed to load()) leaves such a secret unset and records a warning:
the console and the health checker need no BGP password. A daemon that needs
the value loads with require_credentials=True and is refused instead.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from yaml.nodes import MappingNode

from .reader import Reader, is_null, join

KEY = "credential"
SECRET = "************"   # vc5's form of a secret (docs/configuration.md, `--masked`)
MAX_SIZE = 65536          # bytes; a password or a URL (systemd allows 1 MiB, CREDENTIAL_SIZE_MAX)
# systemd accepts any file name; these characters need no quoting in a unit file.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,254}$")
ENV = "CREDENTIALS_DIRECTORY"


def text(r: Reader, node, path: str, what: str = "a string"):
    """A secret's text: the scalar, or the systemd credential the mapping names (None after a Problem)."""
    if not isinstance(node, MappingNode):
        return r.text(node, path, what)
    m = r.mapping(node, path, {KEY}, f" with the one key {KEY}: NAME (a systemd credential), or {what}")
    if m is None or KEY not in m or is_null(m[KEY][1]):
        if m is not None:
            r.error(node, join(path, KEY), f"is required: {what}, or {{{KEY}: NAME}} to read it from the "
                                           "systemd credential NAME")
        return None
    name_node = m[KEY][1]
    name = r.text(name_node, join(path, KEY), "a credential name")
    if name is None:
        return None
    if not NAME_RE.match(name):
        r.error(name_node, join(path, KEY), f"'{name}' is not a credential name: letters, digits and "
                                            "_ . @ + -, starting with a letter or digit")
        return None
    return resolve(r, name_node, join(path, KEY), name)


def resolve(r: Reader, node, path: str, name: str):
    """The credential's value from r.credentials (the directory), or None after a Problem or warning."""
    unit_line = f"LoadCredential={name}:/etc/vc5/credentials/{name}"
    if r.credentials is None:
        if r.require_credentials:
            r.error(node, path, f"credential '{name}' is not available: ${ENV} is not set; the unit needs "
                                f"{unit_line} (vc5ctl: --credentials DIR)")
        else:
            r.warn(node, path, f"credential '{name}' is not loaded in this process (${ENV} is not set), "
                               f"so this secret is unset here; the daemon that uses it needs {unit_line}")
        return None
    try:
        with open(os.path.join(r.credentials, name), "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except FileNotFoundError:
        r.error(node, path, f"credential '{name}' is missing from {r.credentials}: add {unit_line} to the "
                            "unit (a drop-in), then restart it")
        return None
    except OSError as e:
        r.error(node, path, f"credential '{name}' cannot be read: {e.strerror}")
        return None
    value = _value(r, node, path, name, data)
    return value


def _value(r: Reader, node, path: str, name: str, data: bytes):
    """The credential's text: UTF-8, one trailing newline dropped (`echo secret > file` writes one)."""
    why = None
    if len(data) > MAX_SIZE:
        why = f"is larger than {MAX_SIZE} bytes"
    else:
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            why = "is not UTF-8 text"
        else:
            value = value[:-1] if value.endswith("\n") else value
            value = value[:-1] if value.endswith("\r") else value
            if not value:
                why = "is empty"
    if why:
        r.error(node, path, f"credential '{name}' {why}")
        return None
    return value


# -- masking (for /config.json, vc5ctl config json --masked, and messages) -----------------


def mask_url(url: str) -> str:
    """A URL with its secrets replaced by SECRET: the password of user:password@ (or a lone user, which
    is then a token: RFC 3986 §3.2.1 deprecates passwords in URLs, so both are seen) and the query
    (api_key=...); https://elastic:pw@es:9200/?k=v -> https://elastic:************@es:9200/?************.
    Anything that is not such a URL is masked whole."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return SECRET
    if not parts.scheme or not host:
        return SECRET
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None:
        user = f"{parts.username}:{SECRET}" if parts.password is not None else SECRET
        netloc = f"{user}@{netloc}"
    query = SECRET if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
