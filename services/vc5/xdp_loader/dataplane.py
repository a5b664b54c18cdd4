"""The data plane API: compile and load the XDP program, keep its pinned maps,
program services and read counters. The xdp-loader service is its only user;
it attaches `xdp_fd` to interfaces itself (this module never touches links).

    from vc5.xdp_loader.dataplane import DataPlane, ServiceSpec, BackendSpec

    dp = DataPlane(pin_dir=default_pin_dir(), flows=65536, watchdog=True)
        # compiles bpf/vc5_xdp.c (~0.6 s, in a child process unless
        # compile_in_child=False: bcc/LLVM would add ~120 MB of RSS here),
        # creates or re-uses the maps pinned in pin_dir, refuses (LayoutError)
        # a pinned map whose type/key/value/max_entries/flags differ, loads
        # and verifies "xdp_main" and "xdp_pass".
        # A restarted loader gets the same flows, counters, services, settings.
    dp.xdp_fd          # program fd to attach (libbpf bpf_xdp_attach, pyroute2 ...)
    dp.xdp_function    # bcc function object for BPF.attach_xdp (compile_in_child=False only)
    dp.pass_fd         # fd of "xdp_pass" (always XDP_PASS: for veth peers in native mode)
    dp.nat_fd          # fd of "xdp_nat" (health-check probe path: vc5.xdp_loader.nat)
    dp.set_active(True)          # False (the state of fresh maps): XDP_PASS everything
    dp.refresh_watchdog()        # call at least every watchdog/2 s; if user space stays
                                 # silent for `watchdog_s` (60 s) the program PASSes everything
    dp.set_service(ServiceSpec("192.0.2.1", 80, "tcp", sticky=False, stateless=False, backends=[
        BackendSpec("10.1.0.10", mac="02:00:00:00:00:10", src_mac="02:00:00:00:00:01",
                    in_table=True, valid=True, weight=1, redirect_slot=None, vlan=0,
                    method="l2", tunnel_port=0, src_address=None, no_checksum=False, mtu=0)]))
        # method ipip/gre/fou/gue: encapsulated to the backend (outer family = its
        # family, outer source = src_address, mac = next hop: gateway if routed);
        # mtu: the egress MTU (too big after encapsulation -> ICMP to the client).
        # builds the Maglev table (vc5.maglev, vc5-compatible) from the backends
        # in_table and replaces the whole table with ONE hash-map update:
        # a packet sees the old or the new table, never a mix.
    dp.remove_service("192.0.2.1", 80, "tcp")
    dp.services()                # [ServiceKey(vip, port, protocol)]
    dp.set_redirect(slot, ifindex) ; dp.clear_redirect(slot)   # tx_port devmap
    dp.set_pmtu_rate(per_second, burst)   # relayed ICMP too-big limit per CPU (None: 1000/s, 100)
    dp.set_flow_rate(per_second, burst)   # new flows stored per CPU (None: 125,000/s, 12,500)
    dp.roll_sessions()           # every 30 s: `current` = flows of the last era; dp.flow_tables(): sizes
    dp.counters()                # see DataPlane.counters
    dp.latency_ns()              # mean processing ns per packet since the maps were created
    dp.close(unpin=False)        # unpin=True also removes the pinned maps

Backend states (BackendSpec: in_table, valid, absent): see specs.py. A
backend absent from the spec is removed: its flows re-select through Maglev on
their next packet (for TCP the new backend answers with a RST, so the client
learns at once; vc5 drops them with err_backend_invalid). Its counters are
deleted, as in vc5.
Each (service, backend) pair has a record (backends[pair]) with a random
non-zero cookie; flow entries store (pair, cookie), so a flow-table hit needs
no service lookup. A backend keeps its pair (and its flows) across updates
as long as it stays in the service, even if its MAC changes; the record is
then rewritten in place (a packet racing that write may see a mix of the old
and new MAC: at worst one frame lost, never another backend).

Errors: ValueError (bad spec, naming service and backend), LayoutError (pinned
map mismatch), program.ProgramError (compile/verify), OSError (map syscalls).
Methods are thread-safe (one lock). set_service costs ~2-6 ms, nearly all of
it building the Maglev table in Python (bench/dataplane.py).
"""

from __future__ import annotations

import ctypes as ct
import os
import threading
import time
from dataclasses import dataclass

from ..common import names
from ..common.capacity import NO_PAIR
from . import counters as ctr
from . import flowstate, layout, program
from .layout import LayoutError  # noqa: F401  (re-exported for callers)
from .specs import (BackendKey, BackendSpec, ServiceKey, ServiceSpec, backend_record,  # noqa: F401
                    service_key, validate_backends)

