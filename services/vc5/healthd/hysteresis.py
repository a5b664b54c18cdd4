"""Up/down hysteresis over a sliding window of round results (pure).

vc5 (cue:mon/mon.go `monitor`) keeps the last 5 round results:
  * up -> down when fewer than 4 of the last 5 passed (2 failures in the window);
  * down -> up only when all 5 passed (5 consecutive passing rounds).
We generalise with `rise` (window size and consecutive passes needed to come up)
and `fall` (failures within the window that bring it down); vc5 is rise=5, fall=2.

Invariants: len(window) == rise; 1 <= fall <= rise; `up` changes only in record().
"""

from collections import deque


class Hysteresis:
    __slots__ = ("rise", "fall", "window", "up")

    def __init__(self, rise=5, fall=2, up=False):
        if rise < 1:
            raise ValueError("rise must be >= 1")
        fall = max(1, min(fall, rise))
        self.rise = rise
        self.fall = fall
        # A fresh window is uniform with the initial state, as cue's
        # (all-false for a new VIP's backends, all-true for a new service on an existing VIP).
        self.window = deque([up] * rise, maxlen=rise)
        self.up = up

    def record(self, passed: bool) -> bool:
        """Add one round's result; return True if `up` changed."""
        self.window.append(bool(passed))
        was = self.up
        if self.up:
            if self.failures() >= self.fall:
                self.up = False
        elif all(self.window):
            self.up = True
        return self.up != was

    def failures(self) -> int:
        return sum(1 for r in self.window if not r)

    def passes(self) -> int:
        return sum(1 for r in self.window if r)

    def resized(self, rise: int, fall: int) -> "Hysteresis":
        """A copy with new thresholds that keeps the most recent results and the current verdict.

        A longer window is padded at the old end with the current verdict, so a
        reload that only changes thresholds never flips a backend by itself.
        """
        h = Hysteresis(rise, fall, self.up)
        recent = list(self.window)[-rise:]
        pad = [self.up] * (rise - len(recent))
        h.window = deque(pad + recent, maxlen=rise)
        return h

    def copy(self) -> "Hysteresis":
        return self.resized(self.rise, self.fall)

    def __repr__(self):
        w = "".join("+" if r else "-" for r in self.window)
        return f"Hysteresis({'up' if self.up else 'down'} [{w}] rise={self.rise} fall={self.fall})"
