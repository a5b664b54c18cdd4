"""A restart is a reload from saved state (vc5.healthd.persist)."""

import json

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
