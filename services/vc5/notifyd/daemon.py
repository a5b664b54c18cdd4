"""vc5-notifyd's process: configuration, one pipeline per sink, signals, systemd notifications.

Signals (vc5.common.lifecycle.StopSignals): SIGTERM/SIGINT stop; SIGHUP
re-reads the configuration (RELOADING=1 ... READY=1, `systemctl reload
vc5-notifyd`, or `systemctl reload vc5.target` through ReloadPropagatedFrom=):
a configuration that does not load is refused with its problems in the
journal and the running sinks carry on; sinks whose settings changed are
restarted (their cursor files carry over), removed ones stop, new ones start
at the end of the journal. A pipeline cancelled mid-delivery loses nothing:
its cursor moves only after an acknowledgement.

vc5-notifyd only reads the journal: a slow or dead endpoint delays its own
pipeline and nothing else (journald never waits for readers), so it cannot
stall healthd or any other daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os

import aiohttp

from vc5 import config as vconfig
from vc5.common import lifecycle, sd

from . import settings as vsettings
from .backoff import Backoff
from .cursor import CursorStore
from .delivery import Elastic, Webhook
from .follower import Follower
from .metrics import Metrics
from .pipeline import Pipeline

log = logging.getLogger("vc5.notifyd")


def load_sinks(path: str) -> dict[str, vsettings.Sink]:
    """The sinks `path` configures; ConfigError (every problem, FILE:LINE:COLUMN) if it does not load."""
    cfg = vconfig.load(path)
    for warning in getattr(cfg, "warnings", ()):
        log.warning("%s", warning)
    return vsettings.sinks(cfg)


class Daemon:
    def __init__(self, args) -> None:
        self.args = args
        self.sinks: dict[str, vsettings.Sink] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.pipelines: dict[str, Pipeline] = {}    # the pipeline each task runs now
        self.metrics = Metrics(args.metrics_file)
        self.session: aiohttp.ClientSession | None = None
        # One reload at a time: two overlapping apply()s could start two pipelines for one sink.
        self.reloading = asyncio.Lock()

    def _pipeline(self, sink: vsettings.Sink) -> Pipeline:
        a = self.args
        target_class = Elastic if sink.name == "elasticsearch" else Webhook
        target = target_class(sink, self.session, a.timeout)
        return Pipeline(sink, target, lambda: Follower(a.match, a.journal_directory),
                        CursorStore(a.state_directory, sink.name),
                        Backoff(a.backoff_initial, a.backoff_max, jitter=a.backoff_jitter), self.metrics,
                        batch=a.batch, max_backlog=a.max_backlog, backlog_interval=a.backlog_interval)

    async def apply(self, sinks: dict[str, vsettings.Sink]) -> None:
        """Stop the pipelines whose sink changed or went, start the new ones."""
        for name in list(self.tasks):
            if sinks.get(name) != self.sinks.get(name):
                task, pipeline = self.tasks.pop(name), self.pipelines.pop(name, None)
                if pipeline is not None and pipeline.sending:
                    # let the request on the wire be answered (and its batch committed) first
                    pipeline.draining = True
                    await asyncio.wait({task}, timeout=self.args.timeout + 1.0)
                # cancel until it is done: Python 3.11's wait_for can swallow a cancellation that
                # lands as its inner call completes (aiohttp's timeouts), and a reload that waits
                # for a pipeline that never ends never sends READY=1 (`systemctl reload` hangs)
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=1.0)
                await asyncio.gather(task, return_exceptions=True)
        for name, sink in sinks.items():
            if name not in self.tasks:
                self.tasks[name] = asyncio.create_task(self._run(sink), name=f"notify-{name}")
        self.sinks = sinks

    async def _run(self, sink: vsettings.Sink) -> None:
        """One pipeline; an unexpected error is logged and the pipeline started again after a pause."""
        while True:
            pipeline = self.pipelines[sink.name] = self._pipeline(sink)
            try:
                await pipeline.run()
                if pipeline.draining:
                    return                  # a reload replaces it (apply)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("%s: pipeline failed (%s); starting it again in %.0f s", sink.name, e,
                              self.args.backoff_max)
                await asyncio.sleep(self.args.backoff_max)

    async def reload(self) -> None:
        async with self.reloading:
            await self._reload()

    async def _reload(self) -> None:
        sd.notify_reloading()
        try:
            sinks = await asyncio.to_thread(load_sinks, self.args.config)
        except vconfig.ConfigError as e:
            log.error("reload refused, keeping the running configuration (%s): %s",
                      vsettings.describe(self.sinks), e)
            sd.notify_ready(f"shipping to {vsettings.describe(self.sinks)}; reload REFUSED, see the journal")
            return
        await self.apply(sinks)
        log.info("reloaded %s: shipping to %s", self.args.config, vsettings.describe(sinks))
        sd.notify_ready(f"shipping to {vsettings.describe(sinks)}")

    async def _write_metrics(self) -> None:
        while True:
            try:
                self.metrics.write()
            except OSError as e:
                log.warning("cannot write %s: %s", self.metrics.path, e)
            await asyncio.sleep(1.0)

    async def run(self) -> int:
        try:
            sinks = await asyncio.to_thread(load_sinks, self.args.config)
        except vconfig.ConfigError as e:
            log.error("cannot start: %s", e)
            return 1
        os.makedirs(self.args.state_directory, mode=0o700, exist_ok=True)
        signals = lifecycle.StopSignals(on_reload=self.reload)
        self.session = aiohttp.ClientSession(headers={"User-Agent": "vc5-notifyd"})
        await self.apply(sinks)
        writer = asyncio.create_task(self._write_metrics())
        watchdog = asyncio.create_task(sd.watchdog())
        log.info("shipping to %s (state in %s)", vsettings.describe(sinks), self.args.state_directory)
        sd.notify_ready(f"shipping to {vsettings.describe(sinks)}")
        await signals.wait()
        sd.notify_stopping()
        for task in (writer, watchdog, *self.tasks.values()):
            task.cancel()
        await asyncio.gather(writer, watchdog, *self.tasks.values(), return_exceptions=True)
        self.metrics.write()
        await self.session.close()
        return 0


async def main(args) -> int:
    """The life cycle (vc5.common.lifecycle.main runs it): 1 if the configuration does not load."""
    return await Daemon(args).run()
