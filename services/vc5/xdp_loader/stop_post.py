"""`vc5-xdp-loader --stop-post` (the unit's ExecStopPost=) and `vc5-xdp-loader --detach`.

systemd sends the same SIGTERM for stop and restart, and the loader never
detaches on SIGTERM. This tool decides afterwards (docs/data-plane.md,
"Restart keeps forwarding; stop detaches"): it asks systemd for the unit's
pending job; a restart (systemctl restart, package upgrade) or a failure
(Restart= will start it again) leaves XDP attached for the successor, which
replaces the program in place; so does Manager.Shutdown(false), which leaves
a marker file beside the lock (in the unit's RuntimeDirectory, so systemd
removes it with the stop) because the process then exits 0 with no job
pending; anything else (systemctl stop, apt remove) detaches vc5's program
from every configured interface, removes the probe path and the pinned maps.
`--detach` does the last step unconditionally.
"""

from __future__ import annotations

import asyncio
import logging
import os

from vc5.common import bus as vbus
from vc5.common import log as vlog
from vc5.common import messages

from . import attach, netinfo
from .startup import StartupError, load_config, take_lock

log = logging.getLogger("vc5.xdp_loader")

RESTART_JOBS = ("restart", "try-restart", "reload-or-restart", "reload-or-try-restart")
KEEP_MARKER = "keep-attached"
SYSTEMD = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"


def keep_marker_path(lock_path: str) -> str:
    """Where Manager.Shutdown(false) says "keep forwarding": beside the lock file."""
    return os.path.join(os.path.dirname(lock_path) or ".", KEEP_MARKER)


