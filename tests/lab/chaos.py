"""Drive tests/lab/load.py in the client namespace and tabulate what each event did.

    load = LoadClient(lab)             # 20 streams + new connections, all the time
    with load.event("restart healthd lb1") as ev:
        ...                            # the event; ev.result is the window's report after
    print(load.table())                # one row per event
"""

import json
import os
import sys
from contextlib import contextmanager

from tests.lab.topology import HERE, VIP4

# Every table printed by a chaos module; tests/e2e/conftest.py shows them in the summary.
TABLES = []


class RouteWatch:
    """`ip monitor route` on the router: how often its route to the VIP changed."""

    def __init__(self, lab):
        # lab.spawn logs the process's output to workdir/NAME.log.
        self.path = os.path.join(lab.workdir, "router-route-monitor.log")
        self.proc = lab.spawn(lab.router, ["ip", "-o", "monitor", "route"], "router-route-monitor")
        self.mark()

    def _lines(self):
        with open(self.path, "rb") as f:
            return [line for line in f.read().decode(errors="replace").splitlines() if VIP4 in line]

    def mark(self):
        self.seen = len(self._lines())

    def changes(self):
        """Route updates for the VIP since the last mark()."""
        return len(self._lines()) - self.seen


class LoadClient:
    def __init__(self, lab, streams=20, workers=3, max_seconds=600):
        self.lab = lab
        self.rows = []
        argv = [sys.executable, os.path.join(HERE, "load.py"), "--vip", VIP4, "--streams", str(streams),
                "--workers", str(workers), "--max-seconds", str(max_seconds)]
        self.proc = lab.client.ns.popen(argv, stdin=-1, stdout=-1, stderr=None, text=True, bufsize=1)
        self.routes = RouteWatch(lab)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the load client died (exit {self.proc.poll()})")
        return json.loads(line)

    def window(self):
        answer = self.ask("window")
        assert answer["ready"], f"streams did not all start delivering: {answer}"
        return answer

    def report(self):
        return self.ask("report")

    def recycle(self, backend="*", port=None):
        """Replace the streams of `backend` ("*": every stream) with new ones, from source ports
        port, port+1, ... if given (else the kernel's choice)."""
        answer = self.ask(f"recycle {backend} {port}" if port else f"recycle {backend}")
        assert answer["ready"], f"new streams did not all start delivering: {answer}"

    @contextmanager
    def event(self, name):
        """A measurement window around an event; yields an object whose .result is the report."""
        class Event:
            pass
        ev = Event()
        ev.name = name
        ev.before = self.window()["streams"]
        self.routes.mark()
        yield ev
        ev.result = self.report()
        ev.route_changes = self.routes.changes()
        self.rows.append((name, ev.result, ev.route_changes))
        print(self.table(self.rows[-1:]), flush=True)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()

    # ------------------------------------------------------------ reporting
    @staticmethod
    def summary(result, backend=None):
        """(resets, closed, stalled, max_gap) over the streams (of one backend, or all)."""
        streams = [s for s in result["streams"] if backend is None or s["backend"] == backend]
        return (sum(s["reset"] for s in streams), sum(s["closed"] for s in streams),
                sum(s["stalled"] for s in streams), max((s["max_gap"] for s in streams), default=0.0))

    def table(self, rows=None):
        head = (f"{'event':<40} {'new conns':>9} {'failed':>6} {'slow':>5} {'streams':>7} {'resets':>6} "
                f"{'closed':>6} {'stalled':>7} {'max gap s':>9} {'route chg':>9}")
        lines = [head, "-" * len(head)]
        for name, r, routes in self.rows if rows is None else rows:
            resets, closed, stalled, gap = self.summary(r)
            lines.append(f"{name:<40} {r['requests']:>9} {r['failed']:>6} {r['slow']:>5} "
                         f"{len(r['streams']):>7} {resets:>6} {closed:>6} {stalled:>7} {gap:>9.2f} "
                         f"{routes:>9}")
        return "\n".join(lines)
