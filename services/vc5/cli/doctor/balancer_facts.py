"""Gather a balancer's state, read-only: the configuration, bpffs, netlink, ethtool features,
sysfs queues, /proc/meminfo and the three daemons' read-only D-Bus interfaces.

A daemon that is not on the bus is recorded as None (the checks report it); no system bus at
all is recorded in `bus_error`. Nothing here raises for a missing piece of the machine.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from vc5.common import names, wire

FEATURES = ("large-receive-offload", "rx-gro-hw", "rx-vlan-hw-parse", "tx-vlan-hw-insert")
SYS_NET = "/sys/class/net"
BUS_TIMEOUT = 5.0


@dataclass
class Nic:
    name: str
    exists: bool = True
    xdp_mode: str = ""          # native | generic | offload | multi | "" (nothing attached)
    prog_id: int = 0
    features: dict = field(default_factory=dict)   # ethtool feature -> (enabled, changeable)
    rx_queues: int = 0
    rps_cpus: tuple = ()        # each RX queue's rps_cpus mask, as hex text
    error: str = ""             # what could not be read


@dataclass
class BalancerFacts:
    config_path: str
    config: object = None           # vc5.config.Config, or None
    config_problems: tuple = ()     # "FILE:LINE:COLUMN: key: message" lines
    config_missing: bool = False    # no such file
    bpffs: bool = False
    nics: dict = field(default_factory=dict)    # name -> Nic (the configured interfaces)
    online_cpus: int = 1
    possible_cpus: int = 1
    mem_total: int = 0
    mem_available: int = 0
    flows_pinned: bool = False      # the flow table exists (pinned): its memory is already taken
    bus_error: str = ""             # "" = the system bus answered
    loader: dict | None = None      # typed org.vc5.XdpLoader1 properties; None = not on the bus
    bgp: dict | None = None         # org.vc5.Bgp1
    health: dict | None = None      # org.vc5.Health1


def read_config(facts: BalancerFacts) -> None:
    from vc5.config import ConfigError, load
    facts.config_missing = not os.path.exists(facts.config_path)
    try:
        facts.config = load(facts.config_path)
    except ConfigError as e:
        facts.config_problems = tuple(str(p) for p in e.problems) or (str(e),)
    except OSError as e:
        facts.config_problems = (f"{facts.config_path}: {e.strerror}",)


def cpu_count(path: str) -> int:
    """CPUs in a sysfs list such as "0-3,8" (/sys/devices/system/cpu/possible)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def meminfo(path: str = "/proc/meminfo") -> tuple:
    values = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def _rps(nic: Nic, ifindex: int, base: str = SYS_NET) -> None:
    """RPS masks from sysfs, only if that sysfs shows this namespace's interface (sysfs is the
    mounting namespace's: under `nsenter --net` it shows the host's interfaces)."""
    try:
        with open(os.path.join(base, nic.name, "ifindex")) as f:
            if int(f.read()) != ifindex:
                return
        qdir = os.path.join(base, nic.name, "queues")
        rx = sorted(q for q in os.listdir(qdir) if q.startswith("rx-"))
    except (OSError, ValueError):
        return
    masks = []
    for q in rx:
        try:
            with open(os.path.join(qdir, q, "rps_cpus")) as f:
                masks.append(f.read().strip())
        except OSError:
            pass
    nic.rps_cpus = tuple(masks)


def read_nic(name: str, ipr) -> Nic:
    from vc5.xdp_loader import attach
    nic = Nic(name)
    idx = ipr.link_lookup(ifname=name)
    if not idx:
        nic.exists = False
        return nic
    [link] = ipr.get_links(idx[0])
    nic.rx_queues = link.get_attr("IFLA_NUM_RX_QUEUES") or 0
    try:
        state = attach.query(idx[0], ipr)
        nic.xdp_mode, nic.prog_id = state.mode, state.prog_id
    except Exception as e:
        nic.error = f"XDP state: {e}"
    try:
        from pyroute2.ethtool import Ethtool
        e = Ethtool()
        try:
            feats = e.get_features(name).features
        finally:
            e.close()
        nic.features = {k: (bool(feats[k].enable), bool(feats[k].available)) for k in FEATURES if k in feats}
    except Exception as e:
        nic.error = f"ethtool features: {e}"
    _rps(nic, idx[0])
    return nic


async def read_bus(facts: BalancerFacts) -> None:
    from vc5.common import bus as vbus
    try:
        bus = await asyncio.wait_for(vbus.connect_system_bus(), BUS_TIMEOUT)
    except Exception as e:
        facts.bus_error = f"{type(e).__name__}: {e}"
        return
    try:
        daemons = (("loader", names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, wire.XDP_LOADER),
                   ("bgp", names.BGP_BUS, names.BGP_PATH, wire.BGP),
                   ("health", names.HEALTH_BUS, names.HEALTH_PATH, wire.HEALTH))
        for attr, name, path, schema in daemons:
            try:
                setattr(facts, attr, await vbus.get_all(bus, name, path, schema, timeout=BUS_TIMEOUT))
            except Exception as e:      # a daemon that does not answer is as good as absent
                facts.bus_error += f"{name}: {type(e).__name__}: {e}; "
    finally:
        bus.disconnect()


def flows_pin() -> str:
    """Where the loader pins its flow table (xdp_loader.dataplane.default_pin_dir()/flows)."""
    from vc5.xdp_loader import layout
    return f"{names.PIN_DIR}/v{layout.LAYOUT_VERSION}/flows"


def interfaces_of(facts: BalancerFacts) -> list:
    """The configured interfaces; without a valid configuration, those the loader reports."""
    if facts.config is not None and facts.config.interfaces:
        return list(facts.config.interfaces)
    if facts.loader is not None:
        return [i.name for i in facts.loader.get("Interfaces", ())]
    return []


def gather(config_path: str) -> BalancerFacts:
    from pyroute2 import IPRoute
    facts = BalancerFacts(config_path)
    read_config(facts)
    facts.bpffs = os.path.ismount(names.BPFFS_ROOT)
    facts.online_cpus = cpu_count("/sys/devices/system/cpu/online")
    facts.possible_cpus = cpu_count("/sys/devices/system/cpu/possible")
    facts.mem_total, facts.mem_available = meminfo()
    facts.flows_pinned = os.path.exists(flows_pin())
    asyncio.run(read_bus(facts))
    with IPRoute() as ipr:
        facts.nics = {name: read_nic(name, ipr) for name in interfaces_of(facts)}
    return facts
