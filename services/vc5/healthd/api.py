"""org.vc5.Health1 on the bus: declarations only (docs/health-checks.md, "On the bus").

Two interfaces on /org/vc5/Health1 (names in vc5.common.names):
  * org.vc5.Health1 (read-only, everyone): properties Services, VIPs,
    Generation, ConfigSource, LoadedAt, ProbePath, LastReloadError, Debug;
    method ProbeLog; signal Transition.
  * org.vc5.Health1.Manager (bus policy: root and the group vc5):
    Reload, Drain, Undrain, SetDebug.
The shipped introspection XML (vc5/dbus/org.vc5.Health1.xml) is tested
against the live object.

The interfaces hold no state. Property getters return what the daemon's
vc5.common.bus.Publisher last published (`published(name)`: what the last
PropertiesChanged carried), so a Get and the signal never disagree; methods ask
`controller` (the daemon), which owns the HealthState.
"""

from dbus_next import DBusError
from dbus_next.constants import ErrorType
from dbus_next.service import ServiceInterface, method

from vc5.common import names, wire
from vc5.common.bus.declare import declared_signal, read_property

from .state import BadKey


def _answer(call, *args):
    """call(*args), its failures as D-Bus errors with a one-line message (never a traceback).

    Malformed words (not an address, a port out of 0..65535) are
    org.freedesktop.DBus.Error.InvalidArgs; a well-formed key that names nothing is
    org.vc5.Health1.Error.NotFound (vc5/dbus/org.vc5.Health1.xml).
    """
    try:
        return call(*args)
    except BadKey as e:
        raise DBusError(ErrorType.INVALID_ARGS, str(e)) from None
    except KeyError as e:
        raise DBusError(names.HEALTH_ERROR_NOT_FOUND, e.args[0] if e.args else str(e)) from None


class HealthInterface(ServiceInterface):
    """org.vc5.Health1: read-only view of configuration, backend, service and VIP state.

    Every member is declared from wire.HEALTH (vc5.common.bus.declare), so its signature
    is written once and checked against the XML by tests/unit/test_wire.py.
    """

    Services = read_property(wire.HEALTH, "Services")
    VIPs = read_property(wire.HEALTH, "VIPs")
    Generation = read_property(wire.HEALTH, "Generation")
    ConfigSource = read_property(wire.HEALTH, "ConfigSource")
    LoadedAt = read_property(wire.HEALTH, "LoadedAt")
    ProbePath = read_property(wire.HEALTH, "ProbePath")
    LastReloadError = read_property(wire.HEALTH, "LastReloadError")
    Debug = read_property(wire.HEALTH, "Debug")
    # kind (backend|service|vip|vip-removed), vip, port, protocol, backend, up, human text
    Transition = declared_signal(wire.HEALTH, "Transition")

    def __init__(self, controller, publisher):
        super().__init__(names.HEALTH_IFACE)
        self._c = controller
        self.publisher = publisher

    @method()
    def ProbeLog(self, service: "s", backend: "s") -> "a" + wire.ProbeRound.SIGNATURE:
        return [r.to_dbus() for r in _answer(self._c.probe_log, service, backend)]


class ManagerInterface(ServiceInterface):
    """org.vc5.Health1.Manager: operator actions (authorised by the bus policy)."""

    def __init__(self, controller, publisher):
        super().__init__(names.HEALTH_MANAGER_IFACE)
        self._c = controller
        self._pub = publisher

    @method()
    async def Reload(self) -> "t":
        """Re-read the configuration file; returns the new Generation or fails naming every problem."""
        ok, detail = await self._c.reload(origin="D-Bus")
        if not ok:
            raise DBusError(names.HEALTH_ERROR_INVALID_CONFIG, detail)
        return self._pub.published("Generation")

    @method()
    def Drain(self, service: "s", backend: "s") -> "u":
        """Stop new flows to `backend` ("ip", "ip:port", "[v6]:port") of `service` ("vip:port:proto";
        "" = every service); returns how many (service, backend) pairs are drained now."""
        return self._drain(service, backend, True)

    @method()
    def Undrain(self, service: "s", backend: "s") -> "u":
        return self._drain(service, backend, False)

    @method()
    def SetDebug(self, enabled: "b"):
        """Log every probe result (DEBUG) when enabled."""
        self._c.set_debug(enabled)

    def _drain(self, service, backend, drained):
        return _answer(self._c.drain, service, backend, drained)
