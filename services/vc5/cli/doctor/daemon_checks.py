"""The balancer's daemons, as their read-only D-Bus interfaces publish them: pure functions of
BalancerFacts (loader, bgp, health are typed GetAll results; None = not on the bus).

Invariant: a daemon that is not on the bus is a finding ("fail"), not an error; without a
system bus at all, one finding says so and the per-daemon checks are skipped.
"""

from __future__ import annotations

from vc5.common import names

from .balancer_checks import LOADER_CALL
from .balancer_facts import BalancerFacts
from .findings import fail, ok, warn

BGP_CALL = f"busctl call {names.BGP_BUS} {names.BGP_PATH} {names.BGP_MANAGER_IFACE}"


def _absent(check: str, unit: str, bus: str):
    return fail(check, unit, f"{unit} is not on the bus ({bus} has no owner)",
                f"systemctl start {unit}  (journalctl -u {unit} says why it stopped)")


def _no_bus(f: BalancerFacts, check: str, unit: str, bus: str):
    if f.bus_error and all(x is None for x in (f.loader, f.bgp, f.health)):
        return [fail(check, unit, f"cannot ask {unit}: no system bus ({f.bus_error.rstrip('; ')})",
                     "systemctl start dbus  (or set DBUS_SYSTEM_BUS_ADDRESS)")]
    return [_absent(check, unit, bus)]


def check_loader(f: BalancerFacts) -> list:
    x = f.loader
    if x is None:
        return _no_bus(f, "loader", "vc5-xdp-loader", names.XDP_LOADER_BUS)
    out = [ok("loader", "vc5-xdp-loader", f"status {x.get('Status', '?')}, mode {x.get('Mode', '?')}")]
    if not x.get("Active", True):
        out.append(fail("loader", "balancing", "off: every packet goes to the kernel (XDP_PASS)",
                        LOADER_CALL.format(member="SetActive") + " b true"))
    status = x.get("Status", "")
    if status and not status.startswith("running"):
        out.append(warn("loader", "status", f"{status!r}, not running",
                        "wait for it, or see journalctl -u vc5-xdp-loader"))
    for i in x.get("Interfaces", ()):
        if i.note:
            out.append(warn("xdp", i.name, f"the loader says: {i.note}",
                            "see journalctl -u vc5-xdp-loader; once the cause is fixed, attach again: "
                            + LOADER_CALL.format(member="Reattach") + f" s {i.name}"))
    return out


def check_bgp(f: BalancerFacts) -> list:
    """Each peer Established; advertising not held back by maintenance or the data-plane gate."""
    b = f.bgp
    if b is None:
        return _no_bus(f, "bgp", "vc5-bgpd", names.BGP_BUS)
    out = []
    if not b.get("HealthConnected", True):
        out.append(fail("bgp", "vc5-healthd", "vc5-bgpd does not follow vc5-healthd: nothing is advertised",
                        "systemctl start vc5-healthd"))
    peers = b.get("Peers", ())
    if not peers:
        out.append(ok("bgp", "peers", "no BGP peer is configured"))
    for p in peers:
        if p.state == "Established":
            out.append(ok("bgp", p.address, f"Established for {p.uptime_s} s, "
                          f"{len(p.advertised_prefixes)} prefix(es) advertised"))
            continue
        why = f"; last error: {p.last_error}" if p.last_error else ""
        out.append(fail("bgp", p.address, f"{p.state}, not Established{why}",
                        f"check the router's side of this session (its address, AS {p.remote_asn or '?'}, "
                        f"md5) and that TCP port 179 is reachable; then {BGP_CALL} ResetPeer s {p.address}"))
    maintenance = b.get("Maintenance", "off")
    if maintenance != "off":
        out.append(warn("bgp", "maintenance", f"{maintenance}: the VIPs are withdrawn on purpose",
                        "vc5ctl maintenance off  (when the work is done)"))
    gate = b.get("DataPlane")
    for held in getattr(gate, "held", ()):
        out.append(fail("bgp", held.vip, f"up in vc5-healthd but not offered to the routers: {held.reason}",
                        "fix the data plane for it (see the xdp and loader findings; "
                        "`vc5ctl maintenance status` shows the gate)"))
    return out


def _backend_fix(service, backend) -> str:
    tunnel = "" if service.tunnel_type in ("", "none") else f" --tunnel {service.tunnel_type}" + (
        f":{service.tunnel_port}" if service.tunnel_port else "")
    return f"on {backend.address}: vc5ctl doctor backend --vip {service.vip}{tunnel}; and see its check"


def _backend_finding(service, backend, key: str):
    name = f"{key} {backend.address}:{backend.port}"
    if backend.disabled:
        return warn("backend", name, "disabled in the configuration (trailing *): checked, never used",
                    "remove the * after it in the configuration, then vc5ctl reload")
    if backend.drained:
        return warn("backend", name, "drained by an operator: no new flows",
                    f"vc5ctl undrain {backend.address} --service {key}  (when it may take traffic)")
    if backend.weight == 0:
        return warn("backend", name, "weight 0: never used", "give it a weight above 0, then vc5ctl reload")
    if not backend.up:
        return warn("backend", name, f"down: {backend.diagnostic or 'no check has passed yet'}",
                    _backend_fix(service, backend))
    return None


def _programmed(f: BalancerFacts) -> dict:
    """The loader's view: service key -> ProgrammedService."""
    return {s.key: s for s in (f.loader or {}).get("Services", ())}


def check_health(f: BalancerFacts) -> list:
    """Each service up; each backend usable, or why not (healthd's and the loader's reasons)."""
    h = f.health
    if h is None:
        return _no_bus(f, "health", "vc5-healthd", names.HEALTH_BUS)
    out = []
    if h.get("LastReloadError"):
        out.append(warn("health", "reload", "the last reload was refused (the previous configuration runs): "
                        + h["LastReloadError"].splitlines()[0], "vc5ctl config check; fix it; vc5ctl reload"))
    programmed = _programmed(f)
    for s in h.get("Services", ()):
        key = f"{s.vip}:{s.port}:{s.protocol}"
        if s.up:
            out.append(ok("service", key, f"up: {s.available} of {len(s.backends)} backend(s) usable, "
                          f"need {s.need}"))
        else:
            out.append(fail("service", key, f"down: {s.available} usable backend(s), need {s.need}",
                            "bring backends up (see the backend findings), or lower `need`, then "
                            "vc5ctl reload"))
        for b in s.backends:
            finding = _backend_finding(s, b, key)
            if finding is not None:
                out.append(finding)
        p = programmed.get(key)
        if p is not None and p.reason:
            out.append(fail("service", key, f"not programmed in the data plane: {p.reason}",
                            LOADER_CALL.format(member="Resync") + "  (and see journalctl -u vc5-xdp-loader)"))
        for pb in getattr(p, "backends", ()):
            healthy = any(b.address == pb.address and b.up and not b.drained for b in s.backends)
            if healthy and not pb.in_table and pb.reason:
                out.append(fail("backend", f"{key} {pb.address}", f"up, but the loader cannot use it: "
                                f"{pb.reason}", LOADER_CALL.format(member="Resync")
                                + "  (and see journalctl -u vc5-xdp-loader)"))
    return out
