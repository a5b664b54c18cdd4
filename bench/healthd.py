#!/usr/bin/python3
"""Benchmark vc5-healthd's checks against a local farm in network namespaces (needs root).

    prober netns  eth0 10.9.0.1/24 ---- veth ---- farm netns  eth0 10.9.0.2/24
    route 10.10.0.0/16 via 10.9.0.2              `ip route add local 10.10.0.0/16 dev lo` (AnyIP):
                                                 every 10.10.x.y is a backend address;
                                                 nginx :80, dnsmasq :53, a 200/500 switchable
                                                 aiohttp server on 10.9.0.2:8081

Prints, in one run:
  * baseline: raw aiohttp GET rate (keep-alive, 64 in flight) against the same
    nginx, without healthd's scheduler, and its CPU per request;
  * healthd: sustained rounds per second of an http / syn / dns(udp) mix
    (N backends each, one round per `interval`, jittered) measured in-process
    over a window, CPU used by the process (one core = 100 %), p50/p99 round
    latency per check type;
  * failure -> unusable: from the moment the switchable backend starts
    answering 500 until a PropertiesChanged on the bus shows its `usable`
    false (what xdp-loader acts on), and healthd's own share of it (from the
    deciding round's end to the signal's arrival);
  * why DNS checks fail, if they do: replies that arrived for probes already
    timed out, the UDP receive queues of healthd's sockets and of dnsmasq's
    (sampled every 20 ms from /proc/PID/net/udp), the event-loop lag;
  * what healthd costs (the sizes behind units/vc5-healthd.service): RSS,
    open descriptors and threads, sampled during the window. The baseline
    runs in its own process, so these are healthd's (and the bench's hooks).

Same tree against a base (ABBA: the machine is shared, so alternate runs):
VC5_SERVICES=/path/to/base/services makes the worker import that tree's vc5.

Usage: sudo /usr/bin/python3 bench/healthd.py [N per check type (default 1700)] [interval s (default 1)]
(VC5_BENCH_PROFILE=FILE writes a cProfile of healthd's measurement window to FILE.)

Same-run comparison with another tree (no network namespaces; a private bus each):

    /usr/bin/python3 bench/healthd.py compare OTHER_TREE [rounds (50)] [reload backends (1000)]
                                                         [flush backends (10000)]

  * reload latency: SIGHUP -> the new Generation in a PropertiesChanged, and a
    Manager.Reload call's round trip, `rounds` times each against the real
    vc5-healthd of each tree, both running at once (each on its own private
    bus) and the rounds alternating between them; backends without checks;
  * one Services PropertiesChanged with `flush backends` backends, in-process on
    a real bus connection: after a reload (every service re-encoded) and after one
    backend changed.
"""

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# VC5_SERVICES: the services/ of the tree under test (compare's workers), else this one's.
sys.path[:0] = [REPO, os.environ.get("VC5_SERVICES") or os.path.join(REPO, "services")]

from tests.integration.health import procstat  # noqa: E402
from tests.lib import netns  # noqa: E402

PY = "/usr/bin/python3"
FAIL_ADDR, FAIL_PORT = "10.9.0.2", 8081

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log crit;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {{ listen 80 backlog=4096; location / {{ return 200 "ok\\n"; }} }}
}}
"""

FAIL_SERVER = """\
import sys
from aiohttp import web
state = {"status": 200}
async def alive(r):
    return web.Response(status=state["status"], text="x")
async def set_(r):
    state["status"] = int(r.query["status"])
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/alive", alive)
app.router.add_post("/set", set_)
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), access_log=None,
            print=lambda *a: print("ready", flush=True))
