"""Backend, service and VIP state, and how a reload merges into it (pure: no I/O, no clock).

Rules (vc5: cue:director.go `Configure`, `Healthy`, `HealthyVIPs`;
docs/health-checks.md "Rounds and verdicts", "Where a new object starts"):
  * a new VIP's backends start down (window all-false);
  * a new service on an existing VIP starts up (window all-true), so adding a
    port never withdraws a VIP that is being advertised;
  * a new backend on an existing service starts down;
  * an existing (service, backend) keeps its window, verdict, since and counters;
  * a runtime drain is kept until a reload changes that backend's configuration;
  * a backend is usable iff up, not disabled ('*'), not drained and weight > 0;
  * a service is up iff usable backends >= need;
  * a VIP is up iff every service on it is up.

Every mutation returns the Events it caused (the daemon logs them) and marks
what the published snapshot must re-emit (`dirty_services`, `dirty_vips`).
Times are microseconds since the UNIX epoch, passed in by the caller.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vc5.common import wire
from .hysteresis import Hysteresis

# vc5:status.go priorityToSeverity (syslog levels).
SEVERITY = {"critical": 3, "high": 4, "medium": 5, "low": 6}
PRIORITY_ORDER = ("critical", "high", "medium", "low")
NOTICE = 5
INFO = 6


def backend_text(address, port) -> str:
    """"ip:port" with IPv6 bracketed, as vc5's alert texts (Go netip.AddrPort)."""
    a = ipaddress.ip_address(str(address))
    return f"[{a}]:{port}" if a.version == 6 else f"{a}:{port}"


def vip_priority(services) -> str:
    """A VIP alerts at the most severe priority of its services (vc5: per-VIP min priority)."""
    ps = [s.priority for s in services if s.priority in PRIORITY_ORDER] or ["critical"]
    return min(ps, key=PRIORITY_ORDER.index)


@dataclass(frozen=True)
class Event:
    """One state change worth a log line (and a MESSAGE_ID)."""

    kind: str                 # "backend" | "service" | "vip" | "vip-removed"
    up: bool
    vip: str
    port: int = 0
    protocol: str = ""
    backend: str = ""         # "ip:port" (IPv6 bracketed)
    diagnostic: str = ""
    severity: int = NOTICE
    initial: bool = False     # the state a new object starts in (vc5 logs these too)

    @property
    def text(self) -> str:
        word = "up" if self.up else "down"
        if self.kind == "backend":
            return f"Backend {self.backend} for service {self.vip}:{self.port}:{self.protocol} went {word}"
        if self.kind == "service":
            return f"Service {self.vip}:{self.port}:{self.protocol} went {word}"
        if self.kind == "vip-removed":
            return f"VIP {self.vip} removed"
        return f"VIP {self.vip} went {word}"


class BackendRecord:
    """The live state of one backend of one service."""

    __slots__ = ("config", "hyst", "since", "diagnostic", "took_ms", "drained",
                 "probes", "passes", "failures", "last_probe")

    def __init__(self, config, hyst: Hysteresis, since: int):
        self.config = config
        self.hyst = hyst
        self.since = since
        self.diagnostic = ""
        self.took_ms = 0
        self.drained = False
        self.probes = 0
        self.passes = 0
        self.failures = 0
        self.last_probe = 0

    @property
    def key(self) -> tuple:
        return (str(self.config.address), self.config.port)

    @property
    def up(self) -> bool:
        return self.hyst.up

    @property
    def usable(self) -> bool:
        c = self.config
        return self.hyst.up and not c.disabled and not self.drained and c.weight > 0

    def carried(self, config, rise, fall) -> "BackendRecord":
        """This record under a new configuration (reload): state and counters kept."""
        r = BackendRecord(config, self.hyst.resized(rise, fall), self.since)
        r.diagnostic, r.took_ms = self.diagnostic, self.took_ms
        # "kept until the next config change that touches that backend"; a record restored
        # from a snapshot (config None: vc5.healthd.persist) keeps its drain.
        r.drained = self.drained and (self.config is None or config == self.config)
        r.probes, r.passes, r.failures = self.probes, self.passes, self.failures
        r.last_probe = self.last_probe
        return r

    def to_wire(self) -> wire.BackendState:
        c = self.config
        return wire.BackendState(address=str(c.address), port=c.port, weight=c.weight, disabled=c.disabled,
                                 drained=self.drained, up=self.hyst.up, since=self.since,
                                 diagnostic=self.diagnostic, took_ms=self.took_ms)


