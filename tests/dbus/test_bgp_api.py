"""org.vc5.Bgp1 on a private bus: the live object matches the shipped XML; RIB, reload, reset, signals.

The real vc5-bgpd runs as a subprocess with one passive peer (no network needed);
a test publisher of org.vc5.Health1 drives the VIP states.
"""

import os
import signal
import subprocess
import time

import pytest
from dbus_next import DBusError, Message, MessageType
from dbus_next.introspection import Node

from tests.integration.bgp.bus_helpers import HealthPublisher, bgp_call, bgp_property, peer_status
from tests.integration.bgp.loader_stand_in import LoaderStandIn
from tests.lib.wait import until
from vc5.common import bus as vbus
from vc5.common import names, wire

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
XML = os.path.join(REPO, "services", "vc5", "dbus", "org.vc5.Bgp1.xml")

CONFIG = """\
address: 10.0.0.2
bgp:
  as_number: 65001
  hold_time: 6
  med: {med}
  groups:
    - name: routers
      passive: true
      peers: [192.0.2.254]
"""


@pytest.fixture
def health(private_bus):
    pub = HealthPublisher()
    yield pub
    pub.close()


@pytest.fixture
def bgpd_factory(health, tmp_path):
    made = []

    def start(*args):
        cfg = tmp_path / "vc5.yaml"
        cfg.write_text(CONFIG.format(med=5))
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
        env.pop("NOTIFY_SOCKET", None)
        env.pop("VC5_BGPD_DATAPLANE", None)
        proc = subprocess.Popen(["/usr/bin/python3", "-m", "vc5.bgpd", "--config", str(cfg), "--hold-down",
                                 "0.2", "--learn", "0", "--state-dir", str(tmp_path / "state"), *args],
                                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        proc.config = cfg
        made.append(proc)
        until(lambda: _owned(health), 15, message="org.vc5.Bgp1 on the bus")
        return proc

    yield start
    for proc in made:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bgpd(bgpd_factory):
    return bgpd_factory()


def _owned(health):
    async def owner():
        return await vbus.get_name_owner(health.bus, names.BGP_BUS)
    return health._call(owner())


def _introspect(health):
    async def call():
        reply = await health.bus.call(Message(destination=names.BGP_BUS, path=names.BGP_PATH,
                                              interface="org.freedesktop.DBus.Introspectable",
                                              member="Introspect"))
        assert reply.message_type == MessageType.METHOD_RETURN
        return reply.body[0]
    return health._call(call())


def test_live_object_matches_shipped_xml(bgpd, health):
    live = _introspect(health)
    vbus.assert_matches_introspection(live, open(XML).read())
    ifaces = {i.name for i in Node.parse(live).interfaces}
    assert {names.BGP_IFACE, names.BGP_MANAGER_IFACE} <= ifaces


def test_properties_and_advertised_follow_health(bgpd, health):
    assert bgp_property(health, "AsNumber") == 65001
    assert bgp_property(health, "RouterId") == "10.0.0.2"
    assert bgp_property(health, "Generation") == 1
    until(lambda: bgp_property(health, "HealthConnected"), 5)
    p = peer_status(health, "192.0.2.254")
    assert p["state"] == "Active" and p["group"] == "routers" and p["local_asn"] == 65001
    assert set(p["counters"]) >= {"updates_in", "updates_out", "advertised", "withdrawn",
                                  "connection_attempts", "established"}

    changes = []

    async def subscribe():
        def handler(msg):
            if (msg.message_type == MessageType.SIGNAL and msg.member == "PropertiesChanged"
                    and msg.path == names.BGP_PATH and msg.body[0] == names.BGP_IFACE):
                changes.append(vbus.unwrap(msg.body[1]))
        health.bus.add_message_handler(handler)
        await vbus.call(health.bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "AddMatch", "s", [f"type='signal',path='{names.BGP_PATH}'"])
    health._call(subscribe())

    health.set({"192.0.2.1": True, "2001:db8::1": True, "192.0.2.2": False})
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32", "2001:db8::1/128"], 5)
    until(lambda: any(c.get("Advertised") == ["192.0.2.1/32", "2001:db8::1/128"] for c in changes), 5,
          message="PropertiesChanged(Advertised)")
    health.set({"192.0.2.1": False, "2001:db8::1": True})
    until(lambda: bgp_property(health, "Advertised") == ["2001:db8::1/128"], 5)


def test_reload_validates_first_and_sighup_reloads(bgpd, health):
    bgpd.config.write_text(CONFIG.format(med="lots"))
    with pytest.raises(DBusError) as e:
        bgp_call(health, "Reload")
    assert e.value.type == "org.vc5.Bgp1.Error.InvalidConfig"
    assert "bgp.med" in e.value.text and "vc5.yaml" in e.value.text
    assert "bgp.med" in bgp_property(health, "LastReloadError")
    assert bgp_property(health, "Generation") == 1

    bgpd.config.write_text(CONFIG.format(med=7))
    assert bgp_call(health, "Reload") == [2]
    assert bgp_property(health, "LastReloadError") == ""
    bgpd.send_signal(signal.SIGHUP)
    until(lambda: bgp_property(health, "Generation") == 3, 5, message="SIGHUP reload")


def test_reset_peer(bgpd, health):
    with pytest.raises(DBusError) as e:
        bgp_call(health, "ResetPeer", "s", ["198.51.100.1"])
    assert e.value.type == "org.vc5.Bgp1.Error.NotFound"
    assert bgp_call(health, "ResetPeer", "s", ["192.0.2.254"]) == []


def test_sigterm_exits_cleanly(bgpd, health):
    bgpd.send_signal(signal.SIGTERM)
    assert bgpd.wait(15) == 0
    until(lambda: _owned(health) is None, 5)


def test_healthd_restart_keeps_rib_until_it_returns(bgpd, health):
    health.set({"192.0.2.1": True, "192.0.2.2": True})
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32", "192.0.2.2/32"], 5)
    health.release_name()                                   # healthd goes away (restart)
    until(lambda: not bgp_property(health, "HealthConnected"), 5)
    assert bgp_property(health, "Advertised") == ["192.0.2.1/32", "192.0.2.2/32"]   # never guessed
    health.set({"192.0.2.1": True, "192.0.2.2": False})
    health.request_name()                                   # back, with news: bgpd reads it afresh
    until(lambda: bgp_property(health, "HealthConnected"), 5)
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)


