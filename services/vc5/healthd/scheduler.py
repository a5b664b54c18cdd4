"""Rounds: one asyncio task per (service, backend), no thread per probe.

Each task waits a uniformly random part of the interval before its first
round (jitter), so N backends spread their probes evenly over the interval
instead of bursting; afterwards rounds start on that task's own grid, every
`interval` seconds. A round that overruns the interval makes the task skip
the grid points it missed (no catch-up burst).

sync(state) reconciles tasks with a configuration: tasks of unchanged pairs
keep running (and their phase); pairs whose checks or timing changed are
restarted; removed pairs are cancelled. The state machine itself lives in
HealthState and is untouched by restarts.
"""

import asyncio
import logging
import random

from .checks.runner import Round

log = logging.getLogger("vc5.healthd.scheduler")


def signature(service, backend) -> tuple:
    """What a task depends on: a change here restarts the task."""
    return (service.vip, service.protocol, service.interval, service.timeout,
            backend.address, backend.checks)


class Scheduler:
    def __init__(self, runner, on_result, rng=None):
        self.runner = runner
        self.on_result = on_result      # on_result(service key, backend key, Round)
        self.rng = rng or random.Random()
        self._tasks = {}                # (service key, backend key) -> (signature, Task)

    def sync(self, state) -> None:
        wanted = {}
        for skey, svc in state.services.items():
            for bkey, rec in svc.backends.items():
                wanted[(skey, bkey)] = (svc.config, rec.config)
        for key in list(self._tasks):
            sig, task = self._tasks[key]
            if key not in wanted or signature(*wanted[key]) != sig:
                task.cancel()
                del self._tasks[key]
        for key, (service, backend) in wanted.items():
            if key not in self._tasks:
                task = asyncio.ensure_future(self._run(key, service, backend))
                self._tasks[key] = (signature(service, backend), task)

    def __len__(self):
        return len(self._tasks)

    async def _run(self, key, service, backend):
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        interval = max(float(service.interval), 0.01)
        await asyncio.sleep(self.rng.uniform(0, interval))
        next_at = loop.time()
        while True:
            try:
                r = await self.runner.round(service, backend)
                if self._tasks.get(key, (None, None))[1] is not me:
                    # Removed by sync()/stop() while the round ran, and the cancel was swallowed
                    # (asyncio.wait_for in 3.11 can, when its inner future completes at the same
                    # moment). Task.cancelling() cannot tell: aiohttp 3.8 cancels the task for its
                    # own timeouts and never uncancels it.
                    return
                self.on_result(key[0], key[1], r)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # A bug in a check must not freeze the backend's state: the round fails, visibly.
                log.exception("round for %s %s failed", *key)
                self.on_result(key[0], key[1], Round(False, f"internal error: {e!r}", 0, ""))
            next_at += interval
            now = loop.time()
            if next_at < now:
                next_at += ((now - next_at) // interval + 1) * interval
            await asyncio.sleep(next_at - now)

    async def stop(self):
        tasks = [t for _, t in self._tasks.values()]
        self._tasks.clear()
        for _ in range(10):
            for t in tasks:
                t.cancel()
            _done, pending = await asyncio.wait(tasks, timeout=1.0) if tasks else (set(), set())
            if not pending:
                return
            tasks = list(pending)
        log.error("%d check tasks did not stop", len(tasks))
