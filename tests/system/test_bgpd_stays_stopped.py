"""A stopped vc5-bgpd stays stopped; maintenance survives a restart (issue 12, docs/bgp.md).

Runs in the session's booted container (conftest `machine`), before test_installed.py,
and leaves vc5-bgpd and its socket running as it found them.
"""

from __future__ import annotations

import time

from tests.lib.wait import until
from tests.system.conftest import needs_service

BUSCTL_GET = "busctl get-property org.vc5.Bgp1 /org/vc5/Bgp1 org.vc5.Bgp1"
CONNECT_179 = ("/usr/bin/python3 -c \"import socket; s = socket.socket(); s.settimeout(2); "
               "print(s.connect_ex(('127.0.0.1', 179)))\"")


def _active(machine, unit) -> str:
    return machine.run(f"systemctl is-active {unit}").stdout.strip()


def _start_bgpd(machine):
    r = machine.run("systemctl start vc5-bgpd.service")
    assert r.returncode == 0, r.stderr + machine.run("journalctl --no-pager -n 30 -u vc5-bgpd").stdout
    until(lambda: _active(machine, "vc5-bgpd.service") == "active", timeout=60, interval=0.2)


@needs_service("bgpd")
def test_stop_then_a_tcp_connect_and_a_property_read_leave_it_stopped(machine):
    _start_bgpd(machine)
    assert _active(machine, "vc5-bgpd.socket") == "active"
    r = machine.run("systemctl stop vc5-bgpd.service")
    assert r.returncode == 0, r.stderr
    # the listener went with the service
    assert _active(machine, "vc5-bgpd.socket") == "inactive"
    connect = machine.run(CONNECT_179).stdout.strip()
    assert connect != "0", "something still accepts on port 179"
    for user in (None, "nobody"):
        r = machine.run(f"{BUSCTL_GET} Advertised", user=user)
        assert r.returncode != 0, f"org.vc5.Bgp1 answered ({user or 'root'}): {r.stdout}"
    time.sleep(3)
    assert _active(machine, "vc5-bgpd.service") == "inactive"
    assert _active(machine, "vc5-bgpd.socket") == "inactive"
    names = machine.run("busctl list --no-pager --no-legend --activatable").stdout
    assert "org.vc5.Bgp1" not in names
    # start brings both back
    _start_bgpd(machine)
    assert _active(machine, "vc5-bgpd.socket") == "active"


@needs_service("bgpd")
def test_maintenance_survives_a_restart_until_off(machine):
    _start_bgpd(machine)
    r = machine.run("vc5ctl maintenance on", user="nobody")
    assert r.returncode == 4 and "permission denied" in r.stderr, r.stdout + r.stderr
    r = machine.run("vc5ctl maintenance on --wait --timeout 60")
    assert r.returncode == 0 and "maintenance: on" in r.stdout, r.stdout + r.stderr
    assert machine.run("test -f /var/lib/vc5-bgpd/maintenance").returncode == 0
    r = machine.run("systemctl restart vc5-bgpd.service")
    assert r.returncode == 0, r.stderr
    until(lambda: machine.run(f"{BUSCTL_GET} Maintenance").stdout.strip() == 's "on"', timeout=60,
          interval=0.3, message="maintenance not on after a restart")
    r = machine.run("vc5ctl maintenance status", user="nobody")
    assert r.returncode == 0 and "maintenance: on" in r.stdout and "data plane:" in r.stdout, r.stderr
    r = machine.run("vc5ctl maintenance off")
    assert r.returncode == 0 and "maintenance: off" in r.stdout, r.stdout + r.stderr
    assert machine.run("test -e /var/lib/vc5-bgpd/maintenance").returncode != 0
