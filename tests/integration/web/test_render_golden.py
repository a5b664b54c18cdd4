"""The same state renders to the same bytes: /status.json, /cue.json, /lb.json, /metrics and
vc5ctl's tables, from a Snapshot built of the wire structs the daemons publish (golden_state.py).

The golden/ files were produced by the renderers of commit 36ce8be (webd/snapshot.py,
webd/render_json.py, cli/ops_cmd.py before vc5.client existed) from the same state encoded with
`to_dbus()` and decoded by that commit's positional readers; vc5ctl's BGP table has since gained
a BFD column. No bus is needed.
"""

import os

import pytest

from tests.integration.web import golden_state as g
from vc5.cli import ops_cmd
from vc5.client import status as render_status
from vc5.client.snapshot import BgpView, HealthView, XdpView, take
from vc5.common import wire
from vc5.config import load_text
from vc5.webd import metrics, render_json

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def snapshots():
    """(the full state with rates and a configuration, the same with bgpd and the loader absent)"""
    health = HealthView.from_wire(g.services(), g.vips(), 7, "/etc/vc5/vc5.yaml")
    bgp = BgpView.from_wire(g.peers(), g.ADVERTISED)
    props = g.loader_properties()
    x0, x1 = XdpView.from_properties(g.counters(0), props), XdpView.from_properties(g.counters(1), props)
    cfg = load_text(g.CONFIG, source="golden.yaml")
    _, first = take(health, bgp, x0, now=g.NOW - 2, monotonic=100.0)
    snap, _ = take(health, bgp, x1, previous=first, now=g.NOW, monotonic=102.0, started=g.NOW - 60,
                   config=cfg)
    absent, _ = take(health, None, None, now=g.NOW, started=g.NOW - 60)
    return snap, absent


def renderings() -> dict:
    snap, absent = snapshots()
    doc, adoc = render_status.status(snap), render_status.status(absent)
    return {
        "status.json": render_json.dumps(doc), "cue.json": render_json.dumps(render_json.cue(snap)),
        "lb.json": render_json.dumps(render_json.lb(snap)), "metrics.txt": metrics.render(snap),
        "absent-status.json": render_json.dumps(adoc), "absent-metrics.txt": metrics.render(absent),
        "vc5ctl-status.txt": (ops_cmd.format_status(doc) + "\n").encode(),
        "vc5ctl-services.txt": (ops_cmd.format_services(doc) + "\n").encode(),
        "vc5ctl-backends.txt": (ops_cmd.format_backends(doc, None) + "\n"
                                + ops_cmd.format_backends(doc, "192.168.101.2:53:udp") + "\n").encode(),
        "vc5ctl-bgp.txt": (ops_cmd.format_bgp(doc) + "\n").encode(),
        "vc5ctl-absent.txt": (ops_cmd.format_status(adoc) + "\n").encode(),
    }


RENDERED = renderings()


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rendering_is_byte_identical_to_the_golden_file(name):
    with open(os.path.join(GOLDEN, name), "rb") as f:
        golden = f.read()
    assert RENDERED[name] == golden, f"{name} differs from what commit 36ce8be rendered"


def test_the_views_read_what_the_bus_delivers():
    """Through the wire schemas (as vc5.common.bus decodes GetAll) the views are the same."""
    props = {"Services": [s.to_dbus() for s in g.services()], "VIPs": [v.to_dbus() for v in g.vips()],
             "Generation": 7, "ConfigSource": "/etc/vc5/vc5.yaml"}
    assert HealthView.from_properties(wire.HEALTH.decode(props)) == snapshots()[0].health
    props = {"Peers": [p.to_dbus() for p in g.peers()], "Advertised": list(g.ADVERTISED)}
    assert BgpView.from_properties(wire.BGP.decode(props)) == snapshots()[0].bgp
    lp = g.loader_properties()
    props = wire.XDP_LOADER.decode({"Services": [s.to_dbus() for s in lp["Services"]],
                                    "Interfaces": [i.to_dbus() for i in lp["Interfaces"]],
                                    "ProgramInfo": lp["ProgramInfo"].to_dbus()})
    counters = wire.Counters.from_dbus(g.counters(1).to_dbus())
    assert XdpView.from_properties(counters, props) == snapshots()[0].xdp
    assert snapshots()[0].xdp.macs["2001:db8:100::7"] == "52:54:00:00:07:07"
    assert "10.1.100.122" not in snapshots()[0].xdp.macs          # no MAC published: none shown
    assert snapshots()[0].xdp.interfaces == ("eth0", "eth1")
