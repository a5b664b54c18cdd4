"""Credentials inside URLs, masked: for every place a reader shows configuration or its errors.

vc5.config.masked() replaces the secret *fields* (slack, teams, the
Elasticsearch username and password, BGP MD5 keys) with vc5's "************";
a secret can also sit inside another value's URL: `https://elastic:pw@es:9200/`
in `logging.elasticsearch.addresses`, `?token=` in a query, or any of these
quoted in a configuration error message. This module masks those too
(issue 12, Deliver item 6; docs/observability.md, "Secrets"):

- a URL is masked by vc5.config's rule (vc5.config.secrets.mask_url, one rule
  for every reader): the password of `user:password@` (a lone user is a token,
  RFC 3986 §3.2.1) and the query become `************`;
- free text (error messages, log lines): every `scheme://userinfo@` loses its
  userinfo.

Scheme, host, port and path are kept: they are what an operator needs to
recognise the endpoint. Webhook URLs whose *path* is the secret (Slack, Teams)
are masked whole by vc5.config.masked() already.
"""

from __future__ import annotations

import re

from vc5.config.secrets import mask_url as config_mask_url

SECRET = "************"   # vc5's form (vc5.config.SECRET)

# scheme://userinfo@ inside any text (error messages, log lines): userinfo has no '/', '@' or space.
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_url(text: str) -> str:
    """A URL masked by vc5.config's one rule (secrets.mask_url: the password or token of the
    userinfo, the query); anything that is not a URL goes through mask_text()."""
    if not _URL.match(text):
        return mask_text(text)
    return config_mask_url(text)


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
