"""The running loader: its state, what it publishes, and what it does with each input.

Inputs, each handled by one method that takes it as an argument:
  * healthd's Services (on_health: typed wire.ServiceState, via
    vbus.watch_properties(schema=wire.HEALTH)): kept as `health`, the last
    word of healthd, then `refresh()`;
  * the network, read every `rescan` s (`scan()` -> netinfo.NetView);
  * the operator (the Manager methods: reattach, resync, reload, set_active,
    shutdown, block_prefixes, unblock_prefixes) and SIGHUP (reload).
Every change of the maps goes through `reconcile(health, view)`: plan ->
specs -> maps (reconcile.py). Until healthd's Services have been read once,
nothing is reconciled: the maps keep what the previous loader left, so
forwarding continues across a restart even when healthd is down
(docs/data-plane.md, "From healthd's Services to the maps").

Published (org.vc5.XdpLoader1, through `publisher`, a vbus.Publisher on
wire.XDP_LOADER): Mode, Status, Active, Interfaces, Vlans, Services,
ProgramInfo, ProbeAddresses, Blocked; each mutation marks what it changed.
The block list (prefixes.py) lives in `state_file`, re-applied by restore_blocked() at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from vc5.common import bus as vbus
from vc5.common import log as vlog
from vc5.common import messages, names, sd, wire

from . import attach, netinfo, planner, reconcile
from . import prefixes as pfx
from .interfaces import Interfaces
from .probe_path import ProbePath
from .startup import StartupError, load_config

log = logging.getLogger("vc5.xdp_loader")

RESCAN_S = 2.0           # interfaces, addresses, neighbours
REPROBE_S = 15.0         # vc5 pings local backends and gateways every 15 s to keep caches warm


def _with_errors(planned, errors):
    """The plan as published: a service the data plane refused is not programmed, and says why
    (bgpd does not advertise its VIP: docs/bgp.md, "Fail-safe advertising")."""
    if not errors:
        return planned
    why = dict(errors)
    return tuple(dataclasses.replace(p, reason=f"not programmed: {why[p.key]}") if p.key in why else p
                 for p in planned)


def vlan_status(v: netinfo.VlanInfo) -> wire.VlanStatus:
    return wire.VlanStatus(int(v.vlan), str(v.prefix), v.ifname, str(v.lb_ip or ""), v.lb_mac,
                           str(v.gateway or ""), v.gateway_mac, v.reason)


class Loader:
    """State and actions of one running loader; api.py reads `publisher` and `counters()`."""

    def __init__(self, cfg, dataplane, reader=None, pin_dir="", rescan=RESCAN_S, config_path=None,
                 flows=None, state_file=None):
        self.cfg = cfg
        self.config_path = config_path or cfg.source
        self.flows = flows if flows is not None else cfg.flows_per_cpu   # what the maps were made with
        self.dp = dataplane
        self.reader = reader or netinfo.NetReader()
        self.pin_dir = pin_dir
        self.rescan_s = rescan
        self.status = "starting: loading the XDP program"
        self.active = False
        self.health = None               # tuple[wire.ServiceState]: healthd's last Services; None: never read
        self.view = netinfo.NetView()    # the last network scan (published as Vlans)
        self.planned = ()                # planner.PlannedService, as reconciled last (published as Services)
        self.program = wire.ProgramInfo()
        self.interfaces = Interfaces(cfg.interfaces, self.reader, getattr(dataplane, "xdp_fd", -1),
                                     cfg.xdp_mode)
        self.probe = ProbePath(dataplane, lambda: self.cfg.interfaces,
                               lambda: self.publisher.mark("ProbeAddresses"))
        self.learning = None             # share.service.Learning while `learn` runs (daemon sets it)
        self.sharing = None              # share.service.FlowSharing with `multicast` (daemon sets it)
        maps = getattr(dataplane, "maps", None)
        self.prefixes = pfx.Prefixes(maps, state_file) if maps and "block4" in maps else None
        self.publisher = vbus.Publisher(names.XDP_LOADER_PATH, wire.XDP_LOADER, {
            "Mode": lambda: self.interfaces.mode,
            "Status": lambda: self.status,
            "Active": lambda: bool(self.active),
            "Interfaces": lambda: self.interfaces.status,
            "Vlans": lambda: tuple(vlan_status(v) for v in self.view.vlans),
            "Services": lambda: tuple(p.to_wire() for p in self.planned),
            "ProgramInfo": lambda: self.program,
            "ProbeAddresses": lambda: self.probe.addresses,
            "Learning": lambda: bool(self.learning is not None and self.learning.active()),
            "FlowTables": lambda: self.flow_tables,
            "Blocked": lambda: self.prefixes.listed() if self.prefixes else (),
        })
        # fixed for the life of the pinned maps (their size changes only after --detach)
        tables = getattr(dataplane, "flow_tables", None)
        self.flow_tables = tuple(wire.FlowTable(name, **t) for name, t in tables().items()) if tables else ()
        self.on_stop = lambda: None      # the daemon's stop (Manager.Shutdown)
        self.detach_on_stop = False
        self.keep_marker = ""            # Shutdown(false) leaves this file for --stop-post (stop_post.py)
        self.health_watch = None         # vbus.PropertyWatch of org.vc5.Health1, set by the daemon
        self._programmed = {}            # key -> specs.ServiceSpec the maps hold (reconcile.Reconciled)
        self._reasons = {}               # (service key, address) -> reason last logged
        self._last_probe = {}            # address -> monotonic time of the last probe

    @property
    def mode(self) -> str:
        return self.interfaces.mode

    # -- read side
    def counters(self) -> wire.Counters:
        raw = self.dp.counters()
        backends = {}
        for bkey, values in raw["backends"].items():
            backends.setdefault(str(bkey.service), {})[bkey.address] = dict(values)
        totals = dict(raw["global"])
        totals["latency_ns"] = int(self.dp.latency_ns())
        if self.prefixes is not None:      # vc5's summary `blocked`: packets the block list dropped
            b = self.prefixes.totals()
            totals["blocked"] = b["blocked4"] + b["blocked6"]
        if self.sharing is not None:        # flow sharing's records (share/service.py)
            totals.update(self.sharing.totals())
        return wire.Counters(totals, dict(raw["vips"]),
                             {str(key): dict(values) for key, values in raw["services"].items()}, backends)

    def set_status(self, text):
        if text != self.status:
            self.status = text
            sd.notify_status(text)
            self.publisher.mark("Status")

    def describe_program(self):
        from . import layout

        info = attach.prog_info(self.dp.xdp_fd)
        self.program = wire.ProgramInfo(int(info.id), bytes(info.tag).hex(),
                                        info.name.decode(errors="replace"), self.pin_dir,
                                        layout.LAYOUT_VERSION, time.time_ns() // 1000)

    def start(self):
        """The kernel side of start-up (the bus name is owned): activate, attach, the probe path."""
        self.dp.refresh_watchdog()
        self._apply_flow_rate(self.cfg)
        self.dp.set_active(True)
        self.active = True
        self.view = self._read_view()
        self.interfaces.attach_all(self.view)
        self.publisher.mark("Interfaces")
        self.probe.setup()

    # -- the network and the maps
    def _untagged(self) -> bool:
        return bool(self.cfg.untagged or not (self.cfg.vlans or self.cfg.vlans6))

    def _read_view(self) -> netinfo.NetView:
        implicit = self.cfg.interfaces if not self.cfg.vlans and not self.cfg.vlans6 else ()
        return self.reader.view(self.cfg.vlans, self.cfg.vlans6, implicit)

    def scan(self) -> netinfo.NetView:
        """Read the network (netlink); publish the VLANs if they changed."""
        view = self._read_view()
        if view != self.view:
            vlans_changed = view.vlans != self.view.vlans
            self.view = view
            if vlans_changed:
                self.publisher.mark("Vlans")
        return self.view

    def refresh(self, force=False):
        """Scan, probe what is unknown, reconcile healthd's last Services with the new view."""
        view = self.scan()
        self.probe_unknown(self.health, view)
        if self.health is not None:          # never guess: keep what the maps hold
            self.reconcile(self.health, view, force=force)

    def probe_unknown(self, health, view, all_known=False):
        """Probe the neighbours whose MAC is unknown (all_known: every backend and gateway too)."""
        now = time.monotonic()
        targets = list(planner.unresolved(health or (), view))
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

    def reconcile(self, health, view, force=False) -> reconcile.Reconciled:
        """healthd's Services over `view` -> plan -> specs -> maps; publish and log the outcome."""
        r = reconcile.reconcile(self.dp, health, view, self._programmed,
                                redirect_ifindexes=self.interfaces.ifindexes(), untagged=self._untagged(),
                                force=force,
                                stateless=frozenset(s.key for s in getattr(self.cfg, "services", ())
                                                    if getattr(s, "stateless", False)))
        self._programmed = r.programmed
        planned = _with_errors(r.planned, r.errors)
        for key, why in r.errors:
            vlog.event(log, logging.ERROR, f"service {key} not programmed: {why}", service=key)
        for key in r.removed:
            vlog.event(log, logging.INFO, f"service {key} removed (healthd no longer lists it)", service=key)
        self.probe.update(r.planned, view)
        self._log_reasons(r.planned)
        if planned != self.planned:
            self.planned = planned
            self.publisher.mark("Services")
        if r.errors:
            self.set_status("running; errors: " + "; ".join(f"{key}: {why}" for key, why in r.errors))
        else:
            self.set_status(f"running: {len(r.planned)} services, {r.in_table} backends in use")
        return r

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

    def tick(self, reprobe=False):
        """One periodic round: rescan and reconcile, interfaces, the probe path, neighbours."""
        self.refresh()
        if self.interfaces.check(self.view, self.program.prog_id):
            self.publisher.mark("Interfaces")
        self.probe.ensure()
        if reprobe:
            self.probe_unknown(self.health, self.view, all_known=True)

    # -- healthd (vbus.watch_properties with schema=wire.HEALTH: typed values)
    def on_health(self, props):
        services = props.get("Services")
        if services is None:
            return
        if self.health is None:
            log.info("read %d services from %s", len(services), names.HEALTH_BUS)
        self.health = services
        self.refresh()

    def on_health_vanished(self):
        self.set_status(f"running: {names.HEALTH_BUS} is gone; keeping the last programmed services")
        log.warning("%s left the bus: keeping the %d programmed services", names.HEALTH_BUS,
                    len(self.planned))

    # -- manager actions (api.XdpLoaderManager)
    async def reattach(self, interface):
        if interface not in self.cfg.interfaces:
            raise ValueError(f"{interface} is not in the configured interfaces "
                             f"({', '.join(self.cfg.interfaces) or 'none'})")
        self.view = self._read_view()
        st = self.interfaces.attach(interface, self.view, force=True)
        self.publisher.mark("Interfaces")
        if not st.attached:
            raise RuntimeError(f"{interface}: {st.note}")

    async def resync(self):
        if self.health_watch is not None:
            await self.health_watch.refresh()
        self.probe_unknown(self.health, self.view, all_known=True)
        self.refresh(force=True)

    async def set_active(self, active):
        self.dp.set_active(bool(active))
        self.active = bool(active)
        vlog.event(log, logging.WARNING, "balancing " + ("enabled" if active else
                   "disabled by the operator: every packet goes to the kernel"), active=int(bool(active)))
        self.publisher.mark("Active")

    async def reload(self):
        """Re-read the configuration (SIGHUP, Manager.Reload): interfaces, VLANs, mode. A configuration
        that does not validate is refused with its problems and the running one stays."""
        sd.notify_reloading()
        try:
            try:
                cfg = load_config(self.config_path)
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

    async def reload_quietly(self):
        """SIGHUP: reload(), whose refusal is logged; the running configuration stays."""
        try:
            await self.reload()
        except StartupError:
            pass

    def _apply_flow_rate(self, cfg):
        """`flow_rate` (0: the program's 125,000/s per CPU), bursts of a tenth of a second."""
        rate = int(getattr(cfg, "flow_rate", 0) or 0)
        if hasattr(self.dp, "set_flow_rate"):
            self.dp.set_flow_rate(rate or None, max(1, rate // 10) if rate else None)

    def apply_config(self, cfg):
        if cfg.flows_per_cpu != self.flows:
            log.warning("flows %d -> %d takes effect only after `vc5-xdp-loader --detach` and a "
                        "start (the pinned flow table keeps its size); still %d", self.flows,
                        cfg.flows_per_cpu, self.flows)
        todo = self.interfaces.reconfigure(cfg.interfaces, cfg.xdp_mode, self.program.prog_id)
        self._apply_flow_rate(cfg)
        self.cfg = cfg
        self.refresh()
        for name in todo:
            self.interfaces.attach(name, self.view)
        self.publisher.mark("Interfaces", "Mode", "Vlans")
        if self.health is not None:
            self.reconcile(self.health, self.view, force=True)

    async def shutdown(self, detach):
        self.detach_on_stop = bool(detach)
        log.info("shutdown requested over D-Bus (detach=%s)", bool(detach))
        if not detach and self.keep_marker:
            # the process exits 0 and systemd has no restart job: --stop-post would detach
            # (docs/data-plane.md, "Restart keeps forwarding; stop detaches")
            from .stop_post import write_keep_marker
            write_keep_marker(self.keep_marker)
        # let the method reply leave before the bus connection closes
        asyncio.get_running_loop().call_later(0.2, self.on_stop)

    # -- source prefixes and the block list (prefixes.py)
    def restore_blocked(self):
        """At start: the state file's block list into the maps; an unreadable file leaves them as they are."""
        if self.prefixes is None:
            return
        try:
            n = self.prefixes.restore()
            if n:
                log.info("block list: %d prefixes from %s", n, self.prefixes.state_file)
        except pfx.PrefixError as e:
            vlog.event(log, logging.ERROR, f"block list not restored, the maps keep theirs: {e}")
        self.publisher.mark("Blocked")

    def _need_prefixes(self):
        if self.prefixes is None:
            raise RuntimeError("this data plane has no block list")
        return self.prefixes

    async def block_prefixes(self, texts):
        added = self._need_prefixes().block(texts)
        self.publisher.mark("Blocked")
        vlog.event(log, logging.WARNING, "blocked source prefixes: " + ", ".join(added),
                   prefixes=" ".join(added))

    async def unblock_prefixes(self, texts):
        removed = self._need_prefixes().unblock(texts)
        self.publisher.mark("Blocked")
        vlog.event(log, logging.WARNING, "unblocked source prefixes: " + ", ".join(removed),
                   prefixes=" ".join(removed))

    def prefix_counters(self, limit=0) -> wire.PrefixCounters:
        c = self._need_prefixes().counters(limit)
        return wire.PrefixCounters(tuple(c.ipv4), tuple(c.ipv6), c.blocked, c.totals)