"""


def backends(n):
    return [f"10.10.{i // 250}.{i % 250 + 1}" for i in range(n)]


PER_SERVICE = 250      # vc5.config allows at most 255 servers per service
KINDS = (("http", "      http:\n"), ("syn", "      80:\n"), ("dns", "      domain/udp:\n"))


def config(n, interval):
    """For each check type, ceil(n / 250) services (VIP 198.18.<type>.<chunk>) sharing the n backends."""
    addrs = backends(n)
    out = ["services:"]
    for t, (name, policy) in enumerate(KINDS):
        for c in range(0, n, PER_SERVICE):
            servers = "\n".join(f"      - {a}" for a in addrs[c:c + PER_SERVICE])
            k = c // PER_SERVICE
            out.append(f"  - name: b{name}{k}\n    virtual: 198.18.{t}.{k + 1}\n"
                       f"    interval: {interval}\n    servers:\n{servers}\n    policy:\n{policy}")
    out.append(f"  - name: bfail\n    virtual: 192.0.2.9\n    interval: {interval}\n"
               f"    servers: [{FAIL_ADDR}]\n    policy:\n      {FAIL_PORT}/http:\n        path: /alive\n")
    return "\n".join(out)


# ---- the worker: runs inside the prober namespace ----------------------------------------------

def udp_drops(ns):
    """UDP datagrams dropped for a full receive buffer in `ns` (nstat), all families."""
    out = ns.run("nstat -az UdpRcvbufErrors Udp6RcvbufErrors", check=False).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if "RcvbufErrors" in line)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


async def baseline_http(addresses, seconds=4.0, concurrency=64):
    import aiohttp
    lat, n = [], 0
    conn = aiohttp.TCPConnector(limit=concurrency, limit_per_host=2)
    async with aiohttp.ClientSession(connector=conn) as s:
        stop = time.monotonic() + seconds
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()

        async def worker(k):
            nonlocal n
            i = k
            while time.monotonic() < stop:
                a = addresses[i % len(addresses)]
                i += concurrency
                t = time.perf_counter()
                async with s.get(f"http://{a}/") as r:
                    await r.read()
                lat.append(time.perf_counter() - t)
                n += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return {"rate": n / wall, "cpu_share": cpu / wall, "cpu_us_per_req": cpu / max(n, 1) * 1e6,
            "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


FAIL_KEY = f"192.0.2.9:{FAIL_PORT}:tcp"


class Counts:
    """What healthd's rounds did in the measurement window (hooks on_result and the DNS parser)."""

    def __init__(self, d):
        from vc5.healthd.checks import dns as dns_check
        from vc5.healthd.checks import runner as rn
        self.on = False
        self.rounds = self.failed = self.dns_failed = self.replies = 0
        self.lat = {"http": [], "syn": [], "dns": []}
        self.failures = {}            # diagnostic -> count, in the window
        self.fail_rounds = []         # (time, passed) of the switchable backend's rounds
        self._kind = {str(t): name for t, (name, _) in enumerate(KINDS)}
        self._original = d.on_result
        d.on_result = self.on_result
        # took_ms in microsecond resolution for the figures (the daemon publishes whole ms)
        rn._ms = lambda t0: (time.monotonic() - t0) * 1000.0
        # every DNS reply healthd parses, matched or not: replies - passed dns rounds = late replies
        parse = dns_check.parse_reply_header

        def counting_parse(data):
            self.replies += self.on
            return parse(data)
        dns_check.parse_reply_header = counting_parse

    def on_result(self, skey, bkey, r):
        if self.on:
            self.rounds += 1
            self.failed += not r.passed
            k = self._kind.get(skey.split(".")[2]) if skey.startswith("198.18.") else None
            if not r.passed:
                why = r.diagnostic.split(" - ")[-1][:40]
                self.failures[why] = self.failures.get(why, 0) + 1
            if k:
                self.lat[k].append(r.took_ms)
                self.dns_failed += k == "dns" and not r.passed
        if skey == FAIL_KEY:
            self.fail_rounds.append((time.perf_counter(), r.passed))
        self._original(skey, bkey, r)


