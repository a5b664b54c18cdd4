"""org.vc5.Health1 on the bus: what healthd publishes and what operators may change.

Two interfaces on /org/vc5/Health1 (names in vc5.common.names):
  * org.vc5.Health1 (read-only, everyone): properties Services, VIPs,
    Generation, ConfigSource, LoadedAt, ProbePath, LastReloadError, Debug;
    method ProbeLog; signal Transition.
  * org.vc5.Health1.Manager (bus policy: root and vc5 operators):
    Reload, Drain, Undrain, SetDebug.
The shipped introspection XML (vc5/dbus/org.vc5.Health1.xml) is tested
against the live object.

The interfaces hold no state: they ask `controller` (the daemon), which owns
the HealthState. Property getters return the *published* values, i.e. what
the last PropertiesChanged carried, so Get and the signal never disagree.
"""

from dbus_next import DBusError
from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

from vc5.common import names, wire

ERROR_INVALID_CONFIG = "org.vc5.Health1.Error.InvalidConfig"
ERROR_NOT_FOUND = "org.vc5.Health1.Error.NotFound"
ERROR_FAILED = "org.vc5.Health1.Error.Failed"

# One probe-log entry: (time µs, passed, diagnostic, took_ms, probe target "addr:port" or "addr")
PROBE_LOG_SIGNATURE = "a(tbsus)"


class HealthInterface(ServiceInterface):
    """org.vc5.Health1: read-only view of configuration, backend, service and VIP state."""

    def __init__(self, controller):
        super().__init__(names.HEALTH_IFACE)
        self._c = controller

    @dbus_property(access=PropertyAccess.READ)
    def Services(self) -> wire.SERVICES_SIGNATURE:  # noqa: N802 (D-Bus member names)
        return self._c.published["Services"]

    @dbus_property(access=PropertyAccess.READ)
    def VIPs(self) -> wire.VIPS_SIGNATURE:  # noqa: N802
        return self._c.published["VIPs"]

    @dbus_property(access=PropertyAccess.READ)
    def Generation(self) -> "t":  # noqa: N802,F821
        return self._c.published["Generation"]

    @dbus_property(access=PropertyAccess.READ)
    def ConfigSource(self) -> "s":  # noqa: N802,F821
        return self._c.published["ConfigSource"]

    @dbus_property(access=PropertyAccess.READ)
    def LoadedAt(self) -> "t":  # noqa: N802,F821
        return self._c.published["LoadedAt"]

    @dbus_property(access=PropertyAccess.READ)
    def ProbePath(self) -> "s":  # noqa: N802,F821
        return self._c.published["ProbePath"]

    @dbus_property(access=PropertyAccess.READ)
    def LastReloadError(self) -> "s":  # noqa: N802,F821
        return self._c.published["LastReloadError"]

    @dbus_property(access=PropertyAccess.READ)
    def Debug(self) -> "b":  # noqa: N802,F821
        return self._c.published["Debug"]

    @method()
    def ProbeLog(self, service: "s", backend: "s") -> PROBE_LOG_SIGNATURE:  # noqa: N802,F821
        try:
            return self._c.probe_log(service, backend)
        except KeyError as e:
            raise DBusError(ERROR_NOT_FOUND, e.args[0] if e.args else str(e))

    @signal()
    def Transition(self, kind, vip, port, protocol, backend, up, text) -> "ssqssbs":  # noqa: N802,F821
        """kind (backend|service|vip|vip-removed), vip, port, protocol, backend, up, human text."""
        return [kind, vip, port, protocol, backend, up, text]


class ManagerInterface(ServiceInterface):
    """org.vc5.Health1.Manager: operator actions (authorised by the bus policy)."""

    def __init__(self, controller):
        super().__init__(names.HEALTH_MANAGER_IFACE)
        self._c = controller

    @method()
    async def Reload(self) -> "t":  # noqa: N802,F821
        """Re-read the configuration file; returns the new Generation or fails naming every problem."""
        ok, detail = await self._c.reload(origin="D-Bus")
        if not ok:
            raise DBusError(ERROR_INVALID_CONFIG, detail)
        return self._c.published["Generation"]

    @method()
    def Drain(self, service: "s", backend: "s") -> "u":  # noqa: N802,F821
        """Stop new flows to `backend` ("ip", "ip:port", "[v6]:port") of `service` ("vip:port:proto";
        "" = every service); returns how many (service, backend) pairs are drained now."""
        return self._drain(service, backend, True)

    @method()
    def Undrain(self, service: "s", backend: "s") -> "u":  # noqa: N802,F821
        return self._drain(service, backend, False)

    @method()
    def SetDebug(self, enabled: "b"):  # noqa: N802,F821
        """Log every probe result (DEBUG) when enabled."""
        self._c.set_debug(enabled)

    def _drain(self, service, backend, drained):
        try:
            return self._c.drain(service, backend, drained)
        except KeyError as e:
            raise DBusError(ERROR_NOT_FOUND, e.args[0] if e.args else str(e))
