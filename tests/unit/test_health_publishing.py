"""healthd's publishing invariants (vc5/dbus/org.vc5.Health1.xml), with a recording stand-in for the bus.

- a transition's Transition signals, then one PropertiesChanged with Services and VIPs, go out
  in the same event-loop turn (before any further I/O);
- a storm of transitions is spaced by FLUSH_DUTY x the cost of the previous signal;
- a diagnostic-only change goes out within DIAGNOSTIC_DELAY (or with the next transition);
- Get (Publisher.published) answers what the last PropertiesChanged carried.
"""

import asyncio
import time

from tests.unit.test_health_state import Config, S
from vc5.common import wire
from vc5.healthd.checks.runner import Round
from vc5.healthd.daemon import Daemon

SVC = "192.0.2.1:80:tcp"
BKEY = ("10.0.0.1", 80)


class RecordingBus:
    """What the Publisher needs of a dbus-next MessageBus: `connected` and `send()`."""

    connected = True

    def __init__(self, cost=0.0):
        self.sent = []
        self.cost = cost            # CPU seconds each send takes (marshalling a big Services signal)

    def send(self, msg):
        end = time.thread_time() + self.cost
        while time.thread_time() < end:
            pass                    # busy: the Publisher spaces by the CPU time a flush took
        self.sent.append((asyncio.get_running_loop().time(), msg))

    def members(self):
        return [m.member for _, m in self.sent]

    def changed(self):
        return [m.body[1] for _, m in self.sent if m.member == "PropertiesChanged"]


class NoScheduler:
    def sync(self, state):
        pass


def daemon(bus, rise=1, fall=1):
    d = Daemon("test.yaml")
    d.scheduler = NoScheduler()
    d._apply(Config(services=(S("192.0.2.1", 80, "10.0.0.1", "10.0.0.2", rise=rise, fall=fall),)))
    d.publisher.attach(bus)
    d.publisher.mark(*wire.HEALTH.properties)
    d.publisher.flush()
    bus.sent.clear()
    return d


async def settled(bus, cost=0.0):
    """After the setup's flush: its storm spacing passed; each send from now on takes `cost`."""
    await asyncio.sleep(0.05)
    bus.cost = cost


async def turns(n=3):
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_transition_goes_out_in_the_same_turn_after_its_transition_signals():
    async def run():
        bus = RecordingBus()
        d = daemon(bus)
        await settled(bus)
        d.on_result(SVC, BKEY, Round(True, "OK", 1, "10.0.0.1"))       # backend, service, VIP up
        assert bus.members() == ["Transition"] * 3       # at once; PropertiesChanged coalesced after
        await turns(1)
        assert bus.members() == ["Transition"] * 3 + ["PropertiesChanged"]
        transitions = [wire.Transition.from_dbus(m.body) for _, m in bus.sent[:3]]
        assert [(t.kind, t.up) for t in transitions] == [("backend", True), ("service", True), ("vip", True)]
        [changed] = bus.changed()
        assert set(changed) == {"Services", "VIPs"}
        # Get agrees with the signal
        assert changed["Services"].value == d.publisher.published("Services")
        since = d.state.vips["192.0.2.1"].since
        assert changed["VIPs"].value == d.publisher.published("VIPs") == [["192.0.2.1", True, since]]

    asyncio.run(run())


def test_a_storm_is_spaced_by_the_duty_times_the_cost_of_the_last_signal():
    async def run():
        bus = RecordingBus()
        d = daemon(bus)
        await settled(bus, cost=0.02)
        d.on_result(SVC, BKEY, Round(True, "OK", 1, "10.0.0.1"))
        await turns()
        first = bus.sent[-1][0]
        # PropertiesChanged was the last send; Transition signals go out at once, unspaced
        assert bus.members()[-1] == "PropertiesChanged" and d.publisher.last_cost >= 0.02
        d.on_result(SVC, ("10.0.0.2", 80), Round(True, "OK", 1, "10.0.0.2"))     # right after
        await turns()
        assert len(bus.changed()) == 1, "the second PropertiesChanged did not wait"
        spacing = d.publisher.duty * 0.02
        deadline = asyncio.get_running_loop().time() + 2
        while len(bus.changed()) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        assert len(bus.changed()) == 2
        # the send itself takes `cost`: the second starts >= spacing after the first ended
        assert bus.sent[-1][0] - first >= spacing + 0.02 - 0.005

    asyncio.run(run())


def test_a_diagnostic_alone_waits_for_the_delay_or_the_next_transition():
    async def run():
        bus = RecordingBus()
        d = daemon(bus, rise=2, fall=2)
        d.publisher.lazy_delay = 0.2
        loop = asyncio.get_running_loop()
        start = loop.time()
        d.on_result(SVC, BKEY, Round(False, "syn: Timeout", 1, "10.0.0.1"))   # down stays down
        await turns()
        assert bus.sent == []
        while not bus.sent and loop.time() - start < 2:
            await asyncio.sleep(0.01)
        assert bus.members() == ["PropertiesChanged"] and loop.time() - start >= 0.19
        [changed] = bus.changed()
        assert set(changed) == {"Services"}
        backends = wire.ServiceState.from_dbus(changed["Services"].value[0]).backends
        assert backends[0].diagnostic == "syn: Timeout"

        # a lazy change travels with the next urgent one
        bus.sent.clear()
        d.on_result(SVC, ("10.0.0.2", 80), Round(False, "syn: Connection refused", 1, "10.0.0.2"))
        d.set_debug(True)
        await turns()
        assert [set(c) for c in bus.changed()] == [{"Debug", "Services"}]
        d.set_debug(False)

    asyncio.run(run())


def test_drain_and_reload_publish_before_returning():
    async def run():
        bus = RecordingBus()
        d = daemon(bus)
        assert d.drain(SVC, "10.0.0.1", True) == 1
        [changed] = bus.changed()                                   # already sent: before the reply
        assert "Services" in changed
        assert wire.ServiceState.from_dbus(changed["Services"].value[0]).backends[0].drained

        bus.sent.clear()

        def load(_path):
            return Config(services=(S("192.0.2.1", 80, "10.0.0.1", rise=1, fall=1),), source="b.yaml")

        import vc5.healthd.daemon as hd
        original, hd.load_config = hd.load_config, load
        try:
            assert await d.reload("test") == (True, "")
        finally:
            hd.load_config = original
        [changed] = bus.changed()
        assert {"Generation", "ConfigSource", "LoadedAt", "LastReloadError", "Services"} <= set(changed)
        assert d.publisher.published("Generation") == 2 and changed["Generation"].value == 2
        assert d.publisher.published("ConfigSource") == "b.yaml"

    asyncio.run(run())


def test_probe_log_entries_are_probe_rounds():
    async def run():
        d = daemon(RecordingBus())
        d.on_result(SVC, BKEY, Round(True, "OK", 3, "10.0.0.1"))
        [entry] = d.probe_log(SVC, "10.0.0.1")
        assert isinstance(entry, wire.ProbeRound)
        assert (entry.passed, entry.diagnostic, entry.took_ms, entry.target) == (True, "OK", 3, "10.0.0.1")
        assert entry.time > 0

    asyncio.run(run())