# ---------------------------------------------------------------- fail-safe advertising, maintenance

def test_maintenance_withdraws_persists_across_a_restart_and_off_restores(bgpd_factory, health, tmp_path):
    proc = bgpd_factory()
    assert bgp_property(health, "Maintenance") == "off"
    assert bgp_property(health, "DataPlane")[0] == "ignored"
    health.set({"192.0.2.1": True})
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)
    assert bgp_call(health, "SetMaintenance", "b", [True]) == []
    until(lambda: bgp_property(health, "Maintenance") == "on", 5)       # graceful_shutdown 0: at once
    until(lambda: bgp_property(health, "Advertised") == [], 5)
    assert (tmp_path / "state" / "maintenance").exists()
    proc.terminate()
    assert proc.wait(15) == 0
    until(lambda: _owned(health) is None, 5)
    bgpd_factory()                                                      # restarted: still out
    until(lambda: bgp_property(health, "HealthConnected"), 5)
    assert bgp_property(health, "Maintenance") == "on"
    time.sleep(0.5)
    assert bgp_property(health, "Advertised") == []
    assert bgp_call(health, "SetMaintenance", "b", [False]) == []
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)
    assert bgp_property(health, "Maintenance") == "off"
    assert not (tmp_path / "state" / "maintenance").exists()


def test_maintenance_that_cannot_be_saved_is_refused(bgpd_factory, health, tmp_path):
    (tmp_path / "state" / "maintenance.tmp").mkdir(parents=True)      # the write cannot happen
    bgpd_factory()
    with pytest.raises(DBusError) as e:
        bgp_call(health, "SetMaintenance", "b", [True])
    assert e.value.type == "org.vc5.Bgp1.Error.Maintenance"
    assert bgp_property(health, "Maintenance") == "off"