async def measure(d, counts, window):
    """Rate, CPU, latency, event-loop lag, RSS, descriptors and UDP queues over `window` seconds."""
    counts.on = True
    profile = None
    if os.environ.get("VC5_BENCH_PROFILE"):
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    lag = []                  # event-loop lag: how late a 10 ms sleep wakes up

    async def lag_sampler():
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            lag.append((time.monotonic() - t - 0.01) * 1e3)
    lagging = asyncio.ensure_future(lag_sampler())
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    with procstat.Sampler(procstat.rss_kib, 0.1) as rss, procstat.Sampler(procstat.fds, 0.1) as fds, \
            procstat.Sampler(procstat.udp_rx_queue, 0.02) as rxq, procstat.Sampler(procstat.threads) as th:
        await asyncio.sleep(window)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    counts.on = False
    lagging.cancel()
    if profile is not None:
        import pstats
        profile.disable()
        with open(os.environ["VC5_BENCH_PROFILE"], "w") as f:
            pstats.Stats(profile, stream=f).sort_stats("tottime").print_stats(60)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    c, lat = counts, counts.lat
    result = {"pairs": len(d.scheduler), "rounds_per_s": c.rounds / wall, "failed_rounds": c.failed,
              "cpu_share": cpu / wall, "rounds_per_cpu_s": c.rounds / max(cpu, 1e-9),
              "failures": dict(sorted(c.failures.items(), key=lambda kv: -kv[1])[:5]),
              "dns_rounds": len(lat["dns"]), "dns_failed": c.dns_failed,
              "dns_late_replies": c.replies - (len(lat["dns"]) - c.dns_failed),
              "rss_max_mib": rss.max / 1024, "fds_max": fds.max, "threads_max": th.max - 4,
              "rx_queue_max_kib": rxq.max / 1024, "rx_queue_mean_kib": rxq.mean / 1024,
              "loop_lag_p50_ms": pct(lag, 50), "loop_lag_p99_ms": pct(lag, 99),
              "loop_lag_max_ms": max(lag, default=0)}
    for k, xs in lat.items():
        result[f"{k}_p50_ms"], result[f"{k}_p99_ms"] = pct(xs, 50), pct(xs, 99)
    return result


async def watch_usable():
    """A subscriber, as xdp-loader is, recording (time, usable) of the switchable backend."""
    from dbus_next import BusType, Message
    from dbus_next.aio import MessageBus
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    changes = []

    def handler(m):
        if m.member != "PropertiesChanged" or m.path != "/org/vc5/Health1":
            return
        services = m.body[1].get("Services")
        if services is None:
            return
        for s in services.value:
            if f"{s[0]}:{s[1]}:{s[2]}" == FAIL_KEY:
                b = s[14][0]
                changes.append((time.perf_counter(), b[5] and not b[3] and not b[4] and b[2] > 0))

    bus.add_message_handler(handler)
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                           body=["type='signal',interface='org.freedesktop.DBus.Properties',"
                                 "path='/org/vc5/Health1'"]))
    return bus, changes


async def until(pred, seconds):
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


async def failure_to_unusable(d, counts, interval):
    """From the switchable backend answering 500 to usable=false on the bus, five times."""
    import aiohttp
    # connected after the window: parsing Services is the subscriber's cost, not healthd's
    bus, usable_changes = await watch_usable()
    detect, share, missed = [], [], 0
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            await until(lambda: d.state.services[FAIL_KEY].up, 30 * interval + 10)
            await asyncio.sleep(interval * 1.5)
            seen = len(usable_changes)
            t_fail = time.perf_counter()
            async with s.post(f"http://{FAIL_ADDR}:{FAIL_PORT}/set?status=500") as r:
                await r.read()
            if await until(lambda: any(not u for _, u in usable_changes[seen:]), 20 * interval + 10):
                t_gone = next(t for t, u in usable_changes[seen:] if not u)
                deciding = max(t for t, passed in counts.fail_rounds if not passed and t <= t_gone)
                detect.append(t_gone - t_fail)
                share.append(t_gone - deciding)
            else:
                missed += 1
            async with s.post(f"http://{FAIL_ADDR}:{FAIL_PORT}/set?status=200") as r:
                await r.read()
    bus.disconnect()
    return dict(fail_missed=missed, fail_to_unusable_median_s=statistics.median(detect) if detect else -1,
                fail_to_unusable_max_s=max(detect, default=-1),
                healthd_share_median_ms=statistics.median(share) * 1e3 if share else -1,
                healthd_share_max_ms=max(share, default=-1) * 1e3)


