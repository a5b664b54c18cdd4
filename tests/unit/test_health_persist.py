"""A restart is a reload from saved state (vc5.healthd.persist)."""

import json
import time

import pytest

from vc5.config import load_text
from vc5.healthd import persist
from vc5.healthd.state import HealthState

CONFIG = """
vlans: {1: 10.0.0.0/24}
services:
  - virtual: 192.0.2.1
    servers: [10.0.0.1, 10.0.0.2]
    policy: {http: }
"""
NOW = 1_700_000_000_000_000
KEY = "192.0.2.1:80:tcp"


def up_state():
    cfg = load_text(CONFIG)
    state = HealthState.from_config(cfg, NOW)
    for _ in range(5):
        for bk in state.services[KEY].backends:
            state.record(KEY, bk, True, "OK", 1, NOW)
    assert state.vips["192.0.2.1"].up
    return cfg, state


def test_restart_keeps_every_verdict_window_since_and_drain(tmp_path):
    cfg, state = up_state()
    state.set_drained(KEY, ("10.0.0.2", 80), True, NOW)
    path = str(tmp_path / "state.json")
    persist.save(path, state, NOW + 1)
    prior, why = persist.load(path, NOW + 2_000_000, 60)
    assert why is None
    restarted, events = prior.applied(cfg, NOW + 3_000_000)
    svc = restarted.services[KEY]
    assert [b.up for b in svc.backends.values()] == [True, True]
    assert svc.backends[("10.0.0.2", 80)].drained
    assert svc.up and restarted.vips["192.0.2.1"].up
    assert restarted.vips["192.0.2.1"].since == state.vips["192.0.2.1"].since
    assert list(svc.backends[("10.0.0.1", 80)].hyst.window) == list(state.services[KEY].backends[
        ("10.0.0.1", 80)].hyst.window)
    assert restarted.generation == state.generation + 1
    assert not [e for e in events if e.kind == "vip"]          # no VIP transition: nothing withdrawn


def test_without_a_snapshot_a_restart_starts_down_as_vc5(tmp_path):
    cfg, _ = up_state()
    prior, why = persist.load(str(tmp_path / "missing.json"), NOW, 60)
    assert prior is None and why is None
    fresh = HealthState().applied(cfg, NOW)[0]
    assert not fresh.vips["192.0.2.1"].up


def test_stale_or_broken_snapshots_are_ignored_with_a_reason(tmp_path):
    _, state = up_state()
    path = str(tmp_path / "state.json")
    persist.save(path, state, NOW)
    prior, why = persist.load(path, NOW + 61_000_000, 60)
    assert prior is None and "61 s old" in why
    with open(path, "w") as f:
        f.write("{not json")
    prior, why = persist.load(path, NOW, 60)
    assert prior is None and "ignored" in why
    with open(path, "w") as f:
        json.dump({"format": 99, "saved_at": NOW}, f)
    prior, why = persist.load(path, NOW, 60)
    assert prior is None and "format" in why


def test_a_backend_new_since_the_snapshot_starts_down(tmp_path):
    cfg, state = up_state()
    path = str(tmp_path / "state.json")
    persist.save(path, state, NOW)
    prior, _ = persist.load(path, NOW, 60)
    bigger = load_text(CONFIG.replace("10.0.0.2]", "10.0.0.2, 10.0.0.3]"))
    restarted, _ = prior.applied(bigger, NOW)
    ups = {bk[0]: b.up for bk, b in restarted.services[KEY].backends.items()}
    assert ups == {"10.0.0.1": True, "10.0.0.2": True, "10.0.0.3": False}


# ---- hostile or garbled snapshots: ignored with a reason, never an exception ----------------------

def saved(tmp_path):
    _, state = up_state()
    path = str(tmp_path / "state.json")
    persist.save(path, state, NOW)
    with open(path) as f:
        return path, json.load(f)


def backend0(snap):
    return snap["services"][KEY]["backends"][0]


