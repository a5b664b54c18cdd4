"""The block list and the prefix counters through org.vc5.XdpLoader1, served by the real loader
on a private bus (root: it loads XDP in a netns): Manager.BlockPrefixes / UnblockPrefixes act on
the data plane (a backend's ping to the balancer stops, and is counted), bad prefixes are refused
by name, and the list survives a loader restart and a reboot (pins gone: re-applied from the
state file)."""

import os
import shutil
import subprocess

import pytest

from tests.integration.xdp import lab as L
from tests.integration.xdp.bus import BusThread
from tests.lib.wait import until
from vc5.common import names, wire
from vc5.xdp_loader import prefixes as px

MANAGER = names.XDP_LOADER_MANAGER_IFACE
B1 = L.BACKENDS["b1"]


@pytest.fixture
def loader(root, private_bus, monkeypatch):
    monkeypatch.setattr(L, "PREFIX", "wt-prefix")      # this test's namespaces and pins: its own names
    tmp = L.tmpdir()
    b = BusThread()
    lab = L.Lab(tmp, with_traffic=False)
    try:
        b.publish(L.health_services())
        lab.start_loader()
        L.wait_loader_ready(b, lab)
        yield lab, b
    finally:
        lab.close()
        b.close()
        shutil.rmtree(tmp, ignore_errors=True)


def state_file(lab):
    return os.path.join(lab.tmp, "state", px.STATE_NAME)


def prefixes(b, limit=0):
    [reply] = b.call("GetPrefixes", "u", [limit])
    return wire.PrefixCounters.from_dbus(reply)


def ping(lab, count=1):
    """One ping from backend b1 to the balancer's l0 (through the XDP program): True if answered."""
    p = lab.backends["b1"].run(f"ping -c {count} -W 1 -i 0.2 {L.BALANCER}", check=False)
    return p.returncode == 0


def test_block_and_unblock_act_on_the_data_plane(loader):
    lab, b = loader
    assert b.get("Blocked") == []
    assert ping(lab)
    slot = px.slot4(B1)
    assert dict(prefixes(b).ipv4).get(slot, 0) >= 1         # b1's /20 counted

    b.call("BlockPrefixes", "as", [[f"{B1}/32", "2001:db8:bad::/48"]], interface=MANAGER)
    assert b.get("Blocked") == [f"{B1}/32", "2001:db8:bad::/48"]
    assert not ping(lab)
    c = prefixes(b)
    assert c.blocked[f"{B1}/32"] >= 1 and c.blocked["2001:db8:bad::/48"] == 0
    assert c.totals["blocked4"] >= 1 and c.totals["blocked_octets"] >= 84
    [counters] = b.call("GetCounters")
    assert wire.Counters.from_dbus(counters).totals["blocked"] == c.totals["blocked4"] + c.totals["blocked6"]
    with open(state_file(lab)) as f:
        assert [line for line in f.read().splitlines() if not line.startswith("#")] == \
            [f"{B1}/32", "2001:db8:bad::/48"]

    b.call("UnblockPrefixes", "as", [[f"{B1}/32"]], interface=MANAGER)
    assert b.get("Blocked") == ["2001:db8:bad::/48"]
    assert ping(lab)
    assert "blocked source prefixes: 10.201.1.11/32" in lab.log_text()


def test_bad_prefixes_are_refused_by_name(loader):
    lab, b = loader
    b.call("BlockPrefixes", "as", [["198.51.100.0/24"]], interface=MANAGER)
    with pytest.raises(RuntimeError, match=r"Error.BlockPrefixes: '10.1.2.3/8': host bits set"):
        b.call("BlockPrefixes", "as", [["203.0.113.0/24", "10.1.2.3/8"]], interface=MANAGER)
    with pytest.raises(RuntimeError, match="'bogus': not a prefix"):
        b.call("BlockPrefixes", "as", [["bogus"]], interface=MANAGER)
    with pytest.raises(RuntimeError, match=r"Error.UnblockPrefixes: not on the block list: 203.0.113.0/24"):
        b.call("UnblockPrefixes", "as", [["203.0.113.0/24"]], interface=MANAGER)
    assert b.get("Blocked") == ["198.51.100.0/24"]            # nothing of the refused calls applied


def test_block_list_survives_restart_and_reboot(loader):
    lab, b = loader
    b.call("BlockPrefixes", "as", [[f"{B1}/32", "2001:db8::/32"]], interface=MANAGER)
    assert not ping(lab)

    lab.kill_loader()                             # crash / restart: the pinned maps stay
    lab.start_loader()
    L.wait_loader_ready(b, lab)
    assert b.get("Blocked") == [f"{B1}/32", "2001:db8::/32"]
    assert not ping(lab)

    b.call("Shutdown", "b", [True], interface=MANAGER)    # stop for good: detached, pins removed
    until(lambda: lab.loader.poll() is not None, timeout=10)
    assert not os.path.exists(lab.pin_dir) and ping(lab)
    lab.start_loader()                            # a reboot: fresh maps, the list from the state file
    L.wait_loader_ready(b, lab)
    assert b.get("Blocked") == [f"{B1}/32", "2001:db8::/32"]
    until(lambda: not ping(lab), timeout=10, message="the restored block list does not drop")
    assert f"{B1}/32" in prefixes(b).blocked


def test_unreadable_state_file_keeps_the_maps_and_says_where(loader):
    lab, b = loader
    b.call("BlockPrefixes", "as", [[f"{B1}/32"]], interface=MANAGER)
    lab.kill_loader()
    with open(state_file(lab), "a") as f:
        f.write("10.0.0.1/8\n")
    lab.start_loader()
    L.wait_loader_ready(b, lab)
    assert f"{px.STATE_NAME} line 3: '10.0.0.1/8': host bits set" in lab.log_text()
    assert b.get("Blocked") == [f"{B1}/32"]       # taken from the maps, which were left alone
    assert not ping(lab)


def vc5ctl(lab, *args):
    return subprocess.run([L.PY, "-m", "vc5.cli", *args], capture_output=True, text=True, env=lab.env(),
                          timeout=30)


def test_vc5ctl_block_commands(loader):
    lab, b = loader
    r = vc5ctl(lab, "block", "add", f"{B1}/32", "2001:db8::/32")
    assert r.returncode == 0, r.stderr
    assert f"{B1}/32" in r.stdout and "2001:db8::/32" in r.stdout
    assert b.get("Blocked") == [f"{B1}/32", "2001:db8::/32"]
    assert not ping(lab)
    r = vc5ctl(lab, "block", "list")
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith(f"{B1}/32"))
    assert r.returncode == 0 and int(row[1]) >= 1
    r = vc5ctl(lab, "block", "add", "10.1.2.3/8")
    assert r.returncode == 1 and "'10.1.2.3/8': host bits set (the prefix is 10.0.0.0/8)" in r.stderr
    r = vc5ctl(lab, "block", "del", f"{B1}/32", "2001:db8::/32")
    assert r.returncode == 0 and "block list: empty" in r.stdout
    lab.kill_loader()
    r = vc5ctl(lab, "block", "list")
    assert r.returncode == 3 and "vc5-xdp-loader is not running" in r.stderr
