"""vc5-healthd: load the configuration, run the checks, publish state on org.vc5.Health1.

Life cycle (systemd Type=notify; environment-facts §2.2):
  start   load + validate the file (invalid: exit 1 naming every problem),
          publish Generation 1, own org.vc5.Health1, start the rounds, READY=1;
  SIGHUP  (systemctl reload) and Manager.Reload(): RELOADING=1, load + validate;
          invalid -> every problem logged as FILE:LINE:COLUMN: ..., nothing
          changes, READY=1 with STATUS saying the reload was rejected; valid ->
          the new state is built beside the old one and swapped in one step
          (HealthState.applied), tasks reconciled, READY=1;
  SIGTERM stop the rounds, release the name, exit 0.

Publishing invariant: every state change made while handling one event marks
the state dirty and schedules one flush with loop.call_soon; the flush emits a
single PropertiesChanged with everything that changed. call_soon callbacks run
before the loop polls for new I/O, so subscribers (xdp-loader, bgpd) hear of
a change before healthd handles anything else.
"""

import argparse
import asyncio
import collections
import gc
import logging
import os
import signal
import sys
import time

from dbus_next import Message, Variant
from dbus_next.signature import SignatureTree
from dbus_next.constants import RequestNameReply

from vc5.common import log as vlog
from vc5.common import messages, names, sd, wire
from vc5.common.bus import connect_system_bus

from . import persist
from . import probe_path as pp
from .api import HealthInterface, ManagerInterface
from .checks.runner import Runner
from .scheduler import Scheduler
from .state import HealthState, parse_backend

log = logging.getLogger("vc5.healthd")
probe_log = logging.getLogger("vc5.healthd.probe")
PROBE_LOG_LENGTH = 32
# A diagnostic-only change is published within this many seconds (or with the next transition).
DIAGNOSTIC_DELAY = 1.0
# Publishing waits FLUSH_DUTY x (cost of the last PropertiesChanged) after it: <= 1/(1+FLUSH_DUTY) CPU.
FLUSH_DUTY = 4.0
# State is saved this often (and at stop) when a state file is configured: a
# SIGKILLed healthd restarts from state at most this old.
SAVE_INTERVAL_S = 2.0
SEVERITY_LEVEL = {3: logging.ERROR, 4: logging.WARNING, 5: vlog.NOTICE, 6: logging.INFO}


def now_us() -> int:
    return time.time_ns() // 1000


def load_config(path):
    from vc5.config import load
    return load(path)