def write_keep_marker(path: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as e:
        log.error("cannot leave %s for --stop-post (%s): the stop will detach XDP", path, e)


def clear_keep_marker(path: str) -> bool:
    """Remove the marker; True if there was one."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def stop_post_decision(job_type: str | None, service_result: str | None,
                       keep_requested: bool = False) -> tuple[bool, str]:
    """(detach?, why) for ExecStopPost. Pure.

    job_type: JobType of the unit's pending job ("" or None: no job);
    service_result: $SERVICE_RESULT that systemd gives ExecStopPost;
    keep_requested: Manager.Shutdown(false) left its marker.
    """
    if job_type in RESTART_JOBS:
        return False, f"the unit is being restarted (job {job_type}): XDP stays attached for the successor"
    if keep_requested and job_type in (None, "", "start"):
        return False, ("Manager.Shutdown(false) asked to keep forwarding: XDP stays attached for a successor "
                       "(the program's watchdog passes all traffic if none refreshes it)")
    if not job_type and service_result not in (None, "", "success"):
        return False, (f"the service ended with {service_result}; Restart= may start it again, so XDP stays "
                       "attached (the program's watchdog passes all traffic if nothing refreshes it)")
    return True, f"the unit is stopping (job {job_type or 'none'}, result {service_result or 'unknown'})"


async def pending_job_type(unit: str, timeout: float = 5.0) -> str | None:
    """The JobType of `unit`'s pending job from systemd over D-Bus; "" if none, None if unknown."""
    try:
        bus = await asyncio.wait_for(vbus.connect_system_bus(), timeout)
    except Exception:
        return None
    try:
        [unit_path] = await vbus.call(bus, SYSTEMD, SYSTEMD_PATH, SYSTEMD + ".Manager", "GetUnit", "s",
                                      [unit], timeout=timeout)
        [job] = await vbus.call(bus, SYSTEMD, unit_path, vbus.PROPERTIES_IFACE, "Get", "ss",
                                [SYSTEMD + ".Unit", "Job"], timeout=timeout)
        job_id, job_path = vbus.unwrap(job)          # systemd's (uo): id, object path
        if not job_id:
            return ""
        [job_type] = await vbus.call(bus, SYSTEMD, job_path, vbus.PROPERTIES_IFACE, "Get", "ss",
                                     [SYSTEMD + ".Job", "JobType"], timeout=timeout)
        return vbus.unwrap(job_type)
    except Exception as e:
        log.warning("could not ask systemd about %s's pending job: %s", unit, e)
        return None
    finally:
        bus.disconnect()


def detach_everything(cfg_interfaces, pin_dir) -> list[str]:
    """Detach vc5's program (by name) from the configured interfaces, or from every interface when
    none are known; remove the probe path and the pinned maps. Returns what was done."""
    from . import nat

    done = []
    reader = netinfo.NetReader()
    try:
        for itf in reader.interfaces():
            if cfg_interfaces and itf.name not in cfg_interfaces:
                continue
            gone = _detach_ours(reader, itf, warn=bool(cfg_interfaces))
            if gone:
                done.append(f"detached program {gone} from {itf.name}")
                vlog.event(log, logging.INFO, f"XDP program {gone} detached from {itf.name}",
                           message_id=messages.XDP_DETACHED, interface=itf.name)
    finally:
        reader.close()
    if nat.teardown():
        done.append(f"removed the health-check probe path ({nat.HOST_IFNAME})")
    removed = remove_pins(pin_dir)
    if removed:
        done.append(f"removed {removed} pinned maps from {pin_dir}")
    return done


def _detach_ours(reader, itf, warn: bool) -> int:
    """Detach the program on `itf` if it is vc5's (xdp_main); its id, or 0."""
    from . import program

    st = attach.query(itf.ifindex, reader.ipr)
    if not st.attached:
        return 0
    try:
        name = attach.prog_name_by_id(st.prog_id)
    except attach.AttachError:
        return 0
    if name != program.XDP_MAIN:
        if warn:
            log.warning("%s carries XDP program %d (%s), not vc5's: left alone", itf.name, st.prog_id, name)
        return 0
    return attach.detach(itf.ifindex, itf.name, expected_prog_id=st.prog_id, ipr=reader.ipr)


def remove_older_layouts(pin_dir) -> list[str]:
    """After an upgrade: unpin the maps of older layouts beside pin_dir (/sys/fs/bpf/vc5/v<N>, N below
    ours) and remove their directories; the directories removed. Only for a pin_dir named
    v<LAYOUT_VERSION>. Safe while we hold the loader lock (no older loader runs): a program still
    attached somewhere keeps its maps alive by reference, unpinning only drops the names; the old
    flow table (layout 2: ~1 GB for 1,000,000 flows on 64 CPUs) is freed once nothing uses it."""
    from . import layout

    if os.path.basename(os.path.normpath(pin_dir)) != f"v{layout.LAYOUT_VERSION}":
        return []
    parent, done = os.path.dirname(os.path.normpath(pin_dir)), []
    for name in sorted(os.listdir(parent)):
        if not (name[:1] == "v" and name[1:].isdigit() and int(name[1:]) < layout.LAYOUT_VERSION):
            continue
        old = os.path.join(parent, name)
        for pin in os.listdir(old):
            try:
                os.unlink(os.path.join(old, pin))
            except (IsADirectoryError, PermissionError, FileNotFoundError):
                pass
        try:
            os.rmdir(old)
            done.append(old)
        except OSError as e:
            log.warning("could not remove %s of an older data-plane layout: %s", old, e)
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


async def run(args) -> int:
    """--detach / --stop-post, under the loader's lock (never beside a running loader): 0 done,
    1 refused."""
    try:
        lock_fd = take_lock(args.lock)
    except StartupError as e:
        log.error("%s", e)
        return 1
    try:
        interfaces = ()
        try:
            interfaces = load_config(args.config).interfaces
        except StartupError as e:
            log.warning("%s; detaching vc5's program from every interface", e)
        if args.stop_post:
            job = await pending_job_type(args.unit)
            keep = clear_keep_marker(keep_marker_path(args.lock))
            detach, why = stop_post_decision(job, os.environ.get("SERVICE_RESULT"), keep)
            log.info("%s", why)
            if not detach:
                return 0
        for line in detach_everything(interfaces, args.pin_dir) or ["nothing attached, nothing pinned"]:
            log.info("%s", line)
        return 0
    finally:
        os.close(lock_fd)