__all__ = ["DataPlane", "ServiceSpec", "BackendSpec", "ServiceKey", "BackendKey", "LayoutError",
           "default_pin_dir"]

WATCHDOG_S = 60.0


def default_pin_dir() -> str:
    return f"{names.PIN_DIR}/v{layout.LAYOUT_VERSION}"


def _monotonic_ns() -> int:
    # bpf_ktime_get_ns() is CLOCK_MONOTONIC.
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


@dataclass
class _PairState:
    pair: int          # backends[] / be_stats[] index
    cookie: int
    record: bytes      # the record as last written (rewritten only when it changes)


@dataclass
class _ServiceState:
    svc_index: int
    vip_index: int
    generation: int
    backends: dict[str, _PairState]


class DataPlane:
    """See the module docstring. One instance per process and pin directory."""

    def __init__(self, pin_dir: str | None = None, flows: int = layout.DEFAULT_FLOWS,
                 watchdog: bool = True, watchdog_s: float = WATCHDOG_S, compile_in_child: bool = True):
        self.pin_dir = (pin_dir or default_pin_dir()).rstrip("/")
        self.flows_size = int(flows)
        self._lock = threading.RLock()
        self._bpf = None
        self._own_fds: list[int] = []
        _require_bpffs(self.pin_dir)
        os.makedirs(self.pin_dir, exist_ok=True)
        self.ncpus = layout.possible_cpus()
        self.specs = layout.map_specs(self.flows_size)
        #: name -> layout.MapHandle (for tests and tools; the API above is the contract)
        self.maps: dict[str, layout.MapHandle] = {}
        #: bcc function objects (in-process build only; None otherwise)
        self.xdp_function = self.pass_function = self.nat_function = None
        try:
            if compile_in_child:
                # bcc/LLVM never enter this process: the child compiles, checks, loads, pins.
                progs = program.build_in_child(self.pin_dir, self.flows_size)
                self._own_fds.extend(progs.values())
                self.xdp_fd, self.pass_fd = progs[program.XDP_MAIN], progs[program.XDP_PASS]
                self.nat_fd = progs[program.XDP_NAT]
                for name, spec in self.specs.items():
                    fd = program.obj_get(f"{self.pin_dir}/{name}")
                    self._own_fds.append(fd)
                    layout.check_pinned_layout(spec, fd, f"{self.pin_dir}/{name}")
                    self.maps[name] = layout.MapHandle(spec, fd, self.ncpus)
            else:
                self._bpf = program.compile(self.pin_dir, self.flows_size)
                for name, spec in self.specs.items():
                    fd = self._bpf.get_table(name.encode()).map_fd
                    layout.check_pinned_layout(spec, fd, f"{self.pin_dir}/{name}")
                    self.maps[name] = layout.MapHandle(spec, fd, self.ncpus)
                self.xdp_function = program.load_xdp(self._bpf, program.XDP_MAIN)
                self.xdp_fd = self.xdp_function.fd
                self.pass_function = program.load_xdp(self._bpf, program.XDP_PASS)
                self.pass_fd = self.pass_function.fd
                self.nat_function = program.load_xdp(self._bpf, program.XDP_NAT)
                self.nat_fd = self.nat_function.fd
        except BaseException:
            self._release()
            raise
        self.set_watchdog(watchdog_s if watchdog else None)
        self._services: dict[ServiceKey, _ServiceState] = {}
        self._vips: dict[str, int] = {}      # VIP -> vip_index
        self._current: dict[int, int] = {}   # pair -> flows seen in the last era (roll_sessions)
        self._recover()

    def _release(self) -> None:
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
        for fd in self._own_fds:
            os.close(fd)
        self._own_fds = []

    # -- settings ---------------------------------------------------------

    def _settings(self) -> layout.Settings:
        return self.maps["settings"].lookup(layout.U32(0))

    def _write_settings(self, s: layout.Settings) -> None:
        self.maps["settings"].update(layout.U32(0), s)

    def set_active(self, active: bool) -> None:
        """Inactive (fresh maps): every packet is passed to the kernel."""
        with self._lock:
            s = self._settings()
            s.active = 1 if active else 0
            s.refreshed_ns = _monotonic_ns()
            self._write_settings(s)

    def active(self) -> bool:
        return bool(self._settings().active)

    def set_watchdog(self, seconds: float | None) -> None:
        """PASS everything when not refreshed for `seconds`; None = off."""
        with self._lock:
            s = self._settings()
            s.watchdog_ns = 0 if not seconds else int(seconds * 1e9)
            s.refreshed_ns = _monotonic_ns()
            self._write_settings(s)

    def refresh_watchdog(self, at_ns: int | None = None) -> None:
        """Tell the program that user space is alive (at_ns: for tests)."""
        with self._lock:
            s = self._settings()
            s.refreshed_ns = _monotonic_ns() if at_ns is None else at_ns
            self._write_settings(s)

    def set_pmtu_rate(self, per_second: float | None = None, burst: int | None = None) -> None:
        """Rate limit of ICMP too-big messages relayed to backends, per CPU
        (None: the program's defaults, 1000/s in bursts of 100)."""
        with self._lock:
            s = self._settings()
            s.pmtu_interval_ns = 0 if not per_second else max(1, int(1e9 / per_second))
            s.pmtu_burst = burst or 0
            self._write_settings(s)

    def set_flow_rate(self, per_second: float | None = None, burst: int | None = None) -> None:
        flowstate.set_rate(self, per_second, burst)

    def flow_tables(self) -> dict[str, dict[str, int]]:
        return layout.flow_table_memory(self.maps)      # the kernel's figures per table

    def roll_sessions(self) -> None:    # every flowstate.ERA_S: `current` = flows of the last era
        self._current = flowstate.roll_era(self)

    # -- redirect ---------------------------------------------------------

    def set_redirect(self, slot: int, ifindex: int) -> None:
        if not 0 <= slot < layout.REDIRECT_SLOTS:
            raise ValueError(f"redirect slot {slot} is not in 0..{layout.REDIRECT_SLOTS - 1}")
        self.maps["tx_port"].update(layout.U32(slot), layout.IfIndex(ifindex))

    def clear_redirect(self, slot: int) -> None:
        self.maps["tx_port"].delete(layout.U32(slot))

    # -- services ---------------------------------------------------------

    def services(self) -> list[ServiceKey]:
        with self._lock:
            return sorted(self._services, key=lambda k: (k.vip, k.port, k.protocol))

    def pair_of(self, key: ServiceKey, address: str) -> int:
        """The backends[] index of `address` in the service `key` as programmed; NO_PAIR (0, never
        given to a backend) if the service or the backend is not programmed."""
        with self._lock:
            state = self._services.get(key)
            pair = state.backends.get(address) if state is not None else None
            return pair.pair if pair is not None else NO_PAIR

    def set_service(self, spec: ServiceSpec) -> None:
        """Create or replace one service.

        Everything is computed first (no side effect on error); then, in this
        order: VIP (vips, vip_filter), records of new pairs, changed records
        of kept pairs (in place), the service value (ONE hash update: a
        packet sees the whole old or the whole new table), and last the
        records of removed pairs are freed (their flows re-select)."""
        key = service_key(spec.vip, spec.port, spec.protocol)
        backends = validate_backends(key, spec.backends)
        with self._lock:
            old = self._services.get(key)
            new_vip = key.vip not in self._vips
            vip_index = self._vips[key.vip] if not new_vip else _lowest_free(
                set(self._vips.values()), layout.MAX_VIPS, "VIPs")
            svc_index = old.svc_index if old else _lowest_free(
                {st.svc_index for st in self._services.values()}, layout.MAX_SERVICES, "services")
            states, fresh, changed = self._pairs(old, backends, svc_index, vip_index)
            value = _service_value(key, _svc_flags(spec), old, svc_index, vip_index, states, backends)
            self._write_service(key, value, old, new_vip, fresh, changed)
            self._services[key] = _ServiceState(svc_index, vip_index, value.hdr.generation, states)
            for address, st in (old.backends.items() if old else ()):
                if address not in states:
                    self.maps["backends"].update(layout.U32(st.pair), layout.Backend())

    def _pairs(self, old, backends, svc_index, vip_index):
        """(records of every backend, the new ones, the changed ones): a backend kept in the
        service keeps its pair and cookie (and so its flows)."""
        used_pairs = self._used_pairs()
        cookies = {p.cookie for st in self._services.values() for p in st.backends.values()}
        states: dict[str, _PairState] = {}
        fresh: list[_PairState] = []
        changed: list[_PairState] = []
        for address, b in backends.items():
            prev = old.backends.get(address) if old else None
            if prev:
                pair, cookie = prev.pair, prev.cookie
            else:
                # never NO_PAIR: pair_of's and the probe path's "no record" (a pair given to a
                # backend by a loader older than this keeps its index: it is pinned)
                pair = _lowest_free(used_pairs | {NO_PAIR}, layout.MAX_PAIRS, "(service, backend) pairs")
                used_pairs.add(pair)
                cookie = _new_cookie(cookies)
                cookies.add(cookie)
            st = _PairState(pair, cookie, bytes(backend_record(b, address, cookie, svc_index, vip_index)))
            states[address] = st
            if not prev:
                fresh.append(st)
            elif prev.record != st.record:
                changed.append(st)
        return states, fresh, changed

    def _write_service(self, key, value, old, new_vip, fresh, changed) -> None:
        vip_index, svc_index = value.hdr.vip_index, value.hdr.svc_index
        try:
            if new_vip:
                self.maps["vip_stats"].update(layout.U32(vip_index), self.maps["vip_stats"].zero())
                self.maps["vips"].update(layout.addr16(key.vip), layout.Vip(vip_index))
                self._vips[key.vip] = vip_index
                self._write_filter()
            if not old:
                self.maps["svc_stats"].update(layout.U32(svc_index), self.maps["svc_stats"].zero())
            for st in fresh:
                self.maps["be_stats"].update(layout.U32(st.pair), self.maps["be_stats"].zero())
            for st in fresh + changed:
                rec = layout.Backend.from_buffer_copy(st.record)
                self.maps["backends"].update(layout.U32(st.pair), rec)
            self.maps["services"].update(self._svc_key(key), value)
        except OSError:
            # Undo what no service references (records of kept pairs may have been
            # rewritten: they carry the new values, which is what was asked for).
            for st in fresh:
                self.maps["backends"].update(layout.U32(st.pair), layout.Backend())
            if new_vip and not old:
                self.maps["vips"].delete(layout.addr16(key.vip))
                self._vips.pop(key.vip, None)
                self._write_filter()
            raise

    def remove_service(self, vip, port, protocol) -> bool:
        """Remove a service; its VIP goes when its last service goes."""
        key = service_key(vip, port, protocol)
        with self._lock:
            st = self._services.pop(key, None)
            if st is None:
                return False
            self.maps["services"].delete(self._svc_key(key))
            for p in st.backends.values():
                self.maps["backends"].update(layout.U32(p.pair), layout.Backend())
            if not any(k.vip == key.vip for k in self._services):
                self.maps["vips"].delete(layout.addr16(key.vip))
                del self._vips[key.vip]
                self._write_filter()
            return True

    # -- counters ---------------------------------------------------------

    def counters(self) -> dict:
        """Counters summed over CPUs, vc5/xvs names (counters.METRICS and
        counters.BACKEND_COUNTERS):
            {"global": {metric: n}, "latency": {"ns": total, "packets": n},
             "vips": {vip: {metric: n}},
             "services": {ServiceKey: {metric: n}},
             "backends": {BackendKey(ServiceKey, address): {counter: n}}}"""
        with self._lock:
            g, lat_ns, lat_packets = ctr.sum_global(self.maps["global_stats"].lookup(layout.U32(0)))
            out = {"global": g, "latency": {"ns": lat_ns, "packets": lat_packets},
                   "vips": {}, "services": {}, "backends": {}}
            for vip, vip_index in sorted(self._vips.items()):
                out["vips"][vip] = ctr.sum_metrics(self.maps["vip_stats"].lookup(layout.U32(vip_index)))
            for key, st in self._services.items():
                svc = self.maps["svc_stats"].lookup(layout.U32(st.svc_index))
                out["services"][key] = ctr.sum_metrics(svc)
                for address, b in st.backends.items():
                    out["backends"][BackendKey(key, address)] = ctr.sum_counter(
                        self.maps["be_stats"].lookup(layout.U32(b.pair)))
            flowstate.fill_current(out, self._services, self._current)
            return out

    def latency_ns(self) -> float:
        """Mean processing time per packet (ns) over the life of the maps; 0.0 if none."""
        _, ns, packets = ctr.sum_global(self.maps["global_stats"].lookup(layout.U32(0)))
        return ns / packets if packets else 0.0

    # -- lifetime ---------------------------------------------------------

    def close(self, unpin: bool = False) -> None:
        """Release our fds (an attached program keeps running, with its maps).
        unpin=True also removes the pinned maps and the pin directory."""
        with self._lock:
            self._release()
            if unpin:
                for name in self.specs:
                    try:
                        os.unlink(f"{self.pin_dir}/{name}")
                    except FileNotFoundError:
                        pass
                try:
                    os.rmdir(self.pin_dir)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals --------------------------------------------------------

    @staticmethod
    def _svc_key(key: ServiceKey) -> layout.SvcKey:
        return layout.SvcKey(layout.addr16(key.vip), key.port, layout.PROTOCOLS[key.protocol])

    def _used_pairs(self) -> set[int]:
        return {p.pair for st in self._services.values() for p in st.backends.values()}

    def _write_filter(self) -> None:
        """vip_filter from the current VIPs (one in-place array update; a bit
        that does not change is rewritten with its own value)."""
        f = layout.VipFilter()
        for vip in self._vips:
            bit = layout.vip_fold(vip)
            f.bits[bit >> 6] |= 1 << (bit & 63)
        self.maps["vip_filter"].update(layout.U32(0), f)

    def _recover(self) -> None:
        """Rebuild the allocation state from the pinned maps (restart), and
        free any backend record that no service references (left behind by
        a crash between two writes), so no flow can keep using it."""
        self._vips = {}
        for k in self.maps["vips"].keys():
            v = self.maps["vips"].lookup(k)
            if v is not None:
                self._vips[str(layout.addr_from16(k))] = v.vip_index
        services = self.maps["services"]
        records = self.maps["backends"]
        for k in services.keys():
            value = services.lookup(k)
            if value is None:
                continue
            hdr = value.hdr
            key = ServiceKey(str(layout.addr_from16(k.vip)), k.port, layout.PROTOCOL_NAMES.get(k.proto, "?"))
            backends = {}
            for slot in range(1, min(hdr.nbackends, layout.MAX_BACKENDS) + 1):
                pair = value.pair[slot]
                rec = records.lookup(layout.U32(pair))
                if rec is not None and rec.cookie:
                    backends[str(layout.addr_from16(rec.addr))] = _PairState(pair, rec.cookie, bytes(rec))
            self._services[key] = _ServiceState(hdr.svc_index, hdr.vip_index, hdr.generation, backends)
        referenced = self._used_pairs()
        for index, rec in enumerate(records.lookup_all()):
            if rec is not None and rec.cookie and index not in referenced:
                records.update(layout.U32(index), layout.Backend())
        self._write_filter()


