"""The console's log: a ring of the last 1000 alerts, served as /log/<N>.

vc5 keeps the last 1000 log lines of level < DEBUG and serves those with an
index above N, oldest first, as [{"indx": u64, "time": unix_s, "text": str}]
(vc5:logging.go `history`, `Get`). Indexes start at 1 and only grow, so a
client that asks with the last index it saw gets exactly the new lines, and a
client that fell more than 1000 lines behind gets the 1000 newest. A URL's
credentials in a line are masked (vc5.client.redact).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from vc5.client.redact import mask_text

CAPACITY = 1000
LEVELS = ("EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG")
DEBUG = 7


@dataclass(frozen=True)
class Entry:
    indx: int
    time: int
    text: str
    level: int = 5

    def to_json(self) -> dict:
        return {"indx": self.indx, "time": self.time, "text": self.text}


class LogRing:
    def __init__(self, capacity: int = CAPACITY):
        self.entries: deque = deque(maxlen=capacity)
        self.last = 0

    def add(self, text: str, level: int = 5, when: float | None = None) -> Entry | None:
        """Append an alert; DEBUG lines are not kept (as vc5). Returns the entry or None."""
        if level >= DEBUG:
            return None
        self.last += 1
        entry = Entry(self.last, int(time.time() if when is None else when),
                      f"{LEVELS[max(0, min(level, 7))]} {mask_text(text)}", level)
        self.entries.append(entry)
        return entry

    def after(self, n: int) -> list:
        """Entries with indx > n, oldest first."""
        return [e.to_json() for e in self.entries if e.indx > n]
