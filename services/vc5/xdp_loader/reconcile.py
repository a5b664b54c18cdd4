"""One reconciliation, with every input an argument:

    healthd's Services (tuple[wire.ServiceState]) + the network view (netinfo.NetView)
        -> planner.plan        -> PlannedService per service (published as Services)
        -> planner.to_specs    -> specs.ServiceSpec per service
        -> the maps            -> DataPlane.set_service / remove_service, only what changed

`reconcile()` reads nothing but its arguments and writes nothing but the
data plane it is given; it returns what the caller needs to publish and to
pass to the next call (`programmed`). The policy it implements is in
docs/data-plane.md, "From healthd's Services to the maps": only services whose
spec changed are written (each with ONE map update), services healthd no
longer lists are removed, the loader never guesses (the caller does not call
it before healthd has been read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from . import planner


@dataclass(frozen=True)
class Reconciled:
    planned: tuple                  # planner.PlannedService, in healthd's order
    programmed: Mapping = field(default_factory=dict)   # key -> specs.ServiceSpec the maps hold
    errors: tuple = ()              # (key, why) of the services the data plane refused
    removed: tuple = ()             # keys removed from the maps (healthd no longer lists them)

    @property
    def in_table(self) -> int:
        """Backends in a Maglev table, over all services."""
        return sum(len(p.table_members) for p in self.planned)


def reconcile(dp, health, view, programmed: Mapping, *, redirect_ifindexes=(), untagged: bool = False,
              force: bool = False, stateless: frozenset = frozenset()) -> Reconciled:
    """Bring `dp` (a dataplane.DataPlane, or anything with its service methods) to the plan of
    `health` over `view`. `programmed` is the previous call's Reconciled.programmed ({} at first);
    `force` rewrites every service; `stateless`: keys of the services that store no flows."""
    planned = planner.plan(health, view, redirect_ifindexes, untagged)
    for slot, ifindex in planner.redirect_slots(planned).items():
        dp.set_redirect(slot, ifindex)
    wanted = {p.key: planner.to_specs(p, p.key in stateless) for p in planned}
    now = dict(programmed)
    errors = []
    for key, spec in wanted.items():
        if force or now.get(key) != spec:
            try:
                dp.set_service(spec)
            except (ValueError, OSError) as e:
                errors.append((key, str(e)))
                continue
            now[key] = spec
    removed = []
    for skey in dp.services():
        key = str(skey)
        if key not in wanted:
            dp.remove_service(skey.vip, skey.port, skey.protocol)
            now.pop(key, None)
            removed.append(key)
    return Reconciled(planned, now, tuple(errors), tuple(removed))