def test_dataplane_required_follows_the_loader(bgpd_factory, health):
    loader = LoaderStandIn()
    try:
        bgpd_factory("--dataplane", "required", "--loader-grace", "1", "--loader-starting-max", "3")
        health.set({"192.0.2.1": True, "192.0.2.2": True})
        until(lambda: bgp_property(health, "DataPlane")[0] == "down", 5)
        time.sleep(0.5)
        assert bgp_property(health, "Advertised") == []                  # no loader: nothing offered
        held = dict(bgp_property(health, "DataPlane")[3])
        assert held == {"192.0.2.1": "org.vc5.XdpLoader1 is not on the bus",
                        "192.0.2.2": "org.vc5.XdpLoader1 is not on the bus"}
        loader.run("192.0.2.1")
        loader.own()
        until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)
        state, _detail, until_us, held = bgp_property(health, "DataPlane")
        assert state == "ready" and until_us == 0
        assert held == [["192.0.2.2", "the data plane has no service for this VIP"]]

        loader.release()                                                # absent < grace: kept
        until(lambda: bgp_property(health, "DataPlane")[0] == "holding", 5)
        assert bgp_property(health, "Advertised") == ["192.0.2.1/32"]
        until(lambda: bgp_property(health, "Advertised") == [], 3)      # absent > grace: withdrawn
        assert bgp_property(health, "DataPlane")[0] == "down"

        loader.own()                                                    # back, running
        until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)
        loader.publish(Interfaces=(wire.InterfaceStatus("eth0", 2, "", 0, False, "lost its hook"),))
        until(lambda: bgp_property(health, "Advertised") == [], 5)
        assert "eth0 has no vc5 program attached" in dict(bgp_property(health, "DataPlane")[3])["192.0.2.1"]
    finally:
        loader.close()


def test_a_restarting_loader_that_compiles_past_the_grace_keeps_the_routes(bgpd_factory, health):
    loader = LoaderStandIn()
    try:
        bgpd_factory("--dataplane", "required", "--loader-grace", "1", "--loader-starting-max", "4")
        health.set({"192.0.2.1": True})
        loader.run("192.0.2.1")
        loader.own()
        until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)
        loader.release()
        loader.publish(Status="starting: compiling the XDP program")
        loader.own(exported=False)                  # the successor owns the name, compiles
        time.sleep(2.0)                             # past the 1 s grace
        assert bgp_property(health, "Advertised") == ["192.0.2.1/32"]
        assert bgp_property(health, "DataPlane")[0] == "holding"
        loader.run("192.0.2.1")
        loader.export()
        until(lambda: bgp_property(health, "DataPlane")[0] == "ready", 5)
        assert bgp_property(health, "Advertised") == ["192.0.2.1/32"]
    finally:
        loader.close()


def _vc5ctl(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
    return subprocess.run(["/usr/bin/python3", "-m", "vc5.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_vc5ctl_maintenance_on_wait_status_off(bgpd, health):
    health.set({"192.0.2.1": True})
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)
    r = _vc5ctl("maintenance", "status")
    assert r.returncode == 0 and "maintenance: off" in r.stdout and "advertised: 192.0.2.1/32" in r.stdout
    assert "data plane: ignored" in r.stdout
    r = _vc5ctl("maintenance", "on", "--wait", "--timeout", "20")
    assert r.returncode == 0, r.stderr
    assert "maintenance: on" in r.stdout and "advertised: nothing" in r.stdout
    r = _vc5ctl("maintenance", "off", "--wait")
    assert r.returncode == 0 and "maintenance: off" in r.stdout, r.stderr
    until(lambda: bgp_property(health, "Advertised") == ["192.0.2.1/32"], 5)


def test_vc5ctl_maintenance_says_when_bgpd_is_not_running(health):
    r = _vc5ctl("maintenance", "status")
    assert r.returncode == 3 and "vc5-bgpd is not running" in r.stderr
