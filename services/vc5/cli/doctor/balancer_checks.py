"""The checks of a balancer (docs/doctor.md, "Balancer"): pure functions of BalancerFacts.

Invariants: a daemon absent from the bus is a "fail" finding, never an exception; every
finding that is not ok names the command or configuration change that fixes it.
"""

from __future__ import annotations

from vc5.common import names

from .balancer_facts import BalancerFacts, interfaces_of
from .findings import fail, ok, warn
from .flowmem import flow_table_bytes

MIB = 1 << 20
BUSCTL = "busctl call {bus} {path} {iface} {member}"
LOADER_CALL = BUSCTL.format(bus=names.XDP_LOADER_BUS, path=names.XDP_LOADER_PATH,
                            iface=names.XDP_LOADER_MANAGER_IFACE, member="{member}")


def check_config(f: BalancerFacts) -> list:
    if f.config is None and f.config_missing:
        return [fail("config", f.config_path, "no such file: the daemons cannot start",
                     f"write the configuration to {f.config_path} (docs/configuration.md), or give "
                     "doctor --config FILE")]
    if f.config is None:
        more = len(f.config_problems) - 3
        shown = "; ".join(f.config_problems[:3]) + (f" (+{more} more)" if more > 0 else "")
        return [fail("config", f.config_path, f"not valid: {shown}",
                     f"edit {f.config_path}; `vc5ctl config check {f.config_path}` lists every problem")]
    c = f.config
    out = [ok("config", f.config_path, f"valid: {len(c.services)} service(s), {len(c.vips)} VIP(s), "
              f"interfaces {', '.join(c.interfaces) or '(none)'}")]
    if not c.interfaces:
        out.append(fail("config", "interfaces", "no interface is configured: XDP is attached nowhere",
                        f"list the NICs under `interfaces:` in {f.config_path}, then "
                        "systemctl restart vc5-xdp-loader (a restart keeps forwarding)"))
    return out


def check_bpffs(f: BalancerFacts) -> list:
    if f.bpffs:
        return [ok("bpffs", names.BPFFS_ROOT, "mounted")]
    return [fail("bpffs", names.BPFFS_ROOT, "not mounted: the loader cannot pin its maps, so every restart "
                 "drops the flow table", f"mount -t bpf bpf {names.BPFFS_ROOT}  (and in /etc/fstab: "
                 f"bpf {names.BPFFS_ROOT} bpf defaults 0 0)")]


def _loader_prog(f: BalancerFacts, name: str) -> int:
    for i in (f.loader or {}).get("Interfaces", ()):
        if i.name == name:
            return i.prog_id
    return 0


def check_xdp(f: BalancerFacts) -> list:
    """Every configured interface has vc5's program, in the configured mode."""
    out = []
    want = f.config.xdp_mode if f.config is not None else (f.loader or {}).get("Mode", "")
    for name in interfaces_of(f):
        nic = f.nics.get(name)
        if nic is None or not nic.exists:
            out.append(fail("xdp", name, "no such interface on this host", f"correct `interfaces:` in "
                            f"{f.config_path}, then systemctl restart vc5-xdp-loader"))
        elif not nic.prog_id:
            out.append(fail("xdp", name, "no XDP program attached: nothing is balanced here",
                            "systemctl restart vc5-xdp-loader  (or " + LOADER_CALL.format(member="Reattach")
                            + f" s {name})"))
        elif f.loader is not None and _loader_prog(f, name) not in (0, nic.prog_id):
            theirs = _loader_prog(f, name)
            out.append(fail("xdp", name, f"program {nic.prog_id} is attached, not vc5's ({theirs})",
                            LOADER_CALL.format(member="Reattach") + f" s {name}"))
        elif want == "native" and nic.xdp_mode != "native":
            out.append(fail("xdp", name, f"attached in {nic.xdp_mode} mode, configured native",
                            LOADER_CALL.format(member="Reattach") + f" s {name}"))
        elif nic.xdp_mode == "generic":
            out.append(warn("xdp", name, f"program {nic.prog_id} attached in generic (skb) mode: correct, "
                            "but slower than native",
                            f"if the driver (ethtool -i {name}) supports native XDP: set xdp_mode: native in "
                            f"{f.config_path}, then systemctl restart vc5-xdp-loader"))
        else:
            out.append(ok("xdp", name, f"program {nic.prog_id} attached in {nic.xdp_mode} mode"))
    return out


