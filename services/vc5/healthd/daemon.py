"""vc5-healthd: load the configuration, run the checks, publish state on org.vc5.Health1.

Life cycle (systemd Type=notify; docs/health-checks.md "Reload", docs/architecture.md):
  start   load + validate the file (invalid: exit 1 naming every problem),
          publish Generation 1, own org.vc5.Health1 (another owner: exit 1
          naming the name), start the rounds, READY=1;
  SIGHUP  (systemctl reload) and Manager.Reload(): RELOADING=1, load + validate;
          invalid -> every problem logged as FILE:LINE:COLUMN: ..., nothing
          changes, READY=1 with STATUS saying the reload was rejected; valid ->
          the new state is built beside the old one and swapped in one step
          (HealthState.applied), tasks reconciled, READY=1;
  SIGUSR1 every task's stack in the log (vc5.common.lifecycle.StopSignals);
  SIGTERM stop the rounds, release the name, exit 0.

Publishing (one vc5.common.bus.Publisher; the invariants stated in
vc5/dbus/org.vc5.Health1.xml): every state change made while handling one
event marks the Publisher - its before_flush adds Services and VIPs from the
HealthState's dirty flags - and everything goes out in one PropertiesChanged
from loop.call_soon. call_soon callbacks run before the loop polls for new
I/O, so subscribers (xdp-loader, bgpd) hear of a transition before healthd
handles anything else; drains and reloads flush before their method reply.
Under a storm of transitions a signal waits FLUSH_DUTY x the cost of the
previous one (all changes until then travel together); a change of diagnostic
text alone goes out with the next transition, at the latest after
DIAGNOSTIC_DELAY seconds.
"""

import asyncio
import collections
import gc
import logging
import time

