"""Credentials inside URLs, masked: for every place a reader shows configuration or its errors.

vc5.config.masked() replaces the secret *fields* (slack, teams, the
Elasticsearch username and password, BGP MD5 keys) with vc5's "************";
a secret can also sit inside another value's URL: `https://elastic:pw@es:9200/`
in `logging.elasticsearch.addresses`, `?token=` in a query, or any of these
quoted in a configuration error message. This module masks those too
(issue 12, Deliver item 6; docs/observability.md, "Secrets"):

- userinfo (RFC 3986 §3.2.1: `user:password@`; the RFC deprecates passwords
  there, Elasticsearch clients still accept them) becomes `************@`;
- every query value becomes `************` (names kept: `?token=************`);
- a fragment becomes `************`.

Scheme, host, port and path are kept: they are what an operator needs to
recognise the endpoint. Webhook URLs whose *path* is the secret (Slack, Teams)
are masked whole by vc5.config.masked() already.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

SECRET = "************"   # vc5's form (vc5.config.SECRET)

# scheme://userinfo@ inside any text (error messages, log lines): userinfo has no '/', '@' or space.
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_url(text: str) -> str:
    """`text` with the credentials of the URL it is masked; anything that is not a URL unchanged."""
    if not _URL.match(text):
        return mask_text(text)
    try:
        parts = urlsplit(text)
    except ValueError:
        return mask_text(text)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = SECRET + "@" + netloc.rpartition("@")[2]
    query = "&".join(f"{field.partition('=')[0]}={SECRET}" if field else field
                     for field in parts.query.split("&")) if parts.query else ""
    fragment = SECRET if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def mask_text(text: str) -> str:
    """Free text (an error message, a log line): every `scheme://user:pass@` loses its userinfo."""
    return _USERINFO.sub(lambda m: m.group(1) + SECRET + "@", text)


def mask_urls(document):
    """A copy of a JSON-like document with every string passed through mask_url()."""
    if isinstance(document, str):
        return mask_url(document)
    if isinstance(document, dict):
        return {k: mask_urls(v) for k, v in document.items()}
    if isinstance(document, (list, tuple)):
        return [mask_urls(v) for v in document]
    return document
