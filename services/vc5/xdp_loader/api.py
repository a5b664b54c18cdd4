"""The loader's D-Bus API: org.vc5.XdpLoader1 (read) and org.vc5.XdpLoader1.Manager.

Both interfaces live on /org/vc5/XdpLoader1. The shipped introspection XML
(vc5/dbus/org.vc5.XdpLoader1.xml) is the contract; tests compare the live
object with it.

Authorisation is the bus policy (dbus-next cannot tell who called): everyone
may read org.vc5.XdpLoader1; only root calls .Manager.

Counters are a method, GetCounters(), not a property: they change with every
packet, so a property would either lie or flood the bus with
PropertiesChanged. webd polls it (every 2 s).

Signatures (one place, mirrored by the XML):
  Interfaces   a(sisubs)        name, ifindex, mode (native|generic|""), program id, attached, note
  Vlans        a(qsssssss)      vlan id, prefix, interface, our IP, our MAC, gateway, gateway MAC, reason
  Services     a(ssqssa(ssbbssq))
               key "vip:port:proto", vip, port, protocol, reason,
               backends: address, MAC, usable (in the Maglev table), valid (pinned flows may use it),
               reason, interface, vlan
  ProgramInfo  (usssut)         program id, tag (hex), name, pin directory, layout version,
                               loaded at (µs since the epoch)
  ProbeAddresses a(sss)         VIP, backend, probe address: where healthd connects to probe the VIP
                               on that backend (health-check probe path, nat.py)
  GetCounters  -> (a{st}a{sa{st}}a{sa{st}}a{sa{sa{st}}})
               global, per VIP, per service key, per service key -> backend address; vc5 counter names
"""


from dbus_next import DBusError
from dbus_next.constants import PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method

from vc5.common import names

INTERFACES_SIG = "a(sisubs)"
VLANS_SIG = "a(qsssssss)"
BACKEND_SIG = "(ssbbssq)"
SERVICES_SIG = "a(ssqssa" + BACKEND_SIG + ")"
PROGRAM_INFO_SIG = "(usssut)"
PROBE_ADDRESSES_SIG = "a(sss)"
COUNTERS_SIG = "(a{st}a{sa{st}}a{sa{st}}a{sa{sa{st}}})"
ERROR_PREFIX = names.XDP_LOADER_BUS + ".Error."


class LoaderError(DBusError):
    def __init__(self, kind, text):
        super().__init__(ERROR_PREFIX + kind, text)


class XdpLoader(ServiceInterface):
    """org.vc5.XdpLoader1: read-only state. `source` is the daemon (see daemon.Loader).

    The daemon calls `changed(name)` after it updates what a property reads;
    the value is converted to D-Bus types here, at the edge.
    """

    def __init__(self, source):
        super().__init__(names.XDP_LOADER_IFACE)
        self._source = source

    def changed(self, *props):
        values = {p: getattr(self, "_value_" + p)() for p in props}
        self.emit_properties_changed(values)

    # -- values (plain Python -> D-Bus shapes)
    def _value_Mode(self):
        return self._source.mode

    def _value_Status(self):
        return self._source.status

    def _value_Active(self):
        return bool(self._source.active)

    def _value_Interfaces(self):
        return [[i.name, int(i.ifindex), i.mode, int(i.prog_id), bool(i.attached), i.note]
                for i in self._source.interface_status()]

    def _value_Vlans(self):
        out = []
        for v in self._source.view.vlans:
            out.append([int(v.vlan), str(v.prefix), v.ifname, str(v.lb_ip or ""), v.lb_mac,
                        str(v.gateway or ""), v.gateway_mac, v.reason])
        return out

    def _value_Services(self):
        out = []
        for s in self._source.planned:
            backends = [[b.address, b.mac, bool(b.in_table), bool(b.valid), b.reason, b.ifname, int(b.vlan)]
                        for b in s.backends]
            out.append([s.key, s.vip, int(s.port), s.protocol, s.reason, backends])
        return out

    def _value_ProgramInfo(self):
        p = self._source.program_info()
        return [int(p.prog_id), p.tag, p.name, p.pin_dir, int(p.layout_version), int(p.loaded_at_us)]

    def _value_ProbeAddresses(self):
        return [[str(v), str(b), str(a)] for v, b, a in getattr(self._source, "probe_addresses", ())]

    # -- D-Bus members
    @dbus_property(access=PropertyAccess.READ)
    def Mode(self) -> "s":  # noqa: N802,F821 (D-Bus member names and signatures)
        return self._value_Mode()

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":  # noqa: N802,F821
        return self._value_Status()

    @dbus_property(access=PropertyAccess.READ)
    def Active(self) -> "b":  # noqa: N802,F821
        return self._value_Active()

    @dbus_property(access=PropertyAccess.READ)
    def Interfaces(self) -> INTERFACES_SIG:  # noqa: N802
        return self._value_Interfaces()

    @dbus_property(access=PropertyAccess.READ)
    def Vlans(self) -> VLANS_SIG:  # noqa: N802
        return self._value_Vlans()

    @dbus_property(access=PropertyAccess.READ)
    def Services(self) -> SERVICES_SIG:  # noqa: N802
        return self._value_Services()

    @dbus_property(access=PropertyAccess.READ)
    def ProgramInfo(self) -> PROGRAM_INFO_SIG:  # noqa: N802
        return self._value_ProgramInfo()

    @dbus_property(access=PropertyAccess.READ)
    def ProbeAddresses(self) -> PROBE_ADDRESSES_SIG:  # noqa: N802
        return self._value_ProbeAddresses()

    @method()
    def GetCounters(self) -> COUNTERS_SIG:  # noqa: N802
        try:
            c = self._source.counters()
        except Exception as e:      # a map read failed: say which, never crash the loop
            raise LoaderError("Counters", f"reading the data-plane counters failed: {e}") from e
        return [c.get("global", {}), c.get("vips", {}), c.get("services", {}), c.get("backends", {})]


class XdpLoaderManager(ServiceInterface):
    """org.vc5.XdpLoader1.Manager: operator actions (root only, by bus policy)."""

    def __init__(self, controller):
        super().__init__(names.XDP_LOADER_MANAGER_IFACE)
        self._controller = controller

    async def _run(self, kind, coro):
        try:
            return await coro
        except DBusError:
            raise
        except Exception as e:
            raise LoaderError(kind, str(e)) from e

    @method()
    async def Reattach(self, interface: "s"):  # noqa: N802,F821
        """Attach the program to `interface` again (replacing in place): the NIC lost its hook."""
        await self._run("Reattach", self._controller.reattach(interface))

    @method()
    async def Resync(self):  # noqa: N802
        """Re-read healthd's Services, rescan interfaces and neighbours, reprogram every service."""
        await self._run("Resync", self._controller.resync())

    @method()
    async def Reload(self):  # noqa: N802
        """Re-read the configuration (interfaces, vlans, mode); refused with its problems if invalid."""
        await self._run("Reload", self._controller.reload())

    @method()
    async def SetActive(self, active: "b"):  # noqa: N802,F821
        """Turn balancing on or off (off: every packet goes to the kernel stack, XDP_PASS)."""
        await self._run("SetActive", self._controller.set_active(active))

    @method()
    async def Shutdown(self, detach: "b"):  # noqa: N802,F821
        """Stop the loader. detach=true also detaches XDP and removes the pinned maps (stop for good);
        detach=false keeps forwarding for a successor (as on restart)."""
        await self._run("Shutdown", self._controller.shutdown(detach))
