"""HTTP delivery: a webhook POST per event, a _bulk POST per batch (aiohttp).

Outcomes, for the pipeline's retry loop:
  - return normally: the endpoint accepted (webhook 2xx; every bulk item 2xx or 409)
  - Retry: worth trying again later (no connection, timeout, 408/429/5xx, a
    bulk item 429/5xx, an unreadable bulk response, ES 401/403: nothing was
    acknowledged, and a fixed credential or endpoint delivers it all)
  - Rejected: this event itself is refused (webhook 4xx, e.g. Slack's
    invalid_payload); retrying cannot help, so it is logged and skipped
Messages never show a URL's secret parts (vc5.config.secrets.mask_url).
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from vc5.config.secrets import mask_url

from . import formats
from .follower import Event
from .settings import Sink

log = logging.getLogger("vc5.notifyd.delivery")
MAX_RESPONSE = 16 * 1024 * 1024   # a _bulk response for 500 items is ~100 KiB


class Retry(Exception):
    pass


class Rejected(Exception):
    pass


class Webhook:
    """Slack or Teams: POST one JSON body per event."""

    def __init__(self, sink: Sink, session: aiohttp.ClientSession, timeout: float) -> None:
        self.sink = sink
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.url = sink.urls[0]
        self.shown = mask_url(self.url)
        self.payload = formats.slack if sink.name == "slack" else formats.teams

    async def post(self, event: Event) -> None:
        body = self.payload(event, self.sink.host)
        try:
            async with self.session.post(self.url, json=body, timeout=self.timeout) as r:
                reply = (await r.content.read(4096)).decode("utf-8", "replace")
                status = r.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise Retry(f"{self.sink.name} {self.shown}: {type(e).__name__}: {e}") from None
        if 200 <= status < 300:
            return
        what = f"{self.sink.name} {self.shown}: HTTP {status} {reply.strip()[:200]}"
        if status in (408, 429) or status >= 500:
            raise Retry(what)
        raise Rejected(what)


class Elastic:
    """Elasticsearch/OpenSearch: POST /_bulk (NDJSON) to the addresses in turn."""

    def __init__(self, sink: Sink, session: aiohttp.ClientSession, timeout: float) -> None:
        self.sink = sink
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.next = 0
        self.auth = None
        if sink.username is not None:
            self.auth = aiohttp.BasicAuth(sink.username, sink.password or "")

    async def bulk(self, events: list[Event]) -> formats.BulkResult:
        """One _bulk request; the parsed per-item result (Retry if the request as a whole failed)."""
        base = self.sink.urls[self.next % len(self.sink.urls)]
        shown = mask_url(base)
        body = formats.bulk(events, self.sink.index, self.sink.host)
        url = base.rstrip("/") + "/_bulk"
        try:
            async with self.session.post(url, data=body, auth=self.auth, timeout=self.timeout,
                                         headers={"Content-Type": "application/x-ndjson"}) as r:
                status = r.status
                raw = await r.content.read(MAX_RESPONSE)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            self.next += 1          # the next attempt tries the next address
            raise Retry(f"elasticsearch {shown}: {type(e).__name__}: {e}") from None
        if status != 200:
            self.next += 1
            text = raw[:200].decode("utf-8", "replace").strip()
            raise Retry(f"elasticsearch {shown}: HTTP {status} {text}")
        try:
            return formats.BulkResult(json.loads(raw), len(events))
        except ValueError as e:
            raise Retry(f"elasticsearch {shown}: unusable _bulk response: {e}") from None