from vc5.common import bus as vbus
from vc5.common import lifecycle, limits, messages, names, sd, wire
from vc5.common import log as vlog

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
        self.last_reload_error = ""
        self.bus = None
        self.path = None
        self.runner = None
        self.scheduler = None
        self.signals = None             # lifecycle.StopSignals, once running
        # (service key, backend key) -> deque of ProbeRound fields (time, passed, diagnostic,
        # took_ms, target), newest last; tuples, as one is made per probe
        self.probes = {}
        self.publisher = vbus.Publisher(names.HEALTH_PATH, wire.HEALTH, self._getters(), duty=FLUSH_DUTY,
                                        lazy_delay=DIAGNOSTIC_DELAY, before_flush=self._mark_dirty_state)
        self.health = HealthInterface(self, self.publisher)
        self.manager = ManagerInterface(self, self.publisher)
        self._reload_lock = asyncio.Lock()

    def _getters(self) -> dict:
        """Each org.vc5.Health1 property's current typed value (vc5.common.wire.HEALTH)."""
        return {
            "Services": lambda: self.state.services_wire(),
            "VIPs": lambda: self.state.vips_wire(),
            "Generation": lambda: self.state.generation,
            "ConfigSource": lambda: self.state.source or str(self.config_path),
            "LoadedAt": lambda: self.state.loaded_at,
            "ProbePath": lambda: self.path.describe() if self.path is not None else "",
            "LastReloadError": lambda: self.last_reload_error,
            "Debug": lambda: self.debug,
        }

    def _mark_dirty_state(self) -> None:
        """Publisher.before_flush: the parts of the HealthState changed since the last flush."""
        if self.state.dirty_services:
            self.publisher.mark("Services")
        if self.state.dirty_vips:
            self.publisher.mark("VIPs")

    # ---- start / stop ------------------------------------------------------------------------

    async def run(self) -> int:
        self.set_debug(self.debug)
        cfg, _problems = await self._load("start")
        if cfg is None:
            return 1
        try:
            await self._start(cfg)
        except vbus.NameTaken as e:
            log.error("vc5-healthd not started: %s", e)
            await self._close()
            return 1
        return await self._serve()

    async def _start(self, cfg) -> None:
        """Connect, follow the probe path, apply `cfg`, publish it, then own org.vc5.Health1.

        The name is owned last, so a subscriber never sees a healthd without its state.
        """
        self.bus = await vbus.connect_system_bus()
        self.publisher.attach(self.bus)
        self.path = await pp.open_probe_path(self.bus, self.probe_mode)
        self.runner = Runner(self.path)
        self.scheduler = Scheduler(self.runner, self.on_result)
        self._restore_state()           # the previous generation, if saved before a restart
        self._apply(cfg)
        self.path.on_change = self._probe_path_changed
        self.publisher.mark(*wire.HEALTH.properties)
        self.publisher.flush()
        await lifecycle.open_bus(names.HEALTH_BUS, names.HEALTH_PATH, self.health, self.manager,
                                 bus=self.bus, queue=False)

    async def _serve(self) -> int:
        """READY=1, then run until SIGTERM/SIGINT (0) or the bus is lost (1)."""
        self.signals = lifecycle.StopSignals(on_reload=lambda: self.reload("SIGHUP"))
        watchdog = asyncio.ensure_future(sd.watchdog())
        limits_watch = asyncio.ensure_future(limits.watch("vc5-healthd"))   # MemoryMax=, LimitNOFILE=
        saver = asyncio.ensure_future(self._save_periodically()) if self.state_file else None
        lost = asyncio.ensure_future(self.bus.wait_for_disconnect())
        lost.add_done_callback(lambda _f: self.signals.stop())
        vlog.event(log, vlog.NOTICE, "vc5-healthd started", message_id=messages.SERVICE_STARTED)
        sd.notify_ready(self._status())
        await self.signals.wait()
        watchdog.cancel()
        limits_watch.cancel()
        if lost.done():
            # Without the bus nobody hears our state: exit non-zero, systemd restarts us.
            log.error("lost the system bus connection (%s); exiting", lost.exception() or "closed")
            await self._close()
            return 1
        lost.cancel()
        sd.notify_stopping()
        if saver is not None:
            saver.cancel()
            self._save_state()
        vlog.event(log, vlog.NOTICE, "vc5-healthd stopping", message_id=messages.SERVICE_STOPPING)
        await self._close()
        self.bus.disconnect()
        return 0

    async def _close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.runner is not None:
            await self.runner.close()

    # ---- state across restarts (vc5.healthd.persist) ------------------------------------------

    def _restore_state(self) -> None:
        if not self.state_file:
            return
        try:
            prior, why = persist.load(self.state_file, now_us(), self.state_max_age)
        except Exception as e:     # persist.load never raises; a bug there must not crash-loop us
            prior, why = None, f"saved state {self.state_file} ignored: {type(e).__name__}: {e}"
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
        mode = self.path.describe() if self.path is not None else self.probe_mode
        return (f"generation {s.generation}: {len(s.services)} services, {backends} backends, "
                f"{vips_up}/{len(s.vips)} VIPs up, probe path {mode}")

    # ---- configuration -----------------------------------------------------------------------

    async def _load(self, origin):
        """(configuration, "") or (None, the problems, one per line; each logged)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, load_config, self.config_path), ""
        except Exception as e:
            return None, self._log_rejected(e, origin)

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
        self.last_reload_error = ""
        self.publisher.mark("Generation", "ConfigSource", "LoadedAt", "LastReloadError", "Services", "VIPs")
        for w in getattr(cfg, "warnings", ()):
            vlog.event(log, logging.WARNING, str(w))
        vlog.event(log, vlog.NOTICE, f"configuration {new.source} applied: generation {new.generation}",
                   message_id=messages.CONFIG_LOADED)
        self._events(events)

    async def reload(self, origin="SIGHUP"):
        """(True, "") or (False, problems text). The running configuration is untouched on failure.

        Either way the outcome is published before this returns (so before Reload's reply).
        """
        async with self._reload_lock:
            sd.notify_reloading()
            cfg, text = await self._load(origin)
            if cfg is None:
                self.last_reload_error = text
                self.publisher.mark("LastReloadError")
                self.publisher.flush()
                sd.notify_ready(f"reload rejected ({text.count(chr(10)) + 1} problem(s)); still running "
                                f"generation {self.state.generation}")
                return False, text
            self._apply(cfg)
            self.publisher.flush()
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
            self._log_probe(skey, bkey, r)
        if events:
            self._events(events)
            self.publisher.mark()       # before_flush adds Services/VIPs
        elif self.state.dirty:
            # Only a diagnostic text changed: nothing a subscriber acts on. Published with the
            # next transition, or within DIAGNOSTIC_DELAY.
            self.publisher.mark(urgent=False)

    def _log_probe(self, skey, bkey, r) -> None:
        svc = self.state.services.get(skey)
        if svc is not None:
            c = svc.config
            vlog.event(probe_log, logging.DEBUG, f"probe {skey} {bkey[0]}:{bkey[1]}: {r.diagnostic}",
                       vip=c.vip, port=c.port, proto=c.protocol, backend=bkey[0],
                       diagnostic=r.diagnostic, probe_target=r.target, took_ms=r.took_ms,
                       passed=int(r.passed))

    def drain(self, service, backend, drained) -> int:
        pairs = self.state.find_backends(service, backend)
        t = now_us()
        for skey, bkey in pairs:
            events = self.state.set_drained(skey, bkey, drained, t)
            vlog.event(log, vlog.NOTICE, f"backend {bkey[0]}:{bkey[1]} of {skey} "
                       f"{'drained' if drained else 'undrained'}", vip=skey.rsplit(':', 2)[0],
                       backend=bkey[0])
            self._events(events)
        self.publisher.flush()          # before the method reply
        return len(pairs)

    def probe_log(self, service, backend) -> list:
        """[wire.ProbeRound] of exactly one backend of one service, oldest first (KeyError otherwise)."""
        pairs = self.state.find_backends(service, backend)
        if not service or len(pairs) != 1:
            raise KeyError(f"name exactly one backend of one service (got {len(pairs)} matches)")
        return [wire.ProbeRound(*entry) for entry in self.probes.get(pairs[0], ())]

    def _probe_path_changed(self) -> None:
        vlog.event(log, vlog.NOTICE, f"probe path is now {self.path.describe()}")
        self.publisher.mark("ProbePath")

    def set_debug(self, enabled) -> None:
        changed = bool(enabled) != self.debug
        self.debug = bool(enabled)
        probe_log.setLevel(logging.DEBUG if self.debug else logging.INFO)
        if changed:
            self.publisher.mark("Debug")

    # ---- logging and signals -----------------------------------------------------------------

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
            self.publisher.signal(wire.Transition(kind=e.kind, vip=e.vip, port=e.port, protocol=e.protocol,
                                                  backend=e.backend, up=e.up, text=e.text))
