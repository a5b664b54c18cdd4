"""Fail-safe advertising: a VIP is offered to peers only while this balancer would forward it (pure).

docs/bgp.md, "Fail-safe advertising". Route health injection must not send a
VIP's traffic to a balancer whose data plane does not balance it: the loader
refused to start, an interface lost vc5's program, a service of the VIP is not
in the maps, or balancing was turned off (Manager.SetActive(false)).

Inputs: org.vc5.XdpLoader1 (wire.XDP_LOADER: Status, Active, Interfaces,
Services, Learning: vc5's -l, every VIP held while it is true), healthd's VIPs
and Services (which services make up a VIP), and the
clock. Nothing here reads the bus or the clock itself: the daemon passes them in.

A loader restart must never withdraw (docs/data-plane.md, "Restart keeps
forwarding"): the pinned program keeps forwarding while no loader runs, so
the VIPs that were forwardable when the running loader was lost are kept
  * while the loader is absent, for `grace` seconds (LOADER_GRACE_S) from when it left;
  * while a successor is starting (it owns the name but has not published, or its
    Status starts with "starting"), up to `starting_max` seconds (STARTING_MAX_S)
    from when the running loader was lost. The bound is below the program's own
    watchdog (docs/data-plane.md, "Watchdogs": 60 s without a refresh -> PASS
    everything; the loader refreshes every 5 s), so a successor that hangs is
    withdrawn before the kernel stops balancing.
A successor that was seen starting and then left the bus failed to start: the
routes go `grace` seconds after it left and no later successor extends that.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

REQUIRED, IGNORE = "required", "ignore"
MODES = (REQUIRED, IGNORE)
LOADER_GRACE_S = 5.0
STARTING_MAX_S = 45.0       # < 60 s data-plane watchdog - 5 s refresh period - margin

# Gate states (org.vc5.Bgp1.DataPlane.state)
IGNORED = "ignored"         # the gate is off (--dataplane ignore): healthd alone decides
READY = "ready"             # a running loader: each VIP checked against what it programmed
HOLDING = "holding"         # loader absent or starting: the last forwardable VIPs kept until `until`
DOWN = "down"               # no running loader (never seen, or held past its bound): nothing forwardable


@dataclass(frozen=True)
class Params:
    mode: str = REQUIRED
    grace: float = LOADER_GRACE_S
    starting_max: float = STARTING_MAX_S


@dataclass(frozen=True)
class LoaderView:
    """What the loader publishes that the gate needs (from wire.XDP_LOADER's typed properties)."""

    status: str = ""
    active: bool = False
    interfaces: tuple = ()      # wire.InterfaceStatus
    services: tuple = ()        # wire.ProgrammedService
    learning: bool = False      # a new balancer listens to the others' shared flows (`learn`, vc5 -l)

    @classmethod
    def from_properties(cls, props) -> "LoaderView":
        return cls(str(props.get("Status", "")), bool(props.get("Active", False)),
                   tuple(props.get("Interfaces", ())), tuple(props.get("Services", ())),
                   bool(props.get("Learning", False)))

    @property
    def starting(self) -> bool:
        """The loader says it has not programmed healthd's services yet (docs/data-plane.md, Status)."""
        return self.status.startswith(("starting", "waiting"))


STARTING_UNPUBLISHED = LoaderView(status="starting: owns the bus name, has not published yet")


@dataclass(frozen=True)
class Memory:
    """What the gate remembers between events; each event returns a new one."""

    view: LoaderView | None = None      # None: no loader on the bus
    last_good: frozenset = frozenset()  # VIPs forwardable when a running loader was last evaluated
    lost_at: float | None = None        # when the running loader left (or said it was starting)
    deadline: float | None = None       # last_good is kept until then
    failed_start: bool = False          # a successor started and left since lost_at


@dataclass(frozen=True)
class Verdict:
    allowed: frozenset                  # VIPs (up in healthd) that may be advertised
    held: tuple = ()                    # (vip, reason) of the VIPs up in healthd but held back
    state: str = READY
    detail: str = ""
    until: float = 0.0                  # end of HOLDING (seconds, the caller's clock); 0 otherwise
    wake: float | None = None           # evaluate again at this time
    memory: Memory = field(default_factory=Memory)


def loader_seen(mem: Memory, view: LoaderView, now: float, params: Params) -> Memory:
    """The loader published `view` (or owns the name unpublished: STARTING_UNPUBLISHED)."""
    if not view.starting:
        return Memory(view=view, last_good=mem.last_good)
    if mem.view is not None and not mem.view.starting:      # running -> starting, same loader
        return replace(mem, view=view, lost_at=now, deadline=now + params.starting_max, failed_start=False)
    if mem.view is None and mem.lost_at is not None and not mem.failed_start:
        # a successor appeared while we held: keep holding while it starts, up to the bound
        return replace(mem, view=view, deadline=mem.lost_at + params.starting_max)
    return replace(mem, view=view)


def loader_gone(mem: Memory, now: float, params: Params) -> Memory:
    """The loader's bus name lost its owner."""
    if mem.view is None:
        return mem
    if not mem.view.starting:                               # a running loader left: hold for `grace`
        return replace(mem, view=None, lost_at=now, deadline=now + params.grace, failed_start=False)
    if mem.lost_at is None:                                 # never ran since we know it: nothing held
        return replace(mem, view=None)
    deadline = now + params.grace if mem.deadline is None else min(mem.deadline, now + params.grace)
    return replace(mem, view=None, deadline=deadline, failed_start=True)


def evaluate(mem: Memory, vips, health_services, now: float, params: Params) -> Verdict:
    """Which of `vips` (wire.VipState-like) may be advertised now. `health_services`
    (wire.ServiceState-like, may be empty) say which services make up each VIP."""
    up = sorted({v.vip for v in vips if v.up})
    if params.mode == IGNORE:
        return Verdict(frozenset(up), state=IGNORED, detail="not required (--dataplane ignore)", memory=mem)
    view = mem.view
    if view is not None and not view.starting:
        held = dict(running_reasons(view, up, health_services))
        allowed = frozenset(v for v in up if v not in held)
        detail = f"org.vc5.XdpLoader1: {view.status}"
        return Verdict(allowed, tuple(sorted(held.items())), READY, detail,
                       memory=replace(mem, last_good=allowed))
    if view is None:
        why = "org.vc5.XdpLoader1 is not on the bus"
    else:
        why = f"org.vc5.XdpLoader1 is starting ({view.status})"
    if mem.deadline is not None and now < mem.deadline and mem.last_good:
        allowed = frozenset(v for v in up if v in mem.last_good)
        held = tuple((v, f"{why}; it was not forwardable when the loader was lost")
                     for v in up if v not in allowed)
        return Verdict(allowed, held, HOLDING, f"{why}; keeping the {len(allowed)} VIP(s) that were "
                       "forwardable until `until`", until=mem.deadline, wake=mem.deadline, memory=mem)
    if mem.failed_start:
        why += "; a loader failed to start"
    elif mem.lost_at is not None:
        why += "; no forwarding loader within the hold"
    return Verdict(frozenset(), tuple((v, why) for v in up), DOWN, why,
                   memory=replace(mem, last_good=frozenset()))


def running_reasons(view: LoaderView, vips, health_services):
    """(vip, why) for each of `vips` a running loader would not forward; the others forward."""
    blocker = _global_blocker(view)
    if blocker:
        return [(v, blocker) for v in vips]
    programmed = {s.key: s for s in view.services}
    keys = {}
    for s in health_services:
        keys.setdefault(s.vip, set()).add(s.key)
    for s in view.services:
        keys.setdefault(s.vip, set()).add(s.key)
    out = []
    for vip in vips:
        why = ""
        if not keys.get(vip):
            why = "the data plane has no service for this VIP"
        for key in sorted(keys.get(vip, ())):
            s = programmed.get(key)
            if s is None:
                why = f"service {key} is not programmed yet"
            elif s.reason:
                why = f"service {key}: {s.reason}"
            if why:
                break
        if why:
            out.append((vip, why))
    return out


def _global_blocker(view: LoaderView) -> str:
    if not view.active:
        return "balancing is off (org.vc5.XdpLoader1.Manager.SetActive(false))"
    if view.learning:
        return "learning: the loader listens to the other balancers' flows (learn) before VIPs are advertised"
    if not view.interfaces:
        return "the loader reports no interface"
    for itf in view.interfaces:
        if not itf.attached:
            note = f" ({itf.note})" if itf.note else ""
            return f"interface {itf.name} has no vc5 program attached{note}"
    return ""
