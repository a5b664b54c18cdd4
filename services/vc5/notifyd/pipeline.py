"""One sink's loop: read a batch from the journal, deliver it (retrying), commit the cursor.

Invariants:
  - ordered: a batch is delivered completely (or its remainder dropped, below)
    before the next is read; webhooks get one event at a time, in order;
  - at-least-once: the cursor file moves only past events the endpoint
    accepted (or refused for good, or dropped under the backlog bound: both
    logged and counted), so a crash or kill repeats at most the events in
    flight, and Elasticsearch's `create` with the entry's _id turns that
    repeat into a 409 (exactly once in the index);
  - bounded: memory holds one batch; the journal holds the rest. While the
    endpoint fails and more than --max-backlog events wait after the cursor,
    the oldest batch is skipped with a WARNING naming how many and from when
    (vc5_notify_dropped_total).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .backoff import Backoff
from .cursor import CursorStore
from .delivery import Elastic, Rejected, Retry, Webhook
from .follower import Event, Follower
from .metrics import Metrics
from .settings import Sink

log = logging.getLogger("vc5.notifyd")
REPEAT_WARNING_S = 60.0


class BacklogFull(Exception):
    pass


class Drained(Exception):
    """A reload replaced this pipeline while its request was answered with a failure: stop."""


class Pipeline:
    def __init__(self, sink: Sink, target: Webhook | Elastic, open_follower: Callable[[], Follower],
                 store: CursorStore, backoff: Backoff, metrics: Metrics, *, batch: int = 500,
                 max_backlog: int = 100_000, backlog_interval: float = 5.0) -> None:
        self.sink = sink
        self.target = target
        self.open_follower = open_follower
        self.store = store
        self.backoff = backoff
        self.metrics = metrics
        self.batch = batch if sink.name == "elasticsearch" else min(batch, 100)
        self.max_backlog = max_backlog
        self.backlog_interval = backlog_interval
        self.committed = ""
        # `sending`: a request is on the wire. A reload that replaces this pipeline while one is
        # lets it be answered first (`draining`), so that a batch the old settings' endpoint
        # stored is committed and not sent again to the new settings (another index would store
        # it twice). Between attempts (backoff) nothing is on the wire: a reload stops it at once.
        self.sending = False
        self.draining = False
        self.down_since: float | None = None
        self.warned = 0.0
        metrics.ensure(sink.name)

    async def run(self) -> None:
        follower = self.open_follower()
        counter = self.open_follower()
        watcher = None
        try:
            cursor = self.store.load()
            if cursor is None:
                cursor = follower.start_cursor()
                self.store.save(cursor)
                log.info("%s: no cursor yet, starting at the end of the journal", self.sink.name)
            else:
                follower.seek(cursor)
            self.committed = cursor
            watcher = asyncio.create_task(self._watch_backlog(counter))
            while not self.draining:
                batch = await follower.next_batch(self.batch)
                if isinstance(self.target, Elastic):
                    await self._bulk(batch)
                else:
                    await self._webhooks(batch)
                self._commit(batch[-1].cursor)
        except Drained:
            pass                            # replaced by a reload: the new pipeline goes on from the cursor
        finally:
            if watcher:
                watcher.cancel()
            follower.close()
            counter.close()

    def _commit(self, cursor: str) -> None:
        if cursor != self.committed:
            self.store.save(cursor)
            self.committed = cursor

    async def _webhooks(self, batch: list[Event]) -> None:
        for i, event in enumerate(batch):
            if not self.sink.wants(event.priority):
                continue
            try:
                await self._attempt(lambda: self.target.post(event))
                self.metrics.add("vc5_notify_delivered_total", self.sink.name)
            except Rejected as e:
                self._rejected(event, str(e))
            except BacklogFull:
                self._drop(batch[i:])       # the ones before were delivered and committed
                return
            self._commit(event.cursor)

    async def _bulk(self, batch: list[Event]) -> None:
        async def once():
            result = await self.target.bulk(batch)
            if result.retry:
                first = result.outcomes.index("retry")
                raise Retry(f"elasticsearch: {result.outcomes.count('retry')} of {len(batch)} documents "
                            f"to retry (first: {result.errors[first]})")
            return result
        try:
            result = await self._attempt(once)
        except BacklogFull:
            self._drop(batch)
            return
        rejected = result.rejected()
        for i in rejected:
            self._rejected(batch[i], f"elasticsearch refused the document: {result.errors[i]}")
        self.metrics.add("vc5_notify_delivered_total", self.sink.name, len(batch) - len(rejected))

    async def _attempt(self, call: Callable[[], Awaitable]):
        """call() until it does not raise Retry, sleeping the backoff between (BacklogFull: give up)."""
        while True:
            self.sending = True
            try:
                result = await call()
            except Retry as e:
                self.sending = False
                if self.draining:
                    raise Drained() from None
                delay = self.backoff.failed()
                self._failed(str(e), delay)
                if self.metrics.get("vc5_notify_backlog", self.sink.name) > self.max_backlog:
                    raise BacklogFull() from None
                await asyncio.sleep(delay)
                continue
            finally:
                self.sending = False
            self._recovered()
            return result

    def _failed(self, error: str, delay: float) -> None:
        now = time.monotonic()
        self.metrics.add("vc5_notify_failures_total", self.sink.name)
        self.metrics.set("vc5_notify_up", self.sink.name, 0)
        if self.down_since is None:
            self.down_since = now
        if now - self.warned >= REPEAT_WARNING_S or self.backoff.failures == 1:
            self.warned = now
            log.warning("%s: delivery failed (%d in a row, for %.0f s): %s; retrying in %.1f s; the "
                        "events wait in the journal (backlog %d, cursor kept)", self.sink.name,
                        self.backoff.failures,
                        now - self.down_since, error, delay,
                        self.metrics.get("vc5_notify_backlog", self.sink.name))
        else:
            log.debug("%s: %s; retrying in %.1f s", self.sink.name, error, delay)

    def _recovered(self) -> None:
        self.metrics.set("vc5_notify_up", self.sink.name, 1)
        if self.down_since is not None:
            log.warning("%s: delivering again after %d failed attempts over %.0f s", self.sink.name,
                        self.backoff.failures, time.monotonic() - self.down_since)
        self.down_since = None
        self.warned = 0.0
        self.backoff.succeeded()

    def _rejected(self, event: Event, error: str) -> None:
        self.metrics.add("vc5_notify_rejected_total", self.sink.name)
        log.error("%s: skipping the event of %s (cursor %s): %s", self.sink.name, event.time.isoformat(),
                  event.cursor, error)

    def _drop(self, entries: list[Event]) -> None:
        """Skip `entries` (the oldest waiting): count the ones this sink would have sent."""
        n = sum(1 for e in entries if self.sink.wants(e.priority))
        self.metrics.add("vc5_notify_dropped_total", self.sink.name, n)
        # An estimate until the next count: keeps the bound from dropping every batch behind.
        self.metrics.add("vc5_notify_backlog", self.sink.name, -len(entries))
        log.warning("%s: endpoint down and more than %d events waiting (--max-backlog): skipped the oldest "
                    "%d, logged from %s to %s", self.sink.name, self.max_backlog, n,
                    entries[0].time.isoformat(), entries[-1].time.isoformat())

    async def _watch_backlog(self, counter: Follower) -> None:
        """vc5_notify_backlog every backlog_interval: entries after the committed cursor (capped)."""
        while True:
            counter.reader.process()      # new journal files (rotation)
            n = counter.count_after(self.committed, self.max_backlog + 1)
            self.metrics.set("vc5_notify_backlog", self.sink.name, n)
            await asyncio.sleep(self.backlog_interval)
