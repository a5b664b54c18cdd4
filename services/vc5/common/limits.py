"""Resource limits (MemoryMax=, MemoryHigh=, LimitNOFILE=): say so in the journal before the kernel acts.

Every vc5 unit sets MemoryHigh= below MemoryMax= (docs/operations/limits.md):
above MemoryHigh= the kernel reclaims and throttles the service, at
MemoryMax= it kills it. A daemon runs `watch()` as a task beside its systemd
watchdog; every WATCH_S seconds it reads its own cgroup (/proc/self/cgroup ->
/sys/fs/cgroup/<path>/memory.current, memory.max, memory.high,
memory.events) and its descriptors (/proc/self/fd against RLIMIT_NOFILE),
and logs a rate-limited WARNING with MESSAGE_ID=MEMORY_LIMIT or
MESSAGE_ID=FD_LIMIT:

    memory at 86% of MemoryMax=384M (330M in use; above MemoryHigh=256M 12 times since the
    last warning: the kernel is reclaiming and throttling vc5-webd): raise it with
    `systemctl edit vc5-webd.service` ([Service] MemoryHigh=, MemoryMax=)

`note_fd_error(err, what)` (and the event-loop exception handler that
`install()` sets) turns EMFILE/ENFILE into one such warning naming
LimitNOFILE=, at most once every REPEAT_S, instead of a traceback per
failure. Nothing here raises: a missing or unreadable cgroup file (cgroup v1
without the memory controller, a shell) just means "no limit known".

The loader's start-up check (`flow_table_bytes`, `check_loader_memory`)
compares the flow table it is about to create with memory.max and
MemAvailable: BPF map memory is charged to the memory cgroup of the process
that creates it and stays charged while the maps are pinned.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from dataclasses import dataclass, field

from . import log as vlog

log = logging.getLogger("vc5.limits")

# journald MESSAGE_IDs (generated once, never changed; see vc5.common.messages).
MEMORY_LIMIT = "2fbd12d321794f85829cf2650eefcd69"
FD_LIMIT = "e9d30d2690a942ca9cc59888a12cd34b"
FLOW_TABLE_MEMORY = "68222be5bb044a6aa06086f3332eb88f"

WATCH_S = 10.0          # how often watch() reads the cgroup
REPEAT_S = 300.0        # at most one warning of a kind per this many seconds while it lasts
WARN_RATIO = 0.8        # warn at this share of MemoryMax= / LimitNOFILE=
CGROUP_ROOT = "/sys/fs/cgroup"
V1_UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as a huge page-aligned number


def mib(n: int | None) -> str:
    """systemd-style size: 384M, 1.5G; "infinity" for None."""
    if n is None:
        return "infinity"
    if n >= 1 << 30 and n % (1 << 30) == 0:
        return f"{n >> 30}G"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f}G"
    return f"{round(n / (1 << 20))}M"


# --------------------------------------------------------------------------- reading the cgroup

def cgroup_dirs(proc_cgroup: str = "/proc/self/cgroup", root: str = CGROUP_ROOT) -> list[str]:
    """Directories that may hold this process's memory files, best first.

    cgroup v2 (`0::/system.slice/x.service`): <root>/<path>, or
    <root>/unified/<path> on a hybrid host; cgroup v1 (`N:memory:/path`):
    <root>/memory/<path>.
    """
    out = []
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        path = path.lstrip("/")
        if hid == "0" and controllers == "":
            out += [os.path.join(root, path), os.path.join(root, "unified", path)]
        elif "memory" in controllers.split(","):
            out.append(os.path.join(root, "memory", path))
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _limit(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        n = int(text)
    except ValueError:
        return None
    return None if n >= V1_UNLIMITED else n


@dataclass
class Memory:
    """One reading of a cgroup's memory: bytes; None = no limit (or not known)."""
    directory: str
    current: int
    max: int | None = None
    high: int | None = None
    events: dict[str, int] = field(default_factory=dict)    # high, max, oom, oom_kill (v2)

    @property
    def ratio(self) -> float | None:
        return self.current / self.max if self.max else None


def read_memory(directories: list[str] | None = None) -> Memory | None:
    """This process's cgroup memory (the first directory that has memory files); None if none does."""
    for d in cgroup_dirs() if directories is None else directories:
        current = _read(os.path.join(d, "memory.current"))
        if current is not None:                                    # cgroup v2
            events = {}
            for line in (_read(os.path.join(d, "memory.events")) or "").splitlines():
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    events[key] = int(value)
            return Memory(d, int(current), _limit(_read(os.path.join(d, "memory.max"))),
                          _limit(_read(os.path.join(d, "memory.high"))), events)
        usage = _read(os.path.join(d, "memory.usage_in_bytes"))
        if usage is not None:                                      # cgroup v1
            failcnt = _read(os.path.join(d, "memory.failcnt"))
            return Memory(d, int(usage), _limit(_read(os.path.join(d, "memory.limit_in_bytes"))),
                          _limit(_read(os.path.join(d, "memory.soft_limit_in_bytes"))),
                          {"max": int(failcnt)} if failcnt and failcnt.isdigit() else {})
    return None