async def run_healthd(cfg_path, n, interval, window):
    from vc5.common import log as vlog
    from vc5.healthd import daemon as hd

    vlog.setup("bench-healthd", level=30)
    d = hd.Daemon(cfg_path, "direct")
    counts = Counts(d)
    task = asyncio.ensure_future(d.run())
    # warm up: every backend through its first `rise` rounds
    t_start = time.monotonic()
    while time.monotonic() - t_start < 120:
        await asyncio.sleep(0.5)
        if task.done():
            raise RuntimeError(f"healthd stopped: exit {task.result()}")
        if d.state.services and all(s.up for s in d.state.services.values()):
            break
    up_after = time.monotonic() - t_start
    result = await measure(d, counts, window)
    result["all_up_after_s"] = up_after
    result.update(await failure_to_unusable(d, counts, interval))
    d.signals.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), 30)
    except asyncio.TimeoutError:
        for t in asyncio.all_tasks():
            t.print_stack(limit=4, file=sys.stderr)
        raise
    return result


def worker(cfg_path, n, interval, window):
    """healthd alone in this process (the baseline runs in another: RSS and fds are healthd's)."""
    from tests.lib.privatebus import private_bus
    with private_bus():
        out = {"healthd": asyncio.run(run_healthd(cfg_path, n, interval, window))}
    print(json.dumps(out), flush=True)


# ---- compare: reload latency and one Services flush, this tree against another ----------------

def plain_config(n, interval=1.0):
    """n backends without checks (`http*`: they pass every round), PER_SERVICE per service."""
    addrs = backends(n)
    out = ["services:"]
    for c in range(0, n, PER_SERVICE):
        servers = "\n".join(f"      - {a}" for a in addrs[c:c + PER_SERVICE])
        out.append(f"  - name: s{c // PER_SERVICE}\n    virtual: 198.18.9.{c // PER_SERVICE + 1}\n"
                   f"    interval: {interval}\n    rise: 1\n    fall: 1\n    servers:\n{servers}\n"
                   "    policy:\n      http*:\n")
    return "\n".join(out)


def tree_env(tree, address):
    services = os.path.join(os.path.abspath(tree), "services")
    return dict(os.environ, PYTHONPATH=services, VC5_SERVICES=services, DBUS_SYSTEM_BUS_ADDRESS=address,
                PYTHONDONTWRITEBYTECODE="1")


