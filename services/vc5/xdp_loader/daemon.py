"""vc5-xdp-loader's life cycle (docs/data-plane.md; the skeleton is vc5.common.lifecycle).

Start-up, in this order, each step refusing with a clear message:
  1. take the lock file (one loader per host: a second one exits at once);
  2. read the configuration (interfaces, vlans/vlans6, xdp_mode, flows);
  3. own org.vc5.XdpLoader1 on the system bus (lifecycle.open_bus, queue=False)
     BEFORE touching the kernel: a second loader must not replace the first
     one's program;
  4. compile and load the program ONCE (DataPlane): pinned maps are re-used,
     so a restarted loader finds its services, flows and counters; the block
     list of source prefixes is made what --state-dir's file says
     (prefixes.py; a bad file is logged and the maps keep theirs);
  5. attach to every configured interface, REPLACING IN PLACE whatever vc5
     program is there (no detach window: restart keeps forwarding); set up
     the health-check probe path (probe_path.py, docs/probe-path.md);
  6. export the API, follow healthd's Services (loader.py), notify READY=1;
     rescan interfaces and neighbours every `rescan` s; refresh the data
     plane's watchdog and systemd's.

SIGTERM/SIGINT stop without detaching (a restart keeps forwarding; the unit's
ExecStopPost decides: stop_post.py); SIGHUP reloads the configuration;
Manager.Shutdown(true) stops and detaches.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from vc5.common import bus as vbus
from vc5.common import lifecycle, limits, messages, names, sd, wire
from vc5.common import log as vlog

from . import flowstate, prefixes
from .loader import REPROBE_S, Loader
from .netwatch import NetWatch
from .share import service as share_service
from .startup import StartupError, load_config, take_lock
from .stop_post import clear_keep_marker, keep_marker_path, remove_older_layouts

log = logging.getLogger("vc5.xdp_loader")

WATCHDOG_REFRESH_S = 5.0


async def run(args) -> int:
    """The service (lifecycle.main runs it): 0 stopped, 1 refused to start."""
    try:
        lock_fd = take_lock(args.lock)
        try:
            clear_keep_marker(keep_marker_path(args.lock))     # a previous Shutdown(false) is over
            cfg = load_config(args.config, need_interfaces=True)
            bus = await claim_bus_name()
            return await _run(args, cfg, bus)
        finally:
            os.close(lock_fd)
    except StartupError as e:
        log.error("%s", e)
        return 1


async def claim_bus_name():
    """Connect to the system bus and own org.vc5.XdpLoader1 (not queued) before the kernel is
    touched: a second loader must not replace the first one's program."""
    try:
        return await lifecycle.open_bus(names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, queue=False)
    except vbus.NameTaken:
        raise StartupError(f"{names.XDP_LOADER_BUS} is already owned on the bus (another vc5-xdp-loader "
                           "is running)") from None
    except Exception as e:
        raise StartupError(f"cannot connect to the system bus: {e}") from None


async def _run(args, cfg, bus) -> int:
    from .dataplane import DataPlane

    flows = args.flows or cfg.flows_per_cpu
    try:
        check_memory(args.pin_dir, flows)
    except StartupError:
        bus.disconnect()
        raise
    sd.notify_status("compiling the XDP program")
    t0 = time.monotonic()
    fresh_maps = not os.path.exists(os.path.join(args.pin_dir, "flows"))   # a new balancer: `learn` applies
    try:
        dp = DataPlane(pin_dir=args.pin_dir, flows=flows)
    except Exception as e:
        bus.disconnect()
        raise StartupError(f"the data plane could not be loaded: {e}") from None
    # Published (ProgramInfo) and logged as the host sees it: /sys/fs/bpf/vc5/v<N>, not the unit's bind.
    state_dir = getattr(args, "state_dir", None)
    loader = Loader(cfg, dp, pin_dir=names.host_pin_path(args.pin_dir), rescan=args.rescan,
                    config_path=args.config, flows=flows,
                    state_file=os.path.join(state_dir, prefixes.STATE_NAME) if state_dir else None)
    loader.keep_marker = keep_marker_path(args.lock)
    sharing = None
    try:
        loader.describe_program()
        log.info("program %d loaded in %.1f s; pinned maps in %s hold %d services", loader.program.prog_id,
                 time.monotonic() - t0, loader.pin_dir, len(dp.services()))
        loader.restore_blocked()          # the block list is in the maps before any interface is attached
        loader.start()
        for old in remove_older_layouts(args.pin_dir):     # an upgrade: our program replaced theirs
            log.info("removed the pinned maps of an older data-plane layout in %s", old)
        sharing = loader.sharing = share_service.start_for_loader(loader, cfg, fresh_maps)
        signals = lifecycle.StopSignals(on_reload=loader.reload_quietly)
        loader.on_stop = signals.stop
        await serve(loader, bus, signals)
    finally:
        if sharing is not None:
            sharing.stop()
        if loader.detach_on_stop:
            loader.interfaces.detach_all(loader.program.prog_id)
            loader.probe.teardown()
            dp.close(unpin=True)
            log.info("detached and removed the pinned maps in %s", loader.pin_dir)
        else:
            dp.close()
        loader.reader.close()
    return 0


