"""Exponential backoff between delivery attempts (pure; the caller sleeps).

delay(n) for the n-th consecutive failure (n >= 1) is initial * factor**(n-1),
capped at maximum, optionally spread by +-jitter (a fraction) so that
several balancers do not retry in lock-step. A success resets the count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff: need 0 < initial ({self.initial}) <= maximum ({self.maximum})")
        if self.factor < 1:
            raise ValueError(f"backoff: factor {self.factor} must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff: jitter {self.jitter} must be in [0, 1)")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th consecutive failure."""
        if failures < 1:
            return 0.0
        # min() before the power would overflow: factor**1000 is inf for floats anyway.
        base = min(self.maximum, self.initial * self.factor ** min(failures - 1, 1000))
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return min(base, self.maximum)

    def failed(self) -> float:
        """Count one more failure; the delay before the next attempt."""
        self.failures += 1
        return self.delay(self.failures)

    def succeeded(self) -> None:
        self.failures = 0
