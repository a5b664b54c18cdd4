"""bgpd's reload parses the file off the event loop (keepalives keep going) and applies it in one step."""

import argparse
import asyncio
import time

from vc5.bgpd import daemon


class StubSpeaker:
    shutting_down = False
    sessions = {}
    rib = ()

    def __init__(self):
        self.reconfigured = []

    def reconfigure(self, bgp, learn):
        self.reconfigured.append(bgp)


class StubPublisher:
    def __init__(self):
        self.marked = set()

    def mark(self, *names):
        self.marked.update(names)


def make(tmp_path):
    d = daemon.Daemon(argparse.Namespace(config=str(tmp_path / "vc5.yaml"), learn=0))
    d.speaker, d.publisher, d.generation = StubSpeaker(), StubPublisher(), 1
    return d


def test_a_slow_parse_does_not_stall_the_loop(tmp_path, monkeypatch):
    def slow_load(path):
        time.sleep(0.5)                      # a large file: CPU in the parser
        raise daemon.config.ConfigError([f"{path}:1:1: bgp: refused"])
    monkeypatch.setattr(daemon.config, "load", slow_load)
    d = make(tmp_path)

    async def run():
        ticks = 0

        async def keepalive_timer():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        timer = asyncio.create_task(keepalive_timer())
        ok, text = await d.reload()
        timer.cancel()
        return ok, text, ticks

    ok, text, ticks = asyncio.run(run())
    assert not ok and "refused" in text
    assert ticks >= 20, f"the loop ran {ticks} times in 0.5 s: the parse blocked it"
    assert d.generation == 1 and d.speaker.reconfigured == [] and d.publisher.marked == {"LastReloadError"}


def test_a_good_file_is_applied_on_the_loop_in_one_step(tmp_path):
    (tmp_path / "vc5.yaml").write_text(
        "bgp:\n  as_number: 65001\n  router_id: 10.0.0.2\n  peers: [10.0.0.1]\n")
    d = make(tmp_path)
    ok, text = asyncio.run(d.reload())
    assert ok, text
    assert d.generation == 2 and len(d.speaker.reconfigured) == 1
    assert {"Generation", "LastReloadError", "Peers"} <= d.publisher.marked