class ReloadTarget:
    """One running vc5-healthd on its own private bus, and a client watching its Generation."""

    def __init__(self, tree, cfg, address):
        self.address = address
        self.proc = subprocess.Popen([PY, "-m", "vc5.healthd", "--config", cfg, "--probe-path", "direct"],
                                     env=tree_env(tree, address), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            if subprocess.run(["busctl", f"--address={address}", "status", "org.vc5.Health1"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{tree}: healthd did not start")

    async def connect(self):
        from dbus_next import Message
        from dbus_next.aio import MessageBus

        self.bus = await MessageBus(bus_address=self.address).connect()
        self.generations = asyncio.Queue()
        self.generation = 1

        def handler(m):
            if m.member == "PropertiesChanged" and m.path == "/org/vc5/Health1" and "Generation" in m.body[1]:
                self.generations.put_nowait((time.perf_counter(), m.body[1]["Generation"].value))

        self.bus.add_message_handler(handler)
        await self.bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                    interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                                    body=["type='signal',interface='org.freedesktop.DBus.Properties',"
                                          "path='/org/vc5/Health1'"]))
        self.reload = Message(destination="org.vc5.Health1", path="/org/vc5/Health1",
                              interface="org.vc5.Health1.Manager", member="Reload")

    async def sighup(self):
        """Seconds from SIGHUP to the PropertiesChanged carrying the next Generation."""
        import signal as signals
        t0 = time.perf_counter()
        os.kill(self.proc.pid, signals.SIGHUP)
        while True:
            t, seen = await asyncio.wait_for(self.generations.get(), 30)
            if seen > self.generation:
                self.generation = seen
                return t - t0

    async def call(self):
        """Seconds of one Manager.Reload call (its reply carries the new Generation)."""
        t0 = time.perf_counter()
        reply = await self.bus.call(self.reload)
        took = time.perf_counter() - t0
        assert reply.body and reply.body[0] == self.generation + 1, reply.body
        self.generation += 1
        return took

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


async def reload_rounds(targets, rounds, results):
    """Rounds alternate between the targets (A B, B A, ...): both see the same machine."""
    for target in targets.values():
        await target.connect()
    await asyncio.sleep(2)              # every backend through its first round
    order = list(targets)
    for i in range(rounds):
        for name in order if i % 2 == 0 else order[::-1]:
            results[name]["hup"].append(await targets[name].sighup())
            await asyncio.sleep(0.05)
            results[name]["call"].append(await targets[name].call())
            await asyncio.sleep(0.05)
    for target in targets.values():
        target.bus.disconnect()


def reload_compare(trees, cfg, rounds, results):
    from tests.lib.privatebus import Bus
    buses, targets = [], {}
    try:
        for name, tree in trees.items():
            buses.append(Bus())
            targets[name] = ReloadTarget(tree, cfg, buses[-1].address)
        asyncio.run(reload_rounds(targets, rounds, results))
    finally:
        for target in targets.values():
            target.stop()
        for bus in buses:
            bus.stop()


async def flush_worker(cfg_path, repeat):
    """In the tree on VC5_SERVICES: seconds of one Services PropertiesChanged (full, one service dirty)."""
    from vc5.common.bus import connect_system_bus
    from vc5.healthd import daemon as hd

    class NoScheduler:
        def sync(self, state):
            pass

    d = hd.Daemon(cfg_path, "direct")
    d.scheduler = NoScheduler()
    bus = await connect_system_bus()
    publisher = getattr(d, "publisher", None)
    if publisher is not None:
        publisher.attach(bus)
    d.bus = bus
    d._apply(hd.load_config(cfg_path))
    flush = publisher.flush if publisher is not None else d._flush
    flush()
    keys = list(d.state.services)
    out = {"full": [], "one": []}
    for i in range(repeat):
        for kind in ("full", "one"):
            d.state.dirty_services = set(keys) if kind == "full" else {keys[i % len(keys)]}
            d.state.dirty_vips = kind == "full"
            if publisher is not None:
                publisher.mark()
            t0 = time.perf_counter()
            flush()
            out[kind].append(time.perf_counter() - t0)
            if publisher is not None:       # the Publisher's own figure (what its storm spacing uses)
                out.setdefault(f"last_cost_{kind}", []).append(publisher.last_cost)
            await asyncio.sleep(0.1)        # the bus drains the signal
    bus.disconnect()
    return out


def summary(xs):
    xs = sorted(xs)
    return {"median_ms": statistics.median(xs) * 1e3, "min_ms": xs[0] * 1e3, "p90_ms": pct(xs, 90) * 1e3,
            "mean_ms": statistics.fmean(xs) * 1e3, "n": len(xs)}


def compare(other, rounds="50", n_reload="1000", n_flush="10000"):
    from tests.lib.privatebus import private_bus
    rounds, n_reload, n_flush = int(rounds), int(n_reload), int(n_flush)
    trees = {"other": os.path.abspath(other), "this": REPO}
    tmp = tempfile.mkdtemp(prefix="vc5bench-compare")
    cfg_reload, cfg_flush = os.path.join(tmp, "reload.yaml"), os.path.join(tmp, "flush.yaml")
    with open(cfg_reload, "w") as f:
        f.write(plain_config(n_reload))
    with open(cfg_flush, "w") as f:
        f.write(plain_config(n_flush))
    results = {name: {"hup": [], "call": [], "full": [], "one": []} for name in trees}
    reload_compare(trees, cfg_reload, rounds, results)
    for name in ("other", "this", "this", "other"):      # ABBA: a drift in the machine's load cancels
        with private_bus() as address:
            r = subprocess.run([PY, os.path.abspath(__file__), "--flush-worker", cfg_flush, "6"],
                               env=tree_env(trees[name], address), capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 0, r.stderr
            flushes = json.loads(r.stdout.strip().splitlines()[-1])
        for kind, values in flushes.items():
            results[name].setdefault(kind, []).extend(values)
    report = {name: {k: summary(v) for k, v in r.items()} for name, r in results.items()}
    print(f"same-run comparison: this tree {REPO} vs {trees['other']}; {os.cpu_count()} CPUs shared")
    for what, label in (("hup", f"SIGHUP -> new Generation on the bus, {n_reload} backends"),
                        ("call", f"Manager.Reload round trip, {n_reload} backends"),
                        ("full", f"Services PropertiesChanged after a reload, {n_flush} backends"),
                        ("one", f"Services PropertiesChanged after one backend changed, {n_flush} backends")):
        o, t = report["other"][what], report["this"][what]
        print(f"{label}:\n  other median {o['median_ms']:.2f} ms (min {o['min_ms']:.2f}, "
              f"p90 {o['p90_ms']:.2f}, n {o['n']})\n  this  median {t['median_ms']:.2f} ms "
              f"(min {t['min_ms']:.2f}, p90 {t['p90_ms']:.2f}, n {t['n']})")
    for kind in ("full", "one"):
        costs = report["this"].get(f"last_cost_{kind}")
        if costs:
            print(f"  this: Publisher.last_cost after {'a reload' if kind == 'full' else 'one backend'}: "
                  f"median {costs['median_ms']:.2f} ms (min {costs['min_ms']:.2f})")
    os.makedirs(os.path.join(REPO, "bench", "out"), exist_ok=True)
    with open(os.path.join(REPO, "bench", "out", "healthd-compare.json"), "w") as f:
        json.dump({"other": trees["other"], "rounds": rounds, "reload_backends": n_reload,
                   "flush_backends": n_flush, **report}, f, indent=1)


# ---- the orchestrator: builds the farm, runs the worker in the prober namespace ----------------

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        print(json.dumps(asyncio.run(baseline_http(backends(min(int(sys.argv[2]), 2000))))), flush=True)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--flush-worker":
        print(json.dumps(asyncio.run(flush_worker(sys.argv[2], int(sys.argv[3])))), flush=True)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        compare(*sys.argv[2:])
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1700
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    window = 10.0
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    res = farm_run(n, interval, window)
    print("\n".join(report(res, n, interval, window)))
    os.makedirs(os.path.join(REPO, "bench", "out"), exist_ok=True)
    with open(os.path.join(REPO, "bench", "out", "healthd.json"), "w") as f:
        json.dump({"n": n, "interval": interval, **res}, f, indent=1)


def farm_run(n, interval, window):
    """Builds the farm, runs the baseline and the healthd worker in the prober namespace."""
    tmp = tempfile.mkdtemp(prefix="vc5bench-healthd")
    prober, farm = netns.Netns.create("vc5bhp"), netns.Netns.create("vc5bhf")
    procs = []
    try:
        netns.veth(prober, "eth0", farm, "eth0")
        prober.run("ip addr add 10.9.0.1/24 dev eth0 && ip route add 10.10.0.0/16 via 10.9.0.2")
        farm.run("ip addr add 10.9.0.2/24 dev eth0 && ip route add local 10.10.0.0/16 dev lo")
        for ns in (prober, farm):
            ns.sysctl("net.core.somaxconn", 4096)
        try:    # dnsmasq's socket absorbs the prober's bursts (per-namespace on recent kernels)
            farm.sysctl("net.core.rmem_default", 4 * 1024 * 1024)
        except RuntimeError:
            pass
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(d=tmp))
        procs.append(farm.popen(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
                                stdout=subprocess.DEVNULL))
        dnsmasq = farm.popen(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
                              "--no-hosts", "--port=53", "--pid-file=", "--cache-size=0"],
                             stdout=subprocess.DEVNULL)
        procs.append(dnsmasq)
        fail = farm.popen([PY, "-c", FAIL_SERVER, FAIL_ADDR, str(FAIL_PORT)])
        procs.append(fail)
        assert fail.stdout.readline().strip() == b"ready"
        cfg = os.path.join(tmp, "vc5.yaml")
        with open(cfg, "w") as f:
            f.write(config(n, interval))
        t = time.monotonic()
        while ":80 " not in farm.run("ss -ltnH").stdout and time.monotonic() - t < 10:
            time.sleep(0.1)
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
        me = os.path.abspath(__file__)
        r = prober.run([PY, me, "--baseline", str(n)], timeout=120, env=env)
        baseline = json.loads(r.stdout.strip().splitlines()[-1])
        # dnsmasq's own receive queue (its namespace, seen through its /proc entry): is the backend behind?
        with procstat.Sampler(lambda: procstat.udp_rx_queue(dnsmasq.pid, 53), 0.02) as farm_rxq:
            r = prober.run([PY, me, "--worker", cfg, str(n), str(interval), str(window)], timeout=590,
                           env=env)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["baseline_http"] = baseline
        res["dnsmasq_rx_queue_max_kib"] = farm_rxq.max / 1024
        res["udp_drops"] = {name: udp_drops(ns) for name, ns in (("farm", farm), ("prober", prober))}
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        prober.delete()
        farm.delete()
    return res