BAD_SHAPES = {
    "services as a list": lambda s: s.update(services=[s["services"][KEY]]),
    "vips as a list": lambda s: s.update(vips=["192.0.2.1"]),
    "backends as an object": lambda s: s["services"][KEY].update(backends={"a": 1}),
    "a backend as a list": lambda s: s["services"][KEY]["backends"].__setitem__(0, [1, 2]),
    "a service as a string": lambda s: s["services"].__setitem__(KEY, "up"),
    "rise 1e9": lambda s: backend0(s).update(rise=1e9),
    "rise 10**9": lambda s: backend0(s).update(rise=10 ** 9),
    "rise 0": lambda s: backend0(s).update(rise=0),
    "rise true": lambda s: backend0(s).update(rise=True),
    "fall above rise": lambda s: backend0(s).update(fall=6),
    "port 70000": lambda s: backend0(s).update(port=70000),
    "port as text": lambda s: backend0(s).update(port="80"),
    "address not an IP": lambda s: backend0(s).update(address="[zz]"),
    "window too long": lambda s: backend0(s).update(window=[True] * 6),
    "window of numbers": lambda s: backend0(s).update(window=[1, 1, 1, 1, 1]),
    "window nested": lambda s: backend0(s).update(window=[[[[[True]]]]]),
    "up as a string": lambda s: backend0(s).update(up="false"),
    "since negative": lambda s: backend0(s).update(since=-1),
    "since huge": lambda s: backend0(s).update(since=2 ** 80),
    "diagnostic huge": lambda s: backend0(s).update(diagnostic="x" * 100_000),
    "diagnostic a number": lambda s: backend0(s).update(diagnostic=5),
    "drained missing": lambda s: backend0(s).pop("drained"),
    "generation a float": lambda s: s.update(generation=1.5),
    "generation negative": lambda s: s.update(generation=-3),
    "vip since text": lambda s: s["vips"]["192.0.2.1"].update(since="now"),
    "format true": lambda s: s.update(format=True),
}


@pytest.mark.parametrize("name", sorted(BAD_SHAPES))
def test_each_bad_shape_is_ignored_with_a_reason(tmp_path, name):
    path, snap = saved(tmp_path)
    BAD_SHAPES[name](snap)
    with open(path, "w") as f:
        json.dump(snap, f)
    prior, why = persist.load(path, NOW, 60)
    assert prior is None and why.startswith(f"saved state {path} ignored: "), why
    assert len(why) < 300


@pytest.mark.parametrize("text", [
    "[" * 200_000 + "]" * 200_000,                           # deeper than the parser recurses
    '{"saved_at": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "[]", "null", "5", '"text"',
    '{"format": 1, "saved_at": NaN}', '{"format": 1, "saved_at": Infinity}',
    '{"format": 1, "saved_at": 1e400}',
])
def test_garbled_json_is_ignored_with_a_reason(tmp_path, text):
    path = str(tmp_path / "state.json")
    with open(path, "w") as f:
        f.write(text)
    prior, why = persist.load(path, NOW, 60)
    assert prior is None and "ignored" in why, why


def test_an_oversized_file_is_not_read_whole(tmp_path, monkeypatch):
    path, _ = saved(tmp_path)
    monkeypatch.setattr(persist, "MAX_BYTES", 100)
    prior, why = persist.load(path, NOW, 60)
    assert prior is None and "larger than 100 bytes" in why


def test_binary_garbage_is_ignored(tmp_path):
    path = str(tmp_path / "state.json")
    with open(path, "wb") as f:
        f.write(b"\xff\xfe\x00garbage")
    prior, why = persist.load(path, NOW, 60)
    assert prior is None and "ignored" in why


def test_a_bad_snapshot_starts_the_daemon_fresh_with_a_warning(tmp_path, caplog):
    from vc5.healthd.daemon import Daemon
    path, snap = saved(tmp_path)
    snap["services"], snap["saved_at"] = [1], time.time_ns() // 1000
    with open(path, "w") as f:
        json.dump(snap, f)
    d = Daemon("/nonexistent.yaml", state_file=path)
    d._restore_state()
    assert d.state.generation == 0 and not d.state.services
    assert "ignored" in caplog.text and "starting as a new balancer" in caplog.text