class Daemon:
    def __init__(self, config_path, probe_mode="auto", debug=False, state_file=None, state_max_age=60.0):
        self.config_path = config_path
        self.state_file = state_file
        self.state_max_age = state_max_age
        self.probe_mode = probe_mode
        self.debug = debug
        self.state = HealthState()
        self.bus = None
        self.health = HealthInterface(self)
        self.manager = ManagerInterface(self)
        self.path = None
        self.runner = None
        self.scheduler = None
        self.published = {"Services": [], "VIPs": [], "Generation": 0, "ConfigSource": str(config_path),
                          "LoadedAt": 0, "ProbePath": "", "LastReloadError": "", "Debug": debug}
        self.probes = {}               # (service key, backend key) -> deque of probe-log entries
        self._flush_handle = None       # pending flush (asyncio Handle/TimerHandle) and when it runs
        self._flush_due = 0.0
        self._flush_done = 0.0          # loop time the last flush ended
        self._flush_spacing = 0.0       # min gap between flushes: FLUSH_DUTY x the last flush's cost
        self._pending_props = set()    # published names changed since the last flush
        self._reload_lock = asyncio.Lock()
        self._stopped = asyncio.Event()

    # ---- start / stop ------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.set_debug(self.debug)
        try:
            cfg = await loop.run_in_executor(None, load_config, self.config_path)
        except Exception as e:
            self._log_rejected(e, "start")
            return 1
        self.bus = await connect_system_bus()
        self.path = await pp.open_probe_path(self.bus, self.probe_mode)
        self.runner = Runner(self.path)
        self.scheduler = Scheduler(self.runner, self.on_result)
        self._restore_state()           # the previous generation, if saved before a restart
        self._apply(cfg)
        self.published["ProbePath"] = self.path.describe()
        self.path.on_change = self._probe_path_changed
        self._flush()
        self.bus.export(names.HEALTH_PATH, self.health)
        self.bus.export(names.HEALTH_PATH, self.manager)
        reply = await self.bus.request_name(names.HEALTH_BUS)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            log.error("cannot own %s on the system bus (%s): another vc5-healthd runs?",
                      names.HEALTH_BUS, reply.name)
            return 1
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopped.set)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        watchdog = asyncio.ensure_future(sd.watchdog())
        saver = asyncio.ensure_future(self._save_periodically()) if self.state_file else None
        lost = asyncio.ensure_future(self.bus.wait_for_disconnect())
        lost.add_done_callback(lambda _f: self._stopped.set())
        vlog.event(log, vlog.NOTICE, "vc5-healthd started", message_id=messages.SERVICE_STARTED)
        sd.notify_ready(self._status())
        await self._stopped.wait()
        if lost.done():
            # Without the bus nobody hears our state: exit non-zero, systemd restarts us.
            log.error("lost the system bus connection (%s); exiting", lost.exception() or "closed")
            await self.scheduler.stop()
            await self.runner.close()
            return 1
        lost.cancel()
        sd.notify_stopping()
        if saver is not None:
            saver.cancel()
            self._save_state()
        vlog.event(log, vlog.NOTICE, "vc5-healthd stopping", message_id=messages.SERVICE_STOPPING)
        watchdog.cancel()
        await self.scheduler.stop()
        await self.runner.close()
        self.bus.disconnect()
        return 0

    # ---- state across restarts (vc5.healthd.persist) ------------------------------------------

    def _restore_state(self) -> None:
        if not self.state_file:
            return
        prior, why = persist.load(self.state_file, now_us(), self.state_max_age)
        if why:
            log.warning("%s: starting as a new balancer (every backend down)", why)
        if prior is not None:
            self.state = prior
            log.info("restored the state of generation %d from %s", prior.generation, self.state_file)

    def _save_state(self) -> None:
        try:
            persist.save(self.state_file, self.state, now_us())
        except OSError as e:
            log.warning("cannot save state to %s: %s", self.state_file, e)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL_S)
            self._save_state()

    def _status(self) -> str:
        s = self.state
        vips_up = sum(1 for v in s.vips.values() if v.up)
        backends = sum(len(x.backends) for x in s.services.values())
        mode = self.published["ProbePath"] or self.probe_mode
        return (f"generation {s.generation}: {len(s.services)} services, {backends} backends, "
                f"{vips_up}/{len(s.vips)} VIPs up, probe path {mode}")

    # ---- configuration -----------------------------------------------------------------------

    def _apply(self, cfg):
        new, events = self.state.applied(cfg, now_us())
        self.state = new          # the one step that switches configurations
        self.scheduler.sync(new)
        # The configuration and state live until the next reload: keep them out of the cyclic
        # GC's generations, whose full collections otherwise pause every probe for 100s of ms.
        gc.collect()
        gc.freeze()
        keep = {(k, b) for k, s in new.services.items() for b in s.backends}
        self.probes = {k: v for k, v in self.probes.items() if k in keep}
        self.published.update(Generation=new.generation, ConfigSource=new.source or str(self.config_path),
                              LoadedAt=new.loaded_at, LastReloadError="")
        self._changed(("Generation", "ConfigSource", "LoadedAt", "LastReloadError"))
        for w in getattr(cfg, "warnings", ()):
            vlog.event(log, logging.WARNING, str(w))
        vlog.event(log, vlog.NOTICE, f"configuration {new.source} applied: generation {new.generation}",
                   message_id=messages.CONFIG_LOADED)
        self._events(events)

    async def reload(self, origin="SIGHUP"):
        """(True, "") or (False, problems text). The running configuration is untouched on failure."""
        async with self._reload_lock:
            sd.notify_reloading()
            loop = asyncio.get_running_loop()
            try:
                cfg = await loop.run_in_executor(None, load_config, self.config_path)
            except Exception as e:
                text = self._log_rejected(e, origin)
                self.published["LastReloadError"] = text
                self._changed(("LastReloadError",))
                self._schedule_flush()
                sd.notify_ready(f"reload rejected ({text.count(chr(10)) + 1} problem(s)); still running "
                                f"generation {self.state.generation}")
                return False, text
            self._apply(cfg)
            self._schedule_flush()
            sd.notify_ready(self._status())
            return True, ""

    def _log_rejected(self, e, origin) -> str:
        problems = getattr(e, "problems", None)
        lines = [str(p) for p in problems] if problems else [f"{self.config_path}: {e}"]
        for line in lines:
            vlog.event(log, logging.ERROR, line, message_id=messages.CONFIG_REJECTED)
        after = "not starting" if origin == "start" else "the running configuration is unchanged"
        vlog.event(log, logging.ERROR, f"configuration {self.config_path} rejected ({origin}): "
                   f"{len(lines)} problem(s); {after}", message_id=messages.CONFIG_REJECTED)
        return "\n".join(lines)

    # ---- run time ----------------------------------------------------------------------------

    def on_result(self, skey, bkey, r) -> None:
        t = now_us()
        events = self.state.record(skey, bkey, r.passed, r.diagnostic, r.took_ms, t)
        entries = self.probes.get((skey, bkey))
        if entries is None:
            entries = self.probes[(skey, bkey)] = collections.deque(maxlen=PROBE_LOG_LENGTH)
        entries.append((t, r.passed, r.diagnostic, r.took_ms, r.target))
        if probe_log.isEnabledFor(logging.DEBUG):
            svc = self.state.services.get(skey)
            if svc is not None:
                c = svc.config
                vlog.event(probe_log, logging.DEBUG, f"probe {skey} {bkey[0]}:{bkey[1]}: {r.diagnostic}",
                           vip=c.vip, port=c.port, proto=c.protocol, backend=bkey[0],
                           diagnostic=r.diagnostic, probe_target=r.target, took_ms=r.took_ms,
                           passed=int(r.passed))
        if events:
            self._events(events)
            self._schedule_flush()
        elif self.state.dirty:
            # Only a diagnostic text changed: nothing a subscriber acts on. Published with the
            # next transition, or within DIAGNOSTIC_DELAY.
            self._schedule_flush(urgent=False)

    def drain(self, service, backend, drained) -> int:
        pairs = self.state.find_backends(service, backend)
        t = now_us()
        for skey, bkey in pairs:
            events = self.state.set_drained(skey, bkey, drained, t)
            vlog.event(log, vlog.NOTICE, f"backend {bkey[0]}:{bkey[1]} of {skey} "
                       f"{'drained' if drained else 'undrained'}", vip=skey.rsplit(':', 2)[0],
                       backend=bkey[0])
            self._events(events)
        self._flush()
        return len(pairs)

    def probe_log(self, service, backend) -> list:
        pairs = self.state.find_backends(service, backend)
        if not service or len(pairs) != 1:
            raise KeyError(f"name exactly one backend of one service (got {len(pairs)} matches)")
        return [list(e) for e in self.probes.get(pairs[0], ())]

    def _probe_path_changed(self) -> None:
        self.published["ProbePath"] = self.path.describe()
        vlog.event(log, vlog.NOTICE, f"probe path is now {self.path.describe()}")
        self._changed(("ProbePath",))
        self._schedule_flush()

    def set_debug(self, enabled) -> None:
        self.debug = bool(enabled)
        probe_log.setLevel(logging.DEBUG if self.debug else logging.INFO)
        if self.published["Debug"] != self.debug:
            self.published["Debug"] = self.debug
            self._changed(("Debug",))
            self._schedule_flush()

    # ---- logging and publishing --------------------------------------------------------------

    def _events(self, events) -> None:
        for e in events:
            fields = dict(vip=e.vip, port=e.port or None, proto=e.protocol or None,
                          backend=parse_backend(e.backend)[0] if e.backend else None,
                          diagnostic=e.diagnostic or None)
            if e.kind == "backend":
                mid = messages.BACKEND_UP if e.up else messages.BACKEND_DOWN
                level = vlog.NOTICE
            elif e.kind == "vip":
                mid = messages.VIP_UP if e.up else messages.VIP_DOWN
                level = SEVERITY_LEVEL.get(e.severity, logging.ERROR)
            else:
                mid, level = None, logging.INFO
            vlog.event(log, level, e.text, message_id=mid, **fields)
            if self.bus is not None and self.bus.connected:
                self.health.Transition(e.kind, e.vip, e.port, e.protocol, e.backend, e.up, e.text)

    def _changed(self, props):
        self._pending_props |= set(props)

    def _schedule_flush(self, urgent=True):
        """Publish soon: urgent changes (transitions, drains, reloads) before any further I/O.

        An urgent flush runs with call_soon - in the same event-loop turn, before the loop
        polls for I/O again - unless the previous flush ended less than `_flush_spacing` ago
        (a storm of transitions with thousands of backends, where each Services signal costs
        milliseconds to marshal): then all changes until then go out together, so
        publishing never takes more than 1/(1+FLUSH_DUTY) of the CPU.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return          # not started yet: run() publishes everything once it has a bus
        now = loop.time()
        due = max(now, self._flush_done + self._flush_spacing) if urgent else now + DIAGNOSTIC_DELAY
        if self._flush_handle is not None:
            if self._flush_due <= due:
                return
            self._flush_handle.cancel()
        self._flush_due = due
        self._flush_handle = loop.call_soon(self._flush) if due <= now else loop.call_at(due, self._flush)

    def _flush(self):
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        t0 = time.monotonic()
        self._emit()
        cost = time.monotonic() - t0
        self._flush_done = asyncio.get_running_loop().time()
        self._flush_spacing = FLUSH_DUTY * cost

    def _emit(self):
        changed = {}
        if self.state.dirty_services or "Generation" in self._pending_props:
            self.published["Services"] = wire.services_to_dbus(self.state.services_wire())
            changed["Services"] = self.published["Services"]
        if self.state.dirty_vips:
            self.published["VIPs"] = wire.vips_to_dbus(self.state.vips_wire())
            changed["VIPs"] = self.published["VIPs"]
        for p in self._pending_props:
            changed[p] = self.published[p]
        self._pending_props = set()
        if changed and self.bus is not None and self.bus.connected:
            self.bus.send(Message.new_signal(
                names.HEALTH_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged", "sa{sv}as",
                [names.HEALTH_IFACE, {k: _variant(k, v) for k, v in changed.items()}, []]))


_SIGNATURES = {"Services": wire.SERVICES_SIGNATURE, "VIPs": wire.VIPS_SIGNATURE, "Generation": "t",
               "ConfigSource": "s", "LoadedAt": "t", "ProbePath": "s", "LastReloadError": "s", "Debug": "b"}


class _BuiltVariant(Variant):
    """A Variant whose value was built by vc5.common.wire from typed dataclasses.

    dbus-next's Variant() re-verifies the whole value against its signature, which for
    thousands of backends costs as much as marshalling it; the marshaller still rejects a
    value of the wrong shape.
    """

    def __init__(self, signature: str, value):
        self.type = SignatureTree._get(signature).types[0]
        self.signature = signature
        self.value = value


def _variant(name, value):
    sig = _SIGNATURES[name]
    return _BuiltVariant(sig, value) if name in ("Services", "VIPs") else Variant(sig, value)


def dump_tasks():
    """SIGUSR1: log where every task waits (operators' view of a stuck check)."""
    import io
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        log.warning("task %s", out.getvalue())


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="vc5-healthd", description=__doc__.splitlines()[0])
    p.add_argument("--config", "-c", default=names.CONFIG_PATH, help="configuration file (%(default)s)")
    p.add_argument("--probe-path", choices=pp.MODES, default="auto",
                   help="where probes connect: the VIP on each backend through xdp-loader's NAT "
                        "addresses (loader), the backend's own address (direct), or loader when "
                        "xdp-loader publishes ProbeAddresses (auto, default)")
    p.add_argument("--debug", action="store_true", help="log every probe result (DEBUG)")
    p.add_argument("--state-file", default=_default_state_file(),
                   help="where state is saved for a restart (default: $RUNTIME_DIRECTORY/state.json under "
                        "systemd, else none: a restart starts every backend down, as vc5)")
    p.add_argument("--state-max-age", type=float, default=60.0, metavar="SECONDS",
                   help="restore saved state only if younger than this (%(default)s)")
    return p.parse_args(argv)


def _default_state_file():
    # systemd sets RUNTIME_DIRECTORY for RuntimeDirectory= (kept across restarts by
    # RuntimeDirectoryPreserve=restart); may list several, separated by ':'.
    d = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return os.path.join(d, "state.json") if d else None


def main(argv=None) -> int:
    args = parse_args(argv)
    vlog.setup("vc5-healthd")
    return asyncio.run(Daemon(args.config, args.probe_path, args.debug, args.state_file,
                              args.state_max_age).run())


if __name__ == "__main__":
    sys.exit(main())