def nofile_limit() -> int | None:
    """The soft RLIMIT_NOFILE (LimitNOFILE=); None if unlimited."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def open_fds(fd_dir: str = "/proc/self/fd") -> int | None:
    try:
        return len(os.listdir(fd_dir))
    except OSError:
        return None


# --------------------------------------------------------------------------- warnings

def _raise_hint(service: str, *settings: str) -> str:
    unit = service if service.endswith(".service") else f"{service}.service"
    return f"raise it with `systemctl edit {unit}` ([Service] {', '.join(s + '=' for s in settings)})"


class Watch:
    """The checks of one daemon; `check()` is one round (watch() calls it every WATCH_S)."""

    def __init__(self, service: str, *, directories: list[str] | None = None, fd_dir: str = "/proc/self/fd",
                 nofile=nofile_limit, clock=time.monotonic, repeat_s: float = REPEAT_S,
                 warn_ratio: float = WARN_RATIO):
        self.service = service
        self.directories = directories
        self.fd_dir = fd_dir
        self.nofile = nofile
        self.clock = clock
        self.repeat_s = repeat_s
        self.warn_ratio = warn_ratio
        self._events: dict[str, int] | None = None     # memory.events at the last warning (or start)
        self._warned: dict[str, float] = {}            # kind -> clock() of its last warning
        self._over: set[str] = set()                   # kinds over their threshold at the last check

    def _due(self, kind: str) -> bool:
        last = self._warned.get(kind)
        return last is None or self.clock() - last >= self.repeat_s

    def _warn(self, kind: str, message: str, message_id: str, **fields) -> None:
        self._warned[kind] = self.clock()
        vlog.event(log, logging.WARNING, message, message_id=message_id, **fields)

    def check(self) -> list[str]:
        """Read the cgroup and the fds; log what is due; return the messages logged (for tests)."""
        logged = []
        mem = read_memory(self.directories)
        if mem is not None:
            logged += self._check_memory(mem)
        fds, limit = open_fds(self.fd_dir), self.nofile()
        if fds is not None and limit:
            logged += self._check_fds(fds, limit)
        return logged

    def _check_memory(self, mem: Memory) -> list[str]:
        events = dict(mem.events)
        if self._events is None:
            self._events = events
        grew = {k: events.get(k, 0) - self._events.get(k, 0) for k in ("high", "max", "oom_kill")}
        near = mem.ratio is not None and mem.ratio >= self.warn_ratio
        throttled = grew["high"] > 0 or grew["max"] > 0 or grew["oom_kill"] > 0
        if not (near or throttled):
            if "memory" in self._over:
                self._over.discard("memory")
                vlog.event(log, logging.INFO, f"memory back to {mib(mem.current)}"
                           + (f" ({mem.ratio:.0%} of MemoryMax={mib(mem.max)})" if mem.max else ""),
                           message_id=MEMORY_LIMIT, memory_current=mem.current)
            return []
        self._over.add("memory")
        if not self._due("memory"):
            return []
        parts = [f"{mib(mem.current)} in use"]
        if grew["high"] > 0:
            parts.append(f"above MemoryHigh={mib(mem.high)} {grew['high']} times since the last warning: "
                         f"the kernel is reclaiming and throttling {self.service}")
        if grew["max"] > 0:
            parts.append(f"MemoryMax= reached {grew['max']} times")
        if grew["oom_kill"] > 0:
            parts.append(f"{grew['oom_kill']} processes OOM-killed")
        head = (f"memory at {mem.ratio:.0%} of MemoryMax={mib(mem.max)}" if mem.max is not None
                else f"memory above MemoryHigh={mib(mem.high)}")
        text = f"{head} ({'; '.join(parts)}): {_raise_hint(self.service, 'MemoryHigh', 'MemoryMax')}"
        self._events = events
        self._warn("memory", text, MEMORY_LIMIT, memory_current=mem.current, memory_max=mem.max,
                   memory_high=mem.high)
        return [text]

    def _check_fds(self, fds: int, limit: int) -> list[str]:
        if fds < self.warn_ratio * limit:
            self._over.discard("fds")
            return []
        self._over.add("fds")
        if not self._due("fds"):
            return []
        text = (f"{fds} file descriptors open, {fds / limit:.0%} of LimitNOFILE={limit}: "
                + _raise_hint(self.service, "LimitNOFILE"))
        self._warn("fds", text, FD_LIMIT, fds=fds, nofile=limit)
        return [text]

    def note_fd_error(self, err: BaseException, what: str) -> bool:
        """EMFILE/ENFILE -> one rate-limited WARNING naming LimitNOFILE=; True if it was one of them."""
        if not isinstance(err, OSError) or err.errno not in (errno.EMFILE, errno.ENFILE):
            return False
        if self._due("fd-error"):
            if err.errno == errno.EMFILE:
                limit = self.nofile()
                text = (f"out of file descriptors while {what} (EMFILE: LimitNOFILE={limit or 'infinity'} "
                        f"reached, {open_fds(self.fd_dir) or '?'} open); {self.service} keeps running and "
                        f"retries: {_raise_hint(self.service, 'LimitNOFILE')}")
            else:
                text = (f"out of file descriptors while {what} (ENFILE: the system-wide limit fs.file-max is "
                        f"reached); {self.service} keeps running and retries")
            self._warn("fd-error", text, FD_LIMIT, errno=errno.errorcode[err.errno])
        return True


_watch: Watch | None = None


def current(service: str = "vc5") -> Watch:
    """The process's Watch (made on first use)."""
    global _watch
    if _watch is None:
        _watch = Watch(service)
    return _watch