class ServiceRecord:
    __slots__ = ("config", "backends", "up", "since")

    def __init__(self, config, backends: dict, up: bool, since: int):
        self.config = config
        self.backends = backends      # (address str, port) -> BackendRecord, in config order
        self.up = up
        self.since = since

    @property
    def key(self) -> str:
        return self.config.key

    def available(self) -> int:
        return sum(1 for b in self.backends.values() if b.usable)

    def healthy(self) -> bool:
        return self.available() >= self.config.need

    def to_wire(self) -> wire.ServiceState:
        s = self.config
        return wire.ServiceState(
            vip=str(s.vip), port=s.port, protocol=s.protocol, name=s.name or "",
            description=s.description or "", priority=s.priority, sticky=bool(s.sticky), need=s.need,
            tunnel_type=s.tunnel_type or "none", tunnel_port=s.tunnel_port or 0,
            tunnel_no_checksum=bool(s.tunnel_no_checksum), up=self.up, since=self.since,
            available=self.available(), backends=tuple(b.to_wire() for b in self.backends.values()))


class VipRecord:
    __slots__ = ("vip", "up", "since")

    def __init__(self, vip: str, up: bool, since: int):
        self.vip, self.up, self.since = vip, up, since


class HealthState:
    """All services of one configuration generation and their live state."""

    def __init__(self):
        self.services: dict = {}      # service key -> ServiceRecord, sorted as the config
        self.vips: dict = {}          # vip str -> VipRecord
        self.generation = 0
        self.source = ""
        self.loaded_at = 0
        self.dirty_services: set = set()
        self.dirty_vips = False
        self._wire: dict = {}         # service key -> cached wire.ServiceState

    # ---- building and reloading ------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg, now: int):
        state, _events = cls().applied(cfg, now)
        return state

    def applied(self, cfg, now: int):
        """(new state, events) for configuration `cfg`; `self` is left untouched (atomic reload)."""
        new = HealthState()
        new.generation = self.generation + 1
        new.source = getattr(cfg, "source", "") or ""
        new.loaded_at = now
        events = []
        old_vips = set(self.vips)
        for svc in cfg.services:
            vip = str(svc.vip)
            old = self.services.get(svc.key)
            fresh_up = old is None and vip in old_vips   # new service on an existing VIP starts up
            backends = {}
            for b in svc.backends:
                bkey = (str(b.address), b.port)
                prev = old.backends.get(bkey) if old else None
                if prev is not None:
                    rec = prev.carried(b, svc.rise, svc.fall)
                else:
                    rec = BackendRecord(b, Hysteresis(svc.rise, svc.fall, up=fresh_up), now)
                    events.append(Event("backend", fresh_up, vip, svc.port, svc.protocol,
                                        backend_text(b.address, b.port), severity=NOTICE, initial=True))
                backends[bkey] = rec
            rec = ServiceRecord(svc, backends, False, now)
            rec.up = rec.healthy()
            if old is not None and old.up == rec.up:
                rec.since = old.since
            else:
                events.append(Event("service", rec.up, vip, svc.port, svc.protocol,
                                    severity=NOTICE if rec.up else SEVERITY.get(svc.priority, 3),
                                    initial=old is None))
            new.services[svc.key] = rec
        for vip, services in new._by_vip().items():
            up = all(s.up for s in services)
            prev = self.vips.get(vip)
            if prev is not None and prev.up == up:
                new.vips[vip] = VipRecord(vip, up, prev.since)
            else:
                new.vips[vip] = VipRecord(vip, up, now)
                events.append(Event("vip", up, vip, severity=SEVERITY[vip_priority(
                    [s.config for s in services])], initial=prev is None))
        for vip in old_vips - set(new.vips):
            events.append(Event("vip-removed", False, vip, severity=NOTICE))
        new.dirty_services = set(new.services)
        new.dirty_vips = True
        return new, events

    # ---- run time ----------------------------------------------------------------------------

    def record(self, service_key: str, backend_key: tuple, passed: bool, diagnostic: str,
               took_ms: int, now: int) -> list:
        """One round's result for one backend; returns the events it caused.

        Results for a (service, backend) that a reload removed are ignored.
        """
        svc = self.services.get(service_key)
        rec = svc.backends.get(backend_key) if svc else None
        if rec is None:
            return []
        rec.probes += 1
        if passed:
            rec.passes += 1
        else:
            rec.failures += 1
        rec.last_probe = now
        rec.took_ms = int(took_ms)
        events = []
        if rec.diagnostic != diagnostic:
            rec.diagnostic = diagnostic
            self._touch(service_key)
        if rec.hyst.record(passed):
            rec.since = now
            self._touch(service_key)
            c = svc.config
            events.append(Event("backend", rec.up, str(c.vip), c.port, c.protocol,
                                backend_text(rec.config.address, rec.config.port),
                                diagnostic=diagnostic, severity=NOTICE))
            events += self._reevaluate(svc, now)
        return events

    def set_drained(self, service_key: str, backend_key: tuple, drained: bool, now: int) -> list:
        svc = self.services[service_key]
        rec = svc.backends[backend_key]
        if rec.drained == drained:
            return []
        rec.drained = drained
        self._touch(service_key)
        return self._reevaluate(svc, now)

    def find_backends(self, service_key: str, backend: str) -> list:
        """[(service key, backend key)] matching an operator's words.

        service_key "" means every service; backend is "ip", "ip:port" or "[ipv6]:port".
        Raises BadKey if `backend` is not an address, KeyError naming what was not found.
        """
        addr, port = parse_backend(backend)
        if service_key:
            if service_key not in self.services:
                raise KeyError(f"no service {_shown(service_key)}; services are: {self._some_services()}")
            keys = [service_key]
        else:
            keys = list(self.services)
        out = [(k, bk) for k in keys for bk in self.services[k].backends
               if bk[0] == addr and (port is None or bk[1] == port)]
        if not out:
            where = f"service {service_key}" if service_key else "any service"
            raise KeyError(f"no backend {_shown(backend)} in {where}")
        return out

    def _some_services(self, most=10) -> str:
        """The first `most` service keys (a message lists a few of thousands, not all)."""
        keys = list(self.services)
        text = ", ".join(keys[:most]) or "none"
        return text + (f" and {len(keys) - most} more" if len(keys) > most else "")

    # ---- published snapshot ------------------------------------------------------------------

    def services_wire(self) -> tuple:
        for k in self.dirty_services:
            if k in self.services:
                self._wire[k] = self.services[k].to_wire()
        self.dirty_services = set()
        return tuple(self._wire[k] for k in self.services)

    def vips_wire(self) -> tuple:
        self.dirty_vips = False
        return tuple(wire.VipState(v.vip, v.up, v.since) for v in self.vips.values())

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_services) or self.dirty_vips

    # ---- internals ---------------------------------------------------------------------------

    def _touch(self, service_key):
        self.dirty_services.add(service_key)

    def _by_vip(self) -> dict:
        out: dict = {}
        for s in self.services.values():
            out.setdefault(str(s.config.vip), []).append(s)
        return out

    def _reevaluate(self, svc: ServiceRecord, now: int) -> list:
        """Service and VIP verdicts after a backend of `svc` changed."""
        self._touch(svc.key)
        events = []
        up = svc.healthy()
        if up == svc.up:
            return events
        svc.up, svc.since = up, now
        c = svc.config
        events.append(Event("service", up, str(c.vip), c.port, c.protocol,
                            severity=NOTICE if up else SEVERITY.get(c.priority, 3)))
        vip = str(c.vip)
        siblings = [s for s in self.services.values() if str(s.config.vip) == vip]
        vup = all(s.up for s in siblings)
        vrec = self.vips[vip]
        if vup != vrec.up:
            vrec.up, vrec.since = vup, now
            self.dirty_vips = True
            severity = SEVERITY[vip_priority([s.config for s in siblings])]
            events.append(Event("vip", vup, vip, severity=severity))
        return events


