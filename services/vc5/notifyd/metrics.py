"""vc5_notify_* metrics, written as a Prometheus textfile (node_exporter's textfile collector).

The file (default $RUNTIME_DIRECTORY/metrics.prom, i.e. /run/vc5-notifyd/metrics.prom)
is replaced atomically (write a temporary file, rename), so a scrape never
reads half of it. Every metric has the label sink="slack|teams|elasticsearch":

    vc5_notify_backlog          events in the journal after the sink's cursor (counted up to
                                --max-backlog + 1)
    vc5_notify_failures_total   delivery attempts that failed (each retry counts)
    vc5_notify_delivered_total  events the endpoint accepted
    vc5_notify_rejected_total   events the endpoint refused for good (logged, skipped)
    vc5_notify_dropped_total    events skipped because the backlog passed --max-backlog
    vc5_notify_up               1 if the last attempt succeeded, else 0
"""

from __future__ import annotations

from typing import NamedTuple

from vc5.common import files


class Family(NamedTuple):
    name: str
    kind: str           # gauge | counter
    help: str


# Declared with literal names: tests/unit/docs_check.py finds metric families this way.
FAMILIES = (
    Family("vc5_notify_backlog", "gauge", "Events in the journal after the sink's cursor, not yet sent."),
    Family("vc5_notify_failures_total", "counter", "Delivery attempts that failed."),
    Family("vc5_notify_delivered_total", "counter", "Events the endpoint accepted."),
    Family("vc5_notify_rejected_total", "counter", "Events the endpoint refused for good (skipped)."),
    Family("vc5_notify_dropped_total", "counter",
           "Events skipped because the backlog passed --max-backlog."),
    Family("vc5_notify_up", "gauge", "1 if the last delivery attempt succeeded, else 0."),
)
HELP = {f.name: (f.kind, f.help) for f in FAMILIES}


class Metrics:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.values: dict[str, dict[str, float]] = {name: {} for name in HELP}
        self.dirty = True

    def add(self, name: str, sink: str, amount: float = 1) -> None:
        series = self.values[name]
        series[sink] = series.get(sink, 0) + amount
        self.dirty = True

    def set(self, name: str, sink: str, value: float) -> None:
        if self.values[name].get(sink) != value:
            self.values[name][sink] = value
            self.dirty = True

    def get(self, name: str, sink: str) -> float:
        return self.values[name].get(sink, 0)

    def ensure(self, sink: str) -> None:
        """Every series of `sink` exists from the start (0), so a rate() sees the first failure."""
        for name in HELP:
            self.values[name].setdefault(sink, 0)
        self.dirty = True

    def render(self) -> str:
        out = []
        for name, (kind, text) in HELP.items():
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            out += [f'{name}{{sink="{sink}"}} {value:g}' for sink, value in sorted(self.values[name].items())]
        return "\n".join(out) + "\n"

    def write(self) -> None:
        """Replace the textfile if anything changed (a no-op without a path)."""
        if not self.path or not self.dirty:
            return
        # node_exporter runs as another user; nothing secret here
        files.replace_file(self.path, self.render().encode("ascii"), mode=0o644)
        self.dirty = False