def check_offloads(f: BalancerFacts) -> list:
    """LRO and hardware GRO hand XDP merged super-frames (drivers refuse native XDP with them on);
    rxvlan strips the 802.1Q tag before XDP sees it, so VLAN rewrite cannot work
    (xdp_loader/offload.py switches it off on attach: still on means that failed)."""
    out = []
    vlans = bool(f.config is not None and (f.config.vlans or f.config.vlans6))
    for nic in f.nics.values():
        on = {k for k, (enabled, _) in nic.features.items() if enabled}
        if "large-receive-offload" in on:
            out.append(fail("offload", nic.name, "LRO is on: XDP would see merged frames",
                            f"ethtool -K {nic.name} lro off"))
        if "rx-gro-hw" in on:
            out.append(fail("offload", nic.name, "hardware GRO is on: XDP would see merged frames",
                            f"ethtool -K {nic.name} rx-gro-hw off"))
        vlan = on & {"rx-vlan-hw-parse", "tx-vlan-hw-insert"}
        if vlan:
            level = fail if vlans else warn
            out.append(level("offload", nic.name, f"VLAN offload on ({', '.join(sorted(vlan))}): XDP cannot "
                             "read or rewrite 802.1Q tags" + ("" if vlans else " (no VLANs are configured)"),
                             f"ethtool -K {nic.name} rxvlan off txvlan off"))
        if nic.error:
            out.append(warn("offload", nic.name, f"could not read: {nic.error}", f"ethtool -k {nic.name}"))
        elif not on & {"large-receive-offload", "rx-gro-hw", "rx-vlan-hw-parse", "tx-vlan-hw-insert"}:
            out.append(ok("offload", nic.name, "LRO, hardware GRO and VLAN offload are off"))
    return out


def check_queues(f: BalancerFacts) -> list:
    """XDP runs on the CPU that services the RX queue's interrupt, before RPS can move the packet:
    fewer RX queues than CPUs leaves CPUs idle for the data plane."""
    out = []
    for nic in f.nics.values():
        if not nic.exists or not nic.rx_queues:
            continue
        rps = any(m.strip("0,") for m in nic.rps_cpus)
        if nic.rx_queues < f.online_cpus:
            note = "; RPS is set, but it acts after XDP" if rps else ""
            out.append(warn("queues", nic.name, f"{nic.rx_queues} RX queue(s) for {f.online_cpus} CPUs: XDP "
                            f"runs on at most {nic.rx_queues} CPU(s){note}",
                            f"ethtool -L {nic.name} combined {f.online_cpus}  (ethtool -l {nic.name} shows "
                            "the maximum; spread the IRQs over the CPUs)"))
        else:
            out.append(ok("queues", nic.name, f"{nic.rx_queues} RX queues for {f.online_cpus} CPUs"))
    return out


def check_flow_memory(f: BalancerFacts) -> list:
    if f.config is None and f.config_missing:
        return [fail("config", f.config_path, "no such file: the daemons cannot start",
                     f"write the configuration to {f.config_path} (docs/configuration.md), or give "
                     "doctor --config FILE")]
    if f.config is None:
        return []
    flows = f.config.flows_per_cpu
    need = flow_table_bytes(flows, f.possible_cpus)
    what = (f"flows {flows:,}: flow tables of {need / MIB:.0f} MiB (the same on any number of CPUs), "
            f"{f.mem_available / MIB:.0f} MiB available of {f.mem_total / MIB:.0f} MiB")
    per_entry = max(1, need // max(1, flows))
    fits = max(1, f.mem_available // 2 // per_entry)
    fix = (f"lower flows (old name flows_per_cpu) in {f.config_path} (e.g. to {fits:,}), then "
           "vc5-xdp-loader --detach and start")
    if f.flows_pinned:      # already allocated: MemAvailable no longer includes it
        what += " (the table is pinned: already allocated)"
    if f.mem_available and need > f.mem_available and not f.flows_pinned:
        return [fail("memory", "flows", f"{what}: it does not fit", fix)]
    if f.mem_total and need > f.mem_total // 2:
        return [warn("memory", "flows", f"{what}: more than half of the memory", fix)]
    return [ok("memory", "flows", what)]


def run(f: BalancerFacts) -> list:
    from . import daemon_checks
    return (check_config(f) + check_bpffs(f) + daemon_checks.check_loader(f) + check_xdp(f)
            + check_offloads(f) + check_queues(f) + check_flow_memory(f)
            + daemon_checks.check_bgp(f) + daemon_checks.check_health(f))
