"""Scheduler: jittered first rounds, one round per interval per backend, reconciliation on reload."""

import asyncio
from dataclasses import dataclass, replace
from types import SimpleNamespace

from vc5.healthd.checks.runner import Round
from vc5.healthd.scheduler import Scheduler


@dataclass(frozen=True)
class Svc:
    vip: str = "192.0.2.1"
    protocol: str = "tcp"
    interval: float = 0.2
    timeout: object = None


@dataclass(frozen=True)
class Bk:
    address: str
    checks: tuple = ()


def state(services):
    """services: {skey: (Svc, [Bk, ...])} shaped as HealthState.services."""
    return SimpleNamespace(services={
        k: SimpleNamespace(config=s, backends={(b.address, 80): SimpleNamespace(config=b) for b in bs})
        for k, (s, bs) in services.items()})


class FakeRunner:
    def __init__(self):
        self.calls = []

    async def round(self, service, backend):
        self.calls.append((asyncio.get_running_loop().time(), backend.address, service.interval))
        return Round(True, "OK", 0, backend.address)


def run(coro):
    return asyncio.run(coro)


def test_first_rounds_are_spread_over_the_interval_then_periodic():
    async def main():
        runner, results = FakeRunner(), []
        sch = Scheduler(runner, lambda *a: results.append(a))
        t0 = asyncio.get_running_loop().time()
        sch.sync(state({"s": (Svc(interval=0.3), [Bk(f"10.0.0.{i}") for i in range(40)])}))
        await asyncio.sleep(0.95)
        await sch.stop()
        return t0, runner.calls, results

    t0, calls, results = run(main())
    first = {}
    for t, addr, _ in calls:
        first.setdefault(addr, t - t0)
    starts = sorted(first.values())
    assert len(starts) == 40
    # uniform jitter over 0.3 s: not a burst (a burst would put all within a few ms)
    assert starts[-1] - starts[0] > 0.15
    assert sum(1 for s in starts if s < 0.15) not in (0, 40)
    per = {}
    for _, addr, _ in calls:
        per[addr] = per.get(addr, 0) + 1
    assert all(2 <= n <= 4 for n in per.values()), per     # every 0.3 s over ~0.95 s (3 or 4; 2 if loaded)
    assert len(results) == len(calls) and results[0][2].passed


def test_sync_keeps_unchanged_restarts_changed_and_stops_removed():
    async def main():
        runner = FakeRunner()
        sch = Scheduler(runner, lambda *a: None)
        a, b, c = Bk("10.0.0.1"), Bk("10.0.0.2"), Bk("10.0.0.3")
        sch.sync(state({"s": (Svc(), [a, b, c])}))
        tasks = dict(sch._tasks)
        sch.sync(state({"s": (Svc(), [a, replace(b, checks=("x",))])}))
        after = dict(sch._tasks)
        await sch.stop()
        return tasks, after

    tasks, after = run(main())
    ka, kb, kc = ("s", ("10.0.0.1", 80)), ("s", ("10.0.0.2", 80)), ("s", ("10.0.0.3", 80))
    assert after[ka][1] is tasks[ka][1]          # unchanged: same task, same phase
    assert after[kb][1] is not tasks[kb][1]      # checks changed: restarted
    assert kc not in after and tasks[kc][1].cancelled()


def test_a_crashing_round_reports_a_failure():
    class Broken:
        async def round(self, service, backend):
            raise ValueError("boom")

    async def main():
        results = []
        sch = Scheduler(Broken(), lambda *a: results.append(a))
        sch.sync(state({"s": (Svc(interval=0.1), [Bk("10.0.0.1")])}))
        for _ in range(50):
            if results:
                break
            await asyncio.sleep(0.02)
        await sch.stop()
        return results

    results = run(main())
    assert results and not results[0][2].passed and "boom" in results[0][2].diagnostic


def test_rounds_continue_after_a_check_cancels_itself_internally():
    """aiohttp 3.8 times out by cancelling the running task and swallowing the CancelledError
    (never uncancelling it): the backend must keep being checked."""
    class SelfCancelling:
        def __init__(self):
            self.calls = 0

        async def round(self, service, backend):
            self.calls += 1
            asyncio.current_task().cancel()
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass
            return Round(False, "http: GET http://192.0.2.1/ - Timeout", 0, backend.address)

    async def main():
        runner, results = SelfCancelling(), []
        sch = Scheduler(runner, lambda *a: results.append(a))
        sch.sync(state({"s": (Svc(interval=0.05), [Bk("10.0.0.1")])}))
        for _ in range(100):
            if len(results) >= 3:
                break
            await asyncio.sleep(0.02)
        await sch.stop()
        return results

    assert len(run(main())) >= 3
