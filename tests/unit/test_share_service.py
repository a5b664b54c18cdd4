"""Flow sharing glue (share/sockets.py parse_group, share/service.py Learning and start_for_loader)."""

from types import SimpleNamespace

import pytest

from vc5.xdp_loader.share import service, sockets


def test_parse_group():
    assert sockets.parse_group("224.0.0.1:9999") == ("224.0.0.1", 9999)
    assert sockets.parse_group(" [ff02::1]:9999 ") == ("ff02::1", 9999)
    for bad in ("10.0.0.1:9999", "224.0.0.1", "224.0.0.1:0", "224.0.0.1:70000", "group:1", ""):
        with pytest.raises(ValueError, match="not GROUP:PORT"):
            sockets.parse_group(bad)


def test_learning_runs_for_its_seconds_from_start():
    now = [100.0]
    learning = service.Learning(30, clock=lambda: now[0])
    assert learning.active() and learning.remaining() == 30
    now[0] = 129.9
    assert learning.active()
    now[0] = 130.0
    assert not learning.active() and learning.remaining() == 0
    assert not service.Learning(0, clock=lambda: 5.0).active()


def loader():
    return SimpleNamespace(learning=None, dp=None)


def test_learn_applies_only_to_a_loader_that_made_fresh_maps():
    cfg = SimpleNamespace(learn=20, multicast=None)
    fresh, restarted = loader(), loader()
    assert service.start_for_loader(fresh, cfg, fresh_maps=True) is None     # no multicast: no sharing
    assert fresh.learning is not None and fresh.learning.active()
    service.start_for_loader(restarted, cfg, fresh_maps=False)
    assert restarted.learning is None
    none = loader()
    service.start_for_loader(none, SimpleNamespace(learn=0, multicast=None), fresh_maps=True)
    assert none.learning is None


def test_the_loader_memory_check_counts_the_shared_table():
    from vc5.common import limits
    from vc5.xdp_loader import layout

    assert limits.SHARED_MAX == layout.SHARED_MAX
    for flows, shared in ((1000, 1000), (1_000_000, layout.SHARED_MAX)):
        assert layout.map_specs(flows)["shared"].max_entries == shared
        without = (limits.flow_table_bytes(flows, 2) + limits.OTHER_MAPS_BYTES
                   + 2 * limits.OTHER_MAPS_PER_CPU_BYTES
                   + limits.PREFIX_MAPS_BYTES + 2 * limits.PREFIX_MAPS_PER_CPU_BYTES)
        assert limits.maps_bytes(flows, 2) - without == limits.shared_table_bytes(shared)
        assert limits.shared_table_bytes(262_144) == 120 * 262_144       # memlock measured


def test_totals_name_every_share_counter_and_sum_the_malformed():
    """GetCounters' totals (exported as vc5_dataplane_share_*_total): fixed names, whatever the
    sender and receiver counted; every codec reason is 'malformed'."""
    from collections import Counter

    from vc5.common import xvs_names

    sharing = service.FlowSharing(dp=None, multicast="239.255.5.5:9999")
    assert set(sharing.totals()) == set(xvs_names.SHARE_COUNTERS)
    assert not any(sharing.totals().values())          # not started: all 0
    sharing.sender = SimpleNamespace(stats=Counter(flows=40, datagrams=3, stale=2))
    sharing.receiver = SimpleNamespace(stats=Counter(ok=30, no_service=4, no_backend=1, version=2,
                                                     truncated=1, map_errors=5), datagrams=7)
    t = sharing.totals()
    assert (t["share_sent_flows"], t["share_sent_datagrams"], t["share_stale"], t["share_send_errors"]) == \
        (40, 3, 2, 0)
    assert (t["share_received_datagrams"], t["share_learned"], t["share_not_ours"], t["share_malformed"]) == \
        (7, 30, 5, 3)
