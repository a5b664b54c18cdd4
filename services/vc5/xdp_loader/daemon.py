"""vc5-xdp-loader: the service that owns the data plane.

Start-up (in this order, each step refusing with a clear message):
  1. take the lock file (one loader per host: a second one exits at once);
  2. read the configuration (interfaces, vlans/vlans6, xdp_mode, flows);
  3. compile and load the program ONCE (DataPlane): pinned maps are re-used,
     so a restarted loader finds its services, flows and counters;
  4. attach to every configured interface, REPLACING IN PLACE whatever vc5
     program is there (no detach window: restart keeps forwarding);
  5. own org.vc5.XdpLoader1 on the system bus, notify READY=1;
  6. mirror healthd's Services (waits for org.vc5.Health1; never guesses) and
     program the maps; rescan interfaces and neighbours every `rescan` s;
  7. the health-check probe path (nat.py, docs/probe-path.md): the veth pair
     with xdp_nat, a probe address per (VIP, backend) of the programmed
     services, published as ProbeAddresses for healthd. Kept across an
     in-place restart (addresses read back from the pinned maps), torn down
     with the detach.

Until healthd's Services have been read once, the maps keep what the
previous loader left: forwarding continues unchanged across a restart even
when healthd is down.

Stop vs restart (systemd sends the same SIGTERM for both): SIGTERM never
detaches. `ExecStopPost=vc5-xdp-loader --stop-post` then decides: if the
unit's pending job is a restart (systemctl restart, package upgrade) or the
service failed (systemd's Restart= will start it again), XDP stays attached
and the successor replaces the program in place; otherwise (systemctl stop)
it detaches from every interface and removes the pinned maps. If nothing
ever runs again, the program's own watchdog passes every packet to the
kernel after 60 s without a refresh. `vc5-xdp-loader --detach` and
Manager.Shutdown(true) detach unconditionally.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

from vc5.common import log as vlog
from vc5.common import messages, names, sd, wire

from . import attach, netinfo, planner

log = logging.getLogger("vc5.xdp_loader")

DEFAULT_LOCK = "/run/vc5/xdp-loader/lock"
RESCAN_S = 2.0           # interfaces, addresses, neighbours
REPROBE_S = 15.0         # vc5 pings local backends and gateways every 15 s to keep caches warm
WATCHDOG_REFRESH_S = 5.0
RESTART_JOBS = ("restart", "try-restart", "reload-or-restart", "reload-or-try-restart")


class StartupError(Exception):
    """The loader cannot start; the message says why and what to do."""


# --------------------------------------------------------------------------- lock

def take_lock(path: str) -> int:
    """flock(LOCK_EX|LOCK_NB) on `path`; returns the fd (held for the process's life)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise StartupError(f"another vc5-xdp-loader (pid {holder}) holds the lock {path}; "
                           "only one loader may own the data plane") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# --------------------------------------------------------------------------- state records

@dataclass
class InterfaceStatus:
    name: str
    ifindex: int = 0
    mode: str = ""
    prog_id: int = 0
    attached: bool = False
    note: str = ""


@dataclass(frozen=True)
class ProgramStatus:
    prog_id: int = 0
    tag: str = ""
    name: str = ""
    pin_dir: str = ""
    layout_version: int = 0
    loaded_at_us: int = 0


def to_specs(planned_service):
    """planner.PlannedService -> dataplane.ServiceSpec (a backend whose MAC is unknown is kept,
    not valid, for its slot and counters)."""
    from .dataplane import BackendSpec, ServiceSpec
    backends = []
    for b in planned_service.backends:
        try:
            ipaddress.ip_address(b.address)
        except ValueError:
            continue            # nothing the kernel could hold; the reason is published
        backends.append(BackendSpec(
            b.address, mac=b.mac or netinfo.ZERO_MAC, src_mac=b.lb_mac or netinfo.ZERO_MAC,
            usable=b.in_table, weight=max(b.weight, 0), valid=b.valid,
            redirect_slot=b.redirect_slot if b.redirect else None, vlan=b.vlan,
            src_address=b.lb_ip or None))
    return ServiceSpec(planned_service.vip, planned_service.port, planned_service.protocol,
                       sticky=planned_service.sticky, backends=tuple(backends))


# --------------------------------------------------------------------------- the service

