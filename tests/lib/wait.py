"""Poll for a condition with a deadline: tests never sleep blindly."""

import time


def until(predicate, timeout=10.0, interval=0.05, message=None):
    """Return predicate()'s first truthy value; raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s (last: {last!r})")
        time.sleep(interval)
