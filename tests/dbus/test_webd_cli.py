"""vc5ctl against fake daemons on a private bus: status/backends read, drain/undrain/reload call
org.vc5.Health1.Manager exactly once, clear errors when a daemon is absent, and a non-root
caller refused by the bus policy gets "permission denied" with what to do."""

import json
import os
import subprocess
import tempfile

from tests.integration.web.fakes import Fakes
from tests.lib.privatebus import private_bus as make_private_bus
from tests.lib.require import require_user

SERVICES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "services"))

# A policy like the shipped ones (those belong to the packaging and are not used here): everyone may
# read the three daemons, only root (and the group vc5) may call their .Manager interfaces.
POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy context="default">
{reads}
  </policy>
  <policy user="root">
{managers}
  </policy>
</busconfig>
"""
NAMES = ("org.vc5.Health1", "org.vc5.Bgp1", "org.vc5.XdpLoader1")


def vc5ctl(*args, user=None, env_address=None):
    env = dict(os.environ, PYTHONPATH=SERVICES)
    if env_address:
        env["DBUS_SYSTEM_BUS_ADDRESS"] = env_address
    cmd = ["/usr/bin/python3", "-m", "vc5.cli", *args]
    if user:
        cmd = ["runuser", "-u", user, "--", "env",
               f"DBUS_SYSTEM_BUS_ADDRESS={env['DBUS_SYSTEM_BUS_ADDRESS']}", f"PYTHONPATH={SERVICES}", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_status_backends_and_drain(private_bus):
    with Fakes() as fakes:
        r = vc5ctl("status", "--quick")
        assert r.returncode == 0, r.stderr
        assert "192.168.101.1:80:tcp" in r.stdout and "ESTABLISHED" in r.stdout and "warning" not in r.stdout
        r = vc5ctl("status", "--json")
        doc = json.loads(r.stdout)
        assert doc["summary"]["dsr"] is True and doc["summary"]["ingress_packets_per_second"] > 0
        assert sorted(doc["services"]) == ["192.168.101.1", "192.168.101.2"]
        r = vc5ctl("backends", "192.168.101.2:53:udp", "--quick")
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 4
        r = vc5ctl("bgp", "--quick")
        assert "10.1.100.101" in r.stdout and "rib: 192.168.101.1 192.168.101.2" in r.stdout
        assert fakes.manager_calls == []

        r = vc5ctl("drain", "10.1.100.121", "--service", "192.168.101.1:80:tcp")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "drained 10.1.100.121: 4 service/backend pairs"
        assert fakes.manager_calls == [("Health1.Drain", "192.168.101.1:80:tcp", "10.1.100.121")]
        r = vc5ctl("undrain", "10.1.100.121")
        assert r.returncode == 0 and fakes.manager_calls[-1] == ("Health1.Undrain", "", "10.1.100.121")
        r = vc5ctl("drain", "192.0.2.99")
        assert r.returncode == 1 and "no backend 192.0.2.99 in every service" in r.stderr
        r = vc5ctl("reload", "--bgp")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["vc5-healthd: configuration generation 2",
                                         "vc5-bgpd: configuration generation 2"]
        assert fakes.manager_calls[-2:] == [("Health1.Reload",), ("Bgp1.Reload",)]


def test_absent_daemons(private_bus):
    r = vc5ctl("drain", "10.1.100.121")
    assert r.returncode == 3
    assert "vc5-healthd is not running (org.vc5.Health1 is not on the bus)" in r.stderr
    assert "systemctl start vc5-healthd" in r.stderr
    r = vc5ctl("status", "--quick")
    assert r.returncode == 0 and "warning: vc5-bgpd is not running" in r.stdout
    r = vc5ctl("bgp", "--quick")
    assert r.returncode == 3 and "vc5-bgpd is not running" in r.stderr


def test_no_bus_at_all():
    r = vc5ctl("status", env_address="unix:path=/nonexistent/vc5-no-bus")
    assert r.returncode == 5 and "cannot connect to the system bus" in r.stderr


def test_non_root_gets_permission_denied_with_a_hint(root):
    require_user("nobody")
    with tempfile.TemporaryDirectory(prefix="vc5pol") as pol:
        reads = "\n".join(f'    <allow send_destination="{n}" send_interface="{i}"/>'
                          for n in NAMES for i in (n, "org.freedesktop.DBus.Properties"))
        managers = "\n".join(f'    <allow send_destination="{n}" send_interface="{n}.Manager"/>'
                             for n in NAMES)
        with open(os.path.join(pol, "vc5.conf"), "w") as f:
            f.write(POLICY.format(reads=reads, managers=managers))
        with make_private_bus(policy_dirs=[pol]) as address:
            os.chmod(os.path.dirname(address.split("path=")[1].split(",")[0]), 0o755)
            with Fakes() as fakes:
                r = vc5ctl("drain", "10.1.100.121", user="nobody")
                assert r.returncode == 4, r.stderr
                assert r.stderr.startswith("vc5ctl: permission denied:")
                assert "run it as root (e.g. sudo vc5ctl drain 10.1.100.121)" in r.stderr
                r = vc5ctl("reload", user="nobody")
                assert r.returncode == 4 and "permission denied" in r.stderr
                r = vc5ctl("block", "add", "192.0.2.0/24", user="nobody")
                assert r.returncode == 4 and "sudo vc5ctl block add" in r.stderr, r.stderr
                r = vc5ctl("block", "list", user="nobody")             # the list is for everyone
                assert r.returncode == 0 and "block list: empty" in r.stdout, r.stderr
                r = vc5ctl("status", "--quick", user="nobody")       # reading is for everyone
                assert r.returncode == 0, r.stderr
                assert "192.168.101.1:80:tcp" in r.stdout
                assert fakes.manager_calls == []
                r = vc5ctl("drain", "10.1.100.121")                  # root may
                assert r.returncode == 0 and len(fakes.manager_calls) == 1