def _lowest_free(used: set[int], limit: int, what: str) -> int:
    for i in range(limit):
        if i not in used:
            return i
    raise ValueError(f"more than {limit} {what}")


def _new_cookie(used: set[int]) -> int:
    while True:
        c = int.from_bytes(os.urandom(4), "little")
        if c and c not in used:
            return c


def _svc_flags(spec: ServiceSpec) -> int:
    """The service header's VC5_SVC_* flags."""
    return ((layout.SVC_STICKY if spec.sticky else 0)
            | (layout.SVC_STATELESS if getattr(spec, "stateless", False) else 0))


def _service_value(key: ServiceKey, flags: int, old, svc_index: int, vip_index: int, states: dict,
                   backends: dict) -> layout.Service:
    """The `services` map value: header, pair per slot, and the Maglev table of the backends in it."""
    from .. import maglev  # vc5-compatible table builder

    value = layout.Service()
    hdr = value.hdr
    hdr.vip = layout.addr16(key.vip)
    hdr.port = key.port
    hdr.proto = layout.PROTOCOLS[key.protocol]
    hdr.flags = flags
    hdr.svc_index = svc_index
    hdr.vip_index = vip_index
    hdr.nbackends = len(states)
    hdr.generation = (old.generation + 1 if old else 1) & 0xffffffff
    slot_of = {}
    for slot, (address, st) in enumerate(states.items(), start=1):
        value.pair[slot] = st.pair
        slot_of[address] = slot
    in_table = [address for address, b in backends.items() if b.in_maglev]
    if in_table:
        weights = [backends[a].weight for a in in_table]
        ordered, table = maglev.backend_table(
            in_table, layout.MAGLEV_SIZE, None if len(set(weights)) == 1 else weights)
        slots = bytes(slot_of[str(a)] for a in ordered)
        ct.memmove(value.maglev, bytes(slots[i] for i in table), layout.MAGLEV_SIZE)
    return value


def _require_bpffs(path: str) -> None:
    """pin_dir (or its nearest existing ancestor) must be on a bpf filesystem."""
    probe = os.path.realpath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    best, fstype = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4]
            fs = fields[fields.index("-") + 1]
            inside = probe == mount_point or probe.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, fs
    if fstype != "bpf":
        raise program.ProgramError(
            f"pin directory {path} is not on a bpf filesystem (it is on {fstype or '?'} at {best or '?'}); "
            "mount one: mount -t bpf bpf /sys/fs/bpf")