class Loader:
    """State and actions of one running loader; api.XdpLoader reads it."""

    def __init__(self, cfg, dataplane, reader=None, pin_dir="", rescan=RESCAN_S, config_path=None,
                 flows=None):
        self.cfg = cfg
        self.config_path = config_path or cfg.source
        self.flows = flows if flows is not None else cfg.flows_per_cpu   # what the maps were made with
        self.dp = dataplane
        self.reader = reader or netinfo.NetReader()
        self.pin_dir = pin_dir
        self.rescan_s = rescan
        self.mode = cfg.xdp_mode
        self.status = "starting"
        self.active = False
        self.view = netinfo.NetView()
        self.planned = ()
        self.health = None               # tuple[ServiceState] once healthd has been read
        self.ifaces = {name: InterfaceStatus(name) for name in cfg.interfaces}
        self.program = ProgramStatus()
        self.api = None                  # api.XdpLoader, set when exported
        self.manager_api = None
        self.stop_event = asyncio.Event()
        self.detach_on_stop = False
        self._programmed = {}            # key -> ServiceSpec last written
        self._reasons = {}               # (service key, address) -> reason last logged
        self._last_probe = {}            # address -> monotonic time of the last probe
        self._wake = asyncio.Event()
        self._health_watch = None
        self._bus = None
        self.probe_nat = None            # nat.ProbeNat once the probe path is set up
        self.probe_plumbing = None       # nat.Plumbing
        self.probe_error = ""            # why the probe path does not work ("" when it does)
        self.probe_addresses = []        # [(vip, backend, probe address)] as published

    # -- read side for the API
    def interface_status(self):
        return [self.ifaces[n] for n in self.cfg.interfaces]

    def program_info(self):
        return self.program

    def counters(self):
        raw = self.dp.counters()
        out = {"global": dict(raw["global"]), "vips": dict(raw["vips"]), "services": {}, "backends": {}}
        for key, values in raw["services"].items():
            out["services"][str(key)] = dict(values)
        for bkey, values in raw["backends"].items():
            out["backends"].setdefault(str(bkey.service), {})[bkey.address] = dict(values)
        out["global"]["latency_ns"] = int(self.dp.latency_ns())
        return out

    def _changed(self, *props):
        if self.api is not None:
            self.api.changed(*props)

    def _set_status(self, text):
        if text != self.status:
            self.status = text
            sd.notify_status(text)
            self._changed("Status")

    # -- program and interfaces
    def describe_program(self):
        info = attach.prog_info(self.dp.xdp_fd)
        from . import layout
        self.program = ProgramStatus(int(info.id), bytes(info.tag).hex(), info.name.decode(errors="replace"),
                                     self.pin_dir, layout.LAYOUT_VERSION, time.time_ns() // 1000)

    def attach_interface(self, name, force=False):
        """Attach (replace in place) on `name`; returns InterfaceStatus. Never raises for a missing NIC."""
        st = self.ifaces.setdefault(name, InterfaceStatus(name))
        itf = self.view.interfaces.get(name)
        if itf is None:
            itf = next((i for i in self.reader.interfaces() if i.name == name), None)
        if itf is None:
            st.ifindex, st.mode, st.prog_id, st.attached = 0, "", 0, False
            st.note = "no such interface (waiting for it to appear)"
            return st
        st.ifindex = itf.ifindex
        try:
            r = attach.attach(itf.ifindex, name, self.dp.xdp_fd, self.mode)
        except attach.AttachError as e:
            if st.note != str(e) or force:      # once per distinct error, not every rescan
                vlog.event(log, logging.ERROR, f"XDP not attached to {name}: {e}", interface=name)
            st.attached, st.note = False, str(e)
            return st
        st.mode, st.prog_id, st.attached, st.note = r.mode, r.prog_id, True, r.note
        how = ("replaced program %d in place" % r.previous_prog_id if r.replaced_in_place and
               r.previous_prog_id != r.prog_id else "attached")
        if r.previous_prog_id != r.prog_id or force:
            vlog.event(log, logging.INFO, f"XDP program {r.prog_id} {how} on {name} ({r.mode} mode)"
                       + (f"; {r.note}" if r.note else ""), message_id=messages.XDP_ATTACHED,
                       interface=name, mode=r.mode, prog_id=r.prog_id)
        return st

    def attach_all(self):
        for name in self.cfg.interfaces:
            self.attach_interface(name)
        self.detach_unconfigured()
        self._changed("Interfaces")

    def detach_unconfigured(self):
        """A previous loader's program left on an interface that is no longer configured (the
        configuration changed across a restart) keeps balancing with our maps: detach it."""
        from . import program

        for itf in self.reader.interfaces():
            if itf.name in self.cfg.interfaces:
                continue
            try:
                st = attach.query(itf.ifindex, self.reader.ipr)
                if not st.attached or attach.prog_name_by_id(st.prog_id) != program.XDP_MAIN:
                    continue
                gone = attach.detach(itf.ifindex, itf.name, expected_prog_id=st.prog_id, ipr=self.reader.ipr)
            except attach.AttachError as e:
                log.warning("%s", e)
                continue
            if gone:
                vlog.event(log, logging.INFO, f"XDP program {gone} detached from {itf.name} (not in the "
                           "configured interfaces)", message_id=messages.XDP_DETACHED, interface=itf.name)

    def check_interfaces(self):
        """Re-attach where an interface appeared or lost its hook; report a foreign program."""
        changed = False
        ours = self.program.prog_id
        for name in self.cfg.interfaces:
            st = self.ifaces[name]
            itf = self.view.interfaces.get(name)
            before = (st.ifindex, st.mode, st.prog_id, st.attached, st.note)
            if itf is None:
                st.ifindex, st.mode, st.prog_id, st.attached = 0, "", 0, False
                st.note = "no such interface (waiting for it to appear)"
            else:
                try:
                    cur = attach.query(itf.ifindex, self.reader.ipr)
                except attach.AttachError as e:
                    cur, st.note = None, str(e)
                if cur is not None and not cur.attached:
                    if st.attached:
                        vlog.event(log, logging.WARNING, f"{name} lost its XDP program (NIC reset or "
                                   "interface re-created): attaching again", interface=name)
                    self.attach_interface(name)
                elif cur is not None and cur.prog_id != ours:
                    st.ifindex, st.mode, st.prog_id, st.attached = itf.ifindex, cur.mode, cur.prog_id, False
                    st.note = (f"another XDP program (id {cur.prog_id}) replaced ours; "
                               "Manager.Reattach takes the interface back")
                elif cur is not None:
                    st.ifindex, st.mode, st.prog_id, st.attached = itf.ifindex, cur.mode, cur.prog_id, True
                    if st.note.startswith(("no such", "another")):
                        st.note = ""
            changed |= before != (st.ifindex, st.mode, st.prog_id, st.attached, st.note)
        if changed:
            self._changed("Interfaces")

    def detach_all(self):
        for name in self.cfg.interfaces:
            st = self.ifaces[name]
            if not st.ifindex:
                continue
            try:
                gone = attach.detach(st.ifindex, name, expected_prog_id=self.program.prog_id or None)
            except attach.AttachError as e:
                log.error("%s", e)
                continue
            if gone:
                st.attached, st.mode, st.prog_id, st.note = False, "", 0, "detached"
                vlog.event(log, logging.INFO, f"XDP program {gone} detached from {name}",
                           message_id=messages.XDP_DETACHED, interface=name)

    # -- health-check probe path (nat.py)
    def setup_probe_path(self):
        """Create (or re-assert after a restart) the veth pair and xdp_nat on it; never raises."""
        from . import nat

        try:
            if self.probe_nat is None:
                self.probe_nat = nat.ProbeNat(self.dp)
            if self.probe_plumbing is None:
                self.probe_plumbing = nat.Plumbing()
            r = self.probe_plumbing.setup(self.dp.nat_fd)
        except Exception as e:          # netlink, ioctl, attach: the balancer keeps forwarding
            if str(e) != self.probe_error:
                vlog.event(log, logging.ERROR, f"health-check probe path not available: {e}; healthd "
                           "cannot probe the VIPs on the backends")
            self.probe_error = str(e) or type(e).__name__
        else:
            if self.probe_error or r.previous_prog_id != r.prog_id:
                vlog.event(log, logging.INFO, f"health-check probe path ready: {nat.HOST_IFNAME} <-> "
                           f"{nat.PEER_IFNAME}, routes {nat.NET4} and {nat.NET6}, program {r.prog_id} "
                           f"({r.mode} mode)")
            self.probe_error = ""
            for name in self.cfg.interfaces:
                if nat.strict_rp_filter(name):
                    log.warning("net.ipv4.conf.%s.rp_filter is strict (1): IPv4 probe answers arriving "
                                "on %s are dropped by the kernel; use loose (2) or off (0)", name, name)
        self._publish_probe_addresses()

    def ensure_probe_path(self):
        """Re-create the probe path if its veth pair disappeared."""
        if self.probe_plumbing is None or self.probe_error or not self.probe_plumbing.exists():
            self.setup_probe_path()

    def update_probe_path(self, planned):
        from . import nat

        if self.probe_nat is None:
            return
        targets, _reasons = nat.targets_from_plan(planned, self.view)
        try:
            self.probe_nat.update(targets)
        except (ValueError, OSError) as e:
            vlog.event(log, logging.ERROR, f"probe addresses not programmed: {e}")
        self._publish_probe_addresses()

    def _publish_probe_addresses(self):
        addresses = self.probe_nat.addresses() if self.probe_nat is not None and not self.probe_error else []
        if addresses != self.probe_addresses:
            self.probe_addresses = addresses
            self._changed("ProbeAddresses")

    def teardown_probe_path(self):
        from . import nat

        if self.probe_nat is not None:
            try:
                self.probe_nat.clear()
            except OSError as e:
                log.warning("clearing the probe addresses: %s", e)
        if nat.teardown():
            log.info("removed the health-check probe path (%s)", nat.HOST_IFNAME)

    # -- network view and programming
    def redirect_ifindexes(self):
        return tuple(st.ifindex for st in self.ifaces.values() if st.ifindex)

    def rescan(self):
        """Re-read the network; probe what is unknown; reprogram what changed."""
        implicit = self.cfg.interfaces if not self.cfg.vlans and not self.cfg.vlans6 else ()
        view = self.reader.view(self.cfg.vlans, self.cfg.vlans6, implicit)
        if view != self.view:
            vlans_changed = view.vlans != self.view.vlans
            self.view = view
            if vlans_changed:
                self._changed("Vlans")
        self.probe_unknown()
        self.reconcile()

    def probe_unknown(self, all_known=False):
        services = self.health or ()
        now = time.monotonic()
        targets = list(planner.unresolved(services, self.view))
        if all_known:
            for s in self.planned:
                for b in s.backends:
                    if b.valid and b.lb_ip:
                        targets.append(planner.UnresolvedNeighbour(b.address, b.lb_ip, b.ifname))
        for n in targets:
            if not all_known and now - self._last_probe.get(n.address, -1e9) < self.rescan_s * 0.9:
                continue
            self._last_probe[n.address] = now
            err = netinfo.probe(n.address, n.source, n.ifname)
            if err:
                log.debug("probing %s from %s failed: %s", n.address, n.source, err)

    def reconcile(self, force=False):
        if self.health is None:
            return                      # never guess: keep what the maps hold
        planned = planner.plan(self.health, self.view, self.redirect_ifindexes(),
                               untagged=self.cfg.untagged or not (self.cfg.vlans or self.cfg.vlans6))
        self._program_redirects(planned)
        wanted = {}
        for p in planned:
            wanted[p.key] = (p, to_specs(p))
        errors = []
        for key, (p, spec) in wanted.items():
            if force or self._programmed.get(key) != spec:
                try:
                    self.dp.set_service(spec)
                    self._programmed[key] = spec
                except (ValueError, OSError) as e:
                    errors.append(f"{key}: {e}")
                    vlog.event(log, logging.ERROR, f"service {key} not programmed: {e}", service=key)
        present = {str(k): k for k in self.dp.services()}
        for key, skey in present.items():
            if key not in wanted:
                self.dp.remove_service(skey.vip, skey.port, skey.protocol)
                self._programmed.pop(key, None)
                vlog.event(log, logging.INFO, f"service {key} removed (healthd no longer lists it)",
                           service=key)
        self.update_probe_path(planned)
        self._log_reasons(planned)
        if planned != self.planned:
            self.planned = planned
            self._changed("Services")
        if errors:
            self._set_status("running; errors: " + "; ".join(errors))
        else:
            self._set_status(f"running: {len(planned)} services, "
                             f"{sum(len(p.table_members) for p in planned)} backends in use")

    def _program_redirects(self, planned):
        slots = {}
        for p in planned:
            for b in p.backends:
                if b.redirect:
                    slots[b.redirect_slot] = b.ifindex
        for slot, ifindex in slots.items():
            self.dp.set_redirect(slot, ifindex)

    def _log_reasons(self, planned):
        seen = {}
        for p in planned:
            for b in p.backends:
                seen[(p.key, b.address)] = b.reason
                if self._reasons.get((p.key, b.address)) != b.reason:
                    if b.reason and not b.in_table:
                        vlog.event(log, logging.WARNING if not b.valid else logging.INFO,
                                   f"{p.key}: backend {b.address} not used for new flows: {b.reason}",
                                   service=p.key, vip=p.vip, backend=b.address)
                    elif (p.key, b.address) in self._reasons:
                        vlog.event(log, logging.INFO, f"{p.key}: backend {b.address} in use "
                                   f"(MAC {b.mac} on {b.ifname})", service=p.key, vip=p.vip,
                                   backend=b.address)
        self._reasons = seen

    # -- healthd
    async def on_health(self, props):
        value = props.get("Services")
        if value is None:
            return
        try:
            services = wire.services_from_dbus(value)
        except (TypeError, ValueError) as e:
            log.error("org.vc5.Health1 Services could not be decoded (%s); keeping the last state", e)
            return
        first = self.health is None
        self.health = services
        if first:
            log.info("read %d services from %s", len(services), names.HEALTH_BUS)
        self.rescan()

    def on_health_vanished(self):
        self._set_status(f"{names.HEALTH_BUS} is gone; keeping the last programmed services")
        log.warning("%s left the bus: keeping the %d programmed services", names.HEALTH_BUS,
                    len(self.planned))

    # -- manager actions (api.XdpLoaderManager)
    async def reattach(self, interface):
        if interface not in self.cfg.interfaces:
            raise ValueError(f"{interface} is not in the configured interfaces "
                             f"({', '.join(self.cfg.interfaces) or 'none'})")
        self.view = self.reader.view(self.cfg.vlans, self.cfg.vlans6,
                                     self.cfg.interfaces if not (self.cfg.vlans or self.cfg.vlans6) else ())
        st = self.attach_interface(interface, force=True)
        self._changed("Interfaces")
        if not st.attached:
            raise RuntimeError(f"{interface}: {st.note}")

    async def resync(self):
        if self._health_watch is not None and self._health_watch.owner is not None:
            await self._health_watch._refresh()
        self.probe_unknown(all_known=True)
        self.rescan()
        self.reconcile(force=True)

    async def set_active(self, active):
        self.dp.set_active(bool(active))
        self.active = bool(active)
        vlog.event(log, logging.WARNING, "balancing " + ("enabled" if active else
                   "disabled by the operator: every packet goes to the kernel"), active=int(bool(active)))
        self._changed("Active")

    async def reload(self):
        """Re-read the configuration (SIGHUP, Manager.Reload): interfaces, VLANs, mode. A configuration
        that does not validate is refused with its problems and the running one stays."""
        sd.notify_reloading()
        try:
            try:
                cfg = _load_config(self.config_path)
                if not cfg.interfaces:
                    raise StartupError(f"{self.config_path}: no interfaces: the running configuration stays")
            except StartupError as e:
                vlog.event(log, logging.ERROR, f"reload refused: {e}", message_id=messages.CONFIG_REJECTED)
                raise
            self.apply_config(cfg)
            vlog.event(log, logging.INFO, f"configuration {self.config_path} reloaded",
                       message_id=messages.CONFIG_LOADED)
        finally:
            sd.notify_ready(self.status)

    def apply_config(self, cfg):
        old = self.cfg
        if cfg.flows_per_cpu != self.flows:
            log.warning("flows_per_cpu %d -> %d takes effect only after `vc5-xdp-loader --detach` and a "
                        "start (the pinned flow table keeps its size); still %d", self.flows,
                        cfg.flows_per_cpu, self.flows)
        for name in old.interfaces:
            if name not in cfg.interfaces:
                st = self.ifaces.pop(name)
                if st.ifindex:
                    try:
                        gone = attach.detach(st.ifindex, name, expected_prog_id=self.program.prog_id or None)
                    except attach.AttachError as e:
                        log.error("%s", e)
                        gone = 0
                    if gone:
                        vlog.event(log, logging.INFO, f"XDP program {gone} detached from {name} (no longer "
                                   "configured)", message_id=messages.XDP_DETACHED, interface=name)
        self.cfg = cfg
        mode_changed = cfg.xdp_mode != self.mode
        self.mode = cfg.xdp_mode
        self.rescan()
        for name in cfg.interfaces:
            if name not in self.ifaces or mode_changed:
                self.attach_interface(name)
        self._changed("Interfaces", "Mode", "Vlans")
        self.reconcile(force=True)

    async def shutdown(self, detach):
        self.detach_on_stop = bool(detach)
        log.info("shutdown requested over D-Bus (detach=%s)", bool(detach))
        # let the method reply leave before the bus connection closes
        asyncio.get_running_loop().call_later(0.2, self.stop_event.set)

    # -- the loop
    async def _periodic(self):
        next_probe = time.monotonic() + REPROBE_S
        while True:
            try:
                self.rescan()
                self.check_interfaces()
                self.ensure_probe_path()
                if time.monotonic() >= next_probe:
                    self.probe_unknown(all_known=True)
                    next_probe = time.monotonic() + REPROBE_S
            except Exception:
                log.exception("rescan failed; retrying in %.0f s", self.rescan_s)
            try:
                await asyncio.wait_for(self._wake.wait(), self.rescan_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _watchdog(self):
        while True:
            try:
                self.dp.refresh_watchdog()
            except OSError as e:
                log.error("refreshing the data-plane watchdog failed: %s", e)
            await asyncio.sleep(WATCHDOG_REFRESH_S)

    async def serve(self, bus):
        """Export the API on `bus` (we own the name), follow healthd, keep everything fresh until stopped."""
        from vc5.common import bus as vbus

        from . import api

        self._bus = bus
        _quiet_dbus_method_errors(asyncio.get_running_loop())
        self.api = api.XdpLoader(self)
        self.manager_api = api.XdpLoaderManager(self)
        self._bus.export(names.XDP_LOADER_PATH, self.api)
        self._bus.export(names.XDP_LOADER_PATH, self.manager_api)
        tasks = [asyncio.create_task(self._watchdog(), name="data-plane watchdog"),
                 asyncio.create_task(sd.watchdog(), name="systemd watchdog")]
        self.rescan()
        tasks.append(asyncio.create_task(self._periodic(), name="rescan"))
        self._set_status(f"waiting for {names.HEALTH_BUS}; forwarding with the services the maps hold")
        self._health_watch = await vbus.watch_properties(
            self._bus, names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_IFACE, self.on_health,
            on_vanished=self.on_health_vanished)
        sd.notify_ready(self.status)
        vlog.event(log, logging.INFO, f"vc5-xdp-loader ready: program {self.program.prog_id} on "
                   + ", ".join(f"{s.name} ({s.mode or 'not attached'})" for s in self.interface_status()),
                   message_id=messages.SERVICE_STARTED)
        try:
            await self.stop_event.wait()
        finally:
            sd.notify_stopping()
            vlog.event(log, logging.INFO, "vc5-xdp-loader stopping"
                       + (": detaching" if self.detach_on_stop else ": XDP stays attached for a successor"),
                       message_id=messages.SERVICE_STOPPING)
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            if self._health_watch is not None:
                try:
                    await self._health_watch.close()
                except Exception:
                    pass
            try:
                await self._bus.release_name(names.XDP_LOADER_BUS)
            except Exception:
                pass
            self._bus.disconnect()


def _quiet_dbus_method_errors(loop):
    """dbus-next 0.2.3 sends a D-Bus error reply for an exception raised by an async method, then lets
    the exception escape to the event loop, which logs it as a crash. Those are answered errors, not
    crashes: log them as one line."""
    from dbus_next import DBusError

    default = loop.get_exception_handler()

    def handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, DBusError):
            log.info("D-Bus call refused: %s", exc.text)
            return
        if default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


# --------------------------------------------------------------------------- stop / restart decision

def stop_post_decision(job_type: str | None, service_result: str | None) -> tuple[bool, str]:
    """(detach?, why) for ExecStopPost. Pure: unit-tested.

    job_type: JobType of the unit's pending job ("" or None: no job);
    service_result: $SERVICE_RESULT that systemd gives ExecStopPost.
    """
    if job_type in RESTART_JOBS:
        return False, f"the unit is being restarted (job {job_type}): XDP stays attached for the successor"
    if not job_type and service_result not in (None, "", "success"):
        return False, (f"the service ended with {service_result}; Restart= may start it again, so XDP stays "
                       "attached (the program's watchdog passes all traffic if nothing refreshes it)")
    return True, f"the unit is stopping (job {job_type or 'none'}, result {service_result or 'unknown'})"


async def _pending_job_type(unit: str) -> str | None:
    """The JobType of `unit`'s pending job from systemd over D-Bus; "" if none, None if unknown."""
    from dbus_next import Message, MessageType

    from vc5.common import bus as vbus

    try:
        b = await asyncio.wait_for(vbus.connect_system_bus(), 5)
    except Exception:
        return None
    try:
        async def call(dest, path, iface, member, sig, body):
            reply = await asyncio.wait_for(b.call(Message(destination=dest, path=path, interface=iface,
                                                          member=member, signature=sig, body=body)), 5)
            if reply.message_type == MessageType.ERROR:
                raise RuntimeError(f"{member}: {reply.error_name} {reply.body}")
            return reply.body

        sysd = "org.freedesktop.systemd1"
        [unit_path] = await call(sysd, "/org/freedesktop/systemd1", sysd + ".Manager", "GetUnit", "s", [unit])
        [job] = await call(sysd, unit_path, "org.freedesktop.DBus.Properties", "Get", "ss",
                           [sysd + ".Unit", "Job"])
        job_id, job_path = job.value
        if not job_id:
            return ""
        [jtype] = await call(sysd, job_path, "org.freedesktop.DBus.Properties", "Get", "ss",
                             [sysd + ".Job", "JobType"])
        return jtype.value
    except Exception as e:
        log.warning("could not ask systemd about %s's pending job: %s", unit, e)
        return None
    finally:
        b.disconnect()


def detach_everything(cfg_interfaces, pin_dir) -> list[str]:
    """Detach vc5's program (by name) from the configured interfaces, or from every interface when
    none are known; remove the pinned maps. Returns what was done."""
    from . import program

    done = []
    reader = netinfo.NetReader()
    try:
        interfaces = reader.interfaces()
        for itf in interfaces:
            if cfg_interfaces and itf.name not in cfg_interfaces:
                continue
            st = attach.query(itf.ifindex, reader.ipr)
            if not st.attached:
                continue
            try:
                name = attach.prog_name_by_id(st.prog_id)
            except attach.AttachError:
                continue
            if name != program.XDP_MAIN:
                if cfg_interfaces:
                    log.warning("%s carries XDP program %d (%s), not vc5's: left alone", itf.name, st.prog_id,
                                name)
                continue
            gone = attach.detach(itf.ifindex, itf.name, expected_prog_id=st.prog_id, ipr=reader.ipr)
            if gone:
                done.append(f"detached program {gone} from {itf.name}")
                vlog.event(log, logging.INFO, f"XDP program {gone} detached from {itf.name}",
                           message_id=messages.XDP_DETACHED, interface=itf.name)
    finally:
        reader.close()
    from . import nat
    if nat.teardown():
        done.append(f"removed the health-check probe path ({nat.HOST_IFNAME})")
    removed = remove_pins(pin_dir)
    if removed:
        done.append(f"removed {removed} pinned maps from {pin_dir}")
    return done


def remove_pins(pin_dir) -> int:
    from . import layout

    n = 0
    for name in layout.map_specs():
        try:
            os.unlink(os.path.join(pin_dir, name))
            n += 1
        except FileNotFoundError:
            pass
    try:
        os.rmdir(pin_dir)
    except OSError:
        pass
    return n


# --------------------------------------------------------------------------- entry point

def parse_args(argv):
    from .dataplane import default_pin_dir

    p = argparse.ArgumentParser(prog="vc5-xdp-loader", description="vc5 XDP data-plane loader")
    p.add_argument("--config", default=names.CONFIG_PATH, help="vc5.yaml (default %(default)s)")
    p.add_argument("--pin-dir", default=default_pin_dir(), help="bpffs directory of the pinned maps "
                   "(default %(default)s)")
    p.add_argument("--lock", default=DEFAULT_LOCK,
                   help="lock file: one loader per host (default %(default)s)")
    p.add_argument("--rescan", type=float, default=RESCAN_S, help="seconds between network rescans")
    p.add_argument("--flows", type=int, default=None,
                   help="flow table entries (default: flows_per_cpu from the configuration)")
    p.add_argument("--unit", default=names.UNITS[names.XDP_LOADER_BUS], help="systemd unit (for --stop-post)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--detach", action="store_true",
                        help="detach vc5's XDP program and remove the pinned maps, then exit")
    action.add_argument("--stop-post", action="store_true",
                        help="for ExecStopPost=: detach unless systemd is restarting the unit or it failed")
    return p.parse_args(argv)


def _load_config(path):
    from vc5.config import ConfigError, load

    try:
        cfg = load(path)
    except ConfigError as e:
        raise StartupError(f"configuration refused:\n{e}") from None
    except OSError as e:
        raise StartupError(f"cannot read the configuration {path}: {e.strerror or e}") from None
    return cfg


def _detach_command(args) -> int:
    lock_fd = take_lock(args.lock)
    try:
        interfaces = ()
        try:
            interfaces = _load_config(args.config).interfaces
        except StartupError as e:
            log.warning("%s; detaching vc5's program from every interface", e)
        if args.stop_post:
            job = asyncio.run(_pending_job_type(args.unit))
            detach, why = stop_post_decision(job, os.environ.get("SERVICE_RESULT"))
            log.info("%s", why)
            if not detach:
                return 0
        for line in detach_everything(interfaces, args.pin_dir) or ["nothing attached, nothing pinned"]:
            log.info("%s", line)
        return 0
    finally:
        os.close(lock_fd)


async def _reload_quietly(loader):
    try:
        await loader.reload()
    except StartupError:
        pass                    # logged by reload(); the running configuration stays


async def claim_bus_name():
    """Connect to the system bus and own org.vc5.XdpLoader1 before touching the kernel: a second
    loader must not replace the first one's program."""
    from dbus_next.constants import NameFlag, RequestNameReply

    from vc5.common import bus as vbus

    try:
        bus = await vbus.connect_system_bus()
    except Exception as e:
        raise StartupError(f"cannot connect to the system bus: {e}") from None
    reply = await bus.request_name(names.XDP_LOADER_BUS, NameFlag.DO_NOT_QUEUE)
    if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        bus.disconnect()
        raise StartupError(f"{names.XDP_LOADER_BUS} is already owned on the bus (another vc5-xdp-loader "
                           "is running)")
    return bus


def run(args) -> int:
    lock_fd = take_lock(args.lock)
    try:
        cfg = _load_config(args.config)
        if not cfg.interfaces:
            raise StartupError(f"{args.config}: no interfaces: list the NICs to attach XDP to "
                               "(interfaces: [eth0, ...])")
        return asyncio.run(_run(args, cfg))
    finally:
        os.close(lock_fd)


async def _run(args, cfg) -> int:
    from .dataplane import DataPlane

    bus = await claim_bus_name()
    sd.notify_status("compiling the XDP program")
    t0 = time.monotonic()
    try:
        dp = DataPlane(pin_dir=args.pin_dir, flows=args.flows or cfg.flows_per_cpu)
    except Exception as e:
        bus.disconnect()
        raise StartupError(f"the data plane could not be loaded: {e}") from None
    loader = Loader(cfg, dp, pin_dir=args.pin_dir, rescan=args.rescan, config_path=args.config,
                    flows=args.flows or cfg.flows_per_cpu)
    try:
        loader.describe_program()
        log.info("program %d loaded in %.1f s; pinned maps in %s hold %d services", loader.program.prog_id,
                 time.monotonic() - t0, args.pin_dir, len(dp.services()))
        dp.refresh_watchdog()
        dp.set_active(True)
        loader.active = True
        loader.view = loader.reader.view(cfg.vlans, cfg.vlans6,
                                         cfg.interfaces if not (cfg.vlans or cfg.vlans6) else ())
        loader.attach_all()
        loader.setup_probe_path()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, loader.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload_quietly(loader)))
        await loader.serve(bus)
    finally:
        if loader.detach_on_stop:
            loader.detach_all()
            loader.teardown_probe_path()
            dp.close(unpin=True)
            log.info("detached and removed the pinned maps in %s", args.pin_dir)
        else:
            dp.close()
        loader.reader.close()
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    vlog.setup("vc5-xdp-loader")
    try:
        if args.detach or args.stop_post:
            return _detach_command(args)
        return run(args)
    except StartupError as e:
        log.error("%s", e)
        return 1