def report(res, n, interval, window):
    b, h = res["baseline_http"], res["healthd"]
    return [
        f"vc5-healthd benchmark: {n} backends x (http, syn, dns/udp) + 1, interval {interval} s, "
        f"window {window} s, {os.cpu_count()} CPUs shared",
        f"baseline   raw aiohttp GET (keep-alive, 64 in flight): {b['rate']:.0f} req/s, "
        f"CPU {b['cpu_share']:.0%}, "
        f"{b['cpu_us_per_req']:.0f} us CPU/req, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms",
        f"healthd    {h['pairs']} (service, backend) pairs, all up after {h['all_up_after_s']:.1f} s",
        f"healthd    sustained {h['rounds_per_s']:.0f} checks/s (target {3 * n / interval:.0f}), "
        f"CPU {h['cpu_share']:.0%} of one core -> {h['rounds_per_cpu_s']:.0f} checks per CPU-second, "
        f"{h['failed_rounds']} failed rounds {h['failures'] or ''}; UDP receive-buffer drops: "
        f"farm {res['udp_drops']['farm']}, prober {res['udp_drops']['prober']}",
        f"dns        {h['dns_rounds']} rounds, {h['dns_failed']} failed, {h['dns_late_replies']} replies "
        f"arrived for probes already timed out; UDP receive queue: healthd max "
        f"{h['rx_queue_max_kib']:.0f} KiB (mean {h['rx_queue_mean_kib']:.0f}), dnsmasq max "
        f"{res['dnsmasq_rx_queue_max_kib']:.0f} KiB; event-loop lag p50 {h['loop_lag_p50_ms']:.1f} / "
        f"p99 {h['loop_lag_p99_ms']:.1f} / max {h['loop_lag_max_ms']:.0f} ms",
        f"cost       healthd RSS max {h['rss_max_mib']:.0f} MiB, open descriptors max {h['fds_max']}, "
        f"threads max {h.get('threads_max', '?')} (besides the bench's samplers)",
        f"latency    http p50 {h['http_p50_ms']:.2f} / p99 {h['http_p99_ms']:.2f} ms; "
        f"syn p50 {h['syn_p50_ms']:.2f} / p99 {h['syn_p99_ms']:.2f} ms; "
        f"dns p50 {h['dns_p50_ms']:.2f} / p99 {h['dns_p99_ms']:.2f} ms",
        f"failure    500 -> usable=false on the bus: median {h['fail_to_unusable_median_s']:.2f} s, "
        f"max {h['fail_to_unusable_max_s']:.2f} s (fall 2 at {interval} s rounds); healthd's share "
        f"(deciding round -> signal received) median {h['healthd_share_median_ms']:.2f} ms, "
        f"max {h['healthd_share_max_ms']:.2f} ms; {h['fail_missed']} of 5 never seen",
    ]


if __name__ == "__main__":
    main()