def note_fd_error(err: BaseException, what: str) -> bool:
    """Module-level form of Watch.note_fd_error for call sites that have no Watch at hand."""
    return current().note_fd_error(err, what)


def install(service: str, loop: asyncio.AbstractEventLoop | None = None) -> Watch:
    """Make the process's Watch for `service` and route EMFILE/ENFILE that reach the event loop's
    exception handler (asyncio's own accept loops) to it instead of a traceback."""
    global _watch
    _watch = Watch(service)
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(lp, context):
        exc = context.get("exception")
        if exc is not None and _watch.note_fd_error(exc, context.get("message") or "serving"):
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return _watch


async def watch(service: str, interval: float = WATCH_S) -> None:
    """Run as a task beside the systemd watchdog: check() every `interval` s, forever."""
    w = _watch if _watch is not None and _watch.service == service else install(service)
    while True:
        try:
            w.check()
        except Exception:                  # a limits check must never take the daemon down
            log.debug("limits check failed", exc_info=True)
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------- the loader's flow table

# The flow tables (bpf/vc5_flows.h, docs/data-plane.md "Flow table"): four BPF_MAP_TYPE_LRU_HASH,
# preallocated, one 16-byte value per flow shared by every CPU (no per-CPU part):
#   flows       TCP/IPv4, `flows` entries (the setting), key 12 B
#   flows6      TCP/IPv6, flow_side(flows) entries, key 36 B (the tuple)
#   flows_udp   UDP/IPv4, flow_side(flows) entries, key 12 B
#   flows_udp6  UDP/IPv6, flow_side(flows) entries, key 36 B
# ELEMENT = struct htab_elem (48) + key rounded to 8 + value (16); BUCKET = 16 bytes per entry
# rounded up to a power of two. Measured on kernel 6.18 (bench/flow_tables.py, fdinfo memlock):
# 1,000,000 entries with the 12-byte key = 92.3 MiB = 97 B/entry, as this formula says.
FLOW_ELEMENT_BYTES = 80          # IPv4 tables
FLOW_ELEMENT_BYTES_V6 = 104      # IPv6 tables
FLOW_PER_CPU_BYTES = 0           # none since issue #14 (was 16 per possible CPU per entry)
FLOW_BUCKET_BYTES = 16
FLOW_SIDE_MIN = 1024             # = vc5.xdp_loader.layout.MIN_SIDE_FLOWS
# The other maps (services, backends, be_stats, nat, nat_reply, ...): fixed sizes
# (bench/limits.py loader, 2 possible CPUs: ~12 MiB charged + ~6 MiB per CPU), and the
# processes of a first start: the bcc compiler child (peak 135 MiB) beside the loader (30 MiB).
OTHER_MAPS_BYTES = 13 << 20       # + sessions (1 MiB, issue #14) since the measurement
OTHER_MAPS_PER_CPU_BYTES = 6 << 20
# Source prefix counters (bpf/vc5_prefix.h): 2^20 IPv4 /20s + 65,536 IPv6 buckets, a __u64 per
# CPU each (8.5 MiB per possible CPU), plus the per-CPU array's table of pointers (8.5 MiB);
# measured with /proc/meminfo's Percpu on 2 CPUs: +17 MiB. The block list tries grow with it.
PREFIX_MAPS_BYTES = 9 << 20
PREFIX_MAPS_PER_CPU_BYTES = 17 << 19
PROCESS_BYTES = 192 << 20
SHARED_MAX = 262144         # = xdp_loader.layout.SHARED_MAX (this module does not import the loader)


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def flow_side(flows: int) -> int:
    """Entries of each of flows6, flows_udp and flows_udp6 (= layout.flow_table_sizes)."""
    return max(FLOW_SIDE_MIN, int(flows) // 4)


def flow_table_bytes(flows: int, ncpus: int = 1) -> int:
    """Kernel memory of the four flow tables for the setting `flows` (TCP/IPv4 entries). The
    tables have no per-CPU part, so `ncpus` (kept for callers) does not change it."""
    side = flow_side(flows)
    return (int(flows) * FLOW_ELEMENT_BYTES + FLOW_BUCKET_BYTES * _pow2(flows)
            + side * (2 * FLOW_ELEMENT_BYTES_V6 + FLOW_ELEMENT_BYTES) + 3 * FLOW_BUCKET_BYTES * _pow2(side))


def maps_bytes(flows: int, ncpus: int) -> int:
    """Every map of the data plane (flow table included)."""
    return (flow_table_bytes(flows, ncpus) + shared_table_bytes(min(int(flows), SHARED_MAX))
            + OTHER_MAPS_BYTES + PREFIX_MAPS_BYTES
            + (OTHER_MAPS_PER_CPU_BYTES + PREFIX_MAPS_PER_CPU_BYTES) * int(ncpus))


def shared_table_bytes(flows: int) -> int:
    """The `shared` LRU hash of flow sharing (bpf/vc5_share.h): `flows` entries (flows_per_cpu, at
    most SHARED_MAX), one value each, made whether or not sharing is configured (memlock 120 B per
    entry measured with 262,144 entries)."""
    return int(flows) * FLOW_ELEMENT_BYTES_V6 + FLOW_BUCKET_BYTES * _pow2(flows)   # 40-byte key, as flows6


@dataclass(frozen=True)
class Verdict:
    ok: bool               # False: refuse to start
    message: str = ""      # "" when there is nothing to say


def check_loader_memory(flows: int, ncpus: int, reuse: bool, memory: Memory | None,
                        mem_available: int | None, unit: str = "vc5-xdp-loader.service") -> Verdict:
    """Whether the loader may create its maps. Pure (the caller reads the cgroup and /proc/meminfo).

    A new flow table (`reuse` False) is refused when it would not fit under the cgroup's
    memory.max (with the compiler and the loader beside it) or in MemAvailable; pins that
    already exist are re-used as they are, so then it is only a warning.
    """
    table = flow_table_bytes(flows, ncpus)
    maps = maps_bytes(flows, ncpus)
    need = maps + PROCESS_BYTES
    side = flow_side(flows)
    what = (f"flows {flows:,} needs flow tables of about {mib(table)} ({flows:,} TCP/IPv4 entries x "
            f"{FLOW_ELEMENT_BYTES} bytes, {side:,} UDP/IPv4 x {FLOW_ELEMENT_BYTES} and 2 x {side:,} IPv6 x "
            f"{FLOW_ELEMENT_BYTES_V6}, + buckets; the same on any number of CPUs), "
            f"{mib(maps)} with the other maps, {mib(need)} with the compiler and the loader")
    problems = []
    if memory is not None and memory.max is not None and need > memory.max:
        problems.append(f"more than this unit's MemoryMax={mib(memory.max)}")
    if mem_available is not None and maps > mem_available:
        problems.append(f"more than the host's MemAvailable ({mib(mem_available)})")
    high = memory.high if memory is not None else None
    if not problems:
        if high is not None and need > high:
            return Verdict(True, f"{what}: above MemoryHigh={mib(high)}; the kernel will throttle the loader "
                                 f"while the maps are made: raise it with `systemctl edit {unit}`")
        return Verdict(True)
    fix = (f"lower flows in the configuration, or raise MemoryMax= (and MemoryHigh=) with "
           f"`systemctl edit {unit}` to at least {mib(need + (64 << 20))}")
    if reuse:
        return Verdict(True, f"{what}: {' and '.join(problems)}; the pinned maps exist and are re-used, "
                             f"but a start after `vc5-xdp-loader --detach` would be refused: {fix}")
    return Verdict(False, f"not creating the data plane: {what}: {' and '.join(problems)}: {fix}")


def mem_available(path: str = "/proc/meminfo") -> int | None:
    for line in (_read(path) or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None
