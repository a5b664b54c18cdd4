"""The cursor file and the pipeline's commit rule (at-least-once, ordered), with fake journal and endpoint."""

import asyncio
from datetime import datetime, timezone

import pytest

from vc5.notifyd import formats
from vc5.notifyd.backoff import Backoff
from vc5.notifyd.cursor import CursorError, CursorStore
from vc5.notifyd.delivery import Rejected, Retry
from vc5.notifyd.follower import Event
from vc5.notifyd.metrics import Metrics
from vc5.notifyd.pipeline import Pipeline
from vc5.notifyd.settings import Sink


def test_cursor_round_trip(tmp_path):
    store = CursorStore(str(tmp_path), "slack")
    assert store.load() is None
    store.save("s=abc;i=1")
    assert store.load() == "s=abc;i=1"
    store.save("")
    assert store.load() == ""
    assert not (tmp_path / "cursor-slack.tmp").exists()


def test_a_foreign_cursor_file_is_named(tmp_path):
    (tmp_path / "cursor-teams").write_text("garbage")
    with pytest.raises(CursorError, match="cursor-teams.*not a journal cursor"):
        CursorStore(str(tmp_path), "teams").load()


def ev(n, priority=3):
    return Event(cursor=f"s=x;i={n}", time=datetime(2026, 1, 1, tzinfo=timezone.utc), priority=priority,
                 message=f"event {n}")


class FakeFollower:
    """The journal: events 1..n; batches of at most `limit`; count_after from a cursor."""

    def __init__(self, events):
        self.events, self.pos = events, 0
        self.reader = self

    def process(self):
        pass

    def start_cursor(self):
        return ""

    def seek(self, cursor):
        self.pos = next((i + 1 for i, e in enumerate(self.events) if e.cursor == cursor), 0)

    def count_after(self, cursor, cap):
        self.seek(cursor)
        return min(cap, len(self.events) - self.pos)

    async def next_batch(self, limit, timeout=1.0):
        while self.pos >= len(self.events):
            await asyncio.sleep(3600)
        batch = self.events[self.pos:self.pos + limit]
        self.pos += len(batch)
        return batch

    async def wait(self, timeout):
        await asyncio.sleep(timeout)

    def close(self):
        pass


class FakeWebhook:
    """post(): an outcome per call from `script` ('ok', 'retry', 'reject'), then 'ok'; records accepted."""

    def __init__(self, script=()):
        self.script, self.accepted, self.calls = list(script), [], 0

    async def post(self, event):
        self.calls += 1
        outcome = self.script.pop(0) if self.script else "ok"
        if outcome == "retry":
            raise Retry("endpoint down")
        if outcome == "reject":
            raise Rejected("HTTP 400 invalid_payload")
        self.accepted.append(event.cursor)


class SavingStore(CursorStore):
    def __init__(self, directory):
        super().__init__(directory, "slack")
        self.saved = []

    def save(self, cursor):
        super().save(cursor)
        self.saved.append(cursor)


def run_pipeline(tmp_path, events, target, until, **kw):
    store = SavingStore(str(tmp_path))
    metrics = Metrics(None)
    pipeline = Pipeline(Sink("slack", ("http://x/",), "h", alert=3), target, lambda: FakeFollower(events),
                        store, Backoff(0.001, 0.002), metrics, backlog_interval=0.001, **kw)

    async def go():
        task = asyncio.create_task(pipeline.run())
        for _ in range(5000):
            if until(store, metrics):
                break
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(go())
    return store, metrics


def test_the_cursor_moves_only_after_acceptance(tmp_path):
    events = [ev(1), ev(2, priority=6), ev(3)]
    hook = FakeWebhook(["ok", "retry", "retry", "ok"])
    store, metrics = run_pipeline(tmp_path, events, hook, lambda s, m: s.load() == "s=x;i=3")
    assert hook.accepted == ["s=x;i=1", "s=x;i=3"], "event 2 is below alert: 3"
    assert store.saved == ["", "s=x;i=1", "s=x;i=3"], "no commit while event 3 was failing"
    assert metrics.get("vc5_notify_failures_total", "slack") == 2
    assert metrics.get("vc5_notify_delivered_total", "slack") == 2
    assert metrics.get("vc5_notify_up", "slack") == 1


def test_restart_resumes_after_the_saved_cursor(tmp_path):
    CursorStore(str(tmp_path), "slack").save("s=x;i=2")
    hook = FakeWebhook()
    run_pipeline(tmp_path, [ev(1), ev(2), ev(3)], hook, lambda s, m: s.load() == "s=x;i=3")
    assert hook.accepted == ["s=x;i=3"]


def test_a_rejected_event_is_skipped_and_counted(tmp_path):
    hook = FakeWebhook(["reject", "ok"])
    store, metrics = run_pipeline(tmp_path, [ev(1), ev(2)], hook, lambda s, m: s.load() == "s=x;i=2")
    assert hook.accepted == ["s=x;i=2"]
    assert metrics.get("vc5_notify_rejected_total", "slack") == 1


def test_backlog_past_the_bound_drops_the_oldest_batch(tmp_path):
    events = [ev(n) for n in range(1, 11)]
    hook = FakeWebhook(["retry"] * 40)
    store, metrics = run_pipeline(tmp_path, events, hook,
                                  lambda s, m: m.get("vc5_notify_dropped_total", "slack") and hook.accepted,
                                  max_backlog=5, batch=3)
    assert metrics.get("vc5_notify_dropped_total", "slack") % 3 == 0
    dropped = int(metrics.get("vc5_notify_dropped_total", "slack"))
    assert hook.accepted[0] == f"s=x;i={dropped + 1}", "delivery resumes right after the dropped events"


def test_metrics_textfile(tmp_path):
    m = Metrics(str(tmp_path / "m.prom"))
    m.ensure("elasticsearch")
    m.add("vc5_notify_failures_total", "elasticsearch", 3)
    m.set("vc5_notify_backlog", "elasticsearch", 7)
    m.write()
    text = (tmp_path / "m.prom").read_text()
    assert 'vc5_notify_failures_total{sink="elasticsearch"} 3\n' in text
    assert 'vc5_notify_backlog{sink="elasticsearch"} 7\n' in text
    assert "# TYPE vc5_notify_backlog gauge" in text
    assert oct((tmp_path / "m.prom").stat().st_mode & 0o777) == "0o644"


def test_kind_names():
    assert formats.level(0) == "EMERG" and formats.level(7) == "DEBUG"


def test_a_drop_mid_batch_skips_only_what_was_not_delivered(tmp_path):
    events = [ev(n) for n in range(1, 11)]
    hook = FakeWebhook(["ok"] + ["retry"] * 30)
    store, metrics = run_pipeline(tmp_path, events, hook, lambda s, m: s.load() == "s=x;i=10",
                                  max_backlog=5, batch=3)
    # 1 delivered; 2-3 (the rest of its batch) and 4-6 dropped; then 4 wait (<= 5): retried until sent.
    assert hook.accepted == ["s=x;i=1", "s=x;i=7", "s=x;i=8", "s=x;i=9", "s=x;i=10"]
    assert metrics.get("vc5_notify_dropped_total", "slack") == 5
    assert metrics.get("vc5_notify_delivered_total", "slack") == 5
