"""A private D-Bus daemon that stands in for the system bus in tests.

It uses the system bus's own policy defaults (deny own, allow send to
well-known interfaces) plus the policy files given, so tests exercise the
same authorisation layer as production: the bus policy. Services and clients
find it through DBUS_SYSTEM_BUS_ADDRESS.
"""

import os
import subprocess
import tempfile
from contextlib import contextmanager

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {extra}
  {includes}
</busconfig>
"""

# Tests that are not about authorisation let root own and call anything.
PERMISSIVE_ROOT = """<policy user="root"><allow own="*"/><allow send_type="method_call"/></policy>"""


class Bus:
    """A running private dbus-daemon; `address` is what clients connect to."""

    def __init__(self, policy_dirs=(), permissive_root=True):
        self._tmp = tempfile.TemporaryDirectory(prefix="vc5bus")
        sock = os.path.join(self._tmp.name, "bus")
        includes = "\n".join(f"<includedir>{d}</includedir>" for d in policy_dirs)
        conf = os.path.join(self._tmp.name, "bus.conf")
        with open(conf, "w") as f:
            f.write(CONFIG.format(socket=sock, includes=includes,
                                  extra=PERMISSIVE_ROOT if permissive_root else ""))
        self.proc = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.proc.kill()
            raise RuntimeError("dbus-daemon did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._tmp.cleanup()


@contextmanager
def private_bus(policy_dirs=(), permissive_root=True):
    """Start a private bus; yield its address with DBUS_SYSTEM_BUS_ADDRESS set."""
    bus = Bus(policy_dirs, permissive_root)
    old = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
    try:
        yield bus.address
    finally:
        if old is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = old
        bus.stop()