def check_memory(pin_dir: str, flows: int) -> None:
    """The flow table about to be made against this unit's MemoryMax= and the host's MemAvailable
    (BPF map memory is charged to the cgroup that creates the maps): StartupError naming
    flows_per_cpu and the limit; only a warning when the pinned maps exist (they are re-used)."""
    from . import layout

    reuse = os.path.exists(os.path.join(pin_dir, "flows"))
    verdict = limits.check_loader_memory(flows, layout.possible_cpus(), reuse, limits.read_memory(),
                                         limits.mem_available())
    if not verdict.ok:
        vlog.event(log, logging.ERROR, verdict.message, message_id=limits.FLOW_TABLE_MEMORY,
                   flows_per_cpu=flows)
        raise StartupError("refused to start: the flow table does not fit (see above)")
    if verdict.message:
        vlog.event(log, logging.WARNING, verdict.message, message_id=limits.FLOW_TABLE_MEMORY,
                   flows_per_cpu=flows)


async def serve(loader: Loader, bus, signals: lifecycle.StopSignals) -> None:
    """Export the API on `bus` (the name is ours), follow healthd, keep everything fresh until stopped."""
    from . import api

    vbus.export(bus, names.XDP_LOADER_PATH,
                api.XdpLoader(loader.publisher, loader.counters,
                              loader.prefix_counters if loader.prefixes is not None else None),
                api.XdpLoaderManager(loader))
    loader.publisher.attach(bus)
    tasks = [asyncio.create_task(_data_plane_watchdog(loader.dp), name="data-plane watchdog"),
             asyncio.create_task(sd.watchdog(), name="systemd watchdog"),
             asyncio.create_task(limits.watch("vc5-xdp-loader"), name="limits")]
    loader.refresh()
    tasks.append(asyncio.create_task(_periodic(loader), name="rescan"))
    if loader.learning is not None:
        tasks.append(asyncio.create_task(share_service.end_learning(loader), name="learn"))
    watch = NetWatch(loader.tick)          # netlink events: a refresh within a second (netwatch.py)
    watch.start(asyncio.get_running_loop())
    loader.set_status(f"starting: waiting for {names.HEALTH_BUS}; forwarding with the services the maps hold")
    loader.health_watch = await vbus.watch_properties(
        bus, names.HEALTH_BUS, names.HEALTH_PATH, names.HEALTH_IFACE, loader.on_health,
        on_vanished=loader.on_health_vanished, schema=wire.HEALTH)
    sd.notify_ready(loader.status)
    vlog.event(log, logging.INFO, f"vc5-xdp-loader ready: program {loader.program.prog_id} on "
               + ", ".join(f"{s.name} ({s.mode or 'not attached'})" for s in loader.interfaces.status),
               message_id=messages.SERVICE_STARTED)
    try:
        await signals.wait()
    finally:
        sd.notify_stopping()
        vlog.event(log, logging.INFO, "vc5-xdp-loader stopping"
                   + (": detaching" if loader.detach_on_stop else ": XDP stays attached for a successor"),
                   message_id=messages.SERVICE_STOPPING)
        watch.close()
        await _stop(tasks, loader.health_watch)
        loader.publisher.attach(None)
        await vbus.release_name(bus, names.XDP_LOADER_BUS)
        bus.disconnect()


async def _stop(tasks, watch) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass
    if watch is not None:
        try:
            await watch.close()
        except Exception:
            pass


async def _periodic(loader: Loader) -> None:
    next_probe = time.monotonic() + REPROBE_S
    while True:
        try:
            reprobe = time.monotonic() >= next_probe
            loader.tick(reprobe=reprobe)
            if reprobe:
                next_probe = time.monotonic() + REPROBE_S
        except Exception:
            log.exception("rescan failed; retrying in %.0f s", loader.rescan_s)
        await asyncio.sleep(loader.rescan_s)


async def _data_plane_watchdog(dp) -> None:
    next_era = time.monotonic() + flowstate.ERA_S
    while True:
        try:
            dp.refresh_watchdog()
        except OSError as e:
            log.error("refreshing the data-plane watchdog failed: %s", e)
        if time.monotonic() >= next_era and hasattr(dp, "roll_sessions"):   # vc5's `current`
            next_era = time.monotonic() + flowstate.ERA_S
            try:
                dp.roll_sessions()
            except OSError as e:
                log.error("reading the connection estimate (sessions) failed: %s", e)
        await asyncio.sleep(WATCHDOG_REFRESH_S)