class BadKey(ValueError):
    """An operator's words that are not a backend or service key (a D-Bus InvalidArgs)."""


def _shown(text: str) -> str:
    """`text` for an error message: repr, at most 80 characters (callers may be anyone)."""
    r = repr(text)
    return r if len(r) <= 80 else r[:77] + "..."


def _port(text: str, whole: str) -> int:
    # A decimal port 0..65535: int() alone accepts "-5", "+5", " 5" and "5_0".
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535):
        raise BadKey(f"{_shown(whole)}: port {_shown(text)} is not a number 0..65535")
    return int(text)


def parse_backend(text: str):
    """"10.0.0.1", "10.0.0.1:80", "2001:db8::1", "[2001:db8::1]:80" -> (address str, port or None).

    Anything else raises BadKey naming what is wrong (never another exception).
    """
    usage = "give 'ip', 'ip:port' or '[ipv6]:port'"
    t = text.strip()
    if t.startswith("["):
        host, bracket, rest = t[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise BadKey(f"{_shown(text)} is not a backend address: {usage}")
        port = _port(rest[1:], text) if rest else None
        try:
            return str(ipaddress.ip_address(host)), port
        except ValueError:
            raise BadKey(f"{_shown(text)}: {_shown(host)} is not an IP address: {usage}") from None
    try:
        return str(ipaddress.ip_address(t)), None
    except ValueError:
        pass
    host, colon, port = t.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise BadKey(f"{_shown(text)} is not a backend address: {usage}") from None
    return str(address), _port(port, text)
